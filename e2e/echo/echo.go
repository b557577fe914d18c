// Package echo is an httpbin-like upstream for tests: every path answers like
// httpbin's /anything, a JSON description of the request it received, and
// every request is recorded.
package echo

import (
	"encoding/json"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strconv"
	"sync"

	"ai-proxy/e2e/serve"
)

// Request is one request the echo received, in arrival order.
type Request struct {
	Method   string
	Path     string
	RawQuery string
	Host     string
	Header   http.Header // as net/http parsed it (Host is in the Host field)
	Body     []byte
}

// Response is the JSON the echo answers, in httpbin's shape.
type Response struct {
	Args    map[string]string `json:"args"`
	Data    string            `json:"data"`
	Files   map[string]string `json:"files"`
	Form    map[string]string `json:"form"`
	Headers map[string]string `json:"headers"` // canonical name → first value; includes Host
	JSON    json.RawMessage   `json:"json"`    // the body when it is JSON, else null
	Method  string            `json:"method"`
	Origin  string            `json:"origin"`
	URL     string            `json:"url"`
}

// Server is the echo upstream. Its methods are safe for concurrent use.
type Server struct {
	mu      sync.Mutex
	reqs    []Request
	started serve.Started
}

// New returns an echo that is not listening yet: use Handler or Start.
func New() *Server { return &Server{} }

// Handler returns the HTTP handler.
func (s *Server) Handler() http.Handler { return http.HandlerFunc(s.serveHTTP) }

// Start listens on a free 127.0.0.1 port (plain HTTP) and returns the base URL.
func (s *Server) Start() string {
	srv := httptest.NewServer(s.Handler())
	s.started.Set(srv)
	return srv.URL
}

// Addr is the "host:port" the server started by Start listens on.
func (s *Server) Addr() string { return s.started.Addr() }

// Port is the port the server started by Start listens on.
func (s *Server) Port() int { return s.started.Port() }

// Close stops the server started by Start.
func (s *Server) Close() {
	if srv := s.started.Server(); srv != nil {
		srv.Close()
	}
}

// Requests returns a copy of everything received so far, in order.
func (s *Server) Requests() []Request {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]Request, len(s.reqs))
	copy(out, s.reqs)
	return out
}

// Reset forgets the recorded requests.
func (s *Server) Reset() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.reqs = nil
}

func (s *Server) serveHTTP(w http.ResponseWriter, r *http.Request) {
	body, err := io.ReadAll(r.Body)
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	s.mu.Lock()
	s.reqs = append(s.reqs, Request{
		Method:   r.Method,
		Path:     r.URL.Path,
		RawQuery: r.URL.RawQuery,
		Host:     r.Host,
		Header:   r.Header.Clone(),
		Body:     body,
	})
	s.mu.Unlock()

	out, err := json.MarshalIndent(Describe(r, body), "", "  ")
	if err != nil {
		http.Error(w, err.Error(), http.StatusInternalServerError)
		return
	}
	out = append(out, '\n')
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Content-Length", strconv.Itoa(len(out)))
	_, _ = w.Write(out)
}

// Describe builds the httpbin answer for r, whose body was already read.
func Describe(r *http.Request, body []byte) Response {
	args := map[string]string{}
	q := r.URL.Query()
	for k := range q {
		args[k] = q.Get(k)
	}
	headers := map[string]string{"Host": r.Host}
	for k, v := range r.Header {
		if len(v) > 0 {
			headers[http.CanonicalHeaderKey(k)] = v[0]
		}
	}
	raw := json.RawMessage("null")
	if json.Valid(body) {
		raw = json.RawMessage(body)
	}
	origin, _, err := net.SplitHostPort(r.RemoteAddr)
	if err != nil {
		origin = r.RemoteAddr
	}
	return Response{
		Args:    args,
		Data:    string(body),
		Files:   map[string]string{},
		Form:    map[string]string{},
		Headers: headers,
		JSON:    raw,
		Method:  r.Method,
		Origin:  origin,
		URL:     "http://" + r.Host + r.URL.RequestURI(),
	}
}
