// Package shape builds the provider request body from the client's body, as
// APISIX ai-proxy does: the configured model and options overwrite the client's
// fields, and a streaming chat request gets "stream_options":{"include_usage":true}
// so the provider reports token usage.
//
// The work is split so that the per-request path is a single pass over the
// body: NewPlan (at configure time) encodes the configured members and the set
// of overridden keys once; Plan.Request validates the client body and writes the
// result while scanning it, copying every member it keeps as raw bytes.
package shape

import (
	"errors"
	"sync/atomic"

	"ai-proxy/filter/config"
	"ai-proxy/filter/rawjson"
)

// Errors Request returns for a body it cannot shape. Their text is safe to show
// to a client.
var (
	ErrEmptyBody   = errors.New("request body is empty")
	ErrInvalidJSON = errors.New("request body is not valid JSON")
	ErrNotObject   = errors.New("request body is not a JSON object")
)

// Info describes a shaped request.
type Info struct {
	// RequestedModel is the client's "model" when it is a string, else "".
	RequestedModel string
	// Model is the effective model: the configured one, else RequestedModel.
	Model string
	// Stream reports that the provider request asks for a stream: the
	// configured "stream" option when there is one, else the client's
	// "stream" (only the JSON literal true counts).
	Stream bool
}

// includeUsage is appended for streaming requests (replacing the client's
// stream_options), so the last SSE chunk carries usage.
const includeUsage = `"stream_options":{"include_usage":true}`

// Plan is the configured part of body shaping, computed once. A Plan is
// immutable after NewPlan and safe for concurrent use.
type Plan struct {
	model string
	// quotedKeys are the client keys the configuration overwrites, quoted
	// as JSON writes a key without escapes (see keyIs).
	quotedKeys []string
	// members is `"model":"m","k1":v1,...`: the configured members, encoded.
	members []byte
	// streamSet: the configuration sets "stream"; stream: to true.
	streamSet, stream bool
	// streamOptionsSet: the configuration sets "stream_options" itself; it is
	// then sent as configured and nothing is injected.
	streamOptionsSet bool
	// lastModel caches the last client model string, so a client that sends the
	// same model on every request costs no allocation for Info.RequestedModel.
	lastModel atomic.Pointer[string]
}

// NewPlan prepares shaping for a configured model ("" = keep the client's) and
// options (config.Config.Options: each Raw must be one valid JSON value without
// surrounding whitespace, and keys unique, as config.Parse guarantees). The members are
// appended in this order: "model", then the options in their order. An option
// named "model" is ignored when model is set; when model is "" and the option's
// value is a JSON string, it is the model.
func NewPlan(model string, options []config.Option) *Plan {
	p := &Plan{}
	if model == "" {
		for _, o := range options {
			if o.Key == "model" {
				if s, ok := rawjson.Unquote(o.Raw); ok {
					model = s
				}
			}
		}
	}
	p.model = model
	if model != "" {
		p.quotedKeys = append(p.quotedKeys, `"model"`)
		p.members = rawjson.AppendString(p.members, "model")
		p.members = append(p.members, ':')
		p.members = rawjson.AppendString(p.members, model)
	}
	for _, o := range options {
		if o.Key == "model" && model != "" {
			continue
		}
		if len(p.members) > 0 {
			p.members = append(p.members, ',')
		}
		p.quotedKeys = append(p.quotedKeys, `"`+o.Key+`"`)
		p.members = rawjson.AppendString(p.members, o.Key)
		p.members = append(p.members, ':')
		p.members = append(p.members, o.Raw...)
		switch o.Key {
		case "stream":
			p.streamSet, p.stream = true, string(o.Raw) == "true"
		case "stream_options":
			p.streamOptionsSet = true
		}
	}
	return p
}

// Request returns the provider request body for the client body:
//
//   - body must be a JSON object (leading/trailing whitespace allowed), else
//     ErrEmptyBody (empty or whitespace only), ErrNotObject (valid JSON, not an
//     object) or ErrInvalidJSON;
//   - the output is "{", the client members whose key the configuration does
//     not set, each with its exact key and value bytes and in order (keys are
//     compared decoded; every duplicate of an overridden key is dropped), then
//     the configured members, then, when Info.Stream is true and the
//     configuration does not set stream_options,
//     "stream_options":{"include_usage":true} (every client stream_options is
//     dropped), then "}";
//   - when nothing changes (no configured members, and either the request does
//     not stream or the client already sent exactly one
//     "stream_options":{"include_usage":true}), body itself is returned: no copy.
//
// The output is appended to dst (dst[:len(dst)] is kept), growing it at most
// once; dst must not overlap body. With a dst of enough capacity and a client
// that repeats its model name, Request does not allocate. On error dst is
// returned unchanged.
func (p *Plan) Request(dst, body []byte) ([]byte, Info, error) {
	start := rawjson.SkipSpace(body, 0)
	if start == len(body) {
		return dst, Info{}, ErrEmptyBody
	}
	if body[start] != '{' {
		if rawjson.Valid(body) {
			return dst, Info{}, ErrNotObject
		}
		return dst, Info{}, ErrInvalidJSON
	}

	if len(p.members) == 0 {
		// Only stream_options can change: scan first, copy only if needed.
		_, st, err := p.pass(nil, body, false, false)
		if err != nil {
			return dst, Info{}, err
		}
		info := p.info(&st, st.clientStream)
		if !st.clientStream || st.soCount == 1 && st.soCanonical {
			return body, info, nil
		}
		out, _, _ := p.pass(dst, body, true, true)
		if len(out) > len(dst)+1 {
			out = append(out, ',')
		}
		out = append(out, includeUsage...)
		return append(out, '}'), info, nil
	}

	// Drop the client's stream_options now when we already know we inject ours.
	dropSO := p.streamSet && p.stream && !p.streamOptionsSet
	out, st, err := p.pass(dst, body, true, dropSO)
	if err != nil {
		return dst, Info{}, err
	}
	stream := st.clientStream
	if p.streamSet {
		stream = p.stream
	}
	if stream && !p.streamOptionsSet && st.soKept {
		// The client's stream came after its stream_options: do it again,
		// dropping them (rare).
		out, _, _ = p.pass(out[:len(dst)], body, true, true)
	}
	if len(out) > len(dst)+1 {
		out = append(out, ',')
	}
	out = append(out, p.members...)
	if stream && !p.streamOptionsSet {
		out = append(out, ',')
		out = append(out, includeUsage...)
	}
	return append(out, '}'), p.info(&st, stream), nil
}

// IsJSONObject reports whether b is valid JSON whose value is an object
// (surrounding whitespace allowed).
func IsJSONObject(b []byte) bool { return rawjson.IsObject(b) }

// passState is what one pass learns about the client body.
type passState struct {
	modelRaw     []byte // the last "model" string member, raw with quotes
	modelEscaped bool
	clientStream bool // the last "stream" member is true
	soCount      int  // number of "stream_options" members
	soCanonical  bool // the last one is exactly {"include_usage":true}
	soKept       bool // a stream_options member was copied to the output
}

// pass scans the object body once. With emit, it appends "{" and the kept
// members to dst (growing it once to fit the whole result) and leaves the
// object open; dropSO drops the client's stream_options members too.
func (p *Plan) pass(dst, body []byte, emit, dropSO bool) ([]byte, passState, error) {
	var st passState
	base := len(dst)
	out := dst
	if emit {
		if need := len(body) + len(p.members) + len(includeUsage) + 4; cap(dst)-base < need {
			out = make([]byte, base, base+need)
			copy(out, dst)
		}
		out = append(out, '{')
	}
	n := 0
	i := rawjson.SkipSpace(body, 0) + 1 // body starts with '{': checked by the caller
	for first := true; ; first = false {
		ks, ke, vs, ve, escaped, done, err := rawjson.NextMember(body, i, first)
		if err != nil || done && rawjson.SkipSpace(body, ve) != len(body) {
			return dst, st, ErrInvalidJSON
		}
		if done {
			return out, st, nil
		}
		i = ve
		if !st.see(p, body[ks:ke], escaped, body[vs:ve], dropSO) || !emit {
			continue
		}
		if n > 0 {
			out = append(out, ',')
		}
		n++
		out = append(out, body[ks:ve]...)
	}
}

// see records what the member with this raw key and value tells about the
// request, and reports whether the member is kept: not overridden by the
// configuration, and not a stream_options that dropSO drops. (A small
// function: in wasm the branches of a big loop body cost more.)
func (st *passState) see(p *Plan, key []byte, escaped bool, val []byte, dropSO bool) (keep bool) {
	switch {
	case keyIs(key, escaped, `"model"`):
		if val[0] == '"' {
			st.modelRaw = val
			_, st.modelEscaped, _ = rawjson.String(val, 0)
		} else {
			st.modelRaw = nil
		}
	case keyIs(key, escaped, `"stream"`):
		st.clientStream = string(val) == "true"
	case keyIs(key, escaped, `"stream_options"`):
		st.soCount++
		st.soCanonical = string(val) == `{"include_usage":true}`
		if dropSO {
			return false
		}
		if !p.overrides(key, escaped) {
			st.soKept = true
			return true
		}
		return false
	}
	return !p.overrides(key, escaped)
}

// keyIs reports whether the raw key is quoted (a key as written without
// escapes, quotes included): one comparison, inlined, unless the key has
// escapes.
func keyIs(key []byte, escaped bool, quoted string) bool {
	if escaped {
		return escapedKeyIs(key, quoted)
	}
	return string(key) == quoted
}

// escapedKeyIs is the rare case of keyIs, kept out of line so that keyIs
// itself is inlined.
//
//go:noinline
func escapedKeyIs(key []byte, quoted string) bool {
	return rawjson.EqualString(key, true, quoted[1:len(quoted)-1])
}

// overrides reports whether the configuration sets the member with this raw key.
func (p *Plan) overrides(key []byte, escaped bool) bool {
	for _, k := range p.quotedKeys {
		if keyIs(key, escaped, k) {
			return true
		}
	}
	return false
}

// info builds the Info for a pass.
func (p *Plan) info(st *passState, stream bool) Info {
	req := ""
	if st.modelRaw != nil {
		raw := st.modelRaw
		inner := raw[1 : len(raw)-1]
		switch {
		case !st.modelEscaped && string(inner) == p.model:
			req = p.model
		default:
			if last := p.lastModel.Load(); last != nil && rawjson.EqualString(raw, st.modelEscaped, *last) {
				req = *last
			} else {
				s, _ := rawjson.Unquote(raw)
				p.lastModel.Store(&s)
				req = s
			}
		}
	}
	model := p.model
	if model == "" {
		model = req
	}
	return Info{RequestedModel: req, Model: model, Stream: stream}
}
