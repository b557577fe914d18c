// Package serve runs the test servers (mock LLM, echo) as long-lived
// processes for the docker-compose setup.
package serve

import (
	"context"
	"log"
	"net"
	"net/http"
	"time"
)

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
