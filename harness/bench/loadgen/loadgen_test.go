package loadgen

import (
	"context"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

func ms(n int) time.Duration { return time.Duration(n) * time.Millisecond }

func TestPercentile(t *testing.T) {
	ten := []time.Duration{ms(1), ms(2), ms(3), ms(4), ms(5), ms(6), ms(7), ms(8), ms(9), ms(10)}
	hundred := make([]time.Duration, 100)
	for i := range hundred {
		hundred[i] = ms(i + 1)
	}
	for _, tc := range []struct {
		name   string
		sorted []time.Duration
		p      float64
		want   time.Duration
	}{
		{"empty", nil, 50, 0},
		{"single p50", []time.Duration{ms(7)}, 50, ms(7)},
		{"single p99", []time.Duration{ms(7)}, 99, ms(7)},
		{"p0 is the minimum", ten, 0, ms(1)},
		{"p10", ten, 10, ms(1)},
		{"p11 rounds up", ten, 11, ms(2)},
		{"p50 of ten", ten, 50, ms(5)},
		{"p90", ten, 90, ms(9)},
		{"p99 of ten is the maximum", ten, 99, ms(10)},
		{"p100", ten, 100, ms(10)},
		{"above 100 is the maximum", ten, 150, ms(10)},
		{"p50 of a hundred", hundred, 50, ms(50)},
		{"p99 of a hundred", hundred, 99, ms(99)},
		{"p99.9 of a hundred", hundred, 99.9, ms(100)},
		{"two, p50", []time.Duration{ms(1), ms(2)}, 50, ms(1)},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := Percentile(tc.sorted, tc.p); got != tc.want {
				t.Errorf("Percentile(%v, %v) = %v, want %v", tc.sorted, tc.p, got, tc.want)
			}
		})
	}
}

func TestMerge(t *testing.T) {
	a := &Result{Latency: []time.Duration{ms(1), ms(5)}, FirstByte: []time.Duration{ms(1)}}
	b := &Result{Latency: []time.Duration{ms(2), ms(3), ms(9)}, FirstByte: []time.Duration{ms(0)}}
	if got, want := Merge([]*Result{a, b}, Latencies), []time.Duration{ms(1), ms(2), ms(3), ms(5), ms(9)}; !slices.Equal(got, want) {
		t.Errorf("Merge latencies = %v, want %v", got, want)
	}
	if got, want := Merge([]*Result{a, b}, FirstBytes), []time.Duration{0, ms(1)}; !slices.Equal(got, want) {
		t.Errorf("Merge first bytes = %v, want %v", got, want)
	}
	if got := Merge(nil, Latencies); len(got) != 0 {
		t.Errorf("Merge(nil) = %v", got)
	}
}

func TestThroughput(t *testing.T) {
	r := &Result{Requests: 110, Errors: 10, Elapsed: 2 * time.Second}
	if got := r.Throughput(); got != 50 {
		t.Errorf("Throughput = %v, want 50 (100 successes in 2 s)", got)
	}
	if got := (&Result{Requests: 5}).Throughput(); got != 0 {
		t.Errorf("Throughput with no elapsed time = %v, want 0", got)
	}
}

// server counts requests, checks what they carry and tracks how many are in
// flight at once.
type server struct {
	t        *testing.T
	count    atomic.Int64
	inFlight atomic.Int64
	maxSeen  atomic.Int64
	bad      atomic.Int64 // requests without the expected method, header or body
}

func (s *server) handle(w http.ResponseWriter, r *http.Request, wantBody string) {
	s.count.Add(1)
	n := s.inFlight.Add(1)
	defer s.inFlight.Add(-1)
	for {
		m := s.maxSeen.Load()
		if n <= m || s.maxSeen.CompareAndSwap(m, n) {
			break
		}
	}
	body, _ := io.ReadAll(r.Body)
	if r.Method != http.MethodPost || r.Header.Get("X-Bench") != "1" || string(body) != wantBody ||
		r.ContentLength != int64(len(wantBody)) {
		s.bad.Add(1)
	}
	time.Sleep(2 * time.Millisecond) // let the workers overlap
}

func TestRunCountsAndConcurrency(t *testing.T) {
	const body = `{"messages":[{"role":"user","content":"hi"}]}`
	s := &server{t: t}
	ts := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		s.handle(w, r, body)
		io.WriteString(w, strings.Repeat("a", 1000))
	}))
	defer ts.Close()
	if !strings.HasPrefix(ts.URL, "http://127.0.0.1:") {
		t.Fatalf("server on %s, want 127.0.0.1", ts.URL)
	}
	for _, tc := range []struct{ concurrency, requests int }{{1, 20}, {4, 50}, {8, 8}, {16, 5}} {
		s.count.Store(0)
		s.maxSeen.Store(0)
		res, err := Run(context.Background(), Config{
			URL: ts.URL + "/v1/chat/completions", Header: http.Header{"X-Bench": {"1"}},
			Body: []byte(body), Concurrency: tc.concurrency, Requests: tc.requests, MinBodyBytes: 1000,
		})
		if err != nil {
			t.Fatalf("c=%d: %v", tc.concurrency, err)
		}
		if got := s.count.Load(); got != int64(tc.requests) {
			t.Errorf("c=%d: the server got %d requests, want %d", tc.concurrency, got, tc.requests)
		}
		if res.Requests != tc.requests || res.Errors != 0 || len(res.Latency) != tc.requests || len(res.FirstByte) != tc.requests {
			t.Errorf("c=%d: result %d requests, %d errors, %d latencies, %d first bytes; want %d, 0, %d, %d",
				tc.concurrency, res.Requests, res.Errors, len(res.Latency), len(res.FirstByte), tc.requests, tc.requests, tc.requests)
		}
		if res.BodyBytes != int64(1000*tc.requests) {
			t.Errorf("c=%d: %d body bytes read, want %d", tc.concurrency, res.BodyBytes, 1000*tc.requests)
		}
		if wantMax := int64(min(tc.concurrency, tc.requests)); s.maxSeen.Load() > wantMax {
			t.Errorf("c=%d: %d requests in flight at once, want at most %d", tc.concurrency, s.maxSeen.Load(), wantMax)
		}
		if !slices.IsSorted(res.Latency) || !slices.IsSorted(res.FirstByte) {
			t.Errorf("c=%d: samples not sorted", tc.concurrency)
		}
		if res.Latency[0] < 2*time.Millisecond {
			t.Errorf("c=%d: fastest latency %v, below the server's 2 ms", tc.concurrency, res.Latency[0])
		}
		if res.Elapsed <= 0 || res.Throughput() <= 0 {
			t.Errorf("c=%d: elapsed %v, throughput %v", tc.concurrency, res.Elapsed, res.Throughput())
		}
	}
	if s.bad.Load() != 0 {
		t.Errorf("%d requests lacked the method, header or body", s.bad.Load())
	}
}

// The workers really run at once: with a server that holds every request
// until four are in flight, a run of concurrency 4 completes.
func TestRunIsConcurrent(t *testing.T) {
	const conc = 4
	var mu sync.Mutex
	waiting := 0
	release := make(chan struct{})
	ts := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		waiting++
		if waiting == conc {
			close(release)
		}
		mu.Unlock()
		select {
		case <-release:
		case <-time.After(3 * time.Second):
			w.WriteHeader(http.StatusServiceUnavailable)
			return
		}
		io.WriteString(w, "ok")
	}))
	defer ts.Close()
	res, err := Run(context.Background(), Config{URL: ts.URL, Concurrency: conc, Requests: 2 * conc})
	if err != nil {
		t.Fatalf("%v (the workers did not have %d requests in flight at once)", err, conc)
	}
	if res.Errors != 0 || res.Requests != 2*conc {
		t.Errorf("result %+v", res)
	}
}

func TestRunFirstByteBeforeEnd(t *testing.T) {
	ts := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/event-stream")
		io.WriteString(w, "data: first\n\n")
		w.(http.Flusher).Flush()
		time.Sleep(30 * time.Millisecond)
		io.WriteString(w, "data: [DONE]\n\n")
	}))
	defer ts.Close()
	res, err := Run(context.Background(), Config{URL: ts.URL, Requests: 3})
	if err != nil {
		t.Fatal(err)
	}
	for i := range res.Latency {
		// Sorted independently, but every first byte came ≥ 30 ms before its end.
		if res.Latency[i]-res.FirstByte[i] < 25*time.Millisecond {
			t.Errorf("first byte %v, end %v: want the first byte ~30 ms earlier", res.FirstByte[i], res.Latency[i])
		}
	}
}

func TestRunErrors(t *testing.T) {
	var n atomic.Int64
	ts := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch n.Add(1) % 4 {
		case 0:
			w.WriteHeader(http.StatusInternalServerError)
			io.WriteString(w, "broken")
		case 1:
			io.WriteString(w, "short")
		default:
			io.WriteString(w, "long enough answer")
		}
	}))
	defer ts.Close()
	res, err := Run(context.Background(), Config{URL: ts.URL, Concurrency: 2, Requests: 40, MinBodyBytes: 10})
	if !errors.Is(err, ErrRequests) {
		t.Fatalf("err = %v, want ErrRequests", err)
	}
	// 10 with status 500, 10 too short.
	if res.Requests != 40 || res.Errors != 20 || len(res.Latency) != 20 {
		t.Errorf("%d requests, %d errors, %d latencies; want 40, 20, 20", res.Requests, res.Errors, len(res.Latency))
	}
	if !strings.Contains(res.FirstError, "status 500") && !strings.Contains(res.FirstError, "want at least 10") {
		t.Errorf("FirstError = %q", res.FirstError)
	}
	if got := res.Throughput(); got <= 0 {
		t.Errorf("Throughput = %v", got)
	}
}

func TestRunWantStatus(t *testing.T) {
	ts := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.WriteHeader(http.StatusAccepted)
	}))
	defer ts.Close()
	if _, err := Run(context.Background(), Config{URL: ts.URL, Requests: 2}); !errors.Is(err, ErrRequests) {
		t.Errorf("202 with the default WantStatus: err = %v, want ErrRequests", err)
	}
	res, err := Run(context.Background(), Config{URL: ts.URL, Requests: 2, WantStatus: http.StatusAccepted})
	if err != nil || res.Errors != 0 {
		t.Errorf("WantStatus 202: %v, %d errors", err, res.Errors)
	}
	// An empty body: the first byte is the end.
	if !slices.Equal(res.FirstByte, res.Latency) {
		t.Errorf("first byte %v, latency %v: want equal for an empty body", res.FirstByte, res.Latency)
	}
}

func TestRunConfigErrors(t *testing.T) {
	for _, cfg := range []Config{
		{Requests: 1},
		{URL: "http://127.0.0.1:1", Requests: 0},
		{URL: "http://127.0.0.1:1", Requests: 1, Concurrency: -1},
	} {
		if _, err := Run(context.Background(), cfg); !errors.Is(err, ErrConfig) {
			t.Errorf("Run(%+v) = %v, want ErrConfig", cfg, err)
		}
	}
}

func TestRunCancelled(t *testing.T) {
	ts := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		time.Sleep(5 * time.Millisecond)
	}))
	defer ts.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	res, _ := Run(ctx, Config{URL: ts.URL, Requests: 1_000_000})
	if res.Requests >= 1_000_000 || res.Requests == 0 {
		t.Errorf("a run cancelled after 50 ms sent %d requests", res.Requests)
	}
}
