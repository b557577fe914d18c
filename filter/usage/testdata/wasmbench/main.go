//go:build wasip1

// Command wasmbench runs usage.FromResponse inside a wasm module, so a
// benchmark can time it in wasm without the proxy-wasm plumbing around it.
// Not part of the filter.
package main

import (
	"unsafe"

	"ai-proxy/filter/usage"
)

var input []byte

// input_buffer returns a buffer of n bytes for the host to fill.
//
//go:wasmexport input_buffer
func inputBuffer(n uint32) unsafe.Pointer {
	input = make([]byte, n)
	return unsafe.Pointer(&input[0])
}

// digest folds a result into a number, so that no call is optimized away.
func digest(u usage.Usage, modelLen int, ok bool) uint32 {
	d := uint32(u.PromptTokens + u.CompletionTokens + u.TotalTokens + u.CachedTokens + u.ReasoningTokens)
	d += uint32(modelLen) << 8
	if u.Known {
		d += 1 << 16
	}
	if ok {
		d += 1 << 17
	}
	return d
}

// run calls usage.FromResponse on the input iterations times and returns the
// digest of the last result plus the iteration count.
//
//go:wasmexport run
func run(iterations uint32) uint32 {
	var d uint32
	for range iterations {
		u, model, ok := usage.FromResponse(input)
		d = digest(u, len(model), ok)
	}
	return d + iterations
}

// run_bytes is run with usage.FromResponseBytes.
//
//go:wasmexport run_bytes
func runBytes(iterations uint32) uint32 {
	var d uint32
	for range iterations {
		u, model, ok := usage.FromResponseBytes(input)
		d = digest(u, len(model), ok)
	}
	return d + iterations
}

func main() {}
