package aiproxy

import (
	"strconv"
	"strings"
	"time"

	"ai-proxy/filter/apierror"
	"ai-proxy/filter/config"
	"ai-proxy/filter/proxywasm"
	"ai-proxy/filter/proxywasm/abi"
	"ai-proxy/filter/shape"
	"ai-proxy/filter/usage"
)

// Stream is the state of one client request. Not safe for concurrent use
// (nothing in a VM is); it lives from proxy_on_context_create to proxy_on_delete.
type Stream struct {
	proxywasm.DefaultHttpContext
	plugin *Plugin

	// clientHeaders are the client's headers forwarded to the LLM, read once
	// in OnHttpRequestHeaders.
	clientHeaders []abi.Header
	// answered is set once the stream has a local response or was resumed.
	answered bool
	// start is when the request headers arrived; callStart when the LLM
	// call was dispatched (callout mode).
	start, callStart proxywasm.Monotonic
	info             shape.Info

	// Route mode: forwarded is set once the request went on to the LLM;
	// then the answer as it streams back.
	forwarded   bool
	respStatus  int
	respSSE     bool
	respJSON    []byte // a non-streamed answer, kept for its usage (bounded)
	respTooBig  bool
	firstToken  time.Duration
	usageStream usage.Stream
	reported    bool
}

var _ proxywasm.HttpContext = (*Stream)(nil)

// OnHttpRequestHeaders checks what can be checked before the body arrives;
// in route mode it also points the request at the LLM.
func (s *Stream) OnHttpRequestHeaders(numHeaders int, endOfStream bool) abi.Action {
	p := s.plugin
	s.start = proxywasm.Now()
	var kind apierror.Kind
	var err error
	if p.cfg.Forward == config.ForwardRoute {
		kind, err = s.routeRequestHeaders(endOfStream)
	} else {
		kind, err = s.calloutRequestHeaders(endOfStream)
	}
	switch {
	case err != nil:
		return s.fail(apierror.Internal, "cannot read request headers: "+err.Error())
	case kind == apierror.BodyTooLarge:
		return s.fail(kind, apierror.BodyTooLargeMessage(p.cfg.MaxBodyBytes))
	case kind != 0:
		return s.fail(kind, "")
	}
	// APISIX's wasm host delivers the request body only to filters that ask
	// for it (the host probe at configure time tells which host this is).
	if p.needsBodyRequest {
		_ = proxywasm.SetProperty(processReqBody, one)
	}
	if p.cfg.Passthrough {
		// The body the upstream gets is the LLM's answer, of another length.
		// Headers cannot change once they have gone on, so drop it now.
		_ = proxywasm.RemoveHeader(abi.MapHTTPRequestHeaders, "content-length")
	}
	// Continue: the body callbacks hold the request (see RATIONALE.md, "Why
	// do request headers continue?").
	return abi.ActionContinue
}

// calloutRequestHeaders checks the request headers and keeps the client's
// own ones that go with the call-out. It returns the kind of error that
// refuses the request, if any.
func (s *Stream) calloutRequestHeaders(endOfStream bool) (apierror.Kind, error) {
	p := s.plugin
	hs, err := proxywasm.GetHeaders(abi.MapHTTPRequestHeaders)
	if err != nil {
		return 0, err
	}
	s.clientHeaders = hs[:0]
	for _, h := range hs {
		name := strings.ToLower(h[0])
		k, _ := headerKind(name)
		if kind := p.checkRequestHeader(k, h[1]); kind != 0 {
			return kind, nil
		}
		if p.forwardable(name) {
			s.clientHeaders = append(s.clientHeaders, abi.Header{name, h[1]})
		}
	}
	if endOfStream {
		return apierror.EmptyBody, nil
	}
	return 0, nil
}

// checkRequestHeader refuses a body not declared as JSON and one declared
// larger than the limit; kind is the header's headerKind.
func (p *Plugin) checkRequestHeader(kind int, value string) apierror.Kind {
	switch kind {
	case headerContentType:
		if !isJSONContentType(value) {
			return apierror.InvalidContentType
		}
	case headerContentLength:
		if declaredOver(value, p.cfg.MaxBodyBytes) {
			return apierror.BodyTooLarge
		}
	}
	return 0
}

// OnHttpRequestBody buffers the body until its end, then shapes it and calls the LLM.
func (s *Stream) OnHttpRequestBody(bodySize int, endOfStream bool) abi.Action {
	if s.answered {
		return abi.ActionContinue
	}
	p := s.plugin
	if bodySize > p.cfg.MaxBodyBytes {
		return s.fail(apierror.BodyTooLarge, apierror.BodyTooLargeMessage(p.cfg.MaxBodyBytes))
	}
	if !endOfStream {
		return abi.ActionPause
	}
	if p.cfg.Forward == config.ForwardRoute {
		return s.shapeInPlace(bodySize)
	}
	out, _, ok := s.shapedBody(bodySize)
	if !ok {
		return abi.ActionPause
	}
	// proxy_http_call encodes the headers before it returns: one slice per VM serves.
	headers := append(append(callHeaderBuf[:0], p.callHeaders...), s.clientHeaders...)
	callHeaderBuf = headers[:0]
	s.callStart = proxywasm.Now()
	if _, err := proxywasm.DispatchHttpCall(p.cfg.Cluster, headers, out, p.cfg.TimeoutMS, s.onLLMResponse); err != nil {
		proxywasm.LogError("ai-proxy: call to cluster " + p.cfg.Cluster + " not dispatched: " + err.Error())
		return s.fail(apierror.LLMUnreachable, "")
	}
	return abi.ActionPause
}

// shapedBody reads the buffered request body into scratch memory and shapes
// it into the VM's reusable buffer. out is valid only during this callback
// (the host copies what it is given); changed is false when out is the body
// itself. When the body is refused the stream is answered and ok is false.
func (s *Stream) shapedBody(bodySize int) (out []byte, changed, ok bool) {
	body, err := proxywasm.GetBufferScratch(abi.BufferHTTPRequestBody, 0, bodySize)
	if err != nil {
		s.fail(apierror.Internal, "cannot read the request body: "+err.Error())
		return nil, false, false
	}
	out, info, err := s.plugin.plan.Request(shapeBuf[:0], body)
	if err != nil {
		s.failShape(err)
		return nil, false, false
	}
	s.info = info
	changed = len(body) == 0 || &out[0] != &body[0]
	if changed && cap(out) <= maxReusedBuffer {
		shapeBuf = out
	}
	return out, changed, true
}

// relayedResponseHeaders are the LLM answer's headers a client gets with it.
func relayedResponseHeader(name string) bool {
	switch name {
	case "content-type", "x-request-id", "retry-after", "retry-after-ms",
		"openai-processing-ms", "openai-version", "apim-request-id":
		return true
	}
	return strings.HasPrefix(name, "x-ratelimit-")
}

// onLLMResponse runs in proxy_on_http_call_response with this stream effective.
func (s *Stream) onLLMResponse(numHeaders, bodySize, _ int) {
	if s.answered {
		return
	}
	p := s.plugin
	if numHeaders == 0 {
		elapsed := s.callStart.Since()
		timeout := time.Duration(p.cfg.TimeoutMS) * time.Millisecond
		if elapsed >= timeout-timeout/20 {
			s.fail(apierror.LLMTimeout, "")
			return
		}
		s.fail(apierror.LLMUnreachable, "")
		return
	}
	hs, err := proxywasm.GetCallResponseHeaders()
	if err != nil {
		s.fail(apierror.LLMBadResponse, "")
		return
	}
	status := 0
	var relay []abi.Header
	for _, h := range hs {
		name := strings.ToLower(h[0])
		if name == ":status" {
			status, _ = strconv.Atoi(h[1])
			continue
		}
		if relayedResponseHeader(name) {
			relay = append(relay, abi.Header{name, h[1]})
		}
	}
	if status < 100 || status > 999 {
		s.fail(apierror.LLMBadResponse, "")
		return
	}
	body, err := proxywasm.GetCallResponseBody(bodySize)
	if err != nil {
		s.fail(apierror.LLMBadResponse, "")
		return
	}
	if is2xx(status) {
		s.reportCallout(relay, body)
	}
	if !p.cfg.Passthrough || !is2xx(status) {
		s.answered = true
		if err := proxywasm.SendHttpResponse(status, relay, body, abi.GRPCStatusNone); err != nil {
			proxywasm.LogError("ai-proxy: cannot send the response: " + err.Error())
		}
		return
	}
	if !shape.IsJSONObject(body) {
		s.fail(apierror.LLMBadResponse, "")
		return
	}
	// passthrough: the LLM's answer becomes the request body for the route's upstream.
	if err := proxywasm.ReplaceBuffer(abi.BufferHTTPRequestBody, body); err != nil {
		s.fail(apierror.Unsupported, "this proxy cannot replace the request body, so passthrough=true is not available here")
		return
	}
	s.answered = true
	if err := proxywasm.ContinueStream(abi.StreamHTTPRequest); err != nil {
		proxywasm.LogError("ai-proxy: cannot resume the request: " + err.Error())
	}
}

// fail answers the stream with the OpenAI-style error of kind. detail, when
// set, replaces the kind's default client message (it must not carry
// secrets), except for Internal, whose detail is logged and never sent.
func (s *Stream) fail(kind apierror.Kind, detail string) abi.Action {
	s.answered = true
	msg := detail
	if kind == apierror.Internal {
		msg = ""
	}
	if kind.Status() >= 500 {
		proxywasm.LogWarn("ai-proxy: " + kind.Code() + ": " + detail)
	}
	body := apierror.Body(kind, msg)
	if err := proxywasm.SendHttpResponse(kind.Status(), jsonHeaders, body, abi.GRPCStatusNone); err != nil {
		proxywasm.LogError("ai-proxy: cannot send the error response: " + err.Error())
	}
	return abi.ActionPause
}

// callHeaderBuf is the VM's reusable list of call-out headers.
var callHeaderBuf []abi.Header

// headerView is the VM's reusable list for a header map read in place
// (proxywasm.GetHeadersView): its strings are stale after the callback.
var headerView []abi.Header

// shapeBuf is the VM's reusable output buffer for shaped bodies (a VM runs
// one callback at a time). Buffers above maxReusedBuffer are not kept, so a
// rare huge request does not pin its memory.
var shapeBuf []byte

const maxReusedBuffer = 4 << 20

var (
	processReqBody = []byte("wasm_process_req_body")
	one            = []byte("1")
)

var jsonHeaders = []abi.Header{{"content-type", "application/json"}}

// OnPanic answers a stream whose callback panicked.
func OnPanic(any) {
	body := apierror.Body(apierror.Internal, apierror.Message(apierror.Internal))
	_ = proxywasm.SendHttpResponse(500, jsonHeaders, body, abi.GRPCStatusNone)
}
