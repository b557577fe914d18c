package e2e

import (
	"bufio"
	"bytes"
	"crypto/sha256"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"ai-proxy/e2e/mockllm"
)

// Streaming and token usage (issue 3), black-box through build/gateway: route
// mode streams SSE chunk by chunk, callout mode relays a stream whole, usage
// reaches /stats/prometheus and the access log, a client that leaves
// mid-stream leaves nothing open, and a 10 MB stream passes in constant
// memory.

const (
	streamKey   = "sk-stream-key"    // the configured credential
	clientKey   = "sk-client-secret" // what clients send; must never reach the LLM
	llmCluster  = "llm"
	firstChunkT = 300 * time.Millisecond // a chunk reaches the client this soon after the mock sent it
)

// routeConfig is a route-mode configuration (flat form); model "" keeps the client's.
func routeConfig(model string) string {
	opts := ""
	if model != "" {
		opts = `,"options":{"model":"` + model + `"}`
	}
	return `{"provider":"openai","auth":{"header":{"Authorization":"Bearer ` + streamKey + `"}}` + opts + `,"forward":"route"}`
}

// calloutConfig is a callout-mode configuration calling the llm cluster.
func calloutConfig(model string) string {
	return `{"provider":"openai","auth":{"header":{"Authorization":"Bearer ` + streamKey + `"}},"options":{"model":"` + model + `"},"cluster":"` + llmCluster + `"}`
}

// llmProbe wraps the mock LLM's handler to see what it sends when: every
// flush of a response body, and the end of every request.
type llmProbe struct {
	mu      sync.Mutex
	flushes []flushed
	ended   chan handlerEnd
}

// flushed is one flush of the mock: when, and how many body bytes of the
// current response were out by then.
type flushed struct {
	at    time.Time
	total int
}

// handlerEnd is the end of one mock request.
type handlerEnd struct {
	at       time.Time
	canceled bool // the request's context was done: its connection closed
	sent     int  // body bytes written
}

type probeWriter struct {
	http.ResponseWriter
	p     *llmProbe
	total int
}

func (w *probeWriter) Write(b []byte) (int, error) {
	n, err := w.ResponseWriter.Write(b)
	w.total += n
	return n, err
}

func (w *probeWriter) Flush() {
	w.ResponseWriter.(http.Flusher).Flush()
	w.p.mu.Lock()
	w.p.flushes = append(w.p.flushes, flushed{time.Now(), w.total})
	w.p.mu.Unlock()
}

// startProbedMock serves a mock LLM on 127.0.0.1 (plain HTTP) through a probe.
func startProbedMock(t *testing.T) (*mockllm.Server, *llmProbe, int) {
	t.Helper()
	mock := mockllm.New()
	p := &llmProbe{ended: make(chan handlerEnd, 1000)}
	h := mock.Handler()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		pw := &probeWriter{ResponseWriter: w, p: p}
		// Deferred: the mock aborts (panics with http.ErrAbortHandler) when
		// its client goes away.
		defer func() {
			select {
			case p.ended <- handlerEnd{at: time.Now(), canceled: r.Context().Err() != nil, sent: pw.total}:
			default:
			}
		}()
		h.ServeHTTP(pw, r)
	}))
	t.Cleanup(func() {
		srv.CloseClientConnections()
		srv.Close()
	})
	return mock, p, srv.Listener.Addr().(*net.TCPAddr).Port
}

// sentAt is when the mock's body had reached offset end.
func (p *llmProbe) sentAt(end int) (time.Time, bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, f := range p.flushes {
		if f.total >= end {
			return f.at, true
		}
	}
	return time.Time{}, false
}

// chatBody is an OpenAI chat request body with one user message.
func chatBody(model, user string, stream bool) string {
	m := map[string]any{
		"messages": []map[string]string{{"role": "user", "content": user}},
		"stream":   stream,
	}
	if model != "" {
		m["model"] = model
	}
	b, _ := json.Marshal(m)
	return string(b)
}

// poll calls done every 20ms until it returns true or d has passed (done runs
// at least once, and once after d when it has not returned true by then).
func poll(d time.Duration, done func() bool) {
	deadline := time.Now().Add(d)
	for !done() && !time.Now().After(deadline) {
		time.Sleep(20 * time.Millisecond)
	}
}

// chatRequest is a client's POST of body to base+/v1/chat/completions, with
// the client's own credential (which the gateway must replace).
func chatRequest(t *testing.T, base, body, requestID string) *http.Request {
	t.Helper()
	req, err := http.NewRequest(http.MethodPost, base+"/v1/chat/completions", strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Authorization", "Bearer "+clientKey)
	if requestID != "" {
		req.Header.Set("X-Request-Id", requestID)
	}
	return req
}

// received is what a client read of a body, and when.
type received struct {
	at    time.Time
	total int
}

// readTimed reads the whole body, noting when each read returned.
func readTimed(r io.Reader) ([]byte, []received, error) {
	var all bytes.Buffer
	var reads []received
	buf := make([]byte, 64<<10)
	for {
		n, err := r.Read(buf)
		if n > 0 {
			all.Write(buf[:n])
			reads = append(reads, received{time.Now(), all.Len()})
		}
		if err == io.EOF {
			return all.Bytes(), reads, nil
		}
		if err != nil {
			return all.Bytes(), reads, err
		}
	}
}

// streamClient has no overall timeout (streams may take seconds) and opens
// a connection per request.
var streamClient = &http.Client{Transport: &http.Transport{Proxy: nil, DisableKeepAlives: true, DisableCompression: true}}

// checkRouteRequest checks what the LLM got in route mode: the endpoint's
// path and authority, the configured credential only, a shaped body.
func checkRouteRequest(t *testing.T, r mockllm.Request, model string, stream bool) {
	t.Helper()
	if r.Method != http.MethodPost || r.Path != "/v1/chat/completions" || r.Host != "api.openai.com" {
		t.Errorf("LLM request %s %s (Host %s), want POST /v1/chat/completions on api.openai.com", r.Method, r.Path, r.Host)
	}
	if got := r.Header.Values("Authorization"); len(got) != 1 || got[0] != "Bearer "+streamKey {
		t.Errorf("LLM Authorization %q, want only the configured one", got)
	}
	var body struct {
		Model         string `json:"model"`
		Stream        bool   `json:"stream"`
		StreamOptions *struct {
			IncludeUsage bool `json:"include_usage"`
		} `json:"stream_options"`
	}
	if err := json.Unmarshal(r.Body, &body); err != nil {
		t.Fatalf("LLM body is not JSON: %v: %s", err, r.Body)
	}
	if body.Model != model || body.Stream != stream {
		t.Errorf("LLM body model %q stream %v, want %q %v: %s", body.Model, body.Stream, model, stream, r.Body)
	}
	if stream && (body.StreamOptions == nil || !body.StreamOptions.IncludeUsage) {
		t.Errorf("LLM body without stream_options.include_usage: %s", r.Body)
	}
}

// TestRouteStreamIsIncremental: in route mode each SSE chunk reaches the
// client as the mock sends it (10 chunks 150 ms apart), byte for byte, and
// the stream ends with data: [DONE].
func TestRouteStreamIsIncremental(t *testing.T) {
	mock, probe, port := startProbedMock(t)
	g := StartGateway(t, Bootstrap{
		Listeners: []Listener{{Name: "route", Plugin: routeConfig("gpt-4"), Cluster: llmCluster}},
		Clusters:  []Cluster{{Name: llmCluster, Port: port}},
	}, "-access-log", "off")

	c := mockllm.Complete([]mockllm.Message{{Role: "user", Content: json.RawMessage(`"one two three"`)}}, "gpt-4")
	c.ID = "chatcmpl-incremental"
	chunks := c.SSE(true)
	if len(chunks) != 10 {
		t.Fatalf("test setup: %d chunks, want 10", len(chunks))
	}
	const pace = 150 * time.Millisecond
	mock.Next(mockllm.Behavior{Chunks: chunks, ChunkDelay: pace})

	resp, err := streamClient.Do(chatRequest(t, g.URL("route"), chatBody("", "one two three", true), ""))
	if err != nil {
		t.Fatal(err)
	}
	body, reads, err := readTimed(resp.Body)
	resp.Body.Close()
	if err != nil {
		t.Fatalf("reading the stream: %v (after %d bytes)", err, len(body))
	}
	if resp.StatusCode != 200 || !strings.HasPrefix(resp.Header.Get("Content-Type"), "text/event-stream") {
		t.Fatalf("status %d, content-type %q; body %s", resp.StatusCode, resp.Header.Get("Content-Type"), body)
	}
	want := bytes.Join(chunks, nil)
	if !bytes.Equal(body, want) {
		t.Fatalf("the client got other bytes than the mock sent:\n got %q\nwant %q", body, want)
	}
	if !bytes.HasSuffix(body, []byte("data: [DONE]\n\n")) {
		t.Errorf("the stream does not end with data: [DONE]")
	}

	// When each chunk was sent by the mock and received by the client.
	end := 0
	var sent, got []time.Time
	for i, ch := range chunks {
		end += len(ch)
		s, ok := probe.sentAt(end)
		if !ok {
			t.Fatalf("no flush of the mock covers chunk %d", i)
		}
		r := time.Time{}
		for _, rd := range reads {
			if rd.total >= end {
				r = rd.at
				break
			}
		}
		sent, got = append(sent, s), append(got, r)
	}
	const firstContent = 1 // chunk 0 is the role, chunk 1 the first word
	if !bytes.Contains(chunks[firstContent], []byte(`"content":"Mock"`)) {
		t.Fatalf("test setup: chunk 1 is not the first content chunk: %s", chunks[firstContent])
	}
	lag := got[firstContent].Sub(sent[firstContent])
	t.Logf("first content chunk: received %v after the mock sent it; last chunk sent %v later",
		lag.Round(time.Microsecond), sent[len(sent)-1].Sub(sent[firstContent]).Round(time.Millisecond))
	if lag > firstChunkT {
		t.Errorf("the first content chunk reached the client %v after the mock sent it, want < %v", lag, firstChunkT)
	}
	if last := sent[len(sent)-1]; !got[firstContent].Before(last.Add(-time.Second)) {
		t.Errorf("the first content chunk arrived at %v, not long before the last one was sent (%v)",
			got[firstContent].Sub(sent[0]), last.Sub(sent[0]))
	}
	for i := range chunks {
		if d := got[i].Sub(sent[i]); d > firstChunkT {
			t.Errorf("chunk %d reached the client %v after the mock sent it, want < %v", i, d, firstChunkT)
		}
	}

	reqs := mock.Requests()
	if len(reqs) != 1 {
		t.Fatalf("the mock got %d requests, want 1", len(reqs))
	}
	checkRouteRequest(t, reqs[0], "gpt-4", true)
}

// TestCalloutStreamIsRelayedWhole: in callout mode a streamed answer reaches
// the client whole, as valid SSE with its content type.
func TestCalloutStreamIsRelayedWhole(t *testing.T) {
	mock, _, port := startProbedMock(t)
	g := StartGateway(t, Bootstrap{
		Listeners: []Listener{{Name: "callout", Plugin: calloutConfig("gpt-4"), Cluster: llmCluster}},
		Clusters:  []Cluster{{Name: llmCluster, Port: port}},
	}, "-access-log", "off")

	resp, err := streamClient.Do(chatRequest(t, g.URL("callout"), chatBody("", "stream it please", true), ""))
	if err != nil {
		t.Fatal(err)
	}
	body, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	if err != nil {
		t.Fatal(err)
	}
	reqs := mock.Requests()
	if len(reqs) != 1 {
		t.Fatalf("the mock got %d requests, want 1", len(reqs))
	}
	if resp.StatusCode != 200 || !strings.HasPrefix(resp.Header.Get("Content-Type"), "text/event-stream") {
		t.Errorf("status %d, content-type %q, want 200 text/event-stream", resp.StatusCode, resp.Header.Get("Content-Type"))
	}
	if !bytes.Equal(body, reqs[0].Response) {
		t.Errorf("the client got other bytes than the mock sent:\n got %q\nwant %q", body, reqs[0].Response)
	}
	events := sseData(t, body)
	if len(events) < 3 || events[len(events)-1] != "[DONE]" {
		t.Fatalf("not an SSE stream ending with [DONE]: %q", body)
	}
	var content strings.Builder
	var usage *mockllm.Usage
	for _, e := range events[:len(events)-1] {
		var ch struct {
			Choices []struct {
				Delta struct {
					Content string `json:"content"`
				} `json:"delta"`
			} `json:"choices"`
			Usage *mockllm.Usage `json:"usage"`
		}
		if err := json.Unmarshal([]byte(e), &ch); err != nil {
			t.Fatalf("event %q is not JSON: %v", e, err)
		}
		for _, c := range ch.Choices {
			content.WriteString(c.Delta.Content)
		}
		if ch.Usage != nil {
			usage = ch.Usage
		}
	}
	want := mockllm.Complete([]mockllm.Message{{Role: "user", Content: json.RawMessage(`"stream it please"`)}}, "gpt-4")
	if content.String() != want.Content {
		t.Errorf("streamed content %q, want %q", content.String(), want.Content)
	}
	if usage == nil || *usage != want.Usage {
		t.Errorf("usage chunk %+v, want %+v (the gateway asks for include_usage)", usage, want.Usage)
	}
}

// sseData returns the data fields of an SSE body's events, checking that
// events are separated by blank lines.
func sseData(t *testing.T, body []byte) []string {
	t.Helper()
	if !bytes.HasSuffix(body, []byte("\n\n")) {
		t.Fatalf("SSE body does not end with a blank line: %q", body)
	}
	var out []string
	for _, ev := range strings.Split(strings.TrimSuffix(string(body), "\n\n"), "\n\n") {
		data, ok := strings.CutPrefix(ev, "data: ")
		if !ok || strings.Contains(data, "\n") {
			t.Fatalf("SSE event %q is not one data line", ev)
		}
		out = append(out, data)
	}
	return out
}

// usageOf is the usage and model the mock reported in an answer (JSON or SSE).
func usageOf(t *testing.T, resp []byte) (mockllm.Usage, string) {
	t.Helper()
	var obj struct {
		Model string         `json:"model"`
		Usage *mockllm.Usage `json:"usage"`
	}
	if bytes.HasPrefix(resp, []byte("data: ")) {
		var u mockllm.Usage
		model := ""
		found := false
		for _, e := range sseData(t, resp) {
			if e == "[DONE]" {
				continue
			}
			if err := json.Unmarshal([]byte(e), &obj); err != nil {
				t.Fatalf("mock event %q: %v", e, err)
			}
			model = obj.Model
			if obj.Usage != nil {
				u, found = *obj.Usage, true
				obj.Usage = nil
			}
		}
		if !found {
			t.Fatalf("mock stream without usage: %q", resp)
		}
		return u, model
	}
	if err := json.Unmarshal(resp, &obj); err != nil || obj.Usage == nil {
		t.Fatalf("mock answer without usage: %v: %s", err, resp)
	}
	return *obj.Usage, obj.Model
}

// promSeries is one sample of the Prometheus text format.
type promSeries struct {
	name   string
	labels map[string]string
	value  float64
}

// parseProm parses the Prometheus text exposition format strictly enough to
// catch malformed output: comments, and samples `name{l="v",...} value`.
func parseProm(t *testing.T, text string) []promSeries {
	t.Helper()
	var out []promSeries
	typed := map[string]bool{}
	for _, line := range strings.Split(strings.TrimSuffix(text, "\n"), "\n") {
		if rest, ok := strings.CutPrefix(line, "# TYPE "); ok {
			f := strings.Fields(rest)
			if len(f) != 2 || typed[f[0]] {
				t.Errorf("bad or repeated TYPE line %q", line)
			}
			typed[f[0]] = true
			continue
		}
		if strings.HasPrefix(line, "#") {
			continue
		}
		s, err := parsePromSample(line)
		if err != nil {
			t.Errorf("exposition line %q: %v", line, err)
			continue
		}
		out = append(out, s)
	}
	return out
}

func parsePromSample(line string) (promSeries, error) {
	s := promSeries{labels: map[string]string{}}
	i := strings.IndexAny(line, "{ ")
	if i <= 0 {
		return s, fmt.Errorf("no metric name")
	}
	s.name = line[:i]
	rest := line[i:]
	if rest[0] == '{' {
		rest = rest[1:]
		for {
			if strings.HasPrefix(rest, "}") {
				rest = rest[1:]
				break
			}
			eq := strings.Index(rest, `="`)
			if eq <= 0 {
				return s, fmt.Errorf("bad label at %q", rest)
			}
			name := rest[:eq]
			rest = rest[eq+2:]
			var v strings.Builder
			for {
				if rest == "" {
					return s, fmt.Errorf("unterminated label value")
				}
				c := rest[0]
				rest = rest[1:]
				if c == '"' {
					break
				}
				if c == '\\' {
					if rest == "" {
						return s, fmt.Errorf("bad escape")
					}
					switch rest[0] {
					case '\\', '"':
						c = rest[0]
					case 'n':
						c = '\n'
					default:
						return s, fmt.Errorf("bad escape \\%c", rest[0])
					}
					rest = rest[1:]
				}
				v.WriteByte(c)
			}
			if _, dup := s.labels[name]; dup {
				return s, fmt.Errorf("label %s twice", name)
			}
			s.labels[name] = v.String()
			rest = strings.TrimPrefix(rest, ",")
		}
	}
	if !strings.HasPrefix(rest, " ") {
		return s, fmt.Errorf("no value")
	}
	v, err := strconv.ParseFloat(strings.TrimSpace(rest), 64)
	if err != nil {
		return s, err
	}
	s.value = v
	return s, nil
}

// promSum sums the samples named name whose labels include match.
func promSum(series []promSeries, name string, match map[string]string) (float64, int) {
	sum, n := 0.0, 0
next:
	for _, s := range series {
		if s.name != name {
			continue
		}
		for k, v := range match {
			if s.labels[k] != v {
				continue next
			}
		}
		sum += s.value
		n++
	}
	return sum, n
}

// scrape reads the gateway's /stats/prometheus.
func scrape(t *testing.T, g *Gateway) []promSeries {
	t.Helper()
	resp, err := adminClient.Get(g.AdminURL() + "/stats/prometheus")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil || resp.StatusCode != 200 {
		t.Fatalf("/stats/prometheus: %d %v", resp.StatusCode, err)
	}
	return parseProm(t, string(b))
}

// adminClient opens a connection per request, so that polling the admin
// leaves nothing open in the gateway.
var adminClient = &http.Client{Transport: &http.Transport{Proxy: nil, DisableKeepAlives: true}, Timeout: 5 * time.Second}

// adminJSON decodes GET admin+path into v.
func adminJSON(t *testing.T, g *Gateway, path string, v any) {
	t.Helper()
	resp, err := adminClient.Get(g.AdminURL() + path)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil || resp.StatusCode != 200 {
		t.Fatalf("%s: %d %v %s", path, resp.StatusCode, err, b)
	}
	if err := json.Unmarshal(b, v); err != nil {
		t.Fatalf("%s: %v: %s", path, err, b)
	}
}

// accessLogLines reads the JSON lines of an access-log file (numbers kept as json.Number).
func accessLogLines(t *testing.T, path string) []map[string]any {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var out []map[string]any
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		dec := json.NewDecoder(bytes.NewReader(sc.Bytes()))
		dec.UseNumber()
		var m map[string]any
		if err := dec.Decode(&m); err != nil {
			t.Fatalf("access-log line is not JSON: %v: %s", err, sc.Bytes())
		}
		out = append(out, m)
	}
	return out
}

// logInt is an integer field of an access-log line, or -1 when absent or not a number.
func logInt(line map[string]any, k string) int64 {
	n, ok := line[k].(json.Number)
	if !ok {
		return -1
	}
	v, err := n.Int64()
	if err != nil {
		return -1
	}
	return v
}

// TestUsageAccounting sends streamed and plain requests in both modes and
// checks that the usage counters on /stats/prometheus are the sums of what
// the mock reported, per model, and that each access-log line carries its
// request's usage.
func TestUsageAccounting(t *testing.T) {
	mock, _, port := startProbedMock(t)
	logPath := filepath.Join(t.TempDir(), "access.log")
	g := StartGateway(t, Bootstrap{
		Listeners: []Listener{
			{Name: "route", Plugin: routeConfig("gpt-4"), Cluster: llmCluster},
			{Name: "callout", Plugin: calloutConfig("gpt-4o-mini"), Cluster: llmCluster},
			{Name: "client-model", Plugin: routeConfig(""), Cluster: llmCluster},
		},
		Clusters: []Cluster{{Name: llmCluster, Port: port}},
	}, "-access-log", logPath, "-workers", "2")

	type job struct {
		listener, model, id string
		stream              bool
		words               int
	}
	var jobs []job
	add := func(listener, clientModel string, n int, stream bool) {
		for i := 0; i < n; i++ {
			kind := "plain"
			if stream {
				kind = "stream"
			}
			jobs = append(jobs, job{listener, clientModel, fmt.Sprintf("usage-%s-%s-%d", listener, kind, i), stream, 1 + len(jobs)%9})
		}
	}
	add("route", "", 20, true)
	add("route", "", 20, false)
	add("callout", "", 20, true)
	add("callout", "", 20, false)
	add("client-model", "model-a", 5, true)
	add("client-model", "model-b", 5, false)

	var wg sync.WaitGroup
	work := make(chan job)
	for w := 0; w < 8; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for j := range work {
				user := strings.TrimSpace(strings.Repeat("word ", j.words))
				resp, err := streamClient.Do(chatRequest(t, g.URL(j.listener), chatBody(j.model, user, j.stream), j.id))
				if err != nil {
					t.Errorf("%s: %v", j.id, err)
					continue
				}
				b, err := io.ReadAll(resp.Body)
				resp.Body.Close()
				if err != nil || resp.StatusCode != 200 {
					t.Errorf("%s: status %d, %v: %s", j.id, resp.StatusCode, err, b)
				}
			}
		}()
	}
	for _, j := range jobs {
		work <- j
	}
	close(work)
	wg.Wait()
	if t.Failed() {
		t.FailNow()
	}

	// What the mock reported, per request id and summed per model.
	type sums struct{ requests, prompt, completion int }
	want := map[string]*sums{}
	byID := map[string]mockllm.Usage{}
	modelByID := map[string]string{}
	respLen := map[string]int{}
	reqs := mock.Requests()
	if len(reqs) != len(jobs) {
		t.Fatalf("the mock got %d requests, want %d", len(reqs), len(jobs))
	}
	for _, r := range reqs {
		u, model := usageOf(t, r.Response)
		id := r.Header.Get("X-Request-Id")
		byID[id], modelByID[id], respLen[id] = u, model, len(r.Response)
		if want[model] == nil {
			want[model] = &sums{}
		}
		want[model].requests++
		want[model].prompt += u.PromptTokens
		want[model].completion += u.CompletionTokens
	}
	for _, m := range []string{"gpt-4", "gpt-4o-mini", "model-a", "model-b"} {
		if want[m] == nil {
			t.Fatalf("the mock answered no request for model %s: %v", m, modelByID)
		}
	}

	t.Run("prometheus", func(t *testing.T) {
		// The counters move when a stream ends, which may be just after the
		// client has its answer: poll briefly.
		var series []promSeries
		poll(3*time.Second, func() bool {
			series = scrape(t, g)
			n, _ := promSum(series, "ai_proxy_requests_total", nil)
			return int(n) >= len(jobs)
		})
		for model, w := range want {
			match := map[string]string{"provider": "openai", "model": model}
			for _, c := range []struct {
				name string
				want int
			}{
				{"ai_proxy_requests_total", w.requests},
				{"ai_proxy_prompt_tokens_total", w.prompt},
				{"ai_proxy_completion_tokens_total", w.completion},
			} {
				got, n := promSum(series, c.name, match)
				if n == 0 || got != float64(c.want) {
					t.Errorf("%s{model=%q}: %v (in %d series), want %d", c.name, model, got, n, c.want)
				}
			}
		}
		if got, _ := promSum(series, "ai_proxy_requests_total", nil); got != float64(len(jobs)) {
			t.Errorf("ai_proxy_requests_total over every model: %v, want %d", got, len(jobs))
		}
		if got, n := promSum(series, "ai_proxy_time_to_first_token_ms_count", map[string]string{"provider": "openai"}); n == 0 || got != float64(len(jobs)) {
			t.Errorf("ai_proxy_time_to_first_token_ms_count{provider=openai}: %v (in %d series), want %d (one per request)", got, n, len(jobs))
		}
		inf, _ := promSum(series, "ai_proxy_time_to_first_token_ms_bucket", map[string]string{"provider": "openai", "le": "+Inf"})
		if cnt, _ := promSum(series, "ai_proxy_time_to_first_token_ms_count", map[string]string{"provider": "openai"}); inf != cnt {
			t.Errorf("time-to-first-token histogram: +Inf bucket %v, count %v", inf, cnt)
		}
	})

	t.Run("access_log", func(t *testing.T) {
		var lines []map[string]any
		poll(3*time.Second, func() bool {
			lines = accessLogLines(t, logPath)
			return len(lines) >= len(jobs)
		})
		if len(lines) != len(jobs) {
			t.Fatalf("%d access-log lines, want %d", len(lines), len(jobs))
		}
		jobByID := map[string]job{}
		for _, j := range jobs {
			jobByID[j.id] = j
		}
		seen := map[string]bool{}
		for _, line := range lines {
			id, _ := line["request_id"].(string)
			j, ok := jobByID[id]
			if !ok || seen[id] {
				t.Errorf("access-log line for an unknown or repeated request id %q: %v", id, line)
				continue
			}
			seen[id] = true
			u := byID[id]
			checks := []struct {
				key  string
				want int64
			}{
				{"status", 200},
				{"llm_prompt_tokens", int64(u.PromptTokens)},
				{"llm_completion_tokens", int64(u.CompletionTokens)},
				{"llm_total_tokens", int64(u.TotalTokens)},
				{"bytes_sent", int64(respLen[id])},
			}
			for _, c := range checks {
				if got := logInt(line, c.key); got != c.want {
					t.Errorf("%s: %s = %v, want %d", id, c.key, line[c.key], c.want)
				}
			}
			if ttft := logInt(line, "llm_time_to_first_token"); ttft < 0 || ttft > 10000 {
				t.Errorf("%s: llm_time_to_first_token = %v", id, line["llm_time_to_first_token"])
			}
			if line["llm_model"] != modelByID[id] || line["llm_provider"] != "openai" {
				t.Errorf("%s: llm_model %v, llm_provider %v; want %q, openai", id, line["llm_model"], line["llm_provider"], modelByID[id])
			}
			if got, _ := line["request_llm_model"].(string); got != j.model {
				t.Errorf("%s: request_llm_model %v, want %q (the client's)", id, line["request_llm_model"], j.model)
			}
			// In callout mode too the request headers reach the router (the
			// filter holds the body), so the route's cluster is known.
			if line["upstream_cluster"] != llmCluster || line["listener"] != j.listener || line["path"] != "/v1/chat/completions" || line["method"] != "POST" {
				t.Errorf("%s: upstream_cluster %v, listener %v, path %v, method %v", id, line["upstream_cluster"], line["listener"], line["path"], line["method"])
			}
			if line["response_flags"] != "" {
				t.Errorf("%s: response_flags %v", id, line["response_flags"])
			}
		}
	})
}

// streamStats is the gateway's /debug/streams.
type streamStats struct {
	LiveStreams         int   `json:"live_streams"`
	ActiveRequests      int64 `json:"active_requests"`
	UpstreamRequests    int64 `json:"upstream_requests"`
	UpstreamConnections int64 `json:"upstream_connections"`
	HTTPCalls           int64 `json:"http_calls"`
	Goroutines          int   `json:"goroutines"`
}

// TestClientDisconnectMidStream: the client leaves after two chunks of a
// route-mode stream; the gateway closes the LLM connection at once and
// nothing stays open (streams, requests, connections, goroutines).
func TestClientDisconnectMidStream(t *testing.T) {
	mock, probe, port := startProbedMock(t)
	logPath := filepath.Join(t.TempDir(), "access.log")
	g := StartGateway(t, Bootstrap{
		Listeners: []Listener{{Name: "route", Plugin: routeConfig("gpt-4"), Cluster: llmCluster}},
		Clusters:  []Cluster{{Name: llmCluster, Port: port}},
	}, "-access-log", logPath, "-workers", "1")
	var base streamStats
	adminJSON(t, g, "/debug/streams", &base)

	c := mockllm.Complete([]mockllm.Message{{Role: "user", Content: json.RawMessage(`"` + strings.Repeat("w ", 40) + `"`)}}, "gpt-4")
	chunks := c.SSE(true)
	mock.Next(mockllm.Behavior{Chunks: chunks, ChunkDelay: 100 * time.Millisecond}) // ~4.5 s in all

	resp, err := streamClient.Do(chatRequest(t, g.URL("route"), chatBody("", "leaving early", true), "leaver"))
	if err != nil {
		t.Fatal(err)
	}
	want := len(chunks[0]) + len(chunks[1])
	got := 0
	buf := make([]byte, 4096)
	for got < want {
		n, err := resp.Body.Read(buf)
		got += n
		if err != nil {
			t.Fatalf("reading the first chunks: %v", err)
		}
	}
	var during streamStats
	adminJSON(t, g, "/debug/streams", &during)
	if during.LiveStreams != 1 || during.ActiveRequests != 1 || during.UpstreamRequests != 1 || during.UpstreamConnections != 1 {
		t.Errorf("while streaming: %+v; want one live stream, request, upstream request and connection", during)
	}
	left := time.Now()
	resp.Body.Close() // the body is unread: the client closes the connection

	select {
	case e := <-probe.ended:
		t.Logf("the mock's handler ended %v after the client left, having sent %d of %d bytes",
			e.at.Sub(left).Round(time.Millisecond), e.sent, len(bytes.Join(chunks, nil)))
		if !e.canceled {
			t.Errorf("the mock finished its stream: the gateway kept reading from the LLM after the client left")
		}
		if d := e.at.Sub(left); d > time.Second {
			t.Errorf("the LLM connection was closed %v after the client left, want < 1s", d)
		}
	case <-time.After(5 * time.Second):
		var st streamStats
		adminJSON(t, g, "/debug/streams", &st)
		b, _ := os.ReadFile(logPath)
		t.Fatalf("the mock still streams 5s after the client left; gateway: %+v; access log:\n%s", st, b)
	}

	// Everything the request held is released.
	var after streamStats
	poll(3*time.Second, func() bool {
		adminJSON(t, g, "/debug/streams", &after)
		return after.LiveStreams == 0 && after.ActiveRequests == 0 && after.UpstreamRequests == 0 &&
			after.UpstreamConnections == 0 && after.HTTPCalls == 0 && after.Goroutines <= base.Goroutines
	})
	if after.LiveStreams != 0 || after.ActiveRequests != 0 || after.UpstreamRequests != 0 || after.UpstreamConnections != 0 || after.HTTPCalls != 0 {
		t.Errorf("3s after the client left: %+v; want nothing open", after)
	}
	if after.Goroutines > base.Goroutines {
		t.Errorf("goroutines: %d before the request, %d after it ended", base.Goroutines, after.Goroutines)
	}

	var line map[string]any
	poll(3*time.Second, func() bool {
		if lines := accessLogLines(t, logPath); len(lines) == 1 {
			line = lines[0]
		}
		return line != nil
	})
	if line == nil {
		t.Fatal("no access-log line for the request")
	}
	if line["response_flags"] != "DC" || logInt(line, "status") != 200 || line["request_id"] != "leaver" {
		t.Errorf("access-log line %v; want status 200 and response_flags DC", line)
	}
}

// memoryStats is the gateway's /debug/memory.
type memoryStats struct {
	HeapAlloc uint64 `json:"heap_alloc"`
	HeapInuse uint64 `json:"heap_inuse"`
	Sys       uint64 `json:"sys"`
	VMMemory  uint64 `json:"vm_memory"`
}

// processMemory is a field of a process's /proc/PID/status in bytes: VmRSS
// (resident set size) or VmHWM (its peak).
func processMemory(t *testing.T, pid int, field string) int64 {
	t.Helper()
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/status")
	if err != nil {
		t.Fatalf("reading the gateway's memory: %v", err)
	}
	for _, line := range strings.Split(string(b), "\n") {
		if rest, ok := strings.CutPrefix(line, field+":"); ok {
			kb, err := strconv.ParseInt(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(rest), "kB")), 10, 64)
			if err != nil {
				t.Fatalf("%s line %q: %v", field, line, err)
			}
			return kb << 10
		}
	}
	t.Fatalf("no %s in /proc/PID/status", field)
	return 0
}

// bigStream is an SSE answer of about size bytes: content chunks of 16 KiB,
// then the finish chunk, a usage chunk and [DONE].
func bigStream(size int) [][]byte {
	word := strings.Repeat("x", 16<<10)
	var chunks [][]byte
	total := 0
	for total < size {
		ch := []byte(`data: {"id":"chatcmpl-big","object":"chat.completion.chunk","created":1734252460,"model":"gpt-4","choices":[{"index":0,"delta":{"content":"` + word + `"},"finish_reason":null}]}` + "\n\n")
		chunks = append(chunks, ch)
		total += len(ch)
	}
	return append(chunks,
		[]byte(`data: {"id":"chatcmpl-big","object":"chat.completion.chunk","created":1734252460,"model":"gpt-4","choices":[{"index":0,"delta":{},"finish_reason":"stop"}]}`+"\n\n"),
		[]byte(`data: {"id":"chatcmpl-big","object":"chat.completion.chunk","created":1734252460,"model":"gpt-4","choices":[],"usage":{"prompt_tokens":3,"completion_tokens":`+strconv.Itoa(len(chunks))+`,"total_tokens":`+strconv.Itoa(3+len(chunks))+`}}`+"\n\n"),
		[]byte("data: [DONE]\n\n"))
}

// TestRouteStreams10MB: a 10 MB streamed answer passes in route mode, byte
// for byte, and the gateway's memory (RSS, Go heap, VM linear memory) does
// not grow with it.
func TestRouteStreams10MB(t *testing.T) {
	mock, _, port := startProbedMock(t)
	// A collector that runs often keeps garbage from hiding (or posing as)
	// memory held for the answer: the peak RSS then shows what is held.
	t.Setenv("GOGC", "10")
	g := StartGateway(t, Bootstrap{
		Listeners: []Listener{{Name: "route", Plugin: routeConfig("gpt-4"), Cluster: llmCluster}},
		Clusters:  []Cluster{{Name: llmCluster, Port: port}},
	}, "-access-log", "off", "-workers", "1")

	stream := func(chunks [][]byte) {
		t.Helper()
		mock.Next(mockllm.Behavior{Chunks: chunks})
		resp, err := streamClient.Do(chatRequest(t, g.URL("route"), chatBody("", "big", true), ""))
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		h := sha256.New()
		n, err := io.Copy(h, resp.Body)
		if err != nil || resp.StatusCode != 200 {
			t.Fatalf("status %d, %v after %d bytes", resp.StatusCode, err, n)
		}
		want := sha256.Sum256(bytes.Join(chunks, nil))
		if wantN := len(bytes.Join(chunks, nil)); n != int64(wantN) || !bytes.Equal(h.Sum(nil), want[:]) {
			t.Fatalf("the client got %d bytes (sha256 %x), want the mock's %d bytes (%x)", n, h.Sum(nil), wantN, want)
		}
	}
	measure := func() (memoryStats, int64) {
		var ms memoryStats
		adminJSON(t, g, "/debug/memory?gc=1", &ms) // collects garbage and returns it to the OS first
		return ms, processMemory(t, g.Pid(), "VmRSS")
	}

	stream(bigStream(256 << 10)) // warm up: buffers, connections, the filter's memory
	before, rssBefore := measure()
	// Reset the peak RSS (VmHWM) to the current RSS.
	if err := os.WriteFile("/proc/"+strconv.Itoa(g.Pid())+"/clear_refs", []byte("5"), 0); err != nil {
		t.Fatalf("resetting the gateway's peak RSS: %v", err)
	}
	big := bigStream(10 << 20)
	start := time.Now()
	stream(big)
	elapsed := time.Since(start)
	peak := processMemory(t, g.Pid(), "VmHWM")
	after, rssAfter := measure()

	const mb = 1 << 20
	t.Logf("10 MB stream in %v; RSS %.1f → %.1f MiB (peak %.1f MiB); Go heap %.1f → %.1f MiB; VM memory %.1f → %.1f MiB",
		elapsed.Round(time.Millisecond), float64(rssBefore)/mb, float64(rssAfter)/mb, float64(peak)/mb,
		float64(before.HeapAlloc)/mb, float64(after.HeapAlloc)/mb, float64(before.VMMemory)/mb, float64(after.VMMemory)/mb)
	if grow := peak - rssBefore; grow > 8*mb {
		t.Errorf("the gateway's peak RSS during a 10 MB stream was %.1f MiB above its RSS before, want < 8 MiB (the answer must not be held)", float64(grow)/mb)
	}
	if grow := rssAfter - rssBefore; grow > 3*mb {
		t.Errorf("the gateway's RSS grew by %.1f MiB over a 10 MB stream, want < 3 MiB", float64(grow)/mb)
	}
	if grow := int64(after.HeapAlloc) - int64(before.HeapAlloc); grow > 1*mb {
		t.Errorf("the gateway's Go heap grew by %.1f MiB over a 10 MB stream, want < 1 MiB", float64(grow)/mb)
	}
	if grow := int64(after.VMMemory) - int64(before.VMMemory); grow > 1*mb {
		t.Errorf("the filter's VM memory grew by %.1f MiB over a 10 MB stream, want < 1 MiB (it must not hold the stream)", float64(grow)/mb)
	}
	var st streamStats
	adminJSON(t, g, "/debug/streams", &st)
	if st.LiveStreams != 0 || st.UpstreamRequests != 0 {
		t.Errorf("after the stream: %+v", st)
	}
}
