//go:build !wasip1

package proxywasm

import "unsafe"

// Native builds have no host: the raw imports exist so that the filter's
// packages compile, vet and unit-test natively; calling one is a bug.

func noHost() uint32 { panic("proxywasm: host calls need a proxy-wasm host (build with GOOS=wasip1)") }

func rawLog(uint32, unsafe.Pointer, uint32) uint32 { return noHost() }
func rawGetBufferBytes(uint32, uint32, uint32, unsafe.Pointer, unsafe.Pointer) uint32 {
	return noHost()
}
func rawSetBufferBytes(uint32, uint32, uint32, unsafe.Pointer, uint32) uint32 { return noHost() }
func rawGetHeaderMapPairs(uint32, unsafe.Pointer, unsafe.Pointer) uint32      { return noHost() }
func rawGetHeaderMapValue(uint32, unsafe.Pointer, uint32, unsafe.Pointer, unsafe.Pointer) uint32 {
	return noHost()
}
func rawAddHeaderMapValue(uint32, unsafe.Pointer, uint32, unsafe.Pointer, uint32) uint32 {
	return noHost()
}
func rawReplaceHeaderMapValue(uint32, unsafe.Pointer, uint32, unsafe.Pointer, uint32) uint32 {
	return noHost()
}
func rawRemoveHeaderMapValue(uint32, unsafe.Pointer, uint32) uint32 { return noHost() }
func rawSendLocalResponse(uint32, unsafe.Pointer, uint32, unsafe.Pointer, uint32, unsafe.Pointer, uint32, int32) uint32 {
	return noHost()
}
func rawHttpCall(unsafe.Pointer, uint32, unsafe.Pointer, uint32, unsafe.Pointer, uint32, unsafe.Pointer, uint32, uint32, unsafe.Pointer) uint32 {
	return noHost()
}
func rawContinueStream(uint32) uint32                                              { return noHost() }
func rawSetEffectiveContext(uint32) uint32                                         { return noHost() }
func rawGetProperty(unsafe.Pointer, uint32, unsafe.Pointer, unsafe.Pointer) uint32 { return noHost() }
func rawSetProperty(unsafe.Pointer, uint32, unsafe.Pointer, uint32) uint32         { return noHost() }
func rawDefineMetric(uint32, unsafe.Pointer, uint32, unsafe.Pointer) uint32        { return noHost() }
func rawIncrementMetric(uint32, int64) uint32                                      { return noHost() }
func rawRecordMetric(uint32, uint64) uint32                                        { return noHost() }
