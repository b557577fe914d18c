// Package abi holds the proxy-wasm ABI v0.2.1 vocabulary that both sides of the
// boundary need: status, action, buffer, map, stream and metric type numbers,
// log levels, and the byte encoding of header maps.
//
// It is pure Go with no host calls, so the guest (filter/proxywasm) and the host
// (harness) import the same definitions and never keep two copies of them.
package abi

// Status is proxy_status_t: the result of every host call.
type Status uint32

// Status values from the spec.
const (
	StatusOK                   Status = 0
	StatusNotFound             Status = 1
	StatusBadArgument          Status = 2
	StatusSerializationFailure Status = 3
	StatusParseFailure         Status = 4
	StatusInvalidMemoryAccess  Status = 6
	StatusEmpty                Status = 7
	StatusCASMismatch          Status = 8
	StatusInternalFailure      Status = 10
	StatusUnimplemented        Status = 12
)

// String names the status as the spec does.
func (s Status) String() string {
	switch s {
	case StatusOK:
		return "OK"
	case StatusNotFound:
		return "NOT_FOUND"
	case StatusBadArgument:
		return "BAD_ARGUMENT"
	case StatusSerializationFailure:
		return "SERIALIZATION_FAILURE"
	case StatusParseFailure:
		return "PARSE_FAILURE"
	case StatusInvalidMemoryAccess:
		return "INVALID_MEMORY_ACCESS"
	case StatusEmpty:
		return "EMPTY"
	case StatusCASMismatch:
		return "CAS_MISMATCH"
	case StatusInternalFailure:
		return "INTERNAL_FAILURE"
	case StatusUnimplemented:
		return "UNIMPLEMENTED"
	}
	return "UNKNOWN_STATUS"
}

// Action is proxy_action_t: what a stream callback asks the host to do next.
type Action uint32

// Action values from the spec.
const (
	ActionContinue Action = 0
	ActionPause    Action = 1
)

// BufferType is proxy_buffer_type_t.
type BufferType uint32

// Buffer types from the spec.
const (
	BufferHTTPRequestBody      BufferType = 0
	BufferHTTPResponseBody     BufferType = 1
	BufferDownstreamData       BufferType = 2
	BufferUpstreamData         BufferType = 3
	BufferHTTPCallResponseBody BufferType = 4
	BufferGRPCReceiveBuffer    BufferType = 5
	BufferVMConfiguration      BufferType = 6
	BufferPluginConfiguration  BufferType = 7
	BufferCallData             BufferType = 8
)

// MapType is proxy_map_type_t.
type MapType uint32

// Map types from the spec.
const (
	MapHTTPRequestHeaders       MapType = 0
	MapHTTPRequestTrailers      MapType = 1
	MapHTTPResponseHeaders      MapType = 2
	MapHTTPResponseTrailers     MapType = 3
	MapGRPCReceiveInitialMeta   MapType = 4
	MapGRPCReceiveTrailingMeta  MapType = 5
	MapHTTPCallResponseHeaders  MapType = 6
	MapHTTPCallResponseTrailers MapType = 7
)

// StreamType is proxy_stream_type_t, used by proxy_continue_stream and proxy_close_stream.
type StreamType uint32

// Stream types from the spec.
const (
	StreamHTTPRequest  StreamType = 0
	StreamHTTPResponse StreamType = 1
	StreamDownstream   StreamType = 2
	StreamUpstream     StreamType = 3
)

// MetricType is proxy_metric_type_t.
type MetricType uint32

// Metric types from the spec.
const (
	MetricCounter   MetricType = 0
	MetricGauge     MetricType = 1
	MetricHistogram MetricType = 2
)

// LogLevel is proxy_log_level_t.
type LogLevel uint32

// Log levels from the spec.
const (
	LogTrace    LogLevel = 0
	LogDebug    LogLevel = 1
	LogInfo     LogLevel = 2
	LogWarn     LogLevel = 3
	LogError    LogLevel = 4
	LogCritical LogLevel = 5
)

// String names the level.
func (l LogLevel) String() string {
	switch l {
	case LogTrace:
		return "trace"
	case LogDebug:
		return "debug"
	case LogInfo:
		return "info"
	case LogWarn:
		return "warn"
	case LogError:
		return "error"
	case LogCritical:
		return "critical"
	}
	return "unknown"
}

// MaxBufferSize is what the SDKs pass as "to the end" in buffer (start, size) arguments.
const MaxBufferSize = 0x7fffffff

// GRPCStatusNone is the grpc_status argument of proxy_send_local_response for a plain HTTP answer.
const GRPCStatusNone = -1
