// Package serve runs the test servers (mock LLM, echo) as long-lived
// processes for the docker-compose setup.
package serve

import (
	"context"
	"flag"
	"log"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/signal"
	"strconv"
	"sync"
	"syscall"
	"time"
)

// Main is the main function of a server command: it parses the command line
// ([-addr ADDR], default ":8080"), serves h there with Run until SIGTERM or
// SIGINT, and exits with a "name: error" log line when serving fails.
func Main(name string, h http.Handler, forget func()) {
	addr := flag.String("addr", ":8080", "listen address")
	flag.Parse()
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, os.Interrupt)
	defer stop()
	if err := Run(ctx, name, *addr, h, forget); err != nil {
		log.Fatalf("%s: %v", name, err)
	}
}

// Run serves h on addr until ctx is done, calling forget every minute so that
// what the server records does not grow in a long-running container. name
// prefixes its log lines.
func Run(ctx context.Context, name, addr string, h http.Handler, forget func()) error {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return err
	}
	log.Printf("%s: listening on %s", name, ln.Addr())
	srv := &http.Server{Handler: h, ReadHeaderTimeout: 10 * time.Second}
	go func() {
		t := time.NewTicker(time.Minute)
		defer t.Stop()
		for {
			select {
			case <-t.C:
				forget()
			case <-ctx.Done():
				sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
				defer cancel()
				srv.Shutdown(sctx)
				return
			}
		}
	}()
	if err := srv.Serve(ln); err != http.ErrServerClosed {
		return err
	}
	return nil
}

// Started is the httptest.Server a test server runs on once its Start has
// started it. Its methods are safe for concurrent use; before Set they
// report no server.
type Started struct {
	mu  sync.Mutex
	srv *httptest.Server
}

// Set records the started server.
func (s *Started) Set(srv *httptest.Server) {
	s.mu.Lock()
	s.srv = srv
	s.mu.Unlock()
}

// Server returns the started server, or nil.
func (s *Started) Server() *httptest.Server {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.srv
}

// Addr is the "host:port" the started server listens on, or "".
func (s *Started) Addr() string {
	if srv := s.Server(); srv != nil {
		return srv.Listener.Addr().String()
	}
	return ""
}

// Port is the port the started server listens on, or 0.
func (s *Started) Port() int {
	_, p, err := net.SplitHostPort(s.Addr())
	if err != nil {
		return 0
	}
	n, _ := strconv.Atoi(p)
	return n
}
