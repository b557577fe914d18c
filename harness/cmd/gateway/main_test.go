package main

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"ai-proxy/harness/testutil"
)

// Built once in TestMain: the command and the gateway tests' wasm filter.
var (
	binary string
	filter string
)

func TestMain(m *testing.M) {
	os.Exit(runTests(m))
}

func runTests(m *testing.M) int {
	dir, err := os.MkdirTemp("", "gateway-cli-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	defer os.RemoveAll(dir)
	binary = filepath.Join(dir, "gateway")
	filter = filepath.Join(dir, "filter.wasm")
	if err := testutil.Build(".", binary); err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	if err := testutil.BuildWasm("../../gateway/testdata/filter", filter); err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	return m.Run()
}

// bootstrapYAML is a bootstrap with one listener "main" on a free port whose
// wasm filter has the given plugin configuration, routing to upstream.
func bootstrapYAML(config, upstream string) string {
	host, port, _ := strings.Cut(upstream, ":")
	return `
admin:
  address: {socket_address: {address: 127.0.0.1, port_value: 0}}
static_resources:
  listeners:
  - name: main
    address: {socket_address: {address: 127.0.0.1, port_value: 0}}
    filter_chains:
    - filters:
      - name: envoy.filters.network.http_connection_manager
        typed_config:
          "@type": type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager
          stat_prefix: main
          route_config:
            virtual_hosts:
            - name: all
              domains: ["*"]
              routes:
              - match: {prefix: /}
                route: {cluster: upstream}
          http_filters:
          - name: envoy.filters.http.wasm
            typed_config:
              "@type": type.googleapis.com/envoy.extensions.filters.http.wasm.v3.Wasm
              config:
                name: test
                configuration:
                  "@type": type.googleapis.com/google.protobuf.StringValue
                  value: ` + config + `
                vm_config:
                  code: {local: {filename: ` + filter + `}}
          - name: envoy.filters.http.router
            typed_config:
              "@type": type.googleapis.com/envoy.extensions.filters.http.router.v3.Router
  clusters:
  - name: upstream
    load_assignment:
      cluster_name: upstream
      endpoints:
      - lb_endpoints:
        - endpoint: {address: {socket_address: {address: ` + host + `, port_value: ` + port + `}}}
`
}

func writeFile(t *testing.T, name, data string) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), name)
	if err := os.WriteFile(path, []byte(data), 0o644); err != nil {
		t.Fatal(err)
	}
	return path
}

func lastLine(s string) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	return lines[len(lines)-1]
}

func TestExitReasons(t *testing.T) {
	valid := bootstrapYAML("A", "127.0.0.1:1")
	unsupported := strings.Replace(valid, "match: {prefix: /}", "match: {safe_regex: {regex: /.*}}", 1)
	rejected := bootstrapYAML("reject", "127.0.0.1:1")
	cases := []struct {
		name string
		args []string
		code int
		line *regexp.Regexp // the last line of stderr
	}{
		{"no config", nil, 2, regexp.MustCompile(`^gateway: -config FILE is required$`)},
		{"unknown flag", []string{"-nope"}, 2, regexp.MustCompile(`^gateway: flag provided but not defined: -nope$`)},
		{"bad workers", []string{"-config", "x", "-workers", "-1"}, 2, regexp.MustCompile(`^gateway: -workers must not be negative$`)},
		{"missing file", []string{"-config", "/nonexistent/envoy.yaml"}, 1,
			regexp.MustCompile(`^gateway: open /nonexistent/envoy.yaml: no such file or directory$`)},
		{"invalid yaml", []string{"-config", writeFile(t, "bad.yaml", "static_resources: [")}, 1,
			regexp.MustCompile(`^gateway: .*/bad.yaml: .*yaml.*$`)},
		{"schema violation", []string{"-config", writeFile(t, "port.yaml", strings.Replace(valid, "port_value: 0}}\n    filter_chains", "port_value: 70000}}\n    filter_chains", 1))}, 1,
			regexp.MustCompile(`^gateway: .*/port.yaml: static_resources.listeners\[0\].address.socket_address.port_value: schema: value must be less than or equal to 65535$`)},
		{"unsupported field", []string{"-config", writeFile(t, "regex.yaml", unsupported)}, 1,
			regexp.MustCompile(`^gateway: .*/regex.yaml: static_resources.listeners\[0\].filter_chains\[0\].filters\[0\].typed_config.route_config.virtual_hosts\[0\].routes\[0\].match: field "safe_regex" is not supported$`)},
		{"plugin configuration rejected", []string{"-config", writeFile(t, "reject.yaml", rejected)}, 1,
			regexp.MustCompile(`^gateway: listener main: filter test: plugin configuration rejected: invalid configuration: field "model" is required$`)},
		{"unknown profile", []string{"-config", writeFile(t, "ok.yaml", valid), "-profile", "nginx"}, 1,
			regexp.MustCompile(`^gateway: unknown profile "nginx" \(envoy, apisix or strict-wasi\)$`)},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			cmd := exec.Command(binary, tc.args...)
			var stderr strings.Builder
			cmd.Stderr = &stderr
			done := make(chan error, 1)
			if err := cmd.Start(); err != nil {
				t.Fatal(err)
			}
			go func() { done <- cmd.Wait() }()
			select {
			case <-done:
			case <-time.After(30 * time.Second):
				cmd.Process.Kill()
				t.Fatalf("still running; stderr:\n%s", stderr.String())
			}
			if code := cmd.ProcessState.ExitCode(); code != tc.code {
				t.Errorf("exit code %d, want %d; stderr:\n%s", code, tc.code, stderr.String())
			}
			if line := lastLine(stderr.String()); !tc.line.MatchString(line) {
				t.Errorf("last line %q, want %v", line, tc.line)
			}
		})
	}
}

// startReady starts cmd and waits until it is ready. It is killed at the
// end of the test if it still runs.
func startReady(t *testing.T, cmd *exec.Cmd) *testutil.Proc {
	t.Helper()
	p, err := testutil.StartProc(cmd)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(p.Kill)
	if err := p.WaitReady(30 * time.Second); err != nil {
		t.Fatalf("%v; stderr:\n%s", err, p.Output())
	}
	return p
}

// addr is the address of p's line "gateway: NAME on ADDR".
func addr(t *testing.T, p *testutil.Proc, name string) string {
	t.Helper()
	a, ok := p.Addr(name)
	if !ok {
		t.Fatalf("no %q address line; stderr:\n%s", name, p.Output())
	}
	return a
}

func TestServeAndStop(t *testing.T) {
	up := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.WriteString(w, "upstream saw x-chain="+r.Header.Get("X-Chain"))
	}))
	defer up.Close()
	cfg := writeFile(t, "ok.yaml", bootstrapYAML("A", strings.TrimPrefix(up.URL, "http://")))
	cmd := exec.Command(binary, "-config", cfg, "-workers", "2", "-mock-llm", "127.0.0.1:0")
	p := startReady(t, cmd)
	addrs := map[string]string{}
	for _, k := range []string{"listener main", "admin", "mock LLM"} {
		addrs[k] = addr(t, p, k)
	}
	get := func(url string) (int, string) {
		resp, err := http.Get(url)
		if err != nil {
			t.Fatalf("GET %s: %v", url, err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}
	if status, body := get("http://" + addrs["listener main"] + "/x"); status != 200 || body != "upstream saw x-chain=A" {
		t.Errorf("through the gateway: %d %q", status, body)
	}
	if status, body := get("http://" + addrs["admin"] + "/ready"); status != 200 || strings.TrimSpace(body) != "LIVE" {
		t.Errorf("/ready: %d %q", status, body)
	}
	resp, err := http.Post("http://"+addrs["mock LLM"]+"/v1/chat/completions", "application/json",
		strings.NewReader(`{"model":"gpt-4","messages":[{"role":"user","content":"hi"}]}`))
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 || !strings.Contains(string(b), `"chat.completion"`) {
		t.Errorf("mock LLM: %d %s", resp.StatusCode, b)
	}

	if err := p.Stop(15 * time.Second); err != nil {
		t.Fatalf("%v; stderr:\n%s", err, p.Output())
	}
	if code := p.ExitCode(); code != 0 {
		t.Errorf("exit code %d after SIGTERM, want 0; stderr:\n%s", code, p.Output())
	}
	if !strings.Contains(p.Output(), "gateway: stopped\n") {
		t.Errorf("no stop line; stderr:\n%s", p.Output())
	}
}

func TestAccessLogFlag(t *testing.T) {
	up := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.WriteString(w, "ok")
	}))
	defer up.Close()
	cfg := writeFile(t, "ok.yaml", bootstrapYAML("A", strings.TrimPrefix(up.URL, "http://")))
	cases := []struct {
		name  string
		args  []string
		where string // "stderr", "stdout", "file" or "" (nowhere)
	}{
		{"default is stderr", nil, "stderr"},
		{"dash is stdout", []string{"-access-log", "-"}, "stdout"},
		{"a file is appended to", []string{"-access-log", "FILE"}, "file"},
		{"off", []string{"-access-log", "off"}, ""},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			file := writeFile(t, "access.log", "earlier line\n")
			args := []string{"-config", cfg, "-workers", "1"}
			for _, a := range tc.args {
				if a == "FILE" {
					a = file
				}
				args = append(args, a)
			}
			cmd := exec.Command(binary, args...)
			var stdout strings.Builder
			cmd.Stdout = &stdout
			p := startReady(t, cmd)
			req, _ := http.NewRequest("GET", "http://"+addr(t, p, "listener main")+"/logged?q=1", nil)
			req.Header.Set("X-Request-Id", "cli-"+tc.name)
			req.Header.Set("X-Test-Prop", "llm_prompt_tokens=3;llm_model=m")
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			if err := p.Stop(30 * time.Second); err != nil || p.ExitCode() != 0 {
				t.Fatalf("exit code %d (%v); stderr:\n%s", p.ExitCode(), err, p.Output())
			}
			b, _ := os.ReadFile(file)
			outputs := map[string]string{"stderr": p.Output(), "stdout": stdout.String(), "file": string(b)}
			want := `"path":"/logged?q=1"`
			for where, out := range outputs {
				n := strings.Count(out, want)
				if where == tc.where && n != 1 {
					t.Errorf("%s has %d access-log lines, want 1:\n%s", where, n, out)
				}
				if where != tc.where && n != 0 {
					t.Errorf("%s has an access-log line, want none:\n%s", where, out)
				}
			}
			if tc.where == "" {
				return
			}
			var line map[string]any
			for _, l := range strings.Split(outputs[tc.where], "\n") {
				if strings.Contains(l, want) {
					if err := json.Unmarshal([]byte(l), &line); err != nil {
						t.Fatalf("access-log line is not JSON: %v: %s", err, l)
					}
				}
			}
			if line["request_id"] != "cli-"+tc.name || line["status"] != 200.0 || line["llm_prompt_tokens"] != 3.0 || line["llm_model"] != "m" {
				t.Errorf("access-log line %v", line)
			}
			if tc.where == "file" && !strings.HasPrefix(outputs["file"], "earlier line\n{") {
				t.Errorf("the file was not appended to:\n%s", outputs["file"])
			}
		})
	}
	t.Run("unwritable path", func(t *testing.T) {
		cmd := exec.Command(binary, "-config", cfg, "-access-log", "/nonexistent/dir/access.log")
		var stderr strings.Builder
		cmd.Stderr = &stderr
		err := cmd.Run()
		if code := cmd.ProcessState.ExitCode(); err == nil || code != 1 {
			t.Fatalf("exit code %d (%v), want 1", code, err)
		}
		if line := lastLine(stderr.String()); line != "gateway: -access-log: open /nonexistent/dir/access.log: no such file or directory" {
			t.Errorf("last line %q", line)
		}
	})
}
