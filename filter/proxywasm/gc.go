package proxywasm

import (
	"runtime"
	"runtime/metrics"
)

// The Go runtime's first garbage collection waits for a 4 MiB heap (its
// minimum goal at GOGC=100), and a proxy cannot pass GOGC to a module. With a
// few KiB of garbage per request, a VM would run about a thousand requests,
// grow its linear memory to a second heap arena and keep it for life (linear
// memory never shrinks). So the binding collects on its own schedule: after
// every gcCheckEvery finished streams it reads the runtime's allocation counter
// and collects when more than max(gcMinBudget, live heap) bytes were allocated
// since the last collection, as GOGC=100 would, with a 1 MiB floor instead of 4.
// A read of the counters costs a few microseconds in wasm, so it is not done
// for every stream: 64 streams of small garbage stay far under the floor, and
// large garbage reaches the runtime's own goal, which collects by itself.
const (
	gcCheckEvery = 64
	gcMinBudget  = 1 << 20
)

var (
	gcSamples = []metrics.Sample{
		{Name: "/gc/heap/allocs:bytes"},
		{Name: "/gc/heap/live:bytes"},
	}
	gcStreams    int
	gcAllocsAtGC uint64
)

// maybeCollect runs after a stream is deleted.
func maybeCollect() {
	gcStreams++
	if gcStreams < gcCheckEvery {
		return
	}
	gcStreams = 0
	metrics.Read(gcSamples)
	allocs, live := sampleUint(gcSamples[0]), sampleUint(gcSamples[1])
	budget := live
	if budget < gcMinBudget {
		budget = gcMinBudget
	}
	if allocs-gcAllocsAtGC < budget {
		return
	}
	runtime.GC()
	metrics.Read(gcSamples[:1])
	gcAllocsAtGC = sampleUint(gcSamples[0])
}

func sampleUint(s metrics.Sample) uint64 {
	if s.Value.Kind() != metrics.KindUint64 {
		return 0
	}
	return s.Value.Uint64()
}
