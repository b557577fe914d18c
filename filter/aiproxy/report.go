package aiproxy

import (
	"strings"
	"time"

	"ai-proxy/filter/proxywasm"
	"ai-proxy/filter/proxywasm/abi"
	"ai-proxy/filter/usage"
)

// Token accounting: what an answer cost, exposed as stream properties (for
// access logs, named like APISIX's variables) and as metrics by provider and
// model.

// maxModelLabels bounds the distinct model label values a plugin defines
// metrics for: clients choose model names when the configuration does not,
// and every name would otherwise become new series on the host for good.
const maxModelLabels = 64

// otherModel is the label of models past maxModelLabels.
const otherModel = "other"

// modelMetrics are the counters of one (provider, model) pair.
type modelMetrics struct {
	model                                           string // the label value
	requests, prompt, completion, cached, reasoning proxywasm.Metric
}

// metrics are a plugin's metric ids, defined once per name.
type metrics struct {
	provider string
	ttft     proxywasm.Metric
	ttftOK   bool
	byModel  map[string]*modelMetrics
	// last is the counters forModel returned last: a route mostly
	// serves one model, and hashing a string costs far more in wasm than
	// comparing it.
	last *modelMetrics
}

func (m *metrics) init(provider string) {
	m.provider = provider
	m.byModel = map[string]*modelMetrics{}
	id, err := proxywasm.DefineMetric(abi.MetricHistogram, `ai_proxy_time_to_first_token_ms{provider="`+provider+`"}`)
	if err == nil {
		m.ttft, m.ttftOK = id, true
	} else {
		proxywasm.LogWarn("ai-proxy: cannot define metrics: " + err.Error())
	}
}

// forModel returns the counters of model, defining them on first use.
func (m *metrics) forModel(model string) *modelMetrics {
	if m.last != nil && m.last.model == model {
		return m.last
	}
	if mm, ok := m.byModel[model]; ok {
		m.last = mm
		return mm
	}
	if len(m.byModel) >= maxModelLabels {
		model = otherModel
		if mm, ok := m.byModel[model]; ok {
			return mm
		}
	}
	// model may alias memory the stream does not own (see finishRouteJSON):
	// the map keeps a copy.
	model = strings.Clone(model)
	labels := `{provider="` + m.provider + `",model="` + labelValue(model) + `"}`
	mm := &modelMetrics{model: model}
	for _, d := range []struct {
		dst  *proxywasm.Metric
		name string
	}{
		{&mm.requests, "ai_proxy_requests_total"},
		{&mm.prompt, "ai_proxy_prompt_tokens_total"},
		{&mm.completion, "ai_proxy_completion_tokens_total"},
		{&mm.cached, "ai_proxy_cached_tokens_total"},
		{&mm.reasoning, "ai_proxy_reasoning_tokens_total"},
	} {
		id, err := proxywasm.DefineMetric(abi.MetricCounter, d.name+labels)
		if err != nil {
			proxywasm.LogWarn("ai-proxy: cannot define metric " + d.name + ": " + err.Error())
		}
		*d.dst = id
	}
	m.byModel[model] = mm
	m.last = mm
	return mm
}

// labelValue makes s safe inside a quoted Prometheus label value.
func labelValue(s string) string {
	if len(s) > 128 {
		s = s[:128]
	}
	if !strings.ContainsAny(s, "\"\\\n") {
		return s
	}
	r := strings.NewReplacer(`\`, `\\`, `"`, `\"`, "\n", `\n`)
	return r.Replace(s)
}

// answer is what a stream learned about the LLM's answer.
type answer struct {
	usage usage.Usage
	model string        // the model the LLM reported, if any; valid during report only
	ttft  time.Duration // time to the first token; 0 = unknown
}

// Property names, as the host sees them (single-segment paths).
var (
	propProvider       = []byte("llm_provider")
	propRequestedModel = []byte("request_llm_model")
	propModel          = []byte("llm_model")
	propTTFT           = []byte("llm_time_to_first_token")
	propPrompt         = []byte("llm_prompt_tokens")
	propCompletion     = []byte("llm_completion_tokens")
	propTotal          = []byte("llm_total_tokens")
	propCached         = []byte("llm_cached_tokens")
	propReasoning      = []byte("llm_reasoning_tokens")
)

// report publishes the answer's accounting once per stream.
func (s *Stream) report(a *answer) {
	if s.reported {
		return
	}
	s.reported = true
	p := s.plugin
	model := a.model
	if model == "" {
		model = s.info.Model
	}
	setProp(propProvider, string(p.cfg.Provider))
	if s.info.RequestedModel != "" {
		setProp(propRequestedModel, s.info.RequestedModel)
	}
	if model != "" {
		setProp(propModel, model)
	}
	if a.ttft > 0 {
		ms := a.ttft.Milliseconds()
		setPropInt(propTTFT, ms)
		if p.metrics.ttftOK {
			_ = p.metrics.ttft.Record(uint64(ms))
		}
	}
	u := &a.usage
	if u.Known {
		setPropInt(propPrompt, u.PromptTokens)
		setPropInt(propCompletion, u.CompletionTokens)
		setPropInt(propTotal, u.TotalTokens)
		if u.CachedTokens > 0 {
			setPropInt(propCached, u.CachedTokens)
		}
		if u.ReasoningTokens > 0 {
			setPropInt(propReasoning, u.ReasoningTokens)
		}
	}
	mm := p.metrics.forModel(model)
	_ = mm.requests.Increment(1)
	if u.Known {
		_ = mm.prompt.Increment(u.PromptTokens)
		_ = mm.completion.Increment(u.CompletionTokens)
		if u.CachedTokens > 0 {
			_ = mm.cached.Increment(u.CachedTokens)
		}
		if u.ReasoningTokens > 0 {
			_ = mm.reasoning.Increment(u.ReasoningTokens)
		}
	}
}

func setProp(name []byte, value string) { _ = proxywasm.SetPropertyString(name, value) }

// numScratch formats numbers for properties without allocating: 19 digits
// and a sign.
var numScratch [20]byte

// setPropInt sets property name to v in decimal.
func setPropInt(name []byte, v int64) { _ = proxywasm.SetProperty(name, formatInt(v)) }

// formatInt writes v in decimal at the end of numScratch and returns those
// bytes (strconv's layers of calls cost more in wasm than this loop for the
// short numbers reported here).
func formatInt(v int64) []byte {
	u := uint64(v)
	if v < 0 {
		u = -u
	}
	i := len(numScratch)
	for {
		i--
		numScratch[i] = byte('0' + u%10)
		u /= 10
		if u == 0 {
			break
		}
	}
	if v < 0 {
		i--
		numScratch[i] = '-'
	}
	return numScratch[i:]
}
