package usage

import (
	"bytes"

	"ai-proxy/filter/rawjson"
)

// The reference implementation: FromResponse and the usage parser as they were
// before the single-pass rewrite, kept verbatim as the oracle of the
// differential tests (FuzzFromResponseDiff, TestParseUsageMatchesRef).

// refFromResponse is the former FromResponse.
func refFromResponse(body []byte) (u Usage, model string, ok bool) {
	var rawModel, rawUsage []byte
	if !rawjson.EachTopMember(body, func(key, value []byte) bool {
		switch {
		case rawModel == nil && refKeyIs(key, "model"):
			rawModel = value
		case rawUsage == nil && refKeyIs(key, "usage"):
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
		u, _ = refParse(rawUsage)
	}
	return u, model, true
}

// refKeyIs is the former keyIs.
func refKeyIs(key []byte, name string) bool {
	if len(key) < 2 {
		return false
	}
	if bytes.IndexByte(key, '\\') < 0 {
		return string(key[1:len(key)-1]) == name
	}
	k, ok := rawjson.Unquote(key)
	return ok && k == name
}

// refParse is the former parse: raw has already been validated.
func refParse(raw []byte) (u Usage, ok bool) {
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
			u.PromptTokens, seenPrompt = refCount(m.Value, u.PromptTokens, seenPrompt)
		case is("completion_tokens"):
			u.CompletionTokens, seenCompletion = refCount(m.Value, u.CompletionTokens, seenCompletion)
		case is("total_tokens"):
			u.TotalTokens, seenTotal = refCount(m.Value, u.TotalTokens, seenTotal)
		case is("prompt_cache_hit_tokens"):
			cacheHit, seenHit = refCount(m.Value, cacheHit, seenHit)
		case is("prompt_tokens_details"):
			if v, found := rawjson.Lookup(m.Value, "cached_tokens"); found {
				u.CachedTokens, seenCached = refCount(v, u.CachedTokens, seenCached)
			}
		case is("completion_tokens_details"):
			if v, found := rawjson.Lookup(m.Value, "reasoning_tokens"); found {
				u.ReasoningTokens, seenReasoning = refCount(v, u.ReasoningTokens, seenReasoning)
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

// refCount is the former count.
func refCount(raw []byte, cur int64, seen bool) (int64, bool) {
	if seen {
		return cur, true
	}
	if n, ok := rawjson.Int(raw); ok && n >= 0 {
		return n, true
	}
	return cur, false
}
