package harness

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"sort"
	"strconv"
	"sync"
	"sync/atomic"

	"ai-proxy/filter/proxywasm/abi"
)

// ErrMetric reports a bad metric definition or update.
var ErrMetric = errors.New("metric")

// HistogramBuckets are the upper bounds of every histogram's buckets (a
// +Inf bucket follows). Values are whatever unit the guest records, usually
// milliseconds or tokens.
var HistogramBuckets = []float64{0.5, 1, 5, 10, 25, 50, 100, 250, 500, 1000, 2500, 5000, 10000, 30000, 60000}

// Metrics is a metric store shared by the VMs of a process (Env.Metrics). It
// is safe for concurrent use; updates are lock-free.
type Metrics struct {
	mu     sync.Mutex // serializes definitions
	byName map[string]uint32
	list   atomic.Pointer[[]*metric] // index id-1; copied on define
}

type metric struct {
	name  string
	typ   abi.MetricType
	value atomic.Int64 // counter or gauge
	hist  *histogram
}

type histogram struct {
	buckets []atomic.Uint64 // len(HistogramBuckets)+1, not cumulative
	sum     atomic.Int64
	count   atomic.Uint64
}

// NewMetrics returns an empty store.
func NewMetrics() *Metrics {
	m := &Metrics{byName: make(map[string]uint32)}
	m.list.Store(new([]*metric))
	return m
}

// Define returns the id of the metric named name, creating it. Defining an
// existing name again with the same type returns the same id; with another
// type it is an error (Prometheus cannot carry both).
func (m *Metrics) Define(t abi.MetricType, name string) (uint32, error) {
	id, st := m.define(t, name)
	if st != abi.StatusOK {
		return 0, fmt.Errorf("harness: %w: define %q (type %d): %v", ErrMetric, name, t, st)
	}
	return id, nil
}

// Add adds delta to a counter (delta > 0) or gauge.
func (m *Metrics) Add(id uint32, delta int64) error {
	if st := m.increment(id, delta); st != abi.StatusOK {
		return fmt.Errorf("harness: %w: add to %d: %v", ErrMetric, id, st)
	}
	return nil
}

// Record adds v to a counter, sets a gauge, or records v in a histogram.
func (m *Metrics) Record(id uint32, v int64) error {
	if st := m.record(id, v); st != abi.StatusOK {
		return fmt.Errorf("harness: %w: record to %d: %v", ErrMetric, id, st)
	}
	return nil
}

func (m *Metrics) define(t abi.MetricType, name string) (uint32, abi.Status) {
	if t > abi.MetricHistogram || name == "" {
		return 0, abi.StatusBadArgument
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	list := *m.list.Load()
	if id, ok := m.byName[name]; ok {
		if list[id-1].typ != t {
			return 0, abi.StatusBadArgument
		}
		return id, abi.StatusOK
	}
	mt := &metric{name: name, typ: t}
	if t == abi.MetricHistogram {
		mt.hist = &histogram{buckets: make([]atomic.Uint64, len(HistogramBuckets)+1)}
	}
	next := make([]*metric, len(list), len(list)+1)
	copy(next, list)
	next = append(next, mt)
	m.list.Store(&next)
	id := uint32(len(next))
	m.byName[name] = id
	return id, abi.StatusOK
}

func (m *Metrics) lookup(id uint32) *metric {
	list := *m.list.Load()
	if id == 0 || int(id) > len(list) {
		return nil
	}
	return list[id-1]
}

// increment follows Envoy: counters take positive deltas only, gauges any,
// histograms none.
func (m *Metrics) increment(id uint32, delta int64) abi.Status {
	mt := m.lookup(id)
	switch {
	case mt == nil:
		return abi.StatusNotFound
	case mt.typ == abi.MetricCounter && delta > 0, mt.typ == abi.MetricGauge:
		mt.value.Add(delta)
		return abi.StatusOK
	}
	return abi.StatusBadArgument
}

// record follows Envoy: a counter adds the value, a gauge is set to it, a
// histogram records it.
func (m *Metrics) record(id uint32, v int64) abi.Status {
	mt := m.lookup(id)
	if mt == nil {
		return abi.StatusNotFound
	}
	switch mt.typ {
	case abi.MetricCounter:
		mt.value.Add(v)
	case abi.MetricGauge:
		mt.value.Store(v)
	default:
		h := mt.hist
		i := sort.SearchFloat64s(HistogramBuckets, float64(v))
		h.buckets[i].Add(1)
		h.sum.Add(v)
		h.count.Add(1)
	}
	return abi.StatusOK
}

// get returns a counter's or gauge's value; histograms cannot be read
// (BAD_ARGUMENT, as in Envoy).
func (m *Metrics) get(id uint32) (int64, abi.Status) {
	mt := m.lookup(id)
	switch {
	case mt == nil:
		return 0, abi.StatusNotFound
	case mt.typ == abi.MetricHistogram:
		return 0, abi.StatusBadArgument
	}
	return mt.value.Load(), abi.StatusOK
}

// Value returns the value of the metric named name as defined (not
// sanitized): a counter's or gauge's value, a histogram's sample count.
func (m *Metrics) Value(name string) (int64, bool) {
	m.mu.Lock()
	id, ok := m.byName[name]
	m.mu.Unlock()
	if !ok {
		return 0, false
	}
	mt := m.lookup(id)
	if mt.hist != nil {
		return int64(mt.hist.count.Load()), true
	}
	return mt.value.Load(), true
}

// PromName sanitizes a metric name for Prometheus: every character outside
// [a-zA-Z0-9_:] becomes '_', and a leading digit gets a '_' prefix.
func PromName(name string) string {
	b := []byte(name)
	for i, c := range b {
		if !(c == '_' || c == ':' || 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9') {
			b[i] = '_'
		}
	}
	if len(b) == 0 || ('0' <= b[0] && b[0] <= '9') {
		b = append([]byte{'_'}, b...)
	}
	return string(b)
}

// WritePrometheus writes every metric in the Prometheus text exposition
// format (version 0.0.4), sorted by name: a TYPE line, then the sample(s);
// histograms as cumulative name_bucket{le="..."} lines ending with +Inf,
// name_sum and name_count. Names are sanitized with PromName; when two
// names sanitize to the same string only the first (in definition order) is
// written.
func (m *Metrics) WritePrometheus(w io.Writer) {
	list := *m.list.Load()
	type entry struct {
		name string
		mt   *metric
	}
	seen := make(map[string]bool, len(list))
	entries := make([]entry, 0, len(list))
	for _, mt := range list {
		n := PromName(mt.name)
		if seen[n] {
			continue
		}
		seen[n] = true
		entries = append(entries, entry{n, mt})
	}
	sort.Slice(entries, func(i, j int) bool { return entries[i].name < entries[j].name })
	bw := bufio.NewWriter(w)
	for _, e := range entries {
		switch e.mt.typ {
		case abi.MetricCounter:
			fmt.Fprintf(bw, "# TYPE %s counter\n%s %d\n", e.name, e.name, e.mt.value.Load())
		case abi.MetricGauge:
			fmt.Fprintf(bw, "# TYPE %s gauge\n%s %d\n", e.name, e.name, e.mt.value.Load())
		default:
			h := e.mt.hist
			fmt.Fprintf(bw, "# TYPE %s histogram\n", e.name)
			var cum uint64
			for i := range h.buckets {
				cum += h.buckets[i].Load()
				le := "+Inf"
				if i < len(HistogramBuckets) {
					le = strconv.FormatFloat(HistogramBuckets[i], 'g', -1, 64)
				}
				fmt.Fprintf(bw, "%s_bucket{le=\"%s\"} %d\n", e.name, le, cum)
			}
			// _count is the +Inf bucket, so the two agree even under concurrent updates.
			fmt.Fprintf(bw, "%s_sum %d\n%s_count %d\n", e.name, h.sum.Load(), e.name, cum)
		}
	}
	_ = bw.Flush() // a write error is the writer's to report

}
