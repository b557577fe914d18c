package gateway

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"sigs.k8s.io/yaml"

	"ai-proxy/harness/bootstrap"
	"ai-proxy/harness/testutil"
)

// filterWasm is testdata/filter built once for the package.
var filterWasm string

func TestMain(m *testing.M) {
	os.Exit(runTests(m))
}

func runTests(m *testing.M) int {
	dir, err := os.MkdirTemp("", "gateway-test-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	defer os.RemoveAll(dir)
	filterWasm = filepath.Join(dir, "filter.wasm")
	if err := testutil.BuildWasm("./testdata/filter", filterWasm); err != nil {
		fmt.Fprintln(os.Stderr, "build test filter:", err)
		return 1
	}
	return m.Run()
}

// --- bootstrap generation ----------------------------------------------------

// filterSpec is one wasm filter of the test listener: the test filter with
// Tag as its plugin configuration.
type filterSpec struct {
	Tag       string
	AllowStop bool           // allow_on_headers_stop_iteration
	Code      map[string]any // vm_config.code; nil: local filterWasm
}

type routeSpec struct {
	Prefix, Path, Cluster string
	Timeout               string // "" → Envoy's default
}

type vhostSpec struct {
	Domains []string
	Routes  []routeSpec
}

type clusterSpec struct {
	Name    string
	Addrs   []string // host:port endpoints
	Type    string   // default STATIC
	SNI     string
	CAFile  string
	TLS     bool
	Connect string // connect_timeout
}

// setup describes one test gateway: a listener "main" on 127.0.0.1:0 and,
// when Admin is set, an admin on 127.0.0.1:0.
type setup struct {
	Filters     []filterSpec
	VHosts      []vhostSpec // default: "*" → prefix "/" → cluster "upstream"
	Clusters    []clusterSpec
	BufferLimit int
	Admin       bool
	Options     Options
}

func (s setup) document() map[string]any {
	var httpFilters []any
	for _, f := range s.Filters {
		code := f.Code
		if code == nil {
			code = map[string]any{"local": map[string]any{"filename": filterWasm}}
		}
		cfg := map[string]any{
			"name":    "test-" + f.Tag,
			"root_id": "root",
			"configuration": map[string]any{
				"@type": "type.googleapis.com/google.protobuf.StringValue",
				"value": f.Tag,
			},
			"vm_config": map[string]any{
				"vm_id":   "test",
				"runtime": "envoy.wasm.runtime.v8",
				"code":    code,
			},
		}
		if f.AllowStop {
			cfg["allow_on_headers_stop_iteration"] = true
		}
		httpFilters = append(httpFilters, map[string]any{
			"name": "envoy.filters.http.wasm",
			"typed_config": map[string]any{
				"@type":  "type.googleapis.com/envoy.extensions.filters.http.wasm.v3.Wasm",
				"config": cfg,
			},
		})
	}
	httpFilters = append(httpFilters, map[string]any{
		"name":         "envoy.filters.http.router",
		"typed_config": map[string]any{"@type": "type.googleapis.com/envoy.extensions.filters.http.router.v3.Router"},
	})
	vhosts := s.VHosts
	if vhosts == nil {
		vhosts = []vhostSpec{{Domains: []string{"*"}, Routes: []routeSpec{{Prefix: "/", Cluster: "upstream"}}}}
	}
	var vhs []any
	for i, vh := range vhosts {
		var routes []any
		for _, r := range vh.Routes {
			match := map[string]any{}
			if r.Path != "" {
				match["path"] = r.Path
			} else {
				match["prefix"] = r.Prefix
			}
			action := map[string]any{"cluster": r.Cluster}
			if r.Timeout != "" {
				action["timeout"] = r.Timeout
			}
			routes = append(routes, map[string]any{"match": match, "route": action})
		}
		vhs = append(vhs, map[string]any{"name": "vh" + strconv.Itoa(i), "domains": vh.Domains, "routes": routes})
	}
	var clusters []any
	for _, c := range s.Clusters {
		var eps []any
		for _, a := range c.Addrs {
			host, port, _ := net.SplitHostPort(a)
			p, _ := strconv.Atoi(port)
			eps = append(eps, map[string]any{"endpoint": map[string]any{"address": map[string]any{
				"socket_address": map[string]any{"address": host, "port_value": p}}}})
		}
		cl := map[string]any{
			"name": c.Name,
			"type": "STATIC",
			"load_assignment": map[string]any{
				"cluster_name": c.Name,
				"endpoints":    []any{map[string]any{"lb_endpoints": eps}},
			},
		}
		if c.Type != "" {
			cl["type"] = c.Type
		}
		if c.Connect != "" {
			cl["connect_timeout"] = c.Connect
		}
		if c.TLS {
			tc := map[string]any{"@type": "type.googleapis.com/envoy.extensions.transport_sockets.tls.v3.UpstreamTlsContext"}
			if c.SNI != "" {
				tc["sni"] = c.SNI
			}
			if c.CAFile != "" {
				tc["common_tls_context"] = map[string]any{"validation_context": map[string]any{
					"trusted_ca": map[string]any{"filename": c.CAFile}}}
			}
			cl["transport_socket"] = map[string]any{"name": "envoy.transport_sockets.tls", "typed_config": tc}
		}
		clusters = append(clusters, cl)
	}
	listener := map[string]any{
		"name":    "main",
		"address": map[string]any{"socket_address": map[string]any{"address": "127.0.0.1", "port_value": 0}},
		"filter_chains": []any{map[string]any{"filters": []any{map[string]any{
			"name": "envoy.filters.network.http_connection_manager",
			"typed_config": map[string]any{
				"@type":        "type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager",
				"stat_prefix":  "main",
				"route_config": map[string]any{"virtual_hosts": vhs},
				"http_filters": httpFilters,
			},
		}}}},
	}
	if s.BufferLimit > 0 {
		listener["per_connection_buffer_limit_bytes"] = s.BufferLimit
	}
	doc := map[string]any{"static_resources": map[string]any{"listeners": []any{listener}, "clusters": clusters}}
	if s.Admin {
		doc["admin"] = map[string]any{"address": map[string]any{"socket_address": map[string]any{"address": "127.0.0.1", "port_value": 0}}}
	}
	return doc
}

func (s setup) yaml(t testing.TB) []byte {
	t.Helper()
	b, err := yaml.Marshal(s.document())
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// testGateway is a started gateway with its listener's base URL.
type testGateway struct {
	*Gateway
	URL   string // http://127.0.0.1:port of listener "main"
	Admin string // admin base URL, "" without admin
	logs  *syncBuffer
}

// start builds, starts and (at cleanup) shuts down the gateway of s.
func start(t testing.TB, s setup) *testGateway {
	t.Helper()
	cfg, err := bootstrap.Parse(s.yaml(t))
	if err != nil {
		t.Fatalf("bootstrap: %v", err)
	}
	logs := &syncBuffer{}
	opts := s.Options
	if opts.Workers == 0 {
		opts.Workers = 2
	}
	opts.Logger = slog.New(slog.NewTextHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	g, err := New(cfg, opts)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	if err := g.Start(context.Background()); err != nil {
		t.Fatalf("Start: %v", err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		if err := g.Shutdown(ctx); err != nil {
			t.Errorf("Shutdown: %v", err)
		}
	})
	tg := &testGateway{Gateway: g, URL: "http://" + g.ListenerAddr("main").String(), logs: logs}
	if a := g.AdminAddr(); a != nil {
		tg.Admin = "http://" + a.String()
	}
	return tg
}

// client is a plain HTTP client: no compression, no redirects, no pooling
// surprises between tests.
func client() *http.Client {
	return &http.Client{
		Transport: &http.Transport{DisableCompression: true},
		CheckRedirect: func(*http.Request, []*http.Request) error {
			return http.ErrUseLastResponse
		},
		Timeout: 20 * time.Second,
	}
}

// do sends a request and returns the status, headers and body.
func do(t testing.TB, method, url, host string, headers map[string]string, body string) (int, http.Header, string) {
	t.Helper()
	var rd io.Reader
	if body != "" {
		rd = strings.NewReader(body)
	}
	req, err := http.NewRequest(method, url, rd)
	if err != nil {
		t.Fatal(err)
	}
	if host != "" {
		req.Host = host
	}
	for k, v := range headers {
		req.Header.Set(k, v)
	}
	resp, err := client().Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, url, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("read body: %v", err)
	}
	return resp.StatusCode, resp.Header, string(b)
}

// echo is what the echo upstream saw.
type echo struct {
	Name             string              `json:"name"`
	Method           string              `json:"method"`
	Path             string              `json:"path"`
	Host             string              `json:"host"`
	Headers          map[string][]string `json:"headers"`
	Body             string              `json:"body"`
	ContentLength    int64               `json:"content_length"`
	TransferEncoding []string            `json:"transfer_encoding"`
}

func (e echo) header(name string) string {
	if v := e.Headers[http.CanonicalHeaderKey(name)]; len(v) > 0 {
		return v[0]
	}
	return ""
}

// echoServer answers every request with the echo of it (JSON).
func echoServer(t testing.TB, name string) (addr string, hits func() int) {
	t.Helper()
	var mu sync.Mutex
	n := 0
	srv := newServer(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		n++
		mu.Unlock()
		b, _ := io.ReadAll(r.Body)
		e := echo{Name: name, Method: r.Method, Path: r.RequestURI, Host: r.Host, Headers: r.Header,
			Body: string(b), ContentLength: r.ContentLength, TransferEncoding: r.TransferEncoding}
		w.Header().Set("Content-Type", "application/json")
		w.Header().Set("X-Upstream", name)
		json.NewEncoder(w).Encode(e)
	}))
	return srv, func() int {
		mu.Lock()
		defer mu.Unlock()
		return n
	}
}

// newServer serves h on 127.0.0.1 until the test ends and returns host:port.
func newServer(t testing.TB, h http.Handler) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: h}
	go srv.Serve(ln)
	t.Cleanup(func() { srv.Close() })
	return ln.Addr().String()
}

func decodeEcho(t testing.TB, body string) echo {
	t.Helper()
	var e echo
	if err := json.Unmarshal([]byte(body), &e); err != nil {
		t.Fatalf("upstream echo %q: %v", body, err)
	}
	return e
}

// metric returns a filter metric's value.
func metric(t testing.TB, g *testGateway, name string) int64 {
	t.Helper()
	v, ok := g.Metrics().Value(name)
	if !ok {
		t.Fatalf("metric %s not defined", name)
	}
	return v
}
