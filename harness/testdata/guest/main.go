//go:build wasip1

// Command guest is a small proxy-wasm module for the harness tests, written
// against the raw ABI (no SDK). The request header x-mode selects what a
// stream does; statuses of host calls are reported back in request headers
// (x-*-status) so the tests can assert on them.
//
// Build: GOOS=wasip1 GOARCH=wasm go build -buildmode=c-shared -o guest.wasm .
package main

import (
	"encoding/binary"
	"strconv"
	"time"
	"unsafe"
)

func main() {}

// --- imports ----------------------------------------------------------------

//go:wasmimport env proxy_log
func proxyLog(level uint32, msg unsafe.Pointer, size uint32) uint32

//go:wasmimport env proxy_get_buffer_bytes
func proxyGetBufferBytes(t, start, max uint32, retPtr, retSize unsafe.Pointer) uint32

//go:wasmimport env proxy_set_buffer_bytes
func proxySetBufferBytes(t, start, size uint32, data unsafe.Pointer, dataSize uint32) uint32

//go:wasmimport env proxy_get_header_map_pairs
func proxyGetHeaderMapPairs(t uint32, retPtr, retSize unsafe.Pointer) uint32

//go:wasmimport env proxy_get_header_map_value
func proxyGetHeaderMapValue(t uint32, key unsafe.Pointer, keySize uint32, retPtr, retSize unsafe.Pointer) uint32

//go:wasmimport env proxy_add_header_map_value
func proxyAddHeaderMapValue(t uint32, key unsafe.Pointer, keySize uint32, val unsafe.Pointer, valSize uint32) uint32

//go:wasmimport env proxy_replace_header_map_value
func proxyReplaceHeaderMapValue(t uint32, key unsafe.Pointer, keySize uint32, val unsafe.Pointer, valSize uint32) uint32

//go:wasmimport env proxy_remove_header_map_value
func proxyRemoveHeaderMapValue(t uint32, key unsafe.Pointer, keySize uint32) uint32

//go:wasmimport env proxy_continue_stream
func proxyContinueStream(t uint32) uint32

//go:wasmimport env proxy_send_local_response
func proxySendLocalResponse(status uint32, details unsafe.Pointer, detailsSize uint32, body unsafe.Pointer, bodySize uint32, headers unsafe.Pointer, headersSize uint32, grpc int32) uint32

//go:wasmimport env proxy_http_call
func proxyHTTPCall(up unsafe.Pointer, upSize uint32, headers unsafe.Pointer, headersSize uint32, body unsafe.Pointer, bodySize uint32, trailers unsafe.Pointer, trailersSize uint32, timeout uint32, retID unsafe.Pointer) uint32

//go:wasmimport env proxy_set_effective_context
func proxySetEffectiveContext(id uint32) uint32

//go:wasmimport env proxy_get_property
func proxyGetProperty(path unsafe.Pointer, pathSize uint32, retPtr, retSize unsafe.Pointer) uint32

//go:wasmimport env proxy_set_property
func proxySetProperty(path unsafe.Pointer, pathSize uint32, val unsafe.Pointer, valSize uint32) uint32

//go:wasmimport env proxy_define_metric
func proxyDefineMetric(t uint32, name unsafe.Pointer, nameSize uint32, retID unsafe.Pointer) uint32

//go:wasmimport env proxy_increment_metric
func proxyIncrementMetric(id uint32, delta int64) uint32

//go:wasmimport env proxy_record_metric
func proxyRecordMetric(id uint32, v int64) uint32

//go:wasmimport env proxy_set_tick_period_milliseconds
func proxySetTickPeriod(ms uint32) uint32

//go:wasmimport env proxy_get_shared_data
func proxyGetSharedData(key unsafe.Pointer, keySize uint32, retPtr, retSize, retCas unsafe.Pointer) uint32

//go:wasmimport env proxy_set_shared_data
func proxySetSharedData(key unsafe.Pointer, keySize uint32, val unsafe.Pointer, valSize uint32, cas uint32) uint32

// --- memory -------------------------------------------------------------------

// lastAlloc keeps the last block handed to the host alive until the guest
// has read it (every host call below allocates at most once).
var lastAlloc []byte

//go:wasmexport proxy_on_memory_allocate
func onMemoryAllocate(size uint32) uint32 {
	if size == 0 {
		size = 1
	}
	lastAlloc = make([]byte, size)
	return uint32(uintptr(unsafe.Pointer(&lastAlloc[0])))
}

// returned turns the (ptr, size) the host wrote into the bytes it copied.
func returned(ptr, size uint32) []byte {
	if size == 0 {
		return nil
	}
	if ptr != uint32(uintptr(unsafe.Pointer(&lastAlloc[0]))) {
		panic("host returned memory it did not allocate with proxy_on_memory_allocate")
	}
	return lastAlloc[:size:size]
}

func sp(s string) unsafe.Pointer { return unsafe.Pointer(unsafe.StringData(s)) }

func bp(b []byte) unsafe.Pointer {
	if len(b) == 0 {
		return nil
	}
	return unsafe.Pointer(&b[0])
}

// --- typed wrappers -------------------------------------------------------------

const (
	mapRequest      = 0
	mapResponse     = 2
	mapCallResponse = 6
	bufRequestBody  = 0
	bufResponseBody = 1
	bufCallBody     = 4
	bufVMConfig     = 6
	bufPluginConfig = 7
	maxBuf          = 0x7fffffff
	levelInfo       = 2
	levelError      = 4
)

func logf(level uint32, s string) { proxyLog(level, sp(s), uint32(len(s))) }

func getBuffer(t, start, max uint32) ([]byte, uint32) {
	var ptr, size uint32
	st := proxyGetBufferBytes(t, start, max, unsafe.Pointer(&ptr), unsafe.Pointer(&size))
	if st != 0 {
		return nil, st
	}
	return returned(ptr, size), 0
}

func setBuffer(t, start, size uint32, data []byte) uint32 {
	return proxySetBufferBytes(t, start, size, bp(data), uint32(len(data)))
}

func header(m uint32, key string) (string, uint32) {
	var ptr, size uint32
	st := proxyGetHeaderMapValue(m, sp(key), uint32(len(key)), unsafe.Pointer(&ptr), unsafe.Pointer(&size))
	if st != 0 {
		return "", st
	}
	return string(returned(ptr, size)), 0
}

func headerCount(m uint32) (int, uint32) {
	var ptr, size uint32
	st := proxyGetHeaderMapPairs(m, unsafe.Pointer(&ptr), unsafe.Pointer(&size))
	if st != 0 {
		return 0, st
	}
	b := returned(ptr, size)
	if len(b) < 4 {
		return 0, 0
	}
	return int(binary.LittleEndian.Uint32(b)), 0
}

func setHeader(m uint32, k, v string) uint32 {
	return proxyReplaceHeaderMapValue(m, sp(k), uint32(len(k)), sp(v), uint32(len(v)))
}

func addHeader(m uint32, k, v string) uint32 {
	return proxyAddHeaderMapValue(m, sp(k), uint32(len(k)), sp(v), uint32(len(v)))
}

func removeHeader(m uint32, k string) uint32 {
	return proxyRemoveHeaderMapValue(m, sp(k), uint32(len(k)))
}

func encodeHeaders(hs [][2]string) []byte {
	b := binary.LittleEndian.AppendUint32(nil, uint32(len(hs)))
	for _, h := range hs {
		b = binary.LittleEndian.AppendUint32(b, uint32(len(h[0])))
		b = binary.LittleEndian.AppendUint32(b, uint32(len(h[1])))
	}
	for _, h := range hs {
		b = append(append(b, h[0]...), 0)
		b = append(append(b, h[1]...), 0)
	}
	return b
}

func sendLocal(status uint32, body string, hs [][2]string) uint32 {
	h := encodeHeaders(hs)
	d := "guest_local"
	return proxySendLocalResponse(status, sp(d), uint32(len(d)), sp(body), uint32(len(body)), bp(h), uint32(len(h)), -1)
}

func httpCall(upstream string, hs [][2]string, body []byte) (uint32, uint32) {
	h := encodeHeaders(hs)
	var id uint32
	st := proxyHTTPCall(sp(upstream), uint32(len(upstream)), bp(h), uint32(len(h)), bp(body), uint32(len(body)), nil, 0, 1500, unsafe.Pointer(&id))
	return id, st
}

func setProperty(path, v string) uint32 {
	return proxySetProperty(sp(path), uint32(len(path)), sp(v), uint32(len(v)))
}

func getProperty(path string) (string, uint32) {
	var ptr, size uint32
	st := proxyGetProperty(sp(path), uint32(len(path)), unsafe.Pointer(&ptr), unsafe.Pointer(&size))
	if st != 0 {
		return "", st
	}
	return string(returned(ptr, size)), 0
}

func defineMetric(t uint32, name string) uint32 {
	var id uint32
	if st := proxyDefineMetric(t, sp(name), uint32(len(name)), unsafe.Pointer(&id)); st != 0 {
		logf(levelError, "define metric "+name+": status "+itoa(st))
	}
	return id
}

func itoa(v uint32) string { return strconv.FormatUint(uint64(v), 10) }

// --- state ----------------------------------------------------------------------

type stream struct {
	root uint32
	mode string
}

var (
	streams   = map[uint32]*stream{}
	callOwner = map[uint32]uint32{} // call id → stream context id

	requests, done, ticks, latency, inflight uint32 // metric ids
)

func callHeaders(path string) [][2]string {
	return [][2]string{{":method", "POST"}, {":path", path}, {":authority", "llm.local"}, {"content-type", "application/json"}}
}

// --- callbacks --------------------------------------------------------------------

// init runs in _initialize: host calls must already work there.
func init() {
	logf(levelInfo, "guest initialized")
	if _, st := getProperty("plugin_name"); st != 10 && st != 1 {
		logf(levelError, "property during _initialize: status "+itoa(st))
	}
}

//go:wasmexport proxy_abi_version_0_2_1
func abiVersion() {}

//go:wasmexport proxy_on_context_create
func onContextCreate(id, parent uint32) {
	if parent != 0 {
		streams[id] = &stream{root: parent}
	}
}

//go:wasmexport proxy_on_vm_start
func onVMStart(root, size uint32) uint32 {
	cfg, _ := getBuffer(bufVMConfig, 0, size)
	if string(cfg) == "fail" {
		logf(levelError, "vm configuration refused")
		return 0
	}
	return 1
}

//go:wasmexport proxy_on_configure
func onConfigure(root, size uint32) uint32 {
	cfg, st := getBuffer(bufPluginConfig, 0, size)
	if st != 0 {
		logf(levelError, "cannot read configuration: status "+itoa(st))
		return 0
	}
	switch string(cfg) {
	case "reject":
		logf(levelError, `invalid configuration: field "model" is required`)
		return 0
	case "tick":
		logf(levelInfo, "tick status "+itoa(proxySetTickPeriod(10)))
	}
	// The call-response body is readable only inside proxy_on_http_call_response.
	if _, st := getBuffer(bufCallBody, 0, maxBuf); st != 1 {
		logf(levelError, "call body outside call response: status "+itoa(st))
		return 0
	}
	requests = defineMetric(0, "guest.requests_total")
	done = defineMetric(0, "guest.streams_done")
	ticks = defineMetric(0, "guest.ticks")
	latency = defineMetric(2, "guest.latency_ms")
	inflight = defineMetric(1, "guest.inflight")
	logf(levelInfo, "configured "+string(cfg))
	return 1
}

//go:wasmexport proxy_on_request_headers
func onRequestHeaders(ctx, n, eos uint32) uint32 {
	st := streams[ctx]
	if v, _ := header(mapRequest, "x-panic"); v == "1" {
		panic("guest panics on purpose")
	}
	st.mode, _ = header(mapRequest, "X-Mode") // lookups are case-insensitive
	proxyIncrementMetric(requests, 1)
	proxyRecordMetric(latency, 42)
	proxyIncrementMetric(inflight, 1)

	path, _ := header(mapRequest, ":path")
	count, _ := headerCount(mapRequest)
	setHeader(mapRequest, "x-path-seen", path)
	setHeader(mapRequest, "x-num-headers", itoa(n)+"/"+strconv.Itoa(count))
	setHeader(mapRequest, "x-replace-me", "replaced")
	addHeader(mapRequest, "x-added", "1")
	removeHeader(mapRequest, "x-remove-me")
	setProperty("guest\x00mode", st.mode)
	setProperty("wasm_process_req_body", "1") // APISIX: deliver the body
	setProperty("wasm_process_resp_body", "1")
	rid, _ := getProperty("plugin_root_id")
	method, _ := getProperty("request\x00method")
	setHeader(mapRequest, "x-root-id", rid)
	setHeader(mapRequest, "x-method-prop", method)
	_, cs := getBuffer(bufCallBody, 0, maxBuf)
	setHeader(mapRequest, "x-callbody-status", itoa(cs))

	switch st.mode {
	case "local":
		sendLocal(403, `{"error":"denied"}`, [][2]string{{"x-local", "yes"}, {"content-type", "application/json"}})
		return 1
	case "call":
		id, s := httpCall("llm", callHeaders("/v1/chat"), []byte("ping"))
		setHeader(mapRequest, "x-call-status", itoa(s))
		if s != 0 {
			return 0
		}
		callOwner[id] = ctx
		return 1
	case "call-hostport":
		id, s := httpCall("api.example.com:443", callHeaders("/v1/chat"), []byte("ping"))
		setHeader(mapRequest, "x-call-status", itoa(s))
		if s == 0 {
			callOwner[id] = ctx
			return 1
		}
		return 0
	case "call-missing":
		_, s := httpCall("llm", [][2]string{{":method", "GET"}, {":authority", "llm.local"}}, nil)
		setHeader(mapRequest, "x-call-status", itoa(s))
		return 0
	case "badptr":
		s1 := proxyLog(levelInfo, unsafe.Pointer(uintptr(0xfffffff0)), 100)
		s2 := proxyGetHeaderMapPairs(mapRequest, unsafe.Pointer(uintptr(0xfffffffc)), unsafe.Pointer(uintptr(0xfffffffc)))
		s3 := proxyHTTPCall(sp("llm"), 3, unsafe.Pointer(uintptr(0xffffff00)), 1000, nil, 0, nil, 0, 10, nil)
		setHeader(mapRequest, "x-badptr-status", itoa(s1)+","+itoa(s2)+","+itoa(s3))
		return 0
	case "shared":
		k, v := "shared-key", "v1"
		s1 := proxySetSharedData(sp(k), uint32(len(k)), sp(v), uint32(len(v)), 0)
		var ptr, size, cas uint32
		s2 := proxyGetSharedData(sp(k), uint32(len(k)), unsafe.Pointer(&ptr), unsafe.Pointer(&size), unsafe.Pointer(&cas))
		got := ""
		if s2 == 0 {
			got = string(returned(ptr, size))
		}
		s3 := proxySetSharedData(sp(k), uint32(len(k)), sp(v), uint32(len(v)), cas+1000)
		s4 := proxySetSharedData(sp(k), uint32(len(k)), sp(v), uint32(len(v)), cas)
		setHeader(mapRequest, "x-shared-status", itoa(s1)+","+itoa(s2)+","+itoa(s3)+","+itoa(s4)+","+got)
		return 0
	case "sleep":
		// Long enough that the timer has not fired when the runtime looks for
		// work, even on a loaded machine: it must then wait in poll_oneoff.
		time.Sleep(50 * time.Millisecond)
		return 0
	case "buffer", "callbody":
		if eos == 0 {
			return 1 // wait for the body
		}
	}
	return 0
}

//go:wasmexport proxy_on_request_body
func onRequestBody(ctx, size, eos uint32) uint32 {
	st := streams[ctx]
	switch st.mode {
	case "buffer":
		if eos == 0 {
			return 1
		}
		body, _ := getBuffer(bufRequestBody, 0, size)
		s := setBuffer(bufRequestBody, 0, maxBuf, []byte("["+string(body)+"]"))
		setHeader(mapRequest, "x-set-body-status", itoa(s))
		setHeader(mapRequest, "x-body-size", itoa(size))
		return 0
	case "callbody":
		if eos == 0 {
			return 1
		}
		body, _ := getBuffer(bufRequestBody, 0, size)
		id, s := httpCall("llm", callHeaders("/v1/body"), body)
		setHeader(mapRequest, "x-call-status", itoa(s))
		if s != 0 {
			return 0
		}
		callOwner[id] = ctx
		return 1
	}
	return 0
}

//go:wasmexport proxy_on_http_call_response
func onHTTPCallResponse(root, id, nh, bodySize, nt uint32) {
	ctx, ok := callOwner[id]
	if !ok {
		logf(levelError, "unknown call "+itoa(id))
		return
	}
	delete(callOwner, id)
	// Before switching, the effective context is the root: no request headers.
	if _, s := header(mapRequest, ":path"); s == 0 {
		logf(levelError, "request headers visible from the root context")
	}
	if s := proxySetEffectiveContext(ctx); s != 0 {
		logf(levelError, "set effective context: status "+itoa(s))
		return
	}
	st := streams[ctx]
	if nh == 0 {
		sendLocal(502, `{"error":"upstream failed"}`, [][2]string{{"content-type", "application/json"}})
		return
	}
	status, _ := header(mapCallResponse, ":status")
	body, _ := getBuffer(bufCallBody, 0, bodySize)
	setHeader(mapRequest, "x-call-result", status+":"+string(body))
	setHeader(mapRequest, "x-call-counts", itoa(nh)+","+itoa(bodySize)+","+itoa(nt))
	if st.mode == "callbody" {
		s := setBuffer(bufRequestBody, 0, maxBuf, body)
		setHeader(mapRequest, "x-set-body-status", itoa(s))
	}
	if status == "599" {
		panic("guest panics in the call response")
	}
	if status == "418" {
		sendLocal(200, string(body), [][2]string{{"x-from", "call"}})
		return
	}
	proxyContinueStream(0)
}

//go:wasmexport proxy_on_response_headers
func onResponseHeaders(ctx, n, eos uint32) uint32 {
	status, _ := header(mapResponse, ":status")
	addHeader(mapResponse, "x-guest", "1")
	setHeader(mapResponse, "x-status-seen", status)
	if streams[ctx].mode == "late" {
		// http calls are request-phase only under APISIX.
		_, s := httpCall("api.example.com:443", callHeaders("/late"), nil)
		setHeader(mapResponse, "x-late-call-status", itoa(s))
	}
	return 0
}

//go:wasmexport proxy_on_response_body
func onResponseBody(ctx, size, eos uint32) uint32 {
	if streams[ctx].mode != "wrap" {
		return 0
	}
	if eos == 0 {
		return 1
	}
	setBuffer(bufResponseBody, 0, 0, []byte("<"))      // prepend
	setBuffer(bufResponseBody, maxBuf, 0, []byte(">")) // append
	return 0
}

// trace logs the end-of-stream callbacks of "order" streams.
func trace(ctx uint32, what string) {
	if st := streams[ctx]; st != nil && st.mode == "order" {
		logf(levelInfo, what+" "+itoa(ctx))
	}
}

//go:wasmexport proxy_on_log
func onLog(ctx uint32) {
	trace(ctx, "on_log")
	proxyIncrementMetric(done, 1)
	proxyIncrementMetric(inflight, -1)
}

//go:wasmexport proxy_on_done
func onDone(ctx uint32) uint32 {
	trace(ctx, "on_done")
	return 1
}

//go:wasmexport proxy_on_delete
func onDelete(ctx uint32) {
	trace(ctx, "on_delete")
	delete(streams, ctx)
}

//go:wasmexport proxy_on_tick
func onTick(root uint32) { proxyIncrementMetric(ticks, 1) }
