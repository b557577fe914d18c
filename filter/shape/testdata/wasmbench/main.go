//go:build wasip1

// Command wasmbench runs the shaping code inside a wasm module, so a benchmark
// can compare the same code natively and in wasm without the proxy-wasm
// plumbing around it. Not part of the filter.
package main

import (
	"unsafe"

	"ai-proxy/filter/config"
	"ai-proxy/filter/shape"
)

var (
	input []byte
	out   []byte
	plan  = shape.NewPlan("gpt-4", []config.Option{{Key: "max_tokens", Raw: []byte("512")}, {Key: "temperature", Raw: []byte("1.0")}})
)

// input_buffer returns a buffer of n bytes for the host to fill.
//
//go:wasmexport input_buffer
func inputBuffer(n uint32) unsafe.Pointer {
	input = make([]byte, n)
	return unsafe.Pointer(&input[0])
}

// shape_input shapes the input once and returns the output size (0 on error).
//
//go:wasmexport shape_input
func shapeInput() uint32 {
	o, _, err := plan.Request(out[:0], input)
	if err != nil {
		return 0
	}
	out = o
	return uint32(len(o))
}

func main() {}
