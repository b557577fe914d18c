// Command aibench is the benchmark suite behind `make bench`: it measures
// what the ai-proxy filter costs, side by side with the same gateway without
// the filter, and writes every figure to build/bench.json (an array of
// {name, value, unit, target, met}) and as a table on stdout.
//
//	aibench [-gateway build/gateway] [-wasm build/ai-proxy.wasm]
//	        [-shape-wasm build/wasmbench.wasm] [-out build/bench.json]
//	        [-workers 2] [-concurrency 16] [-phases LIST] [-quick]
//	        [-inprocess] [-only LISTENER] [-cpuprofile FILE] [-memprofile FILE]
//	        [-mutexprofile FILE] [-strict]
//	aibench -guest-profile MODULE
//
// The gateway figures come from the build/gateway process (its own cores,
// its own GC, its RSS read from /proc) driven over loopback by a closed-loop
// load generator (ai-proxy/harness/bench/loadgen) against mock LLMs
// (ai-proxy/e2e/mockllm) served by this process. The configurations compared
// are listeners of one gateway process, run in interleaved rounds (A, B, C,
// then B, C, A, ...) after a warm-up, so that drift hits them alike.
//
// The filter-cost figures (boundary crossing, shaping in wasm against native,
// VM memory, start-up) run in this process on the harness (wazero): each
// operation is timed in runs of about -benchtime, every operation once per
// round, -count rounds; figures are medians over rounds (ratios: the median
// of the ratios within a round).
//
// The gateway's CPU time per request comes from /proc/PID/stat over each run.
//
// -inprocess runs the gateway in this process instead (harness/gateway), so
// that -cpuprofile sees it (with -only LISTENER, the throughput runs of one
// configuration); RSS and CPU figures are then this process's. -strict exits
// 1 when a target is missed. -guest-profile only drives requests (callout,
// route, streamed route) through MODULE with a wazero function listener on
// its exports, its host calls, the filter's functions and a few runtime
// functions, and prints where the time goes.
//
// It exits 2 on a bad command line and 1 when a measurement fails.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"runtime"
	"runtime/pprof"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"

	"ai-proxy/harness/bench/report"
)

// options are the command-line settings.
type options struct {
	gatewayBin string
	wasm       string
	shapeWasm  string
	out        string
	workers    int
	inprocess  bool
	cpuprofile string
	memprofile string
	mutexprof  string
	strict     bool
	phases     map[string]bool
	guestProf  string // a module to profile instead of benchmarking
	only       string // run the throughput phase on this listener only (profiling)

	// Gateway throughput and latency.
	concurrency   int
	warmup        int // requests per configuration before the rounds
	rounds        int
	roundRequests int // requests per configuration per round

	// First chunk.
	streamRequests int // streamed requests per configuration
	streamRounds   int

	// Memory.
	bigStream         int // bytes of the big streamed answer
	rssRequests       int // requests between the two RSS readings
	concurrentStreams int
	streamHold        time.Duration

	// Harness benchmarks.
	benchCount int
	benchTime  time.Duration
	vmRequests int
}

// allPhases are the phases in the order they run.
var allPhases = []string{"startup", "filter", "vmmemory", "throughput", "firstchunk", "bigstream", "rss", "streams"}

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, os.Interrupt)
	code := run(ctx, os.Args[1:], os.Stdout, os.Stderr)
	stop()
	os.Exit(code)
}

func run(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	o, err := parseFlags(args, stderr)
	if err != nil {
		if !errors.Is(err, flag.ErrHelp) {
			fmt.Fprintf(stderr, "aibench: %v\n", err)
		}
		return 2
	}
	if o.cpuprofile != "" {
		f, err := os.Create(o.cpuprofile)
		if err != nil {
			fmt.Fprintf(stderr, "aibench: %v\n", err)
			return 1
		}
		defer f.Close()
		if err := pprof.StartCPUProfile(f); err != nil {
			fmt.Fprintf(stderr, "aibench: %v\n", err)
			return 1
		}
		defer pprof.StopCPUProfile()
	}
	if o.guestProf != "" {
		if err := guestProfile(ctx, o.guestProf, 20_000, stdout); err != nil {
			fmt.Fprintf(stderr, "aibench: %v\n", err)
			return 1
		}
		return 0
	}
	if o.memprofile != "" {
		runtime.MemProfileRate = 1
		defer func() {
			if err := writeProfile("allocs", o.memprofile); err != nil {
				fmt.Fprintf(stderr, "aibench: %v\n", err)
			}
		}()
	}
	if o.mutexprof != "" {
		runtime.SetMutexProfileFraction(1)
		defer func() {
			if err := writeProfile("mutex", o.mutexprof); err != nil {
				fmt.Fprintf(stderr, "aibench: %v\n", err)
			}
		}()
	}
	b := &bench{o: o, log: stderr, rep: &report.Report{}}
	start := time.Now()
	runErr := b.run(ctx)
	fmt.Fprintf(stderr, "aibench: done in %v\n", time.Since(start).Round(time.Second))
	if len(b.rep.Figures) > 0 {
		if err := b.rep.WriteFile(o.out); err != nil {
			fmt.Fprintf(stderr, "aibench: %v\n", err)
			return 1
		}
		fmt.Fprintln(stdout)
		b.rep.WriteTable(stdout)
		fmt.Fprintf(stdout, "\n%d figures written to %s", len(b.rep.Figures), o.out)
		if missed := b.rep.Missed(); len(missed) > 0 {
			names := make([]string, len(missed))
			for i, f := range missed {
				names[i] = f.Name
			}
			fmt.Fprintf(stdout, "; targets missed: %s", strings.Join(names, "; "))
		} else {
			fmt.Fprint(stdout, "; every target met")
		}
		fmt.Fprintln(stdout)
	}
	if runErr != nil {
		fmt.Fprintf(stderr, "aibench: %v\n", runErr)
		return 1
	}
	if o.strict && len(b.rep.Missed()) > 0 {
		return 1
	}
	return 0
}

func parseFlags(args []string, stderr io.Writer) (*options, error) {
	o := &options{}
	fs := flag.NewFlagSet("aibench", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.StringVar(&o.gatewayBin, "gateway", "build/gateway", "the gateway `binary`")
	fs.StringVar(&o.wasm, "wasm", "build/ai-proxy.wasm", "the filter `module`")
	fs.StringVar(&o.shapeWasm, "shape-wasm", "build/wasmbench.wasm", "the shaping-only `module` (filter/shape/testdata/wasmbench)")
	fs.StringVar(&o.out, "out", "build/bench.json", "where to write the figures (JSON)")
	fs.IntVar(&o.workers, "workers", 2, "the gateway's -workers")
	fs.BoolVar(&o.inprocess, "inprocess", false, "run the gateway in this process (for -cpuprofile; RSS figures are then this process's)")
	fs.StringVar(&o.cpuprofile, "cpuprofile", "", "write a CPU profile of this process to `file`")
	fs.StringVar(&o.memprofile, "memprofile", "", "write an allocation profile of this process to `file` at the end (every allocation sampled)")
	fs.StringVar(&o.mutexprof, "mutexprofile", "", "write a mutex contention profile of this process to `file` at the end (every event sampled; with -inprocess, the gateway's VM locks)")
	fs.BoolVar(&o.strict, "strict", false, "exit 1 when a target is missed")
	fs.StringVar(&o.only, "only", "", "run the throughput phase on this `listener` only (plain, route or callout; for -cpuprofile), without figures")
	fs.StringVar(&o.guestProf, "guest-profile", "", "only profile the callout request inside `module` (built without -s for runtime names) with a wazero function listener, and print the breakdown")
	phases := fs.String("phases", strings.Join(allPhases, ","), "the phases to run, comma-separated: "+strings.Join(allPhases, ", "))
	quick := fs.Bool("quick", false, "a short run (smoke test; figures are noisy)")
	fs.IntVar(&o.concurrency, "concurrency", 16, "closed-loop workers of the throughput runs")
	fs.IntVar(&o.warmup, "warmup", 2000, "warm-up requests per configuration")
	fs.IntVar(&o.rounds, "rounds", 10, "interleaved rounds of the throughput runs")
	fs.IntVar(&o.roundRequests, "round-requests", 5000, "requests per configuration per round")
	fs.IntVar(&o.streamRequests, "stream-requests", 1000, "streamed requests per configuration (first chunk)")
	fs.IntVar(&o.rssRequests, "rss-requests", 100_000, "requests between the two RSS readings")
	fs.IntVar(&o.concurrentStreams, "streams", 200, "concurrent slow streams (memory per stream)")
	fs.IntVar(&o.bigStream, "big-stream", 10<<20, "bytes of the big streamed answer")
	fs.IntVar(&o.benchCount, "count", 9, "rounds of the harness benchmarks (medians are reported)")
	fs.DurationVar(&o.benchTime, "benchtime", 250*time.Millisecond, "the duration of one harness benchmark run")
	fs.IntVar(&o.vmRequests, "vm-requests", 100_000, "requests on one VM (VM memory growth)")
	if err := fs.Parse(args); err != nil {
		return nil, err
	}
	if o.only != "" && !slices.Contains([]string{lnPlain, lnRoute, lnCallout}, o.only) {
		return nil, fmt.Errorf("-only %q: want plain, route or callout", o.only)
	}
	if fs.NArg() > 0 {
		return nil, fmt.Errorf("unexpected argument %q", fs.Arg(0))
	}
	o.streamRounds = 100 // 10 streams per configuration in turn: fine interleaving
	o.streamHold = 3 * time.Second
	if *quick {
		o.warmup, o.rounds, o.roundRequests = 300, 2, 1000
		o.streamRequests, o.streamRounds = 200, 20
		o.rssRequests, o.concurrentStreams, o.streamHold = 5000, 50, time.Second
		o.benchCount, o.benchTime, o.vmRequests = 3, 50*time.Millisecond, 20_000
	}
	o.phases = map[string]bool{}
	for _, p := range strings.Split(*phases, ",") {
		p = strings.TrimSpace(p)
		if p == "" {
			continue
		}
		if !slices.Contains(allPhases, p) {
			return nil, fmt.Errorf("-phases: unknown phase %q (want %s)", p, strings.Join(allPhases, ", "))
		}
		o.phases[p] = true
	}
	if o.concurrency < 1 || o.rounds < 1 || o.roundRequests < 1 || o.streamRequests < o.streamRounds ||
		o.rssRequests < 1 || o.concurrentStreams < 1 || o.benchCount < 1 || o.vmRequests < 10_000 || o.workers < 1 {
		return nil, errors.New("counts must be positive (-vm-requests at least 10000, -stream-requests at least 100)")
	}
	return o, nil
}

// bench is one run.
type bench struct {
	o   *options
	log io.Writer
	rep *report.Report
}

// loadAverage is the 1-minute load average (/proc/loadavg).
func loadAverage() (float64, error) {
	b, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return 0, err
	}
	f := strings.Fields(string(b))
	if len(f) == 0 {
		return 0, errors.New("empty /proc/loadavg")
	}
	return strconv.ParseFloat(f[0], 64)
}

// add records a figure; a bad target is a bug of this program.
func (b *bench) add(name string, value float64, unit, target string) {
	if err := b.rep.Add(name, value, unit, target); err != nil {
		panic(err)
	}
}

func (b *bench) logf(format string, args ...any) {
	fmt.Fprintf(b.log, "aibench: "+format+"\n", args...)
}

// run runs the selected phases in order: the harness ones first (start-up
// needs the first compilation of the process), then the gateway ones.
func (b *bench) run(ctx context.Context) error {
	if la, err := loadAverage(); err == nil {
		b.logf("load average %.2f on %d CPUs at the start", la, runtime.NumCPU())
		if la > 0.5*float64(runtime.NumCPU()) {
			b.logf("warning: the machine is busy; figures will be noisy")
		}
		b.add("machine load average (1 min) at the start of the run", la, "load", "")
	}
	defer func() {
		if la, err := loadAverage(); err == nil {
			b.logf("load average %.2f at the end (this run included)", la)
		}
	}()
	harnessPhases := []struct {
		name string
		fn   func(context.Context) error
	}{
		{"startup", b.startup},
		{"filter", b.filterCost},
		{"vmmemory", b.vmMemory},
	}
	for _, p := range harnessPhases {
		if !b.o.phases[p.name] {
			continue
		}
		t := time.Now()
		b.logf("%s ...", p.name)
		if err := p.fn(ctx); err != nil {
			return fmt.Errorf("%s: %w", p.name, err)
		}
		b.logf("%s done in %v", p.name, time.Since(t).Round(time.Millisecond))
	}
	gatewayPhases := []struct {
		name string
		fn   func(context.Context, *setup) error
	}{
		{"throughput", b.throughput},
		{"firstchunk", b.firstChunk},
		{"bigstream", b.bigStreamPhase},
		{"rss", b.rssGrowth},
		{"streams", b.perStream},
	}
	need := false
	for _, p := range gatewayPhases {
		need = need || b.o.phases[p.name]
	}
	if !need {
		return nil
	}
	s, err := b.startSetup(ctx)
	if err != nil {
		return err
	}
	defer s.close()
	for _, p := range gatewayPhases {
		if !b.o.phases[p.name] {
			continue
		}
		if err := ctx.Err(); err != nil {
			return err
		}
		t := time.Now()
		b.logf("%s ...", p.name)
		if err := p.fn(ctx, s); err != nil {
			return fmt.Errorf("%s: %w", p.name, err)
		}
		if err := s.gw.alive(); err != nil {
			return fmt.Errorf("%s: %w", p.name, err)
		}
		b.logf("%s done in %v", p.name, time.Since(t).Round(time.Millisecond))
	}
	return nil
}

// writeProfile writes the named runtime/pprof profile to path (for
// "allocs", alloc_objects and alloc_space cover the whole run).
func writeProfile(name, path string) error {
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	defer f.Close()
	return pprof.Lookup(name).WriteTo(f, 0)
}
