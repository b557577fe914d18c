package harness

import (
	"bytes"
	"fmt"
	"math"
	"regexp"
	"strconv"
	"strings"
	"testing"

	"ai-proxy/filter/proxywasm/abi"
)

func TestMetricsFromGuestToPrometheus(t *testing.T) {
	m := NewMetrics()
	vm := newTestVM(t, Env{Metrics: m})
	p := startPlugin(t, vm, "{}")
	s := p.NewStream()
	s.SendRequestHeaders(request("plain"), true)
	s.Done()

	var want strings.Builder
	want.WriteString("# TYPE guest_inflight gauge\nguest_inflight 0\n")
	want.WriteString("# TYPE guest_latency_ms histogram\n")
	for _, b := range HistogramBuckets {
		n := 0
		if b >= 42 { // the guest records 42 per request
			n = 1
		}
		fmt.Fprintf(&want, "guest_latency_ms_bucket{le=\"%s\"} %d\n", strconv.FormatFloat(b, 'g', -1, 64), n)
	}
	want.WriteString("guest_latency_ms_bucket{le=\"+Inf\"} 1\nguest_latency_ms_sum 42\nguest_latency_ms_count 1\n")
	want.WriteString("# TYPE guest_requests_total counter\nguest_requests_total 1\n")
	want.WriteString("# TYPE guest_streams_done counter\nguest_streams_done 1\n")
	want.WriteString("# TYPE guest_ticks counter\nguest_ticks 0\n")

	var got bytes.Buffer
	m.WritePrometheus(&got)
	if got.String() != want.String() {
		t.Fatalf("WritePrometheus:\n%s\nwant:\n%s", got.String(), want.String())
	}
	checkPrometheusText(t, got.String())
	if v, ok := m.Value("guest.latency_ms"); !ok || v != 1 {
		t.Fatalf("Value(histogram) = %d, %v; want its sample count 1", v, ok)
	}
	if _, ok := m.Value("guest_requests_total"); ok {
		t.Fatal("Value takes the defined name, not the sanitized one")
	}
}

var (
	promType   = regexp.MustCompile(`^# TYPE ([a-zA-Z_:][a-zA-Z0-9_:]*) (counter|gauge|histogram)$`)
	promSample = regexp.MustCompile(`^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{[a-zA-Z_][a-zA-Z0-9_]*="(?:[^"\\\n]|\\[\\"n])*"(?:,[a-zA-Z_][a-zA-Z0-9_]*="(?:[^"\\\n]|\\[\\"n])*")*\})? -?[0-9]+$`)
)

// checkPrometheusText fails the test when promTextErrors finds anything.
func checkPrometheusText(t *testing.T, text string) {
	t.Helper()
	for _, e := range promTextErrors(text) {
		t.Error(e)
	}
}

// promTextErrors checks every line against the exposition format: a TYPE
// line once per family, before its samples, each family's samples together,
// no series twice, histogram samples named _bucket, _sum or _count.
func promTextErrors(text string) []string {
	var errs []string
	if !strings.HasSuffix(text, "\n") {
		return []string{"exposition does not end with a newline"}
	}
	typed := map[string]string{}
	closed := map[string]bool{}
	series := map[string]bool{}
	current := ""
	for _, line := range strings.Split(strings.TrimSuffix(text, "\n"), "\n") {
		if m := promType.FindStringSubmatch(line); m != nil {
			if _, dup := typed[m[1]]; dup {
				errs = append(errs, "second TYPE line for "+m[1])
			}
			if current != "" {
				closed[current] = true
			}
			typed[m[1]], current = m[2], m[1]
			continue
		}
		m := promSample.FindStringSubmatch(line)
		if m == nil {
			errs = append(errs, fmt.Sprintf("invalid exposition line %q", line))
			continue
		}
		family := m[1]
		if typed[current] == "histogram" {
			if family == current {
				errs = append(errs, fmt.Sprintf("histogram sample without suffix: %q", line))
			}
			for _, suffix := range []string{"_bucket", "_sum", "_count"} {
				if strings.TrimSuffix(family, suffix) == current {
					family = current
				}
			}
		}
		if family != current || closed[family] {
			errs = append(errs, fmt.Sprintf("sample %q outside its family's block (current %q)", line, current))
		}
		key := line[:strings.LastIndexByte(line, ' ')]
		if series[key] {
			errs = append(errs, "series written twice: "+key)
		}
		series[key] = true
	}
	return errs
}

func TestParseSeries(t *testing.T) {
	tests := []struct {
		in   string
		want Series
	}{
		{"plain_total", Series{"plain_total", ""}},
		{"guest.latency_ms", Series{"guest_latency_ms", ""}},
		{`ai_proxy_requests_total{provider="openai",model="gpt-4"}`,
			Series{"ai_proxy_requests_total", `model="gpt-4",provider="openai"`}},
		{`a.b{x="1"}`, Series{"a_b", `x="1"`}},
		{`a{ b = "2" , a="1", }`, Series{"a", `a="1",b="2"`}},
		{`a{}`, Series{"a", ""}},
		{`a{m="x\"y\\z\nw"}`, Series{"a", `m="x\"y\\z\nw"`}},
		{`a{m="a}b,c=d"}`, Series{"a", `m="a}b,c=d"`}},
		{`a{m="1",m="2"}`, Series{"a", `m="1"`}},
		{`a{my-label="v",9x="w"}`, Series{"a", `_9x="w",my_label="v"`}},
		{`a{m="\q"}`, Series{"a", `m="\\q"`}}, // an unknown escape is a literal backslash
		{`a{m=x}`, Series{"a_m_x_", ""}},      // malformed: whole name sanitized
		{`a{m="x}`, Series{"a_m__x_", ""}},
		{`a{m}`, Series{"a_m_", ""}},
		{`a{="x"}`, Series{"a___x__", ""}},
		{`{m="x"}`, Series{"_m__x__", ""}},
		{`a b{c}`, Series{"a_b_c_", ""}},
	}
	for _, tc := range tests {
		if got := ParseSeries(tc.in); got != tc.want {
			t.Errorf("ParseSeries(%q) = %+v, want %+v", tc.in, got, tc.want)
		}
	}
}

func TestWritePrometheusLabels(t *testing.T) {
	m := NewMetrics()
	def := func(typ abi.MetricType, name string) uint32 {
		t.Helper()
		id, err := m.Define(typ, name)
		if err != nil {
			t.Fatal(err)
		}
		return id
	}
	gpt4 := def(abi.MetricCounter, `ai_proxy_requests_total{provider="openai",model="gpt-4"}`)
	mini := def(abi.MetricCounter, `ai_proxy_requests_total{provider="openai",model="gpt-4o-mini"}`)
	same := def(abi.MetricCounter, `ai_proxy_requests_total{model="gpt-4",provider="openai"}`) // same series, other order: not written
	other := def(abi.MetricGauge, `ai_proxy_requests_total{model="x"}`)                        // other type: not written
	odd := def(abi.MetricCounter, `ai_proxy_prompt_tokens_total{provider="openai",model="we\"ird\\"}`)
	ttft := def(abi.MetricHistogram, `ai_proxy_time_to_first_token_ms{provider="openai"}`)
	ttftLE := def(abi.MetricHistogram, `ai_proxy_time_to_first_token_ms{provider="x",le="7"}`)
	plain := def(abi.MetricCounter, "plain.total")
	for _, op := range []struct {
		id uint32
		v  int64
	}{{gpt4, 3}, {mini, 2}, {same, 100}, {other, 9}, {odd, 17}, {ttft, 4}, {ttft, 300}, {ttftLE, 1}, {plain, 5}} {
		if err := m.Record(op.id, op.v); err != nil {
			t.Fatal(err)
		}
	}

	var want strings.Builder
	want.WriteString("# TYPE ai_proxy_prompt_tokens_total counter\n")
	want.WriteString(`ai_proxy_prompt_tokens_total{model="we\"ird\\",provider="openai"} 17` + "\n")
	want.WriteString("# TYPE ai_proxy_requests_total counter\n")
	want.WriteString(`ai_proxy_requests_total{model="gpt-4",provider="openai"} 3` + "\n")
	want.WriteString(`ai_proxy_requests_total{model="gpt-4o-mini",provider="openai"} 2` + "\n")
	want.WriteString("# TYPE ai_proxy_time_to_first_token_ms histogram\n")
	for _, series := range []struct {
		labels string
		values []int64
	}{{`provider="openai"`, []int64{4, 300}}, {`provider="x"`, []int64{1}}} {
		for _, b := range append(HistogramBuckets, math.Inf(1)) {
			n := 0
			for _, v := range series.values {
				if float64(v) <= b {
					n++
				}
			}
			le := strconv.FormatFloat(b, 'g', -1, 64)
			if math.IsInf(b, 1) {
				le = "+Inf"
			}
			fmt.Fprintf(&want, "ai_proxy_time_to_first_token_ms_bucket{%s,le=\"%s\"} %d\n", series.labels, le, n)
		}
		var sum int64
		for _, v := range series.values {
			sum += v
		}
		fmt.Fprintf(&want, "ai_proxy_time_to_first_token_ms_sum{%s} %d\n", series.labels, sum)
		fmt.Fprintf(&want, "ai_proxy_time_to_first_token_ms_count{%s} %d\n", series.labels, len(series.values))
	}
	want.WriteString("# TYPE plain_total counter\nplain_total 5\n")

	var got bytes.Buffer
	m.WritePrometheus(&got)
	if got.String() != want.String() {
		t.Fatalf("WritePrometheus:\n%s\nwant:\n%s", got.String(), want.String())
	}
	checkPrometheusText(t, got.String())
	// Value takes the name as defined, labels included.
	if v, ok := m.Value(`ai_proxy_requests_total{provider="openai",model="gpt-4"}`); !ok || v != 3 {
		t.Errorf("Value(labelled counter) = %d, %v; want 3", v, ok)
	}
}

func TestCheckPrometheusTextCatchesMistakes(t *testing.T) {
	bad := []string{
		"# TYPE a counter\n# TYPE a counter\na 1\n",
		"# TYPE a counter\na{x=\"1\"} 1\n# TYPE b counter\nb 1\na{x=\"2\"} 1\n",
		"# TYPE a counter\na{x=\"1\"} 1\na{x=\"1\"} 2\n",
		"# TYPE a counter\na{x=\"1\\q\"} 1\n",
		"# TYPE h histogram\nh 1\n",
	}
	for _, text := range bad {
		if errs := promTextErrors(text); len(errs) == 0 {
			t.Errorf("promTextErrors accepted:\n%s", text)
		}
	}
}

func TestMetricsSemantics(t *testing.T) {
	m := NewMetrics()
	c, err := m.Define(abi.MetricCounter, "c.total")
	if err != nil {
		t.Fatal(err)
	}
	if again, _ := m.Define(abi.MetricCounter, "c.total"); again != c {
		t.Fatalf("redefinition gave id %d, want %d", again, c)
	}
	if _, err := m.Define(abi.MetricGauge, "c.total"); err == nil {
		t.Fatal("same name with another type accepted")
	}
	if _, err := m.Define(abi.MetricType(7), "x"); err == nil {
		t.Fatal("unknown metric type accepted")
	}
	g, _ := m.Define(abi.MetricGauge, "g")
	h, _ := m.Define(abi.MetricHistogram, "h")

	tests := []struct {
		name string
		op   func() abi.Status
		want abi.Status
	}{
		{"counter +1", func() abi.Status { return m.increment(c, 1) }, abi.StatusOK},
		{"counter -1", func() abi.Status { return m.increment(c, -1) }, abi.StatusBadArgument},
		{"counter record adds", func() abi.Status { return m.record(c, 5) }, abi.StatusOK},
		{"gauge -3", func() abi.Status { return m.increment(g, -3) }, abi.StatusOK},
		{"histogram increment", func() abi.Status { return m.increment(h, 1) }, abi.StatusBadArgument},
		{"histogram record", func() abi.Status { return m.record(h, 70000) }, abi.StatusOK},
		{"unknown id", func() abi.Status { return m.increment(99, 1) }, abi.StatusNotFound},
		{"id zero", func() abi.Status { return m.record(0, 1) }, abi.StatusNotFound},
		{"get histogram", func() abi.Status { _, st := m.get(h); return st }, abi.StatusBadArgument},
	}
	for _, tc := range tests {
		if got := tc.op(); got != tc.want {
			t.Errorf("%s: status %v, want %v", tc.name, got, tc.want)
		}
	}
	if v, st := m.get(c); st != abi.StatusOK || v != 6 {
		t.Errorf("counter = %d (%v), want 6", v, st)
	}
	if v, _ := m.Value("g"); v != -3 {
		t.Errorf("gauge = %d, want -3", v)
	}
	var out bytes.Buffer
	m.WritePrometheus(&out)
	checkPrometheusText(t, out.String())
	if !strings.Contains(out.String(), "h_bucket{le=\"60000\"} 0\nh_bucket{le=\"+Inf\"} 1\nh_sum 70000\nh_count 1\n") {
		t.Errorf("a value above the last bound belongs to +Inf only:\n%s", out.String())
	}
}

func TestPromName(t *testing.T) {
	tests := []struct{ in, want string }{
		{"ai_proxy.requests-total", "ai_proxy_requests_total"},
		{"ok:name_1", "ok:name_1"},
		{"1st", "_1st"},
		{"a b{c}", "a_b_c_"},
		{"", "_"},
	}
	for _, tc := range tests {
		if got := PromName(tc.in); got != tc.want {
			t.Errorf("PromName(%q) = %q, want %q", tc.in, got, tc.want)
		}
	}
}
