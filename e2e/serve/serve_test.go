package serve

import (
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"strconv"
	"testing"
	"time"
)

func TestStarted(t *testing.T) {
	var s Started
	if s.Server() != nil || s.Addr() != "" || s.Port() != 0 {
		t.Fatalf("before Set: server %v, addr %q, port %d", s.Server(), s.Addr(), s.Port())
	}
	srv := httptest.NewServer(http.NotFoundHandler())
	defer srv.Close()
	s.Set(srv)
	addr := srv.Listener.Addr().String()
	if s.Server() != srv || s.Addr() != addr || "127.0.0.1:"+strconv.Itoa(s.Port()) != addr {
		t.Errorf("after Set: server %p, addr %q, port %d; want %p, %q", s.Server(), s.Addr(), s.Port(), srv, addr)
	}
}

func TestRunStopsWithItsContext(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() {
		done <- Run(ctx, "test", "127.0.0.1:0", http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			io.WriteString(w, "ok")
		}), func() {})
	}()
	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Errorf("Run after cancel: %v, want nil", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("Run did not return after its context was done")
	}
	if err := Run(context.Background(), "test", "127.0.0.1:-1", http.NotFoundHandler(), func() {}); err == nil {
		t.Error("Run on an invalid address returned nil")
	}
}
