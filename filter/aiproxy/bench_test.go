package aiproxy_test

import (
	"testing"

	"ai-proxy/filter/proxywasm/abi"
	"ai-proxy/filter/shape/shapetest"
	"ai-proxy/harness"
)

var benchSizes = []struct {
	name string
	size int
}{{"1KB", 1 << 10}, {"64KiB", 64 << 10}, {"1MiB", 1 << 20}, {"4MiB", 4 << 20}}

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

// BenchmarkCalloutBodySize is a whole callout request through the module at
// several body sizes: shaping plus every copy across the boundary.
func BenchmarkCalloutBodySize(b *testing.B) {
	for _, sz := range benchSizes {
		b.Run(sz.name, func(b *testing.B) {
			vm, p := newPlugin(b, harness.ProfileEnvoy, seedConf)
			hs := requestHeaders()
			body := shapetest.ChatBody(sz.size)
			b.SetBytes(int64(len(body)))
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				oneCallout(b, vm, p, hs, body)
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
		body := shapetest.ChatBody(4 << 10)
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
