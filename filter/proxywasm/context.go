// Package proxywasm binds a filter written in standard Go (GOOS=wasip1, a WASI
// reactor built with -buildmode=c-shared) to the proxy-wasm ABI v0.2.1.
//
// The host calls the exported proxy_on_* functions (entrypoints_wasip1.go);
// they dispatch to the context objects the filter registered with SetRootContextFactory.
// The filter calls the host through the typed wrappers in hostcalls.go.
//
// Rules that follow from the ABI and from Go's wasm runtime:
//   - Nothing runs between callbacks: no goroutines, no timers. Work that must
//     happen later is an http call-out or a tick.
//   - Every export recovers from a panic: it is logged, a stream callback answers
//     the stream with a 500 JSON error, and the VM keeps serving.
//   - Per-stream state is released when the host calls proxy_on_delete.
package proxywasm

import "ai-proxy/filter/proxywasm/abi"

// RootContext is a plugin instance: one per filter configuration per VM.
// Its methods run on the VM's only thread.
type RootContext interface {
	// OnVMStart is called once with the size of the VM configuration
	// (readable with GetVMConfiguration during this call only).
	OnVMStart(vmConfigurationSize int) bool
	// OnPluginStart is called with the size of the plugin configuration
	// (readable with GetPluginConfiguration during this call only). Returning
	// false rejects the configuration: the host refuses to load the filter.
	OnPluginStart(pluginConfigurationSize int) bool
	// NewHttpContext creates the state of one HTTP stream.
	NewHttpContext(contextID uint32) HttpContext
	// OnTick is called at the period set with SetTickPeriod.
	OnTick()
}

// HttpContext is one HTTP stream. Each method is a callback of the ABI; the
// header and body host calls act on the stream whose callback is running.
type HttpContext interface {
	OnHttpRequestHeaders(numHeaders int, endOfStream bool) abi.Action
	OnHttpRequestBody(bodySize int, endOfStream bool) abi.Action
	OnHttpRequestTrailers(numTrailers int) abi.Action
	OnHttpResponseHeaders(numHeaders int, endOfStream bool) abi.Action
	OnHttpResponseBody(bodySize int, endOfStream bool) abi.Action
	OnHttpResponseTrailers(numTrailers int) abi.Action
	// OnHttpStreamDone is called from proxy_on_log, once, when the stream ends.
	OnHttpStreamDone()
	// OnHttpContextDelete is called from proxy_on_delete, when the host has
	// deleted the stream: none of its callbacks runs afterwards, so it may
	// recycle itself. A context whose callback panicked is not told.
	OnHttpContextDelete()
}

// CallResponseFunc receives the answer to DispatchHttpCall. numHeaders == 0
// means the call failed (reset, timeout, no upstream): the host sends no
// headers then. The call-response buffers can be read only during this call.
type CallResponseFunc func(numHeaders, bodySize, numTrailers int)

// PanicHandler answers a stream whose callback panicked. It runs with the
// stream as the effective context, so it may send a local response.
type PanicHandler func(recovered any)

var (
	newRoot      func(contextID uint32) RootContext
	panicHandler PanicHandler
)

// SetRootContextFactory registers the function that creates root contexts.
// Call it from the filter's init().
func SetRootContextFactory(f func(contextID uint32) RootContext) { newRoot = f }

// SetPanicHandler registers what a stream callback that panicked answers.
// Without one, the stream gets a plain 500.
func SetPanicHandler(h PanicHandler) { panicHandler = h }

// DefaultHttpContext implements HttpContext with callbacks that continue.
// Embed it to implement only what a filter needs.
type DefaultHttpContext struct{}

var _ HttpContext = DefaultHttpContext{}

func (DefaultHttpContext) OnHttpRequestHeaders(int, bool) abi.Action  { return abi.ActionContinue }
func (DefaultHttpContext) OnHttpRequestBody(int, bool) abi.Action     { return abi.ActionContinue }
func (DefaultHttpContext) OnHttpRequestTrailers(int) abi.Action       { return abi.ActionContinue }
func (DefaultHttpContext) OnHttpResponseHeaders(int, bool) abi.Action { return abi.ActionContinue }
func (DefaultHttpContext) OnHttpResponseBody(int, bool) abi.Action    { return abi.ActionContinue }
func (DefaultHttpContext) OnHttpResponseTrailers(int) abi.Action      { return abi.ActionContinue }
func (DefaultHttpContext) OnHttpStreamDone()                          {}
func (DefaultHttpContext) OnHttpContextDelete()                       {}
