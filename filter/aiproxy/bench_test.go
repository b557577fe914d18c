package aiproxy_test

import (
	"bytes"
	"strconv"
	"testing"

	"ai-proxy/filter/config"
	"ai-proxy/filter/proxywasm/abi"
	"ai-proxy/filter/shape"
	"ai-proxy/harness"
)

// chatBodyOfSize builds a chat request of about n bytes with many messages.
func chatBodyOfSize(n int) []byte {
	var b bytes.Buffer
	b.WriteString(`{"model":"client-model","stream":false,"messages":[`)
	for i := 0; b.Len() < n-64; i++ {
		if i > 0 {
			b.WriteByte(',')
		}
		b.WriteString(`{"role":"user","content":"message number ` + strconv.Itoa(i) + ` with some text \"quoted\" and unicode \u00e9 to make it realistic"}`)
	}
	b.WriteString(`],"temperature":0.2}`)
	return b.Bytes()
}

var benchSizes = []struct {
	name string
	size int
}{{"1KB", 1 << 10}, {"64KiB", 64 << 10}, {"1MiB", 1 << 20}}

var okAnswer = &harness.CallResponse{
	Headers: []abi.Header{{":status", "200"}, {"content-type", "application/json"}},
	Body:    []byte(`{"id":"c","choices":[{"message":{"role":"assistant","content":"2"}}],"usage":{"prompt_tokens":1,"completion_tokens":1,"total_tokens":2}}`),
}

// oneCallout drives one whole callout request through the module: headers,
// body, the call answered at once, the local response, done.
func oneCallout(b *testing.B, vm *harness.VM, p *harness.Plugin, hs []abi.Header, body []byte) {
	s := p.NewStream()
	s.SendRequestHeaders(hs, false)
	s.SendRequestBody(body, true)
	calls := vm.PendingCalls()
	if len(calls) != 1 {
		b.Fatalf("pending calls = %d", len(calls))
	}
	if err := vm.RespondCall(calls[0].ID, okAnswer); err != nil {
		b.Fatal(err)
	}
	if lr := s.LocalResponse(); lr == nil || lr.Status != 200 {
		b.Fatalf("local response %+v", lr)
	}
	s.Done()
}

// BenchmarkCalloutBoundary is the cost of crossing the host/module boundary
// for one whole callout request with a tiny body (target ≤ 20 µs).
func BenchmarkCalloutBoundary(b *testing.B) {
	vm, p := newPlugin(b, harness.ProfileEnvoy, seedConf)
	hs := requestHeaders()
	body := []byte(`{"messages":[{"role":"user","content":"hi"}]}`)
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		oneCallout(b, vm, p, hs, body)
	}
}

// BenchmarkShapeWasm runs the request through the module at several body
// sizes; compare with BenchmarkShapeNative for the wasm/native ratio.
func BenchmarkShapeWasm(b *testing.B) {
	for _, sz := range benchSizes {
		b.Run(sz.name, func(b *testing.B) {
			vm, p := newPlugin(b, harness.ProfileEnvoy, seedConf)
			hs := requestHeaders()
			body := chatBodyOfSize(sz.size)
			b.SetBytes(int64(len(body)))
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				oneCallout(b, vm, p, hs, body)
			}
		})
	}
}

// BenchmarkShapeNative is the same shaping code compiled natively.
func BenchmarkShapeNative(b *testing.B) {
	cfg, err := config.Parse([]byte(seedConf))
	if err != nil {
		b.Fatal(err)
	}
	plan := shape.NewPlan(cfg.Model, cfg.Options)
	for _, sz := range benchSizes {
		b.Run(sz.name, func(b *testing.B) {
			body := chatBodyOfSize(sz.size)
			var dst []byte
			b.SetBytes(int64(len(body)))
			b.ReportAllocs()
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				out, _, err := plan.Request(dst[:0], body)
				if err != nil {
					b.Fatal(err)
				}
				dst = out
			}
		})
	}
}

// BenchmarkVMMemory runs 100,000 requests on one VM and reports the linear
// memory after the first 1,000 and at the end (target: growth ≤ 1.2×).
func BenchmarkVMMemory(b *testing.B) {
	for i := 0; i < b.N; i++ {
		vm, p := newPlugin(b, harness.ProfileEnvoy, seedConf)
		hs := requestHeaders()
		body := chatBodyOfSize(4 << 10)
		var after1k uint32
		for r := 1; r <= 100_000; r++ {
			oneCallout(b, vm, p, hs, body)
			if r == 1000 {
				after1k = vm.MemorySize()
			}
		}
		end := vm.MemorySize()
		b.ReportMetric(float64(after1k)/(1<<20), "MiB-after-1k")
		b.ReportMetric(float64(end)/(1<<20), "MiB-after-100k")
		b.ReportMetric(float64(end)/float64(after1k), "growth")
	}
}
