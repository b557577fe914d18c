package e2e

import (
	"bytes"
	"context"
	"errors"
	"os"
	"os/exec"
	"sort"
	"strings"
	"testing"

	"github.com/tetratelabs/wazero"

	"ai-proxy/harness/testutil"
)

// proxyWasmHostFunctions are the functions the host exposes in module "env"
// in proxy-wasm ABI v0.2.1 (the spec's "Functions exposed by the host").
var proxyWasmHostFunctions = []string{
	"proxy_log", "proxy_get_log_level",
	"proxy_get_current_time_nanoseconds", "proxy_set_tick_period_milliseconds",
	"proxy_get_buffer_bytes", "proxy_set_buffer_bytes", "proxy_get_buffer_status",
	"proxy_get_header_map_size", "proxy_get_header_map_pairs", "proxy_set_header_map_pairs",
	"proxy_get_header_map_value", "proxy_add_header_map_value",
	"proxy_replace_header_map_value", "proxy_remove_header_map_value",
	"proxy_continue_stream", "proxy_close_stream", "proxy_get_status",
	"proxy_send_local_response", "proxy_http_call",
	"proxy_grpc_call", "proxy_grpc_stream", "proxy_grpc_send", "proxy_grpc_cancel", "proxy_grpc_close",
	"proxy_set_shared_data", "proxy_get_shared_data",
	"proxy_register_shared_queue", "proxy_resolve_shared_queue",
	"proxy_enqueue_shared_queue", "proxy_dequeue_shared_queue",
	"proxy_define_metric", "proxy_record_metric", "proxy_increment_metric", "proxy_get_metric",
	"proxy_get_property", "proxy_set_property",
	"proxy_call_foreign_function", "proxy_done", "proxy_set_effective_context",
}

// envoyWASI are the wasi_snapshot_preview1 functions Envoy >= 1.33 links
// (proxy-wasm-cpp-host: FOR_ALL_WASI_FUNCTIONS, plus sched_yield, poll_oneoff
// and fd_fdstat_set_flags added for Go modules by its PR #427). The further
// calls of its PR #533 (fd_filestat_get, fd_pread, fd_readdir, ...) came in
// 2026 and are not in the hosts this project targets.
var envoyWASI = []string{
	"fd_write", "fd_read", "fd_seek", "fd_close", "fd_fdstat_get",
	"environ_get", "environ_sizes_get", "args_get", "args_sizes_get",
	"clock_time_get", "random_get", "proc_exit",
	"path_open", "fd_prestat_get", "fd_prestat_dir_name",
	"sched_yield", "poll_oneoff", "fd_fdstat_set_flags",
}

// requiredExports are what a proxy-wasm host needs from a standard-Go reactor
// (proxy_on_done is optional for every host, and the filter has no use for it).
var requiredExports = []string{"_initialize", "memory", "proxy_abi_version_0_2_1", "proxy_on_memory_allocate",
	"proxy_on_context_create", "proxy_on_configure", "proxy_on_request_headers", "proxy_on_request_body",
	"proxy_on_http_call_response", "proxy_on_log", "proxy_on_delete"}

// maxWasmSize is the size budget of build/ai-proxy.wasm (issue 2: under 4 MB).
const maxWasmSize = 4_000_000

// wasmImport is one entry of a module's import section.
type wasmImport struct {
	Module, Name string
	Kind         byte // 0 func, 1 table, 2 memory, 3 global, 4 tag
}

func (i wasmImport) String() string { return i.Module + "." + i.Name }

// wasmModule is what the tests read of a module.
type wasmModule struct {
	Imports []wasmImport
	Exports map[string]byte // name → kind
}

var errWasm = errors.New("malformed wasm module")

// parseWasm reads the import and export sections of a wasm binary.
func parseWasm(b []byte) (wasmModule, error) {
	m := wasmModule{Exports: map[string]byte{}}
	if len(b) < 8 || !bytes.Equal(b[:4], []byte("\x00asm")) || !bytes.Equal(b[4:8], []byte{1, 0, 0, 0}) {
		return m, errWasm
	}
	r := &wasmReader{b: b, i: 8}
	for r.i < len(r.b) {
		id := r.byte()
		size := int(r.uleb())
		if r.err != nil || size > len(r.b)-r.i {
			return m, errWasm
		}
		sec := &wasmReader{b: r.b[r.i : r.i+size]}
		r.i += size
		switch id {
		case 2:
			for n := sec.uleb(); n > 0 && sec.err == nil; n-- {
				imp := wasmImport{Module: sec.name(), Name: sec.name(), Kind: sec.byte()}
				switch imp.Kind {
				case 0: // func: type index
					sec.uleb()
				case 1: // table: reftype, limits
					sec.byte()
					sec.limits()
				case 2: // memory: limits
					sec.limits()
				case 3: // global: valtype, mutability
					sec.byte()
					sec.byte()
				case 4: // tag: attribute, type index
					sec.byte()
					sec.uleb()
				default:
					return m, errWasm
				}
				m.Imports = append(m.Imports, imp)
			}
		case 7:
			for n := sec.uleb(); n > 0 && sec.err == nil; n-- {
				name := sec.name()
				m.Exports[name] = sec.byte()
				sec.uleb()
			}
		}
		if sec.err != nil {
			return m, sec.err
		}
	}
	return m, r.err
}

type wasmReader struct {
	b   []byte
	i   int
	err error
}

func (r *wasmReader) byte() byte {
	if r.err != nil || r.i >= len(r.b) {
		r.err = errWasm
		return 0
	}
	c := r.b[r.i]
	r.i++
	return c
}

func (r *wasmReader) uleb() uint64 {
	var v uint64
	for shift := 0; shift < 64; shift += 7 {
		c := r.byte()
		v |= uint64(c&0x7f) << shift
		if c < 0x80 {
			return v
		}
	}
	r.err = errWasm
	return 0
}

func (r *wasmReader) name() string {
	n := int(r.uleb())
	if r.err != nil || n > len(r.b)-r.i {
		r.err = errWasm
		return ""
	}
	s := string(r.b[r.i : r.i+n])
	r.i += n
	return s
}

func (r *wasmReader) limits() {
	flags := r.byte()
	r.uleb()
	if flags&1 != 0 {
		r.uleb()
	}
}

// tinyModule is a hand-assembled module: one func type, imports
// env.proxy_log and wasi_snapshot_preview1.fd_write and a memory, exports "f".
func tinyModule() []byte {
	name := func(s string) []byte { return append([]byte{byte(len(s))}, s...) }
	section := func(id byte, payload []byte) []byte { return append([]byte{id, byte(len(payload))}, payload...) }
	imports := []byte{3}
	imports = append(append(append(imports, name("env")...), name("proxy_log")...), 0, 0)
	imports = append(append(append(imports, name("wasi_snapshot_preview1")...), name("fd_write")...), 0, 0)
	imports = append(append(append(imports, name("env")...), name("memory")...), 2, 1, 1, 2)
	exports := append(append([]byte{1}, name("f")...), 0, 0)
	out := []byte("\x00asm\x01\x00\x00\x00")
	out = append(out, section(1, []byte{1, 0x60, 0, 0})...)
	out = append(out, section(2, imports)...)
	return append(out, section(7, exports)...)
}

func TestParseWasm(t *testing.T) {
	m, err := parseWasm(tinyModule())
	if err != nil {
		t.Fatal(err)
	}
	want := []wasmImport{{"env", "proxy_log", 0}, {"wasi_snapshot_preview1", "fd_write", 0}, {"env", "memory", 2}}
	if len(m.Imports) != len(want) {
		t.Fatalf("imports %v, want %v", m.Imports, want)
	}
	for i := range want {
		if m.Imports[i] != want[i] {
			t.Errorf("import %d = %+v, want %+v", i, m.Imports[i], want[i])
		}
	}
	if k, ok := m.Exports["f"]; !ok || k != 0 || len(m.Exports) != 1 {
		t.Errorf("exports %v, want f (func)", m.Exports)
	}
	for _, bad := range [][]byte{nil, []byte("\x00asm"), []byte("\x00asx\x01\x00\x00\x00"), tinyModule()[:20]} {
		if _, err := parseWasm(bad); err == nil {
			t.Errorf("parseWasm(%q) accepted a broken module", bad)
		}
	}
}

// TestWasmImportAllowList: build/ai-proxy.wasm imports only proxy-wasm host
// functions and the WASI calls Envoy >= 1.33 provides, and exports what a
// proxy-wasm host needs.
func TestWasmImportAllowList(t *testing.T) {
	checkout.NeedWasm(t)
	b, err := os.ReadFile(checkout.Wasm)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("build/ai-proxy.wasm: %d bytes", len(b))
	if len(b) > maxWasmSize {
		t.Errorf("build/ai-proxy.wasm is %d bytes, over the %d budget", len(b), maxWasmSize)
	}
	m, err := parseWasm(b)
	if err != nil {
		t.Fatal(err)
	}
	allowed := map[string]bool{}
	for _, f := range proxyWasmHostFunctions {
		allowed["env."+f] = true
	}
	for _, f := range envoyWASI {
		allowed["wasi_snapshot_preview1."+f] = true
	}
	var names []string
	for _, imp := range m.Imports {
		names = append(names, imp.String())
		if imp.Kind != 0 {
			t.Errorf("import %s is not a function (kind %d)", imp, imp.Kind)
		}
		if !allowed[imp.String()] {
			t.Errorf("import %s is outside the allow-list (proxy-wasm v0.2.1 env functions, WASI of Envoy >= 1.33)", imp)
		}
	}
	t.Logf("imports: %s", strings.Join(names, " "))
	for _, e := range requiredExports {
		if _, ok := m.Exports[e]; !ok {
			t.Errorf("export %s is missing", e)
		}
	}
	if _, ok := m.Exports["_start"]; ok {
		t.Errorf("exports _start: the module must be a reactor (-buildmode=c-shared)")
	}

	// The reader agrees with wazero's.
	ctx := context.Background()
	rt := wazero.NewRuntimeWithConfig(ctx, wazero.NewRuntimeConfigInterpreter())
	defer rt.Close(ctx)
	cm, err := rt.CompileModule(ctx, b)
	if err != nil {
		t.Fatalf("wazero cannot compile build/ai-proxy.wasm: %v", err)
	}
	var fromWazero []string
	for _, f := range cm.ImportedFunctions() {
		mod, name, _ := f.Import()
		fromWazero = append(fromWazero, mod+"."+name)
	}
	sort.Strings(names)
	sort.Strings(fromWazero)
	if strings.Join(names, " ") != strings.Join(fromWazero, " ") {
		t.Errorf("import section read as\n%v\nwazero reads\n%v", names, fromWazero)
	}
}

// filterImportGraph lists ./filter's dependencies as the wasm build sees them:
// import path → its imports.
func filterImportGraph(t *testing.T) map[string][]string {
	t.Helper()
	cmd := exec.Command(testutil.GoTool(), "list", "-deps", "-f", "{{.ImportPath}}:{{join .Imports \" \"}}", "./filter")
	cmd.Dir = checkout.Root
	cmd.Env = append(os.Environ(), "GOOS=wasip1", "GOARCH=wasm")
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("go list -deps ./filter: %v\n%s", err, stderr.String())
	}
	g := map[string][]string{}
	for _, line := range strings.Split(strings.TrimSpace(string(out)), "\n") {
		pkg, imps, _ := strings.Cut(line, ":")
		g[pkg] = strings.Fields(imps)
	}
	return g
}

// importChain is the shortest import path from "ai-proxy/filter" to target.
func importChain(g map[string][]string, target string) []string {
	const root = "ai-proxy/filter"
	prev := map[string]string{root: ""}
	queue := []string{root}
	for len(queue) > 0 {
		p := queue[0]
		queue = queue[1:]
		if p == target {
			var chain []string
			for ; p != ""; p = prev[p] {
				chain = append([]string{p}, chain...)
			}
			return chain
		}
		for _, q := range g[p] {
			if _, seen := prev[q]; !seen {
				prev[q] = p
				queue = append(queue, q)
			}
		}
	}
	return nil
}

// TestFilterDoesNotLinkFmtOrOs: the module must not contain fmt or os, not
// even through a dependency. They bring in more WASI and, under load, the
// poll_oneoff crash of V8 hosts (golang/go#78513).
func TestFilterDoesNotLinkFmtOrOs(t *testing.T) {
	g := filterImportGraph(t)
	if _, ok := g["ai-proxy/filter"]; !ok {
		t.Fatalf("go list did not list ai-proxy/filter")
	}
	for _, bad := range []string{"fmt", "os"} {
		if _, ok := g[bad]; ok {
			t.Errorf("./filter (GOOS=wasip1) depends on %s: %s", bad, strings.Join(importChain(g, bad), " → "))
		}
	}
	// The project's own packages never import them directly.
	for pkg, imps := range g {
		if !strings.HasPrefix(pkg, "ai-proxy/") {
			continue
		}
		for _, imp := range imps {
			if imp == "fmt" || imp == "os" {
				t.Errorf("%s imports %s", pkg, imp)
			}
		}
	}
}
