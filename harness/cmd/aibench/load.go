package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"time"

	"ai-proxy/e2e/mockllm"
	"ai-proxy/harness/bench/loadgen"
	"ai-proxy/harness/bootstrap"
)

// The plugin configurations under test (flat form): the model and two
// options set, credentials replaced. routeConf forwards on the route's
// cluster; calloutConf calls the "llm" cluster and answers the client.
const (
	routeConf   = `{"provider":"openai","auth":{"header":{"Authorization":"Bearer sk-bench"}},"options":{"model":"gpt-4","max_tokens":512,"temperature":1.0},"forward":"route"}`
	calloutConf = `{"provider":"openai","auth":{"header":{"Authorization":"Bearer sk-bench"}},"options":{"model":"gpt-4","max_tokens":512,"temperature":1.0},"cluster":"llm"}`
)

// Listener names of the benchmark's bootstrap.
const (
	lnPlain      = "plain"      // no filter → llm
	lnRoute      = "route"      // filter, route mode → llm
	lnCallout    = "callout"    // filter, callout mode, calls llm
	lnBig        = "big"        // filter, route mode → big (10 MB streams)
	lnSlow       = "slow"       // filter, route mode → slow (held streams)
	lnSlowPlain  = "slow-plain" // no filter → slow-plain
	lnSSEPlain   = "sse-plain"  // no filter → sse (paced streams)
	lnSSERoute   = "sse-route"  // filter, route mode → sse
	chatBodySize = 1 << 10      // the chat bodies of the throughput runs
	chatPath     = "/v1/chat/completions"
)

// setup is the gateway and the mocks behind it.
type setup struct {
	gw        *gw
	fast      *mock // answers at once (JSON or SSE)
	big       *mock // answers what is queued with Next
	sse       *mock // answers a paced stream (pacedStream), chunks 1 ms apart
	slow      *mock // answers a first chunk, then holds the stream (filter)
	slowPlain *mock // the same (no filter), so that each has its own pool

	body       []byte // 1 KB chat request, "stream": false
	streamBody []byte // the same with "stream": true
	header     http.Header
}

func (s *setup) close() {
	if s.gw != nil {
		s.gw.stop()
	}
	for _, m := range []*mock{s.fast, s.big, s.sse, s.slow, s.slowPlain} {
		if m != nil {
			m.close()
		}
	}
}

// startSetup starts the mocks and the gateway with one listener per
// configuration.
func (b *bench) startSetup(ctx context.Context) (*setup, error) {
	s := &setup{
		body:   chatBody(chatBodySize),
		header: http.Header{"Content-Type": {"application/json"}, "Authorization": {"Bearer sk-client"}},
	}
	s.streamBody = bytes.Replace(s.body, []byte(`"stream":false`), []byte(`"stream":true`), 1)
	if bytes.Equal(s.streamBody, s.body) {
		return nil, fmt.Errorf("chatBody has no \"stream\":false to turn into a stream")
	}
	ok := false
	defer func() {
		if !ok {
			s.close()
		}
	}()
	var err error
	if s.fast, err = startMock(nil); err != nil {
		return nil, err
	}
	if s.big, err = startMock(nil); err != nil {
		return nil, err
	}
	if s.sse, err = startMock(&mockllm.Behavior{Chunks: pacedStream(), ChunkDelay: time.Millisecond}); err != nil {
		return nil, err
	}
	held := append([][]byte{sseChunk("first")}, bytes.Join(append([][]byte{sseChunk(" second")}, sseTail(2)...), nil))
	for _, m := range []**mock{&s.slow, &s.slowPlain} {
		if *m, err = startMock(&mockllm.Behavior{Chunks: held, ChunkDelay: b.o.streamHold}); err != nil {
			return nil, err
		}
	}
	wasm, err := filepath.Abs(b.o.wasm)
	if err != nil {
		return nil, err
	}
	listeners := []bootstrap.ListenerSpec{
		{Name: lnPlain, Cluster: "llm"},
		{Name: lnRoute, Plugin: routeConf, Cluster: "llm"},
		{Name: lnCallout, Plugin: calloutConf, Cluster: "llm"},
		{Name: lnBig, Plugin: routeConf, Cluster: "big"},
		{Name: lnSlow, Plugin: routeConf, Cluster: "slow"},
		{Name: lnSlowPlain, Cluster: "slow-plain"},
		{Name: lnSSEPlain, Cluster: "sse"},
		{Name: lnSSERoute, Plugin: routeConf, Cluster: "sse"},
	}
	conf := bootstrapYAML(wasm, listeners,
		[]bootstrap.ClusterSpec{{Name: "llm", Port: s.fast.port}, {Name: "big", Port: s.big.port}, {Name: "sse", Port: s.sse.port}, {Name: "slow", Port: s.slow.port}, {Name: "slow-plain", Port: s.slowPlain.port}})
	if b.o.inprocess {
		s.gw, err = startInProcess(ctx, conf, b.o.workers)
	} else {
		dir, derr := os.MkdirTemp("", "aibench-")
		if derr != nil {
			return nil, derr
		}
		defer os.RemoveAll(dir) // the gateway has read it once it is ready
		path, werr := writeConfig(dir, conf)
		if werr != nil {
			return nil, werr
		}
		names := make([]string, len(listeners))
		for i, l := range listeners {
			names[i] = l.Name
		}
		s.gw, err = startProcess(b.o.gatewayBin, path, b.o.workers, names)
	}
	if err != nil {
		return nil, err
	}
	where := fmt.Sprintf("process %d (%s)", s.gw.pid, b.o.gatewayBin)
	if b.o.inprocess {
		where = "in process"
	}
	b.logf("gateway %s, %d workers; listeners %v", where, b.o.workers, s.gw.addrs)
	ok = true
	return s, nil
}

// chatBody is an OpenAI chat request of exactly n bytes (n >= 200): a
// system prompt and one user message of prose, "stream": false.
func chatBody(n int) []byte {
	const head = `{"model":"client-model","stream":false,"messages":[{"role":"system","content":"You are a helpful assistant."},{"role":"user","content":"`
	const tail = `"}],"temperature":0.2}`
	const prose = "The gateway forwards each request to the provider and records the usage it reports. "
	var b bytes.Buffer
	b.WriteString(head)
	for b.Len()+len(tail) < n {
		b.WriteString(prose[:min(len(prose), n-len(tail)-b.Len())])
	}
	b.WriteString(tail)
	return b.Bytes()
}

// load is one closed-loop run on a listener.
func (s *setup) load(ctx context.Context, client *http.Client, listener string, body []byte, concurrency, n int) (*loadgen.Result, error) {
	return loadgen.Run(ctx, loadgen.Config{
		Client:       client,
		URL:          s.gw.url(listener) + chatPath,
		Header:       s.header,
		Body:         body,
		Concurrency:  concurrency,
		Requests:     n,
		MinBodyBytes: 100,
	})
}

// runs is what interleaved measured on each listener.
type runs struct {
	results map[string][]*loadgen.Result // one per round
	cpu     map[string]time.Duration     // the gateway's CPU time over the rounds
	self    map[string]time.Duration     // this process's (load generator and mocks)
}

// cpuPerRequest is the gateway's CPU time per request on listener l.
func (r *runs) cpuPerRequest(l string) time.Duration { return r.perRequest(l, r.cpu) }

// selfPerRequest is this process's CPU time per request on listener l.
func (r *runs) selfPerRequest(l string) time.Duration { return r.perRequest(l, r.self) }

func (r *runs) perRequest(l string, cpu map[string]time.Duration) time.Duration {
	var n int
	for _, res := range r.results[l] {
		n += res.Requests
	}
	if n == 0 {
		return 0
	}
	return cpu[l] / time.Duration(n)
}

// warmClients makes one keep-alive client per listener and warms each
// listener up with warmup requests through it; m is the listeners' mock,
// whose records are dropped after each. Call the returned function to close
// the clients' connections.
func (s *setup) warmClients(ctx context.Context, m *mock, listeners []string, body []byte, concurrency, warmup int) (map[string]*http.Client, func(), error) {
	clients := map[string]*http.Client{}
	for _, l := range listeners {
		clients[l] = loadgen.NewClient(concurrency)
	}
	closeAll := func() {
		for _, c := range clients {
			c.CloseIdleConnections()
		}
	}
	for _, l := range listeners {
		if _, err := s.load(ctx, clients[l], l, body, concurrency, warmup); err != nil {
			closeAll()
			return nil, nil, fmt.Errorf("warm-up of %s: %w", l, err)
		}
		m.forget()
	}
	return clients, closeAll, nil
}

// interleaved runs, after a warm-up of each, rounds of n requests on every
// listener, rotating the order each round (A B C, B C A, C A B, ...). It
// returns each listener's results, one per round, and the gateway's CPU time
// spent during them.
func (b *bench) interleaved(ctx context.Context, s *setup, listeners []string, body []byte, concurrency, warmup, rounds, n int) (*runs, error) {
	return b.interleavedOn(ctx, s, s.fast, listeners, body, concurrency, warmup, rounds, n)
}

// interleavedOn is interleaved with the listeners' mock m (whose records are
// dropped after each run).
func (b *bench) interleavedOn(ctx context.Context, s *setup, m *mock, listeners []string, body []byte, concurrency, warmup, rounds, n int) (*runs, error) {
	clients, closeClients, err := s.warmClients(ctx, m, listeners, body, concurrency, warmup)
	if err != nil {
		return nil, err
	}
	defer closeClients()
	out := &runs{results: map[string][]*loadgen.Result{}, cpu: map[string]time.Duration{}, self: map[string]time.Duration{}}
	for r := range rounds {
		for k := range listeners {
			l := listeners[(k+r)%len(listeners)]
			c0, err := s.gw.cpu()
			if err != nil {
				return nil, err
			}
			m0, err := procCPU(os.Getpid())
			if err != nil {
				return nil, err
			}
			res, err := s.load(ctx, clients[l], l, body, concurrency, n)
			if err != nil {
				return nil, fmt.Errorf("round %d of %s: %w", r+1, l, err)
			}
			c1, err := s.gw.cpu()
			if err != nil {
				return nil, err
			}
			m1, err := procCPU(os.Getpid())
			if err != nil {
				return nil, err
			}
			out.results[l] = append(out.results[l], res)
			out.cpu[l] += c1 - c0
			out.self[l] += m1 - m0
			m.forget()
		}
	}
	return out, nil
}

// throughput is figure 1: route and callout mode against no filter.
func (b *bench) throughput(ctx context.Context, s *setup) error {
	o := b.o
	ls := []string{lnPlain, lnRoute, lnCallout}
	if o.only != "" {
		rs, err := b.interleaved(ctx, s, []string{o.only}, s.body, o.concurrency, o.warmup, o.rounds, o.roundRequests)
		if err != nil {
			return err
		}
		lat := loadgen.Merge(rs.results[o.only], loadgen.Latencies)
		b.logf("%-8s %8.0f req/s  p50 %.3f ms  p99 %.3f ms  CPU per request: gateway %.1f µs, load generator and mock %.1f µs", o.only,
			pooledRate(rs.results[o.only]), ms(loadgen.Percentile(lat, 50)), ms(loadgen.Percentile(lat, 99)),
			us(rs.cpuPerRequest(o.only)), us(rs.selfPerRequest(o.only)))
		return nil
	}
	rs, err := b.interleaved(ctx, s, ls, s.body, o.concurrency, o.warmup, o.rounds, o.roundRequests)
	if err != nil {
		return err
	}
	res := rs.results
	lat := map[string][]time.Duration{}
	for _, l := range ls {
		lat[l] = loadgen.Merge(res[l], loadgen.Latencies)
		b.logf("%-8s %8.0f req/s  p50 %.3f ms  p99 %.3f ms  CPU per request: gateway %.1f µs, load generator and mock %.1f µs  (rounds: %s)", l, pooledRate(res[l]),
			ms(loadgen.Percentile(lat[l], 50)), ms(loadgen.Percentile(lat[l], 99)), us(rs.cpuPerRequest(l)), us(rs.selfPerRequest(l)), rates(res[l]))
	}
	n := o.rounds * o.roundRequests
	b.add(fmt.Sprintf("gateway, no filter: throughput (c=%d, %d req)", o.concurrency, n), pooledRate(res[lnPlain]), "req/s", "")
	b.add("gateway, no filter: p50 latency", ms(loadgen.Percentile(lat[lnPlain], 50)), "ms", "")
	b.add("gateway, no filter: p99 latency", ms(loadgen.Percentile(lat[lnPlain], 99)), "ms", "")
	b.add("gateway, no filter: gateway CPU per request", us(rs.cpuPerRequest(lnPlain)), "µs", "")
	b.add("gateway, no filter: load generator + mock LLM CPU per request (same cores)", us(rs.selfPerRequest(lnPlain)), "µs", "")
	for _, m := range []struct {
		listener, mode, target string
	}{{lnRoute, "route", ">= 0.8"}, {lnCallout, "callout", ">= 0.45"}} {
		b.add(fmt.Sprintf("%s mode: throughput with the filter", m.mode), pooledRate(res[m.listener]), "req/s", "")
		b.add(fmt.Sprintf("%s mode: throughput ratio, filter / no filter (median of %d rounds)", m.mode, o.rounds),
			medianRatio(res[m.listener], res[lnPlain]), "ratio", m.target)
		b.add(fmt.Sprintf("%s mode: p50 latency added by the filter", m.mode),
			ms(loadgen.Percentile(lat[m.listener], 50)-loadgen.Percentile(lat[lnPlain], 50)), "ms", "")
		b.add(fmt.Sprintf("%s mode: p99 latency added by the filter", m.mode),
			ms(loadgen.Percentile(lat[m.listener], 99)-loadgen.Percentile(lat[lnPlain], 99)), "ms", "")
		b.add(fmt.Sprintf("%s mode: gateway CPU per request added by the filter", m.mode),
			us(rs.cpuPerRequest(m.listener)-rs.cpuPerRequest(lnPlain)), "µs", "")
	}
	return nil
}

// pacedStream is the answer of the first-chunk runs, as an LLM streams it:
// a role chunk, two content chunks, then the finish and usage chunks and
// [DONE] together; the mock sends them 1 ms apart, so that the first chunk
// crosses the gateway alone.
func pacedStream() [][]byte {
	role := []byte(`data: {"id":"chatcmpl-bench","object":"chat.completion.chunk","created":1734252460,"model":"gpt-4","choices":[{"index":0,"delta":{"role":"assistant","content":""},"finish_reason":null}]}` + "\n\n")
	return [][]byte{role, sseChunk("Hello"), sseChunk(" world"), bytes.Join(sseTail(2), nil)}
}

// firstChunk is figure 2: time to the first body byte of a streamed answer,
// one request at a time, route mode with the filter against no filter, both
// to the same paced mock.
func (b *bench) firstChunk(ctx context.Context, s *setup) error {
	o := b.o
	ls := []string{lnSSEPlain, lnSSERoute}
	per := o.streamRequests / o.streamRounds
	rs, err := b.interleavedOn(ctx, s, s.sse, ls, s.streamBody, 1, 100, o.streamRounds, per)
	if err != nil {
		return err
	}
	fb, whole := map[string][]time.Duration{}, map[string][]time.Duration{}
	for _, l := range ls {
		fb[l] = loadgen.Merge(rs.results[l], loadgen.FirstBytes)
		whole[l] = loadgen.Merge(rs.results[l], loadgen.Latencies)
		b.logf("%-9s first body byte: p50 %.3f ms  p99 %.3f ms; whole stream p50 %.3f ms; gateway CPU %.1f µs/stream (%d requests)", l,
			ms(loadgen.Percentile(fb[l], 50)), ms(loadgen.Percentile(fb[l], 99)), ms(loadgen.Percentile(whole[l], 50)), us(rs.cpuPerRequest(l)), len(fb[l]))
	}
	n := per * o.streamRounds
	b.add(fmt.Sprintf("first chunk, no filter: median (%d streams each)", n), ms(loadgen.Percentile(fb[lnSSEPlain], 50)), "ms", "")
	b.add("first chunk, route mode with the filter: median", ms(loadgen.Percentile(fb[lnSSERoute], 50)), "ms", "")
	b.add("first chunk: median added by the filter", ms(loadgen.Percentile(fb[lnSSERoute], 50)-loadgen.Percentile(fb[lnSSEPlain], 50)), "ms", "<= 0.25")
	b.add("first chunk: p99 added by the filter", ms(loadgen.Percentile(fb[lnSSERoute], 99)-loadgen.Percentile(fb[lnSSEPlain], 99)), "ms", "")
	b.add("streamed request: median time to the end added by the filter", ms(loadgen.Percentile(whole[lnSSERoute], 50)-loadgen.Percentile(whole[lnSSEPlain], 50)), "ms", "")
	b.add("streamed request: gateway CPU per stream added by the filter", us(rs.cpuPerRequest(lnSSERoute)-rs.cpuPerRequest(lnSSEPlain)), "µs", "")
	return nil
}

// bigStreamPhase is figure 3: a 10 MB streamed answer in route mode, the
// gateway's RSS before and after it and its peak during it.
func (b *bench) bigStreamPhase(ctx context.Context, s *setup) error {
	client := loadgen.NewClient(1)
	defer client.CloseIdleConnections()
	stream := func(chunks [][]byte) (*loadgen.Result, error) {
		s.big.Next(mockllm.Behavior{Chunks: chunks})
		res, err := loadgen.Run(ctx, loadgen.Config{
			Client: client, URL: s.gw.url(lnBig) + chatPath, Header: s.header, Body: s.streamBody,
			Concurrency: 1, Requests: 1, MinBodyBytes: streamSize(chunks),
		})
		s.big.forget()
		return res, err
	}
	if _, err := stream(bigStream(256 << 10)); err != nil { // warm-up
		return fmt.Errorf("warm-up stream: %w", err)
	}
	big := bigStream(b.o.bigStream)
	res, before, peak, after, err := s.measureStream(stream, big)
	if err != nil {
		return fmt.Errorf("big stream: %w", err)
	}
	mb := float64(streamSize(big)) / 1e6
	b.logf("%.1f MB stream in %v: RSS %.1f → %.1f MiB, peak %.1f MiB", mb, res.Elapsed.Round(time.Millisecond), mib(before), mib(after), mib(peak))
	name := fmt.Sprintf("%.0f MB stream", mb)
	b.add(name+" (route mode): time", res.Elapsed.Seconds()*1000, "ms", "")
	b.add(name+": gateway RSS before", mib(before), "MiB", "")
	b.add(name+": gateway RSS after", mib(after), "MiB", "")
	b.add(name+": gateway RSS growth (after - before)", mib(after-before), "MiB", "<= 4")
	b.add(name+": gateway peak RSS during it - before", mib(peak-before), "MiB", "")

	// Four times the answer: the peak is garbage bounded by the collector's
	// pacing (GOGC), not a copy of the answer.
	huge := bigStream(4 * b.o.bigStream)
	_, before4, peak4, after4, err := s.measureStream(stream, huge)
	if err != nil {
		return fmt.Errorf("4× stream: %w", err)
	}
	mb4 := float64(streamSize(huge)) / 1e6
	b.logf("%.1f MB stream: RSS %.1f → %.1f MiB, peak %.1f MiB", mb4, mib(before4), mib(after4), mib(peak4))
	b.add(fmt.Sprintf("%.0f MB stream: gateway RSS growth (after - before)", mb4), mib(after4-before4), "MiB", "<= 4")
	b.add(fmt.Sprintf("%.0f MB stream: gateway peak RSS during it - before", mb4), mib(peak4-before4), "MiB", "")
	return nil
}

// measureStream runs one stream of chunks and reads the gateway's RSS: settled
// before it, its peak during it (reset after the settled reading, so that
// garbage collected before the stream does not count) and settled after it.
func (s *setup) measureStream(stream func([][]byte) (*loadgen.Result, error), chunks [][]byte) (res *loadgen.Result, before, peak, after int64, err error) {
	if before, err = s.gw.settledRSS(); err != nil {
		return
	}
	if err = s.gw.resetPeak(); err != nil {
		return
	}
	if res, err = stream(chunks); err != nil {
		return
	}
	if peak, err = s.gw.rss("VmHWM"); err != nil {
		return
	}
	after, err = s.gw.settledRSS()
	return
}

// rssGrowth is figure 5b: the gateway's RSS after warm-up and after
// rssRequests more requests through the filter (route and callout mode in
// turns of 10,000), and its VMs' linear memory.
func (b *bench) rssGrowth(ctx context.Context, s *setup) error {
	o := b.o
	// Warmed up again when the throughput phase ran: these are new clients.
	clients, closeClients, err := s.warmClients(ctx, s.fast, []string{lnRoute, lnCallout}, s.body, o.concurrency, o.warmup)
	if err != nil {
		return err
	}
	defer closeClients()
	before, err := s.gw.settledRSS()
	if err != nil {
		return err
	}
	vmBefore := s.vmMemory()
	start := time.Now()
	done := 0
	for i := 0; done < o.rssRequests; i++ {
		l := []string{lnRoute, lnCallout}[i%2]
		n := min(10_000, o.rssRequests-done)
		if _, err := s.load(ctx, clients[l], l, s.body, o.concurrency, n); err != nil {
			return fmt.Errorf("after %d requests: %w", done, err)
		}
		s.fast.forget()
		done += n
	}
	elapsed := time.Since(start)
	after, err := s.gw.settledRSS()
	if err != nil {
		return err
	}
	vmAfter := s.vmMemory()
	b.logf("%d requests in %v: RSS %.1f → %.1f MiB; VM memory %.1f → %.1f MiB", done, elapsed.Round(time.Millisecond),
		mib(before), mib(after), mib(int64(vmBefore)), mib(int64(vmAfter)))
	b.add("gateway RSS: requests between the readings (route + callout)", float64(done), "requests", "")
	b.add("gateway RSS after warm-up", mib(before), "MiB", "")
	b.add(fmt.Sprintf("gateway RSS after %d more requests", done), mib(after), "MiB", "")
	b.add("gateway RSS growth over those requests (after / before)", float64(after)/float64(before), "ratio", "<= 1.2")
	if vmBefore > 0 {
		b.add("gateway VMs' linear memory growth over those requests (after / before)", float64(vmAfter)/float64(vmBefore), "ratio", "<= 1.2")
	}
	return nil
}

// vmMemory is the sum of the gateway's VMs' linear memory (GET
// /debug/memory), 0 when unknown.
func (s *setup) vmMemory() uint64 {
	if s.gw.lib != nil {
		return s.gw.lib.MemoryStats().VMMemory
	}
	if s.gw.admin == "" {
		return 0
	}
	resp, err := http.Get("http://" + s.gw.admin + "/debug/memory")
	if err != nil {
		return 0
	}
	defer resp.Body.Close()
	var ms struct {
		VMMemory uint64 `json:"vm_memory"`
	}
	if resp.StatusCode != http.StatusOK || json.NewDecoder(resp.Body).Decode(&ms) != nil {
		return 0
	}
	return ms.VMMemory
}

// perStream is figure 5c: the gateway's RSS with N streams held open at
// once (each has sent its first chunk and waits for the rest), minus its RSS
// before, per stream; with the filter (route mode) and without. Each
// listener has its own cluster; a first pass on each fills the gateway's
// upstream connection pools (and grows its heap) so that the measured passes,
// two per listener in turns, start from the same state.
func (b *bench) perStream(ctx context.Context, s *setup) error {
	n := b.o.concurrentStreams
	ls := []string{lnSlowPlain, lnSlow}
	for _, l := range ls {
		if _, err := b.holdStreams(ctx, s, l, n); err != nil {
			return fmt.Errorf("warm-up of %s: %w", l, err)
		}
	}
	per := map[string][]float64{}
	for range 2 {
		for _, l := range ls {
			v, err := b.holdStreams(ctx, s, l, n)
			if err != nil {
				return fmt.Errorf("%s: %w", l, err)
			}
			per[l] = append(per[l], v)
		}
	}
	plain, filter := median(per[lnSlowPlain]), median(per[lnSlow])
	b.add("concurrent streams held open", float64(n), "streams", "")
	b.add("memory per concurrent stream, no filter (gateway RSS delta / N)", plain/1024, "KiB", "")
	b.add("memory per concurrent stream, route mode with the filter", filter/1024, "KiB", "")
	b.add("memory per concurrent stream added by the filter", (filter-plain)/1024, "KiB", "")
	return nil
}

// holdStreams opens n streams on listener at once and returns the RSS delta
// per stream (bytes) once all of them have received their first chunk.
func (b *bench) holdStreams(ctx context.Context, s *setup, listener string, n int) (float64, error) {
	before, err := s.gw.settledRSS()
	if err != nil {
		return 0, err
	}
	client := loadgen.NewClient(n)
	defer client.CloseIdleConnections()
	first := make(chan error, n)
	done := make(chan error, n)
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	for range n {
		go func() {
			req, err := http.NewRequestWithContext(ctx, http.MethodPost, s.gw.url(listener)+chatPath, bytes.NewReader(s.streamBody))
			if err != nil {
				first <- err
				return
			}
			req.Header = s.header.Clone()
			resp, err := client.Do(req)
			if err != nil {
				first <- err
				return
			}
			defer resp.Body.Close()
			buf := make([]byte, 4096)
			k, err := resp.Body.Read(buf)
			if k == 0 || resp.StatusCode != http.StatusOK {
				first <- fmt.Errorf("status %d, first read %d bytes: %v", resp.StatusCode, k, err)
				return
			}
			first <- nil
			for err == nil {
				_, err = resp.Body.Read(buf)
			}
			done <- nil
		}()
	}
	deadline := time.After(b.o.streamHold * 9 / 10)
	for range n {
		select {
		case err := <-first:
			if err != nil {
				return 0, err
			}
		case <-deadline:
			return 0, fmt.Errorf("not every stream got its first chunk within %v", b.o.streamHold*9/10)
		}
	}
	held, err := s.gw.settledRSS()
	if err != nil {
		return 0, err
	}
	for range n {
		select {
		case <-done:
		case <-time.After(b.o.streamHold + 30*time.Second):
			return 0, fmt.Errorf("streams did not end")
		}
	}
	s.slow.forget()
	s.slowPlain.forget()
	b.logf("%-10s %d streams held: RSS %.1f → %.1f MiB (%.1f KiB per stream)", listener, n, mib(before), mib(held), float64(held-before)/float64(n)/1024)
	return float64(held-before) / float64(n), nil
}

// pooledRate is the successful requests of every result over their summed
// elapsed time.
func pooledRate(rs []*loadgen.Result) float64 {
	var ok int
	var el time.Duration
	for _, r := range rs {
		ok += r.Requests - r.Errors
		el += r.Elapsed
	}
	if el <= 0 {
		return 0
	}
	return float64(ok) / el.Seconds()
}

// medianRatio is the median over rounds of a's throughput over b's in the
// same round.
func medianRatio(a, b []*loadgen.Result) float64 {
	var rs []float64
	for i := range min(len(a), len(b)) {
		if t := b[i].Throughput(); t > 0 {
			rs = append(rs, a[i].Throughput()/t)
		}
	}
	return median(rs)
}

// median is the middle value of v (the mean of the two middle ones for an
// even count), 0 for none.
func median[T float64 | time.Duration](v []T) T {
	if len(v) == 0 {
		return 0
	}
	s := slices.Clone(v)
	slices.Sort(s)
	if len(s)%2 == 1 {
		return s[len(s)/2]
	}
	return (s[len(s)/2-1] + s[len(s)/2]) / 2
}

func rates(rs []*loadgen.Result) string {
	var b bytes.Buffer
	for i, r := range rs {
		if i > 0 {
			b.WriteByte(' ')
		}
		fmt.Fprintf(&b, "%.0f", r.Throughput())
	}
	return b.String()
}

func ms(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }

func mib(n int64) float64 { return float64(n) / (1 << 20) }
