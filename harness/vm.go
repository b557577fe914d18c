package harness

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"sort"
	"sync"
	"sync/atomic"
	"time"

	"github.com/tetratelabs/wazero/api"

	"ai-proxy/filter/proxywasm/abi"
)

// Errors of VM operations.
var (
	// ErrConfigRejected: proxy_on_configure returned false. The error text is
	// "plugin configuration rejected: <the guest's last error-level log line>".
	ErrConfigRejected = errors.New("plugin configuration rejected")
	// ErrVMStartRejected: proxy_on_vm_start returned false.
	ErrVMStartRejected = errors.New("vm start rejected")
	// ErrTrap: the guest trapped (unrecovered panic, unreachable, exit).
	ErrTrap = errors.New("wasm trap")
	// ErrBroken: the VM trapped earlier or was closed; replace it.
	ErrBroken = errors.New("vm is broken")
	// ErrUnknownCall: RespondCall got an id that is not pending.
	ErrUnknownCall = errors.New("unknown http call id")
)

// Log levels given to the guest's stdout and stderr lines.
const (
	logLevelStdout = abi.LogInfo
	logLevelStderr = abi.LogError
)

// logRingSize is the number of log lines VM.Logs keeps.
const logRingSize = 1000

// exportMalloc is the guest allocator the host uses for memory it returns.
const exportMalloc = "proxy_on_memory_allocate"

// vmKey carries the *VM in the context of every call into the guest, so the
// host functions (shared by all VMs of a Module) find their VM.
type vmKey struct{}

// phase is the guest callback being executed, for the host calls whose
// legality depends on it.
type phase uint8

const (
	phaseNone phase = iota
	phaseCreate
	phaseVMStart
	phaseConfigure
	phaseRequestHeaders
	phaseRequestBody
	phaseRequestTrailers
	phaseResponseHeaders
	phaseResponseBody
	phaseResponseTrailers
	phaseCallResponse
	phaseTick
	phaseLog
	phaseDone
	phaseDelete
	phaseCount // not a phase: the number of phases
)

// phaseExports names the guest callback of each phase that calls one.
var phaseExports = [phaseCount]string{
	phaseCreate:           "proxy_on_context_create",
	phaseVMStart:          "proxy_on_vm_start",
	phaseConfigure:        "proxy_on_configure",
	phaseRequestHeaders:   "proxy_on_request_headers",
	phaseRequestBody:      "proxy_on_request_body",
	phaseRequestTrailers:  "proxy_on_request_trailers",
	phaseResponseHeaders:  "proxy_on_response_headers",
	phaseResponseBody:     "proxy_on_response_body",
	phaseResponseTrailers: "proxy_on_response_trailers",
	phaseCallResponse:     "proxy_on_http_call_response",
	phaseTick:             "proxy_on_tick",
	phaseLog:              "proxy_on_log",
	phaseDone:             "proxy_on_done",
	phaseDelete:           "proxy_on_delete",
}

// callState is what a host call acts on: the effective context (stream or
// root) and what the current callback may read.
type callState struct {
	stream   *Stream // nil when the effective context is a root context
	plugin   *Plugin
	phase    phase
	callResp *CallResponse // during phaseCallResponse; nil for a failed call
	config   []byte        // VM configuration (phaseVMStart) or plugin configuration (phaseConfigure)
}

// guestExports are the guest functions the host calls; nil when not exported
// (the callback is then skipped as if it had answered Continue / true).
type guestExports struct {
	malloc   api.Function
	callback [phaseCount]api.Function // by phase, see phaseExports
}

// has reports whether the guest exports the callback of ph.
func (g *guestExports) has(ph phase) bool { return g.callback[ph] != nil }

// pendingCall is a proxy_http_call waiting for VM.RespondCall.
type pendingCall struct {
	call   HTTPCall
	plugin *Plugin // root context that receives proxy_on_http_call_response
	stream *Stream // effective stream when the call was made; may be nil
}

// VM is one instance of a Module. Every exported method takes the VM's lock,
// so a VM may be used from several goroutines, but calls into the guest are
// serialized (a wasm instance is single-threaded). Callbacks supplied in Env
// run with the lock held and must not call back into the VM.
type VM struct {
	mu      sync.Mutex
	mod     *Module
	env     Env
	metrics *Metrics
	ctx     context.Context
	inst    api.Module
	mem     api.Memory
	fn      guestExports

	stack   [8]uint64         // arguments and results of calls into the guest
	mstack  [1]uint64         // proxy_on_memory_allocate, called from inside host calls
	scratch []byte            // encoded header maps, header values
	keybuf  []byte            // property paths
	keys    map[string]string // interned strings (internKey)

	nextID      uint32
	plugins     map[uint32]*Plugin
	streams     map[uint32]*Stream
	freeStreams []*Stream // released streams, for NewStream to reuse
	calls       map[uint32]*pendingCall
	nextCall    uint32

	cur callState
	// broken is set once the guest trapped or the VM was closed. It is
	// atomic for Broken, which embedders call on every request without the
	// VM lock (another stream's callback may hold it).
	broken atomic.Bool

	logs      []LogEntry // ring of the last logRingSize lines
	logHead   int        // oldest entry once the ring is full
	lastError string     // last error-level line, for StartPlugin errors
}

func newVM(m *Module, env Env) *VM {
	vm := &VM{
		mod:     m,
		env:     env,
		metrics: env.Metrics,
		plugins: make(map[uint32]*Plugin),
		streams: make(map[uint32]*Stream),
		calls:   make(map[uint32]*pendingCall),
	}
	if vm.metrics == nil {
		vm.metrics = NewMetrics()
	}
	vm.ctx = context.WithValue(context.Background(), vmKey{}, vm)
	return vm
}

// bind looks up the guest's exports after instantiation.
func (vm *VM) bind(inst api.Module) error {
	vm.inst = inst
	vm.mem = inst.Memory()
	if vm.mem == nil {
		return fmt.Errorf("harness: %w: module has no memory", ErrNotProxyWasm)
	}
	f := inst.ExportedFunction
	vm.fn = guestExports{malloc: f(exportMalloc)}
	for ph, name := range phaseExports {
		if name != "" {
			vm.fn.callback[ph] = f(name)
		}
	}
	if vm.fn.malloc == nil {
		return fmt.Errorf("harness: %w: no %s export", ErrNotProxyWasm, exportMalloc)
	}
	return nil
}

// Profile returns the VM's host profile.
func (vm *VM) Profile() Profile { return vm.env.Profile }

// Metrics returns the metric store the VM writes to.
func (vm *VM) Metrics() *Metrics { return vm.metrics }

// newID allocates a context id, unique within the VM.
func (vm *VM) newID() uint32 {
	vm.nextID++
	return vm.nextID
}

// invoke calls fn with the arguments already in vm.stack and returns the
// first result word. On a trap it marks the VM broken, fails every live
// stream and returns the error.
func (vm *VM) invoke(fn api.Function, name string) (uint64, error) {
	if err := fn.CallWithStack(vm.ctx, vm.stack[:]); err != nil {
		return 0, vm.trap(name, err)
	}
	return vm.stack[0], nil
}

// callIn runs the callback of st.phase, which the guest exports, with st as
// the effective context and restores the previous state afterwards.
func (vm *VM) callIn(st callState) (uint64, error) {
	saved := vm.cur
	vm.cur = st
	r, err := vm.invoke(vm.fn.callback[st.phase], phaseExports[st.phase])
	vm.cur = saved
	return r, err
}

// streamCall calls the stream callback of ph, (contextID, a1, a2), and maps
// its result to an Action (anything but Continue pauses). A missing export
// answers Continue; a trap answers Pause (the stream then has a local
// response).
func (vm *VM) streamCall(s *Stream, ph phase, a1, a2 uint64) abi.Action {
	if !vm.fn.has(ph) {
		return abi.ActionContinue
	}
	vm.stack[0], vm.stack[1], vm.stack[2] = uint64(s.id), a1, a2
	r, err := vm.callIn(callState{stream: s, plugin: s.plugin, phase: ph})
	if err != nil || uint32(r) != uint32(abi.ActionContinue) {
		return abi.ActionPause
	}
	return abi.ActionContinue
}

// trap records a guest trap: the VM is broken from now on, every live stream
// without a local response gets the filter_trap 500 and is signalled.
func (vm *VM) trap(name string, err error) error {
	vm.broken.Store(true)
	e := fmt.Errorf("%w in %s: %v", ErrTrap, name, err)
	vm.addLog(abi.LogCritical, e.Error())
	for _, s := range vm.streams {
		vm.failStream(s)
	}
	return e
}

// trapBody is the client-facing body of the local response a stream gets
// when its VM trapped.
const trapBody = `{"error":{"message":"internal error in the filter","type":"server_error","code":"filter_trap"}}`

// failStream gives s the filter_trap local response (unless it already has
// one) and signals it.
func (vm *VM) failStream(s *Stream) {
	if s.local == nil {
		s.local = &LocalResponse{
			Status:  500,
			Details: "filter_trap",
			Headers: []abi.Header{{"content-type", "application/json"}},
			Body:    []byte(trapBody),
		}
	}
	s.notify()
}

// addLog appends a line to the ring and hands it to Env.Log.
func (vm *VM) addLog(level abi.LogLevel, msg string) {
	e := LogEntry{Level: level, Message: msg}
	if len(vm.logs) < logRingSize {
		vm.logs = append(vm.logs, e)
	} else {
		vm.logs[vm.logHead] = e
		vm.logHead = (vm.logHead + 1) % logRingSize
	}
	if level >= abi.LogError {
		vm.lastError = msg
	}
	if vm.env.Log != nil {
		vm.env.Log(e)
	}
}

// lastStderr describes the guest's last error line for instantiation errors.
func (vm *VM) lastStderr() string {
	if vm.lastError == "" {
		return ""
	}
	return " (guest: " + vm.lastError + ")"
}

// Broken reports whether the guest trapped (or the VM was closed). A broken
// VM never calls the guest again: new streams get the filter_trap 500 local
// response. The embedder should replace it with a fresh VM.
func (vm *VM) Broken() bool { return vm.broken.Load() }

// LiveStreams is the number of streams created and not yet Done.
func (vm *VM) LiveStreams() int {
	vm.mu.Lock()
	defer vm.mu.Unlock()
	return len(vm.streams)
}

// StartPlugin creates a root context for cfg and configures it, as Envoy
// does for each plugin: proxy_on_context_create(root, 0), then
// proxy_on_vm_start(root, len(cfg.VMConfig)), then proxy_on_configure(root,
// len(cfg.Configuration)). proxy_on_vm_start thus runs once per root context
// (Envoy runs it once per root_id on each VM). A false answer from either is
// an error wrapping ErrVMStartRejected or ErrConfigRejected whose text ends
// with the guest's last error-level log line of the call; a trap wraps
// ErrTrap and breaks the VM.
func (vm *VM) StartPlugin(cfg PluginConfig) (*Plugin, error) {
	vm.mu.Lock()
	defer vm.mu.Unlock()
	if vm.broken.Load() {
		return nil, ErrBroken
	}
	p := &Plugin{vm: vm, id: vm.newID(), cfg: cfg}
	vm.plugins[p.id] = p
	fail := func(err error) (*Plugin, error) {
		delete(vm.plugins, p.id)
		return nil, err
	}
	vm.lastError = ""
	if vm.fn.has(phaseCreate) {
		vm.stack[0], vm.stack[1] = uint64(p.id), 0
		if _, err := vm.callIn(callState{plugin: p, phase: phaseCreate}); err != nil {
			return fail(err)
		}
	}
	if vm.fn.has(phaseVMStart) {
		vm.stack[0], vm.stack[1] = uint64(p.id), uint64(len(cfg.VMConfig))
		ok, err := vm.callIn(callState{plugin: p, phase: phaseVMStart, config: cfg.VMConfig})
		if err != nil {
			return fail(err)
		}
		if uint32(ok) == 0 {
			return fail(fmt.Errorf("%w: %s", ErrVMStartRejected, vm.reason(phaseVMStart)))
		}
	}
	if vm.fn.has(phaseConfigure) {
		vm.stack[0], vm.stack[1] = uint64(p.id), uint64(len(cfg.Configuration))
		ok, err := vm.callIn(callState{plugin: p, phase: phaseConfigure, config: cfg.Configuration})
		if err != nil {
			return fail(err)
		}
		if uint32(ok) == 0 {
			return fail(fmt.Errorf("%w: %s", ErrConfigRejected, vm.reason(phaseConfigure)))
		}
	}
	return p, nil
}

// reason is the guest's last error line, or a default naming the callback
// of ph.
func (vm *VM) reason(ph phase) string {
	if vm.lastError != "" {
		return vm.lastError
	}
	return phaseExports[ph] + " returned false"
}

// PendingCalls returns the unanswered proxy_http_call calls, oldest first.
// The slices inside are shared with the VM: read them, do not modify them.
func (vm *VM) PendingCalls() []HTTPCall {
	vm.mu.Lock()
	defer vm.mu.Unlock()
	out := make([]HTTPCall, 0, len(vm.calls))
	for _, pc := range vm.calls {
		out = append(out, pc.call)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].ID < out[j].ID })
	return out
}

// RespondCall answers the pending call id: the call-response headers, body
// and trailers become readable and proxy_on_http_call_response(root, id,
// numHeaders, bodySize, numTrailers) runs on the root context of the plugin
// that made the call; a nil resp is a failed call (numHeaders 0). The
// effective context starts as that root context (the guest switches to its
// stream with proxy_set_effective_context), except under ProfileAPISIX,
// where, as in APISIX, the callback runs in the request that made the call
// and the request is resumed after it unless the guest answered locally.
// Each call must be answered exactly once; an unknown id wraps
// ErrUnknownCall. resp is read, never modified, and not retained.
func (vm *VM) RespondCall(id uint32, resp *CallResponse) error {
	vm.mu.Lock()
	defer vm.mu.Unlock()
	pc, ok := vm.calls[id]
	if !ok {
		return fmt.Errorf("harness: %w: %d", ErrUnknownCall, id)
	}
	delete(vm.calls, id)
	s := pc.stream
	if s != nil {
		s.calls--
		if s.done {
			s = nil
		}
	}
	if vm.broken.Load() {
		if s != nil {
			vm.failStream(s)
		}
		return ErrBroken
	}
	if !vm.fn.has(phaseCallResponse) {
		return nil
	}
	var nh, bs, nt int
	if resp != nil {
		nh, bs, nt = len(resp.Headers), len(resp.Body), len(resp.Trailers)
	}
	st := callState{plugin: pc.plugin, phase: phaseCallResponse, callResp: resp}
	apisix := vm.env.Profile == ProfileAPISIX
	if apisix {
		st.stream = s
	}
	vm.stack[0], vm.stack[1], vm.stack[2], vm.stack[3], vm.stack[4] = uint64(pc.plugin.id), uint64(id), uint64(nh), uint64(bs), uint64(nt)
	if _, err := vm.callIn(st); err != nil {
		return err
	}
	if apisix && s != nil && s.local == nil && !s.closed && s.calls == 0 {
		s.resumed[abi.StreamHTTPRequest] = true
		s.notify()
	}
	return nil
}

// Tick calls proxy_on_tick on p's root context if p set a tick period. The
// embedder calls it every TickPeriod(p).
func (vm *VM) Tick(p *Plugin) {
	vm.mu.Lock()
	defer vm.mu.Unlock()
	if vm.broken.Load() || p.tick == 0 || !vm.fn.has(phaseTick) {
		return
	}
	vm.stack[0] = uint64(p.id)
	_, _ = vm.callIn(callState{plugin: p, phase: phaseTick})
}

// TickPeriod is the period p set with proxy_set_tick_period_milliseconds (0: none).
func (vm *VM) TickPeriod(p *Plugin) time.Duration {
	vm.mu.Lock()
	defer vm.mu.Unlock()
	return p.tick
}

// Logs returns the last 1000 log lines (proxy_log at or above Env.LogLevel,
// guest stdout/stderr, traps), oldest first.
func (vm *VM) Logs() []LogEntry {
	vm.mu.Lock()
	defer vm.mu.Unlock()
	out := make([]LogEntry, 0, len(vm.logs))
	out = append(out, vm.logs[vm.logHead:]...)
	return append(out, vm.logs[:vm.logHead]...)
}

// MemorySize is the size of the guest's linear memory in bytes.
func (vm *VM) MemorySize() uint32 {
	vm.mu.Lock()
	defer vm.mu.Unlock()
	return vm.mem.Size()
}

// Close releases the instance. The VM is broken afterwards.
func (vm *VM) Close(ctx context.Context) error {
	vm.mu.Lock()
	defer vm.mu.Unlock()
	vm.broken.Store(true)
	return vm.inst.Close(ctx)
}

// lineWriter turns the guest's stdout or stderr into log lines.
type lineWriter struct {
	vm    *VM
	level abi.LogLevel
	buf   []byte
}

// Write is called by WASI fd_write from inside a guest call, that is with
// the VM lock held (or during NewVM, before the VM is shared).
func (w *lineWriter) Write(p []byte) (int, error) {
	w.buf = append(w.buf, p...)
	for {
		i := bytes.IndexByte(w.buf, '\n')
		if i < 0 {
			break
		}
		line := bytes.TrimRight(w.buf[:i], "\r")
		if len(line) > 0 && w.level >= w.vm.env.LogLevel {
			w.vm.addLog(w.level, string(line))
		}
		w.buf = w.buf[i+1:]
	}
	if len(w.buf) == 0 {
		w.buf = nil
	}
	return len(p), nil
}
