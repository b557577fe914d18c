// Package usage reads token usage and the effective model from OpenAI-style
// chat answers: whole chat.completion JSON bodies (FromResponse) and streamed
// chat.completion.chunk SSE bodies, either chunk by chunk as they pass through
// the filter (Stream) or buffered whole (FromSSE).
//
// It is pure code over bytes (no host calls, no fmt or os) so it runs inside
// the wasm filter; JSON is read with rawjson without building any tree. A
// Stream allocates its SSE parser's buffers (sized by the largest event) and
// the model string, nothing per event: its memory does not grow with the
// length of the answer.
package usage

import (
	"bytes"

	"ai-proxy/filter/rawjson"
	"ai-proxy/filter/sse"
)

// Usage is the token accounting an answer reports. A count the provider did
// not report, or reported as something other than a non-negative JSON
// integer, is 0.
type Usage struct {
	PromptTokens, CompletionTokens, TotalTokens int64
	// CachedTokens is usage.prompt_tokens_details.cached_tokens (OpenAI), or
	// else DeepSeek's usage.prompt_cache_hit_tokens.
	CachedTokens int64
	// ReasoningTokens is usage.completion_tokens_details.reasoning_tokens.
	ReasoningTokens int64
	// Known reports that a usage object was found.
	Known bool
}

// FromResponse reads a non-streamed chat.completion JSON body: its "usage"
// object and its "model" string. The body is not validated (it reaches the
// client as the provider sent it): ok is false when it does not start like a
// JSON object; a usage object that is not valid JSON is ignored; u.Known is
// false when there is no usage object (null or missing).
// When a key appears twice, the first member counts.
func FromResponse(body []byte) (u Usage, model string, ok bool) {
	// The answer is read, not validated: it goes to the client as it came,
	// and only its top-level "model" and "usage" matter here. A fast skip
	// over the other members (choices can be long) keeps this cheap in wasm.
	var rawModel, rawUsage []byte
	if !rawjson.EachTopMember(body, func(key, value []byte) bool {
		switch {
		case rawModel == nil && keyIs(key, "model"):
			rawModel = value
		case rawUsage == nil && keyIs(key, "usage"):
			rawUsage = value
		}
		return true
	}) {
		return Usage{}, "", false
	}
	if len(rawModel) > 0 && rawModel[0] == '"' {
		model, _ = rawjson.Unquote(rawModel)
	}
	if rawjson.Valid(rawUsage) {
		u, _ = parse(rawUsage)
	}
	return u, model, true
}

// keyIs reports whether the raw key (quotes included) is name, escapes decoded.
func keyIs(key []byte, name string) bool {
	if len(key) < 2 {
		return false
	}
	if bytes.IndexByte(key, '\\') < 0 {
		return string(key[1:len(key)-1]) == name
	}
	k, ok := rawjson.Unquote(key)
	return ok && k == name
}

// parse reads a raw usage object; ok is false (and u zero) when raw is not an
// object. raw has already been validated.
func parse(raw []byte) (u Usage, ok bool) {
	if len(raw) == 0 || raw[0] != '{' {
		return Usage{}, false
	}
	var s rawjson.ObjectScanner
	if s.Reset(raw) != nil {
		return Usage{}, false
	}
	var seenPrompt, seenCompletion, seenTotal, seenCached, seenHit, seenReasoning bool
	var cacheHit int64
	for s.Next() {
		m := s.Member()
		is := func(k string) bool { return rawjson.EqualString(m.Key, m.KeyEscaped, k) }
		switch {
		case is("prompt_tokens"):
			u.PromptTokens, seenPrompt = count(m.Value, u.PromptTokens, seenPrompt)
		case is("completion_tokens"):
			u.CompletionTokens, seenCompletion = count(m.Value, u.CompletionTokens, seenCompletion)
		case is("total_tokens"):
			u.TotalTokens, seenTotal = count(m.Value, u.TotalTokens, seenTotal)
		case is("prompt_cache_hit_tokens"):
			cacheHit, seenHit = count(m.Value, cacheHit, seenHit)
		case is("prompt_tokens_details"):
			if v, found := rawjson.Lookup(m.Value, "cached_tokens"); found {
				u.CachedTokens, seenCached = count(v, u.CachedTokens, seenCached)
			}
		case is("completion_tokens_details"):
			if v, found := rawjson.Lookup(m.Value, "reasoning_tokens"); found {
				u.ReasoningTokens, seenReasoning = count(v, u.ReasoningTokens, seenReasoning)
			}
		}
	}
	if !seenCached {
		u.CachedTokens = cacheHit
	}
	if !seenTotal && seenPrompt && seenCompletion {
		u.TotalTokens = u.PromptTokens + u.CompletionTokens
	}
	u.Known = true
	return u, true
}

// count returns the count in raw, and true, when none was seen yet and raw is
// a non-negative JSON integer; otherwise it returns cur and seen unchanged.
func count(raw []byte, cur int64, seen bool) (int64, bool) {
	if seen {
		return cur, true
	}
	if n, ok := rawjson.Int(raw); ok && n >= 0 {
		return n, true
	}
	return cur, false
}

// Stream accumulates what a streamed chat answer reports, from the raw
// response body chunks as they pass (they are not modified or retained). Its
// zero value is ready. A Stream is per-request state, not safe for concurrent
// use.
type Stream struct {
	parser    sse.Parser
	usage     Usage
	model     string
	done      bool
	events    int
	chunks    int
	firstSeen bool
}

// doneData is the data of the event that ends an OpenAI stream.
const doneData = "[DONE]"

// Feed parses the next body chunk as Server-Sent Events (cut anywhere) and
// reads each completed data event as a chat.completion.chunk: it records the
// first non-empty "model", the last non-null "usage" object (the final chunk
// that stream_options.include_usage asks for, whose "choices" is empty), and
// Done on "data: [DONE]". Events that are not JSON objects are skipped.
//
// firstContent is true exactly once per Stream: for the chunk that completed
// the first event in which some choices[].delta has a non-empty "content" or
// "reasoning_content" string, a non-empty "tool_calls" array, or a
// "function_call" object (the legacy form of tool calls). That is the
// time-to-first-token moment; a first chunk that only carries the role, or
// empty content, does not count.
func (s *Stream) Feed(chunk []byte) (firstContent bool) {
	for _, e := range s.parser.Feed(chunk) {
		s.events++
		if string(e.Data) == doneData {
			s.done = true
			continue
		}
		if s.chunk(e.Data) && !s.firstSeen {
			s.firstSeen, firstContent = true, true
		}
	}
	return firstContent
}

// chunk reads one chat.completion.chunk and reports whether it carries
// content.
func (s *Stream) chunk(data []byte) (content bool) {
	if s.model != "" && s.firstSeen && !mayCarryUsage(data) {
		// Nothing left to learn from a chunk without a usage object: skip
		// the parse (most chunks of a long answer).
		s.chunks++
		return false
	}
	var sc rawjson.ObjectScanner
	if sc.Reset(data) != nil {
		return false
	}
	var rawModel, rawUsage, rawChoices []byte
	for sc.Next() {
		m := sc.Member()
		switch {
		case rawModel == nil && rawjson.EqualString(m.Key, m.KeyEscaped, "model"):
			rawModel = m.Value
		case rawUsage == nil && rawjson.EqualString(m.Key, m.KeyEscaped, "usage"):
			rawUsage = m.Value
		case rawChoices == nil && rawjson.EqualString(m.Key, m.KeyEscaped, "choices"):
			rawChoices = m.Value
		}
	}
	if sc.Err() != nil {
		return false
	}
	s.chunks++
	if s.model == "" && len(rawModel) > 2 {
		s.model, _ = rawjson.Unquote(rawModel)
	}
	if u, ok := parse(rawUsage); ok {
		s.usage = u
	}
	return !s.firstSeen && hasContent(rawChoices)
}

// usageKey is how a usage member starts in raw JSON. Inside a JSON string a
// quote is escaped, so these bytes occur only as a key.
var usageKey = []byte(`"usage"`)

// mayCarryUsage reports whether data has a "usage" member whose value is not
// null (OpenAI sends "usage":null in every chunk before the last one).
func mayCarryUsage(data []byte) bool {
	for {
		i := bytes.Index(data, usageKey)
		if i < 0 {
			return false
		}
		data = data[i+len(usageKey):]
		j := rawjson.SkipSpace(data, 0)
		if j < len(data) && data[j] == ':' {
			j = rawjson.SkipSpace(data, j+1)
			if !bytes.HasPrefix(data[j:], []byte("null")) {
				return true
			}
		}
	}
}

// hasContent reports whether some element of the raw choices array has a
// delta with content (see Stream.Feed).
func hasContent(choices []byte) bool {
	var a rawjson.ArrayScanner
	if a.Reset(choices) != nil {
		return false
	}
	for a.Next() {
		delta, ok := rawjson.Lookup(a.Value(), "delta")
		if !ok || len(delta) == 0 || delta[0] != '{' {
			continue
		}
		var d rawjson.ObjectScanner
		_ = d.Reset(delta)
		for d.Next() {
			m := d.Member()
			v := m.Value
			switch {
			case rawjson.EqualString(m.Key, m.KeyEscaped, "content"),
				rawjson.EqualString(m.Key, m.KeyEscaped, "reasoning_content"):
				// A JSON string longer than `""` decodes to at least one byte.
				if v[0] == '"' && len(v) > 2 {
					return true
				}
			case rawjson.EqualString(m.Key, m.KeyEscaped, "tool_calls"):
				if v[0] == '[' && v[rawjson.SkipSpace(v, 1)] != ']' {
					return true
				}
			case rawjson.EqualString(m.Key, m.KeyEscaped, "function_call"):
				if v[0] == '{' {
					return true
				}
			}
		}
	}
	return false
}

// Usage returns the last usage object the stream reported (Known is false
// when none was).
func (s *Stream) Usage() Usage { return s.usage }

// Model returns the first non-empty "model" the stream's chunks reported.
func (s *Stream) Model() string { return s.model }

// Done reports that the stream sent "data: [DONE]".
func (s *Stream) Done() bool { return s.done }

// Events returns how many SSE data events were read, "[DONE]" included.
func (s *Stream) Events() int { return s.events }

// Pending reports that the body so far ends inside an SSE event: if the
// answer ends here, it was cut in the middle.
func (s *Stream) Pending() bool { return s.parser.Pending() }

// sseWindow is how much of a buffered body FromSSE parses at a time: the
// parser's working memory follows the window, not the body.
const sseWindow = 16 << 10

// FromSSE reads a whole buffered SSE body at once (callout mode with
// stream=true): the result is what a Stream fed the same bytes reports. ok is
// false when no event of body was a JSON object (the body is not a chat
// completion stream: an error answer, for instance).
func FromSSE(body []byte) (u Usage, model string, ok bool) {
	var s Stream
	for len(body) > 0 {
		n := min(len(body), sseWindow)
		s.Feed(body[:n])
		body = body[n:]
	}
	return s.usage, s.model, s.chunks > 0
}
