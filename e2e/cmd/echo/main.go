// Command echo serves the httpbin-like echo of ai-proxy/e2e/echo (every
// path answers a JSON description of the request, as httpbin's /anything) over
// plain HTTP, for the docker-compose setup (e2e/docker-compose.yaml):
//
//	echo [-addr :8080]
//
// It forgets the requests it records every minute, so that a long-running
// container does not grow. SIGTERM and SIGINT stop it.
package main

import (
	"context"
	"flag"
	"log"
	"net"
	"net/http"
	"os"
	"os/signal"
	"syscall"
	"time"

	"ai-proxy/e2e/echo"
)

func main() {
	addr := flag.String("addr", ":8080", "listen address")
	flag.Parse()
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, os.Interrupt)
	defer stop()
	m := echo.New()
	if err := serve(ctx, *addr, m.Handler(), m.Reset); err != nil {
		log.Fatalf("echo: %v", err)
	}
}

// serve serves h on addr until ctx is done, calling forget every minute.
func serve(ctx context.Context, addr string, h http.Handler, forget func()) error {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return err
	}
	log.Printf("echo: listening on %s", ln.Addr())
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
