package harness

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"sort"
	"sync"

	"github.com/tetratelabs/wazero"
	"github.com/tetratelabs/wazero/api"
	"github.com/tetratelabs/wazero/experimental"
	"github.com/tetratelabs/wazero/imports/wasi_snapshot_preview1"
)

// Errors returned by Compile and NewVM.
var (
	// ErrNotProxyWasm: the module lacks the proxy_abi_version_0_2_x marker
	// export or proxy_on_memory_allocate.
	ErrNotProxyWasm = errors.New("not a proxy-wasm v0.2.x module")
	// ErrNotReactor: the module exports _start but not _initialize (a WASI
	// command, e.g. a Go program built without -buildmode=c-shared).
	ErrNotReactor = errors.New("module is a WASI command, not a reactor (build with -buildmode=c-shared)")
)

// abiMarkers are the accepted ABI version marker exports.
var abiMarkers = []string{"proxy_abi_version_0_2_1", "proxy_abi_version_0_2_0"}

// compilationCache is shared by every Module of the process, so compiling
// the same bytes twice (one Compile per test, say) costs one compilation.
var compilationCache = wazero.NewCompilationCache()

// Module is a compiled proxy-wasm module: one wazero Runtime holding the
// compiled guest, the "env" host module and the two WASI flavours. It is safe
// for concurrent use; VMs created from it share its shared-data store and
// shared queues (as Envoy shares them between the VMs of one vm_id).
type Module struct {
	rt       wazero.Runtime
	compiled wazero.CompiledModule
	imports  []string
	// strictWASI is an anonymous WASI instance whose functions that old V8
	// hosts lack answer ENOSYS; ProfileStrictWASI VMs import it instead of the
	// runtime's regular "wasi_snapshot_preview1".
	strictWASI api.Module

	shared sharedData
	queues sharedQueues
}

// Compile compiles wasm once and prepares the host modules. The module must
// be a proxy-wasm v0.2.x reactor: it must export proxy_abi_version_0_2_1 (or
// _0_2_0) and proxy_on_memory_allocate, and must not be a WASI command.
func Compile(ctx context.Context, wasm []byte) (*Module, error) {
	rt := wazero.NewRuntimeWithConfig(ctx, wazero.NewRuntimeConfig().WithCompilationCache(compilationCache))
	m := &Module{rt: rt}
	fail := func(err error) (*Module, error) {
		_ = rt.Close(ctx)
		return nil, err
	}
	compiled, err := rt.CompileModule(ctx, wasm)
	if err != nil {
		return fail(fmt.Errorf("harness: compile: %w", err))
	}
	m.compiled = compiled
	exports := compiled.ExportedFunctions()
	hasMarker := false
	for _, name := range abiMarkers {
		if _, ok := exports[name]; ok {
			hasMarker = true
		}
	}
	if !hasMarker {
		return fail(fmt.Errorf("harness: %w: no proxy_abi_version_0_2_1 export", ErrNotProxyWasm))
	}
	if _, ok := exports[exportMalloc]; !ok {
		return fail(fmt.Errorf("harness: %w: no %s export", ErrNotProxyWasm, exportMalloc))
	}
	if _, ok := exports["_initialize"]; !ok {
		if _, ok := exports["_start"]; ok {
			return fail(fmt.Errorf("harness: %w", ErrNotReactor))
		}
	}
	for _, f := range compiled.ImportedFunctions() {
		mod, name, _ := f.Import()
		m.imports = append(m.imports, mod+"."+name)
	}
	sort.Strings(m.imports)

	if _, err := wasi_snapshot_preview1.Instantiate(ctx, rt); err != nil {
		return fail(fmt.Errorf("harness: instantiate wasi: %w", err))
	}
	if m.strictWASI, err = instantiateStrictWASI(ctx, rt); err != nil {
		return fail(fmt.Errorf("harness: instantiate strict wasi: %w", err))
	}
	if _, err := buildEnv(rt).Instantiate(ctx); err != nil {
		return fail(fmt.Errorf("harness: instantiate env: %w", err))
	}
	return m, nil
}

// Imports returns the module's imported functions as "module.name", sorted.
func (m *Module) Imports() []string { return append([]string(nil), m.imports...) }

// Close releases the runtime and every VM created from the module.
func (m *Module) Close(ctx context.Context) error { return m.rt.Close(ctx) }

// NewVM instantiates a fresh instance of the module (running _initialize,
// never _start) and returns it as a VM. No proxy-wasm callback runs here:
// root contexts, proxy_on_vm_start and proxy_on_configure happen per plugin
// in StartPlugin. NewVM is safe for concurrent use.
func (m *Module) NewVM(ctx context.Context, env Env) (*VM, error) {
	if env.Profile == "" {
		env.Profile = ProfileEnvoy
	}
	switch env.Profile {
	case ProfileEnvoy, ProfileAPISIX, ProfileStrictWASI:
	default:
		return nil, fmt.Errorf("harness: unknown profile %q", env.Profile)
	}
	vm := newVM(m, env)
	ictx := context.WithValue(ctx, vmKey{}, vm)
	if env.Profile == ProfileStrictWASI {
		strict := m.strictWASI
		ictx = experimental.WithImportResolver(ictx, func(name string) api.Module {
			if name == wasi_snapshot_preview1.ModuleName {
				return strict
			}
			return nil
		})
	}
	cfg := wazero.NewModuleConfig().
		WithName(""). // anonymous: many instances of one module
		WithStartFunctions("_initialize").
		WithSysWalltime().
		WithSysNanotime().
		WithSysNanosleep().
		WithRandSource(rand.Reader).
		WithStdout(&lineWriter{vm: vm, level: logLevelStdout}).
		WithStderr(&lineWriter{vm: vm, level: logLevelStderr})
	inst, err := m.rt.InstantiateModule(ictx, m.compiled, cfg)
	if err != nil {
		return nil, fmt.Errorf("harness: instantiate: %w%s", err, vm.lastStderr())
	}
	if err := vm.bind(inst); err != nil {
		_ = inst.Close(ctx)
		return nil, err
	}
	return vm, nil
}

// sharedData is the proxy_{get,set}_shared_data store of a Module.
type sharedData struct {
	mu   sync.Mutex
	m    map[string]sharedEntry
	next uint32 // last cas handed out
}

type sharedEntry struct {
	value []byte
	cas   uint32
}

func (d *sharedData) get(key string) ([]byte, uint32, bool) {
	d.mu.Lock()
	defer d.mu.Unlock()
	e, ok := d.m[key]
	return e.value, e.cas, ok
}

// set stores value under key. As in Envoy, a non-zero cas must match the
// cas of an existing entry; an absent key is stored whatever cas says.
func (d *sharedData) set(key string, value []byte, cas uint32) bool {
	d.mu.Lock()
	defer d.mu.Unlock()
	if e, ok := d.m[key]; ok && cas != 0 && e.cas != cas {
		return false
	}
	if d.m == nil {
		d.m = make(map[string]sharedEntry)
	}
	d.next++
	if d.next == 0 {
		d.next = 1
	}
	d.m[key] = sharedEntry{value: value, cas: d.next}
	return true
}

// sharedQueues are the proxy-wasm shared queues of a Module. Delivery of
// proxy_on_queue_ready is not implemented: consumers must poll with dequeue
// (from a tick, say).
type sharedQueues struct {
	mu     sync.Mutex
	byName map[string]uint32
	items  map[uint32][][]byte
	next   uint32
}

func (q *sharedQueues) register(name string) uint32 {
	q.mu.Lock()
	defer q.mu.Unlock()
	if id, ok := q.byName[name]; ok {
		return id
	}
	if q.byName == nil {
		q.byName = make(map[string]uint32)
		q.items = make(map[uint32][][]byte)
	}
	q.next++
	q.byName[name] = q.next
	q.items[q.next] = nil
	return q.next
}

func (q *sharedQueues) resolve(name string) (uint32, bool) {
	q.mu.Lock()
	defer q.mu.Unlock()
	id, ok := q.byName[name]
	return id, ok
}

func (q *sharedQueues) enqueue(id uint32, data []byte) bool {
	q.mu.Lock()
	defer q.mu.Unlock()
	items, ok := q.items[id]
	if !ok {
		return false
	}
	q.items[id] = append(items, data)
	return true
}

// dequeue pops the oldest item; ok is false for an unknown queue, and data
// is nil with ok true for an empty one.
func (q *sharedQueues) dequeue(id uint32) (data []byte, known, empty bool) {
	q.mu.Lock()
	defer q.mu.Unlock()
	items, ok := q.items[id]
	if !ok {
		return nil, false, false
	}
	if len(items) == 0 {
		return nil, true, true
	}
	data = items[0]
	items[0] = nil
	q.items[id] = items[1:]
	return data, true, false
}
