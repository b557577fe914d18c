package gateway

import (
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"sort"
	"strings"
	"sync"

	"ai-proxy/filter/proxywasm/abi"
)

// adminHandler serves Envoy's admin endpoints the harness supports:
// GET /ready (200 "LIVE" once every listener accepts, else 503) and
// GET /stats/prometheus (the filters' metrics and the gateway's counters).
func (g *Gateway) adminHandler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /ready", func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "text/plain; charset=UTF-8")
		if !g.ready.Load() {
			w.WriteHeader(http.StatusServiceUnavailable)
			io.WriteString(w, "PRE_INITIALIZING\n")
			return
		}
		io.WriteString(w, "LIVE\n")
	})
	mux.HandleFunc("GET /stats/prometheus", func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "text/plain; version=0.0.4; charset=UTF-8")
		g.WritePrometheus(w)
	})
	return mux
}

// WritePrometheus writes the filters' metrics and the gateway's counters in
// the Prometheus text format.
func (g *Gateway) WritePrometheus(w io.Writer) {
	g.metrics.WritePrometheus(w)
	g.stats.write(w)
}

// counters are the gateway's own request counters.
type counters struct {
	mu       sync.Mutex
	requests map[[2]string]uint64 // {listener, code class} → count
}

func newCounters() *counters {
	return &counters{requests: map[[2]string]uint64{}}
}

// request counts one finished request; status 0 means it was reset before a
// response was sent.
func (c *counters) request(listener string, status int) {
	class := "reset"
	if status > 0 {
		class = fmt.Sprintf("%dxx", status/100)
	}
	c.mu.Lock()
	c.requests[[2]string{listener, class}]++
	c.mu.Unlock()
}

func (c *counters) write(w io.Writer) {
	c.mu.Lock()
	keys := make([][2]string, 0, len(c.requests))
	for k := range c.requests {
		keys = append(keys, k)
	}
	values := make(map[[2]string]uint64, len(keys))
	for _, k := range keys {
		values[k] = c.requests[k]
	}
	c.mu.Unlock()
	sort.Slice(keys, func(i, j int) bool {
		if keys[i][0] != keys[j][0] {
			return keys[i][0] < keys[j][0]
		}
		return keys[i][1] < keys[j][1]
	})
	io.WriteString(w, "# HELP gateway_http_requests_total Downstream requests by listener and response code class.\n")
	io.WriteString(w, "# TYPE gateway_http_requests_total counter\n")
	for _, k := range keys {
		fmt.Fprintf(w, "gateway_http_requests_total{listener=\"%s\",code=\"%s\"} %d\n", escapeLabel(k[0]), k[1], values[k])
	}
}

func escapeLabel(s string) string {
	return strings.NewReplacer(`\`, `\\`, "\n", `\n`, `"`, `\"`).Replace(s)
}

// slogLevel maps a proxy_log level to a slog level.
func slogLevel(l abi.LogLevel) slog.Level {
	switch l {
	case abi.LogTrace:
		return slog.LevelDebug - 4
	case abi.LogDebug:
		return slog.LevelDebug
	case abi.LogInfo:
		return slog.LevelInfo
	case abi.LogWarn:
		return slog.LevelWarn
	case abi.LogError:
		return slog.LevelError
	}
	return slog.LevelError + 4
}
