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
	g.writeRequestCounts(w)
	io.WriteString(w, "# HELP gateway_vm_reloads_total VMs replaced by fresh ones after a trap.\n")
	io.WriteString(w, "# TYPE gateway_vm_reloads_total counter\n")
	fmt.Fprintf(w, "gateway_vm_reloads_total %d\n", g.vmReloads.Load())
}

// codeClasses labels the listener's request counts: [0] counts the requests
// reset before a response was sent, [c] those answered with a cXX status.
var codeClasses = [len(listener{}.codes)]string{"reset", "1xx", "2xx", "3xx", "4xx", "5xx", "6xx", "7xx", "8xx", "9xx"}

// countRequest counts one finished request; status 0 means it was reset
// before a response was sent (writeHeaders keeps a status in 200..999).
func (l *listener) countRequest(status int) {
	c := 0
	if status > 0 {
		c = status / 100
	}
	l.codes[c].Add(1)
}

// writeRequestCounts writes gateway_http_requests_total: by listener name,
// then code class ("1xx".."9xx", then "reset"), counts of zero left out.
func (g *Gateway) writeRequestCounts(w io.Writer) {
	ls := append([]*listener(nil), g.listeners...)
	sort.SliceStable(ls, func(i, j int) bool { return ls[i].cfg.Name < ls[j].cfg.Name })
	io.WriteString(w, "# HELP gateway_http_requests_total Downstream requests by listener and response code class.\n")
	io.WriteString(w, "# TYPE gateway_http_requests_total counter\n")
	for i := 0; i < len(ls); {
		name := ls[i].cfg.Name
		var counts [len(codeClasses)]uint64
		for ; i < len(ls) && ls[i].cfg.Name == name; i++ {
			for c := range counts {
				counts[c] += ls[i].codes[c].Load()
			}
		}
		for k := 1; k <= len(counts); k++ {
			c := k % len(counts) // 1..9, then 0 (reset)
			if counts[c] == 0 {
				continue
			}
			fmt.Fprintf(w, "gateway_http_requests_total{listener=\"%s\",code=\"%s\"} %d\n", harness.EscapeLabelValue(name), codeClasses[c], counts[c])
		}
	}
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
