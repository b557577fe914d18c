//go:build wasip1

// Command filter is the proxy-wasm module of the gateway tests, written
// against the raw ABI. Its plugin configuration is a tag ("A", "B"; one per
// root context, several plugins may share the VM) that it
// leaves in x-chain (request) and x-resp-chain (response) headers, or
// "reject" to fail proxy_on_configure. Request headers x-test-* select what
// a stream does (see the gateway tests); x-test-prop and x-test-prop-log
// ("name=value;...") set stream properties in on_request_headers and on_log.
//
// Build: GOOS=wasip1 GOARCH=wasm go build -buildmode=c-shared -o filter.wasm .
package main

import (
	"encoding/binary"
	"strconv"
	"strings"
	"unsafe"
)

func main() {}

//go:wasmimport env proxy_log
func proxyLog(level uint32, msg unsafe.Pointer, size uint32) uint32

//go:wasmimport env proxy_get_buffer_bytes
func proxyGetBufferBytes(t, start, max uint32, retPtr, retSize unsafe.Pointer) uint32

//go:wasmimport env proxy_set_buffer_bytes
func proxySetBufferBytes(t, start, size uint32, data unsafe.Pointer, dataSize uint32) uint32

//go:wasmimport env proxy_get_header_map_value
func proxyGetHeaderMapValue(t uint32, key unsafe.Pointer, keySize uint32, retPtr, retSize unsafe.Pointer) uint32

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

//go:wasmimport env proxy_define_metric
func proxyDefineMetric(t uint32, name unsafe.Pointer, nameSize uint32, retID unsafe.Pointer) uint32

//go:wasmimport env proxy_set_property
func proxySetProperty(path unsafe.Pointer, pathSize uint32, val unsafe.Pointer, valSize uint32) uint32

//go:wasmimport env proxy_increment_metric
func proxyIncrementMetric(id uint32, delta int64) uint32

var lastAlloc []byte

//go:wasmexport proxy_on_memory_allocate
func onMemoryAllocate(size uint32) uint32 {
	if size == 0 {
		size = 1
	}
	lastAlloc = make([]byte, size)
	return uint32(uintptr(unsafe.Pointer(&lastAlloc[0])))
}

func returned(size uint32) []byte {
	if size == 0 {
		return nil
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

const (
	mapRequest      = 0
	mapResponse     = 2
	mapCallResponse = 6
	bufRequestBody  = 0
	bufResponseBody = 1
	bufCallBody     = 4
	bufPluginConfig = 7
	maxBuf          = 0x7fffffff
	levelInfo       = 2
	levelError      = 4
)

func logf(level uint32, s string) { proxyLog(level, sp(s), uint32(len(s))) }

func getBuffer(t, size uint32) []byte {
	var ptr, n uint32
	if proxyGetBufferBytes(t, 0, size, unsafe.Pointer(&ptr), unsafe.Pointer(&n)) != 0 {
		return nil
	}
	return append([]byte(nil), returned(n)...)
}

func setBuffer(t uint32, data []byte) uint32 {
	return proxySetBufferBytes(t, 0, maxBuf, bp(data), uint32(len(data)))
}

func header(m uint32, key string) string {
	var ptr, n uint32
	if proxyGetHeaderMapValue(m, sp(key), uint32(len(key)), unsafe.Pointer(&ptr), unsafe.Pointer(&n)) != 0 {
		return ""
	}
	return string(returned(n))
}

func setHeader(m uint32, k, v string) {
	proxyReplaceHeaderMapValue(m, sp(k), uint32(len(k)), sp(v), uint32(len(v)))
}

func removeHeader(m uint32, k string) { proxyRemoveHeaderMapValue(m, sp(k), uint32(len(k))) }

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

func sendLocal(status int, body string, hs [][2]string) {
	h := encodeHeaders(hs)
	d := "test_filter"
	proxySendLocalResponse(uint32(status), sp(d), uint32(len(d)), sp(body), uint32(len(body)), bp(h), uint32(len(h)), -1)
}

// stream is the per-request state, read from the x-test-* request headers.
type stream struct {
	tag        string // the plugin's configuration
	local      string // x-test-local: answer locally with this status
	body       string // x-test-body: append | keep
	call       string // x-test-call: cluster to call
	callAt     string // x-test-call-at: headers (call while the body is still unread)
	callMode   string // x-test-call-mode: local (default) | resume
	callPath   string
	callAuth   string
	callScheme string
	callTO     uint32
	respLocal  string // x-test-resp-local: answer locally from on_response_headers
	respBody   string // x-test-resp-body: buffer
	hold       bool   // x-test-hold-headers: TAG: pause in on_request_headers until the body is complete
	respHold   bool   // x-test-resp-hold-headers: TAG: the same on the response side
	logProps   string // x-test-prop-log: "name=value;..." set in proxy_on_log
}

// setProps sets each "name=value" of the ';'-separated list as a stream
// property (single-segment paths).
func setProps(list string) {
	for _, kv := range strings.Split(list, ";") {
		if k, v, ok := strings.Cut(kv, "="); ok {
			proxySetProperty(sp(k), uint32(len(k)), sp(v), uint32(len(v)))
		}
	}
}

var (
	tags      = map[uint32]string{} // root context id → plugin configuration
	streams   = map[uint32]*stream{}
	callOwner = map[uint32]uint32{}
	requests  uint32
	logged    uint32
)

//go:wasmexport proxy_abi_version_0_2_1
func abiVersion() {}

//go:wasmexport proxy_on_context_create
func onContextCreate(id, parent uint32) {
	if parent != 0 {
		streams[id] = &stream{tag: tags[parent]}
	}
}

//go:wasmexport proxy_on_vm_start
func onVMStart(root, size uint32) uint32 { return 1 }

//go:wasmexport proxy_on_configure
func onConfigure(root, size uint32) uint32 {
	cfg := string(getBuffer(bufPluginConfig, size))
	if cfg == "reject" {
		logf(levelError, `invalid configuration: field "model" is required`)
		return 0
	}
	tags[root] = cfg
	for _, m := range []struct {
		name string
		id   *uint32
	}{{"gwtest.requests_total", &requests}, {"gwtest.logged_total", &logged}} {
		proxyDefineMetric(0, sp(m.name), uint32(len(m.name)), unsafe.Pointer(m.id))
	}
	logf(levelInfo, "configured "+cfg)
	return 1
}

//go:wasmexport proxy_on_request_headers
func onRequestHeaders(ctx, n, eos uint32) uint32 {
	st := streams[ctx]
	tag := st.tag
	proxyIncrementMetric(requests, 1)
	logf(levelInfo, "request "+header(mapRequest, ":path")+" tag="+tag)
	setHeader(mapRequest, "x-chain", header(mapRequest, "x-chain")+tag)
	if header(mapRequest, "x-test-trap") != "" {
		// A runtime panic no export recovers: the module traps.
		var m map[string]int
		m["trap"] = 1
	}
	st.local = header(mapRequest, "x-test-local")
	st.body = header(mapRequest, "x-test-body")
	st.call = header(mapRequest, "x-test-call")
	st.callAt = header(mapRequest, "x-test-call-at")
	st.callMode = header(mapRequest, "x-test-call-mode")
	st.callPath = header(mapRequest, "x-test-call-path")
	st.callAuth = header(mapRequest, "x-test-call-authority")
	st.callScheme = header(mapRequest, "x-test-call-scheme")
	st.respLocal = header(mapRequest, "x-test-resp-local")
	st.respBody = header(mapRequest, "x-test-resp-body")
	st.hold = header(mapRequest, "x-test-hold-headers") == st.tag
	st.respHold = header(mapRequest, "x-test-resp-hold-headers") == st.tag
	st.callTO = 5000
	setProps(header(mapRequest, "x-test-prop"))
	st.logProps = header(mapRequest, "x-test-prop-log")
	if v := header(mapRequest, "x-test-call-timeout"); v != "" {
		t, _ := strconv.Atoi(v)
		st.callTO = uint32(t)
	}
	if v := header(mapRequest, "x-test-set-path"); v != "" {
		setHeader(mapRequest, ":path", v)
	}
	if v := header(mapRequest, "x-test-set-header"); v != "" {
		if k, val, ok := strings.Cut(v, "="); ok {
			setHeader(mapRequest, k, val)
		}
	}
	if st.local != "" {
		status, _ := strconv.Atoi(st.local)
		sendLocal(status, "local:"+tag, [][2]string{{"x-local-by", tag}})
		return 1
	}
	if st.body == "append" {
		removeHeader(mapRequest, "content-length")
	}
	if st.call != "" && (eos != 0 || st.callAt == "headers") {
		return startCall(ctx, st, nil)
	}
	if st.hold && eos == 0 {
		return 1
	}
	return 0
}

//go:wasmexport proxy_on_request_body
func onRequestBody(ctx, size, eos uint32) uint32 {
	st := streams[ctx]
	tag := st.tag
	if st.hold {
		return 1 - eos // Pause until the end, then Continue (which releases the headers)
	}
	if st.body == "" && st.call == "" {
		return 0
	}
	if eos == 0 {
		return 1
	}
	body := getBuffer(bufRequestBody, size)
	if st.body == "append" {
		setBuffer(bufRequestBody, append(body, "+"+tag...))
	}
	if st.call != "" && st.callAt != "headers" {
		return startCall(ctx, st, body)
	}
	return 0
}

func startCall(ctx uint32, st *stream, body []byte) uint32 {
	path := st.callPath
	if path == "" {
		path = "/call"
	}
	auth := st.callAuth
	if auth == "" {
		auth = "callee.local"
	}
	hs := [][2]string{{":method", "POST"}, {":path", path}, {":authority", auth}, {"x-caller", st.tag}}
	if st.callScheme != "" {
		hs = append(hs, [2]string{":scheme", st.callScheme})
	}
	h := encodeHeaders(hs)
	var id uint32
	s := proxyHTTPCall(sp(st.call), uint32(len(st.call)), bp(h), uint32(len(h)), bp(body), uint32(len(body)), nil, 0, st.callTO, unsafe.Pointer(&id))
	if s != 0 {
		sendLocal(500, "call rejected status="+strconv.Itoa(int(s)), nil)
		return 1
	}
	callOwner[id] = ctx
	return 1
}

//go:wasmexport proxy_on_http_call_response
func onHTTPCallResponse(root, id, nh, bodySize, nt uint32) {
	ctx, ok := callOwner[id]
	if !ok {
		return
	}
	delete(callOwner, id)
	proxySetEffectiveContext(ctx)
	st := streams[ctx]
	if st == nil {
		return
	}
	if nh == 0 {
		sendLocal(502, "call failed", nil)
		return
	}
	status := header(mapCallResponse, ":status")
	body := string(getBuffer(bufCallBody, bodySize))
	if st.callMode == "resume" {
		setHeader(mapRequest, "x-call-status", status)
		setHeader(mapRequest, "x-call-body", body)
		proxyContinueStream(0)
		return
	}
	sendLocal(200, "status="+status+" body="+body, [][2]string{{"content-type", "text/plain"}})
}

//go:wasmexport proxy_on_response_headers
func onResponseHeaders(ctx, n, eos uint32) uint32 {
	st := streams[ctx]
	tag := st.tag
	setHeader(mapResponse, "x-resp-chain", header(mapResponse, "x-resp-chain")+tag)
	if st.respLocal != "" {
		status, _ := strconv.Atoi(st.respLocal)
		st.respLocal = ""
		sendLocal(status, "resp-local:"+tag, nil)
		return 1
	}
	if st.respBody == "buffer" {
		removeHeader(mapResponse, "content-length")
	}
	if st.respHold && eos == 0 {
		return 1
	}
	return 0
}

//go:wasmexport proxy_on_response_body
func onResponseBody(ctx, size, eos uint32) uint32 {
	st := streams[ctx]
	tag := st.tag
	if st.respHold {
		return 1 - eos
	}
	if st.respBody != "buffer" {
		return 0
	}
	if eos == 0 {
		return 1
	}
	setBuffer(bufResponseBody, append(getBuffer(bufResponseBody, size), "|"+tag...))
	return 0
}

//go:wasmexport proxy_on_log
func onLog(ctx uint32) {
	proxyIncrementMetric(logged, 1)
	if st := streams[ctx]; st != nil {
		setProps(st.logProps)
	}
}

//go:wasmexport proxy_on_done
func onDone(ctx uint32) uint32 { return 1 }

//go:wasmexport proxy_on_delete
func onDelete(ctx uint32) { delete(streams, ctx) }
