// Package harness is a proxy-wasm (ABI v0.2.1) host on wazero. It loads the
// real filter module, starts plugins with a configuration, and drives HTTP
// streams through them the way Envoy does. Tests use it directly; the gateway
// (harness/gateway) builds an HTTP proxy on it.
//
// Concurrency model (as in Envoy): a Module is compiled once per process; a VM
// is one instance of it and is single-threaded, so every call into a VM
// (stream callbacks, http call responses, ticks) takes the VM's lock. A VM
// serves many plugins and streams; a stream stays on its VM for life.
package harness

import (
	"time"

	"ai-proxy/filter/proxywasm/abi"
)

// Profile selects how the host behaves where real hosts differ.
type Profile string

const (
	// ProfileEnvoy: proxy_http_call targets a cluster name; everything implemented.
	ProfileEnvoy Profile = "envoy"
	// ProfileAPISIX behaves like api7/wasm-nginx-module: proxy_set_buffer_bytes,
	// proxy_set_header_map_pairs, shared data, shared queues and ticks answer
	// UNIMPLEMENTED; the http call target is "host:port"; http calls are only
	// allowed during request-phase callbacks (headers/body).
	ProfileAPISIX Profile = "apisix"
	// ProfileStrictWASI is Envoy with a WASI that answers ENOSYS for the calls
	// old V8 hosts lack (poll_oneoff, sched_yield, fd_fdstat_set_flags, ...).
	ProfileStrictWASI Profile = "strict-wasi"
)

// HTTPCall is one proxy_http_call made by the guest.
type HTTPCall struct {
	ID       uint32
	Upstream string       // cluster name (envoy) or "host:port" (apisix)
	Headers  []abi.Header // includes :method, :path, :authority (and :scheme when set)
	Body     []byte
	Trailers []abi.Header
	Timeout  time.Duration
}

// Header returns the first value of the header named name (case-insensitive).
func (c *HTTPCall) Header(name string) string { return HeaderValue(c.Headers, name) }

// CallResponse answers an HTTPCall. A nil *CallResponse means the call failed
// (reset, timeout, unreachable): the guest sees a response with no headers,
// as in Envoy.
type CallResponse struct {
	Headers  []abi.Header // must include :status
	Body     []byte
	Trailers []abi.Header
}

// LocalResponse is what the guest sent with proxy_send_local_response.
type LocalResponse struct {
	Status  int
	Details string
	Headers []abi.Header
	Body    []byte
}

// LogEntry is one proxy_log line.
type LogEntry struct {
	Level   abi.LogLevel
	Message string
}

// Env is what the embedding proxy provides to a VM.
type Env struct {
	Profile Profile
	// HTTPCall, when set, is called inside proxy_http_call (with the VM lock
	// held: it must not call back into the VM synchronously). It returns false
	// for an unknown upstream (the guest then gets BAD_ARGUMENT). The embedder
	// performs the call on its own goroutine and later calls VM.RespondCall
	// exactly once. When HTTPCall is nil the calls stay pending for the test to
	// answer (VM.PendingCalls, VM.RespondCall).
	HTTPCall func(call HTTPCall) bool
	// Log, when set, receives every proxy_log line (with the VM lock held).
	Log func(LogEntry)
	// Metrics is the metric store shared by the VMs of a process; nil gives the
	// VM a private one.
	Metrics *Metrics
	// LogLevel is what proxy_get_log_level reports; proxy_log lines below it
	// are dropped. The zero value (LogTrace) keeps everything.
	LogLevel abi.LogLevel
}

// PluginConfig starts a plugin (a root context) on a VM.
type PluginConfig struct {
	Name          string // Envoy's config.name
	RootID        string // Envoy's config.root_id
	VMConfig      []byte // read in proxy_on_vm_start
	Configuration []byte // read in proxy_on_configure
}

// HeaderValue returns the first value of name in hs (case-insensitive), or "".
func HeaderValue(hs []abi.Header, name string) string {
	for _, h := range hs {
		if equalFold(h[0], name) {
			return h[1]
		}
	}
	return ""
}

// equalFold compares a header name with a key (a string, or bytes in guest
// memory), ASCII case-insensitively, without allocating.
func equalFold[K string | []byte](a string, b K) bool {
	if len(a) != len(b) {
		return false
	}
	for i := 0; i < len(a); i++ {
		x, y := a[i], b[i]
		if 'A' <= x && x <= 'Z' {
			x += 'a' - 'A'
		}
		if 'A' <= y && y <= 'Z' {
			y += 'a' - 'A'
		}
		if x != y {
			return false
		}
	}
	return true
}

/*
The rest of the API (implemented in module.go, vm.go, stream.go, hostcalls.go,
metrics.go):

	func Compile(ctx context.Context, wasm []byte) (*Module, error)
	func (m *Module) Imports() []string            // "module.name", sorted
	func (m *Module) Close(ctx context.Context) error

	func (m *Module) NewVM(ctx context.Context, env Env) (*VM, error)
	    // instantiates, runs _initialize, checks the proxy_abi_version_0_2_1 export,
	    // creates the VM root context (id 1... ids are the host's) and calls proxy_on_vm_start.
	    // As implemented: NewVM runs only _initialize; each StartPlugin creates a root
	    // context and runs proxy_on_vm_start then proxy_on_configure on it (Envoy's
	    // per-root_id start). Additions: VM.Broken, VM.LiveStreams, VM.Profile,
	    // VM.Metrics, Plugin.ID/Name/VM, Stream.ID/Closed/RequestTrailers/
	    // ResponseTrailers/SendResponseTrailers, Metrics.Define/Add/Record, PromName,
	    // Env.LogLevel, and the sentinel errors in vm.go and module.go.
	func (vm *VM) StartPlugin(cfg PluginConfig) (*Plugin, error)
	    // proxy_on_context_create(root, 0) + proxy_on_configure. A false return is an
	    // error whose text carries the guest's last error-level log line.
	func (vm *VM) PendingCalls() []HTTPCall
	func (vm *VM) RespondCall(id uint32, resp *CallResponse) error
	    // calls proxy_on_http_call_response on the plugin that made the call.
	func (vm *VM) Tick(p *Plugin)                   // proxy_on_tick if a period is set
	func (vm *VM) TickPeriod(p *Plugin) time.Duration
	func (vm *VM) Logs() []LogEntry                 // last 1000 lines
	func (vm *VM) MemorySize() uint32               // linear memory in bytes
	func (vm *VM) Close(ctx context.Context) error

	func (p *Plugin) NewStream() *Stream            // proxy_on_context_create(id, root)

	// Stream drives one HTTP context. Body buffering follows Envoy: each
	// Send*Body appends the chunk to the host's buffer and calls the guest with
	// the whole buffered size; when the guest answers Continue, the embedder takes
	// the buffer with Take*Body and forwards it.
	func (s *Stream) SendRequestHeaders(hs []abi.Header, endOfStream bool) abi.Action
	func (s *Stream) SendRequestBody(chunk []byte, endOfStream bool) abi.Action
	func (s *Stream) SendRequestTrailers(hs []abi.Header) abi.Action
	func (s *Stream) SendResponseHeaders(hs []abi.Header, endOfStream bool) abi.Action
	func (s *Stream) SendResponseBody(chunk []byte, endOfStream bool) abi.Action
	func (s *Stream) RequestHeaders() []abi.Header   // as the guest left them
	func (s *Stream) ResponseHeaders() []abi.Header
	func (s *Stream) AppendRequestHeaders(dst []abi.Header) []abi.Header  // the same into a reused buffer
	func (s *Stream) AppendResponseHeaders(dst []abi.Header) []abi.Header
	func (s *Stream) RequestBody() []byte            // buffered, as the guest left it (copy)
	func (s *Stream) ResponseBody() []byte
	func (s *Stream) TakeRequestBody() []byte        // returns and empties the buffer
	func (s *Stream) TakeResponseBody() []byte
	func (s *Stream) LocalResponse() *LocalResponse  // nil until the guest sends one
	func (s *Stream) Resumed(t abi.StreamType) bool  // guest called proxy_continue_stream(t) since the last Send* on that side
	func (s *Stream) Signal() <-chan struct{}        // receives after proxy_continue_stream, proxy_close_stream or a local response
	func (s *Stream) Properties() map[string][]byte  // proxy_set_property values (copy); key = path segments joined by "."
	func (s *Stream) Done()                          // proxy_on_log, proxy_on_done, proxy_on_delete (idempotent)
	func (s *Stream) Release()                       // after Done: the VM may reuse the stream

	type Metrics struct{...}
	func NewMetrics() *Metrics
	func (m *Metrics) WritePrometheus(w io.Writer)   // counters, gauges, histograms
	func (m *Metrics) Value(name string) (int64, bool)
*/
