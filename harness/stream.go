package harness

import (
	"strings"
	"time"

	"ai-proxy/filter/proxywasm/abi"
)

// Plugin is a root context on a VM, created by VM.StartPlugin.
type Plugin struct {
	vm    *VM
	id    uint32
	cfg   PluginConfig
	tick  time.Duration     // set by proxy_set_tick_period_milliseconds
	props map[string][]byte // proxy_set_property while a root context is effective
}

// ID is the root context id.
func (p *Plugin) ID() uint32 { return p.id }

// Name is PluginConfig.Name.
func (p *Plugin) Name() string { return p.cfg.Name }

// VM is the VM the plugin lives on.
func (p *Plugin) VM() *VM { return p.vm }

// NewStream creates an HTTP context: proxy_on_context_create(id, root).
// The stream must be finished with Done, which releases the host's state.
func (p *Plugin) NewStream() *Stream {
	vm := p.vm
	vm.mu.Lock()
	defer vm.mu.Unlock()
	s := vm.reuseStream()
	if s == nil {
		s = &Stream{signal: make(chan struct{}, 1)}
	}
	s.vm, s.plugin, s.id = vm, p, vm.newID()
	vm.streams[s.id] = s
	if vm.broken.Load() {
		vm.failStream(s)
		return s
	}
	if vm.fn.has(phaseCreate) {
		vm.stack[0], vm.stack[1] = uint64(s.id), uint64(p.id)
		_, _ = vm.callIn(callState{stream: s, plugin: p, phase: phaseCreate})
	}
	return s
}

// Stream is one HTTP context. All its methods take the VM lock; they may be
// called from any goroutine, but one stream is meant to be driven by one
// goroutine at a time (the VM may touch it meanwhile from RespondCall).
//
// After every Send* the embedder checks, in this order: LocalResponse (the
// guest answered; send it and stop), the returned Action (Continue: take the
// buffered body with Take*Body and forward it; Pause: keep buffering, and
// wait on Signal when no more data will come), then Resumed.
type Stream struct {
	vm     *VM
	plugin *Plugin
	id     uint32

	reqHeaders, reqTrailers   []abi.Header
	respHeaders, respTrailers []abi.Header
	reqBody, respBody         []byte
	props                     streamProps

	local   *LocalResponse
	resumed [2]bool // by abi.StreamHTTPRequest / abi.StreamHTTPResponse
	closed  bool
	done    bool
	calls   int // proxy_http_call made from this stream and not answered yet
	signal  chan struct{}
}

// maxFreeStreams bounds the released streams a VM keeps for reuse.
const maxFreeStreams = 256

// Release hands a finished stream back to its VM, which reuses it (and its
// header lists and signal channel) for a later NewStream: an embedder that
// creates a stream per request saves their allocations. The embedder must
// not touch s afterwards, nor values it returned that the stream keeps
// (Properties). A stream not done yet, or with call-outs still in
// flight (their answers refer to it), is left to the garbage collector.
func (s *Stream) Release() {
	vm := s.vm
	vm.mu.Lock()
	defer vm.mu.Unlock()
	if !s.done || s.calls != 0 || len(vm.freeStreams) >= maxFreeStreams {
		return
	}
	vm.freeStreams = append(vm.freeStreams, s)
}

// reuseStream takes a released stream and clears it, keeping the capacity
// of its header lists and its (drained) signal channel; nil when there is
// none. The VM lock is held.
func (vm *VM) reuseStream() *Stream {
	n := len(vm.freeStreams)
	if n == 0 {
		return nil
	}
	s := vm.freeStreams[n-1]
	vm.freeStreams[n-1] = nil
	vm.freeStreams = vm.freeStreams[:n-1]
	reqHeaders, respHeaders, signal := s.reqHeaders[:0], s.respHeaders[:0], s.signal
	select {
	case <-signal:
	default:
	}
	*s = Stream{reqHeaders: reqHeaders, respHeaders: respHeaders, signal: signal}
	return s
}

// ID is the stream's context id.
func (s *Stream) ID() uint32 { return s.id }

// notify signals the stream without blocking (capacity 1: pending signals merge).
func (s *Stream) notify() {
	select {
	case s.signal <- struct{}{}:
	default:
	}
}

func b2u(b bool) uint64 {
	if b {
		return 1
	}
	return 0
}

// lowerHeaders copies hs into dst with lowercase names, as an HTTP/2 proxy
// presents them to filters.
func lowerHeaders(dst, hs []abi.Header) []abi.Header {
	if cap(dst) < len(hs) {
		dst = make([]abi.Header, 0, len(hs)+4) // room for what a filter adds
	}
	for _, h := range hs {
		dst = append(dst, abi.Header{strings.ToLower(h[0]), h[1]})
	}
	return dst
}

// begin is the common prologue of Send*: it reports false when the guest must
// not be called (stream done, or VM broken: the stream then has the trap
// response).
func (s *Stream) begin(side abi.StreamType) bool {
	if s.done {
		return false
	}
	s.resumed[side] = false
	if s.vm.broken.Load() {
		s.vm.failStream(s)
		return false
	}
	return true
}

// idle is the Action of a Send* that did not call the guest: Pause while a
// local response stands for the stream, except on a broken VM, where nothing
// would ever resume it (the embedder still finds the trap's local response
// with LocalResponse, and must not wait on this stream's filter).
func (s *Stream) idle() abi.Action {
	if s.local != nil && !s.vm.broken.Load() {
		return abi.ActionPause
	}
	return abi.ActionContinue
}

// sendHeaders is the Send* of a header map of side: it sets *dst to hs
// (names lowercased) and calls the callback of ph with (id, len(hs), eos).
func (s *Stream) sendHeaders(side abi.StreamType, ph phase, dst *[]abi.Header, hs []abi.Header, eos uint64) abi.Action {
	vm := s.vm
	vm.mu.Lock()
	defer vm.mu.Unlock()
	// The headers are recorded even when the guest is not called, so an
	// embedder passing them along (a local reply through a broken VM's
	// stream) reads them back unchanged.
	*dst = lowerHeaders((*dst)[:0], hs)
	if !s.begin(side) {
		return s.idle()
	}
	return vm.streamCall(s, ph, uint64(len(hs)), eos)
}

// appendBody is the prologue of the Send* of the body of side, with the VM
// lock held: it appends chunk to *body unless the stream is done. It reports
// false, and the Action to return, when the guest must not be called.
func (s *Stream) appendBody(side abi.StreamType, body *[]byte, chunk []byte) (abi.Action, bool) {
	if s.done {
		return abi.ActionContinue, false
	}
	if *body == nil && side == abi.StreamHTTPRequest {
		// Filters that reshape a request body (the model and options put
		// in) usually make it a little longer: room for that saves
		// proxy_set_buffer_bytes a new buffer.
		*body = make([]byte, 0, len(chunk)+len(chunk)/8+256)
	}
	*body = append(*body, chunk...)
	if !s.begin(side) {
		return s.idle(), false
	}
	return abi.ActionContinue, true
}

// SendRequestHeaders sets the request headers (names lowercased) and calls
// proxy_on_request_headers(id, len(hs), endOfStream).
func (s *Stream) SendRequestHeaders(hs []abi.Header, endOfStream bool) abi.Action {
	return s.sendHeaders(abi.StreamHTTPRequest, phaseRequestHeaders, &s.reqHeaders, hs, b2u(endOfStream))
}

// SendRequestBody appends chunk to the buffered request body and calls
// proxy_on_request_body(id, bufferedSize, endOfStream). On Continue the
// embedder forwards TakeRequestBody(); on Pause it keeps buffering.
//
// Under ProfileAPISIX, as in APISIX (apisix/wasm.lua), the guest sees the
// body only if it set the property "wasm_process_req_body" to a non-empty
// value (else Continue without a call), and only once, whole: chunks before
// endOfStream answer Pause without a call.
func (s *Stream) SendRequestBody(chunk []byte, endOfStream bool) abi.Action {
	vm := s.vm
	vm.mu.Lock()
	defer vm.mu.Unlock()
	if a, ok := s.appendBody(abi.StreamHTTPRequest, &s.reqBody, chunk); !ok {
		return a
	}
	if vm.env.Profile == ProfileAPISIX {
		if len(s.props.get("wasm_process_req_body")) == 0 {
			return abi.ActionContinue
		}
		if !endOfStream {
			return abi.ActionPause
		}
	}
	return vm.streamCall(s, phaseRequestBody, uint64(len(s.reqBody)), b2u(endOfStream))
}

// SendRequestTrailers sets the request trailers and calls
// proxy_on_request_trailers(id, len(hs)).
func (s *Stream) SendRequestTrailers(hs []abi.Header) abi.Action {
	return s.sendHeaders(abi.StreamHTTPRequest, phaseRequestTrailers, &s.reqTrailers, hs, 0)
}

// SendResponseHeaders sets the response headers (names lowercased; include
// ":status") and calls proxy_on_response_headers(id, len(hs), endOfStream).
func (s *Stream) SendResponseHeaders(hs []abi.Header, endOfStream bool) abi.Action {
	return s.sendHeaders(abi.StreamHTTPResponse, phaseResponseHeaders, &s.respHeaders, hs, b2u(endOfStream))
}

// SendResponseBody appends chunk to the buffered response body and calls
// proxy_on_response_body(id, bufferedSize, endOfStream); see SendRequestBody.
//
// Under ProfileAPISIX the guest sees the body only if it set the property
// "wasm_process_resp_body" to a non-empty value, chunk by chunk, and the
// answer is always Continue: an nginx body filter cannot hold data back.
func (s *Stream) SendResponseBody(chunk []byte, endOfStream bool) abi.Action {
	vm := s.vm
	vm.mu.Lock()
	defer vm.mu.Unlock()
	if a, ok := s.appendBody(abi.StreamHTTPResponse, &s.respBody, chunk); !ok {
		return a
	}
	if vm.env.Profile == ProfileAPISIX {
		if len(s.props.get("wasm_process_resp_body")) == 0 {
			return abi.ActionContinue
		}
		vm.streamCall(s, phaseResponseBody, uint64(len(s.respBody)), b2u(endOfStream))
		return s.idle()
	}
	return vm.streamCall(s, phaseResponseBody, uint64(len(s.respBody)), b2u(endOfStream))
}

// SendResponseTrailers sets the response trailers and calls
// proxy_on_response_trailers(id, len(hs)).
func (s *Stream) SendResponseTrailers(hs []abi.Header) abi.Action {
	return s.sendHeaders(abi.StreamHTTPResponse, phaseResponseTrailers, &s.respTrailers, hs, 0)
}

func copyHeaders(hs []abi.Header) []abi.Header {
	if hs == nil {
		return nil
	}
	return append([]abi.Header(nil), hs...)
}

// RequestHeaders returns the request headers as the guest left them (a copy).
func (s *Stream) RequestHeaders() []abi.Header {
	s.vm.mu.Lock()
	defer s.vm.mu.Unlock()
	return copyHeaders(s.reqHeaders)
}

// AppendRequestHeaders appends the request headers, as the guest left them,
// to dst and returns the result: RequestHeaders into a buffer the caller
// reuses.
func (s *Stream) AppendRequestHeaders(dst []abi.Header) []abi.Header {
	s.vm.mu.Lock()
	defer s.vm.mu.Unlock()
	return append(dst, s.reqHeaders...)
}

// AppendResponseHeaders is AppendRequestHeaders for the response headers.
func (s *Stream) AppendResponseHeaders(dst []abi.Header) []abi.Header {
	s.vm.mu.Lock()
	defer s.vm.mu.Unlock()
	return append(dst, s.respHeaders...)
}

// RequestTrailers returns the request trailers as the guest left them (a copy).
func (s *Stream) RequestTrailers() []abi.Header {
	s.vm.mu.Lock()
	defer s.vm.mu.Unlock()
	return copyHeaders(s.reqTrailers)
}

// ResponseHeaders returns the response headers as the guest left them (a copy).
func (s *Stream) ResponseHeaders() []abi.Header {
	s.vm.mu.Lock()
	defer s.vm.mu.Unlock()
	return copyHeaders(s.respHeaders)
}

// ResponseTrailers returns the response trailers as the guest left them (a copy).
func (s *Stream) ResponseTrailers() []abi.Header {
	s.vm.mu.Lock()
	defer s.vm.mu.Unlock()
	return copyHeaders(s.respTrailers)
}

// RequestBody returns a copy of the buffered request body.
func (s *Stream) RequestBody() []byte {
	s.vm.mu.Lock()
	defer s.vm.mu.Unlock()
	return append([]byte(nil), s.reqBody...)
}

// ResponseBody returns a copy of the buffered response body.
func (s *Stream) ResponseBody() []byte {
	s.vm.mu.Lock()
	defer s.vm.mu.Unlock()
	return append([]byte(nil), s.respBody...)
}

// TakeRequestBody returns the buffered request body and empties the buffer.
// The caller owns the returned slice.
func (s *Stream) TakeRequestBody() []byte {
	s.vm.mu.Lock()
	defer s.vm.mu.Unlock()
	b := s.reqBody
	s.reqBody = nil
	return b
}

// TakeResponseBody returns the buffered response body and empties the
// buffer. The caller owns the returned slice.
func (s *Stream) TakeResponseBody() []byte {
	s.vm.mu.Lock()
	defer s.vm.mu.Unlock()
	b := s.respBody
	s.respBody = nil
	return b
}

// LocalResponse is what the guest sent with proxy_send_local_response, or
// the filter_trap 500 after a trap; nil otherwise. Do not modify it.
func (s *Stream) LocalResponse() *LocalResponse {
	s.vm.mu.Lock()
	defer s.vm.mu.Unlock()
	return s.local
}

// Resumed reports whether the guest called proxy_continue_stream(t) since
// the last Send* on that side (under ProfileAPISIX, also after an http call
// response that did not answer locally).
func (s *Stream) Resumed(t abi.StreamType) bool {
	s.vm.mu.Lock()
	defer s.vm.mu.Unlock()
	if t > abi.StreamHTTPResponse {
		return false
	}
	return s.resumed[t]
}

// Closed reports whether the guest called proxy_close_stream: the embedder
// should reset the stream.
func (s *Stream) Closed() bool {
	s.vm.mu.Lock()
	defer s.vm.mu.Unlock()
	return s.closed
}

// Signal receives after proxy_continue_stream, proxy_close_stream, a local
// response, or a trap of the VM. Signals merge: after a receive, check the
// state (LocalResponse, Closed, Resumed) rather than counting signals.
func (s *Stream) Signal() <-chan struct{} { return s.signal }

// Properties returns the values the guest set with proxy_set_property on
// this stream (a copy of the map; the values are shared, and live in the
// stream's own buffer: they are valid until the stream is released). Keys
// are the path segments joined by ".".
func (s *Stream) Properties() map[string][]byte {
	s.vm.mu.Lock()
	defer s.vm.mu.Unlock()
	out := make(map[string][]byte, len(s.props.kv))
	for _, p := range s.props.kv {
		out[p.key] = p.val
	}
	return out
}

// Done ends the stream: proxy_on_log, proxy_on_done and proxy_on_delete, in
// that order, once (later calls do nothing), and the VM forgets the stream.
// Calls the stream made that are still pending stay pending: they are
// answered to the root context as usual.
func (s *Stream) Done() {
	vm := s.vm
	vm.mu.Lock()
	defer vm.mu.Unlock()
	if s.done {
		return
	}
	s.done = true
	for _, ph := range [...]phase{phaseLog, phaseDone, phaseDelete} {
		if !vm.broken.Load() {
			vm.streamCall(s, ph, 0, 0)
		}
	}
	delete(vm.streams, s.id)
}

// streamProps are the properties a guest set on a stream: a few per request,
// so a list (its first entries and the first bytes of the values inside the
// Stream) serves better than a map.
type streamProps struct {
	kv       []prop
	kvBuf    [8]prop
	arena    []byte // backing of the values
	arenaBuf [192]byte
}

type prop struct {
	key string
	val []byte
}

// get returns the value of key, nil when unset.
func (ps *streamProps) get(key string) []byte {
	for _, p := range ps.kv {
		if p.key == key {
			return p.val
		}
	}
	return nil
}

// set sets key to a copy of val. The values share an arena; a full arena is
// replaced, not grown, so the values handed out stay as they are.
func (ps *streamProps) set(key string, val []byte) {
	if ps.arena == nil {
		ps.arena = ps.arenaBuf[:0]
	}
	if cap(ps.arena)-len(ps.arena) < len(val) {
		ps.arena = make([]byte, 0, max(256, len(val)))
	}
	start := len(ps.arena)
	ps.arena = append(ps.arena, val...)
	v := ps.arena[start:len(ps.arena):len(ps.arena)]
	for i := range ps.kv {
		if ps.kv[i].key == key {
			ps.kv[i].val = v
			return
		}
	}
	if ps.kv == nil {
		ps.kv = ps.kvBuf[:0]
	}
	ps.kv = append(ps.kv, prop{key, v})
}
