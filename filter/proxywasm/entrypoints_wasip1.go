//go:build wasip1

package proxywasm

import (
	"ai-proxy/filter/proxywasm/abi"
)

// The exports of ABI v0.2.1. Each one is a thin shim over dispatch.go.

//go:wasmexport proxy_abi_version_0_2_1
func proxyABIVersion021() {}

//go:wasmexport proxy_on_memory_allocate
func proxyOnMemoryAllocate(size uint32) *byte { return allocate(size) }

//go:wasmexport proxy_on_context_create
func proxyOnContextCreate(contextID, parentID uint32) { onContextCreate(contextID, parentID) }

//go:wasmexport proxy_on_vm_start
func proxyOnVMStart(rootID, size uint32) uint32 { return boolU32(onVMStart(rootID, int(size))) }

//go:wasmexport proxy_on_configure
func proxyOnConfigure(rootID, size uint32) uint32 { return boolU32(onConfigure(rootID, int(size))) }

//go:wasmexport proxy_on_tick
func proxyOnTick(rootID uint32) { onTick(rootID) }

//go:wasmexport proxy_on_request_headers
func proxyOnRequestHeaders(contextID, numHeaders, endOfStream uint32) uint32 {
	return uint32(streamCallback(contextID, func(c HttpContext) abi.Action {
		return c.OnHttpRequestHeaders(int(numHeaders), endOfStream != 0)
	}))
}

//go:wasmexport proxy_on_request_body
func proxyOnRequestBody(contextID, bodySize, endOfStream uint32) uint32 {
	return uint32(streamCallback(contextID, func(c HttpContext) abi.Action {
		return c.OnHttpRequestBody(int(bodySize), endOfStream != 0)
	}))
}

//go:wasmexport proxy_on_request_trailers
func proxyOnRequestTrailers(contextID, numTrailers uint32) uint32 {
	return uint32(streamCallback(contextID, func(c HttpContext) abi.Action {
		return c.OnHttpRequestTrailers(int(numTrailers))
	}))
}

//go:wasmexport proxy_on_response_headers
func proxyOnResponseHeaders(contextID, numHeaders, endOfStream uint32) uint32 {
	return uint32(streamCallback(contextID, func(c HttpContext) abi.Action {
		return c.OnHttpResponseHeaders(int(numHeaders), endOfStream != 0)
	}))
}

//go:wasmexport proxy_on_response_body
func proxyOnResponseBody(contextID, bodySize, endOfStream uint32) uint32 {
	return uint32(streamCallback(contextID, func(c HttpContext) abi.Action {
		return c.OnHttpResponseBody(int(bodySize), endOfStream != 0)
	}))
}

//go:wasmexport proxy_on_response_trailers
func proxyOnResponseTrailers(contextID, numTrailers uint32) uint32 {
	return uint32(streamCallback(contextID, func(c HttpContext) abi.Action {
		return c.OnHttpResponseTrailers(int(numTrailers))
	}))
}

//go:wasmexport proxy_on_http_call_response
func proxyOnHttpCallResponse(rootID, calloutID, numHeaders, bodySize, numTrailers uint32) {
	onHttpCallResponse(rootID, calloutID, int(numHeaders), int(bodySize), int(numTrailers))
}

//go:wasmexport proxy_on_log
func proxyOnLog(contextID uint32) { onLog(contextID) }

// proxy_on_done is not exported: the binding has nothing to do there and
// every host treats the export as optional (proxy-wasm-cpp-host answers
// "done" itself, wasm-nginx-module skips a missing export), which saves a call
// into the VM per request.

//go:wasmexport proxy_on_delete
func proxyOnDelete(contextID uint32) { onDelete(contextID) }
