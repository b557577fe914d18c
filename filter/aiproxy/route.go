package aiproxy

import (
	"errors"
	"strconv"
	"strings"
	"time"

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

// routeDroppedHeaders are client headers removed before the request goes to
// the LLM in route mode: the client's credentials, and Accept-Encoding so the
// answer comes back uncompressed and readable for usage.
var routeDroppedHeaders = []string{
	"authorization", "proxy-authorization", "cookie", "api-key", "x-api-key",
	"accept-encoding", "content-length",
}

// routeDrops reports whether the client header name is removed in route mode.
func (p *Plugin) routeDrops(name string) bool {
	_, ok := p.routeDropped[name]
	return ok
}

// rewriteRouteHeaders points the request at the LLM: path, authority,
// credentials; remove lists the client headers to drop.
func (p *Plugin) rewriteRouteHeaders(remove []string) {
	for _, name := range remove {
		_ = proxywasm.RemoveHeader(abi.MapHTTPRequestHeaders, name)
	}
	_ = proxywasm.ReplaceHeader(abi.MapHTTPRequestHeaders, ":path", p.cfg.Endpoint.Path)
	_ = proxywasm.ReplaceHeader(abi.MapHTTPRequestHeaders, ":authority", p.cfg.Endpoint.Authority)
	for _, h := range p.cfg.AuthHeaders {
		_ = proxywasm.ReplaceHeader(abi.MapHTTPRequestHeaders, h[0], h[1])
	}
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
	status, _ := proxywasm.GetHeader(abi.MapHTTPResponseHeaders, ":status")
	s.respStatus, _ = strconv.Atoi(status)
	ct, _ := proxywasm.GetHeader(abi.MapHTTPResponseHeaders, "content-type")
	s.respSSE = isEventStream(ct)
	if !s.respSSE {
		s.firstToken = time.Since(s.start)
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
	if bodySize > 0 && s.respStatus >= 200 && s.respStatus <= 299 {
		chunk, err := proxywasm.GetBufferScratch(abi.BufferHTTPResponseBody, 0, bodySize)
		if err == nil {
			if s.respSSE {
				if s.usageStream.Feed(chunk) && s.firstToken == 0 {
					s.firstToken = time.Since(s.start)
				}
			} else if !s.respTooBig {
				if len(s.respJSON)+len(chunk) > maxUsageJSON {
					s.respTooBig, s.respJSON = true, nil
				} else {
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

// isEventStream reports whether a Content-Type is text/event-stream.
func isEventStream(contentType string) bool {
	return strings.HasPrefix(strings.ToLower(strings.TrimSpace(contentType)), "text/event-stream")
}

// finishRoute reports the answer of a route-mode stream.
func (s *Stream) finishRoute() {
	a := answer{ttft: s.firstToken}
	if s.respStatus >= 200 && s.respStatus <= 299 {
		if s.respSSE {
			a.usage, a.model = s.usageStream.Usage(), s.usageStream.Model()
		} else if len(s.respJSON) > 0 {
			a.usage, a.model, _ = usage.FromResponse(s.respJSON)
		}
	}
	s.respJSON = nil
	s.report(a)
}

// reportCallout reports a 2xx call-out answer (streamed or not).
func (s *Stream) reportCallout(headers []abi.Header, body []byte) {
	a := answer{ttft: time.Since(s.start)}
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
	s.report(a)
}

// OnHttpStreamDone reports what is known when a stream ends early (client
// gone, upstream reset) in route mode.
func (s *Stream) OnHttpStreamDone() {
	if s.forwarded && s.respStatus != 0 && !s.reported {
		s.finishRoute()
	}
}
