package aiproxy

import (
	"errors"
	"slices"
	"unsafe"

	"ai-proxy/filter/apierror"
	"ai-proxy/filter/proxywasm"
	"ai-proxy/filter/proxywasm/abi"
	"ai-proxy/filter/shape"
	"ai-proxy/filter/usage"
)

// Route mode (forward: "route"): the route's own cluster is the LLM. The
// filter rewrites the request in place and the proxy forwards it; the answer
// streams back through OnHttpResponseBody chunk by chunk, unchanged, while the
// filter reads it for usage.

// routeRequestHeaders checks the request headers and points the request at
// the LLM: the client's credentials and the headers the shaped body makes
// wrong are removed, then the path (unless the client's is already the
// endpoint's), the authority and the configured credentials are set. It
// returns the kind of error that refuses the request, if any.
func (s *Stream) routeRequestHeaders(endOfStream bool) (apierror.Kind, error) {
	p := s.plugin
	// Nothing is kept: the map is read in place.
	hs, err := proxywasm.GetHeadersView(abi.MapHTTPRequestHeaders, headerView[:0])
	headerView = hs[:0]
	if err != nil {
		return 0, err
	}
	pathOK := false
	for _, h := range hs {
		switch k, name := headerKind(h[0]); k {
		case headerOther:
		case headerPath:
			pathOK = h[1] == p.cfg.Endpoint.Path
		default:
			if kind := p.checkRequestHeader(k, h[1]); kind != 0 {
				return kind, nil
			}
			// The shaped body has another length; credentials go unless
			// a configured auth header replaces them below. A removal
			// returns no data: hs stays valid.
			if k == headerContentLength || k == headerCredential && !slices.Contains(p.cfg.AuthHeaderNames, name) {
				_ = proxywasm.RemoveHeader(abi.MapHTTPRequestHeaders, name)
			}
		}
	}
	if endOfStream {
		return apierror.EmptyBody, nil
	}
	if !pathOK {
		_ = proxywasm.ReplaceHeader(abi.MapHTTPRequestHeaders, ":path", p.cfg.Endpoint.Path)
	}
	_ = proxywasm.ReplaceHeader(abi.MapHTTPRequestHeaders, ":authority", p.cfg.Endpoint.Authority)
	for _, h := range p.cfg.AuthHeaders {
		_ = proxywasm.ReplaceHeader(abi.MapHTTPRequestHeaders, h[0], h[1])
	}
	return 0, nil
}

// shapeInPlace replaces the buffered request body with the shaped one and lets
// the request go on to the route's cluster.
func (s *Stream) shapeInPlace(bodySize int) abi.Action {
	out, changed, ok := s.shapedBody(bodySize)
	if !ok {
		return abi.ActionPause
	}
	if changed {
		if err := proxywasm.ReplaceBuffer(abi.BufferHTTPRequestBody, out); err != nil {
			return s.fail(apierror.Unsupported, "this proxy cannot replace the request body, so forward \"route\" is not available here")
		}
	}
	s.answered, s.forwarded = true, true
	return abi.ActionContinue
}

// failShape answers a body the shaping refused.
func (s *Stream) failShape(err error) abi.Action {
	switch {
	case errors.Is(err, shape.ErrEmptyBody):
		return s.fail(apierror.EmptyBody, "")
	case errors.Is(err, shape.ErrNotObject):
		return s.fail(apierror.NotObject, "")
	default:
		return s.fail(apierror.InvalidJSON, "")
	}
}

// maxUsageJSON bounds how much of a non-streamed answer is kept to read its
// usage; answers are far smaller, and a larger one is passed on unread.
const maxUsageJSON = 4 << 20

// OnHttpResponseHeaders notes the kind of answer (route mode).
func (s *Stream) OnHttpResponseHeaders(numHeaders int, endOfStream bool) abi.Action {
	if !s.forwarded || s.reported {
		return abi.ActionContinue
	}
	// One read of the whole (short) map, in place.
	hs, _ := proxywasm.GetHeadersView(abi.MapHTTPResponseHeaders, headerView[:0])
	headerView = hs[:0]
	for _, h := range hs {
		switch {
		case h[0] == ":status":
			s.respStatus = statusCode(h[1])
		case equalFoldLower(h[0], "content-type"):
			s.respSSE = isEventStream(h[1])
		}
	}
	if !s.respSSE {
		s.firstToken = s.start.Since()
	}
	if endOfStream {
		s.finishRoute()
	}
	return abi.ActionContinue
}

// OnHttpResponseBody reads each chunk for usage and passes it on unchanged.
func (s *Stream) OnHttpResponseBody(bodySize int, endOfStream bool) abi.Action {
	if !s.forwarded || s.reported || s.respStatus == 0 {
		return abi.ActionContinue
	}
	if bodySize > 0 && is2xx(s.respStatus) {
		chunk, err := proxywasm.GetBufferScratch(abi.BufferHTTPResponseBody, 0, bodySize)
		if err == nil {
			if s.respSSE {
				if s.usageStream.Feed(chunk) && s.firstToken == 0 {
					s.firstToken = s.start.Since()
				}
			} else if !s.respTooBig {
				switch {
				case endOfStream && s.respJSON == nil:
					// The whole answer in one chunk: read it where it is.
					s.finishRouteJSON(chunk)
					return abi.ActionContinue
				case len(s.respJSON)+len(chunk) > maxUsageJSON:
					s.respTooBig = true
					s.dropAnswer()
				default:
					if s.respJSON == nil {
						s.respJSON = takeAnswerBuf()
					}
					s.respJSON = append(s.respJSON, chunk...)
				}
			}
		}
	}
	if endOfStream {
		s.finishRoute()
	}
	return abi.ActionContinue
}

// statusCode parses a :status value; 0 when it is not a 3-digit number.
func statusCode(v string) int {
	if len(v) != 3 {
		return 0
	}
	n := 0
	for _, c := range v {
		if c < '0' || c > '9' {
			return 0
		}
		n = n*10 + int(c-'0')
	}
	return n
}

// is2xx reports a success status.
func is2xx(n int) bool { return n >= 200 && n <= 299 }

// answerBufs are the VM's spare buffers for non-streamed answers read for
// their usage: most requests reuse one instead of allocating it. A stream
// takes one when an answer comes in several chunks and gives it back when
// the answer is read. At most maxAnswerBufs of at most maxReusedAnswer bytes
// are kept, so a burst of large answers does not pin memory.
var answerBufs [][]byte

const (
	maxAnswerBufs   = 16
	maxReusedAnswer = 64 << 10
)

func takeAnswerBuf() []byte {
	if n := len(answerBufs); n > 0 {
		b := answerBufs[n-1]
		answerBufs[n-1] = nil
		answerBufs = answerBufs[:n-1]
		return b[:0]
	}
	return make([]byte, 0, 1024)
}

// dropAnswer gives the stream's answer buffer back.
func (s *Stream) dropAnswer() {
	if b := s.respJSON; b != nil && cap(b) <= maxReusedAnswer && len(answerBufs) < maxAnswerBufs {
		answerBufs = append(answerBufs, b[:0])
	}
	s.respJSON = nil
}

// finishRoute reports the answer of a route-mode stream.
func (s *Stream) finishRoute() {
	if !s.respSSE && len(s.respJSON) > 0 && is2xx(s.respStatus) {
		s.finishRouteJSON(s.respJSON)
		return
	}
	a := answer{ttft: s.firstToken}
	if s.respSSE && is2xx(s.respStatus) {
		a.usage, a.model = s.usageStream.Usage(), s.usageStream.Model()
	}
	s.dropAnswer()
	s.report(&a)
}

// finishRouteJSON reports the non-streamed answer body (the stream's buffer,
// or the last chunk in scratch memory: the model name read from it is used
// before the next host call that returns data).
func (s *Stream) finishRouteJSON(body []byte) {
	a := answer{ttft: s.firstToken}
	u, model, _ := usage.FromResponseBytes(body)
	a.usage, a.model = u, unsafe.String(unsafe.SliceData(model), len(model))
	s.report(&a)
	s.dropAnswer()
}

// reportCallout reports a 2xx call-out answer (streamed or not).
func (s *Stream) reportCallout(headers []abi.Header, body []byte) {
	a := answer{ttft: s.start.Since()}
	sse := false
	for _, h := range headers {
		if h[0] == "content-type" && isEventStream(h[1]) {
			sse = true
		}
	}
	if sse {
		a.usage, a.model, _ = usage.FromSSE(body)
	} else {
		a.usage, a.model, _ = usage.FromResponse(body)
	}
	s.report(&a)
}

// OnHttpContextDelete implements proxywasm.HttpContext: the host is
// done with the stream, which goes back to its plugin for reuse.
func (s *Stream) OnHttpContextDelete() {
	p := s.plugin
	s.dropAnswer()
	*s = Stream{}
	if len(p.free) < maxFreeStreams {
		p.free = append(p.free, s)
	}
}

// OnHttpStreamDone reports what is known when a stream ends early (client
// gone, upstream reset) in route mode.
func (s *Stream) OnHttpStreamDone() {
	if s.forwarded && s.respStatus != 0 && !s.reported {
		s.finishRoute()
	}
}
