package testutil

import (
	"context"
	"errors"

	"github.com/tetratelabs/wazero"
	"github.com/tetratelabs/wazero/api"
	"github.com/tetratelabs/wazero/imports/wasi_snapshot_preview1"
)

// WasmBench is a bare benchmark module (a package's testdata/wasmbench: a
// wasip1 reactor exporting input_buffer(n) -> pointer and the functions to
// time), compiled once, for timing code inside wasm without the proxy-wasm
// plumbing.
type WasmBench struct {
	rt       wazero.Runtime
	compiled wazero.CompiledModule
}

// NewWasmBench builds the package pkg (relative to the working directory) to
// wasm and compiles it. Close releases it.
func NewWasmBench(ctx context.Context, pkg string) (*WasmBench, error) {
	code, err := BuildWasmBytes(pkg)
	if err != nil {
		return nil, err
	}
	return LoadWasmBench(ctx, code)
}

// LoadWasmBench compiles an already built benchmark module. Close releases
// it.
func LoadWasmBench(ctx context.Context, code []byte) (*WasmBench, error) {
	rt := wazero.NewRuntime(ctx)
	wasi_snapshot_preview1.MustInstantiate(ctx, rt)
	compiled, err := rt.CompileModule(ctx, code)
	if err != nil {
		rt.Close(ctx)
		return nil, err
	}
	return &WasmBench{rt: rt, compiled: compiled}, nil
}

// errInput: the module did not take the input.
var errInput = errors.New("wasmbench: cannot write the input into the module")

// Instance starts a fresh instance with input written into the buffer its
// input_buffer export returns. Close the module after use.
func (w *WasmBench) Instance(ctx context.Context, input []byte) (api.Module, error) {
	mod, err := w.rt.InstantiateModule(ctx, w.compiled, wazero.NewModuleConfig().WithStartFunctions("_initialize").WithName(""))
	if err != nil {
		return nil, err
	}
	res, err := mod.ExportedFunction("input_buffer").Call(ctx, uint64(len(input)))
	if err != nil || !mod.Memory().Write(uint32(res[0]), input) {
		mod.Close(ctx)
		return nil, errors.Join(errInput, err)
	}
	return mod, nil
}

// Close releases the runtime and every instance.
func (w *WasmBench) Close(ctx context.Context) error { return w.rt.Close(ctx) }
