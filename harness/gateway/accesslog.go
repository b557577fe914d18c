package gateway

import (
	"bytes"
	"encoding/json"
	"io"
	"sort"
	"strings"
	"sync"
	"time"
)

// Response flags of the access log, as Envoy's %RESPONSE_FLAGS% names them.
const (
	flagDownstreamDisconnect = "DC" // the client went away before the response was complete
	flagUpstreamFailure      = "UF" // the upstream could not be reached, or reset before answering
	flagUpstreamReset        = "UC" // the upstream reset while the response was streaming
	flagUpstreamTimeout      = "UT" // the route timeout passed
	flagNoRoute              = "NR" // no route matched
	flagStreamIdleTimeout    = "SI" // a filter held the stream past the stream idle timeout
)

// AccessLogEntry is one access-log line: one JSON object per downstream
// request, written once the filters' streams are done (after proxy_on_log),
// so that the properties they set are final. The fields below come first, in
// this order; then every stream property a filter set whose name starts with
// "llm_" or is "request_llm_model", sorted by name (see propertyValue).
type AccessLogEntry struct {
	// StartTime is when the request arrived (RFC 3339, UTC, milliseconds).
	StartTime string `json:"start_time"`
	Listener  string `json:"listener"`
	Method    string `json:"method"`
	// Path is the client's :path, query included, before any filter rewrote it.
	Path      string `json:"path"`
	Authority string `json:"authority"`
	Protocol  string `json:"protocol"`
	// Status is the status sent to the client; 0 when the stream was reset
	// before a response started.
	Status int `json:"status"`
	// ResponseFlags is "" or one of Envoy's flags: DC (downstream
	// disconnect), UF (upstream connect failure or reset before the
	// response), UC (upstream reset mid-response), UT (route timeout), NR (no
	// route), SI (stream idle timeout).
	ResponseFlags string `json:"response_flags"`
	// DurationMS runs from the request's arrival to the end of the stream.
	DurationMS float64 `json:"duration_ms"`
	// BytesReceived and BytesSent count body bytes, as Envoy's BYTES_RECEIVED
	// and BYTES_SENT.
	BytesReceived int64 `json:"bytes_received"`
	BytesSent     int64 `json:"bytes_sent"`
	// UpstreamCluster is the cluster of the route chosen when the request
	// headers reached the router (as Envoy's UPSTREAM_CLUSTER), even if a
	// filter answered later, while holding the body; "" when the headers
	// never reached it (a filter answered from them, or no route matched).
	UpstreamCluster string `json:"upstream_cluster"`
	// RequestID is the request's x-request-id (generated when the client sent none).
	RequestID string `json:"request_id"`
}

// accessLog writes access-log lines to one writer, a line per Write.
type accessLog struct {
	mu  sync.Mutex
	w   io.Writer
	buf bytes.Buffer
}

// loggedProperty reports whether a stream property goes into the access log.
func loggedProperty(name string) bool {
	return strings.HasPrefix(name, "llm_") || name == "request_llm_model"
}

// write encodes e and props (the logged properties: the caller filters them
// with loggedProperty) as one line and writes it. A write error is dropped:
// the access log never fails a request.
func (l *accessLog) write(e *AccessLogEntry, props map[string][]byte) {
	line, err := json.Marshal(e)
	if err != nil {
		return // plain strings and numbers: cannot fail
	}
	names := make([]string, 0, len(props))
	for k := range props {
		names = append(names, k)
	}
	sort.Strings(names)
	l.mu.Lock()
	defer l.mu.Unlock()
	b := &l.buf
	b.Reset()
	b.Write(line[:len(line)-1])
	for _, k := range names {
		b.WriteByte(',')
		key, _ := json.Marshal(k)
		b.Write(key)
		b.WriteByte(':')
		b.Write(propertyValue(k, props[k]))
	}
	b.WriteString("}\n")
	_, _ = l.w.Write(b.Bytes())
}

// propertyValue is a property's value in the access log: a JSON number when
// it is a decimal number as JSON writes them (token counts, milliseconds),
// else a JSON string. Properties naming a model or a provider (names ending
// in "model" or "provider") are always strings, whatever they look like.
func propertyValue(name string, v []byte) []byte {
	if !strings.HasSuffix(name, "model") && !strings.HasSuffix(name, "provider") && isJSONDecimal(v) {
		return v
	}
	out, _ := json.Marshal(string(v))
	return out
}

// isJSONDecimal matches -?(0|[1-9][0-9]*)(\.[0-9]+)?
func isJSONDecimal(v []byte) bool {
	i := 0
	if i < len(v) && v[i] == '-' {
		i++
	}
	digits := func() int {
		n := 0
		for i < len(v) && '0' <= v[i] && v[i] <= '9' {
			i++
			n++
		}
		return n
	}
	start := i
	n := digits()
	if n == 0 || (n > 1 && v[start] == '0') {
		return false
	}
	if i < len(v) && v[i] == '.' {
		i++
		if digits() == 0 {
			return false
		}
	}
	return i == len(v)
}

// startTime formats t for AccessLogEntry.StartTime.
func startTime(t time.Time) string {
	return t.UTC().Format("2006-01-02T15:04:05.000Z07:00")
}

// durationMS is d in milliseconds, rounded to the microsecond.
func durationMS(d time.Duration) float64 {
	return float64(d.Microseconds()) / 1000
}
