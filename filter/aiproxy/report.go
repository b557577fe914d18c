package aiproxy

import (
	"strconv"
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
	requests, prompt, completion, cached, reasoning proxywasm.Metric
}

// metrics are a plugin's metric ids, defined once per name.
type metrics struct {
	provider string
	ttft     proxywasm.Metric
	ttftOK   bool
	byModel  map[string]*modelMetrics
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
	if mm, ok := m.byModel[model]; ok {
		return mm
	}
	if len(m.byModel) >= maxModelLabels {
		model = otherModel
		if mm, ok := m.byModel[model]; ok {
			return mm
		}
	}
	labels := `{provider="` + m.provider + `",model="` + labelValue(model) + `"}`
	mm := &modelMetrics{}
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
	model string        // the model the LLM reported, if any
	ttft  time.Duration // time to the first token; 0 = unknown
}

// report publishes the answer's accounting once per stream.
func (s *Stream) report(a answer) {
	if s.reported {
		return
	}
	s.reported = true
	p := s.plugin
	model := a.model
	if model == "" {
		model = s.info.Model
	}
	setProp("llm_provider", string(p.cfg.Provider))
	setProp("request_llm_model", s.info.RequestedModel)
	if model != "" {
		setProp("llm_model", model)
	}
	if a.ttft > 0 {
		ms := a.ttft.Milliseconds()
		setProp("llm_time_to_first_token", strconv.FormatInt(ms, 10))
		if p.metrics.ttftOK {
			_ = p.metrics.ttft.Record(uint64(ms))
		}
	}
	u := a.usage
	if u.Known {
		setProp("llm_prompt_tokens", strconv.FormatInt(u.PromptTokens, 10))
		setProp("llm_completion_tokens", strconv.FormatInt(u.CompletionTokens, 10))
		setProp("llm_total_tokens", strconv.FormatInt(u.TotalTokens, 10))
		if u.CachedTokens > 0 {
			setProp("llm_cached_tokens", strconv.FormatInt(u.CachedTokens, 10))
		}
		if u.ReasoningTokens > 0 {
			setProp("llm_reasoning_tokens", strconv.FormatInt(u.ReasoningTokens, 10))
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

func setProp(name, value string) {
	_ = proxywasm.SetProperty([]byte(name), []byte(value))
}
