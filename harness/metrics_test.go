package harness

import (
	"bytes"
	"fmt"
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
	promType   = regexp.MustCompile(`^# TYPE [a-zA-Z_:][a-zA-Z0-9_:]* (counter|gauge|histogram)$`)
	promSample = regexp.MustCompile(`^[a-zA-Z_:][a-zA-Z0-9_:]*(\{le="[^"]+"\})? -?[0-9]+$`)
)

// checkPrometheusText checks every line against the exposition format.
func checkPrometheusText(t *testing.T, text string) {
	t.Helper()
	if !strings.HasSuffix(text, "\n") {
		t.Fatal("exposition does not end with a newline")
	}
	for _, line := range strings.Split(strings.TrimSuffix(text, "\n"), "\n") {
		if !promType.MatchString(line) && !promSample.MatchString(line) {
			t.Errorf("invalid exposition line %q", line)
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
