// Package mockllm is an OpenAI-compatible chat-completions server for tests
// and for `make run`: it answers deterministic completions (JSON or SSE),
// records every request it receives, and can be told per request to fail in
// the ways real providers and networks do (status, body, delay, connection
// reset, garbage bytes, chunked SSE).
//
// It is not a test package: the gateway CLI embeds it behind -mock-llm.
package mockllm

import (
	"bytes"
	"crypto/tls"
	"encoding/json"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
	"time"

	"ai-proxy/e2e/serve"
)

// Created is the "created" timestamp of every answer, fixed so that answers
// are reproducible.
const Created = 1734252460

// DefaultModel is the model named in answers when the request names none.
const DefaultModel = "mock-model"

// Request is one request the server received, recorded in arrival order,
// with what the server answered.
type Request struct {
	Method   string
	Path     string
	RawQuery string
	Host     string // the request's Host (:authority)
	Header   http.Header
	Body     []byte

	// Status and Response are what the server answered (Response is the whole
	// body, SSE chunks concatenated). Status is 0 when it answered nothing
	// (Reset, Garbage) or has not answered yet (Delay).
	Status   int
	Response []byte
}

// Behavior tells the server how to answer. The zero Behavior answers the
// normal completion. Fields combine: Status, ContentType and Headers apply to
// the normal completion when Body and Chunks are nil.
type Behavior struct {
	// Status is the HTTP status (default 200).
	Status int
	// Body, when non-nil, is sent instead of the completion.
	Body []byte
	// ContentType overrides the Content-Type (default application/json, or
	// text/event-stream for streams and Chunks).
	ContentType string
	// Headers are added to the answer.
	Headers map[string]string
	// Delay is waited before answering (cut short if the client goes away).
	Delay time.Duration
	// Reset hijacks the connection and closes it (with an RST) without
	// answering.
	Reset bool
	// Garbage writes bytes that are not HTTP, then closes the connection.
	Garbage bool
	// Chunks, when non-nil, are written and flushed one by one as the body,
	// ChunkDelay apart. ChunkDelay also paces the normal SSE stream.
	Chunks     [][]byte
	ChunkDelay time.Duration
}

// GarbageBytes is what a Garbage behavior writes.
var GarbageBytes = []byte("\x00\xffTHIS IS NOT HTTP\r\n\r\n\x16\x03")

// Server is the mock. Its methods are safe for concurrent use.
type Server struct {
	mu      sync.Mutex
	reqs    []*Request
	queue   []Behavior
	always  *Behavior
	nextID  int
	started serve.Started
	closing chan struct{}
	once    sync.Once
}

// New returns a server that is not listening yet: use Handler, Start or Serve.
func New() *Server {
	return &Server{closing: make(chan struct{})}
}

// Handler returns the HTTP handler. It answers any path (leniently: not only
// .../chat/completions) and any method.
func (s *Server) Handler() http.Handler { return http.HandlerFunc(s.serveHTTP) }

// Start listens on 127.0.0.1 on a free port (with a self-signed certificate
// when useTLS is set) and returns the base URL, e.g. "https://127.0.0.1:41234".
func (s *Server) Start(useTLS bool) string {
	srv := httptest.NewUnstartedServer(s.Handler())
	if useTLS {
		srv.StartTLS()
	} else {
		srv.Start()
	}
	s.started.Set(srv)
	return srv.URL
}

// Serve answers on l until l is closed (for embedding: the gateway's
// -mock-llm flag). It always returns a non-nil error.
func (s *Server) Serve(l net.Listener) error {
	return (&http.Server{Handler: s.Handler(), ReadHeaderTimeout: 10 * time.Second}).Serve(l)
}

// Addr is the "host:port" the server started by Start listens on.
func (s *Server) Addr() string { return s.started.Addr() }

// Port is the port the server started by Start listens on.
func (s *Server) Port() int { return s.started.Port() }

// Client returns an HTTP client that trusts the server's certificate.
func (s *Server) Client() *http.Client {
	if srv := s.started.Server(); srv != nil {
		return srv.Client()
	}
	return http.DefaultClient
}

// Close stops the server started by Start; delayed answers are abandoned.
func (s *Server) Close() {
	s.once.Do(func() { close(s.closing) })
	if srv := s.started.Server(); srv != nil {
		srv.CloseClientConnections()
		srv.Close()
	}
}

// Requests returns a copy of everything received so far, in order.
func (s *Server) Requests() []Request {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]Request, len(s.reqs))
	for i, r := range s.reqs {
		out[i] = *r
	}
	return out
}

// Reset forgets the recorded requests and every queued or Set behavior.
func (s *Server) Reset() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.reqs = nil
	s.queue = nil
	s.always = nil
}

// Next queues b for one request; queued behaviors are used in order, before
// the one given to Set.
func (s *Server) Next(b Behavior) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.queue = append(s.queue, b)
}

// Set makes b the behavior of every request that finds the queue empty.
func (s *Server) Set(b Behavior) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.always = &b
}

func (s *Server) take(r *http.Request, body []byte) (*Request, Behavior) {
	s.mu.Lock()
	defer s.mu.Unlock()
	var b Behavior
	switch {
	case len(s.queue) > 0:
		b = s.queue[0]
		s.queue = s.queue[1:]
	case s.always != nil:
		b = *s.always
	}
	rec := &Request{
		Method:   r.Method,
		Path:     r.URL.Path,
		RawQuery: r.URL.RawQuery,
		Host:     r.Host,
		Header:   r.Header.Clone(),
		Body:     body,
	}
	s.reqs = append(s.reqs, rec)
	return rec, b
}

// answered records the answer to rec (which Reset may have dropped already).
func (s *Server) answered(rec *Request, status int, resp []byte) {
	s.mu.Lock()
	defer s.mu.Unlock()
	rec.Status = status
	rec.Response = resp
}

func (s *Server) id() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.nextID++
	return "chatcmpl-mock-" + strconv.Itoa(s.nextID)
}

func (s *Server) serveHTTP(w http.ResponseWriter, r *http.Request) {
	body, err := readAll(r)
	if err != nil {
		return
	}
	rec, b := s.take(r, body)

	if b.Delay > 0 {
		s.wait(r, b.Delay)
	}
	if b.Reset || b.Garbage {
		hijackAndClose(w, b.Garbage)
		return
	}
	for k, v := range b.Headers {
		w.Header().Set(k, v)
	}
	status := b.Status
	if status == 0 {
		status = http.StatusOK
	}

	switch {
	case b.Chunks != nil:
		setContentType(w, b.ContentType, "text/event-stream")
		s.answered(rec, status, s.writeChunks(w, r, status, b.Chunks, b.ChunkDelay))
	case b.Body != nil:
		s.reply(w, rec, status, b.ContentType, b.Body)
	default:
		s.complete(w, r, rec, status, b, body)
	}
}

// complete answers the normal completion (JSON or SSE) for a request body.
func (s *Server) complete(w http.ResponseWriter, r *http.Request, rec *Request, status int, b Behavior, body []byte) {
	var req chatRequest
	if err := json.Unmarshal(body, &req); err != nil {
		msg := errorJSON("We could not parse the JSON body of your request.", "invalid_request_error", "invalid_json")
		s.reply(w, rec, http.StatusBadRequest, b.ContentType, msg)
		return
	}
	c := Complete(req.Messages, req.Model)
	c.ID = s.id()
	if !req.Stream {
		s.reply(w, rec, status, b.ContentType, c.JSON())
		return
	}
	includeUsage := req.StreamOptions != nil && req.StreamOptions.IncludeUsage
	setContentType(w, b.ContentType, "text/event-stream")
	w.Header().Set("Cache-Control", "no-cache")
	s.answered(rec, status, s.writeChunks(w, r, status, c.SSE(includeUsage), b.ChunkDelay))
}

// reply answers status and body, with the Content-Type contentType (default
// application/json) and its Content-Length, and records it as rec's answer.
func (s *Server) reply(w http.ResponseWriter, rec *Request, status int, contentType string, body []byte) {
	setContentType(w, contentType, "application/json")
	w.Header().Set("Content-Length", strconv.Itoa(len(body)))
	w.WriteHeader(status)
	_, _ = w.Write(body)
	s.answered(rec, status, body)
}

// wait waits d, or ends the handler without an answer when the client goes
// away or the server closes first.
func (s *Server) wait(r *http.Request, d time.Duration) {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
	case <-r.Context().Done():
		abort()
	case <-s.closing:
		abort()
	}
}

func (s *Server) writeChunks(w http.ResponseWriter, r *http.Request, status int, chunks [][]byte, pace time.Duration) []byte {
	w.WriteHeader(status)
	f, _ := w.(http.Flusher)
	if f != nil {
		f.Flush()
	}
	var all bytes.Buffer
	for i, c := range chunks {
		if i > 0 && pace > 0 {
			s.wait(r, pace)
		}
		if _, err := w.Write(c); err != nil {
			return all.Bytes()
		}
		all.Write(c)
		if f != nil {
			f.Flush()
		}
	}
	return all.Bytes()
}

func setContentType(w http.ResponseWriter, override, def string) {
	if override != "" {
		w.Header().Set("Content-Type", override)
		return
	}
	if w.Header().Get("Content-Type") == "" {
		w.Header().Set("Content-Type", def)
	}
}

// abort ends the handler without an answer: net/http closes the connection
// instead of completing the response (a handler that just returned would be
// answered with an empty 200, which no real provider sends).
func abort() { panic(http.ErrAbortHandler) }

// hijackAndClose takes the connection from net/http and closes it, after
// writing GarbageBytes when garbage is set, or with SO_LINGER 0 (a TCP RST)
// otherwise.
func hijackAndClose(w http.ResponseWriter, garbage bool) {
	hj, ok := w.(http.Hijacker)
	if !ok {
		abort() // HTTP/2: net/http resets the stream
	}
	conn, _, err := hj.Hijack()
	if err != nil {
		return
	}
	if garbage {
		_, _ = conn.Write(GarbageBytes)
		_ = conn.Close()
		return
	}
	raw := conn
	if tc, ok := conn.(*tls.Conn); ok {
		raw = tc.NetConn()
	}
	if tcp, ok := raw.(*net.TCPConn); ok {
		_ = tcp.SetLinger(0)
	}
	_ = raw.Close()
}

// maxBody bounds what the mock reads of one request body.
const maxBody = 64 << 20

func readAll(r *http.Request) ([]byte, error) {
	return io.ReadAll(http.MaxBytesReader(nil, r.Body, maxBody))
}

// errorJSON is an OpenAI-style error body.
func errorJSON(message, typ, code string) []byte {
	out, _ := json.Marshal(map[string]any{"error": map[string]any{
		"message": message, "type": typ, "param": nil, "code": code,
	}})
	return out
}

// Message is one chat message of a request. Content is kept raw: it may be a
// string or an array of parts.
type Message struct {
	Role    string          `json:"role"`
	Content json.RawMessage `json:"content"`
}

// Text is the message's text: the string content, or its text parts joined
// by spaces.
func (m Message) Text() string {
	var s string
	if json.Unmarshal(m.Content, &s) == nil {
		return s
	}
	var parts []struct {
		Type string `json:"type"`
		Text string `json:"text"`
	}
	if json.Unmarshal(m.Content, &parts) != nil {
		return ""
	}
	var texts []string
	for _, p := range parts {
		if p.Text != "" {
			texts = append(texts, p.Text)
		}
	}
	return strings.Join(texts, " ")
}

type chatRequest struct {
	Model         string    `json:"model"`
	Messages      []Message `json:"messages"`
	Stream        bool      `json:"stream"`
	StreamOptions *struct {
		IncludeUsage bool `json:"include_usage"`
	} `json:"stream_options"`
}
