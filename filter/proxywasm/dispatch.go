package proxywasm

import (
	"runtime"
	"strconv"

	"ai-proxy/filter/proxywasm/abi"
)

// The VM state: contexts by id and call-outs in flight. Only the exports below
// touch it, one at a time.
var (
	roots   = map[uint32]RootContext{}
	streams streamTable
	callout = map[uint32]pendingCall{}
)

type stream struct {
	id     uint32
	ctx    HttpContext
	rootID uint32
	done   bool
	calls  []uint32  // call-outs dispatched by this stream and not answered yet
	first  [1]uint32 // backing for calls: one call per stream needs no allocation
}

type pendingCall struct {
	contextID uint32 // the stream (or root) that dispatched the call
	fn        CallResponseFunc
}

// currentContext is the context whose callback is running (the effective
// context for host calls), kept to attribute call-outs to their stream.
var currentContext uint32

func onContextCreate(contextID, parentID uint32) {
	currentContext = contextID
	if parentID == 0 {
		if newRoot == nil {
			return
		}
		defer func() { rootPanic("proxy_on_context_create", recover()) }()
		roots[contextID] = newRoot(contextID)
		lastRoot = cachedRoot{}
		return
	}
	root, ok := rootOf(parentID)
	if !ok {
		LogCritical("proxy_on_context_create: unknown root context " + strconv.FormatUint(uint64(parentID), 10))
		return
	}
	s := newStream()
	s.id, s.rootID = contextID, parentID
	streams.put(s)
	defer func() { streamPanic(contextID, recover()) }()
	s.ctx = root.NewHttpContext(contextID)
}

// cachedRoot is the root context last looked up: every stream is created
// under a root, mostly the same one, and a map lookup costs far more in wasm
// than a comparison. It is cleared whenever roots changes.
type cachedRoot struct {
	id  uint32
	ctx RootContext
}

var lastRoot cachedRoot

// rootOf returns the root context id.
func rootOf(id uint32) (RootContext, bool) {
	if lastRoot.ctx != nil && lastRoot.id == id {
		return lastRoot.ctx, true
	}
	r, ok := roots[id]
	if ok {
		lastRoot = cachedRoot{id, r}
	}
	return r, ok
}

func onVMStart(rootID uint32, size int) (ok bool) {
	currentContext = rootID
	r, found := rootOf(rootID)
	if !found {
		return false
	}
	defer func() {
		if rootPanic("proxy_on_vm_start", recover()) {
			ok = false
		}
	}()
	return r.OnVMStart(size)
}

func onConfigure(rootID uint32, size int) (ok bool) {
	currentContext = rootID
	r, found := rootOf(rootID)
	if !found {
		return false
	}
	defer func() {
		if rootPanic("proxy_on_configure", recover()) {
			ok = false
		}
	}()
	return r.OnPluginStart(size)
}

func onTick(rootID uint32) {
	currentContext = rootID
	if r, ok := rootOf(rootID); ok {
		defer func() { rootPanic("proxy_on_tick", recover()) }()
		r.OnTick()
	}
}

// streamCallback runs f for the stream contextID with panic recovery. A
// missing or finished stream continues.
func streamCallback(contextID uint32, f func(HttpContext) abi.Action) (action abi.Action) {
	currentContext = contextID
	s := streams.get(contextID)
	if s == nil || s.ctx == nil {
		return abi.ActionContinue
	}
	defer func() {
		if streamPanic(contextID, recover()) {
			action = abi.ActionPause
		}
	}()
	return f(s.ctx)
}

func onHttpCallResponse(rootID, calloutID uint32, numHeaders, bodySize, numTrailers int) {
	currentContext = rootID
	c, ok := callout[calloutID]
	if !ok {
		return
	}
	delete(callout, calloutID)
	s := streams.get(c.contextID)
	if s != nil {
		s.forgetCall(calloutID)
	}
	if c.contextID != rootID {
		if s == nil {
			return // the stream ended while the call was in flight
		}
		if err := SetEffectiveContext(c.contextID); err != nil {
			LogError("proxy_on_http_call_response: cannot switch to stream: " + err.Error())
			return
		}
		currentContext = c.contextID
		defer func() { streamPanic(c.contextID, recover()) }()
	} else {
		defer func() { rootPanic("proxy_on_http_call_response", recover()) }()
	}
	c.fn(numHeaders, bodySize, numTrailers)
}

func onLog(contextID uint32) {
	currentContext = contextID
	s := streams.get(contextID)
	if s == nil || s.done || s.ctx == nil {
		return
	}
	s.done = true
	defer func() { rootPanic("proxy_on_log", recover()) }()
	s.ctx.OnHttpStreamDone()
}

func onDelete(contextID uint32) {
	if s := streams.get(contextID); s != nil {
		// Calls still in flight are dropped: a host may never answer them.
		for _, id := range s.calls {
			delete(callout, id)
		}
		streams.remove(s)
		if s.ctx != nil {
			func() {
				defer func() { rootPanic("proxy_on_delete", recover()) }()
				s.ctx.OnHttpContextDelete()
			}()
		}
		freeStream(s)
		maybeCollect()
		return
	}
	delete(roots, contextID)
	lastRoot = cachedRoot{}
	for id, c := range callout {
		if c.contextID == contextID {
			delete(callout, id)
		}
	}
}

// streamTable finds live streams by context id. Hosts number contexts upward
// from 1, so a slot per id modulo the table's size finds almost every stream
// in one probe, with no hashing; an id whose slot another live stream holds
// goes to the overflow map.
type streamTable struct {
	slots    [1024]*stream
	overflow map[uint32]*stream
}

func (t *streamTable) get(id uint32) *stream {
	if s := t.slots[id%uint32(len(t.slots))]; s != nil && s.id == id {
		return s
	}
	if len(t.overflow) == 0 {
		return nil
	}
	return t.overflow[id]
}

func (t *streamTable) put(s *stream) {
	slot := &t.slots[s.id%uint32(len(t.slots))]
	if *slot == nil {
		*slot = s
		return
	}
	if t.overflow == nil {
		t.overflow = map[uint32]*stream{}
	}
	t.overflow[s.id] = s
}

func (t *streamTable) remove(s *stream) {
	if slot := &t.slots[s.id%uint32(len(t.slots))]; *slot == s {
		*slot = nil
		return
	}
	delete(t.overflow, s.id)
}

// freeStreams are the records of deleted streams, reused by the next ones:
// a stream per request then costs no allocation here.
var freeStreams []*stream

const maxFreeStreams = 256

func newStream() *stream {
	var s *stream
	if n := len(freeStreams); n > 0 {
		s = freeStreams[n-1]
		freeStreams[n-1] = nil
		freeStreams = freeStreams[:n-1]
	} else {
		s = new(stream)
	}
	s.calls = s.first[:0]
	return s
}

func freeStream(s *stream) {
	*s = stream{}
	if len(freeStreams) < maxFreeStreams {
		freeStreams = append(freeStreams, s)
	}
}

// forgetCall removes an answered call from the stream's list.
func (s *stream) forgetCall(id uint32) {
	for i, c := range s.calls {
		if c == id {
			s.calls = append(s.calls[:i], s.calls[i+1:]...)
			return
		}
	}
}

// rootPanic logs the value r recovered from a root callback's panic; it
// reports whether there was one. recover() must be called by the deferred
// function itself, so callers pass its result in.
func rootPanic(where string, r any) bool {
	if r == nil {
		return false
	}
	LogCritical(where + ": panic: " + panicText(r) + "\n" + stack())
	return true
}

// streamPanic logs the value r recovered from a stream callback's panic and
// answers the stream with the filter's panic handler (or a plain 500); it
// reports whether there was one.
func streamPanic(contextID uint32, r any) bool {
	if r == nil {
		return false
	}
	LogCritical("stream " + strconv.FormatUint(uint64(contextID), 10) + ": panic: " + panicText(r) + "\n" + stack())
	if s := streams.get(contextID); s != nil {
		s.ctx = nil // the context's state is unknown now: no more callbacks
	}
	func() {
		defer func() {
			if r2 := recover(); r2 != nil {
				LogCritical("panic handler: panic: " + panicText(r2))
			}
		}()
		if panicHandler != nil {
			panicHandler(r)
			return
		}
		_ = SendHttpResponse(500, nil, []byte("internal error"), -1)
	}()
	return true
}

func panicText(r any) string {
	switch v := r.(type) {
	case string:
		return v
	case error:
		return v.Error()
	}
	return "non-error panic value"
}

func boolU32(b bool) uint32 {
	if b {
		return 1
	}
	return 0
}

// stack returns the calling goroutine's stack (runtime/debug would pull in fmt and os).
func stack() string {
	buf := make([]byte, 4096)
	return string(buf[:runtime.Stack(buf, false)])
}
