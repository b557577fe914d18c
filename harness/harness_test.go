package harness

import (
	"context"
	"errors"
	"fmt"
	"os"
	"sort"
	"strings"
	"testing"

	"ai-proxy/filter/proxywasm/abi"
	"ai-proxy/harness/testutil"
)

// testModule is testdata/guest compiled once for the whole package.
var testModule *Module

func TestMain(m *testing.M) {
	os.Exit(run(m))
}

func run(m *testing.M) int {
	wasm, err := testutil.BuildWasmBytes("./testdata/guest")
	if err != nil {
		fmt.Fprintln(os.Stderr, "build test guest:", err)
		return 1
	}
	ctx := context.Background()
	if testModule, err = Compile(ctx, wasm); err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	defer testModule.Close(ctx)
	return m.Run()
}

func newTestVM(t testing.TB, env Env) *VM {
	t.Helper()
	vm, err := testModule.NewVM(context.Background(), env)
	if err != nil {
		t.Fatalf("NewVM: %v", err)
	}
	t.Cleanup(func() { _ = vm.Close(context.Background()) })
	return vm
}

func startPlugin(t testing.TB, vm *VM, conf string) *Plugin {
	t.Helper()
	p, err := vm.StartPlugin(PluginConfig{Name: "test", RootID: "ai_proxy_root", Configuration: []byte(conf)})
	if err != nil {
		t.Fatalf("StartPlugin: %v", err)
	}
	return p
}

// newTestStream starts a plugin with configuration conf on a new VM with env
// and a stream of it, which is Done at the end of the test.
func newTestStream(t testing.TB, env Env, conf string) (*VM, *Stream) {
	t.Helper()
	vm := newTestVM(t, env)
	s := startPlugin(t, vm, conf).NewStream()
	t.Cleanup(s.Done)
	return vm, s
}

// request is a small POST with the given mode.
func request(mode string, extra ...abi.Header) []abi.Header {
	hs := []abi.Header{
		{":method", "POST"}, {":path", "/v1/chat/completions"}, {":authority", "gw.local"},
		{"Content-Type", "application/json"}, {"X-Mode", mode},
	}
	return append(hs, extra...)
}

func wantHeader(t *testing.T, hs []abi.Header, name, want string) {
	t.Helper()
	if got := HeaderValue(hs, name); got != want {
		t.Errorf("header %s = %q, want %q (headers %v)", name, got, want, hs)
	}
}

func errorLogs(vm *VM) []string {
	var out []string
	for _, e := range vm.Logs() {
		if e.Level >= abi.LogError {
			out = append(out, e.Message)
		}
	}
	return out
}

func TestImports(t *testing.T) {
	imps := testModule.Imports()
	if !sort.StringsAreSorted(imps) {
		t.Errorf("Imports not sorted: %v", imps)
	}
	for _, want := range []string{"env.proxy_log", "env.proxy_http_call", "env.proxy_increment_metric", "wasi_snapshot_preview1.fd_write"} {
		i := sort.SearchStrings(imps, want)
		if i == len(imps) || imps[i] != want {
			t.Errorf("Imports lacks %s: %v", want, imps)
		}
	}
	for _, imp := range imps {
		if !strings.HasPrefix(imp, "env.") && !strings.HasPrefix(imp, "wasi_snapshot_preview1.") {
			t.Errorf("unexpected import module in %s", imp)
		}
	}
}

func TestCompileRejects(t *testing.T) {
	ctx := context.Background()
	tests := []struct {
		name string
		wasm []byte
		want error
	}{
		// An empty module: valid wasm, no proxy-wasm exports.
		{"empty module", []byte("\x00asm\x01\x00\x00\x00"), ErrNotProxyWasm},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			m, err := Compile(ctx, tc.wasm)
			if !errors.Is(err, tc.want) {
				if m != nil {
					m.Close(ctx)
				}
				t.Fatalf("Compile err = %v, want %v", err, tc.want)
			}
		})
	}
	if _, err := Compile(ctx, []byte("not wasm")); err == nil {
		t.Fatal("Compile accepted garbage")
	}
}

func TestNewVMUnknownProfile(t *testing.T) {
	if _, err := testModule.NewVM(context.Background(), Env{Profile: "nginx"}); err == nil {
		t.Fatal("NewVM accepted an unknown profile")
	}
}

func TestStartPluginRejected(t *testing.T) {
	tests := []struct {
		name     string
		cfg      PluginConfig
		wantErr  error
		wantText string
	}{
		{
			name:     "configuration rejected",
			cfg:      PluginConfig{Name: "p", Configuration: []byte("reject")},
			wantErr:  ErrConfigRejected,
			wantText: `plugin configuration rejected: invalid configuration: field "model" is required`,
		},
		{
			name:     "vm start rejected",
			cfg:      PluginConfig{Name: "p", VMConfig: []byte("fail"), Configuration: []byte("{}")},
			wantErr:  ErrVMStartRejected,
			wantText: "vm start rejected: vm configuration refused",
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			vm := newTestVM(t, Env{})
			_, err := vm.StartPlugin(tc.cfg)
			if !errors.Is(err, tc.wantErr) {
				t.Fatalf("err = %v, want %v", err, tc.wantErr)
			}
			if err.Error() != tc.wantText {
				t.Fatalf("err text = %q, want %q", err.Error(), tc.wantText)
			}
			if vm.Broken() {
				t.Fatal("a rejected configuration broke the VM")
			}
			// The VM still accepts a good plugin.
			startPlugin(t, vm, "{}")
		})
	}
}

func TestStartPluginReadsConfiguration(t *testing.T) {
	vm := newTestVM(t, Env{})
	startPlugin(t, vm, `{"model":"gpt-4o"}`)
	found := false
	for _, e := range vm.Logs() {
		if e.Level == abi.LogInfo && e.Message == `configured {"model":"gpt-4o"}` {
			found = true
		}
	}
	if !found {
		t.Fatalf("configuration not seen by the guest; logs %v", vm.Logs())
	}
	if errs := errorLogs(vm); len(errs) > 0 {
		t.Fatalf("guest errors: %v", errs)
	}
}

func TestHostCallsDuringInitialize(t *testing.T) {
	vm := newTestVM(t, Env{})
	logs := vm.Logs()
	if len(logs) == 0 || logs[0].Message != "guest initialized" {
		t.Fatalf("the guest's init() log is missing: %v", logs)
	}
	if errs := errorLogs(vm); len(errs) > 0 {
		t.Fatalf("guest errors: %v", errs)
	}
}
