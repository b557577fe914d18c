//go:build wasip1

package proxywasm

import "unsafe"

// Raw host imports (module "env"). Only what the filter uses is declared, so the
// module imports no more than it needs. All results are proxy_status_t.

//go:wasmimport env proxy_log
func rawLog(level uint32, msg unsafe.Pointer, msgLen uint32) uint32

//go:wasmimport env proxy_get_buffer_bytes
func rawGetBufferBytes(bt, start, maxSize uint32, retPtr unsafe.Pointer, retLen unsafe.Pointer) uint32

//go:wasmimport env proxy_set_buffer_bytes
func rawSetBufferBytes(bt, start, size uint32, data unsafe.Pointer, dataLen uint32) uint32

//go:wasmimport env proxy_get_header_map_pairs
func rawGetHeaderMapPairs(mt uint32, retPtr unsafe.Pointer, retLen unsafe.Pointer) uint32

//go:wasmimport env proxy_get_header_map_value
func rawGetHeaderMapValue(mt uint32, key unsafe.Pointer, keyLen uint32, retPtr unsafe.Pointer, retLen unsafe.Pointer) uint32

//go:wasmimport env proxy_add_header_map_value
func rawAddHeaderMapValue(mt uint32, key unsafe.Pointer, keyLen uint32, val unsafe.Pointer, valLen uint32) uint32

//go:wasmimport env proxy_replace_header_map_value
func rawReplaceHeaderMapValue(mt uint32, key unsafe.Pointer, keyLen uint32, val unsafe.Pointer, valLen uint32) uint32

//go:wasmimport env proxy_remove_header_map_value
func rawRemoveHeaderMapValue(mt uint32, key unsafe.Pointer, keyLen uint32) uint32

//go:wasmimport env proxy_send_local_response
func rawSendLocalResponse(status uint32, details unsafe.Pointer, detailsLen uint32, body unsafe.Pointer, bodyLen uint32, headers unsafe.Pointer, headersLen uint32, grpcStatus int32) uint32

//go:wasmimport env proxy_http_call
func rawHttpCall(upstream unsafe.Pointer, upstreamLen uint32, headers unsafe.Pointer, headersLen uint32, body unsafe.Pointer, bodyLen uint32, trailers unsafe.Pointer, trailersLen uint32, timeoutMS uint32, retID unsafe.Pointer) uint32

//go:wasmimport env proxy_continue_stream
func rawContinueStream(streamType uint32) uint32

//go:wasmimport env proxy_set_effective_context
func rawSetEffectiveContext(contextID uint32) uint32

//go:wasmimport env proxy_get_property
func rawGetProperty(path unsafe.Pointer, pathLen uint32, retPtr unsafe.Pointer, retLen unsafe.Pointer) uint32

//go:wasmimport env proxy_set_property
func rawSetProperty(path unsafe.Pointer, pathLen uint32, val unsafe.Pointer, valLen uint32) uint32

//go:wasmimport env proxy_define_metric
func rawDefineMetric(metricType uint32, name unsafe.Pointer, nameLen uint32, retID unsafe.Pointer) uint32

//go:wasmimport env proxy_increment_metric
func rawIncrementMetric(metricID uint32, delta int64) uint32

//go:wasmimport env proxy_record_metric
func rawRecordMetric(metricID uint32, value uint64) uint32
