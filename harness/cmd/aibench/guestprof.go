package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"slices"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/tetratelabs/wazero/api"
	"github.com/tetratelabs/wazero/experimental"

	"ai-proxy/harness"
)

// guestFuncs are the guest functions, besides the exports and the host
// calls, whose time the guest profile reports (by name-section name).
var guestFuncs = []string{
	"runtime.GC", "runtime.gcStart", "runtime.gcMarkDone", "runtime.gcMarkTermination", "runtime.gcBgMarkWorker",
	"runtime.bgsweep", "runtime.bgscavenge", "runtime.mallocgc", "runtime.memmove", "runtime.memclrNoHeapPointers",
	"runtime.findRunnable", "runtime.schedule", "runtime.mcall", "runtime.morestack", "runtime.newstack",
	"runtime/metrics.Read", "runtime.wasmExportWrapper",
}

// funcStat is the time spent in one function (inclusive, and exclusive of
// the listened functions it calls) and its calls.
type funcStat struct {
	name      string
	calls     int
	total     time.Duration
	exclusive time.Duration
}

// frame is one listened call in progress.
type frame struct {
	start    time.Time
	children time.Duration
}

// guestListener times the calls of the functions it listens to. Not safe
// for concurrent use (one VM, one goroutine).
type guestListener struct {
	stats map[string]*funcStat
	stack []frame
}

func (l *guestListener) NewFunctionListener(def api.FunctionDefinition) experimental.FunctionListener {
	var name string
	switch mod := def.ModuleName(); {
	case mod == "env" || strings.HasPrefix(mod, "wasi"):
		name = "host " + mod + "." + def.Name()
	case len(def.ExportNames()) > 0:
		name = "guest export " + def.ExportNames()[0]
	case slices.Contains(guestFuncs, def.Name()) || strings.HasPrefix(def.Name(), "ai_proxy_"):
		name = def.Name()
	default:
		return nil
	}
	if l.stats[name] == nil {
		l.stats[name] = &funcStat{name: name}
	}
	return &namedListener{l: l, st: l.stats[name]}
}

type namedListener struct {
	l  *guestListener
	st *funcStat
}

func (n *namedListener) Before(context.Context, api.Module, api.FunctionDefinition, []uint64, experimental.StackIterator) {
	n.l.stack = append(n.l.stack, frame{start: time.Now()})
}

func (n *namedListener) After(context.Context, api.Module, api.FunctionDefinition, []uint64) {
	n.pop()
}

func (n *namedListener) Abort(context.Context, api.Module, api.FunctionDefinition, error) { n.pop() }

func (n *namedListener) pop() {
	s := n.l.stack
	if len(s) == 0 {
		return
	}
	f := s[len(s)-1]
	n.l.stack = s[:len(s)-1]
	d := time.Since(f.start)
	n.st.calls++
	n.st.total += d
	n.st.exclusive += d - f.children
	if len(n.l.stack) > 0 {
		n.l.stack[len(n.l.stack)-1].children += d
	}
}

// guestProfile drives requests whole requests through the module at path,
// first a callout request with a tiny body, then a route request with a 1 KB
// body and a JSON answer, then the same streamed (4 SSE chunks), with a wazero function listener on the exports,
// the host calls, the filter's own functions (ai_proxy_*) and a few runtime
// functions, and writes for each: calls per request and time (inclusive, and
// exclusive of the other listened functions). Each listened call costs about
// two clock reads, included in the times; the time per request without the
// listener is printed first. Build the module with its name section (without
// -ldflags=-s) to see functions by name.
func guestProfile(ctx context.Context, path string, requests int, w io.Writer) error {
	data, err := os.ReadFile(path)
	if err != nil {
		return err
	}
	rr, rs, err := newRouteRequests()
	if err != nil {
		return err
	}
	kinds := []struct {
		name string
		run  func(vm *harness.VM, callout, route *harness.Plugin) error
	}{
		{"callout request, tiny body", func(vm *harness.VM, p, _ *harness.Plugin) error { return oneCallout(vm, p, tinyBody) }},
		{"route request, 1 KB body, JSON answer", func(_ *harness.VM, _, p *harness.Plugin) error { return rr.run(p) }},
		{"streamed route request, 1 KB body, 4 SSE chunks", func(_ *harness.VM, _, p *harness.Plugin) error { return rs.run(p) }},
	}
	// One listener for every compilation: wazero caches the compiled guest
	// with the listeners it was compiled with.
	l := &guestListener{stats: map[string]*funcStat{}}
	for _, kind := range kinds {
		// drive runs warm-up requests, then the timed ones.
		drive := func(ctx context.Context, reset func()) (time.Duration, error) {
			m, err := harness.Compile(ctx, data)
			if err != nil {
				return 0, err
			}
			defer m.Close(ctx)
			vm, p, err := newPlugin(ctx, m)
			if err != nil {
				return 0, err
			}
			defer vm.Close(ctx)
			rp, err := startRoutePlugin(vm)
			if err != nil {
				return 0, err
			}
			for range 1000 {
				if err := kind.run(vm, p, rp); err != nil {
					return 0, err
				}
			}
			reset()
			start := time.Now()
			for range requests {
				if err := kind.run(vm, p, rp); err != nil {
					return 0, err
				}
			}
			return time.Since(start) / time.Duration(requests), nil
		}
		plain, err := drive(ctx, func() {})
		if err != nil {
			return err
		}
		// wazero keys compiled code by module and listeners: this compiles anew
		// (once).
		listened, err := drive(experimental.WithFunctionListenerFactory(ctx, l), func() {
			for _, st := range l.stats {
				st.calls, st.total, st.exclusive = 0, 0, 0
			}
		})
		if err != nil {
			return err
		}
		var rows []*funcStat
		for _, st := range l.stats {
			if st.calls > 0 {
				rows = append(rows, st)
			}
		}
		slices.SortFunc(rows, func(a, b *funcStat) int { return int(b.exclusive - a.exclusive) })
		fmt.Fprintf(w, "\n%s, %d requests through %s: %.2f µs per request, %.2f µs with the listener\n",
			kind.name, requests, path, us(plain), us(listened))
		tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
		fmt.Fprintln(tw, "function\tcalls/request\tinclusive µs/request\texclusive µs/request\tµs/call\t")
		for _, st := range rows {
			fmt.Fprintf(tw, "%s\t%.3f\t%.2f\t%.2f\t%.2f\t\n", st.name, float64(st.calls)/float64(requests),
				us(st.total)/float64(requests), us(st.exclusive)/float64(requests), us(st.total)/float64(st.calls))
		}
		if err := tw.Flush(); err != nil {
			return err
		}
	}
	return nil
}
