package gateway

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"net/http"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"ai-proxy/harness/bootstrap"
	"ai-proxy/harness/testutil"
)

// moduleServer serves the test filter at /modules/filter.wasm; the first
// failFirst requests get a 503. It records the Host and URI of each request.
type moduleServer struct {
	addr string
	mu   sync.Mutex
	reqs []string // "host uri"
}

func (m *moduleServer) requests() []string {
	m.mu.Lock()
	defer m.mu.Unlock()
	return append([]string(nil), m.reqs...)
}

func startModuleServer(t *testing.T, failFirst int) (*moduleServer, string) {
	t.Helper()
	wasm, err := os.ReadFile(filterWasm)
	if err != nil {
		t.Fatal(err)
	}
	sum := sha256.Sum256(wasm)
	m := &moduleServer{}
	m.addr = newServer(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		m.mu.Lock()
		m.reqs = append(m.reqs, r.Host+" "+r.RequestURI)
		n := len(m.reqs)
		m.mu.Unlock()
		switch {
		case n <= failFirst:
			http.Error(w, "try later", http.StatusServiceUnavailable)
		case r.URL.Path != "/modules/filter.wasm":
			http.NotFound(w, r)
		default:
			w.Write(wasm)
		}
	}))
	return m, hex.EncodeToString(sum[:])
}

// remoteCode is a vm_config.code fetching path from the "modules" cluster.
func remoteCode(path, sha string, retry map[string]any) map[string]any {
	r := map[string]any{
		"http_uri": map[string]any{"uri": "http://modules.example.com" + path, "cluster": "modules", "timeout": "5s"},
		"sha256":   sha,
	}
	if retry != nil {
		r["retry_policy"] = retry
	}
	return map[string]any{"remote": r}
}

// TestRemoteCode: two filters with the same remote code on two workers;
// the module is fetched once, through the named cluster, with the URI's host
// as Host, and the filters run.
func TestRemoteCode(t *testing.T) {
	up, _ := echoServer(t, "up")
	mods, sum := startModuleServer(t, 0)
	code := remoteCode("/modules/filter.wasm?v=1", strings.ToUpper(sum), nil)
	g := start(t, setup{
		Filters:  []filterSpec{{Tag: "A", Code: code}, {Tag: "B", Code: code}},
		Clusters: []clusterSpec{{Name: "upstream", Addrs: []string{up}}, {Name: "modules", Addrs: []string{mods.addr}}},
	})
	if got := mods.requests(); len(got) != 1 || got[0] != "modules.example.com /modules/filter.wasm?v=1" {
		t.Errorf("module requests %q, want one GET /modules/filter.wasm?v=1 with Host modules.example.com", got)
	}
	status, _, body := do(t, "POST", g.URL+"/", "", map[string]string{"x-test-body": "append"}, "hi")
	if e := decodeEcho(t, body); status != 200 || e.Body != "hi+A+B" || e.header("x-chain") != "AB" {
		t.Errorf("%d: upstream got body %q x-chain %q, want the two remote filters to run", status, e.Body, e.header("x-chain"))
	}
}

// TestRemoteCodeRetry: a failed attempt is retried after the back-off.
func TestRemoteCodeRetry(t *testing.T) {
	up, _ := echoServer(t, "up")
	mods, sum := startModuleServer(t, 2)
	start(t, setup{
		Filters: []filterSpec{{Tag: "A", Code: remoteCode("/modules/filter.wasm", sum, map[string]any{
			"num_retries": 2, "retry_back_off": map[string]any{"base_interval": "0.01s"}})}},
		Clusters: []clusterSpec{{Name: "upstream", Addrs: []string{up}}, {Name: "modules", Addrs: []string{mods.addr}}},
	})
	if n := len(mods.requests()); n != 3 {
		t.Errorf("%d module requests, want 3 (two 503s, then the module)", n)
	}
}

func TestRemoteCodeErrors(t *testing.T) {
	up, _ := echoServer(t, "up")
	mods, sum := startModuleServer(t, 0)
	const wrong = "0000000000000000000000000000000000000000000000000000000000000000"
	noRetry := map[string]any{"num_retries": 0}
	cases := []struct {
		name     string
		code     map[string]any
		modules  string // the modules cluster's endpoint
		is       error
		want     string // the whole error, or its prefix when it ends with "…"
		requests int
	}{
		{
			name: "sha256 mismatch", code: remoteCode("/modules/filter.wasm", wrong, noRetry), modules: mods.addr,
			is:       ErrSHA256Mismatch,
			want:     "listener main: filter test-A: wasm module http://modules.example.com/modules/filter.wasm: sha256 mismatch: expected " + wrong + ", got " + sum + " (",
			requests: 1,
		},
		{
			name: "sha256 mismatch after retries", code: remoteCode("/modules/filter.wasm", wrong, map[string]any{
				"num_retries": 1, "retry_back_off": map[string]any{"base_interval": "0.001s"}}), modules: mods.addr,
			is:       ErrSHA256Mismatch,
			want:     "listener main: filter test-A: wasm module http://modules.example.com/modules/filter.wasm: sha256 mismatch: expected " + wrong + ", got " + sum,
			requests: 2,
		},
		{
			name: "not found", code: remoteCode("/nope.wasm", sum, noRetry), modules: mods.addr,
			is:       ErrRemoteFetch,
			want:     "listener main: filter test-A: wasm module http://modules.example.com/nope.wasm: remote code fetch failed: status 404",
			requests: 1,
		},
		{
			name: "unreachable", code: remoteCode("/modules/filter.wasm", sum, noRetry), modules: testutil.FreeAddr(t),
			is:   ErrRemoteFetch,
			want: "listener main: filter test-A: wasm module http://modules.example.com/modules/filter.wasm: remote code fetch failed: ",
		},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			before := len(mods.requests())
			s := setup{
				Filters:  []filterSpec{{Tag: "A", Code: tc.code}},
				Clusters: []clusterSpec{{Name: "upstream", Addrs: []string{up}}, {Name: "modules", Addrs: []string{tc.modules}}},
			}
			cfg, err := bootstrap.Parse(s.yaml(t))
			if err != nil {
				t.Fatal(err)
			}
			start := time.Now()
			g, err := New(cfg, Options{Workers: 2, Logger: discardLogger()})
			if err == nil {
				g.Shutdown(context.Background())
				t.Fatal("New succeeded")
			}
			if !errors.Is(err, ErrModule) || !errors.Is(err, tc.is) || !strings.HasPrefix(err.Error(), tc.want) {
				t.Errorf("error %q\nwant ErrModule, %v, and the prefix %q", err, tc.is, tc.want)
			}
			if strings.ContainsAny(err.Error(), "\n\r") {
				t.Errorf("error is not one line: %q", err)
			}
			if n := len(mods.requests()) - before; n != tc.requests {
				t.Errorf("%d module requests, want %d", n, tc.requests)
			}
			if d := time.Since(start); d > 5*time.Second {
				t.Errorf("New took %v", d)
			}
		})
	}
}

func TestBackoff(t *testing.T) {
	base, max := 100*time.Millisecond, 500*time.Millisecond
	for n, ceiling := range []time.Duration{100 * time.Millisecond, 300 * time.Millisecond, 500 * time.Millisecond, 500 * time.Millisecond} {
		for i := 0; i < 50; i++ {
			if d := backoff(n, base, max); d < 0 || d >= ceiling {
				t.Fatalf("backoff(%d) = %v, want in [0, %v)", n, d, ceiling)
			}
		}
	}
	if d := backoff(100, base, max); d < 0 || d >= max {
		t.Errorf("backoff(100) = %v", d)
	}
	if d := backoff(0, 0, 0); d != 0 {
		t.Errorf("backoff with no base = %v", d)
	}
}
