package proxywasm

import (
	"unsafe"

	"ai-proxy/filter/proxywasm/abi"
)

// StatusError is a proxy_status_t other than OK returned by a host call.
type StatusError abi.Status

func (e StatusError) Error() string { return "proxy-wasm host: " + abi.Status(e).String() }

// Sentinels for the statuses callers branch on; compare with errors.Is.
var (
	ErrNotFound      error = StatusError(abi.StatusNotFound)
	ErrBadArgument   error = StatusError(abi.StatusBadArgument)
	ErrUnimplemented error = StatusError(abi.StatusUnimplemented)
	ErrEmpty         error = StatusError(abi.StatusEmpty)
)

func statusErr(s uint32) error {
	if s == uint32(abi.StatusOK) {
		return nil
	}
	return StatusError(s)
}

// ---- logging (legal in every callback)

func logAt(level abi.LogLevel, msg string) {
	rawLog(uint32(level), stringPtr(msg), uint32(len(msg)))
}

func LogTrace(msg string)    { logAt(abi.LogTrace, msg) }
func LogDebug(msg string)    { logAt(abi.LogDebug, msg) }
func LogInfo(msg string)     { logAt(abi.LogInfo, msg) }
func LogWarn(msg string)     { logAt(abi.LogWarn, msg) }
func LogError(msg string)    { logAt(abi.LogError, msg) }
func LogCritical(msg string) { logAt(abi.LogCritical, msg) }

// ---- buffers

// GetBuffer returns bytes [start, start+maxSize) of a buffer in memory owned by
// the caller. An absent or empty buffer gives (nil, nil).
func GetBuffer(bt abi.BufferType, start, maxSize int) ([]byte, error) {
	pp, np := retSlots()
	st := rawGetBufferBytes(uint32(bt), uint32(start), uint32(maxSize), pp, np)
	ptr, n := returned()
	if st == uint32(abi.StatusNotFound) || st == uint32(abi.StatusEmpty) {
		return nil, nil
	}
	if err := statusErr(st); err != nil {
		return nil, err
	}
	return hostBytes(ptr, n), nil
}

// GetBufferScratch is GetBuffer into the binding's reusable scratch memory:
// the bytes are valid only until the next host call that returns data, so the
// caller must be done with them (or copy them) before that. It saves the
// allocation of a body-sized buffer on every request.
func GetBufferScratch(bt abi.BufferType, start, maxSize int) ([]byte, error) {
	pp, np := beginScratch()
	b, err := scratchResult(rawGetBufferBytes(uint32(bt), uint32(start), uint32(maxSize), pp, np))
	if err == ErrNotFound || err == ErrEmpty {
		return nil, nil
	}
	return b, err
}

// GetPluginConfiguration reads the plugin configuration (legal in OnPluginStart only).
func GetPluginConfiguration() ([]byte, error) {
	return GetBuffer(abi.BufferPluginConfiguration, 0, abi.MaxBufferSize)
}

// GetVMConfiguration reads the VM configuration (legal in OnVMStart only).
func GetVMConfiguration() ([]byte, error) {
	return GetBuffer(abi.BufferVMConfiguration, 0, abi.MaxBufferSize)
}

// ReplaceBuffer replaces the whole content of a body buffer.
func ReplaceBuffer(bt abi.BufferType, data []byte) error {
	return statusErr(rawSetBufferBytes(uint32(bt), 0, abi.MaxBufferSize, bytesPtr(data), uint32(len(data))))
}

// ---- header maps

// GetHeaders returns a copy of a header map.
func GetHeaders(mt abi.MapType) ([]abi.Header, error) {
	enc, err := headerMapScratch(mt)
	if err != nil || enc == nil {
		return nil, err
	}
	return abi.DecodeHeaders(enc)
}

// GetHeadersView is GetHeaders without copies: the headers are appended to
// dst[:0] and their strings live in scratch memory, valid only until the next
// host call that returns data (see GetBufferScratch). For a callback that
// reads the map and keeps nothing.
func GetHeadersView(mt abi.MapType, dst []abi.Header) ([]abi.Header, error) {
	enc, err := headerMapScratch(mt)
	if err != nil || enc == nil {
		return dst[:0], err
	}
	return abi.DecodeHeadersView(dst, enc)
}

// headerMapScratch reads the encoded header map mt into scratch memory (nil
// for an empty map).
func headerMapScratch(mt abi.MapType) ([]byte, error) {
	pp, np := beginScratch()
	return scratchResult(rawGetHeaderMapPairs(uint32(mt), pp, np))
}

// GetHeader returns the value of one header; ErrNotFound when absent.
func GetHeader(mt abi.MapType, name string) (string, error) {
	v, err := GetHeaderScratch(mt, name)
	return string(v), err
}

// GetHeaderScratch is GetHeader into scratch memory: the value is valid only
// until the next host call that returns data (see GetBufferScratch).
func GetHeaderScratch(mt abi.MapType, name string) ([]byte, error) {
	pp, np := beginScratch()
	return scratchResult(rawGetHeaderMapValue(uint32(mt), stringPtr(name), uint32(len(name)), pp, np))
}

// ReplaceHeader sets a header, replacing any value it had.
func ReplaceHeader(mt abi.MapType, name, value string) error {
	return statusErr(rawReplaceHeaderMapValue(uint32(mt), stringPtr(name), uint32(len(name)), stringPtr(value), uint32(len(value))))
}

// AddHeader adds a value to a header.
func AddHeader(mt abi.MapType, name, value string) error {
	return statusErr(rawAddHeaderMapValue(uint32(mt), stringPtr(name), uint32(len(name)), stringPtr(value), uint32(len(value))))
}

// RemoveHeader removes a header (absent is not an error).
func RemoveHeader(mt abi.MapType, name string) error {
	err := statusErr(rawRemoveHeaderMapValue(uint32(mt), stringPtr(name), uint32(len(name))))
	if err == ErrNotFound {
		return nil
	}
	return err
}

// headerScratch holds encoded header maps for the host calls that take one.
var headerScratch []byte

// ---- stream control

// SendHttpResponse answers the current stream with a local response. The
// callback must then return ActionPause.
func SendHttpResponse(status int, headers []abi.Header, body []byte, grpcStatus int32) error {
	headerScratch = abi.AppendHeaders(headerScratch[:0], headers)
	return statusErr(rawSendLocalResponse(uint32(status), nil, 0,
		bytesPtr(body), uint32(len(body)),
		bytesPtr(headerScratch), uint32(len(headerScratch)), grpcStatus))
}

// ContinueStream resumes a paused request (abi.StreamHTTPRequest) or response.
func ContinueStream(t abi.StreamType) error { return statusErr(rawContinueStream(uint32(t))) }

// SetEffectiveContext makes later host calls act on another context.
func SetEffectiveContext(contextID uint32) error {
	return statusErr(rawSetEffectiveContext(contextID))
}

// DispatchHttpCall sends an HTTP request to upstream (a cluster name on Envoy,
// "host:port" on APISIX). headers must hold :method, :path and :authority. fn
// runs in proxy_on_http_call_response with the dispatching stream as the
// effective context; it is dropped if the stream ends first.
func DispatchHttpCall(upstream string, headers []abi.Header, body []byte, timeoutMS uint32, fn CallResponseFunc) (uint32, error) {
	headerScratch = abi.AppendHeaders(headerScratch[:0], headers)
	retID = 0
	st := rawHttpCall(stringPtr(upstream), uint32(len(upstream)),
		bytesPtr(headerScratch), uint32(len(headerScratch)),
		bytesPtr(body), uint32(len(body)),
		nil, 0, timeoutMS, unsafe.Pointer(&retID))
	if err := statusErr(st); err != nil {
		return 0, err
	}
	id := retID
	callout[id] = pendingCall{contextID: currentContext, fn: fn}
	if s := streams.get(currentContext); s != nil {
		s.calls = append(s.calls, id)
	}
	return id, nil
}

// GetCallResponseHeaders returns the headers of the call response being delivered.
func GetCallResponseHeaders() ([]abi.Header, error) {
	return GetHeaders(abi.MapHTTPCallResponseHeaders)
}

// GetCallResponseBody returns the body of the call response being delivered,
// in scratch memory: valid until the next host call that returns data (see
// GetBufferScratch). Copy it to keep it.
func GetCallResponseBody(size int) ([]byte, error) {
	return GetBufferScratch(abi.BufferHTTPCallResponseBody, 0, size)
}

// ---- properties

// SetProperty sets a stream property (path segments joined by NUL).
func SetProperty(path []byte, value []byte) error {
	return statusErr(rawSetProperty(bytesPtr(path), uint32(len(path)), bytesPtr(value), uint32(len(value))))
}

// SetPropertyString is SetProperty with a string value, without a copy.
func SetPropertyString(path []byte, value string) error {
	return statusErr(rawSetProperty(bytesPtr(path), uint32(len(path)), stringPtr(value), uint32(len(value))))
}

// GetProperty returns a copy of a property; ErrNotFound when absent.
func GetProperty(path []byte) ([]byte, error) {
	pp, np := retSlots()
	st := rawGetProperty(bytesPtr(path), uint32(len(path)), pp, np)
	ptr, n := returned()
	if err := statusErr(st); err != nil {
		return nil, err
	}
	return hostBytes(ptr, n), nil
}

// ---- metrics

// Metric is a metric defined by the filter.
type Metric uint32

// DefineMetric defines (or finds) a metric by type and name.
func DefineMetric(t abi.MetricType, name string) (Metric, error) {
	retID = 0
	st := rawDefineMetric(uint32(t), stringPtr(name), uint32(len(name)), unsafe.Pointer(&retID))
	return Metric(retID), statusErr(st)
}

// Increment adds delta to a counter or gauge.
func (m Metric) Increment(delta int64) error { return statusErr(rawIncrementMetric(uint32(m), delta)) }

// Record sets a gauge or records a histogram value.
func (m Metric) Record(v uint64) error { return statusErr(rawRecordMetric(uint32(m), v)) }
