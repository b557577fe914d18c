package gateway

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"ai-proxy/filter/proxywasm/abi"
	"ai-proxy/harness"
	"ai-proxy/harness/bootstrap"
)

// Body chunk sizes: the client body is read in requestChunk reads, the
// upstream body in responseChunk reads (each read is one body callback).
const (
	requestChunk  = 64 << 10
	responseChunk = 32 << 10
)

// Read buffers, reused across requests: every chunk read into one is copied
// (by the filters' streams, the upstream request or the response writer)
// before the next read, and nothing keeps it once the request is done.
var (
	requestBufs  = sync.Pool{New: func() any { b := make([]byte, requestChunk); return &b }}
	responseBufs = sync.Pool{New: func() any { b := make([]byte, responseChunk); return &b }}
)

// errReset ends a stream without a (further) response: the client went away,
// or the stream is reset as Envoy resets it once the response has started.
var errReset = errors.New("stream reset")

// localReply is a response made by the proxy: a filter's
// proxy_send_local_response or one of the gateway's own errors.
type localReply struct {
	status  int
	headers []abi.Header
	body    []byte
}

// jsonError is an OpenAI-style error reply.
func jsonError(status int, message, typ, code string) *localReply {
	var body struct {
		Error struct {
			Message string `json:"message"`
			Type    string `json:"type"`
			Code    string `json:"code"`
		} `json:"error"`
	}
	body.Error.Message, body.Error.Type, body.Error.Code = message, typ, code
	b, _ := json.Marshal(body)
	return &localReply{
		status:  status,
		headers: []abi.Header{{"content-type", "application/json"}},
		body:    b,
	}
}

func tooLarge(limit int) *localReply {
	return jsonError(http.StatusRequestEntityTooLarge,
		"request body exceeds the buffer limit of "+strconv.Itoa(limit)+" bytes",
		"invalid_request_error", "body_too_large")
}

// responseHeaders is the header map of a local reply as Envoy builds it:
// :status, the given headers (lowercased), content-length, and a text/plain
// content-type when there is a body without one.
func (r *localReply) responseHeaders() []abi.Header {
	hs := make([]abi.Header, 0, len(r.headers)+3)
	hs = append(hs, abi.Header{":status", strconv.Itoa(r.status)})
	hasType := false
	for _, h := range r.headers {
		k := strings.ToLower(h[0])
		if k == "content-length" || k == ":status" || hopByHop[k] {
			continue
		}
		if k == "content-type" {
			hasType = true
		}
		hs = append(hs, abi.Header{k, h[1]})
	}
	if len(r.body) > 0 && !hasType {
		hs = append(hs, abi.Header{"content-type", "text/plain"})
	}
	return append(hs, abi.Header{"content-length", strconv.Itoa(len(r.body))})
}

// exchange is one downstream request running through a listener's filter
// chain, the router and the upstream. It is used by one goroutine.
type exchange struct {
	g *Gateway
	l *listener
	w http.ResponseWriter
	r *http.Request
	// ctx ends when the client goes away or Shutdown cuts the stream. (Go
	// notices a closed client connection only once the request body has been
	// read; while a filter holds an unread body, the idle timeout bounds the wait.)
	ctx     context.Context
	streams []*harness.Stream
	limit   int

	// Backing of the header lists the filters pass on (each filter's
	// stream copies what it is given, so one buffer per side serves).
	reqHeaderBuf, respHeaderBuf [16]abi.Header
	streamsBuf                  [2]*harness.Stream
	seenBuf                     [2]bool // backing of seenLocal for up to 2 filters
	pendingBuf                  [4]int  // backing of reqPending and respPending for up to 2 filters
	seenLocal                   []bool  // a filter's local response has been taken
	reqPending                  []int   // request bytes buffered at each filter
	respPending                 []int   // response bytes buffered at each filter
	reqHold                     int     // filter holding the request headers (StopIteration); len(streams) once they reached the router
	respHold                    int     // filter holding the response headers; -1 when none

	// router state
	route     *bootstrap.Route
	up        *upstream
	upHeaders []abi.Header
	upBody    []byte
	upCtx     context.Context
	upCancel  context.CancelFunc
	pw        *io.PipeWriter
	result    chan roundTrip
	timer     *time.Timer
	timedOut  atomic.Bool

	wroteHeaders bool
	holdHeaders  bool // the headers wait for the body's first write (a small answer of known length)
	status       int

	// access log state
	start     time.Time
	requestID string
	bytesIn   int64  // request body bytes read from the client
	bytesOut  int64  // response body bytes written to the client
	flag      string // the first response flag set (flag* constants)
	taken     bool   // the streamed round trip's result was received
	reset     bool   // the stream ends with a reset (the connection is closed)
}

type roundTrip struct {
	resp *http.Response
	err  error
}

// ServeHTTP runs one request. The connection's worker (chosen round robin
// when the connection was accepted) hosts every filter's stream.
func (l *listener) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	g := l.g
	start := time.Now()
	g.active.Add(1)
	defer g.active.Done()
	g.activeRequests.Add(1)
	defer g.activeRequests.Add(-1)
	wk, _ := r.Context().Value(workerKey{}).(*worker)
	if wk == nil {
		wk = g.pickWorker()
	}
	plugins := g.pluginsFor(wk, l.index)
	n := len(plugins)
	ctx, cancel := context.WithCancel(r.Context())
	defer cancel()
	defer context.AfterFunc(g.cut, cancel)()
	x := &exchange{
		g:        g,
		l:        l,
		w:        w,
		r:        r,
		ctx:      ctx,
		limit:    l.cfg.BufferLimit,
		reqHold:  n,
		respHold: -1,
		start:    start,
	}
	if n <= len(x.streamsBuf) {
		x.streams = x.streamsBuf[:n]
	} else {
		x.streams = make([]*harness.Stream, n)
	}
	if n > 0 {
		var pending []int
		if n <= len(x.seenBuf) {
			x.seenLocal, pending = x.seenBuf[:n], x.pendingBuf[:2*n]
		} else {
			x.seenLocal, pending = make([]bool, n), make([]int, 2*n)
		}
		x.reqPending, x.respPending = pending[:n:n], pending[n:]
	}
	for i, p := range plugins {
		x.streams[i] = p.NewStream()
	}
	defer x.finish()
	if err := x.run(); err != nil {
		x.reset = true
		panic(http.ErrAbortHandler) // closes the connection: Envoy's stream reset
	}
}

// allowStop reports filter i's allow_on_headers_stop_iteration.
func (x *exchange) allowStop(i int) bool {
	return x.l.cfg.Filters[i].AllowOnHeadersStopIteration
}

// finish ends every filter stream (on_log, on_done, on_delete), releases the
// upstream request, counts the response and writes the access-log line.
func (x *exchange) finish() {
	for _, s := range x.streams {
		s.Done()
	}
	if x.timer != nil {
		x.timer.Stop()
	}
	if x.pw != nil {
		x.pw.CloseWithError(errReset)
	}
	if x.upCancel != nil {
		x.upCancel()
	}
	if x.result != nil && !x.taken {
		// The streamed round trip still runs (or ended unread): close its
		// response, if any, when it comes.
		go func(ch <-chan roundTrip) {
			if res := <-ch; res.resp != nil {
				res.resp.Body.Close()
			}
		}(x.result)
	}
	if x.reset && x.ctx.Err() != nil {
		x.setFlag(flagDownstreamDisconnect)
	}
	x.l.countRequest(x.status)
	if x.g.access != nil {
		x.log()
	}
	// Nothing refers to the streams any more (the log line is written).
	for _, s := range x.streams {
		s.Release()
	}
}

// setFlag records the response flag f unless one is set already.
func (x *exchange) setFlag(f string) {
	if x.flag == "" {
		x.flag = f
	}
}

// log writes the request's access-log line. The streams are done: their
// properties are final.
func (x *exchange) log() {
	e := AccessLogEntry{
		StartTime:     startTime(x.start),
		Listener:      x.l.cfg.Name,
		Method:        x.r.Method,
		Path:          x.r.RequestURI,
		Authority:     x.r.Host,
		Protocol:      x.r.Proto,
		Status:        x.status,
		ResponseFlags: x.flag,
		DurationMS:    durationMS(time.Since(x.start)),
		BytesReceived: x.bytesIn,
		BytesSent:     x.bytesOut,
		RequestID:     x.requestID,
	}
	if x.route != nil {
		e.UpstreamCluster = x.route.Cluster
	}
	var props map[string][]byte
	for _, s := range x.streams {
		for k, v := range s.Properties() {
			if !loggedProperty(k) {
				continue
			}
			if props == nil {
				props = make(map[string][]byte)
			}
			props[k] = v // a later filter's value wins
		}
	}
	x.g.access.write(&e, props)
}

func (x *exchange) run() error {
	rep, err := x.decode()
	if err != nil {
		return err
	}
	if rep != nil {
		return x.encodeLocal(rep)
	}
	resp, rep, err := x.roundTrip()
	if err != nil {
		return err
	}
	if rep != nil {
		return x.encodeLocal(rep)
	}
	defer resp.Body.Close()
	// A small answer of known length goes out in one write with its
	// headers, as Envoy's codec coalesces what one event produces: flushing
	// the headers alone costs a write here and often a wake-up in the
	// client. Streams (unknown length) and large bodies flush their headers
	// at once.
	x.holdHeaders = resp.ContentLength > 0 && resp.ContentLength <= coalesceLimit
	eos := resp.Body == http.NoBody || x.r.Method == http.MethodHead
	bp := responseBufs.Get().(*[]byte)
	defer responseBufs.Put(bp)
	src := &readerSource{r: resp.Body, buf: *bp}
	err = x.encode(responseHeaders(resp), eos, src)
	if err != nil && x.timedOut.Load() && !x.wroteHeaders {
		return x.writeDirect(timeoutReply())
	}
	return err
}

// badRequest is the router's answer to headers newRequest rejects.
func badRequest(err error) *localReply {
	return jsonError(http.StatusBadRequest, "invalid request headers: "+err.Error(), "invalid_request_error", "bad_request")
}

func timeoutReply() *localReply {
	return jsonError(http.StatusGatewayTimeout, "upstream request timeout", "api_error", "upstream_timeout")
}

// newLocal returns the local response filter i sent since the last look, if any.
func (x *exchange) newLocal(i int) *localReply {
	if x.seenLocal[i] {
		return nil
	}
	lr := x.streams[i].LocalResponse()
	if lr == nil {
		return nil
	}
	x.seenLocal[i] = true
	return &localReply{status: lr.Status, headers: lr.Headers, body: lr.Body}
}

// wait blocks while filter i has paused side t, until it resumes it
// (proxy_continue_stream), sends a local response, the client goes away, or
// the stream idle timeout passes (408, as Envoy's stream_idle_timeout).
func (x *exchange) wait(i int, t abi.StreamType) (*localReply, error) {
	s := x.streams[i]
	timer := time.NewTimer(x.g.opts.StreamIdleTimeout)
	defer timer.Stop()
	for {
		if rep := x.newLocal(i); rep != nil {
			return rep, nil
		}
		if s.Resumed(t) {
			return nil, nil
		}
		select {
		case <-s.Signal():
		case <-x.ctx.Done():
			x.setFlag(flagDownstreamDisconnect)
			return nil, errReset
		case <-timer.C:
			x.setFlag(flagStreamIdleTimeout)
			return jsonError(http.StatusRequestTimeout, "stream timeout", "api_error", "stream_timeout"), nil
		}
	}
}

// awaitResponse waits until filter i resumes the response (see wait). It
// reports done when the exchange is over instead: a filter's local reply was
// answered, or the stream was reset (err).
func (x *exchange) awaitResponse(i int) (done bool, err error) {
	rep, err := x.wait(i, abi.StreamHTTPResponse)
	if err != nil {
		return true, err
	}
	if rep != nil {
		return true, x.answer(rep)
	}
	return false, nil
}

// decode runs the request headers and body through the filters to the
// router. It returns a local reply when a filter (or the router) answers.
//
// Envoy's rules: by default a filter that pauses in on_request_headers stops
// all iteration (proxy-wasm's StopIteration becomes
// StopAllIterationAndWatermark), so no body is read until it resumes; the
// body then reaches that same filter first. With the filter's
// allow_on_headers_stop_iteration the pause is a plain StopIteration: body
// chunks keep reaching the filter, and the headers move on when it continues
// (by returning Continue from on_request_body or by proxy_continue_stream).
// A filter that pauses in on_request_body has the body buffered (each later
// chunk is appended and the callback sees the whole buffer) until it returns
// Continue or resumes; past the listener's buffer limit the answer is 413.
// Pausing at end of stream waits for proxy_continue_stream or a local response.
func (x *exchange) decode() (*localReply, error) {
	hs, id := requestHeaders(x.r, x.l.cfg.StripAnyHostPort)
	x.requestID = id
	eos := x.r.Body == nil || x.r.Body == http.NoBody
	if rep, err := x.requestHeaders(0, hs, eos); rep != nil || err != nil || eos {
		return rep, err
	}
	bp := requestBufs.Get().(*[]byte)
	defer requestBufs.Put(bp)
	buf := *bp
	for {
		n, err := x.r.Body.Read(buf)
		x.bytesIn += int64(n)
		last := err == io.EOF
		if err != nil && !last {
			x.setFlag(flagDownstreamDisconnect)
			return nil, errReset
		}
		if n == 0 && !last {
			continue
		}
		if rep, err := x.requestData(0, buf[:n], last); rep != nil || err != nil {
			return rep, err
		}
		if last {
			return nil, nil
		}
	}
}

// requestHeaders passes the request headers through the filters from index
// from on, then to the router. A filter holding them with StopIteration
// (allow_on_headers_stop_iteration, body to come) becomes x.reqHold.
func (x *exchange) requestHeaders(from int, hs []abi.Header, eos bool) (*localReply, error) {
	for i := from; i < len(x.streams); i++ {
		s := x.streams[i]
		act := s.SendRequestHeaders(hs, eos)
		if rep := x.newLocal(i); rep != nil {
			return rep, nil
		}
		if act == abi.ActionPause {
			if x.allowStop(i) && !eos {
				x.reqHold = i
				return nil, nil
			}
			if rep, err := x.wait(i, abi.StreamHTTPRequest); rep != nil || err != nil {
				return rep, err
			}
		}
		hs = s.AppendRequestHeaders(x.reqHeaderBuf[:0])
	}
	x.reqHold = len(x.streams)
	return x.routeHeaders(hs, eos), nil
}

// requestData passes a body chunk through the filters from index from on (up
// to the one holding the headers, if any), then to the router.
func (x *exchange) requestData(from int, chunk []byte, eos bool) (*localReply, error) {
	for i := from; i < len(x.streams); i++ {
		s := x.streams[i]
		if (x.reqPending[i] > 0 || i == x.reqHold) && s.Resumed(abi.StreamHTTPRequest) {
			// Resumed between two chunks: what it held moves on first.
			if rep, err := x.requestRelease(i, false); rep != nil || err != nil {
				return rep, err
			}
		}
		act := s.SendRequestBody(chunk, eos)
		if rep := x.newLocal(i); rep != nil {
			return rep, nil
		}
		x.reqPending[i] += len(chunk)
		if act == abi.ActionPause {
			if x.reqPending[i] > x.limit {
				return tooLarge(x.limit), nil
			}
			if !eos {
				return nil, nil
			}
			if rep, err := x.wait(i, abi.StreamHTTPRequest); rep != nil || err != nil {
				return rep, err
			}
		}
		chunk = s.TakeRequestBody()
		x.reqPending[i] = 0
		if i == x.reqHold {
			if rep, err := x.requestHeaders(i+1, s.RequestHeaders(), false); rep != nil || err != nil {
				return rep, err
			}
		}
	}
	// A chunk that went through a filter is the gateway's own (Take*Body
	// hands it over); one read from the client lives in a reused buffer.
	x.routeData(chunk, eos, from < len(x.streams))
	return nil, nil
}

// requestRelease forwards what filter i held (its headers if it holds them,
// then its buffered body) after it resumed.
func (x *exchange) requestRelease(i int, eos bool) (*localReply, error) {
	s := x.streams[i]
	held := s.TakeRequestBody()
	x.reqPending[i] = 0
	if i == x.reqHold {
		if rep, err := x.requestHeaders(i+1, s.RequestHeaders(), false); rep != nil || err != nil {
			return rep, err
		}
	}
	if len(held) == 0 && !eos {
		return nil, nil
	}
	return x.requestData(i+1, held, eos)
}

// routeHeaders is the router receiving the request headers as the filters
// left them: it picks the route (Envoy re-resolves the route after filters
// changed headers), answering 404 when none matches.
func (x *exchange) routeHeaders(hs []abi.Header, eos bool) *localReply {
	_, rt := findRoute(x.l.cfg.VirtualHosts, harness.HeaderValue(hs, ":authority"),
		harness.HeaderValue(hs, ":path"), x.l.cfg.IgnorePortInHostMatching)
	if rt == nil {
		x.setFlag(flagNoRoute)
		return jsonError(http.StatusNotFound, "no route matched the request", "invalid_request_error", "route_not_found")
	}
	x.route, x.up, x.upHeaders = rt, x.g.clusters[rt.Cluster], hs
	x.upCtx, x.upCancel = context.WithCancel(x.ctx)
	if eos {
		x.armTimeout()
	}
	return nil
}

// routeData is the router receiving body bytes. It buffers up to the buffer
// limit so that the upstream request carries the body's real Content-Length;
// a larger body is streamed to the upstream as it arrives.
func (x *exchange) routeData(chunk []byte, eos, owned bool) {
	if x.pw != nil {
		if len(chunk) > 0 {
			x.pw.Write(chunk) // an error means the upstream request ended; its result says why
		}
		if eos {
			x.pw.Close()
			x.armTimeout()
		}
		return
	}
	if owned && x.upBody == nil {
		x.upBody = chunk
	} else {
		x.upBody = append(x.upBody, chunk...)
	}
	if eos {
		x.armTimeout()
		return
	}
	if len(x.upBody) > x.limit {
		x.startStreaming()
	}
}

// armTimeout starts the route timeout, which runs from the end of the
// downstream request to the end of the upstream response.
func (x *exchange) armTimeout() {
	if x.route.Timeout <= 0 || x.timer != nil {
		return
	}
	cancel := x.upCancel
	x.timer = time.AfterFunc(x.route.Timeout, func() {
		x.timedOut.Store(true)
		cancel()
	})
}

func (x *exchange) startStreaming() {
	pr, pw := io.Pipe()
	x.pw = pw
	x.result = make(chan roundTrip, 1)
	cl := int64(-1)
	if v := harness.HeaderValue(x.upHeaders, "content-length"); v != "" {
		if n, err := strconv.ParseInt(v, 10, 64); err == nil && n >= 0 {
			cl = n
		}
	}
	req, err := newRequest(x.upCtx, x.upHeaders, x.up.scheme(), "cluster", pr, cl)
	if err != nil {
		pr.CloseWithError(err)
		x.result <- roundTrip{err: err}
		return
	}
	go func() {
		resp, err := x.g.send(x.up.transport, req)
		x.result <- roundTrip{resp, err}
	}()
	buffered := x.upBody
	x.upBody = nil
	pw.Write(buffered)
}

// errBadRequest: the headers have no :method or no valid :path.
var errBadRequest = errors.New("invalid :method or :path")

// newRequest builds an HTTP request from a proxy-wasm header map: :method,
// :path (sent to scheme://host), :authority (the Host) and the other headers
// (see setRequestHeaders). Its body is body, of length n (-1: unknown; 0: no
// body). A missing :method or an invalid :path is errBadRequest.
func newRequest(ctx context.Context, hs []abi.Header, scheme, host string, body io.Reader, n int64) (*http.Request, error) {
	method := harness.HeaderValue(hs, ":method")
	u, err := url.ParseRequestURI(harness.HeaderValue(hs, ":path"))
	if err != nil || method == "" {
		return nil, errBadRequest
	}
	u.Scheme, u.Host = scheme, host
	req, err := http.NewRequestWithContext(ctx, method, u.String(), nil)
	if err != nil {
		return nil, errBadRequest
	}
	if n != 0 {
		req.Body = io.NopCloser(body)
	}
	req.ContentLength = n
	req.Host = harness.HeaderValue(hs, ":authority")
	setRequestHeaders(req, hs)
	return req, nil
}

// roundTrip sends the request upstream (or collects the streamed one) and
// returns the response, or the reply Envoy's router would give: 504 on the
// route timeout, 503 when the upstream cannot be reached or resets.
func (x *exchange) roundTrip() (*http.Response, *localReply, error) {
	var res roundTrip
	if x.pw == nil {
		req, err := newRequest(x.upCtx, x.upHeaders, x.up.scheme(), "cluster", bytes.NewReader(x.upBody), int64(len(x.upBody)))
		if err != nil {
			return nil, badRequest(err), nil
		}
		res.resp, res.err = x.g.send(x.up.transport, req)
	} else {
		res = <-x.result
		x.taken = true
	}
	if res.err == nil {
		return res.resp, nil, nil
	}
	switch {
	case x.timedOut.Load():
		x.setFlag(flagUpstreamTimeout)
		return nil, timeoutReply(), nil
	case x.ctx.Err() != nil:
		x.setFlag(flagDownstreamDisconnect)
		return nil, nil, errReset
	case errors.Is(res.err, errBadRequest):
		return nil, badRequest(res.err), nil
	case errors.Is(res.err, errNoHealthyUpstream):
		return nil, jsonError(http.StatusServiceUnavailable, "no healthy upstream", "api_error", "upstream_unavailable"), nil
	}
	x.g.log.Debug("upstream request failed", "listener", x.l.cfg.Name, "cluster", x.up.cfg.Name, "err", res.err)
	x.setFlag(flagUpstreamFailure)
	return nil, jsonError(http.StatusServiceUnavailable, "upstream connect error or disconnect/reset before headers", "api_error", "upstream_unavailable"), nil
}

// bodySource yields response body chunks; eos marks the last.
type bodySource interface {
	next() (chunk []byte, eos bool, err error)
}

type bytesSource struct{ b []byte }

func (s *bytesSource) next() ([]byte, bool, error) { return s.b, true, nil }

type readerSource struct {
	r   io.Reader
	buf []byte
}

func (s *readerSource) next() ([]byte, bool, error) {
	for {
		n, err := s.r.Read(s.buf)
		if err == io.EOF {
			return s.buf[:n], true, nil
		}
		if err != nil {
			return nil, false, err
		}
		if n > 0 {
			return s.buf[:n], false, nil
		}
	}
}

// encodeLocal runs a local reply (a filter's or the router's) through the
// filters' response path, as encode does an upstream response.
func (x *exchange) encodeLocal(rep *localReply) error {
	return x.encode(rep.responseHeaders(), len(rep.body) == 0, &bytesSource{b: rep.body})
}

// errAnswered unwinds encode once a local reply replaced the response.
var errAnswered = errors.New("answered locally")

// encode runs the response through the filters in reverse order and writes it
// downstream. Headers go out (and are flushed) once every filter has passed
// them; each body chunk is written and flushed as soon as every filter has
// let it through, so streamed answers are not held back.
//
// The pause rules mirror decode: a Pause from on_response_headers stops all
// iteration (the upstream is not read until the filter resumes) unless the
// filter has allow_on_headers_stop_iteration; a Pause from on_response_body
// buffers until the filter continues. A local response while the headers are
// still held replaces the response (bypassing the filters, as Envoy's direct
// local reply); after they are written it, or a buffer overflow, resets the
// stream.
func (x *exchange) encode(hs []abi.Header, eos bool, src bodySource) error {
	err := x.encodeAll(hs, eos, src)
	if err == errAnswered {
		return nil
	}
	return err
}

func (x *exchange) encodeAll(hs []abi.Header, eos bool, src bodySource) error {
	x.respHold = -1
	if err := x.responseHeaders(len(x.streams)-1, hs, eos); err != nil || eos {
		return err
	}
	for {
		chunk, last, err := src.next()
		if err != nil {
			switch {
			case x.timedOut.Load():
				x.setFlag(flagUpstreamTimeout)
			case x.ctx.Err() != nil:
				x.setFlag(flagDownstreamDisconnect)
			default:
				x.setFlag(flagUpstreamReset)
			}
			return errReset
		}
		if err := x.responseData(len(x.streams)-1, chunk, last); err != nil {
			return err
		}
		if last {
			return nil
		}
	}
}

// responseHeaders passes the response headers through the filters from
// index from down to 0, then writes them. A filter holding them with
// StopIteration becomes x.respHold.
func (x *exchange) responseHeaders(from int, hs []abi.Header, eos bool) error {
	for i := from; i >= 0; i-- {
		s := x.streams[i]
		act := s.SendResponseHeaders(hs, eos)
		if rep := x.newLocal(i); rep != nil {
			return x.answer(rep)
		}
		if act == abi.ActionPause {
			if x.allowStop(i) && !eos {
				x.respHold = i
				return nil
			}
			if done, err := x.awaitResponse(i); done {
				return err
			}
		}
		hs = s.AppendResponseHeaders(x.respHeaderBuf[:0])
	}
	x.respHold = -1
	x.writeHeaders(hs)
	return nil
}

// responseData passes a body chunk through the filters from index from down
// to the one holding the headers, if any, then writes and flushes it.
func (x *exchange) responseData(from int, chunk []byte, eos bool) error {
	for i := from; i >= 0; i-- {
		s := x.streams[i]
		if (x.respPending[i] > 0 || i == x.respHold) && s.Resumed(abi.StreamHTTPResponse) {
			if err := x.responseRelease(i); err != nil {
				return err
			}
		}
		act := s.SendResponseBody(chunk, eos)
		if rep := x.newLocal(i); rep != nil {
			return x.answer(rep)
		}
		x.respPending[i] += len(chunk)
		if act == abi.ActionPause {
			if x.respPending[i] > x.limit {
				return x.answer(jsonError(http.StatusInternalServerError,
					"response body exceeds the buffer limit of "+strconv.Itoa(x.limit)+" bytes", "api_error", "response_too_large"))
			}
			if !eos {
				return nil
			}
			if done, err := x.awaitResponse(i); done {
				return err
			}
		}
		chunk = s.TakeResponseBody()
		x.respPending[i] = 0
		if i == x.respHold {
			if err := x.responseHeaders(i-1, s.ResponseHeaders(), false); err != nil {
				return err
			}
		}
	}
	if len(chunk) > 0 {
		n, err := x.w.Write(chunk)
		x.bytesOut += int64(n)
		if err != nil {
			x.setFlag(flagDownstreamDisconnect)
			return errReset
		}
	}
	if f, ok := x.w.(http.Flusher); ok {
		f.Flush()
	}
	return nil
}

// responseRelease forwards what filter i held after it resumed.
func (x *exchange) responseRelease(i int) error {
	s := x.streams[i]
	held := s.TakeResponseBody()
	x.respPending[i] = 0
	if i == x.respHold {
		if err := x.responseHeaders(i-1, s.ResponseHeaders(), false); err != nil {
			return err
		}
	}
	if len(held) == 0 {
		return nil
	}
	return x.responseData(i-1, held, false)
}

// answer sends a local reply made while encoding: directly when nothing has
// been written yet (then encoding stops with errAnswered), else a reset.
func (x *exchange) answer(rep *localReply) error {
	if err := x.writeDirect(rep); err != nil {
		return err
	}
	return errAnswered
}

// coalesceLimit is the largest answer whose headers wait for its body (see
// exchange.holdHeaders).
const coalesceLimit = 64 << 10

// writeHeaders sends the response status and headers downstream and flushes,
// unless x.holdHeaders lets them wait for the body's first write.
func (x *exchange) writeHeaders(hs []abi.Header) {
	status, err := strconv.Atoi(harness.HeaderValue(hs, ":status"))
	if err != nil || status < 200 || status > 999 {
		status = http.StatusBadGateway
	}
	setResponseHeaders(x.w, hs)
	x.w.WriteHeader(status)
	x.status, x.wroteHeaders = status, true
	if x.holdHeaders {
		return
	}
	if f, ok := x.w.(http.Flusher); ok {
		f.Flush()
	}
}

// writeDirect sends a local reply straight to the client, bypassing the
// filters (Envoy's sendDirectLocalReply); once headers are out it resets.
func (x *exchange) writeDirect(rep *localReply) error {
	if x.wroteHeaders {
		return errReset
	}
	x.writeHeaders(rep.responseHeaders())
	if len(rep.body) > 0 && x.r.Method != http.MethodHead {
		n, err := x.w.Write(rep.body)
		x.bytesOut += int64(n)
		if err != nil {
			x.setFlag(flagDownstreamDisconnect)
			return errReset
		}
	}
	return nil
}

// send performs one router request on rt. It counts in upstreamRequests
// until the response body is closed (or at once when the request fails).
func (g *Gateway) send(rt http.RoundTripper, req *http.Request) (*http.Response, error) {
	g.upstreamRequests.Add(1)
	resp, err := rt.RoundTrip(req)
	if err != nil {
		g.upstreamRequests.Add(-1)
		return nil, err
	}
	if resp.Body == nil || resp.Body == http.NoBody {
		g.upstreamRequests.Add(-1)
		return resp, nil
	}
	resp.Body = &countedBody{ReadCloser: resp.Body, n: &g.upstreamRequests}
	return resp, nil
}

// countedBody decrements n on its first Close.
type countedBody struct {
	io.ReadCloser
	n    *atomic.Int64
	once sync.Once
}

func (b *countedBody) Close() error {
	b.once.Do(func() { b.n.Add(-1) })
	return b.ReadCloser.Close()
}
