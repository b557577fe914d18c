package sse

import (
	"bytes"
	"math/rand"
	"reflect"
	"strconv"
	"strings"
	"testing"

	"ai-proxy/harness/testutil"
)

// ev is an Event with its Data copied, for comparisons.
type ev struct {
	Name, Data, ID string
}

// outcome is everything a stream produces.
type outcome struct {
	Events  []ev
	Pending bool
	Dropped int
}

// feed runs the chunks through a fresh parser and collects the outcome.
func feed(maxSize int, chunks [][]byte) outcome {
	p := Parser{MaxEventSize: maxSize}
	var out outcome
	for _, c := range chunks {
		for _, e := range p.Feed(c) {
			out.Events = append(out.Events, ev{e.Name, string(e.Data), e.ID})
		}
	}
	out.Pending, out.Dropped = p.Pending(), p.Dropped()
	return out
}

// randomChunks cuts in at random points, empty chunks included.
func randomChunks(rng *rand.Rand, in []byte) [][]byte {
	var chunks [][]byte
	for len(in) > 0 {
		n := rng.Intn(min(len(in), 40) + 1)
		if rng.Intn(4) == 0 {
			n = rng.Intn(len(in) + 1)
		}
		chunks = append(chunks, in[:n:n])
		in = in[n:]
	}
	return append(chunks, nil)
}

// checkSplits asserts that in gives want whole, one byte at a time, and cut at
// many random points.
func checkSplits(t *testing.T, maxSize int, in []byte, want outcome) {
	t.Helper()
	if got := feed(maxSize, [][]byte{in}); !reflect.DeepEqual(got, want) {
		t.Fatalf("whole:\n got %+v\nwant %+v", got, want)
	}
	if got := feed(maxSize, testutil.ByteChunks(in)); !reflect.DeepEqual(got, want) {
		t.Fatalf("byte by byte:\n got %+v\nwant %+v", got, want)
	}
	rng := rand.New(rand.NewSource(1))
	for i := 0; i < 300; i++ {
		chunks := randomChunks(rng, in)
		if got := feed(maxSize, chunks); !reflect.DeepEqual(got, want) {
			t.Fatalf("split as %q:\n got %+v\nwant %+v", chunks, got, want)
		}
	}
}

func data(ds ...string) []ev {
	out := make([]ev, len(ds))
	for i, d := range ds {
		out[i] = ev{Data: d}
	}
	return out
}

const chunkJSON = `{"id":"chatcmpl-1","object":"chat.completion.chunk","created":1,"model":"gpt-4o","choices":[{"index":0,"delta":{"content":"Hi"},"finish_reason":null}]}`

var streamCases = []struct {
	name    string
	in      string
	max     int
	want    []ev
	pending bool
	dropped int
}{
	{name: "empty", in: ``},
	{name: "blank lines only", in: "\n\n\r\n\r"},
	{name: "one event", in: "data: hello\n\n", want: data("hello")},
	{name: "several events in one chunk", in: "data: a\n\ndata: b\n\nevent: x\ndata: c\n\n",
		want: []ev{{Data: "a"}, {Data: "b"}, {Name: "x", Data: "c"}}},
	{name: "openai chunks and done", in: "data: " + chunkJSON + "\n\ndata: " + chunkJSON + "\n\ndata: [DONE]\n\n",
		want: data(chunkJSON, chunkJSON, "[DONE]")},
	{name: "crlf", in: "data: a\r\n\r\ndata: b\r\nevent: e\r\n\r\n", want: []ev{{Data: "a"}, {Name: "e", Data: "b"}}},
	{name: "lone cr", in: "data: a\r\rdata: b\rdata: c\r\r", want: data("a", "b\nc")},
	{name: "mixed line ends", in: "data: a\r\n\rdata: b\n\r\ndata: c\r\r\n", want: data("a", "b", "c")},
	{name: "cr then lf is one line end, lf then cr two", in: "data: a\n\rdata: b\r\n\n", want: data("a", "b")},
	{name: "comments", in: ": ping\n\n:\ndata: a\n: inside\ndata: b\n\n: keep-alive\r\n",
		want: data("a\nb")},
	{name: "multi-line data", in: "data: a\ndata:b\ndata:\ndata\ndata:  c\n\n", want: data("a\nb\n\n\n c")},
	{name: "empty data is dispatched", in: "data:\n\ndata\n\n", want: data("", "")},
	{name: "only one space stripped and colons kept", in: "data:  two:three: \n\n", want: data(" two:three: ")},
	{name: "tab is not stripped", in: "data:\tx\n\n", want: data("\tx")},
	{name: "no data no event", in: "event: ping\n\nid: 1\n\nretry: 100\n\n"},
	{name: "event name does not leak", in: "event: a\n\ndata: x\n\nevent: b\nevent: c\ndata: y\n\n",
		want: []ev{{Data: "x"}, {Name: "c", Data: "y"}}},
	{name: "event without colon resets name", in: "event: a\nevent\ndata: x\n\n", want: data("x")},
	{name: "id persists", in: "id: 7\ndata: a\n\ndata: b\n\nid\ndata: c\n\nid: 8\n\ndata: d\n\n",
		want: []ev{{Data: "a", ID: "7"}, {Data: "b", ID: "7"}, {Data: "c"}, {Data: "d", ID: "8"}}},
	{name: "id with nul ignored", in: "id: 1\ndata: a\n\nid: 2\x003\ndata: b\n\n",
		want: []ev{{Data: "a", ID: "1"}, {Data: "b", ID: "1"}}},
	{name: "unknown fields ignored", in: "retry: 10\nfoo: bar\ndatax: no\nDATA: no\nevents: no\nidx: no\ndata: yes\n\n",
		want: data("yes")},
	{name: "field names are exact", in: "dat: a\n\nd: b\n\n"},
	{name: "bom skipped", in: "\xEF\xBB\xBFdata: a\n\n", want: data("a")},
	{name: "bom only once", in: "\xEF\xBB\xBF\xEF\xBB\xBFdata: a\n\ndata: b\n\n", want: data("b")},
	{name: "partial bom is text", in: "\xEF\xBBdata: a\n\ndata: b\n\n", want: data("b")},
	{name: "bom alone", in: "\xEF\xBB\xBF"},
	{name: "partial bom alone", in: "\xEF\xBB", pending: true},
	{name: "bom in the middle is text", in: "data: a\n\n\xEF\xBB\xBFdata: b\n\n", want: data("a")},
	{name: "cut inside a line", in: "data: a\n\ndata: {\"b\":", want: data("a"), pending: true},
	{name: "cut after a line", in: "data: a\n\ndata: b\n", want: data("a"), pending: true},
	{name: "cut after the colon", in: "data:", pending: true},
	{name: "cut inside the field name", in: "da", pending: true},
	{name: "cut inside a comment", in: ": keep", pending: true},
	{name: "cut after event and id lines", in: "event: x\n", pending: true},
	{name: "ends with a comment line", in: "data: a\n\n: bye\n", want: data("a")},
	{name: "ends with cr", in: "data: a\r\r", want: data("a")},
	{name: "oversized data dropped", max: 5, in: "data: 12345\n\ndata: 123456\n\ndata: ok\n\n",
		want: data("12345", "ok"), dropped: 1},
	{name: "oversized multi-line data dropped", max: 5,
		in:   "data: 12\ndata: 12\n\ndata: 12\ndata: 123\n\ndata: 12345\ndata\n\ndata: 12345\ndata:\n\ndata: x\n\n",
		want: data("12\n12", "x"), dropped: 3},
	{name: "oversized event name dropped", max: 5, in: "event: 123456\ndata: a\n\nevent: 12345\ndata: b\n\n",
		want: []ev{{Name: "12345", Data: "b"}}, dropped: 1},
	{name: "oversized id dropped", max: 5, in: "id: 123456\ndata: a\n\nid: 1\ndata: b\n\n",
		want: []ev{{Data: "b", ID: "1"}}, dropped: 1},
	{name: "lines after the drop ignored", max: 5, in: "id: 1\ndata: 123456789\nid: 2\nevent: e\ndata: x\n\ndata: y\n\n",
		want: []ev{{Data: "y", ID: "1"}}, dropped: 1},
	{name: "long ignored lines are free", max: 5, in: ": " + strings.Repeat("c", 100) + "\nretry: " + strings.Repeat("9", 100) +
		"\n" + strings.Repeat("x", 100) + ": y\ndata: ok\n\n", want: data("ok")},
	{name: "cut while dropping", max: 5, in: "data: 1234567", pending: true, dropped: 1},
}

func TestStreams(t *testing.T) {
	for _, tc := range streamCases {
		t.Run(tc.name, func(t *testing.T) {
			checkSplits(t, tc.max, []byte(tc.in), outcome{Events: tc.want, Pending: tc.pending, Dropped: tc.dropped})
		})
	}
}

// TestStreamsMatchReference runs the table through the straightforward
// reference parser too, so the reference itself is checked against the
// expectations the fuzz test then relies on.
func TestStreamsMatchReference(t *testing.T) {
	for _, tc := range streamCases {
		want := outcome{Events: tc.want, Pending: tc.pending, Dropped: tc.dropped}
		if got := reference([]byte(tc.in), tc.max); !reflect.DeepEqual(got, want) {
			t.Errorf("%s: reference gives %+v, want %+v", tc.name, got, want)
		}
	}
}

// TestEventsReturnedWhenComplete checks which Feed returns which event.
func TestEventsReturnedWhenComplete(t *testing.T) {
	var p Parser
	steps := []struct {
		chunk   string
		want    []string
		pending bool
	}{
		{"data: a\n\ndata: b", []string{"a"}, true},
		{"c\n", nil, true},
		{"\r", []string{"bc"}, false},
		{"\ndata: d\r", nil, true}, // this "\n" completes the "\r\n" of the previous chunk
		{"\r", []string{"d"}, false},
		{"data: [DONE]\n\n", []string{"[DONE]"}, false},
	}
	for i, s := range steps {
		var got []string
		for _, e := range p.Feed([]byte(s.chunk)) {
			got = append(got, string(e.Data))
		}
		if !reflect.DeepEqual(got, s.want) || p.Pending() != s.pending {
			t.Fatalf("step %d Feed(%q) = %q pending %v; want %q pending %v", i, s.chunk, got, p.Pending(), s.want, s.pending)
		}
	}
}

// TestDataValidUntilNextFeed checks that the events of one Feed do not
// overwrite each other, even when the buffer grows while they are written.
func TestDataValidUntilNextFeed(t *testing.T) {
	var in strings.Builder
	var want []string
	for i := 0; i < 200; i++ {
		d := strings.Repeat(strconv.Itoa(i), i)
		want = append(want, d)
		in.WriteString("data: " + d + "\n\n")
	}
	var p Parser
	p.Feed([]byte("data: pend")) // an event in progress moves when the buffer is compacted
	evs := p.Feed([]byte("ing\n\n" + in.String()))
	if len(evs) != len(want)+1 || string(evs[0].Data) != "pending" {
		t.Fatalf("got %d events, first %q", len(evs), evs[0].Data)
	}
	for i, w := range want {
		if string(evs[i+1].Data) != w {
			t.Fatalf("event %d = %q, want %q", i, evs[i+1].Data, w)
		}
	}
	// Data is capped: appending to it must not overwrite the next event.
	if len(evs) > 2 {
		_ = append(evs[1].Data, 'X')
		if string(evs[2].Data) != want[1] {
			t.Fatal("appending to one event's Data changed the next one")
		}
	}
}

func TestReset(t *testing.T) {
	p := Parser{MaxEventSize: 4}
	p.Feed([]byte("\xEF\xBB\xBFid: 1\ndata: 123456\n\ndata: par"))
	if !p.Pending() || p.Dropped() != 1 {
		t.Fatalf("before Reset: pending %v dropped %d", p.Pending(), p.Dropped())
	}
	p.Reset()
	if p.Pending() || p.Dropped() != 0 || p.MaxEventSize != 4 {
		t.Fatalf("after Reset: pending %v dropped %d max %d", p.Pending(), p.Dropped(), p.MaxEventSize)
	}
	evs := p.Feed([]byte("\xEF\xBB\xBFdata: ab\n\n"))
	if len(evs) != 1 || string(evs[0].Data) != "ab" || evs[0].ID != "" {
		t.Fatalf("after Reset: %+v", evs)
	}
}

// openAIStream returns an OpenAI-style stream of about size bytes, and the
// number of data events in it.
func openAIStream(size int) ([]byte, int) {
	var b bytes.Buffer
	n := 0
	for b.Len() < size {
		b.WriteString(`data: {"id":"chatcmpl-AbCdEf123","object":"chat.completion.chunk","created":1741570283,"model":"gpt-4o-mini-2024-07-18","system_fingerprint":"fp_06737a9306","choices":[{"index":0,"delta":{"content":" token`)
		b.WriteString(strconv.Itoa(n))
		b.WriteString(`"},"logprobs":null,"finish_reason":null}],"usage":null}` + "\n\n")
		n++
	}
	b.WriteString("data: [DONE]\n\n")
	return b.Bytes(), n + 1
}

// TestLongStreamMemoryBounded feeds a 10 MB stream of small events in
// 150-byte chunks: the parser's buffers must stay at the size of one event,
// and once they have grown, feeding allocates nothing.
func TestLongStreamMemoryBounded(t *testing.T) {
	stream, n := openAIStream(10 << 20)
	const chunk = 150
	var p Parser
	feedAll := func() (events int) {
		for i := 0; i < len(stream); i += chunk {
			events += len(p.Feed(stream[i:min(i+chunk, len(stream))]))
		}
		return events
	}
	if got := feedAll(); got != n {
		t.Fatalf("got %d events, want %d", got, n)
	}
	if c := cap(p.data) + cap(p.name) + cap(p.idBuf); c > 4096 {
		t.Errorf("buffers grew to %d bytes", c)
	}
	if cap(p.events) > 8 {
		t.Errorf("event slice grew to %d", cap(p.events))
	}
	if p.Pending() || p.Dropped() != 0 {
		t.Errorf("pending %v, dropped %d", p.Pending(), p.Dropped())
	}
	allocs := testing.AllocsPerRun(2, func() {
		p.Reset()
		if feedAll() != n {
			panic("event count changed")
		}
	})
	if allocs != 0 {
		t.Errorf("feeding %d bytes allocated %v times", len(stream), allocs)
	}
}

// TestLargeEventInSmallChunks feeds one event just under the cap in small
// chunks.
func TestLargeEventInSmallChunks(t *testing.T) {
	const size = DefaultMaxEventSize - 10
	big := "data: " + strings.Repeat("x", size) + "\n\n"
	var p Parser
	var lens []int
	for i := 0; i < len(big); i += 100 {
		for _, e := range p.Feed([]byte(big[i:min(i+100, len(big))])) {
			lens = append(lens, len(e.Data))
		}
	}
	if len(lens) != 1 || lens[0] != size || p.Dropped() != 0 {
		t.Fatalf("event sizes %v, dropped %d", lens, p.Dropped())
	}
	if cap(p.data) > 2*DefaultMaxEventSize+4096 {
		t.Errorf("buffer grew to %d", cap(p.data))
	}
}

func FuzzFeed(f *testing.F) {
	for _, tc := range streamCases {
		f.Add([]byte(tc.in), int64(tc.max), uint8(7))
	}
	f.Fuzz(func(t *testing.T, in []byte, seed int64, maxSize uint8) {
		limit := int(maxSize%32) + 1 // small caps exercise dropping
		whole := feed(limit, [][]byte{in})
		if ref := reference(in, limit); !reflect.DeepEqual(whole, ref) {
			t.Fatalf("Feed(%q) max %d:\n got %+v\n reference %+v", in, limit, whole, ref)
		}
		if got := feed(limit, testutil.ByteChunks(in)); !reflect.DeepEqual(got, whole) {
			t.Fatalf("byte by byte %q:\n got %+v\nwant %+v", in, got, whole)
		}
		chunks := randomChunks(rand.New(rand.NewSource(seed)), in)
		if got := feed(limit, chunks); !reflect.DeepEqual(got, whole) {
			t.Fatalf("split %q:\n got %+v\nwant %+v", chunks, got, whole)
		}
	})
}

// reference is a direct, whole-input transcription of the WHATWG algorithm
// plus this package's size cap, written for clarity, not speed.
func reference(in []byte, limit int) outcome {
	if limit <= 0 {
		limit = DefaultMaxEventSize
	}
	var out outcome
	const bom = "\xEF\xBB\xBF"
	if len(in) > 0 && len(in) < len(bom) && strings.HasPrefix(bom, string(in)) {
		out.Pending = true
		return out
	}
	s := strings.TrimPrefix(string(in), bom)
	var (
		buf, name, id     string
		dropping, inEvent bool
		fieldValue        = func(line string) (string, string) {
			f, v, found := strings.Cut(line, ":")
			if !found {
				return f, ""
			}
			return f, strings.TrimPrefix(v, " ")
		}
	)
	drop := func() { dropping, buf, name = true, "", ""; out.Dropped++ }
	for {
		k := strings.IndexAny(s, "\r\n")
		if k < 0 {
			break
		}
		line := s[:k]
		if strings.HasPrefix(s[k:], "\r\n") {
			s = s[k+2:]
		} else {
			s = s[k+1:]
		}
		switch {
		case line == "":
			if !dropping && buf != "" {
				out.Events = append(out.Events, ev{name, buf[:len(buf)-1], id})
			}
			buf, name, dropping, inEvent = "", "", false, false
			continue
		case line[0] == ':':
			continue
		}
		inEvent = true
		if dropping {
			continue
		}
		f, v := fieldValue(line)
		switch f {
		case "data":
			if len(buf)+len(v) > limit {
				drop()
			} else {
				buf += v + "\n"
			}
		case "event":
			if len(v) > limit {
				drop()
			} else {
				name = v
			}
		case "id":
			if len(v) > limit {
				drop()
			} else if !strings.Contains(v, "\x00") {
				id = v
			}
		}
	}
	if s != "" { // the last line is cut: its value so far may already be too big
		out.Pending = true
		if _, _, hasColon := strings.Cut(s, ":"); hasColon && s[0] != ':' && !dropping {
			f, v := fieldValue(s)
			if f == "data" && len(v) > 0 && len(buf)+len(v) > limit || (f == "event" || f == "id") && len(v) > limit {
				out.Dropped++
			}
		}
	}
	out.Pending = out.Pending || inEvent
	return out
}

// BenchmarkFeed parses a realistic OpenAI stream arriving in 150-byte chunks.
func BenchmarkFeed(b *testing.B) {
	stream, _ := openAIStream(1 << 20)
	const chunk = 150
	var p Parser
	b.SetBytes(int64(len(stream)))
	b.ReportAllocs()
	for b.Loop() {
		p.Reset()
		for i := 0; i < len(stream); i += chunk {
			p.Feed(stream[i:min(i+chunk, len(stream))])
		}
	}
}
