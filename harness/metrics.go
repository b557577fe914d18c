package harness

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"sort"
	"strconv"
	"strings"
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
// format (version 0.0.4).
//
// A defined name may carry labels in Prometheus syntax,
// `base{label="value",...}` (ParseSeries): every name with the same
// sanitized base is one family, written under one TYPE line, its series
// sorted by labels. Histograms are written as cumulative
// base_bucket{labels...,le="..."} lines ending with +Inf, then base_sum and
// base_count with the series' labels. Names without labels are sanitized with
// PromName as a whole.
//
// Families are sorted by name. When two definitions give the same series
// (same base and labels), or a family holds definitions of different types,
// only the first (in definition order) is written.
func (m *Metrics) WritePrometheus(w io.Writer) {
	list := *m.list.Load()
	type entry struct {
		s  Series
		mt *metric
	}
	seen := make(map[Series]bool, len(list))
	types := make(map[string]abi.MetricType)
	entries := make([]entry, 0, len(list))
	for _, mt := range list {
		drop := ""
		if mt.typ == abi.MetricHistogram {
			drop = "le" // the buckets' own label
		}
		s := parseSeries(mt.name, drop)
		if t, ok := types[s.Name]; ok && t != mt.typ {
			continue
		}
		if seen[s] {
			continue
		}
		seen[s] = true
		types[s.Name] = mt.typ
		entries = append(entries, entry{s, mt})
	}
	sort.Slice(entries, func(i, j int) bool {
		if entries[i].s.Name != entries[j].s.Name {
			return entries[i].s.Name < entries[j].s.Name
		}
		return entries[i].s.Labels < entries[j].s.Labels
	})
	bw := bufio.NewWriter(w)
	for i, e := range entries {
		name, labels := e.s.Name, e.s.Labels
		if i == 0 || entries[i-1].s.Name != name {
			fmt.Fprintf(bw, "# TYPE %s %s\n", name, typeName(e.mt.typ))
		}
		switch e.mt.typ {
		case abi.MetricCounter, abi.MetricGauge:
			fmt.Fprintf(bw, "%s%s %d\n", name, braces(labels), e.mt.value.Load())
		default:
			h := e.mt.hist
			sep := ""
			if labels != "" {
				sep = ","
			}
			var cum uint64
			for i := range h.buckets {
				cum += h.buckets[i].Load()
				le := "+Inf"
				if i < len(HistogramBuckets) {
					le = strconv.FormatFloat(HistogramBuckets[i], 'g', -1, 64)
				}
				fmt.Fprintf(bw, "%s_bucket{%s%sle=\"%s\"} %d\n", name, labels, sep, le, cum)
			}
			// _count is the +Inf bucket, so the two agree even under concurrent updates.
			fmt.Fprintf(bw, "%s_sum%s %d\n%s_count%s %d\n", name, braces(labels), h.sum.Load(), name, braces(labels), cum)
		}
	}
	_ = bw.Flush() // a write error is the writer's to report
}

func typeName(t abi.MetricType) string {
	switch t {
	case abi.MetricCounter:
		return "counter"
	case abi.MetricGauge:
		return "gauge"
	}
	return "histogram"
}

func braces(labels string) string {
	if labels == "" {
		return ""
	}
	return "{" + labels + "}"
}

// Series is a metric name split for Prometheus: the sanitized family name and
// the rendered label pairs, `a="x",b="y"` (sorted by label name, values
// escaped per the text format), "" when there are none.
type Series struct {
	Name   string
	Labels string
}

// ParseSeries splits a defined metric name of the form
// `base{label="value",...}` into its family name (PromName(base)) and its
// labels. Label names are sanitized like metric names (without ':'); values
// are unescaped (\\, \", \n) and escaped again for the text format; pairs
// are sorted by label name and a repeated label keeps its first value. A
// name without a well-formed label list (no braces, unbalanced quotes, a
// pair without '=') is sanitized whole with PromName and has no labels, as
// before labels were supported.
func ParseSeries(name string) Series { return parseSeries(name, "") }

// parseSeries is ParseSeries without the label named drop (a repeated label
// keeps its first value before drop applies).
func parseSeries(name, drop string) Series {
	open := strings.IndexByte(name, '{')
	if open <= 0 || !strings.HasSuffix(name, "}") {
		return Series{Name: PromName(name)}
	}
	pairs, ok := parseLabels(name[open+1 : len(name)-1])
	if !ok {
		return Series{Name: PromName(name)}
	}
	sort.SliceStable(pairs, func(i, j int) bool { return pairs[i][0] < pairs[j][0] })
	var b strings.Builder
	for i, p := range pairs {
		if i > 0 && pairs[i-1][0] == p[0] || p[0] == drop {
			continue
		}
		if b.Len() > 0 {
			b.WriteByte(',')
		}
		b.WriteString(p[0])
		b.WriteString(`="`)
		b.WriteString(EscapeLabelValue(p[1]))
		b.WriteByte('"')
	}
	return Series{Name: PromName(name[:open]), Labels: b.String()}
}

// parseLabels parses `k="v",k2="v2"` (spaces around pairs, a trailing comma
// and an empty list allowed) into sanitized names and unescaped values.
func parseLabels(s string) ([][2]string, bool) {
	var pairs [][2]string
	i := 0
	skip := func() {
		for i < len(s) && (s[i] == ' ' || s[i] == '\t') {
			i++
		}
	}
	for {
		skip()
		if i == len(s) {
			return pairs, true
		}
		eq := strings.IndexByte(s[i:], '=')
		if eq < 0 {
			return nil, false
		}
		key := strings.TrimSpace(s[i : i+eq])
		if key == "" {
			return nil, false
		}
		i += eq + 1
		skip()
		if i == len(s) || s[i] != '"' {
			return nil, false
		}
		i++
		var v strings.Builder
		closed := false
		for i < len(s) {
			c := s[i]
			i++
			if c == '"' {
				closed = true
				break
			}
			if c == '\\' && i < len(s) {
				switch s[i] {
				case '\\', '"':
					c = s[i]
					i++
				case 'n':
					c = '\n'
					i++
				}
			}
			v.WriteByte(c)
		}
		if !closed {
			return nil, false
		}
		pairs = append(pairs, [2]string{labelName(key), v.String()})
		skip()
		if i == len(s) {
			return pairs, true
		}
		if s[i] != ',' {
			return nil, false
		}
		i++
	}
}

// labelName sanitizes a label name: every character outside [a-zA-Z0-9_]
// becomes '_', and a leading digit gets a '_' prefix.
func labelName(s string) string {
	n := PromName(s)
	return strings.ReplaceAll(n, ":", "_")
}

// EscapeLabelValue escapes a label value for the text format: backslash,
// double quote and line feed become \\, \" and \n.
func EscapeLabelValue(v string) string {
	if !strings.ContainsAny(v, "\\\"\n") {
		return v
	}
	return labelEscaper.Replace(v)
}

var labelEscaper = strings.NewReplacer(`\`, `\\`, `"`, `\"`, "\n", `\n`)
