package harness

import (
	"context"
	"strconv"
	"strings"
	"time"

	"github.com/tetratelabs/wazero"
	"github.com/tetratelabs/wazero/api"

	"ai-proxy/filter/proxywasm/abi"
)

// hostFunc is one "env" import: a handler over the raw parameter words that
// returns a proxy_status_t.
type hostFunc struct {
	name   string
	params []api.ValueType
	fn     func(vm *VM, p []uint64) abi.Status
}

func i32s(n int) []api.ValueType {
	ts := make([]api.ValueType, n)
	for i := range ts {
		ts[i] = api.ValueTypeI32
	}
	return ts
}

var (
	i32Result = []api.ValueType{api.ValueTypeI32}
	i32i64    = []api.ValueType{api.ValueTypeI32, api.ValueTypeI64}
)

// hostFuncs is the proxy-wasm v0.2.1 "env" surface; notOnAPISIX marks the
// calls APISIX's wasm host lacks.
var hostFuncs = []hostFunc{
	{"proxy_log", i32s(3), hostLog},
	{"proxy_get_log_level", i32s(1), hostGetLogLevel},
	{"proxy_get_current_time_nanoseconds", i32s(1), notOnAPISIX(hostGetCurrentTime)},
	{"proxy_set_tick_period_milliseconds", i32s(1), notOnAPISIX(hostSetTickPeriod)},
	{"proxy_get_buffer_bytes", i32s(5), hostGetBufferBytes},
	{"proxy_set_buffer_bytes", i32s(5), notOnAPISIX(hostSetBufferBytes)},
	{"proxy_get_buffer_status", i32s(3), notOnAPISIX(hostGetBufferStatus)},
	{"proxy_get_header_map_pairs", i32s(3), hostGetHeaderMapPairs},
	{"proxy_set_header_map_pairs", i32s(3), notOnAPISIX(hostSetHeaderMapPairs)},
	{"proxy_get_header_map_value", i32s(5), hostGetHeaderMapValue},
	{"proxy_get_header_map_size", i32s(2), hostGetHeaderMapSize},
	{"proxy_add_header_map_value", i32s(5), hostAddHeaderMapValue},
	{"proxy_replace_header_map_value", i32s(5), hostReplaceHeaderMapValue},
	{"proxy_remove_header_map_value", i32s(3), hostRemoveHeaderMapValue},
	{"proxy_continue_stream", i32s(1), hostContinueStream},
	{"proxy_close_stream", i32s(1), hostCloseStream},
	{"proxy_send_local_response", i32s(8), hostSendLocalResponse},
	{"proxy_http_call", i32s(10), hostHTTPCall},
	{"proxy_get_property", i32s(4), hostGetProperty},
	{"proxy_set_property", i32s(4), hostSetProperty},
	{"proxy_get_shared_data", i32s(5), notOnAPISIX(hostGetSharedData)},
	{"proxy_set_shared_data", i32s(5), notOnAPISIX(hostSetSharedData)},
	{"proxy_register_shared_queue", i32s(3), notOnAPISIX(hostRegisterSharedQueue)},
	{"proxy_resolve_shared_queue", i32s(5), notOnAPISIX(hostResolveSharedQueue)},
	{"proxy_enqueue_shared_queue", i32s(3), notOnAPISIX(hostEnqueueSharedQueue)},
	{"proxy_dequeue_shared_queue", i32s(3), notOnAPISIX(hostDequeueSharedQueue)},
	{"proxy_set_effective_context", i32s(1), hostSetEffectiveContext},
	{"proxy_done", nil, notOnAPISIX(hostDone)},
	{"proxy_define_metric", i32s(4), hostDefineMetric},
	{"proxy_increment_metric", i32i64, hostIncrementMetric},
	{"proxy_record_metric", i32i64, hostRecordMetric},
	{"proxy_get_metric", i32s(2), hostGetMetric},
	{"proxy_call_foreign_function", i32s(6), hostUnimplemented},
	{"proxy_get_status", i32s(3), hostUnimplemented},
	{"proxy_grpc_call", i32s(12), hostUnimplemented},
	{"proxy_grpc_stream", i32s(9), hostUnimplemented},
	{"proxy_grpc_send", i32s(4), hostUnimplemented},
	{"proxy_grpc_cancel", i32s(1), hostUnimplemented},
	{"proxy_grpc_close", i32s(1), hostUnimplemented},
}

// buildEnv returns the "env" host module builder. The functions are shared
// by every VM of the runtime and find their VM in the call's context.
func buildEnv(rt wazero.Runtime) wazero.HostModuleBuilder {
	b := rt.NewHostModuleBuilder("env")
	for _, h := range hostFuncs {
		fn := h.fn
		b.NewFunctionBuilder().
			WithGoModuleFunction(api.GoModuleFunc(func(ctx context.Context, mod api.Module, stack []uint64) {
				vm := ctx.Value(vmKey{}).(*VM)
				if vm.mem == nil { // a host call from _initialize, before NewVM bound the instance
					vm.mem = mod.Memory()
				}
				stack[0] = uint64(fn(vm, stack))
			}), h.params, i32Result).
			WithName(h.name).
			Export(h.name)
	}
	return b
}

func hostUnimplemented(*VM, []uint64) abi.Status { return abi.StatusUnimplemented }

// notOnAPISIX wraps a host call that APISIX's wasm host does not implement:
// under ProfileAPISIX it answers UNIMPLEMENTED without running fn.
func notOnAPISIX(fn func(*VM, []uint64) abi.Status) func(*VM, []uint64) abi.Status {
	return func(vm *VM, p []uint64) abi.Status {
		if vm.apisix() {
			return abi.StatusUnimplemented
		}
		return fn(vm, p)
	}
}

// --- guest memory -----------------------------------------------------------

// read returns a view of guest memory (valid until the guest runs again,
// since a memory grow may move it). A zero size is always valid.
func (vm *VM) read(ptr, size uint64) ([]byte, bool) {
	if size == 0 {
		return nil, true
	}
	return vm.mem.Read(uint32(ptr), uint32(size))
}

// writable reports whether n bytes at ptr are inside guest memory.
func (vm *VM) writable(ptr uint64, n uint32) bool {
	_, ok := vm.mem.Read(uint32(ptr), n)
	return ok
}

// malloc obtains n bytes from the guest's proxy_on_memory_allocate. A trap in
// the allocator aborts the current host call (wazero turns the panic into
// the error of the outer call, which then breaks the VM).
func (vm *VM) malloc(n uint32) uint32 {
	vm.mstack[0] = uint64(n)
	if err := vm.fn.malloc.CallWithStack(vm.ctx, vm.mstack[:]); err != nil {
		panic(err)
	}
	return uint32(vm.mstack[0])
}

// copyOut hands data to the guest: memory from proxy_on_memory_allocate,
// its address written at ptrPtr and its size at sizePtr. Empty data is
// returned as (0, 0) without an allocation. During _initialize the guest's
// allocator is not callable yet: INTERNAL_FAILURE.
func (vm *VM) copyOut(data []byte, ptrPtr, sizePtr uint64) abi.Status {
	if !vm.writable(ptrPtr, 4) || !vm.writable(sizePtr, 4) {
		return abi.StatusInvalidMemoryAccess
	}
	if vm.fn.malloc == nil {
		return abi.StatusInternalFailure
	}
	var p uint32
	if len(data) > 0 {
		p = vm.malloc(uint32(len(data)))
		if p == 0 || !vm.mem.Write(p, data) {
			return abi.StatusInvalidMemoryAccess
		}
	}
	vm.mem.WriteUint32Le(uint32(ptrPtr), p)
	vm.mem.WriteUint32Le(uint32(sizePtr), uint32(len(data)))
	return abi.StatusOK
}

func (vm *VM) writeU32(ptr uint64, v uint32) abi.Status {
	if !vm.mem.WriteUint32Le(uint32(ptr), v) {
		return abi.StatusInvalidMemoryAccess
	}
	return abi.StatusOK
}

func (vm *VM) writeU64(ptr uint64, v uint64) abi.Status {
	if !vm.mem.WriteUint64Le(uint32(ptr), v) {
		return abi.StatusInvalidMemoryAccess
	}
	return abi.StatusOK
}

func (vm *VM) apisix() bool { return vm.env.Profile == ProfileAPISIX }

// --- logging, time, ticks ---------------------------------------------------

func hostLog(vm *VM, p []uint64) abi.Status {
	level := abi.LogLevel(p[0])
	if level > abi.LogCritical {
		return abi.StatusBadArgument
	}
	msg, ok := vm.read(p[1], p[2])
	if !ok {
		return abi.StatusInvalidMemoryAccess
	}
	if level >= vm.env.LogLevel {
		vm.addLog(level, string(msg))
	}
	return abi.StatusOK
}

func hostGetLogLevel(vm *VM, p []uint64) abi.Status {
	return vm.writeU32(p[0], uint32(vm.env.LogLevel))
}

func hostGetCurrentTime(vm *VM, p []uint64) abi.Status {
	return vm.writeU64(p[0], uint64(time.Now().UnixNano()))
}

func hostSetTickPeriod(vm *VM, p []uint64) abi.Status {
	if vm.cur.plugin == nil {
		return abi.StatusBadArgument
	}
	vm.cur.plugin.tick = time.Duration(uint32(p[0])) * time.Millisecond
	return abi.StatusOK
}

// --- buffers ----------------------------------------------------------------

// buffer returns a pointer to the buffer t of the effective context, and
// whether it may be written.
func (vm *VM) buffer(t abi.BufferType) (*[]byte, bool, abi.Status) {
	switch t {
	case abi.BufferHTTPRequestBody:
		if vm.cur.stream == nil {
			return nil, false, abi.StatusNotFound
		}
		return &vm.cur.stream.reqBody, true, abi.StatusOK
	case abi.BufferHTTPResponseBody:
		if vm.cur.stream == nil {
			return nil, false, abi.StatusNotFound
		}
		return &vm.cur.stream.respBody, true, abi.StatusOK
	case abi.BufferHTTPCallResponseBody:
		if vm.cur.phase != phaseCallResponse || vm.cur.callResp == nil {
			return nil, false, abi.StatusNotFound
		}
		return &vm.cur.callResp.Body, false, abi.StatusOK
	case abi.BufferVMConfiguration:
		if vm.apisix() {
			return nil, false, abi.StatusUnimplemented
		}
		if vm.cur.phase != phaseVMStart {
			return nil, false, abi.StatusNotFound
		}
		return &vm.cur.config, false, abi.StatusOK
	case abi.BufferPluginConfiguration:
		if vm.cur.phase != phaseConfigure {
			return nil, false, abi.StatusNotFound
		}
		return &vm.cur.config, false, abi.StatusOK
	case abi.BufferDownstreamData, abi.BufferUpstreamData, abi.BufferGRPCReceiveBuffer, abi.BufferCallData:
		if vm.apisix() {
			return nil, false, abi.StatusUnimplemented
		}
		return nil, false, abi.StatusNotFound
	}
	return nil, false, abi.StatusBadArgument
}

func hostGetBufferBytes(vm *VM, p []uint64) abi.Status {
	buf, _, st := vm.buffer(abi.BufferType(p[0]))
	if st != abi.StatusOK {
		return st
	}
	b := *buf
	start, max := uint64(uint32(p[1])), uint64(uint32(p[2]))
	if start > uint64(len(b)) {
		return abi.StatusBadArgument
	}
	end := start + max
	if end > uint64(len(b)) {
		end = uint64(len(b))
	}
	return vm.copyOut(b[start:end], p[3], p[4])
}

// hostSetBufferBytes edits a body buffer with Envoy's semantics (the only
// edits Envoy's Buffer::copyFrom accepts): start 0 and size 0 prepends,
// start 0 and size >= length replaces everything, start >= length appends;
// anything else is BAD_ARGUMENT. UNIMPLEMENTED under ProfileAPISIX.
func hostSetBufferBytes(vm *VM, p []uint64) abi.Status {
	buf, writable, st := vm.buffer(abi.BufferType(p[0]))
	if st != abi.StatusOK {
		return st
	}
	if !writable {
		return abi.StatusBadArgument
	}
	data, ok := vm.read(p[3], p[4])
	if !ok {
		return abi.StatusInvalidMemoryAccess
	}
	b := *buf
	start, size := uint64(uint32(p[1])), uint64(uint32(p[2]))
	n := uint64(len(b))
	switch {
	case start == 0 && size == 0:
		nb := make([]byte, 0, len(data)+len(b))
		*buf = append(append(nb, data...), b...)
	case start == 0 && size >= n:
		*buf = append(b[:0], data...)
	case start >= n:
		*buf = append(b, data...)
	default:
		return abi.StatusBadArgument
	}
	return abi.StatusOK
}

func hostGetBufferStatus(vm *VM, p []uint64) abi.Status {
	buf, _, st := vm.buffer(abi.BufferType(p[0]))
	if st != abi.StatusOK {
		return st
	}
	if !vm.writable(p[1], 4) || !vm.writable(p[2], 4) {
		return abi.StatusInvalidMemoryAccess
	}
	vm.mem.WriteUint32Le(uint32(p[1]), uint32(len(*buf)))
	vm.mem.WriteUint32Le(uint32(p[2]), 0)
	return abi.StatusOK
}

// --- header maps --------------------------------------------------------------

// headerMap returns a pointer to map t of the effective context and whether
// the guest may modify it (the call-response maps are read-only).
func (vm *VM) headerMap(t abi.MapType) (*[]abi.Header, bool, abi.Status) {
	s := vm.cur.stream
	switch t {
	case abi.MapHTTPRequestHeaders, abi.MapHTTPRequestTrailers, abi.MapHTTPResponseHeaders, abi.MapHTTPResponseTrailers:
		if s == nil {
			return nil, false, abi.StatusNotFound
		}
		switch t {
		case abi.MapHTTPRequestHeaders:
			return &s.reqHeaders, true, abi.StatusOK
		case abi.MapHTTPRequestTrailers:
			return &s.reqTrailers, true, abi.StatusOK
		case abi.MapHTTPResponseHeaders:
			return &s.respHeaders, true, abi.StatusOK
		default:
			return &s.respTrailers, true, abi.StatusOK
		}
	case abi.MapHTTPCallResponseHeaders, abi.MapHTTPCallResponseTrailers:
		if vm.cur.phase != phaseCallResponse || vm.cur.callResp == nil {
			return nil, false, abi.StatusNotFound
		}
		if t == abi.MapHTTPCallResponseHeaders {
			return &vm.cur.callResp.Headers, false, abi.StatusOK
		}
		return &vm.cur.callResp.Trailers, false, abi.StatusOK
	case abi.MapGRPCReceiveInitialMeta, abi.MapGRPCReceiveTrailingMeta:
		return nil, false, abi.StatusNotFound
	}
	return nil, false, abi.StatusBadArgument
}

func hostGetHeaderMapPairs(vm *VM, p []uint64) abi.Status {
	hs, _, st := vm.headerMap(abi.MapType(p[0]))
	if st != abi.StatusOK {
		return st
	}
	vm.scratch = abi.AppendHeaders(vm.scratch[:0], *hs)
	return vm.copyOut(vm.scratch, p[1], p[2])
}

func hostSetHeaderMapPairs(vm *VM, p []uint64) abi.Status {
	hs, st := vm.writableMap(abi.MapType(p[0]))
	if st != abi.StatusOK {
		return st
	}
	data, ok := vm.read(p[1], p[2])
	if !ok {
		return abi.StatusInvalidMemoryAccess
	}
	decoded, err := abi.DecodeHeaders(data)
	if err != nil {
		return abi.StatusBadArgument
	}
	*hs = decoded
	return abi.StatusOK
}

func hostGetHeaderMapValue(vm *VM, p []uint64) abi.Status {
	hs, _, st := vm.headerMap(abi.MapType(p[0]))
	if st != abi.StatusOK {
		return st
	}
	key, ok := vm.read(p[1], p[2])
	if !ok {
		return abi.StatusInvalidMemoryAccess
	}
	for _, h := range *hs {
		if equalFold(h[0], key) {
			vm.scratch = append(vm.scratch[:0], h[1]...)
			return vm.copyOut(vm.scratch, p[3], p[4])
		}
	}
	return abi.StatusNotFound
}

func hostGetHeaderMapSize(vm *VM, p []uint64) abi.Status {
	hs, _, st := vm.headerMap(abi.MapType(p[0]))
	if st != abi.StatusOK {
		return st
	}
	return vm.writeU32(p[1], uint32(abi.EncodedSize(*hs)))
}

// writableMap is headerMap for the calls that modify the map: a read-only
// map is BAD_ARGUMENT.
func (vm *VM) writableMap(t abi.MapType) (*[]abi.Header, abi.Status) {
	hs, writable, st := vm.headerMap(t)
	if st == abi.StatusOK && !writable {
		return nil, abi.StatusBadArgument
	}
	return hs, st
}

// writableMapKV reads the map, key and value arguments of the add and
// replace calls.
func (vm *VM) writableMapKV(p []uint64) (*[]abi.Header, []byte, []byte, abi.Status) {
	hs, st := vm.writableMap(abi.MapType(p[0]))
	if st != abi.StatusOK {
		return nil, nil, nil, st
	}
	key, ok := vm.read(p[1], p[2])
	if !ok {
		return nil, nil, nil, abi.StatusInvalidMemoryAccess
	}
	val, ok := vm.read(p[3], p[4])
	if !ok {
		return nil, nil, nil, abi.StatusInvalidMemoryAccess
	}
	return hs, key, val, abi.StatusOK
}

func hostAddHeaderMapValue(vm *VM, p []uint64) abi.Status {
	hs, key, val, st := vm.writableMapKV(p)
	if st != abi.StatusOK {
		return st
	}
	*hs = append(*hs, abi.Header{vm.internKey(key), vm.internValue(val)})
	return abi.StatusOK
}

// hostReplaceHeaderMapValue sets the first header named key to the value
// and removes the others; an absent header is added.
func hostReplaceHeaderMapValue(vm *VM, p []uint64) abi.Status {
	hs, key, val, st := vm.writableMapKV(p)
	if st != abi.StatusOK {
		return st
	}
	m := *hs
	found := false
	out := m[:0]
	// Filters set the same values on every request (an endpoint, a
	// credential): short ones are interned rather than copied each time.
	v := vm.internValue(val)
	for _, h := range m {
		if equalFold(h[0], key) {
			if found {
				continue
			}
			found = true
			h[1] = v
		}
		out = append(out, h)
	}
	clear(m[len(out):])
	if !found {
		out = append(out, abi.Header{vm.internKey(key), v})
	}
	*hs = out
	return abi.StatusOK
}

func hostRemoveHeaderMapValue(vm *VM, p []uint64) abi.Status {
	hs, st := vm.writableMap(abi.MapType(p[0]))
	if st != abi.StatusOK {
		return st
	}
	key, ok := vm.read(p[1], p[2])
	if !ok {
		return abi.StatusInvalidMemoryAccess
	}
	m := *hs
	out := m[:0]
	for _, h := range m {
		if !equalFold(h[0], key) {
			out = append(out, h)
		}
	}
	clear(m[len(out):])
	*hs = out
	return abi.StatusOK
}

// --- stream control -----------------------------------------------------------

func hostContinueStream(vm *VM, p []uint64) abi.Status {
	s := vm.cur.stream
	t := abi.StreamType(p[0])
	if s == nil || t > abi.StreamHTTPResponse {
		return abi.StatusBadArgument
	}
	s.resumed[t] = true
	s.notify()
	return abi.StatusOK
}

func hostCloseStream(vm *VM, p []uint64) abi.Status {
	s := vm.cur.stream
	if s == nil || abi.StreamType(p[0]) > abi.StreamHTTPResponse {
		return abi.StatusBadArgument
	}
	s.closed = true
	s.notify()
	return abi.StatusOK
}

// hostSendLocalResponse: (status, details, details_len, body, body_len,
// headers, headers_len, grpc_status).
func hostSendLocalResponse(vm *VM, p []uint64) abi.Status {
	s := vm.cur.stream
	if s == nil {
		return abi.StatusBadArgument
	}
	details, ok1 := vm.read(p[1], p[2])
	body, ok2 := vm.read(p[3], p[4])
	hdata, ok3 := vm.read(p[5], p[6])
	if !ok1 || !ok2 || !ok3 {
		return abi.StatusInvalidMemoryAccess
	}
	hs, err := abi.DecodeHeaders(hdata)
	if err != nil {
		return abi.StatusBadArgument
	}
	s.local = &LocalResponse{
		Status:  int(uint32(p[0])),
		Details: string(details),
		Headers: hs,
		Body:    append([]byte(nil), body...),
	}
	s.notify()
	return abi.StatusOK
}

// hostHTTPCall: (upstream, upstream_len, headers, headers_len, body,
// body_len, trailers, trailers_len, timeout_ms, ret_callout_id).
//
// Envoy: the upstream is a cluster name, checked by Env.HTTPCall. APISIX
// (api7/wasm-nginx-module): the upstream is host[:port]; a call outside the
// request phase is refused with BAD_ARGUMENT ("http call is only supported
// during processing HTTP request"), and a second call while one of the
// request's calls is outstanding with INTERNAL_FAILURE ("multiple calls are
// not supported"). The request phase includes proxy_on_http_call_response,
// which APISIX runs inside the request's access phase, so a chained call
// (a retry, a fallback) made there is legal.
func hostHTTPCall(vm *VM, p []uint64) abi.Status {
	up, ok1 := vm.read(p[0], p[1])
	hdata, ok2 := vm.read(p[2], p[3])
	body, ok3 := vm.read(p[4], p[5])
	tdata, ok4 := vm.read(p[6], p[7])
	if !ok1 || !ok2 || !ok3 || !ok4 || !vm.writable(p[9], 4) {
		return abi.StatusInvalidMemoryAccess
	}
	hs, err := abi.DecodeHeaders(hdata)
	if err != nil {
		return abi.StatusBadArgument
	}
	trailers, err := abi.DecodeHeaders(tdata)
	if err != nil {
		return abi.StatusBadArgument
	}
	if HeaderValue(hs, ":method") == "" || HeaderValue(hs, ":path") == "" || HeaderValue(hs, ":authority") == "" {
		return abi.StatusBadArgument
	}
	upstream := string(up)
	s := vm.cur.stream
	if vm.apisix() {
		switch vm.cur.phase {
		case phaseRequestHeaders, phaseRequestBody, phaseCallResponse:
		default:
			return abi.StatusBadArgument
		}
		if s == nil {
			return abi.StatusBadArgument
		}
		if !validHostPort(upstream) {
			return abi.StatusBadArgument
		}
		if s.calls > 0 {
			return abi.StatusInternalFailure
		}
	}
	vm.nextCall++
	call := HTTPCall{
		ID:       vm.nextCall,
		Upstream: upstream,
		Headers:  hs,
		Body:     append([]byte(nil), body...),
		Trailers: trailers,
		Timeout:  time.Duration(uint32(p[8])) * time.Millisecond,
	}
	if vm.env.HTTPCall != nil && !vm.env.HTTPCall(call) {
		return abi.StatusBadArgument
	}
	vm.calls[call.ID] = &pendingCall{call: call, plugin: vm.cur.plugin, stream: s}
	if s != nil {
		s.calls++
	}
	return vm.writeU32(p[9], call.ID)
}

// validHostPort accepts an APISIX http call upstream: host:port or
// [v6]:port, the host made of letters, digits, '.', '-' and '_'. nginx's
// ngx_parse_url would also take a bare host (port 80); the harness demands
// the explicit port, as the contract's default cluster has one, so a cluster
// name passed where APISIX expects an address is caught.
func validHostPort(s string) bool {
	i := strings.LastIndexByte(s, ':')
	if i < 0 {
		return false
	}
	host, port := s[:i], s[i+1:]
	n, err := strconv.Atoi(port)
	if err != nil || n < 1 || n > 65535 || port[0] == '+' {
		return false
	}
	if strings.HasPrefix(host, "[") && strings.HasSuffix(host, "]") {
		v6 := host[1 : len(host)-1]
		if v6 == "" {
			return false
		}
		for _, c := range v6 {
			if !(c == ':' || c == '.' || '0' <= c && c <= '9' || 'a' <= c && c <= 'f' || 'A' <= c && c <= 'F') {
				return false
			}
		}
		return true
	}
	if host == "" {
		return false
	}
	for _, c := range host {
		if !(c == '.' || c == '-' || c == '_' || 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9') {
			return false
		}
	}
	return true
}

// --- properties -------------------------------------------------------------

// propertyKey turns a NUL-separated path into a "."-joined key in vm.keybuf
// (lowercased under ProfileAPISIX, whose properties are nginx variables).
func (vm *VM) propertyKey(path []byte) []byte {
	k := append(vm.keybuf[:0], path...)
	for i, c := range k {
		switch {
		case c == 0:
			k[i] = '.'
		case vm.apisix() && 'A' <= c && c <= 'Z':
			k[i] = c + 'a' - 'A'
		}
	}
	vm.keybuf = k
	return k
}

// maxInternedKeys bounds the strings (property keys, header names and short
// values) a VM interns; the guest chooses them, so past this many a string is
// a new one each time.
const maxInternedKeys = 1024

// internKey returns key as a string, shared by every use of the same bytes.
func (vm *VM) internKey(key []byte) string {
	if k, ok := vm.keys[string(key)]; ok {
		return k
	}
	k := string(key)
	if len(vm.keys) < maxInternedKeys {
		if vm.keys == nil {
			vm.keys = make(map[string]string)
		}
		vm.keys[k] = k
	}
	return k
}

// maxInternedValue is the longest header value internValue shares.
const maxInternedValue = 256

// internValue is internKey for a header value: shared when short, a new
// string otherwise.
func (vm *VM) internValue(val []byte) string {
	if len(val) > maxInternedValue {
		return string(val)
	}
	return vm.internKey(val)
}

// builtinProperty answers the properties the host knows itself.
func (vm *VM) builtinProperty(key []byte) (string, bool) {
	p, s := vm.cur.plugin, vm.cur.stream
	var v string
	switch string(key) {
	case "plugin_root_id":
		if p == nil {
			return "", false
		}
		return p.cfg.RootID, true
	case "plugin_name":
		if p == nil {
			return "", false
		}
		return p.cfg.Name, true
	case "request.path", "request.method", "request.host", "request.scheme", "request.id":
		if s == nil {
			return "", false
		}
		switch string(key) {
		case "request.path":
			v = HeaderValue(s.reqHeaders, ":path")
		case "request.method":
			v = HeaderValue(s.reqHeaders, ":method")
		case "request.host":
			v = HeaderValue(s.reqHeaders, ":authority")
			if v == "" {
				v = HeaderValue(s.reqHeaders, "host")
			}
		case "request.scheme":
			v = HeaderValue(s.reqHeaders, ":scheme")
		case "request.id":
			v = HeaderValue(s.reqHeaders, "x-request-id")
		}
		return v, v != ""
	}
	return "", false
}

// hostGetProperty looks the path up in the effective stream's properties,
// then its plugin's, then the builtins (plugin_root_id, plugin_name,
// request.path, request.method, request.host, request.scheme, request.id).
func hostGetProperty(vm *VM, p []uint64) abi.Status {
	path, ok := vm.read(p[0], p[1])
	if !ok {
		return abi.StatusInvalidMemoryAccess
	}
	key := vm.propertyKey(path)
	if s := vm.cur.stream; s != nil {
		if v := s.props.get(string(key)); v != nil {
			return vm.copyOut(v, p[2], p[3])
		}
	}
	if pl := vm.cur.plugin; pl != nil {
		if v, ok := pl.props[string(key)]; ok {
			return vm.copyOut(v, p[2], p[3])
		}
	}
	if v, ok := vm.builtinProperty(key); ok {
		vm.scratch = append(vm.scratch[:0], v...)
		return vm.copyOut(vm.scratch, p[2], p[3])
	}
	return abi.StatusNotFound
}

func hostSetProperty(vm *VM, p []uint64) abi.Status {
	path, ok1 := vm.read(p[0], p[1])
	val, ok2 := vm.read(p[2], p[3])
	if !ok1 || !ok2 {
		return abi.StatusInvalidMemoryAccess
	}
	key := vm.internKey(vm.propertyKey(path))
	switch {
	case vm.cur.stream != nil:
		vm.cur.stream.props.set(key, val)
	case vm.cur.plugin != nil:
		pl := vm.cur.plugin
		if pl.props == nil {
			pl.props = make(map[string][]byte)
		}
		pl.props[key] = append([]byte(nil), val...)
	default:
		return abi.StatusBadArgument
	}
	return abi.StatusOK
}

// --- shared data and queues (UNIMPLEMENTED under ProfileAPISIX) ---------------

// hostGetSharedData: (key, key_len, ret_value, ret_value_len, ret_cas).
func hostGetSharedData(vm *VM, p []uint64) abi.Status {
	key, ok := vm.read(p[0], p[1])
	if !ok || !vm.writable(p[4], 4) {
		return abi.StatusInvalidMemoryAccess
	}
	v, cas, found := vm.mod.shared.get(string(key))
	if !found {
		return abi.StatusNotFound
	}
	if st := vm.copyOut(v, p[2], p[3]); st != abi.StatusOK {
		return st
	}
	return vm.writeU32(p[4], cas)
}

// hostSetSharedData: (key, key_len, value, value_len, cas).
func hostSetSharedData(vm *VM, p []uint64) abi.Status {
	key, ok1 := vm.read(p[0], p[1])
	val, ok2 := vm.read(p[2], p[3])
	if !ok1 || !ok2 {
		return abi.StatusInvalidMemoryAccess
	}
	if !vm.mod.shared.set(string(key), append([]byte(nil), val...), uint32(p[4])) {
		return abi.StatusCASMismatch
	}
	return abi.StatusOK
}

// hostRegisterSharedQueue: (name, name_len, ret_queue_id).
func hostRegisterSharedQueue(vm *VM, p []uint64) abi.Status {
	name, ok := vm.read(p[0], p[1])
	if !ok || !vm.writable(p[2], 4) {
		return abi.StatusInvalidMemoryAccess
	}
	return vm.writeU32(p[2], vm.mod.queues.register(string(name)))
}

// hostResolveSharedQueue: (vm_id, vm_id_len, name, name_len, ret_queue_id).
// Queues are per Module; the vm_id is ignored.
func hostResolveSharedQueue(vm *VM, p []uint64) abi.Status {
	_, ok1 := vm.read(p[0], p[1])
	name, ok2 := vm.read(p[2], p[3])
	if !ok1 || !ok2 || !vm.writable(p[4], 4) {
		return abi.StatusInvalidMemoryAccess
	}
	id, found := vm.mod.queues.resolve(string(name))
	if !found {
		return abi.StatusNotFound
	}
	return vm.writeU32(p[4], id)
}

// hostEnqueueSharedQueue: (queue_id, data, data_len). proxy_on_queue_ready
// is not delivered.
func hostEnqueueSharedQueue(vm *VM, p []uint64) abi.Status {
	data, ok := vm.read(p[1], p[2])
	if !ok {
		return abi.StatusInvalidMemoryAccess
	}
	if !vm.mod.queues.enqueue(uint32(p[0]), append([]byte(nil), data...)) {
		return abi.StatusNotFound
	}
	return abi.StatusOK
}

// hostDequeueSharedQueue: (queue_id, ret_data, ret_data_len).
func hostDequeueSharedQueue(vm *VM, p []uint64) abi.Status {
	if !vm.writable(p[1], 4) || !vm.writable(p[2], 4) {
		return abi.StatusInvalidMemoryAccess
	}
	data, known, empty := vm.mod.queues.dequeue(uint32(p[0]))
	switch {
	case !known:
		return abi.StatusNotFound
	case empty:
		return abi.StatusEmpty
	}
	return vm.copyOut(data, p[1], p[2])
}

// --- contexts -------------------------------------------------------------------

// hostSetEffectiveContext switches the context later host calls act on, for
// the rest of the current callback (typically from the root context, in
// proxy_on_http_call_response, to the stream that made the call).
func hostSetEffectiveContext(vm *VM, p []uint64) abi.Status {
	id := uint32(p[0])
	if s, ok := vm.streams[id]; ok && !s.done {
		vm.cur.stream, vm.cur.plugin = s, s.plugin
		return abi.StatusOK
	}
	if pl, ok := vm.plugins[id]; ok {
		vm.cur.stream, vm.cur.plugin = nil, pl
		return abi.StatusOK
	}
	return abi.StatusBadArgument
}

func hostDone(*VM, []uint64) abi.Status { return abi.StatusOK }

// --- metrics ------------------------------------------------------------------

// hostDefineMetric: (type, name, name_len, ret_metric_id).
func hostDefineMetric(vm *VM, p []uint64) abi.Status {
	name, ok := vm.read(p[1], p[2])
	if !ok || !vm.writable(p[3], 4) {
		return abi.StatusInvalidMemoryAccess
	}
	id, st := vm.metrics.define(abi.MetricType(p[0]), string(name))
	if st != abi.StatusOK {
		return st
	}
	return vm.writeU32(p[3], id)
}

func hostIncrementMetric(vm *VM, p []uint64) abi.Status {
	return vm.metrics.increment(uint32(p[0]), int64(p[1]))
}

func hostRecordMetric(vm *VM, p []uint64) abi.Status {
	return vm.metrics.record(uint32(p[0]), int64(p[1]))
}

func hostGetMetric(vm *VM, p []uint64) abi.Status {
	v, st := vm.metrics.get(uint32(p[0]))
	if st != abi.StatusOK {
		return st
	}
	return vm.writeU64(p[1], uint64(v))
}
