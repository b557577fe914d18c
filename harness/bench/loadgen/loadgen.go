// Package loadgen is a closed-loop HTTP load generator: a fixed number of
// workers each send one request, read its whole answer, and send the next,
// until a fixed number of requests has been sent. It records, per request,
// the latency to the first body byte and to the end of the body.
//
// It is meant for loopback benchmarks where the generator shares the CPU with
// the server under test, so it stays light: one net/http client with
// keep-alive connections (one per worker), one read buffer per worker, and
// timings stored in preallocated slices.
package loadgen

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"math"
	"net/http"
	"slices"
	"sync"
	"sync/atomic"
	"time"
)

// Errors of Run.
var (
	// ErrConfig: the Config is not usable (no URL, no requests, ...).
	ErrConfig = errors.New("loadgen: bad config")
	// ErrRequests: some requests failed (transport error or unexpected
	// status); Result.Errors counts them and Result.FirstError is the first.
	ErrRequests = errors.New("loadgen: requests failed")
)

// Config is one closed-loop run.
type Config struct {
	// Client sends the requests; nil means NewClient(Concurrency).
	Client *http.Client
	// URL is where every request is sent.
	URL string
	// Method is the HTTP method; "" means POST when Body is set, else GET.
	Method string
	// Header is added to every request (Content-Length comes from Body).
	Header http.Header
	// Body is the request body, the same bytes for every request.
	Body []byte
	// Concurrency is the number of workers, each with at most one request in
	// flight (default 1).
	Concurrency int
	// Requests is the number of requests sent in total (> 0).
	Requests int
	// WantStatus is the status every answer must have (default 200); any
	// other counts as an error.
	WantStatus int
	// MinBodyBytes, when > 0, is the fewest body bytes an answer must have;
	// a shorter one counts as an error.
	MinBodyBytes int64
}

// Result is what a run measured. Latency and FirstByte hold one sample per
// successful request, sorted ascending.
type Result struct {
	// Requests is the number of requests sent; Errors how many of them failed.
	Requests int
	Errors   int
	// FirstError is the first failure's description ("" when none failed).
	FirstError string
	// Elapsed is the wall time from the first request sent to the last
	// answer read.
	Elapsed time.Duration
	// BodyBytes is the number of answer body bytes read, over every request.
	BodyBytes int64
	// Latency is, per successful request, the time from just before the
	// request was handed to the client to the end of its answer body.
	Latency []time.Duration
	// FirstByte is, per successful request, the time from just before the
	// request was handed to the client to the first answer body byte (or the
	// end of the body when it is empty).
	FirstByte []time.Duration
}

// Throughput is the rate of successful requests, per second of Elapsed.
func (r *Result) Throughput() float64 {
	if r.Elapsed <= 0 {
		return 0
	}
	return float64(r.Requests-r.Errors) / r.Elapsed.Seconds()
}

// NewClient returns a client for a run of concurrency workers: keep-alive
// connections (enough idle ones per host for every worker), no proxy, no
// compression, no overall timeout.
func NewClient(concurrency int) *http.Client {
	if concurrency < 1 {
		concurrency = 1
	}
	return &http.Client{Transport: &http.Transport{
		Proxy:               nil,
		DisableCompression:  true,
		MaxIdleConns:        concurrency * 2,
		MaxIdleConnsPerHost: concurrency * 2,
		IdleConnTimeout:     90 * time.Second,
		ForceAttemptHTTP2:   false,
	}}
}

// sample is one request's outcome.
type sample struct {
	firstByte, latency time.Duration
	bytes              int64
	err                error
}

// Run sends cfg.Requests requests from cfg.Concurrency workers and waits for
// every answer. It returns the Result and, when any request failed, an error
// wrapping ErrRequests (the Result is complete either way). Cancelling ctx
// stops the run early: requests not sent are not counted.
func Run(ctx context.Context, cfg Config) (*Result, error) {
	if cfg.URL == "" || cfg.Requests <= 0 || cfg.Concurrency < 0 {
		return nil, fmt.Errorf("%w: URL %q, %d requests, concurrency %d", ErrConfig, cfg.URL, cfg.Requests, cfg.Concurrency)
	}
	conc := max(cfg.Concurrency, 1)
	conc = min(conc, cfg.Requests)
	client := cfg.Client
	if client == nil {
		client = NewClient(conc)
	}
	method := cfg.Method
	if method == "" {
		method = http.MethodGet
		if cfg.Body != nil {
			method = http.MethodPost
		}
	}
	want := cfg.WantStatus
	if want == 0 {
		want = http.StatusOK
	}

	samples := make([]sample, cfg.Requests)
	var next atomic.Int64
	var wg sync.WaitGroup
	start := time.Now()
	for range conc {
		wg.Add(1)
		go func() {
			defer wg.Done()
			buf := make([]byte, 32<<10)
			for {
				i := int(next.Add(1) - 1)
				if i >= cfg.Requests || ctx.Err() != nil {
					return
				}
				samples[i] = one(ctx, client, method, cfg, want, buf)
			}
		}()
	}
	wg.Wait()
	elapsed := time.Since(start)

	sent := min(int(next.Load()), cfg.Requests)
	res := &Result{
		Requests:  sent,
		Elapsed:   elapsed,
		Latency:   make([]time.Duration, 0, sent),
		FirstByte: make([]time.Duration, 0, sent),
	}
	for _, s := range samples[:sent] {
		res.BodyBytes += s.bytes
		if s.err != nil {
			if res.Errors == 0 {
				res.FirstError = s.err.Error()
			}
			res.Errors++
			continue
		}
		res.Latency = append(res.Latency, s.latency)
		res.FirstByte = append(res.FirstByte, s.firstByte)
	}
	slices.Sort(res.Latency)
	slices.Sort(res.FirstByte)
	if res.Errors > 0 {
		return res, fmt.Errorf("%w: %d of %d (first: %s)", ErrRequests, res.Errors, sent, res.FirstError)
	}
	return res, nil
}

// one sends one request and reads its whole answer into buf.
func one(ctx context.Context, client *http.Client, method string, cfg Config, want int, buf []byte) sample {
	var body io.Reader
	if cfg.Body != nil {
		body = bytes.NewReader(cfg.Body)
	}
	req, err := http.NewRequestWithContext(ctx, method, cfg.URL, body)
	if err != nil {
		return sample{err: err}
	}
	for k, vs := range cfg.Header {
		req.Header[k] = vs
	}
	t0 := time.Now()
	resp, err := client.Do(req)
	if err != nil {
		return sample{err: err}
	}
	defer resp.Body.Close()
	var s sample
	for {
		n, err := resp.Body.Read(buf)
		if n > 0 && s.bytes == 0 {
			s.firstByte = time.Since(t0)
		}
		s.bytes += int64(n)
		if err == io.EOF {
			break
		}
		if err != nil {
			s.err = fmt.Errorf("reading the answer after %d bytes: %w", s.bytes, err)
			return s
		}
	}
	s.latency = time.Since(t0)
	if s.bytes == 0 {
		s.firstByte = s.latency
	}
	switch {
	case resp.StatusCode != want:
		s.err = fmt.Errorf("status %d, want %d", resp.StatusCode, want)
	case cfg.MinBodyBytes > 0 && s.bytes < cfg.MinBodyBytes:
		s.err = fmt.Errorf("answer of %d bytes, want at least %d", s.bytes, cfg.MinBodyBytes)
	}
	return s
}

// Percentile is the p-th percentile (0 < p <= 100) of sorted (ascending), by
// the nearest-rank method: the smallest sample such that at least p% of the
// samples are at or below it. It is 0 for no samples.
func Percentile(sorted []time.Duration, p float64) time.Duration {
	if len(sorted) == 0 {
		return 0
	}
	if p <= 0 {
		return sorted[0]
	}
	rank := int(math.Ceil(p / 100 * float64(len(sorted))))
	rank = min(max(rank, 1), len(sorted))
	return sorted[rank-1]
}

// Merge returns the samples of every result in one sorted slice, pick
// choosing which samples (Latency or FirstByte) of a result.
func Merge(results []*Result, pick func(*Result) []time.Duration) []time.Duration {
	var n int
	for _, r := range results {
		n += len(pick(r))
	}
	out := make([]time.Duration, 0, n)
	for _, r := range results {
		out = append(out, pick(r)...)
	}
	slices.Sort(out)
	return out
}

// Latencies picks Result.Latency (for Merge).
func Latencies(r *Result) []time.Duration { return r.Latency }

// FirstBytes picks Result.FirstByte (for Merge).
func FirstBytes(r *Result) []time.Duration { return r.FirstByte }
