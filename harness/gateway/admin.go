package gateway

import (
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"runtime"
	"runtime/debug"
	"sort"
	"strings"
	"sync"

	"ai-proxy/filter/proxywasm/abi"
	"ai-proxy/harness"
)

// adminHandler serves Envoy's admin endpoints the harness supports:
// GET /ready (200 "LIVE" once every listener accepts, else 503) and
// GET /stats/prometheus (the filters' metrics and the gateway's counters);
// and two of its own for tests and leak hunting: GET /debug/streams
// (StreamStats as JSON) and GET /debug/memory (MemoryStats as JSON; with
// ?gc=1 a garbage collection that returns freed memory to the OS runs first).
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
	mux.HandleFunc("GET /debug/streams", func(w http.ResponseWriter, _ *http.Request) {
		writeJSON(w, g.StreamStats())
	})
	mux.HandleFunc("GET /debug/memory", func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Query().Get("gc") == "1" {
			debug.FreeOSMemory()
		}
		writeJSON(w, g.MemoryStats())
	})
	return mux
}

func writeJSON(w http.ResponseWriter, v any) {
	b, _ := json.Marshal(v)
	w.Header().Set("Content-Type", "application/json")
	w.Write(append(b, '\n'))
}

// StreamStats counts what is open in the gateway at one moment (GET
// /debug/streams). Once every client request has ended, LiveStreams,
// ActiveRequests, UpstreamRequests and HTTPCalls are 0; UpstreamConnections
// then counts the idle keep-alive connections only.
type StreamStats struct {
	// LiveStreams is the number of filter streams (HTTP contexts) created and
	// not yet done, over every VM.
	LiveStreams int `json:"live_streams"`
	// ActiveRequests is the number of downstream requests being served.
	ActiveRequests int64 `json:"active_requests"`
	// UpstreamRequests is the number of requests sent to route clusters whose
	// response has not been released yet.
	UpstreamRequests int64 `json:"upstream_requests"`
	// UpstreamConnections is the number of open TCP connections to clusters,
	// in use or idle (proxy_http_call connections included).
	UpstreamConnections int64 `json:"upstream_connections"`
	// HTTPCalls is the number of proxy_http_calls not answered yet.
	HTTPCalls int64 `json:"http_calls"`
	// Goroutines is runtime.NumGoroutine().
	Goroutines int `json:"goroutines"`
}

// StreamStats returns the current counts.
func (g *Gateway) StreamStats() StreamStats {
	st := StreamStats{
		ActiveRequests:      g.activeRequests.Load(),
		UpstreamRequests:    g.upstreamRequests.Load(),
		UpstreamConnections: g.upstreamConns.Load(),
		HTTPCalls:           g.httpCalls.Load(),
		Goroutines:          runtime.NumGoroutine(),
	}
	for _, vm := range g.vms() {
		st.LiveStreams += vm.LiveStreams()
	}
	return st
}

// MemoryStats is the gateway's memory at one moment (GET /debug/memory).
type MemoryStats struct {
	// HeapAlloc, HeapInuse, HeapSys, Sys and NumGC are the Go runtime's
	// (runtime.MemStats), in bytes.
	HeapAlloc uint64 `json:"heap_alloc"`
	HeapInuse uint64 `json:"heap_inuse"`
	HeapSys   uint64 `json:"heap_sys"`
	Sys       uint64 `json:"sys"`
	NumGC     uint32 `json:"num_gc"`
	// VMMemory is the sum of the VMs' linear memory sizes, in bytes.
	VMMemory uint64 `json:"vm_memory"`
}

// MemoryStats reads the runtime's memory statistics (a short stop of the world).
func (g *Gateway) MemoryStats() MemoryStats {
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	st := MemoryStats{HeapAlloc: ms.HeapAlloc, HeapInuse: ms.HeapInuse, HeapSys: ms.HeapSys, Sys: ms.Sys, NumGC: ms.NumGC}
	for _, vm := range g.vms() {
		st.VMMemory += uint64(vm.MemorySize())
	}
	return st
}

// WritePrometheus writes the filters' metrics and the gateway's counters in
// the Prometheus text format.
func (g *Gateway) WritePrometheus(w io.Writer) {
	g.metrics.WritePrometheus(w)
	g.stats.write(w)
	io.WriteString(w, "# HELP gateway_vm_reloads_total VMs replaced by fresh ones after a trap.\n")
	io.WriteString(w, "# TYPE gateway_vm_reloads_total counter\n")
	fmt.Fprintf(w, "gateway_vm_reloads_total %d\n", g.vmReloads.Load())
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

// vms returns every worker's VMs.
func (g *Gateway) vms() []*harness.VM {
	var out []*harness.VM
	for _, wk := range g.workers {
		wk.mu.Lock()
		for _, vm := range wk.vms {
			out = append(out, vm)
		}
		wk.mu.Unlock()
	}
	return out
}
