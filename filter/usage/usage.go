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
	"math/bits"

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
	u, m, ok := FromResponseBytes(body)
	return u, string(m), ok
}

// FromResponseBytes is FromResponse with the model as bytes: they alias body when the JSON string has no escapes (else a new slice holds the decoded string).
//
// The answer is read, not validated: it goes to the client as it came, and
// only its top-level "model" and "usage" matter here (see topMembers). The
// usage object is then read, and validated, by readUsageAt.
func FromResponseBytes(body []byte) (u Usage, model []byte, ok bool) {
	modelAt, modelEnd, usageAt, ok := topMembers(body)
	if modelAt >= 0 {
		model = modelValue(body, modelAt, modelEnd)
	}
	if usageAt >= 0 && body[usageAt] == '{' {
		prompt, completion, total, cached, reasoning, end := readUsageAt(body, usageAt)
		if end >= 0 {
			// Field by field: a composite literal would zero the result
			// once more (zeroing or copying a Usage costs calls in wasm).
			u.PromptTokens, u.CompletionTokens, u.TotalTokens = prompt, completion, total
			u.CachedTokens, u.ReasoningTokens, u.Known = cached, reasoning, true
		}
	}
	return u, model, ok
}

// modelValue returns the model from the raw value body[at:end]: the bytes
// between its quotes when it is a JSON string without escapes, its decoded
// value when it has escapes, nil when it is not a string or not valid.
func modelValue(body []byte, at, end int) []byte {
	if body[at] != '"' {
		return nil
	}
	raw := body[at:end]
	if len(raw) >= 2 && raw[len(raw)-1] == '"' {
		// Without a backslash the string ends at its first quote: this
		// one, and it is valid unless it holds a control character.
		if s := raw[1 : len(raw)-1]; rawjson.StringStop(s, 0) == len(s) {
			return s
		}
	}
	m, ok := rawjson.AppendUnquote(nil, raw)
	if !ok {
		return nil
	}
	return m
}

// topMembers walks the top-level members of the object body as
// rawjson.EachTopMember does (strings by their quotes and escapes,
// containers by bracket depth, scalars up to a delimiter) and returns the
// raw value of the first "model" member, body[modelAt:modelEnd], and where
// the value of the first "usage" member starts (-1: not met). The walk stops
// at the first member that is not `"key": value` followed by ',', or at the
// usage member once the model was met. ok is false when body does not start
// like an object.
//
// In wasm, each block of a big function costs far more than in a small one
// (the runtime's compiler carries every local across each of Go's many
// blocks), and calls cost tens of instructions: this loop is kept small,
// reads the short strings and scalars of the usual compact layout in place,
// a word at a time, and leaves anything else to stringEnd, containerEnd and
// rawjson.SkipTrusted.
func topMembers(b []byte) (modelAt, modelEnd, usageAt int, ok bool) {
	modelAt, modelEnd, usageAt = -1, -1, -1
	i := 0
	for i < len(b) && isSpace(b[i]) {
		i++
	}
	if i >= len(b) || b[i] != '{' {
		return -1, -1, -1, false
	}
	i++
	for {
		for i < len(b) && isSpace(b[i]) {
			i++
		}
		if i >= len(b) || b[i] != '"' {
			return modelAt, modelEnd, usageAt, true
		}
		// The key, up to its closing quote (or the end of body): one of
		// under eight plain bytes in place.
		key := i
		i = -1
		if key+9 <= len(b) {
			if n := shortString(rawjson.Word(b, key+1)); n > 0 {
				i = key + n
			}
		}
		// which is 1 for "model", 2 for "usage" (first ones only), else 0.
		which := 0
		if i >= 0 {
			if i-key == len(`"model"`) {
				// The key and its quotes are 7 of the 8 bytes at key.
				switch rawjson.Word(b, key) & (1<<56 - 1) {
				case modelKey:
					which = 1
				case usageKey7:
					which = 2
				}
			}
		} else {
			plain := false
			if i, plain = stringEnd(b, key); plain && i-key == len(`"model"`) {
				switch string(b[key+1 : i-1]) {
				case "model":
					which = 1
				case "usage":
					which = 2
				}
			} else if !plain {
				switch {
				case escapedKeyIs(b[key:i], "model"):
					which = 1
				case escapedKeyIs(b[key:i], "usage"):
					which = 2
				}
			}
		}
		if which == 1 && modelAt >= 0 || which == 2 && usageAt >= 0 {
			which = 0
		}
		if i < len(b) && b[i] == ':' {
			i++
		} else {
			for i < len(b) && isSpace(b[i]) {
				i++
			}
			if i >= len(b) || b[i] != ':' {
				return modelAt, modelEnd, usageAt, true
			}
			i++
		}
		for i < len(b) && isSpace(b[i]) {
			i++
		}
		if i >= len(b) {
			return modelAt, modelEnd, usageAt, true // no value
		}
		// The value, skipped as rawjson.SkipTrusted skips it.
		at := i
		if which == 2 {
			usageAt = at
			if modelAt >= 0 {
				return modelAt, modelEnd, usageAt, true
			}
		}
		switch c := b[i]; {
		case c == '"':
			i = -1
			if at+9 <= len(b) {
				if n := shortString(rawjson.Word(b, at+1)); n > 0 {
					i = at + n
				}
			}
			if i < 0 {
				i, _ = stringEnd(b, at)
			}
		case c == '{' || c == '[':
			i = containerEnd(b, at)
		default:
			// A scalar ends at the first delimiter; anything unusual
			// (a long scalar, a quote or bracket right after it) is left
			// to SkipTrusted.
			i = -1
			if at+8 <= len(b) {
				w := rawjson.Word(b, at)
				switch t := bits.TrailingZeros64(rawjson.ScalarStops(w)); byte(w >> (t &^ 7)) {
				case ',', '}', ']', ' ', '\t', '\n', '\r', ':':
					i = at + t>>3
				}
			}
			if i < 0 {
				i = rawjson.SkipTrusted(b, at)
			}
			if i <= at {
				if which == 2 {
					usageAt = -1 // no value: not met
				}
				return modelAt, modelEnd, usageAt, true
			}
		}
		if which == 1 {
			modelAt, modelEnd = at, i
			if usageAt >= 0 {
				return modelAt, modelEnd, usageAt, true
			}
		}
		if i < len(b) && b[i] == ',' {
			i++
			continue
		}
		for i < len(b) && isSpace(b[i]) {
			i++
		}
		if i >= len(b) || b[i] != ',' {
			return modelAt, modelEnd, usageAt, true
		}
		i++
	}
}

// modelKey and usageKey7 are the 7 bytes `"model"` and `"usage"` as
// little-endian words (see rawjson.Word).
const (
	modelKey  = '"' | 'm'<<8 | 'o'<<16 | 'd'<<24 | 'e'<<32 | 'l'<<40 | '"'<<48
	usageKey7 = '"' | 'u'<<8 | 's'<<16 | 'a'<<24 | 'g'<<32 | 'e'<<40 | '"'<<48
)

// shortString reads a string of under eight plain bytes in place: w is the
// word (see rawjson.Word) just after the opening quote, and the result is the
// length of the whole string, quotes included, when w holds its closing quote
// after plain bytes only; else 0. Small enough to be inlined.
func shortString(w uint64) int {
	// t is the bit index of the first stop's high bit (64: none, and then
	// the shifted word is 0).
	if t := bits.TrailingZeros64(rawjson.StringStops(w)); byte(w>>(t&^7)) == '"' {
		return 2 + t>>3
	}
	return 0
}

// stringEnd returns the index just past the closing quote of the JSON string
// that opens at b[i], or len(b) when it does not end; escapes are skipped
// unchecked, as rawjson.SkipTrusted does. plain reports that the string
// holds neither a backslash nor a control character.
func stringEnd(b []byte, i int) (end int, plain bool) {
	plain = true
	i++
	for {
		if i = rawjson.StringStop(b, i); i >= len(b) {
			return len(b), plain
		}
		switch b[i] {
		case '"':
			return i + 1, plain
		case '\\':
			plain = false
			i += 2
		default: // a control byte
			plain = false
			i++
		}
	}
}

// containerEnd returns where rawjson.SkipTrusted ends the array or object
// that opens at b[i]: just past its closing bracket by depth, or len(b).
func containerEnd(b []byte, i int) int {
	depth := 0
	for i+8 <= len(b) {
		// Inside a container only quotes and brackets matter.
		m := rawjson.ValueStops(rawjson.Word(b, i))
		if m == 0 {
			i += 8
			continue
		}
		i += bits.TrailingZeros64(m) >> 3
		c := b[i]
		if c == '"' {
			// A string of under eight plain bytes in place, as in
			// FromResponseBytes.
			end := -1
			if i+9 <= len(b) {
				if n := shortString(rawjson.Word(b, i+1)); n > 0 {
					end = i + n
				}
			}
			if end < 0 {
				end, _ = stringEnd(b, i)
			}
			i = end
			continue
		}
		// A bracket: 0x04 is clear in '[' and '{', set in ']' and '}'.
		depth += 1 - int(c>>1&2)
		i++
		if depth == 0 {
			return i
		}
	}
	// The last bytes, one at a time.
	for i < len(b) {
		switch b[i] {
		case '"':
			i, _ = stringEnd(b, i)
		case '{', '[':
			depth++
			i++
		case '}', ']':
			depth--
			i++
			if depth == 0 {
				return i
			}
		default:
			i++
		}
	}
	return len(b)
}

// isSpace reports JSON insignificant whitespace.
func isSpace(c byte) bool { return c <= ' ' && (c == ' ' || c == '\n' || c == '\r' || c == '\t') }

func isDigit(c byte) bool { return c >= '0' && c <= '9' }

// escapedKeyIs reports whether the raw key (quotes included, holding a
// backslash) is a valid JSON string that decodes to name.
func escapedKeyIs(key []byte, name string) bool {
	end, _, err := rawjson.String(key, 0)
	return err == nil && end == len(key) && rawjson.EqualString(key, true, name)
}

// Which member of a usage object readUsageAt met.
const (
	keyOther = iota
	keyPrompt
	keyCompletion
	keyTotal
	keyCacheHit
	keyPromptDetails
	keyCompletionDetails
	numKeys
)

// name is a member name of 8 to 32 bytes and its bytes as words (see
// rawjson.Word) at offsets 0, o1 = 8, o2 = 16 and o3 = len-8 (the middle
// ones moved back so that they end within the name), for a compare in four
// loads.
type name struct {
	s          string
	o1, o2, o3 int
	w          [4]uint64
}

func newName(s string) name {
	n := name{s: s, o1: min(8, len(s)-8), o2: min(16, len(s)-8), o3: len(s) - 8}
	for k, off := range [4]int{0, n.o1, n.o2, n.o3} {
		n.w[k] = rawjson.Word([]byte(s), off)
	}
	return n
}

// usageNames are the names of the usage members readUsageAt reads, by their
// key constant; cachedTokens and reasoningTokens are the members read in
// the *_details objects.
var (
	usageNames = [numKeys]name{
		keyPrompt:            newName("prompt_tokens"),
		keyCompletion:        newName("completion_tokens"),
		keyTotal:             newName("total_tokens"),
		keyCacheHit:          newName("prompt_cache_hit_tokens"),
		keyPromptDetails:     newName("prompt_tokens_details"),
		keyCompletionDetails: newName("completion_tokens_details"),
	}
	cachedTokens    = newName("cached_tokens")
	reasoningTokens = newName("reasoning_tokens")
)

// maxName bounds the bytes a key of a known name spans, quotes included.
const maxName = 32

// usageMember reads, validating it, the member `"key": value` of a usage
// object that starts at b[i] (the key's opening quote) and returns the index
// just past the value, or -1 when the member is not valid JSON; the key
// constant of its name; and the count its value holds (the count wanted from
// a *_details object), or -1 when none.
//
// The usual names are matched in place (their first word picks the
// candidates), other plain names skipped a word at a time, and a plain count
// of up to seven digits read in place: one small function per member, for
// wasm (see topMembers).
func usageMember(b []byte, i int) (end, key int, n int64) {
	key, end = keyOther, -1
	if s := i + 1; s+8 <= len(b) {
		var nm *name
		switch rawjson.Word(b, s) {
		case usageNames[keyPrompt].w[0]: // "prompt_t"
			nm, key = &usageNames[keyPrompt], keyPrompt
			if q := s + len(nm.s); q < len(b) && b[q] != '"' {
				nm, key = &usageNames[keyPromptDetails], keyPromptDetails
			}
		case usageNames[keyCompletion].w[0]: // "completi"
			nm, key = &usageNames[keyCompletion], keyCompletion
			if q := s + len(nm.s); q < len(b) && b[q] != '"' {
				nm, key = &usageNames[keyCompletionDetails], keyCompletionDetails
			}
		case usageNames[keyTotal].w[0]:
			nm, key = &usageNames[keyTotal], keyTotal
		case usageNames[keyCacheHit].w[0]:
			nm, key = &usageNames[keyCacheHit], keyCacheHit
		}
		if nm != nil {
			if q := s + len(nm.s); q < len(b) && b[q] == '"' && rawjson.Word(b, s+nm.o1) == nm.w[1] &&
				rawjson.Word(b, s+nm.o2) == nm.w[2] && rawjson.Word(b, s+nm.o3) == nm.w[3] {
				end = q + 1
			}
		}
		if end < 0 {
			// Not a usual name: a plain one ends at its first stop.
			key = keyOther
			end = plainEnd(b, s)
		}
	}
	if end < 0 {
		// Escapes, control characters, or the last bytes of b.
		if end, key = memberKey(b, i); end < 0 {
			return -1, keyOther, -1
		}
	}
	i, n = memberValue(b, end, key, 1)
	return i, key, n
}

// plainEnd returns the index just past the closing quote of the string whose
// content starts at b[s] when that content is plain (no escape, no control
// byte); else -1, for the general scan.
func plainEnd(b []byte, s int) int {
	if s = rawjson.StringStop(b, s); s < len(b) && b[s] == '"' {
		return s + 1
	}
	return -1
}

// memberKey reads the key of a usage member, the JSON string that opens at
// b[i], validating it: it returns the index past it and its key constant, or
// end < 0 when it is not a valid JSON string.
func memberKey(b []byte, i int) (end, key int) {
	end, escaped, err := rawjson.String(b, i)
	if err != nil {
		return -1, keyOther
	}
	for k := keyPrompt; k < numKeys; k++ {
		if rawjson.EqualString(b[i:end], escaped, usageNames[k].s) {
			return end, k
		}
	}
	return end, keyOther
}

// memberValue reads, validating it, the `: value` that follows the key of a
// member (of key constant key) at b[i], in an object nested depth deep, and
// returns the index just past the value, or -1 when it is not valid JSON; and
// the count it holds (for a *_details object of usage, the count of the
// member wanted there), or -1.
func memberValue(b []byte, i, key, depth int) (end int, n int64) {
	if i < len(b) && b[i] == ':' {
		i++
	} else {
		for i < len(b) && isSpace(b[i]) {
			i++
		}
		if i >= len(b) || b[i] != ':' {
			return -1, -1
		}
		i++
	}
	for i < len(b) && isSpace(b[i]) {
		i++
	}
	if i >= len(b) {
		return -1, -1
	}
	var err error
	switch c := b[i]; {
	case c == '-' || isDigit(c):
		if end, n = countAt(b, i); key == keyPromptDetails || key == keyCompletionDetails {
			n = -1 // their counts are inside them
		}
		return end, n
	case c == '{' && key == keyPromptDetails:
		return detail(b, i, &cachedTokens)
	case c == '{' && key == keyCompletionDetails:
		return detail(b, i, &reasoningTokens)
	case c == '"':
		i, _, err = rawjson.String(b, i)
	default:
		i, err = rawjson.ValueDepth(b, i, depth)
	}
	if err != nil {
		return -1, -1
	}
	return i, -1
}

// nonDigits returns the high bit of each byte of the little-endian word w
// that is not an ASCII digit; its lowest set bit is exact.
func nonDigits(w uint64) uint64 {
	const ones, highs = 0x0101010101010101, 0x8080808080808080
	// below '0' | above '9' (no carry out of a byte below 0x80; a byte at
	// or above 0x80 is flagged by w itself).
	return ((w-ones*'0')&^w | (w + ones*(0x7f-'9')) | w) & highs
}

// digits returns the value of the n (1 to 8) ASCII digits that start the
// little-endian word w, most significant first, without a loop.
func digits(w uint64, n int) uint64 {
	const ones = 0x0101010101010101
	v := (w - ones*'0') << (8 * (8 - n)) // the digits, behind leading zeros
	v = v*10 + v>>8                      // pairs of digits
	return ((v&0x000000ff000000ff)*(100+1000000<<32) + (v>>16&0x000000ff000000ff)*(1+10000<<32)) >> 32
}

// countAt reads the JSON number that starts at b[i] (a '-' or a digit) and
// returns the index past it, or -1 when it is not a valid JSON number; and its
// value when it is a count (rawjson.Int accepts it and it is not negative),
// else -1. An integer of up to seven digits right before ',' or '}' is read
// in place, a word at a time; anything else by number.
func countAt(b []byte, i int) (end int, n int64) {
	if c := b[i]; c != '-' && i+8 <= len(b) {
		w := rawjson.Word(b, i)
		k := bits.TrailingZeros64(nonDigits(w)) >> 3 // 1 to 8
		if t := byte(w >> (k * 8)); (t == ',' || t == '}') && (c != '0' || k == 1) {
			return i + k, int64(digits(w, k))
		}
	}
	return number(b, i)
}

// readUsage reads a raw usage object, validating it in the same pass: ok is
// false (and u zero) unless raw holds exactly one valid JSON object, which
// starts at raw[0] (trailing whitespace is allowed).
func readUsage(raw []byte) (Usage, bool) {
	i := -1
	var prompt, completion, total, cached, reasoning int64
	if len(raw) > 0 && raw[0] == '{' {
		prompt, completion, total, cached, reasoning, i = readUsageAt(raw, 0)
	}
	for i >= 0 && i < len(raw) && isSpace(raw[i]) {
		i++
	}
	if i != len(raw) {
		return Usage{}, false
	}
	return Usage{PromptTokens: prompt, CompletionTokens: completion, TotalTokens: total,
		CachedTokens: cached, ReasoningTokens: reasoning, Known: true}, true
}

// readUsageAt reads the usage object that opens at b[i] ('{'), validating it
// in the same pass, and returns its counts (as in Usage) and the index just
// past it; end is -1 (and the counts 0) when it is not a valid JSON object. A
// count is the first member of its name that holds a count (a non-negative
// rawjson.Int); in a *_details object only the first member of the wanted
// name is looked at (as rawjson.Lookup does). The counts are scalars, not a
// Usage: see FromResponseBytes.
func readUsageAt(b []byte, i int) (prompt, completion, total, cached, reasoning int64, end int) {
	// The counts read, -1 until then.
	prompt, completion, total, cached, reasoning = -1, -1, -1, -1, -1
	cacheHit := int64(-1)
	i++
	for i < len(b) && isSpace(b[i]) {
		i++
	}
	if i < len(b) && b[i] == '}' {
		i++
	} else {
		for {
			if i >= len(b) || b[i] != '"' {
				return 0, 0, 0, 0, 0, -1
			}
			key := keyOther
			n := int64(-1)
			if i, key, n = usageMember(b, i); i < 0 {
				return 0, 0, 0, 0, 0, -1
			}
			if n >= 0 {
				// The first count of each name.
				switch key {
				case keyPrompt:
					if prompt < 0 {
						prompt = n
					}
				case keyCompletion:
					if completion < 0 {
						completion = n
					}
				case keyTotal:
					if total < 0 {
						total = n
					}
				case keyCacheHit:
					if cacheHit < 0 {
						cacheHit = n
					}
				case keyPromptDetails:
					if cached < 0 {
						cached = n
					}
				case keyCompletionDetails:
					if reasoning < 0 {
						reasoning = n
					}
				}
			}
			more := false
			if i, more = afterMember(b, i); i < 0 {
				return 0, 0, 0, 0, 0, -1
			}
			if !more {
				break
			}
		}
	}
	// DeepSeek's cache hits stand for the OpenAI cached tokens when there
	// were none; the total is the sum when it was missing.
	if cached < 0 {
		cached = max(cacheHit, 0)
	}
	if total < 0 {
		total = 0
		if prompt >= 0 && completion >= 0 {
			total = prompt + completion // wraps, as ever, on absurd counts
		}
	}
	return max(prompt, 0), max(completion, 0), total, cached, max(reasoning, 0), i
}

// detail validates the object that opens at b[i] (a *_details member of a
// usage object, so two levels deep) and returns the index just past it, or -1
// when it is not valid JSON; and the count held by its first member named
// want, or -1 when that member is missing or holds no count.
func detail(b []byte, i int, want *name) (end int, n int64) {
	n = -1
	found := false
	i++
	for i < len(b) && isSpace(b[i]) {
		i++
	}
	if i < len(b) && b[i] == '}' {
		return i + 1, n
	}
	for {
		if i >= len(b) || b[i] != '"' {
			return -1, -1
		}
		match := false
		v := int64(-1)
		if i, match, v = detailMember(b, i, want); i < 0 {
			return -1, -1
		}
		if match && !found {
			found, n = true, v
		}
		more := false
		if i, more = afterMember(b, i); i < 0 {
			return -1, -1
		}
		if !more {
			return i, n
		}
	}
}

// afterMember reads what follows an object member's value at b[i]: past a
// ',' and the whitespace after it, more is true; past the closing '}', it is
// false; next is -1 on anything else.
func afterMember(b []byte, i int) (next int, more bool) {
	for i < len(b) && isSpace(b[i]) {
		i++
	}
	if i < len(b) {
		switch b[i] {
		case ',':
			i++
			for i < len(b) && isSpace(b[i]) {
				i++
			}
			return i, true
		case '}':
			return i + 1, false
		}
	}
	return -1, false
}

// detailMember is usageMember for the members of a *_details object: match
// reports that the key is want.
func detailMember(b []byte, i int, want *name) (end int, match bool, n int64) {
	end = -1
	if s := i + 1; s+8 <= len(b) {
		if q := s + len(want.s); q < len(b) && b[q] == '"' && rawjson.Word(b, s) == want.w[0] &&
			rawjson.Word(b, s+want.o1) == want.w[1] && rawjson.Word(b, s+want.o2) == want.w[2] && rawjson.Word(b, s+want.o3) == want.w[3] {
			end, match = q+1, true
		} else {
			end = plainEnd(b, s)
		}
	}
	if end < 0 {
		var escaped bool
		var err error
		if end, escaped, err = rawjson.String(b, i); err != nil {
			return -1, false, -1
		}
		match = rawjson.EqualString(b[i:end], escaped, want.s)
	}
	end, n = memberValue(b, end, keyOther, 2)
	return end, match, n
}

// number reads the JSON number at b[i] (a '-' or a digit) and returns the
// index just past it, or -1 when it is not a valid JSON number; and its value
// when it is a count (rawjson.Int accepts it and it is not negative), else -1.
func number(b []byte, i int) (end int, n int64) {
	neg := b[i] == '-'
	if neg {
		i++
	}
	if i >= len(b) || !isDigit(b[i]) {
		return -1, -1
	}
	// u is the integer part while it fits in an int64.
	var u uint64
	count := true
	if b[i] == '0' {
		i++
	} else {
		const cut = (1<<63 - 1) / 10 // u*10 + d fits unless u > cut, or u == cut and d > 7
		for i < len(b) && isDigit(b[i]) {
			d := uint64(b[i] - '0')
			if u > cut || u == cut && d > 7 {
				count = false
			} else {
				u = u*10 + d
			}
			i++
		}
	}
	if i < len(b) && b[i] == '.' {
		i++
		if i >= len(b) || !isDigit(b[i]) {
			return -1, -1
		}
		for i < len(b) && isDigit(b[i]) {
			if b[i] != '0' {
				count = false
			}
			i++
		}
	}
	if i < len(b) && (b[i] == 'e' || b[i] == 'E') {
		count = false
		i++
		if i < len(b) && (b[i] == '+' || b[i] == '-') {
			i++
		}
		if i >= len(b) || !isDigit(b[i]) {
			return -1, -1
		}
		for i < len(b) && isDigit(b[i]) {
			i++
		}
	}
	if !count || neg && u != 0 {
		return i, -1
	}
	return i, int64(u)
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
	if u, ok := readUsage(rawUsage); ok {
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
