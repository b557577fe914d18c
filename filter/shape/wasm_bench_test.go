package shape_test

import (
	"context"
	"testing"

	"ai-proxy/filter/config"
	"ai-proxy/filter/shape"
	"ai-proxy/filter/shape/shapetest"
	"ai-proxy/harness/testutil"
)

var sizes = []struct {
	name string
	n    int
}{{"1KB", 1 << 10}, {"64KiB", 64 << 10}, {"1MiB", 1 << 20}, {"4MiB", 4 << 20}}

func benchPlan() *shape.Plan {
	return shape.NewPlan("gpt-4", []config.Option{{Key: "max_tokens", Raw: []byte("512")}, {Key: "temperature", Raw: []byte("1.0")}})
}

// BenchmarkShapeNative is the shaping pass compiled natively.
func BenchmarkShapeNative(b *testing.B) {
	plan := benchPlan()
	for _, sz := range sizes {
		b.Run(sz.name, func(b *testing.B) {
			body := shapetest.ChatBody(sz.n)
			var out []byte
			b.SetBytes(int64(len(body)))
			b.ReportAllocs()
			for i := 0; i < b.N; i++ {
				o, _, err := plan.Request(out[:0], body)
				if err != nil {
					b.Fatal(err)
				}
				out = o
			}
		})
	}
}

// BenchmarkShapeInWasm is the same pass compiled to wasm (testdata/wasmbench)
// and run by wazero, without any proxy-wasm plumbing around it.
func BenchmarkShapeInWasm(b *testing.B) {
	ctx := context.Background()
	wb, err := testutil.NewWasmBench(ctx, "./testdata/wasmbench")
	if err != nil {
		b.Fatal(err)
	}
	defer wb.Close(ctx)
	for _, sz := range sizes {
		b.Run(sz.name, func(b *testing.B) {
			body := shapetest.ChatBody(sz.n)
			mod, err := wb.Instance(ctx, body)
			if err != nil {
				b.Fatal(err)
			}
			defer mod.Close(ctx)
			shapeFn := mod.ExportedFunction("shape_input")
			b.SetBytes(int64(len(body)))
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				res, err := shapeFn.Call(ctx)
				if err != nil || res[0] == 0 {
					b.Fatalf("shape_input: %v %v", res, err)
				}
			}
		})
	}
}
