package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"strconv"
	"time"

	"ai-proxy/e2e/mockllm"
	"ai-proxy/filter/config"
	"ai-proxy/filter/proxywasm/abi"
	"ai-proxy/filter/shape"
	"ai-proxy/filter/shape/shapetest"
	"ai-proxy/harness"
	"ai-proxy/harness/testutil"
)

// seedConf is the first example of the seed (callout mode), as the
// filter/aiproxy benchmarks configure it.
const seedConf = `{
  "auth": {"header": {"Authorization": "Bearer sk-test"}},
  "model": {"provider": "openai", "name": "gpt-4", "options": {"max_tokens": 512, "temperature": 1.0}},
  "passthrough": false
}`

// okAnswer is the provider's answer to every call-out.
var okAnswer = &harness.CallResponse{
	Headers: []abi.Header{{":status", "200"}, {"content-type", "application/json"}},
	Body:    []byte(`{"id":"c","choices":[{"message":{"role":"assistant","content":"2"}}],"usage":{"prompt_tokens":1,"completion_tokens":1,"total_tokens":2}}`),
}

var calloutHeaders = []abi.Header{
	{":method", "POST"}, {":path", "/anything"}, {":authority", "api.openai.com:443"}, {":scheme", "http"},
	{"content-type", "application/json"}, {"user-agent", "curl/8.6.0"},
}

// shapeSizes are the body sizes of the shaping and scaling figures.
var shapeSizes = []struct {
	name string
	n    int
}{{"1 KB", 1 << 10}, {"64 KiB", 64 << 10}, {"1 MiB", 1 << 20}, {"4 MiB", 4 << 20}}

// errBench: a benchmark function failed.
var errBench = errors.New("benchmark failed")

// oneCallout drives one whole callout request through the module: headers,
// body, the call answered at once, the local response, done (the same
// sequence as filter/aiproxy's BenchmarkCalloutBoundary).
func oneCallout(vm *harness.VM, p *harness.Plugin, body []byte) error {
	s := p.NewStream()
	defer s.Done()
	s.SendRequestHeaders(calloutHeaders, false)
	s.SendRequestBody(body, true)
	calls := vm.PendingCalls()
	if len(calls) != 1 {
		return fmt.Errorf("%w: %d pending calls, want 1", errBench, len(calls))
	}
	if err := vm.RespondCall(calls[0].ID, okAnswer); err != nil {
		return err
	}
	if lr := s.LocalResponse(); lr == nil || lr.Status != 200 {
		return fmt.Errorf("%w: local response %+v", errBench, lr)
	}
	return nil
}

// routeRequest is one route-mode request as the gateway drives it: request
// headers and a 1 KB body (shaped in place), then the answer (read for
// usage): the mock LLM's JSON completion, or the paced SSE stream of the
// first-chunk runs, chunk by chunk.
type routeRequest struct {
	headers, respHeaders []abi.Header
	body                 []byte
	answer               [][]byte
}

func newRouteRequest(stream bool) (*routeRequest, error) {
	body := chatBody(chatBodySize)
	var req struct {
		Messages []mockllm.Message `json:"messages"`
	}
	if err := json.Unmarshal(body, &req); err != nil {
		return nil, err
	}
	r := &routeRequest{
		headers: []abi.Header{
			{":method", "POST"}, {":path", chatPath}, {":authority", "127.0.0.1:9080"}, {":scheme", "http"},
			{"content-type", "application/json"}, {"authorization", "Bearer sk-client"}, {"user-agent", "Go-http-client/1.1"},
			{"content-length", strconv.Itoa(len(body))},
		},
		body: body,
	}
	if stream {
		r.body = bytes.Replace(body, []byte(`"stream":false`), []byte(`"stream":true`), 1)
		r.respHeaders = []abi.Header{{":status", "200"}, {"content-type", "text/event-stream"}}
		r.answer = pacedStream()
		return r, nil
	}
	c := mockllm.Complete(req.Messages, "gpt-4")
	c.ID = "chatcmpl-bench"
	answer := c.JSON()
	r.respHeaders = []abi.Header{{":status", "200"}, {"content-type", "application/json"}, {"content-length", strconv.Itoa(len(answer))}}
	r.answer = [][]byte{answer}
	return r, nil
}

// newRouteRequests are the route requests of the figures: a 1 KB body with a
// JSON answer, and the same streamed.
func newRouteRequests() (json, stream *routeRequest, err error) {
	if json, err = newRouteRequest(false); err != nil {
		return nil, nil, err
	}
	if stream, err = newRouteRequest(true); err != nil {
		return nil, nil, err
	}
	return json, stream, nil
}

// run drives the request through a plugin configured with routeConf.
func (r *routeRequest) run(p *harness.Plugin) error {
	s := p.NewStream()
	defer s.Done()
	if a := s.SendRequestHeaders(r.headers, false); a != abi.ActionContinue {
		return fmt.Errorf("%w: route request headers: %v", errBench, a)
	}
	if a := s.SendRequestBody(r.body, true); a != abi.ActionContinue {
		return fmt.Errorf("%w: route request body: %v (local response %+v)", errBench, a, s.LocalResponse())
	}
	if len(s.TakeRequestBody()) == 0 {
		return fmt.Errorf("%w: no shaped body", errBench)
	}
	if a := s.SendResponseHeaders(r.respHeaders, false); a != abi.ActionContinue {
		return fmt.Errorf("%w: route response headers: %v", errBench, a)
	}
	for i, c := range r.answer {
		if a := s.SendResponseBody(c, i == len(r.answer)-1); a != abi.ActionContinue {
			return fmt.Errorf("%w: route response body chunk %d: %v", errBench, i, a)
		}
		if got := s.TakeResponseBody(); len(got) != len(c) {
			return fmt.Errorf("%w: answer chunk %d changed size: %d, want %d", errBench, i, len(got), len(c))
		}
	}
	return nil
}

// loadModule reads and compiles the filter.
func (b *bench) loadModule(ctx context.Context) (*harness.Module, []byte, error) {
	data, err := os.ReadFile(b.o.wasm)
	if err != nil {
		return nil, nil, err
	}
	m, err := harness.Compile(ctx, data)
	return m, data, err
}

// seedVM compiles the module and starts a VM with the seed's plugin;
// release closes both.
func (b *bench) seedVM(ctx context.Context) (*harness.VM, *harness.Plugin, func(), error) {
	m, _, err := b.loadModule(ctx)
	if err != nil {
		return nil, nil, nil, err
	}
	vm, p, err := newPlugin(ctx, m)
	if err != nil {
		m.Close(ctx)
		return nil, nil, nil, err
	}
	return vm, p, func() { vm.Close(ctx); m.Close(ctx) }, nil
}

// seedPlugin is the plugin of the seed's first example (seedConf).
var seedPlugin = harness.PluginConfig{Name: "ai-proxy", RootID: "ai-proxy", Configuration: []byte(seedConf)}

// newPlugin is a fresh VM of m with the seed's plugin started.
func newPlugin(ctx context.Context, m *harness.Module) (*harness.VM, *harness.Plugin, error) {
	vm, err := m.NewVM(ctx, harness.Env{Profile: harness.ProfileEnvoy})
	if err != nil {
		return nil, nil, err
	}
	p, err := vm.StartPlugin(seedPlugin)
	if err != nil {
		vm.Close(ctx)
		return nil, nil, err
	}
	return vm, p, nil
}

// startRoutePlugin starts a second plugin, in route mode (routeConf), on vm.
func startRoutePlugin(vm *harness.VM) (*harness.Plugin, error) {
	return vm.StartPlugin(harness.PluginConfig{Name: "ai-proxy-route", RootID: "ai-proxy", Configuration: []byte(routeConf)})
}

// startup is figure 6: the module's size, its compilation (the first of
// this process: no cache), and the median of 5 instantiations (NewVM) and
// configurations (StartPlugin).
func (b *bench) startup(ctx context.Context) error {
	t0 := time.Now()
	m, data, err := b.loadModule(ctx)
	if err != nil {
		return err
	}
	defer m.Close(ctx)
	compile := time.Since(t0)
	var inst, conf []time.Duration
	for range 5 {
		t1 := time.Now()
		vm, err := m.NewVM(ctx, harness.Env{Profile: harness.ProfileEnvoy})
		if err != nil {
			return err
		}
		t2 := time.Now()
		if _, err := vm.StartPlugin(seedPlugin); err != nil {
			vm.Close(ctx)
			return err
		}
		t3 := time.Now()
		inst, conf = append(inst, t2.Sub(t1)), append(conf, t3.Sub(t2))
		vm.Close(ctx)
	}
	mi, mc := median(inst), median(conf)
	b.logf("module %d bytes: compile %v, instantiate %v, configure %v", len(data), compile, mi, mc)
	b.add("start-up: compile the module (harness.Compile, no cache)", ms(compile), "ms", "")
	b.add("start-up: instantiate (NewVM, median of 5)", ms(mi), "ms", "")
	b.add("start-up: configure (StartPlugin, median of 5)", ms(mc), "ms", "")
	b.add("start-up: compile + instantiate + configure", ms(compile+mi+mc), "ms", "")
	b.add("size of build/ai-proxy.wasm", float64(len(data))/1e6, "MB", "< 4")
	return nil
}

// op is a benchmarked operation: it runs n iterations.
type op func(n int) error

// timeOp runs f(n) once and returns the time per iteration.
func timeOp(f op, n int) (time.Duration, error) {
	t := time.Now()
	if err := f(n); err != nil {
		return 0, err
	}
	return time.Since(t) / time.Duration(n), nil
}

// calibrate returns the number of iterations of f that take about target
// (at least 1), as testing.B grows b.N.
func calibrate(f op, target time.Duration) (int, error) {
	n := 1
	for {
		t := time.Now()
		if err := f(n); err != nil {
			return 0, err
		}
		d := time.Since(t)
		if d >= target || n >= 1e9 {
			return n, nil
		}
		next := n * 100
		if d > 0 {
			next = int(float64(n) * 1.2 * float64(target) / float64(d))
		}
		n = min(max(next, n+1), n*100)
		if d >= target/2 {
			return n, nil
		}
	}
}

// rounds times every op count times, in turns (op 0, 1, ..., then again),
// each run lasting about benchtime, so that drift and other load on the
// machine hit them alike. It returns per op the time per iteration of each
// round.
func (b *bench) rounds(ops []op) ([][]time.Duration, error) {
	ns := make([]int, len(ops))
	for i, f := range ops {
		n, err := calibrate(f, b.o.benchTime)
		if err != nil {
			return nil, err
		}
		ns[i] = n
	}
	out := make([][]time.Duration, len(ops))
	for range b.o.benchCount {
		for i, f := range ops {
			d, err := timeOp(f, ns[i])
			if err != nil {
				return nil, err
			}
			out[i] = append(out[i], d)
		}
	}
	return out, nil
}

// tinyBody is the smallest chat request: the boundary figure's body.
var tinyBody = []byte(`{"messages":[{"role":"user","content":"hi"}]}`)

// repeat is the op that runs f n times, stopping at its first error.
func repeat(f func() error) op {
	return func(n int) error {
		for range n {
			if err := f(); err != nil {
				return err
			}
		}
		return nil
	}
}

// ratios is, per round, a[r] / b[r].
func ratios(a, b []time.Duration) []float64 {
	out := make([]float64, min(len(a), len(b)))
	for i := range out {
		out[i] = float64(a[i]) / float64(b[i])
	}
	return out
}

// filterCost is figure 4: the boundary cost of one whole callout request,
// and the shaping pass natively and in wasm at 1 KB to 4 MiB. Every ratio is
// the median over rounds of the ratio within a round.
func (b *bench) filterCost(ctx context.Context) error {
	vm, p, release, err := b.seedVM(ctx)
	if err != nil {
		return err
	}
	defer release()
	boundaryOp := repeat(func() error { return oneCallout(vm, p, tinyBody) })
	kb := chatBody(chatBodySize)
	callout1KOp := repeat(func() error { return oneCallout(vm, p, kb) })
	rp, err := startRoutePlugin(vm)
	if err != nil {
		return err
	}
	json1K, stream1K, err := newRouteRequests()
	if err != nil {
		return err
	}
	route1KOp := repeat(func() error { return json1K.run(rp) })
	routeStreamOp := repeat(func() error { return stream1K.run(rp) })

	native, err := shapeNativeOps()
	if err != nil {
		return err
	}
	inWasm, closeWasm, err := b.shapeWasmOps(ctx)
	if err != nil {
		return err
	}
	defer closeWasm()
	// Round order: the three requests, then per size native and wasm.
	ops := []op{boundaryOp, callout1KOp, route1KOp, routeStreamOp}
	for i := range shapeSizes {
		ops = append(ops, native[i], inWasm[i])
	}
	res, err := b.rounds(ops)
	if err != nil {
		return err
	}
	boundary := median(res[0])
	b.logf("boundary: %v per callout request (rounds: %v)", boundary, res[0])
	b.logf("1 KB requests in the harness: callout %v, route %v, streamed route %v", median(res[1]), median(res[2]), median(res[3]))
	b.add("host/module boundary: one whole callout request (tiny body)", us(boundary), "µs", "<= 20")
	b.add("filter in the harness: one whole callout request, 1 KB body", us(median(res[1])), "µs", "")
	b.add("filter in the harness: one whole route request, 1 KB body, JSON answer", us(median(res[2])), "µs", "")
	b.add("filter in the harness: one whole streamed route request, 1 KB body, 4 SSE chunks", us(median(res[3])), "µs", "")
	cold, err := coldRoute(rp)
	if err != nil {
		return err
	}
	b.logf("route request with the caches flushed before each: %v", cold)
	b.add("filter in the harness: one whole route request with the CPU caches flushed before it", us(cold), "µs", "")
	const shapeOps = 4
	wasmAt := func(i int) []time.Duration { return res[shapeOps+1+2*i] }
	for i, sz := range shapeSizes {
		nat, wa := res[shapeOps+2*i], wasmAt(i)
		ratio := median(ratios(wa, nat))
		b.logf("shaping %-6s native %v, wasm %v: %.2f×", sz.name, median(nat), median(wa), ratio)
		b.add("shaping "+sz.name+": native", us(median(nat)), "µs", "")
		b.add("shaping "+sz.name+": in wasm", us(median(wa)), "µs", "")
		target := "<= 4"
		if sz.n < 64<<10 {
			target = ""
		}
		b.add("shaping "+sz.name+": wasm / native", ratio, "ratio", target)
	}
	b.add("shaping in wasm: cost at 1 MiB / at 64 KiB (linear: 16)", median(ratios(wasmAt(2), wasmAt(1))), "ratio", "<= 20")
	b.add("shaping in wasm: cost at 4 MiB / at 1 MiB (linear: 4)", median(ratios(wasmAt(3), wasmAt(2))), "ratio", "")
	return nil
}

// shapePlan is the plan of the seed's configuration (filter/shape's
// benchmarks and testdata/wasmbench use the same).
func shapePlan() *shape.Plan {
	return shape.NewPlan("gpt-4", []config.Option{{Key: "max_tokens", Raw: []byte("512")}, {Key: "temperature", Raw: []byte("1.0")}})
}

// shapeNativeOps are the shaping pass compiled natively, per size.
func shapeNativeOps() ([]op, error) {
	plan := shapePlan()
	var out []op
	for _, sz := range shapeSizes {
		body := shapetest.ChatBody(sz.n)
		var buf []byte
		out = append(out, func(n int) error {
			for range n {
				o, _, err := plan.Request(buf[:0], body)
				if err != nil {
					return fmt.Errorf("native shaping %s: %w", sz.name, err)
				}
				buf = o
			}
			return nil
		})
	}
	return out, nil
}

// shapeWasmOps are the same pass inside build/wasmbench.wasm (no proxy-wasm
// plumbing), on wazero with the compiler, one instance per size. The
// returned function releases the runtime.
func (b *bench) shapeWasmOps(ctx context.Context) ([]op, func(), error) {
	code, err := os.ReadFile(b.o.shapeWasm)
	if err != nil {
		return nil, nil, fmt.Errorf("%w (make bench builds it from filter/shape/testdata/wasmbench)", err)
	}
	wb, err := testutil.LoadWasmBench(ctx, code)
	if err != nil {
		return nil, nil, err
	}
	release := func() { wb.Close(ctx) }
	var out []op
	for _, sz := range shapeSizes {
		mod, err := wb.Instance(ctx, shapetest.ChatBody(sz.n))
		if err != nil {
			release()
			return nil, nil, fmt.Errorf("%w: wasm shaping %s: %v", errBench, sz.name, err)
		}
		shapeFn := mod.ExportedFunction("shape_input")
		out = append(out, func(n int) error {
			for range n {
				res, err := shapeFn.Call(ctx)
				if err != nil || res[0] == 0 {
					return fmt.Errorf("%w: wasm shaping %s: shape_input: %v %v", errBench, sz.name, res, err)
				}
			}
			return nil
		})
	}
	return out, release, nil
}

// vmMemory is figure 5a: one VM's linear memory after a warm-up (a tenth of
// vmRequests, at least 5,000) and after vmRequests callout requests with
// 4 KiB bodies. The warm-up is what the Go heap in the VM needs to reach its
// plateau: with little garbage per request that takes about 5,000 requests.
func (b *bench) vmMemory(ctx context.Context) error {
	vm, p, release, err := b.seedVM(ctx)
	if err != nil {
		return err
	}
	defer release()
	body := shapetest.ChatBody(4 << 10)
	warm := max(5000, b.o.vmRequests/10)
	var afterWarm uint32
	start := time.Now()
	for r := 1; r <= b.o.vmRequests; r++ {
		if err := oneCallout(vm, p, body); err != nil {
			return fmt.Errorf("request %d: %w", r, err)
		}
		if r == warm {
			afterWarm = vm.MemorySize()
		}
	}
	end := vm.MemorySize()
	b.logf("VM memory: %.2f MiB after %d, %.2f MiB after %d requests (%v)", mib(int64(afterWarm)), warm, mib(int64(end)), b.o.vmRequests, time.Since(start).Round(time.Millisecond))
	b.add(fmt.Sprintf("VM linear memory after a warm-up of %d requests (4 KiB bodies)", warm), mib(int64(afterWarm)), "MiB", "")
	b.add(fmt.Sprintf("VM linear memory after %d requests", b.o.vmRequests), mib(int64(end)), "MiB", "")
	b.add("VM linear memory growth (after all / after the warm-up)", float64(end)/float64(afterWarm), "ratio", "<= 1.2")
	return nil
}

func us(d time.Duration) float64 { return float64(d) / float64(time.Microsecond) }

// coldRoute is the median time of one route request (1 KB body, JSON
// answer) when 16 MiB of other memory were written just before it, as a
// gateway's network stack, load generator and other requests do between two
// requests on one VM: the module's code and the VM's memory are then out of
// the caches. The writes are not timed.
func coldRoute(p *harness.Plugin) (time.Duration, error) {
	rr, err := newRouteRequest(false)
	if err != nil {
		return 0, err
	}
	const requests = 2000
	other := make([]byte, 16<<20)
	times := make([]time.Duration, 0, requests)
	for i := range requests {
		for j := 0; j < len(other); j += 64 {
			other[j] = byte(i)
		}
		start := time.Now()
		if err := rr.run(p); err != nil {
			return 0, err
		}
		times = append(times, time.Since(start))
	}
	return median(times), nil
}
