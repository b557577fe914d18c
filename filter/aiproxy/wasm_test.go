package aiproxy_test

// These tests run the real build/ai-proxy.wasm in the wazero harness. They
// need `make build` (the Makefile's test target does it first).

import (
	"context"
	"encoding/json"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"ai-proxy/filter/proxywasm/abi"
	"ai-proxy/harness"
	"ai-proxy/harness/testutil"
)

var (
	moduleOnce sync.Once
	module     *harness.Module
	moduleErr  error
)

func loadModule(tb testing.TB) *harness.Module {
	tb.Helper()
	moduleOnce.Do(func() {
		wasm, err := testutil.ReadArtifact(testutil.WasmFile)
		if err != nil {
			moduleErr = err
			return
		}
		module, moduleErr = harness.Compile(context.Background(), wasm)
	})
	if moduleErr != nil {
		tb.Fatalf("loading build/ai-proxy.wasm (run make build first): %v", moduleErr)
	}
	return module
}

func newPlugin(tb testing.TB, profile harness.Profile, conf string) (*harness.VM, *harness.Plugin) {
	tb.Helper()
	vm, err := loadModule(tb).NewVM(context.Background(), harness.Env{Profile: profile})
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { vm.Close(context.Background()) })
	p, err := vm.StartPlugin(harness.PluginConfig{Name: "ai-proxy", Configuration: []byte(conf)})
	if err != nil {
		tb.Fatalf("StartPlugin: %v", err)
	}
	return vm, p
}

const seedConf = `{
  "auth": {"header": {"Authorization": "Bearer sk-test"}},
  "model": {"provider": "openai", "name": "gpt-4", "options": {"max_tokens": 512, "temperature": 1.0}},
  "passthrough": false
}`

const chatBody = `{"messages":[{"role":"system","content":"You are a mathematician"},{"role":"user","content":"What is 1+1?"}]}`

func requestHeaders(extra ...abi.Header) []abi.Header {
	hs := []abi.Header{
		{":method", "POST"}, {":path", "/anything"}, {":authority", "api.openai.com:443"}, {":scheme", "http"},
		{"content-type", "application/json"}, {"user-agent", "curl/8.6.0"},
	}
	return append(hs, extra...)
}

// sendRequest feeds headers and a one-chunk body; it returns the stream.
func sendRequest(t *testing.T, p *harness.Plugin, hs []abi.Header, body string) *harness.Stream {
	t.Helper()
	s := p.NewStream()
	a := s.SendRequestHeaders(hs, body == "")
	if body != "" && a != abi.ActionContinue {
		t.Fatalf("request headers: action %v, want continue", a)
	}
	if body != "" {
		if a := s.SendRequestBody([]byte(body), true); a != abi.ActionPause {
			t.Fatalf("request body: action %v, want pause", a)
		}
	}
	return s
}

func onlyCall(t *testing.T, vm *harness.VM) harness.HTTPCall {
	t.Helper()
	calls := vm.PendingCalls()
	if len(calls) != 1 {
		t.Fatalf("pending calls = %d, want 1", len(calls))
	}
	return calls[0]
}

func TestCalloutShapesRequestAndRelaysAnswer(t *testing.T) {
	vm, p := newPlugin(t, harness.ProfileEnvoy, seedConf)
	s := sendRequest(t, p, requestHeaders(
		abi.Header{"authorization", "Bearer client-secret"},
		abi.Header{"cookie", "session=1"},
		abi.Header{"x-request-id", "req-1"},
		abi.Header{"accept-encoding", "gzip"},
	), chatBody)
	defer s.Done()

	call := onlyCall(t, vm)
	if call.Upstream != "api.openai.com:443" {
		t.Errorf("upstream = %q", call.Upstream)
	}
	want := map[string]string{
		":method": "POST", ":path": "/v1/chat/completions", ":authority": "api.openai.com",
		"authorization": "Bearer sk-test", "content-type": "application/json",
		"x-request-id": "req-1", "user-agent": "curl/8.6.0",
	}
	for k, v := range want {
		if got := call.Header(k); got != v {
			t.Errorf("call header %s = %q, want %q", k, got, v)
		}
	}
	for _, h := range call.Headers {
		switch h[0] {
		case "cookie", "accept-encoding":
			t.Errorf("client header %s forwarded to the LLM", h[0])
		case "authorization":
			if h[1] != "Bearer sk-test" {
				t.Errorf("client authorization forwarded: %q", h[1])
			}
		}
	}
	if call.Timeout != 30*time.Second {
		t.Errorf("timeout = %v", call.Timeout)
	}
	var got map[string]any
	if err := json.Unmarshal(call.Body, &got); err != nil {
		t.Fatalf("call body: %v: %s", err, call.Body)
	}
	if got["model"] != "gpt-4" || got["max_tokens"] != 512.0 || got["temperature"] != 1.0 {
		t.Errorf("call body = %s", call.Body)
	}
	if !strings.Contains(string(call.Body), `"messages":[{"role":"system","content":"You are a mathematician"},{"role":"user","content":"What is 1+1?"}]`) {
		t.Errorf("messages not byte-identical: %s", call.Body)
	}

	answer := `{"id":"chatcmpl-1","object":"chat.completion","model":"gpt-4-0613","choices":[{"index":0,"message":{"role":"assistant","content":"1+1 equals 2."},"finish_reason":"stop"}],"usage":{"prompt_tokens":23,"completion_tokens":7,"total_tokens":30}}`
	err := vm.RespondCall(call.ID, &harness.CallResponse{
		Headers: []abi.Header{{":status", "200"}, {"content-type", "application/json"}, {"x-request-id", "llm-9"}, {"set-cookie", "x=1"}, {"x-ratelimit-remaining-tokens", "99"}},
		Body:    []byte(answer),
	})
	if err != nil {
		t.Fatal(err)
	}
	lr := s.LocalResponse()
	if lr == nil {
		t.Fatal("no local response")
	}
	if lr.Status != 200 || string(lr.Body) != answer {
		t.Errorf("local response %d %s", lr.Status, lr.Body)
	}
	if harness.HeaderValue(lr.Headers, "content-type") != "application/json" ||
		harness.HeaderValue(lr.Headers, "x-ratelimit-remaining-tokens") != "99" ||
		harness.HeaderValue(lr.Headers, "x-request-id") != "llm-9" {
		t.Errorf("relayed headers = %v", lr.Headers)
	}
	if harness.HeaderValue(lr.Headers, "set-cookie") != "" {
		t.Errorf("set-cookie relayed: %v", lr.Headers)
	}
}

func TestPassthroughReplacesBodyAndContinues(t *testing.T) {
	vm, p := newPlugin(t, harness.ProfileEnvoy, `{"auth":{"header":{"Authorization":"Bearer sk-test"}},"model":{"provider":"openai","name":"gpt-4"},"passthrough":true}`)
	s := sendRequest(t, p, requestHeaders(abi.Header{"content-length", "104"}), chatBody)
	defer s.Done()
	call := onlyCall(t, vm)
	answer := `{"id":"x","choices":[{"message":{"content":"2"}}]}`
	if err := vm.RespondCall(call.ID, &harness.CallResponse{Headers: []abi.Header{{":status", "200"}, {"content-type", "application/json"}}, Body: []byte(answer)}); err != nil {
		t.Fatal(err)
	}
	if lr := s.LocalResponse(); lr != nil {
		t.Fatalf("unexpected local response %d %s", lr.Status, lr.Body)
	}
	if !s.Resumed(abi.StreamHTTPRequest) {
		t.Fatal("request not resumed")
	}
	if got := string(s.RequestBody()); got != answer {
		t.Errorf("request body = %s", got)
	}
	hs := s.RequestHeaders()
	if harness.HeaderValue(hs, "content-length") != "" || harness.HeaderValue(hs, "content-type") != "application/json" {
		t.Errorf("headers = %v (content-length must be dropped: the body changes)", hs)
	}
	if harness.HeaderValue(hs, "authorization") != "" {
		t.Errorf("LLM credential reached the upstream request: %v", hs)
	}
}

func TestErrorsAreOpenAIShaped(t *testing.T) {
	cases := []struct {
		name    string
		headers []abi.Header
		body    string
		status  int
		code    string
	}{
		{"text content type", []abi.Header{{":method", "POST"}, {":path", "/"}, {":authority", "x"}, {"content-type", "text/plain"}}, "hi", 400, "invalid_content_type"},
		{"empty body", requestHeaders(), "", 400, "empty_body"},
		{"malformed json", requestHeaders(), `{"messages":`, 400, "invalid_json"},
		{"array body", requestHeaders(), `[1,2]`, 400, "body_not_object"},
		{"declared too large", requestHeaders(abi.Header{"content-length", "999999999999"}), "", 413, "body_too_large"},
	}
	vm, p := newPlugin(t, harness.ProfileEnvoy, seedConf)
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			s := p.NewStream()
			defer s.Done()
			s.SendRequestHeaders(tc.headers, tc.body == "")
			if s.LocalResponse() == nil && tc.body != "" {
				s.SendRequestBody([]byte(tc.body), true)
			}
			lr := s.LocalResponse()
			if lr == nil {
				t.Fatal("no local response")
			}
			if lr.Status != tc.status {
				t.Errorf("status = %d, want %d", lr.Status, tc.status)
			}
			var e struct {
				Error struct{ Message, Type, Code string }
			}
			if err := json.Unmarshal(lr.Body, &e); err != nil || e.Error.Code != tc.code || e.Error.Message == "" || e.Error.Type == "" {
				t.Errorf("body = %s (err %v), want code %s", lr.Body, err, tc.code)
			}
		})
	}
	if n := len(vm.PendingCalls()); n != 0 {
		t.Errorf("%d calls made for bad requests", n)
	}
}

func TestFailedCallIs502AndTimeoutIs504(t *testing.T) {
	vm, p := newPlugin(t, harness.ProfileEnvoy, `{"provider":"openai","auth":{"header":{"Authorization":"Bearer k"}},"options":{"model":"gpt-4"},"timeout":200}`)
	s := sendRequest(t, p, requestHeaders(), chatBody)
	if err := vm.RespondCall(onlyCall(t, vm).ID, nil); err != nil {
		t.Fatal(err)
	}
	if lr := s.LocalResponse(); lr == nil || lr.Status != 502 || !strings.Contains(string(lr.Body), "llm_unreachable") {
		t.Fatalf("immediate failure: %+v", lr)
	}
	s.Done()

	s = sendRequest(t, p, requestHeaders(), chatBody)
	call := onlyCall(t, vm)
	if call.Timeout != 200*time.Millisecond {
		t.Errorf("timeout = %v", call.Timeout)
	}
	time.Sleep(210 * time.Millisecond)
	if err := vm.RespondCall(call.ID, nil); err != nil {
		t.Fatal(err)
	}
	if lr := s.LocalResponse(); lr == nil || lr.Status != 504 || !strings.Contains(string(lr.Body), "llm_timeout") {
		t.Fatalf("timed out call: %+v", lr)
	}
	s.Done()
}

func TestRejectedConfigurationNamesTheField(t *testing.T) {
	vm, err := loadModule(t).NewVM(context.Background(), harness.Env{})
	if err != nil {
		t.Fatal(err)
	}
	defer vm.Close(context.Background())
	_, err = vm.StartPlugin(harness.PluginConfig{Configuration: []byte(`{"model":{"provider":"nope","name":"x"},"auth":{"header":{"Authorization":"Bearer sk-secret-value"}}}`)})
	if err == nil || !strings.Contains(err.Error(), "provider") {
		t.Fatalf("err = %v, want a rejection naming provider", err)
	}
	if strings.Contains(err.Error(), "sk-secret-value") {
		t.Fatalf("secret in error: %v", err)
	}
}

// Under a host whose WASI lacks poll_oneoff and sched_yield (old V8 Envoy,
// nginx hosts), thousands of requests, enough for many garbage collections,
// still work.
func TestStrictWASIHostServesManyRequests(t *testing.T) {
	vm, p := newPlugin(t, harness.ProfileStrictWASI, seedConf)
	answer := &harness.CallResponse{Headers: []abi.Header{{":status", "200"}, {"content-type", "application/json"}}, Body: []byte(`{"choices":[]}`)}
	big := strings.Repeat("x", 32<<10)
	for i := 0; i < 3000; i++ {
		s := sendRequest(t, p, requestHeaders(), `{"messages":[{"role":"user","content":"`+big+`"}]}`)
		if err := vm.RespondCall(onlyCall(t, vm).ID, answer); err != nil {
			t.Fatal(err)
		}
		if lr := s.LocalResponse(); lr == nil || lr.Status != 200 {
			t.Fatalf("request %d: %+v (broken=%v, logs %v)", i, lr, vm.Broken(), vm.Logs())
		}
		s.Done()
	}
	if vm.Broken() || vm.LiveStreams() != 0 {
		t.Fatalf("broken=%v live=%d", vm.Broken(), vm.LiveStreams())
	}
}

// The seed's first example under the APISIX host profile: the body is
// delivered because the filter asks for it, and the call goes to host:port.
func TestAPISIXProfileSeedExample(t *testing.T) {
	vm, p := newPlugin(t, harness.ProfileAPISIX, seedConf)
	s := p.NewStream()
	defer s.Done()
	if a := s.SendRequestHeaders(requestHeaders(), false); a != abi.ActionContinue {
		t.Fatalf("headers: %v", a)
	}
	s.SendRequestBody([]byte(chatBody), true)
	call := onlyCall(t, vm)
	if call.Upstream != "api.openai.com:443" || call.Header(":scheme") != "https" {
		t.Fatalf("call to %q scheme %q", call.Upstream, call.Header(":scheme"))
	}
	if err := vm.RespondCall(call.ID, &harness.CallResponse{Headers: []abi.Header{{":status", "200"}, {"content-type", "application/json"}}, Body: []byte(`{"id":"a"}`)}); err != nil {
		t.Fatal(err)
	}
	if lr := s.LocalResponse(); lr == nil || lr.Status != 200 || string(lr.Body) != `{"id":"a"}` {
		t.Fatalf("local response %+v", lr)
	}
}

// APISIX's host cannot replace bodies: configurations that need it are refused
// at load with the reason, instead of failing on every request.
func TestAPISIXRefusesBodyReplacingConfigurations(t *testing.T) {
	for _, conf := range []string{
		`{"model":{"provider":"openai","name":"gpt-4"},"passthrough":true}`,
		`{"provider":"openai","options":{"model":"gpt-4"},"forward":"route"}`,
	} {
		vm, err := loadModule(t).NewVM(context.Background(), harness.Env{Profile: harness.ProfileAPISIX})
		if err != nil {
			t.Fatal(err)
		}
		_, err = vm.StartPlugin(harness.PluginConfig{Configuration: []byte(conf)})
		vm.Close(context.Background())
		if err == nil || !strings.Contains(err.Error(), "cannot") || !strings.Contains(err.Error(), "APISIX") {
			t.Errorf("%s: err = %v, want a refusal that says why", conf, err)
		}
		// The same configuration loads on an Envoy-like host.
		newPlugin(t, harness.ProfileEnvoy, conf)
	}
}

const routeConf = `{"provider":"openai","auth":{"header":{"Authorization":"Bearer sk-route"}},"options":{"model":"gpt-4o","temperature":0.5},"forward":"route"}`

// Route mode rewrites the request in place, passes the SSE answer through
// unchanged chunk by chunk, and accounts for its usage.
func TestRouteModeStreamsAndAccounts(t *testing.T) {
	vm, p := newPlugin(t, harness.ProfileEnvoy, routeConf)
	s := p.NewStream()
	defer s.Done()
	hs := requestHeaders(
		abi.Header{"authorization", "Bearer client-secret"},
		abi.Header{"accept-encoding", "gzip"},
		abi.Header{"content-length", "95"},
		abi.Header{"x-request-id", "r-1"},
	)
	if a := s.SendRequestHeaders(hs, false); a != abi.ActionContinue {
		t.Fatalf("headers: %v", a)
	}
	body := `{"model":"client-model","stream":true,"messages":[{"role":"user","content":"hi"}]}`
	if a := s.SendRequestBody([]byte(body), true); a != abi.ActionContinue {
		t.Fatalf("body: %v (local %+v)", a, s.LocalResponse())
	}
	got := s.RequestHeaders()
	want := map[string]string{
		":path": "/v1/chat/completions", ":authority": "api.openai.com", "authorization": "Bearer sk-route",
		"accept-encoding": "", "content-length": "", "x-request-id": "r-1",
	}
	for k, v := range want {
		if harness.HeaderValue(got, k) != v {
			t.Errorf("request header %s = %q, want %q", k, harness.HeaderValue(got, k), v)
		}
	}
	var shaped map[string]any
	if err := json.Unmarshal(s.TakeRequestBody(), &shaped); err != nil {
		t.Fatal(err)
	}
	if shaped["model"] != "gpt-4o" || shaped["temperature"] != 0.5 || shaped["stream_options"].(map[string]any)["include_usage"] != true {
		t.Errorf("shaped body = %v", shaped)
	}
	if len(vm.PendingCalls()) != 0 {
		t.Fatal("route mode made a call-out")
	}

	if a := s.SendResponseHeaders([]abi.Header{{":status", "200"}, {"content-type", "text/event-stream"}}, false); a != abi.ActionContinue {
		t.Fatalf("response headers: %v", a)
	}
	chunks := []string{
		"data: {\"id\":\"c\",\"model\":\"gpt-4o-2024\",\"choices\":[{\"delta\":{\"role\":\"assistant\"}}]}\n\n",
		"data: {\"id\":\"c\",\"model\":\"gpt-4o-2024\",\"choices\":[{\"delta\":{\"content\":\"Hel",
		"lo\"}}]}\n\ndata: {\"id\":\"c\",\"choices\":[],\"usage\":{\"prompt_tokens\":11,\"completion_tokens\":3,\"total_tokens\":14,\"prompt_tokens_details\":{\"cached_tokens\":2}}}\n\n",
		"data: [DONE]\n\n",
	}
	for i, c := range chunks {
		if a := s.SendResponseBody([]byte(c), i == len(chunks)-1); a != abi.ActionContinue {
			t.Fatalf("chunk %d: %v", i, a)
		}
		if out := string(s.TakeResponseBody()); out != c {
			t.Fatalf("chunk %d changed: %q", i, out)
		}
	}
	props := s.Properties()
	for k, v := range map[string]string{
		"llm_prompt_tokens": "11", "llm_completion_tokens": "3", "llm_total_tokens": "14", "llm_cached_tokens": "2",
		"llm_model": "gpt-4o-2024", "request_llm_model": "client-model", "llm_provider": "openai",
	} {
		if string(props[k]) != v {
			t.Errorf("property %s = %q, want %q", k, props[k], v)
		}
	}
	if _, ok := props["llm_time_to_first_token"]; !ok {
		t.Error("no llm_time_to_first_token")
	}
	m := vm.Metrics()
	for name, want := range map[string]int64{
		`ai_proxy_requests_total{provider="openai",model="gpt-4o-2024"}`:          1,
		`ai_proxy_prompt_tokens_total{provider="openai",model="gpt-4o-2024"}`:     11,
		`ai_proxy_completion_tokens_total{provider="openai",model="gpt-4o-2024"}`: 3,
		`ai_proxy_time_to_first_token_ms{provider="openai"}`:                      1,
	} {
		if v, ok := m.Value(name); !ok || v != want {
			t.Errorf("metric %s = %d (%v), want %d", name, v, ok, want)
		}
	}
}

// Callout answers are accounted too, streamed and not, and the model label
// space is bounded whatever model names clients send.
func TestCalloutUsageAndBoundedModelLabels(t *testing.T) {
	vm, p := newPlugin(t, harness.ProfileEnvoy, `{"provider":"openai-compatible","override":{"endpoint":"http://127.0.0.1:8080/v1/chat/completions"}}`)
	for i := 0; i < maxModels+10; i++ {
		model := "m" + strconv.Itoa(i)
		s := sendRequest(t, p, requestHeaders(), `{"model":"`+model+`","messages":[]}`)
		answer := `{"model":"` + model + `","choices":[],"usage":{"prompt_tokens":5,"completion_tokens":7,"total_tokens":12}}`
		if err := vm.RespondCall(onlyCall(t, vm).ID, &harness.CallResponse{Headers: []abi.Header{{":status", "200"}, {"content-type", "application/json"}}, Body: []byte(answer)}); err != nil {
			t.Fatal(err)
		}
		if string(s.Properties()["llm_completion_tokens"]) != "7" || string(s.Properties()["request_llm_model"]) != model {
			t.Fatalf("properties %v", s.Properties())
		}
		s.Done()
	}
	m := vm.Metrics()
	if v, _ := m.Value(`ai_proxy_prompt_tokens_total{provider="openai-compatible",model="m0"}`); v != 5 {
		t.Errorf("m0 prompt tokens = %d", v)
	}
	if v, _ := m.Value(`ai_proxy_requests_total{provider="openai-compatible",model="other"}`); v != 10 {
		t.Errorf("requests beyond the label cap = %d, want 10", v)
	}

	// A streamed call-out answer is relayed whole and its usage read from the SSE.
	s := sendRequest(t, p, requestHeaders(), `{"model":"m0","stream":true,"messages":[]}`)
	defer s.Done()
	sse := "data: {\"model\":\"m0\",\"choices\":[{\"delta\":{\"content\":\"x\"}}]}\n\ndata: {\"choices\":[],\"usage\":{\"prompt_tokens\":1,\"completion_tokens\":2,\"total_tokens\":3}}\n\ndata: [DONE]\n\n"
	if err := vm.RespondCall(onlyCall(t, vm).ID, &harness.CallResponse{Headers: []abi.Header{{":status", "200"}, {"content-type", "text/event-stream"}}, Body: []byte(sse)}); err != nil {
		t.Fatal(err)
	}
	lr := s.LocalResponse()
	if lr == nil || string(lr.Body) != sse || harness.HeaderValue(lr.Headers, "content-type") != "text/event-stream" {
		t.Fatalf("streamed answer not relayed whole: %+v", lr)
	}
	if string(s.Properties()["llm_total_tokens"]) != "3" {
		t.Errorf("properties %v", s.Properties())
	}
}

const maxModels = 64

// routeJSON runs one route-mode request on p whose JSON answer arrives in
// the given chunks (the last one ends the stream) and returns the stream,
// still open.
func routeJSON(t *testing.T, p *harness.Plugin, answer ...string) *harness.Stream {
	t.Helper()
	s := p.NewStream()
	if a := s.SendRequestHeaders(requestHeaders(), false); a != abi.ActionContinue {
		t.Fatalf("headers: %v", a)
	}
	if a := s.SendRequestBody([]byte(`{"messages":[{"role":"user","content":"hi"}]}`), true); a != abi.ActionContinue {
		t.Fatalf("body: %v (local %+v)", a, s.LocalResponse())
	}
	if a := s.SendResponseHeaders([]abi.Header{{":status", "200"}, {"content-type", "application/json"}}, false); a != abi.ActionContinue {
		t.Fatalf("response headers: %v", a)
	}
	for i, c := range answer {
		if a := s.SendResponseBody([]byte(c), i == len(answer)-1); a != abi.ActionContinue {
			t.Fatalf("chunk %d: %v", i, a)
		}
		if out := string(s.TakeResponseBody()); out != c {
			t.Fatalf("chunk %d changed: %q", i, out)
		}
	}
	return s
}

// Streams are recycled after proxy_on_delete and answers are read in place
// when they come in one chunk: neither may leak one request's accounting into
// another, and a model label read from the host's memory must survive the
// requests after it.
func TestRouteModeRecycledStreamsKeepNothing(t *testing.T) {
	vm, p := newPlugin(t, harness.ProfileEnvoy, routeConf)
	answer := func(model string, usage string) string {
		return `{"id":"c","model":"` + model + `","choices":[{"message":{"role":"assistant","content":"x"}}]` + usage + `}`
	}
	withUsage := `,"usage":{"prompt_tokens":7,"completion_tokens":2,"total_tokens":9}`

	// Two streams at once: one answer in one chunk, one in three.
	one := routeJSON(t, p, answer("m-one", withUsage))
	split := answer("m-split", `,"usage":{"prompt_tokens":5,"completion_tokens":1,"total_tokens":6}`)
	three := routeJSON(t, p, split[:10], split[10:40], split[40:])
	for _, c := range []struct {
		s      *harness.Stream
		model  string
		prompt string
	}{{one, "m-one", "7"}, {three, "m-split", "5"}} {
		props := c.s.Properties()
		if string(props["llm_model"]) != c.model || string(props["llm_prompt_tokens"]) != c.prompt {
			t.Errorf("stream of %s: llm_model %q, llm_prompt_tokens %q", c.model, props["llm_model"], props["llm_prompt_tokens"])
		}
	}
	one.Done()
	three.Done()

	// Recycled streams: no usage in the answer means no token properties.
	for i := range 3 {
		s := routeJSON(t, p, answer("m-none", ""))
		props := s.Properties()
		if _, ok := props["llm_prompt_tokens"]; ok {
			t.Errorf("request %d without usage has llm_prompt_tokens %q", i, props["llm_prompt_tokens"])
		}
		if string(props["llm_model"]) != "m-none" {
			t.Errorf("request %d: llm_model %q", i, props["llm_model"])
		}
		s.Done()
	}
	m := vm.Metrics()
	for name, want := range map[string]int64{
		`ai_proxy_requests_total{provider="openai",model="m-one"}`:          1,
		`ai_proxy_prompt_tokens_total{provider="openai",model="m-one"}`:     7,
		`ai_proxy_requests_total{provider="openai",model="m-split"}`:        1,
		`ai_proxy_prompt_tokens_total{provider="openai",model="m-split"}`:   5,
		`ai_proxy_requests_total{provider="openai",model="m-none"}`:         3,
		`ai_proxy_completion_tokens_total{provider="openai",model="m-one"}`: 2,
	} {
		if v, ok := m.Value(name); !ok || v != want {
			t.Errorf("metric %s = %d (%v), want %d", name, v, ok, want)
		}
	}
}
