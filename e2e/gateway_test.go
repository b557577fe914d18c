package e2e

import (
	"bufio"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"ai-proxy/harness/bootstrap"
	"ai-proxy/harness/testutil"
)

// Timeouts of the gateway process.
const (
	readyTimeout = 45 * time.Second // compile the module, start the VMs, listen
	stopTimeout  = 20 * time.Second // SIGTERM to exit (the gateway drains in-flight requests for up to 10s)
	callTimeout  = 10 * time.Second // one client request; the slowest expected answer takes ~1.5s
)

// The generated bootstraps of these tests (the gateway runs in the
// repository root, so the default wasm path build/ai-proxy.wasm resolves).
type (
	Bootstrap = bootstrap.Spec
	Listener  = bootstrap.ListenerSpec
	Cluster   = bootstrap.ClusterSpec
)

// closedPort returns a port on 127.0.0.1 where nothing listens and nothing
// will: a privileged port (the kernel never hands those out for port 0, so no
// server of a test can take it later) that refuses connections now.
func closedPort(t *testing.T) int {
	t.Helper()
	for _, p := range []int{1, 9, 47, 79, 101, 401, 701, 901} {
		c, err := net.DialTimeout("tcp", "127.0.0.1:"+strconv.Itoa(p), time.Second)
		if err == nil {
			c.Close()
			continue
		}
		if errors.Is(err, syscall.ECONNREFUSED) {
			return p
		}
	}
	t.Fatal("no closed privileged port on 127.0.0.1")
	return 0
}

// Gateway is a running build/gateway process.
type Gateway struct {
	t    *testing.T
	File string // the bootstrap file
	proc *testutil.Proc
}

// StartGateway writes b to a file, starts build/gateway on it with the extra
// args, from the repository root, and waits until it is ready. Listeners and
// admin of port 0 get free ports from the gateway, which prints them. The
// gateway is stopped at the end of the test, which then checks that it exits
// 0 on SIGTERM.
func StartGateway(t *testing.T, b Bootstrap, args ...string) *Gateway {
	t.Helper()
	checkout.NeedBuild(t)
	g := &Gateway{t: t, File: writeBootstrap(t, b.YAML())}
	if err := launchFile(g, args...); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(g.Stop)
	return g
}

// writeBootstrap checks the generated file against Envoy's schema and the
// gateway's subset (so that a mistake in the test is reported as such) and
// writes it to a temporary file.
func writeBootstrap(t *testing.T, data []byte) string {
	t.Helper()
	if _, err := bootstrap.Parse(data); err != nil {
		t.Fatalf("the test's bootstrap is not valid: %v\n%s", err, data)
	}
	f, err := os.CreateTemp(t.TempDir(), "bootstrap-*.yaml")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.Write(data); err != nil {
		t.Fatal(err)
	}
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
	return f.Name()
}

// launchFile starts build/gateway on g.File and waits until it has printed
// the ready line (after its address lines). The caller registers g.Stop.
func launchFile(g *Gateway, args ...string) error {
	cmd := exec.Command(checkout.Gateway, append([]string{"-config", g.File}, args...)...)
	cmd.Dir = checkout.Root
	p, err := testutil.StartProc(cmd)
	if err != nil {
		return err
	}
	g.proc = p
	if err := p.WaitReady(readyTimeout); err != nil {
		if !errors.Is(err, testutil.ErrExited) {
			p.Kill()
		}
		return fmt.Errorf("%v; output:\n%s", err, p.Output())
	}
	return nil
}

// url is the base URL of the address line "gateway: NAME on ADDR" the
// gateway printed.
func (g *Gateway) url(name string) string {
	g.t.Helper()
	addr, ok := g.proc.Addr(name)
	if !ok {
		g.t.Fatalf("the gateway printed no address for %s", name)
	}
	return "http://" + addr
}

// URL is the base URL of the listener named name.
func (g *Gateway) URL(name string) string { return g.url("listener " + name) }

// AdminURL is the base URL of the admin server.
func (g *Gateway) AdminURL() string { return g.url("admin") }

// Output is what the gateway printed so far (stdout and stderr).
func (g *Gateway) Output() string { return g.proc.Output() }

// Running reports whether the process is still alive.
func (g *Gateway) Running() bool { return g.proc.Running() }

// Pid is the process's id.
func (g *Gateway) Pid() int { return g.proc.Cmd.Process.Pid }

// Stop sends SIGTERM and checks that the gateway exits 0 in time. It runs
// once, at the end of the test that started the gateway.
func (g *Gateway) Stop() {
	t := g.t
	t.Helper()
	defer func() {
		if t.Failed() {
			t.Logf("gateway output:\n%s", g.proc.Output())
		}
	}()
	if !g.Running() {
		t.Errorf("gateway exited by itself with code %d", g.proc.ExitCode())
		return
	}
	if err := g.proc.Stop(stopTimeout); err != nil {
		t.Errorf("stopping the gateway: %v", err)
	} else if code := g.proc.ExitCode(); code != 0 {
		t.Errorf("gateway exited with code %d after SIGTERM, want 0", code)
	}
}

// runToExit runs build/gateway on the bootstrap data with the extra args and
// returns its exit code and output once it exits. A gateway that gets ready
// instead is killed and the test fails.
func runToExit(t *testing.T, data []byte, args ...string) (int, string) {
	t.Helper()
	checkout.NeedBuild(t)
	f := filepath.Join(t.TempDir(), "bootstrap.yaml")
	if err := os.WriteFile(f, data, 0o600); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(checkout.Gateway, append([]string{"-config", f}, args...)...)
	cmd.Dir = checkout.Root
	p, err := testutil.StartProc(cmd)
	if err != nil {
		t.Fatal(err)
	}
	switch err := p.WaitReady(readyTimeout); {
	case errors.Is(err, testutil.ErrExited):
		return p.ExitCode(), p.Output()
	case err == nil:
		p.Kill()
		t.Fatalf("gateway got ready, want it to refuse the configuration; output:\n%s", p.Output())
	default:
		p.Kill()
		t.Fatalf("gateway neither exited nor got ready in %v; output:\n%s", readyTimeout, p.Output())
	}
	return 0, ""
}

// wantRefused runs build/gateway on the bootstrap data and checks that it
// exits non-zero with a last line that names mention (case-insensitively).
func wantRefused(t *testing.T, data []byte, mention string) {
	t.Helper()
	code, out := runToExit(t, data)
	if code == 0 {
		t.Fatalf("gateway exited 0, want non-zero; output:\n%s", out)
	}
	last := lastLine(out)
	if last == "" {
		t.Fatalf("no reason printed")
	}
	if !strings.Contains(strings.ToLower(last), mention) {
		t.Errorf("last line %q does not name %q; output:\n%s", last, mention, out)
	}
}

// lastLine is the last non-empty line of s.
func lastLine(s string) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	for i := len(lines) - 1; i >= 0; i-- {
		if strings.TrimSpace(lines[i]) != "" {
			return lines[i]
		}
	}
	return ""
}

// Call is one client request.
type Call struct {
	Method string // "": POST
	Path   string // "": /anything
	Host   string // "": the listener's address
	Header [][2]string
	Body   string
}

// Reply is what the client got.
type Reply struct {
	Status  int
	Header  http.Header
	Body    []byte
	Elapsed time.Duration
}

// client sends requests as they are written: no connection reuse, no added
// Accept-Encoding, no proxy.
var client = &http.Client{
	Transport: &http.Transport{Proxy: nil, DisableKeepAlives: true, DisableCompression: true},
	Timeout:   callTimeout,
}

// hung records the listeners (base URLs) where a request got no answer in
// callTimeout: later requests there fail at once instead of waiting again.
var hung sync.Map

// newRequest builds the request of c against base.
func newRequest(t *testing.T, base string, c Call) *http.Request {
	t.Helper()
	method, path := c.Method, c.Path
	if method == "" {
		method = http.MethodPost
	}
	if path == "" {
		path = "/anything"
	}
	var body io.Reader
	if c.Body != "" {
		body = strings.NewReader(c.Body)
	}
	req, err := http.NewRequest(method, base+path, body)
	if err != nil {
		t.Fatal(err)
	}
	if c.Host != "" {
		req.Host = c.Host
	}
	for _, h := range c.Header {
		req.Header.Add(h[0], h[1])
	}
	if req.Header.Get("User-Agent") == "" {
		req.Header.Set("User-Agent", "ai-proxy-e2e")
	}
	return req
}

// send makes the call against base (a gateway listener URL).
func send(t *testing.T, base string, c Call) Reply {
	t.Helper()
	req := newRequest(t, base, c)
	what := req.Method + " " + req.URL.String()
	if _, ok := hung.Load(base); ok {
		t.Fatalf("%s: not sent, an earlier request to this listener got no answer in %v", what, callTimeout)
	}
	t0 := time.Now()
	resp, err := client.Do(req)
	if err != nil {
		var ne net.Error
		if errors.As(err, &ne) && ne.Timeout() {
			hung.Store(base, true)
		}
		t.Fatalf("%s: %v", what, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("%s: reading the body: %v", what, err)
	}
	return Reply{Status: resp.StatusCode, Header: resp.Header, Body: b, Elapsed: time.Since(t0)}
}

// sendEarly is send for a request the gateway may answer before it has read
// the whole body (413), closing the connection after its answer: the body is
// written while the answer is read, so that a failed write (EPIPE, reset)
// does not hide the answer, as it can with http.Client.
func sendEarly(t *testing.T, base string, c Call) Reply {
	t.Helper()
	req := newRequest(t, base, c)
	req.Close = true
	what := req.Method + " " + req.URL.String()
	conn, err := net.DialTimeout("tcp", req.URL.Host, 2*time.Second)
	if err != nil {
		t.Fatalf("%s: %v", what, err)
	}
	defer conn.Close()
	_ = conn.SetDeadline(time.Now().Add(callTimeout))
	t0 := time.Now()
	wrote := make(chan error, 1)
	go func() { wrote <- req.Write(conn) }()
	resp, err := http.ReadResponse(bufio.NewReader(conn), req)
	if err != nil {
		t.Fatalf("%s: no answer: %v (writing the request: %v)", what, err, <-wrote)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("%s: reading the body: %v", what, err)
	}
	return Reply{Status: resp.StatusCode, Header: resp.Header, Body: b, Elapsed: time.Since(t0)}
}

// curl is the call `curl URL -X POST -H "Content-Type: application/json"
// [-H "Host: host"] -d body` makes (curl 8.6.0's default headers).
func curl(host, body string) Call {
	return Call{
		Host: host,
		Header: [][2]string{
			{"User-Agent", "curl/8.6.0"},
			{"Accept", "*/*"},
			{"Content-Type", "application/json"},
		},
		Body: body,
	}
}

// APIError is the OpenAI-style error body.
type APIError struct {
	Error struct {
		Message string `json:"message"`
		Type    string `json:"type"`
		Code    any    `json:"code"`
	} `json:"error"`
}

// wantError checks that r is an OpenAI-style JSON error with the status and
// code, and the type when typ is not "".
func wantError(t *testing.T, r Reply, status int, code, typ string) {
	t.Helper()
	if r.Status != status {
		t.Errorf("status %d, want %d; body %s", r.Status, status, r.Body)
	}
	if ct := r.Header.Get("Content-Type"); !strings.HasPrefix(ct, "application/json") {
		t.Errorf("error content-type %q, want application/json", ct)
	}
	var e APIError
	if err := json.Unmarshal(r.Body, &e); err != nil {
		t.Fatalf("error body is not JSON: %v: %s", err, r.Body)
	}
	if e.Error.Message == "" {
		t.Errorf("error without a message: %s", r.Body)
	}
	if got := fmt.Sprint(e.Error.Code); got != code {
		t.Errorf("error code %q, want %q; body %s", got, code, r.Body)
	}
	if typ != "" && e.Error.Type != typ {
		t.Errorf("error type %q, want %q; body %s", e.Error.Type, typ, r.Body)
	}
}

// fields decodes a JSON object keeping each value's bytes as they were.
func fields(t *testing.T, what string, b []byte) map[string]json.RawMessage {
	t.Helper()
	var m map[string]json.RawMessage
	if err := json.Unmarshal(b, &m); err != nil {
		t.Fatalf("%s is not a JSON object: %v: %s", what, err, b)
	}
	return m
}

// number decodes a JSON number.
func number(t *testing.T, what string, raw json.RawMessage) float64 {
	t.Helper()
	var f float64
	if err := json.Unmarshal(raw, &f); err != nil {
		t.Fatalf("%s = %s is not a number", what, raw)
	}
	return f
}

// str decodes a JSON string.
func str(t *testing.T, what string, raw json.RawMessage) string {
	t.Helper()
	var s string
	if err := json.Unmarshal(raw, &s); err != nil {
		t.Fatalf("%s = %s is not a string", what, raw)
	}
	return s
}
