// Command gateway runs proxy-wasm filters from an Envoy v3 bootstrap on the
// harness (wazero) host:
//
//	gateway -config FILE [-workers N] [-profile envoy|apisix|strict-wasi] [-mock-llm ADDR] [-log-level LEVEL] [-access-log PATH]
//
// It writes one JSON access-log line per request (gateway.AccessLogEntry and
// the filters' llm_* properties) to stderr, or to -access-log PATH: a file
// (appended to), "-" for stdout, "off" for none.
//
// It exits non-zero with one line "gateway: <reason>" when the bootstrap is
// invalid or unsupported, a plugin rejects its configuration, or an address
// cannot be bound. Once every listener accepts connections it prints one
// "gateway: listener NAME on ADDR" line per listener (and "gateway: admin on
// ADDR"), then "gateway: ready", on stderr. SIGTERM and SIGINT stop it
// (exit 0): requests in flight get up to 10 s to finish, then are cut.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"os/signal"
	"strings"
	"sync"
	"syscall"
	"time"

	"ai-proxy/e2e/mockllm"
	"ai-proxy/harness"
	"ai-proxy/harness/bootstrap"
	"ai-proxy/harness/gateway"
)

// shutdownGrace bounds the wait for in-flight requests on SIGTERM/SIGINT.
const shutdownGrace = 10 * time.Second

// Exit codes.
const (
	exitOK    = 0
	exitFail  = 1 // the configuration or the start failed
	exitUsage = 2 // bad command line
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, os.Interrupt)
	code := run(ctx, os.Args[1:], os.Stdout, os.Stderr)
	stop()
	os.Exit(code)
}

// run is the command; it returns the exit code. It serves until ctx is done.
func run(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	stderr = &syncWriter{w: stderr} // the logger and the access log share it
	fail := func(code int, err error) int {
		fmt.Fprintf(stderr, "gateway: %s\n", oneLine(err.Error()))
		return code
	}
	fs := flag.NewFlagSet("gateway", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	config := fs.String("config", "", "Envoy v3 bootstrap `file` (YAML or JSON)")
	workers := fs.Int("workers", 0, "number of workers, one VM set each (default GOMAXPROCS)")
	profile := fs.String("profile", string(harness.ProfileEnvoy), "host profile: envoy, apisix or strict-wasi")
	mockAddr := fs.String("mock-llm", "", "start the embedded mock LLM on `addr` (host:port) first")
	logLevel := fs.String("log-level", "info", "log level: debug, info, warn or error")
	accessPath := fs.String("access-log", "", "write the JSON access log to `path` (appended; \"-\": stdout, \"off\": none; default: stderr)")
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			fs.SetOutput(stderr)
			fs.PrintDefaults()
			return exitUsage
		}
		return fail(exitUsage, err)
	}
	if fs.NArg() > 0 {
		return fail(exitUsage, fmt.Errorf("unexpected argument %q", fs.Arg(0)))
	}
	if *config == "" {
		return fail(exitUsage, errors.New("-config FILE is required"))
	}
	if *workers < 0 {
		return fail(exitUsage, errors.New("-workers must not be negative"))
	}
	var level slog.Level
	if err := level.UnmarshalText([]byte(*logLevel)); err != nil {
		return fail(exitUsage, fmt.Errorf("-log-level %q: want debug, info, warn or error", *logLevel))
	}
	logger := slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: level}))

	cfg, err := bootstrap.Load(*config)
	if err != nil {
		return fail(exitFail, err)
	}
	var accessLog io.Writer
	switch *accessPath {
	case "":
		accessLog = stderr
	case "-":
		accessLog = stdout
	case "off":
	default:
		f, err := os.OpenFile(*accessPath, os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o644)
		if err != nil {
			return fail(exitFail, fmt.Errorf("-access-log: %v", err))
		}
		defer f.Close()
		accessLog = f
	}
	if *mockAddr != "" {
		ln, err := net.Listen("tcp", *mockAddr)
		if err != nil {
			return fail(exitFail, fmt.Errorf("mock LLM: %v", err))
		}
		defer ln.Close()
		go mockllm.New().Serve(ln)
		fmt.Fprintf(stderr, "gateway: mock LLM on %s\n", ln.Addr())
	}
	g, err := gateway.New(cfg, gateway.Options{
		Workers:   *workers,
		Profile:   harness.Profile(*profile),
		Logger:    logger,
		AccessLog: accessLog,
	})
	if err != nil {
		return fail(exitFail, err)
	}
	if err := g.Start(ctx); err != nil {
		g.Shutdown(context.Background())
		return fail(exitFail, err)
	}
	for _, name := range g.Listeners() {
		fmt.Fprintf(stderr, "gateway: listener %s on %s\n", name, g.ListenerAddr(name))
	}
	if a := g.AdminAddr(); a != nil {
		fmt.Fprintf(stderr, "gateway: admin on %s\n", a)
	}
	fmt.Fprintln(stderr, "gateway: ready")

	<-ctx.Done()
	sctx, cancel := context.WithTimeout(context.Background(), shutdownGrace)
	defer cancel()
	if err := g.Shutdown(sctx); err != nil {
		// Asked to stop, and stopped: requests still running after the
		// grace period were cut, as Envoy cuts them on SIGTERM.
		fmt.Fprintf(stderr, "gateway: stopped (%s after %v)\n", oneLine(err.Error()), shutdownGrace)
		return exitOK
	}
	fmt.Fprintln(stderr, "gateway: stopped")
	return exitOK
}

func oneLine(s string) string { return strings.Join(strings.Fields(s), " ") }

// syncWriter serializes writes to w.
type syncWriter struct {
	mu sync.Mutex
	w  io.Writer
}

func (s *syncWriter) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.w.Write(p)
}
