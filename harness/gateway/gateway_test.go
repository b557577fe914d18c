package gateway

import (
	"bufio"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/json"
	"encoding/pem"
	"errors"
	"io"
	"log/slog"
	"math/big"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"ai-proxy/harness"
	"ai-proxy/harness/bootstrap"
	"ai-proxy/harness/testutil"
)

// errorBody is the OpenAI-style error the gateway answers with.
type errorBody struct {
	Error struct {
		Message string `json:"message"`
		Type    string `json:"type"`
		Code    string `json:"code"`
	} `json:"error"`
}

func decodeError(t testing.TB, body string) errorBody {
	t.Helper()
	var e errorBody
	if err := json.Unmarshal([]byte(body), &e); err != nil || e.Error.Code == "" {
		t.Fatalf("error body %q: %v", body, err)
	}
	return e
}

func TestRouting(t *testing.T) {
	a, _ := echoServer(t, "a")
	b, _ := echoServer(t, "b")
	c, _ := echoServer(t, "c")
	for _, filters := range [][]filterSpec{nil, {{Tag: "A"}}} {
		g := start(t, setup{
			Filters: filters,
			VHosts: []vhostSpec{
				{Domains: []string{"api.example.com", "api.example.com:8443"}, Routes: []routeSpec{{Prefix: "/a", Cluster: "a"}}},
				{Domains: []string{"*.example.org"}, Routes: []routeSpec{{Prefix: "/", Cluster: "b"}}},
				{Domains: []string{"*"}, Routes: []routeSpec{{Path: "/exact", Cluster: "c"}, {Prefix: "/p", Cluster: "c"}}},
			},
			Clusters: []clusterSpec{{Name: "a", Addrs: []string{a}}, {Name: "b", Addrs: []string{b}}, {Name: "c", Addrs: []string{c}}},
		})
		cases := []struct {
			host, path string
			want       string // upstream name, or "404"
		}{
			{"api.example.com", "/a/x", "a"},
			{"API.Example.com", "/a", "a"},
			{"api.example.com:8443", "/a", "a"},
			{"api.example.com:9999", "/a", "404"}, // ports are matched as written (Envoy's default)
			{"api.example.com", "/b", "404"},      // the exact virtual host wins; its routes do not match
			{"x.example.org", "/anything", "b"},
			{"example.org", "/anything", "404"}, // "*.example.org" needs a non-empty prefix
			{"other", "/exact", "c"},
			{"other", "/exact?q=1", "c"},
			{"other", "/exact/x", "404"},
			{"other", "/p/x", "c"},
			{"other", "/zzz", "404"},
		}
		for _, tc := range cases {
			status, _, body := do(t, "GET", g.URL+tc.path, tc.host, nil, "")
			if tc.want == "404" {
				if status != 404 || decodeError(t, body).Error.Code != "route_not_found" {
					t.Errorf("filters=%d %s%s: %d %s, want 404 route_not_found", len(filters), tc.host, tc.path, status, body)
				}
				continue
			}
			if status != 200 {
				t.Errorf("filters=%d %s%s: status %d %s", len(filters), tc.host, tc.path, status, body)
				continue
			}
			if e := decodeEcho(t, body); e.Name != tc.want || e.Path != tc.path || !strings.EqualFold(e.Host, tc.host) {
				t.Errorf("filters=%d %s%s: reached %s %s host %s", len(filters), tc.host, tc.path, e.Name, e.Path, e.Host)
			}
		}
	}
}

// TestRouteAfterFilters: the route is chosen on the headers as the filters
// left them (Envoy clears the route cache when a filter changes them).
func TestRouteAfterFilters(t *testing.T) {
	a, _ := echoServer(t, "a")
	b, _ := echoServer(t, "b")
	g := start(t, setup{
		Filters: []filterSpec{{Tag: "A"}},
		VHosts: []vhostSpec{{Domains: []string{"*"}, Routes: []routeSpec{
			{Prefix: "/llm", Cluster: "b"}, {Prefix: "/", Cluster: "a"}}}},
		Clusters: []clusterSpec{{Name: "a", Addrs: []string{a}}, {Name: "b", Addrs: []string{b}}},
	})
	status, _, body := do(t, "GET", g.URL+"/x", "", map[string]string{"x-test-set-path": "/llm/v1"}, "")
	if e := decodeEcho(t, body); status != 200 || e.Name != "b" || e.Path != "/llm/v1" {
		t.Errorf("rewritten path reached %s %s (%d)", e.Name, e.Path, status)
	}
}

func TestRequestThroughFilters(t *testing.T) {
	up, _ := echoServer(t, "up")
	g := start(t, setup{
		Filters:  []filterSpec{{Tag: "A"}, {Tag: "B"}},
		Clusters: []clusterSpec{{Name: "upstream", Addrs: []string{up}}},
	})
	t.Run("edits reach the upstream with a fixed Content-Length", func(t *testing.T) {
		status, hdr, body := do(t, "POST", g.URL+"/orig?x=1", "svc.local", map[string]string{
			"x-test-body":       "append",
			"x-test-set-path":   "/changed?q=1",
			"x-test-set-header": "x-added=yes",
			"Content-Type":      "text/plain",
		}, "hello")
		if status != 200 {
			t.Fatalf("status %d %s", status, body)
		}
		e := decodeEcho(t, body)
		if e.Body != "hello+A+B" || e.ContentLength != int64(len("hello+A+B")) || len(e.TransferEncoding) != 0 {
			t.Errorf("upstream body %q content-length %d transfer-encoding %v", e.Body, e.ContentLength, e.TransferEncoding)
		}
		if e.Path != "/changed?q=1" || e.Host != "svc.local" || e.Method != "POST" {
			t.Errorf("upstream request %s %s host %s", e.Method, e.Path, e.Host)
		}
		if e.header("x-chain") != "AB" || e.header("x-added") != "yes" || e.header("content-type") != "text/plain" {
			t.Errorf("upstream headers %v", e.Headers)
		}
		if len(e.header("x-request-id")) != 36 || e.header("x-forwarded-proto") != "http" {
			t.Errorf("x-request-id %q x-forwarded-proto %q", e.header("x-request-id"), e.header("x-forwarded-proto"))
		}
		if ua, ok := e.Headers["User-Agent"]; ok && ua[0] != "Go-http-client/1.1" {
			t.Errorf("user-agent %v", ua) // the client's own is passed; the gateway adds none
		}
		if got := hdr.Get("X-Resp-Chain"); got != "BA" {
			t.Errorf("response filters ran as %q, want BA (reverse order)", got)
		}
		if hdr.Get("X-Upstream") != "up" {
			t.Errorf("upstream response headers lost: %v", hdr)
		}
	})
	t.Run("client x-request-id is kept", func(t *testing.T) {
		_, _, body := do(t, "GET", g.URL+"/", "", map[string]string{"X-Request-Id": "rid-1"}, "")
		if e := decodeEcho(t, body); e.header("x-request-id") != "rid-1" {
			t.Errorf("x-request-id %q", e.header("x-request-id"))
		}
	})
	t.Run("buffered body keeps its Content-Length", func(t *testing.T) {
		_, _, body := do(t, "PUT", g.URL+"/", "", map[string]string{"x-test-body": "keep"}, "0123456789")
		if e := decodeEcho(t, body); e.Body != "0123456789" || e.ContentLength != 10 {
			t.Errorf("upstream body %q content-length %d", e.Body, e.ContentLength)
		}
	})
	t.Run("response body buffered by a filter", func(t *testing.T) {
		status, hdr, body := do(t, "GET", g.URL+"/", "", map[string]string{"x-test-resp-body": "buffer"}, "")
		if status != 200 || !strings.HasSuffix(body, "|B|A") || hdr.Get("Content-Length") != "" {
			t.Errorf("%d %q content-length %q, want the body with |B|A appended", status, body, hdr.Get("Content-Length"))
		}
	})
}

// TestLargeBodyStreams: a body larger than the buffer limit that no filter
// holds is streamed to the upstream, whole.
func TestLargeBodyStreams(t *testing.T) {
	up, _ := echoServer(t, "up")
	g := start(t, setup{
		Filters:     []filterSpec{{Tag: "A"}},
		BufferLimit: 1024,
		Clusters:    []clusterSpec{{Name: "upstream", Addrs: []string{up}}},
	})
	big := strings.Repeat("x", 300_000)
	status, _, body := do(t, "POST", g.URL+"/", "", nil, big)
	if status != 200 {
		t.Fatalf("status %d %s", status, body)
	}
	if e := decodeEcho(t, body); e.Body != big || e.ContentLength != int64(len(big)) {
		t.Errorf("upstream got %d bytes, content-length %d", len(e.Body), e.ContentLength)
	}
}

func TestLocalResponse(t *testing.T) {
	up, hits := echoServer(t, "up")
	g := start(t, setup{
		Filters:  []filterSpec{{Tag: "A"}, {Tag: "B"}},
		Clusters: []clusterSpec{{Name: "upstream", Addrs: []string{up}}},
	})
	t.Run("from request headers", func(t *testing.T) {
		status, hdr, body := do(t, "POST", g.URL+"/", "", map[string]string{"x-test-local": "403"}, "payload")
		if status != 403 || body != "local:A" || hdr.Get("X-Local-By") != "A" {
			t.Errorf("%d %q %v", status, body, hdr)
		}
		if hdr.Get("Content-Type") != "text/plain" || hdr.Get("Content-Length") != "7" {
			t.Errorf("local reply headers %v", hdr)
		}
		// As in Envoy, a local reply goes through every filter's encoder side.
		if hdr.Get("X-Resp-Chain") != "BA" {
			t.Errorf("x-resp-chain %q, want BA", hdr.Get("X-Resp-Chain"))
		}
	})
	t.Run("from response headers", func(t *testing.T) {
		status, hdr, body := do(t, "GET", g.URL+"/", "", map[string]string{"x-test-resp-local": "418"}, "")
		if status != 418 || body != "resp-local:B" || hdr.Get("X-Upstream") != "" {
			t.Errorf("%d %q %v, want the first encoder filter's reply instead of the upstream's", status, body, hdr)
		}
	})
	if n := hits(); n != 1 {
		t.Errorf("upstream hit %d times, want 1 (only the response-side case)", n)
	}
}

func TestBufferLimit(t *testing.T) {
	up, hits := echoServer(t, "up")
	g := start(t, setup{
		Filters:     []filterSpec{{Tag: "A"}},
		BufferLimit: 1024,
		Clusters:    []clusterSpec{{Name: "upstream", Addrs: []string{up}}},
	})
	status, _, body := do(t, "POST", g.URL+"/", "", map[string]string{"x-test-body": "keep"}, strings.Repeat("y", 1024))
	if status != 200 {
		t.Errorf("body at the limit: %d %s", status, body)
	}
	status, _, body = do(t, "POST", g.URL+"/", "", map[string]string{"x-test-body": "keep"}, strings.Repeat("y", 5000))
	if status != 413 {
		t.Fatalf("body over the limit: %d %s", status, body)
	}
	e := decodeError(t, body)
	if e.Error.Code != "body_too_large" || e.Error.Type != "invalid_request_error" ||
		e.Error.Message != "request body exceeds the buffer limit of 1024 bytes" {
		t.Errorf("413 body %+v", e)
	}
	if hits() != 1 {
		t.Errorf("upstream hit %d times, want 1", hits())
	}
}

func TestUpstreamErrors(t *testing.T) {
	slow := newServer(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		select {
		case <-time.After(3 * time.Second):
		case <-r.Context().Done():
		}
	}))
	g := start(t, setup{
		Filters: []filterSpec{{Tag: "A"}},
		VHosts: []vhostSpec{{Domains: []string{"*"}, Routes: []routeSpec{
			{Prefix: "/slow", Cluster: "slow", Timeout: "0.2s"},
			{Prefix: "/down", Cluster: "down"},
			{Prefix: "/empty", Cluster: "empty"},
		}}},
		Clusters: []clusterSpec{
			{Name: "slow", Addrs: []string{slow}},
			{Name: "down", Addrs: []string{testutil.FreeAddr(t)}, Connect: "1s"},
			{Name: "empty"},
		},
	})
	cases := []struct {
		path           string
		status         int
		code, message  string
		maxElapsed     time.Duration
		filterSawReply bool
	}{
		{"/slow", 504, "upstream_timeout", "upstream request timeout", 2 * time.Second, true},
		{"/down", 503, "upstream_unavailable", "upstream connect error or disconnect/reset before headers", 3 * time.Second, true},
		{"/empty", 503, "upstream_unavailable", "no healthy upstream", time.Second, true},
	}
	for _, tc := range cases {
		t0 := time.Now()
		status, hdr, body := do(t, "POST", g.URL+tc.path, "", nil, "x")
		if el := time.Since(t0); el > tc.maxElapsed {
			t.Errorf("%s took %v", tc.path, el)
		}
		if status != tc.status {
			t.Errorf("%s: %d %s, want %d", tc.path, status, body, tc.status)
			continue
		}
		e := decodeError(t, body)
		if e.Error.Code != tc.code || e.Error.Message != tc.message || e.Error.Type != "api_error" {
			t.Errorf("%s: %+v", tc.path, e)
		}
		if hdr.Get("X-Resp-Chain") != "A" {
			t.Errorf("%s: the filter did not see the router's reply (x-resp-chain %q)", tc.path, hdr.Get("X-Resp-Chain"))
		}
	}
}

// tlsCallee is an HTTPS server that reports the SNI it was reached with.
func tlsCallee(t *testing.T, delay time.Duration) (addr, caFile string) {
	t.Helper()
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if delay > 0 {
			select {
			case <-time.After(delay):
			case <-r.Context().Done():
				panic(http.ErrAbortHandler) // no response at all
			}
		}
		b, _ := io.ReadAll(r.Body)
		io.WriteString(w, "sni="+r.TLS.ServerName+" path="+r.URL.Path+" host="+r.Host+
			" caller="+r.Header.Get("X-Caller")+" len="+strconv.Itoa(len(b)))
	}))
	srv.StartTLS()
	t.Cleanup(srv.Close)
	caFile = filepath.Join(t.TempDir(), "ca.pem")
	pemBytes := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: srv.Certificate().Raw})
	if err := os.WriteFile(caFile, pemBytes, 0o644); err != nil {
		t.Fatal(err)
	}
	return srv.Listener.Addr().String(), caFile
}

// selfSignedCA writes a CA certificate that signed nothing the tests serve.
func selfSignedCA(t *testing.T) string {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(1),
		Subject:               pkix.Name{CommonName: "other test CA"},
		NotBefore:             time.Now().Add(-time.Hour),
		NotAfter:              time.Now().Add(time.Hour),
		IsCA:                  true,
		BasicConstraintsValid: true,
		KeyUsage:              x509.KeyUsageCertSign,
		DNSNames:              []string{"example.com"},
		IPAddresses:           []net.IP{net.IPv4(127, 0, 0, 1)},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), "other-ca.pem")
	if err := os.WriteFile(path, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o644); err != nil {
		t.Fatal(err)
	}
	return path
}

func TestHTTPCall(t *testing.T) {
	up, hits := echoServer(t, "up")
	callee, ca := tlsCallee(t, 0)
	slowCallee, _ := tlsCallee(t, 3*time.Second)
	otherCA := selfSignedCA(t)
	g := start(t, setup{
		Filters: []filterSpec{{Tag: "A"}},
		Clusters: []clusterSpec{
			{Name: "upstream", Addrs: []string{up}},
			{Name: "tls-verified", Addrs: []string{callee}, TLS: true, SNI: "callee.example", CAFile: ca},
			{Name: "tls-unverified", Addrs: []string{callee}, TLS: true},
			{Name: "tls-wrong-ca", Addrs: []string{callee}, TLS: true, CAFile: otherCA},
			{Name: "tls-slow", Addrs: []string{slowCallee}, TLS: true},
			{Name: "plain-down", Addrs: []string{testutil.FreeAddr(t)}},
		},
	})
	cases := []struct {
		name    string
		headers map[string]string
		body    string
		status  int
		want    string
	}{
		{"verified TLS with SNI", map[string]string{"x-test-call": "tls-verified", "x-test-call-path": "/tls"}, "",
			200, "status=200 body=sni=callee.example path=/tls host=callee.local caller=A len=0"},
		{"body sent with the call", map[string]string{"x-test-call": "tls-verified"}, "abcdef",
			200, "status=200 body=sni=callee.example path=/call host=callee.local caller=A len=6"},
		{"unverified TLS without SNI", map[string]string{"x-test-call": "tls-unverified"}, "",
			200, "status=200 body=sni= path=/call host=callee.local caller=A len=0"},
		{"untrusted certificate fails", map[string]string{"x-test-call": "tls-wrong-ca"}, "", 502, "call failed"},
		{"timeout fails", map[string]string{"x-test-call": "tls-slow", "x-test-call-timeout": "200"}, "", 502, "call failed"},
		{"connection refused fails", map[string]string{"x-test-call": "plain-down"}, "", 502, "call failed"},
		{"unknown cluster is refused", map[string]string{"x-test-call": "nope"}, "", 500, "call rejected status=2"},
		{"host:port is not a cluster in envoy", map[string]string{"x-test-call": callee}, "", 500, "call rejected status=2"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t0 := time.Now()
			status, _, body := do(t, "POST", g.URL+"/", "", tc.headers, tc.body)
			if status != tc.status || body != tc.want {
				t.Errorf("%d %q, want %d %q", status, body, tc.status, tc.want)
			}
			if el := time.Since(t0); el > 2*time.Second {
				t.Errorf("took %v", el)
			}
		})
	}
	if hits() != 0 {
		t.Errorf("the route's upstream was hit %d times; every case answers locally", hits())
	}
}

// TestHTTPCallResume: a filter pausing in on_request_headers to make a call
// (Envoy's default: all iteration stops) gets the body after it resumes.
func TestHTTPCallResume(t *testing.T) {
	up, _ := echoServer(t, "up")
	callee, ca := tlsCallee(t, 0)
	for _, allow := range []bool{false, true} {
		g := start(t, setup{
			Filters: []filterSpec{{Tag: "A", AllowStop: allow}, {Tag: "B"}},
			Clusters: []clusterSpec{
				{Name: "upstream", Addrs: []string{up}},
				{Name: "callee", Addrs: []string{callee}, TLS: true, SNI: "s", CAFile: ca},
			},
		})
		status, _, body := do(t, "POST", g.URL+"/", "", map[string]string{
			"x-test-call": "callee", "x-test-call-at": "headers", "x-test-call-mode": "resume", "x-test-body": "append",
		}, "data")
		if status != 200 {
			t.Fatalf("allow=%v: %d %s", allow, status, body)
		}
		e := decodeEcho(t, body)
		if e.header("x-call-status") != "200" || !strings.HasPrefix(e.header("x-call-body"), "sni=s ") {
			t.Errorf("allow=%v: call result headers %v", allow, e.Headers)
		}
		if e.Body != "data+A+B" || e.ContentLength != 8 {
			t.Errorf("allow=%v: upstream body %q (content-length %d)", allow, e.Body, e.ContentLength)
		}
	}
}

// TestHeadersStopIteration tells Envoy's two header pause modes apart. A
// filter that pauses in on_*_headers and waits for the body (returning
// Continue at its end) never gets it by default (StopAllIterationAndWatermark:
// the stream idles out), and gets it with allow_on_headers_stop_iteration.
func TestHeadersStopIteration(t *testing.T) {
	up, _ := echoServer(t, "up")
	for _, side := range []string{"x-test-hold-headers", "x-test-resp-hold-headers"} {
		for _, allow := range []bool{false, true} {
			g := start(t, setup{
				Filters:  []filterSpec{{Tag: "A", AllowStop: allow}, {Tag: "B"}},
				Clusters: []clusterSpec{{Name: "upstream", Addrs: []string{up}}},
				Options:  Options{StreamIdleTimeout: 300 * time.Millisecond},
			})
			status, _, body := do(t, "POST", g.URL+"/", "", map[string]string{side: "A"}, "payload")
			if !allow {
				if status != 408 || decodeError(t, body).Error.Code != "stream_timeout" {
					t.Errorf("%s default: %d %s, want the stream to stall (408)", side, status, body)
				}
				continue
			}
			if status != 200 {
				t.Fatalf("%s allowed: %d %s", side, status, body)
			}
			if e := decodeEcho(t, body); e.Body != "payload" || e.header("x-chain") != "AB" {
				t.Errorf("%s allowed: upstream saw %+v", side, e)
			}
		}
	}
}

func TestHTTPCallAPISIXProfile(t *testing.T) {
	up, _ := echoServer(t, "up")
	callee, _ := echoServer(t, "callee")
	g := start(t, setup{
		Filters:  []filterSpec{{Tag: "A"}},
		Clusters: []clusterSpec{{Name: "upstream", Addrs: []string{up}}},
		Options:  Options{Profile: harness.ProfileAPISIX},
	})
	status, _, body := do(t, "GET", g.URL+"/", "", map[string]string{"x-test-call": callee, "x-test-call-path": "/direct"}, "")
	if status != 200 || !strings.HasPrefix(body, "status=200 body=") {
		t.Fatalf("%d %q", status, body)
	}
	e := decodeEcho(t, strings.TrimPrefix(body, "status=200 body="))
	if e.Name != "callee" || e.Path != "/direct" || e.Host != "callee.local" || e.Method != "POST" {
		t.Errorf("direct call reached %+v", e)
	}
	status, _, body = do(t, "GET", g.URL+"/", "", map[string]string{"x-test-call": "upstream"}, "")
	if status != 500 || body != "call rejected status=2" {
		t.Errorf("cluster name under apisix: %d %q, want the call refused", status, body)
	}
}

// TestResponseStreaming: each upstream chunk reaches the client before the
// upstream sends the next one, through a filter and without one.
func TestResponseStreaming(t *testing.T) {
	release := make(chan struct{}, 1)
	up := newServer(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/event-stream")
		io.WriteString(w, "data: first\n\n")
		w.(http.Flusher).Flush()
		select {
		case <-release:
		case <-time.After(3 * time.Second):
		case <-r.Context().Done():
			return
		}
		io.WriteString(w, "data: second\n\n")
	}))
	for _, filters := range [][]filterSpec{nil, {{Tag: "A"}, {Tag: "B"}}} {
		g := start(t, setup{Filters: filters, Clusters: []clusterSpec{{Name: "upstream", Addrs: []string{up}}}})
		resp, err := client().Get(g.URL + "/stream")
		if err != nil {
			t.Fatal(err)
		}
		if resp.Header.Get("Content-Type") != "text/event-stream" {
			t.Errorf("content-type %q", resp.Header.Get("Content-Type"))
		}
		rd := bufio.NewReader(resp.Body)
		first := make(chan string, 1)
		go func() {
			line, _ := rd.ReadString('\n')
			first <- line
		}()
		select {
		case line := <-first:
			if line != "data: first\n" {
				t.Errorf("first line %q", line)
			}
		case <-time.After(time.Second):
			t.Errorf("filters=%d: the first chunk was held back until the upstream sent the next", len(filters))
		}
		release <- struct{}{}
		rest, err := io.ReadAll(rd)
		if err != nil || string(rest) != "\ndata: second\n\n" {
			t.Errorf("rest %q %v", rest, err)
		}
		resp.Body.Close()
	}
}

// TestClientDisconnect: a client that goes away mid-response cancels the
// upstream request, and every filter stream still ends (on_log runs).
func TestClientDisconnect(t *testing.T) {
	canceled := make(chan struct{}, 1)
	up := newServer(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.WriteString(w, "data: first\n\n")
		w.(http.Flusher).Flush()
		select {
		case <-r.Context().Done():
			canceled <- struct{}{}
		case <-time.After(5 * time.Second):
		}
	}))
	g := start(t, setup{Filters: []filterSpec{{Tag: "A"}}, Clusters: []clusterSpec{{Name: "upstream", Addrs: []string{up}}}})
	before := metric(t, g, "gwtest.logged_total")
	ctx, cancel := context.WithCancel(context.Background())
	req, _ := http.NewRequestWithContext(ctx, "GET", g.URL+"/", nil)
	resp, err := client().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 5)
	if _, err := io.ReadFull(resp.Body, buf); err != nil {
		t.Fatal(err)
	}
	cancel()
	resp.Body.Close()
	select {
	case <-canceled:
	case <-time.After(3 * time.Second):
		t.Fatal("the upstream request was not canceled after the client left")
	}
	deadline := time.Now().Add(3 * time.Second)
	for metric(t, g, "gwtest.logged_total") == before {
		if time.Now().After(deadline) {
			t.Fatal("proxy_on_log did not run for the abandoned stream")
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func TestAdmin(t *testing.T) {
	up, _ := echoServer(t, "up")
	g := start(t, setup{
		Filters:  []filterSpec{{Tag: "A"}},
		Clusters: []clusterSpec{{Name: "upstream", Addrs: []string{up}}},
		Admin:    true,
	})
	for i := 0; i < 3; i++ {
		do(t, "GET", g.URL+"/", "", nil, "")
	}
	do(t, "GET", g.URL+"/", "", map[string]string{"x-test-local": "404"}, "")
	status, _, body := do(t, "GET", g.Admin+"/ready", "", nil, "")
	if status != 200 || strings.TrimSpace(body) != "LIVE" {
		t.Errorf("/ready: %d %q", status, body)
	}
	// Counters move when a stream ends, just after its response is out: poll.
	wants := []string{
		"# TYPE gwtest_requests_total counter\ngwtest_requests_total 4\n",
		`gateway_http_requests_total{listener="main",code="2xx"} 3`,
		`gateway_http_requests_total{listener="main",code="4xx"} 1`,
	}
	deadline := time.Now().Add(3 * time.Second)
	for {
		status, hdr, body := do(t, "GET", g.Admin+"/stats/prometheus", "", nil, "")
		if status != 200 || !strings.HasPrefix(hdr.Get("Content-Type"), "text/plain") {
			t.Fatalf("/stats/prometheus: %d %v", status, hdr)
		}
		missing := ""
		for _, want := range wants {
			if !strings.Contains(body, want) {
				missing = want
				break
			}
		}
		if missing == "" {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("/stats/prometheus lacks %q:\n%s", missing, body)
		}
		time.Sleep(20 * time.Millisecond)
	}
	if status, _, _ := do(t, "GET", g.Admin+"/nope", "", nil, ""); status != 404 {
		t.Errorf("unknown admin path: %d", status)
	}
}

// TestFilterLogs: proxy_log lines reach the gateway's logger with the
// listener's name and the right level.
func TestFilterLogs(t *testing.T) {
	up, _ := echoServer(t, "up")
	g := start(t, setup{Filters: []filterSpec{{Tag: "A"}}, Clusters: []clusterSpec{{Name: "upstream", Addrs: []string{up}}}})
	do(t, "GET", g.URL+"/logged", "", nil, "")
	logs := g.logs.String()
	if !strings.Contains(logs, `level=INFO msg="request /logged tag=A" vm_id=test`) || !strings.Contains(logs, "listener=main") {
		t.Errorf("logs:\n%s", logs)
	}
}

func TestNewErrors(t *testing.T) {
	up, _ := echoServer(t, "up")
	cases := []struct {
		name string
		s    setup
		edit func(*bootstrap.Config)
		is   error
		want string
	}{
		{
			name: "plugin rejects its configuration",
			s:    setup{Filters: []filterSpec{{Tag: "A"}, {Tag: "reject"}}, Clusters: []clusterSpec{{Name: "upstream", Addrs: []string{up}}}},
			is:   ErrPluginRejected,
			want: `listener main: filter test-reject: plugin configuration rejected: invalid configuration: field "model" is required`,
		},
		{
			name: "missing wasm file",
			s:    setup{Filters: []filterSpec{{Tag: "A"}}, Clusters: []clusterSpec{{Name: "upstream", Addrs: []string{up}}}},
			edit: func(c *bootstrap.Config) { c.Listeners[0].Filters[0].CodePath = "/nonexistent/f.wasm" },
			is:   ErrModule,
			want: "listener main: filter test-A: wasm module: open /nonexistent/f.wasm: no such file or directory",
		},
		{
			name: "not a wasm file",
			s:    setup{Filters: []filterSpec{{Tag: "A"}}, Clusters: []clusterSpec{{Name: "upstream", Addrs: []string{up}}}},
			edit: func(c *bootstrap.Config) { c.Listeners[0].Filters[0].CodePath = "main_test.go" },
			is:   ErrModule,
			want: "listener main: filter test-A: wasm module main_test.go:",
		},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			cfg, err := bootstrap.Parse(tc.s.yaml(t))
			if err != nil {
				t.Fatal(err)
			}
			if tc.edit != nil {
				tc.edit(cfg)
			}
			g, err := New(cfg, Options{Workers: 2, Logger: discardLogger()})
			if err == nil {
				g.Shutdown(context.Background())
				t.Fatal("New succeeded")
			}
			if !errors.Is(err, tc.is) || !strings.HasPrefix(err.Error(), tc.want) {
				t.Errorf("error %q (is %v: %v), want prefix %q", err, tc.is, errors.Is(err, tc.is), tc.want)
			}
		})
	}
	if _, err := New(&bootstrap.Config{}, Options{Profile: "nginx"}); err == nil || !strings.Contains(err.Error(), `unknown profile "nginx"`) {
		t.Errorf("unknown profile: %v", err)
	}
}

func TestStartAddressInUse(t *testing.T) {
	up, _ := echoServer(t, "up")
	g := start(t, setup{Clusters: []clusterSpec{{Name: "upstream", Addrs: []string{up}}}})
	cfg, err := bootstrap.Parse(setup{Clusters: []clusterSpec{{Name: "upstream", Addrs: []string{up}}}}.yaml(t))
	if err != nil {
		t.Fatal(err)
	}
	cfg.Listeners[0].Address = g.ListenerAddr("main").String()
	g2, err := New(cfg, Options{Workers: 1, Logger: discardLogger()})
	if err != nil {
		t.Fatal(err)
	}
	defer g2.Shutdown(context.Background())
	if err := g2.Start(context.Background()); !errors.Is(err, ErrListen) || !strings.HasPrefix(err.Error(), "listener main: listen ") {
		t.Errorf("Start on a used address: %v", err)
	}
}

// TestWorkers: connections are spread over the workers (one VM each), and
// streams on different workers run concurrently.
func TestWorkers(t *testing.T) {
	var inflight, peak atomic.Int32
	up := newServer(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		n := inflight.Add(1)
		for {
			p := peak.Load()
			if n <= p || peak.CompareAndSwap(p, n) {
				break
			}
		}
		time.Sleep(200 * time.Millisecond)
		inflight.Add(-1)
		io.WriteString(w, "ok")
	}))
	g := start(t, setup{
		Filters:  []filterSpec{{Tag: "A"}},
		Clusters: []clusterSpec{{Name: "upstream", Addrs: []string{up}}},
		Options:  Options{Workers: 3},
	})
	done := make(chan string, 6)
	for i := 0; i < 6; i++ {
		go func() {
			_, _, body := do(t, "GET", g.URL+"/", "", nil, "")
			done <- body
		}()
	}
	for i := 0; i < 6; i++ {
		if b := <-done; b != "ok" {
			t.Errorf("body %q", b)
		}
	}
	if peak.Load() < 2 {
		t.Errorf("peak concurrency %d: requests were serialized", peak.Load())
	}
	if len(g.workers) != 3 {
		t.Errorf("%d workers", len(g.workers))
	}
}

func discardLogger() *slog.Logger { return slog.New(slog.NewTextHandler(io.Discard, nil)) }

// TestShutdownCutsStuckRequests: Shutdown waits for in-flight requests only
// until its context is done, then cuts them; their filter streams still end.
func TestShutdownCutsStuckRequests(t *testing.T) {
	up, _ := echoServer(t, "up")
	g := start(t, setup{Filters: []filterSpec{{Tag: "A"}}, Clusters: []clusterSpec{{Name: "upstream", Addrs: []string{up}}}})
	errc := make(chan error, 1)
	go func() {
		req, _ := http.NewRequest("POST", g.URL+"/", strings.NewReader("body"))
		req.Header.Set("x-test-hold-headers", "A") // stalls: Envoy's default header pause
		resp, err := client().Do(req)
		if err == nil {
			resp.Body.Close()
		}
		errc <- err
	}()
	deadline := time.Now().Add(5 * time.Second)
	for metric(t, g, "gwtest.requests_total") == 0 {
		if time.Now().After(deadline) {
			t.Fatal("the request never reached the filter")
		}
		time.Sleep(10 * time.Millisecond)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
	defer cancel()
	t0 := time.Now()
	err := g.Shutdown(ctx)
	if err == nil || !errors.Is(err, context.DeadlineExceeded) || !strings.HasPrefix(err.Error(), "in-flight requests cut") {
		t.Errorf("Shutdown: %v", err)
	}
	if el := time.Since(t0); el > 3*time.Second {
		t.Errorf("Shutdown took %v", el)
	}
	if err := <-errc; err == nil {
		t.Error("the stuck request got a response")
	}
	if n := metric(t, g, "gwtest.logged_total"); n != 1 {
		t.Errorf("on_log ran %d times for the cut stream, want 1", n)
	}
}

// TestRouteTimeoutSpansResponse: the route timeout covers the whole upstream
// response (Envoy's), so a stream still running when it fires is reset;
// timeout 0s disables it.
func TestRouteTimeoutSpansResponse(t *testing.T) {
	up := newServer(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.WriteString(w, "data: first\n\n")
		w.(http.Flusher).Flush()
		select {
		case <-time.After(600 * time.Millisecond):
			io.WriteString(w, "data: last\n\n")
		case <-r.Context().Done():
		}
	}))
	g := start(t, setup{
		Filters: []filterSpec{{Tag: "A"}},
		VHosts: []vhostSpec{{Domains: []string{"*"}, Routes: []routeSpec{
			{Prefix: "/short", Cluster: "upstream", Timeout: "0.2s"},
			{Prefix: "/none", Cluster: "upstream", Timeout: "0s"},
		}}},
		Clusters: []clusterSpec{{Name: "upstream", Addrs: []string{up}}},
	})
	resp, err := client().Get(g.URL + "/short")
	if err != nil {
		t.Fatal(err)
	}
	b, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 || err == nil || string(b) != "data: first\n\n" {
		t.Errorf("timeout after the headers: %d %q %v, want the stream cut after the first chunk", resp.StatusCode, b, err)
	}
	status, _, body := do(t, "GET", g.URL+"/none", "", nil, "")
	if status != 200 || body != "data: first\n\ndata: last\n\n" {
		t.Errorf("timeout 0s: %d %q", status, body)
	}
}

// A VM that traps answers its stream with the filter_trap 500; the worker
// then gets a fresh VM, so later requests are served again.
func TestTrappedVMIsReplaced(t *testing.T) {
	up, _ := echoServer(t, "up")
	g := start(t, setup{
		Filters:  []filterSpec{{Tag: "A"}},
		Clusters: []clusterSpec{{Name: "upstream", Addrs: []string{up}}},
		Admin:    true,
		Options:  Options{Workers: 1},
	})
	t.Cleanup(func() {
		if t.Failed() {
			t.Log(g.logs.String())
		}
	})
	status, _, body := do(t, "GET", g.URL+"/", "", map[string]string{"x-test-trap": "1"}, "")
	if status != 500 || !strings.Contains(body, "filter_trap") {
		t.Fatalf("trap: %d %q", status, body)
	}
	for i := 0; i < 3; i++ {
		status, hdr, _ := do(t, "GET", g.URL+"/", "", nil, "")
		if status != 200 || hdr.Get("X-Upstream") != "up" {
			t.Fatalf("request %d after the trap: %d %v", i, status, hdr)
		}
	}
	_, _, stats := do(t, "GET", g.Admin+"/stats/prometheus", "", nil, "")
	if !strings.Contains(stats, "gateway_vm_reloads_total 1\n") {
		t.Errorf("stats lack one VM reload:\n%s", stats)
	}
	if !strings.Contains(g.logs.String(), "replaced it with a fresh one") {
		t.Errorf("no log line for the reload:\n%s", g.logs.String())
	}
}
