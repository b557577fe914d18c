package e2e

import (
	"bytes"
	"encoding/json"
	"net/http"
	"sort"
	"strconv"
	"strings"
	"testing"

	"ai-proxy/e2e/echo"
	"ai-proxy/e2e/mockllm"
)

// The plugin configurations and request bodies of the three examples of the
// seed documentation (shared/seed/ai-proxy.md), verbatim, with test keys in
// place of $OPENAI_API_KEY and $AZ_OPENAI_API_KEY.
const (
	openAIKey = "sk-test-key"
	azureKey  = "az-test-key"

	seedProxyConfig = `{
"auth": {
"header": {
"Authorization": "Bearer ` + openAIKey + `"
}
},
"model": {
"provider": "openai",
"name": "gpt-4",
"options": {
"max_tokens": 512,
"temperature": 1.0
}
},
"passthrough": false
}`

	seedAzureConfig = `{
"auth": {
"header": {
"api-key": "` + azureKey + `"
}
},
"model": {
"provider": "openai",
"name": "gpt-4",
"options": {
"max_tokens": 512,
"temperature": 1.0
}
},
"override": {
"endpoint": "https://api7-auzre-openai.openai.azure.com/openai/deployments/gpt-4/chat/completions?api-version=2024-02-15-preview"
}
}`

	seedPassthroughConfig = `{
"auth": {
"header": {
"Authorization": "Bearer ` + openAIKey + `"
}
},
"model": {
"provider": "openai",
"name": "gpt-4"
},
"passthrough": true
}`

	// seedMathBody is the body of the first and third examples' curl.
	seedMathBody = `{
"messages": [
{ "role": "system", "content": "You are a mathematician" },
{ "role": "user", "content": "What is 1+1?" }
]
}`

	// seedAzureBody is the body of the second example's curl.
	seedAzureBody = `{
"messages": [
{
"role": "system",
"content": "You are an AI assistant that helps people find information."
},
{
"role": "user",
"content": "Write me a 50-word introduction for Apache APISIX."
}
],
"max_tokens": 800,
"temperature": 0.7,
"frequency_penalty": 0,
"presence_penalty": 0,
"top_p": 0.95,
"stop": null
}`

	openAICluster = "api.openai.com:443"
	azureHost     = "api7-auzre-openai.openai.azure.com"
	azureCluster  = azureHost + ":443"
)

// seedSetup is a gateway with one listener per seed example: "proxy" (the
// first), "azure" and "passthrough", the LLM clusters mapped to TLS mocks and
// the route's upstream ("httpbin") to the echo.
type seedSetup struct {
	gw     *Gateway
	openai *mockllm.Server // behind the api.openai.com:443 cluster
	azure  *mockllm.Server // behind the api7-auzre-openai.openai.azure.com:443 cluster
	echo   *echo.Server    // behind the httpbin cluster
}

func startSeed(t *testing.T) *seedSetup {
	t.Helper()
	checkout.NeedBuild(t)
	s := &seedSetup{openai: mockllm.New(), azure: mockllm.New(), echo: echo.New()}
	s.openai.Start(true)
	t.Cleanup(s.openai.Close)
	s.azure.Start(true)
	t.Cleanup(s.azure.Close)
	s.echo.Start()
	t.Cleanup(s.echo.Close)
	s.gw = StartGateway(t, Bootstrap{
		Listeners: []Listener{
			{Name: "proxy", Plugin: seedProxyConfig, Cluster: "httpbin", Prefix: "/anything"},
			{Name: "azure", Plugin: seedAzureConfig, Cluster: "httpbin", Prefix: "/anything"},
			{Name: "passthrough", Plugin: seedPassthroughConfig, Cluster: "httpbin", Prefix: "/anything"},
		},
		Clusters: []Cluster{
			{Name: openAICluster, Port: s.openai.Port(), TLS: true, SNI: "api.openai.com"},
			{Name: azureCluster, Port: s.azure.Port(), TLS: true, SNI: azureHost},
			{Name: "httpbin", Port: s.echo.Port()},
		},
	})
	return s
}

func (s *seedSetup) reset() {
	s.openai.Reset()
	s.azure.Reset()
	s.echo.Reset()
}

// onlyRequest returns the one request the mock received.
func onlyRequest(t *testing.T, m *mockllm.Server) mockllm.Request {
	t.Helper()
	reqs := m.Requests()
	if len(reqs) != 1 {
		t.Fatalf("the LLM received %d requests, want 1", len(reqs))
	}
	return reqs[0]
}

// llmWant is what the provider request must be.
type llmWant struct {
	path, query, host string
	header            map[string]string // exact values
	absent            []string          // headers that must not be there
	model             string
	numbers           map[string]float64 // configured options, by value
	keys              []string           // every top-level key of the body
	sameAsClient      []string           // keys whose bytes must equal the client's
}

func checkLLMRequest(t *testing.T, got mockllm.Request, clientBody string, w llmWant) {
	t.Helper()
	if got.Method != http.MethodPost || got.Path != w.path || got.RawQuery != w.query || got.Host != w.host {
		t.Errorf("LLM request %s %s?%s Host %q, want POST %s?%s Host %q", got.Method, got.Path, got.RawQuery, got.Host, w.path, w.query, w.host)
	}
	for k, v := range w.header {
		if vals := got.Header.Values(k); len(vals) != 1 || vals[0] != v {
			t.Errorf("LLM header %s = %q, want exactly %q", k, vals, v)
		}
	}
	for _, k := range w.absent {
		if vals := got.Header.Values(k); len(vals) != 0 {
			t.Errorf("LLM header %s = %q, want none", k, vals)
		}
	}
	if cl := got.Header.Get("Content-Length"); cl != "" && cl != strconv.Itoa(len(got.Body)) {
		t.Errorf("LLM Content-Length %s for a %d-byte body", cl, len(got.Body))
	}
	body := fields(t, "the LLM request body", got.Body)
	client := fields(t, "the client body", []byte(clientBody))
	if m := str(t, "model", body["model"]); m != w.model {
		t.Errorf("LLM model %q, want %q", m, w.model)
	}
	for k, v := range w.numbers {
		raw, ok := body[k]
		if !ok {
			t.Errorf("LLM body has no %q", k)
			continue
		}
		if n := number(t, k, raw); n != v {
			t.Errorf("LLM %s = %v, want %v", k, n, v)
		}
	}
	var keys []string
	for k := range body {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	want := append([]string(nil), w.keys...)
	sort.Strings(want)
	if strings.Join(keys, ",") != strings.Join(want, ",") {
		t.Errorf("LLM body keys %v, want %v; body %s", keys, want, got.Body)
	}
	for _, k := range w.sameAsClient {
		if !bytes.Equal(body[k], client[k]) {
			t.Errorf("LLM %s = %s, want the client's bytes %s", k, body[k], client[k])
		}
	}
}

// checkRelayed checks that the client got exactly what the LLM answered.
func checkRelayed(t *testing.T, r Reply, llm mockllm.Request, wantContent string) {
	t.Helper()
	if r.Status != http.StatusOK {
		t.Fatalf("client status %d, want 200; body %s", r.Status, r.Body)
	}
	if ct := r.Header.Get("Content-Type"); ct != "application/json" {
		t.Errorf("client content-type %q, want application/json", ct)
	}
	if !bytes.Equal(r.Body, llm.Response) {
		t.Errorf("client body\n%s\nwant the LLM's answer\n%s", r.Body, llm.Response)
	}
	var c struct {
		Object  string `json:"object"`
		Choices []struct {
			Message struct {
				Content string `json:"content"`
			} `json:"message"`
		} `json:"choices"`
	}
	if err := json.Unmarshal(r.Body, &c); err != nil || c.Object != "chat.completion" || len(c.Choices) != 1 || c.Choices[0].Message.Content != wantContent {
		t.Errorf("client got %s (%v), want a chat.completion saying %q", r.Body, err, wantContent)
	}
}

func TestSeedExamples(t *testing.T) {
	t.Parallel()
	s := startSeed(t)

	t.Run("proxy to OpenAI", func(t *testing.T) {
		s.reset()
		r := send(t, s.gw.URL("proxy"), curl("api.openai.com:443", seedMathBody))
		llm := onlyRequest(t, s.openai)
		checkLLMRequest(t, llm, seedMathBody, llmWant{
			path: "/v1/chat/completions", host: "api.openai.com",
			header: map[string]string{
				"Authorization": "Bearer " + openAIKey,
				"Content-Type":  "application/json",
				"User-Agent":    "curl/8.6.0",
			},
			absent:       []string{"Api-Key"},
			model:        "gpt-4",
			numbers:      map[string]float64{"max_tokens": 512, "temperature": 1.0},
			keys:         []string{"messages", "model", "max_tokens", "temperature"},
			sameAsClient: []string{"messages"},
		})
		checkRelayed(t, r, llm, "1+1 equals 2.")
		if n := len(s.echo.Requests()); n != 0 {
			t.Errorf("the upstream received %d requests with passthrough=false, want 0", n)
		}
	})

	t.Run("proxy to Azure OpenAI", func(t *testing.T) {
		s.reset()
		r := send(t, s.gw.URL("azure"), curl("", seedAzureBody))
		llm := onlyRequest(t, s.azure)
		checkLLMRequest(t, llm, seedAzureBody, llmWant{
			path:  "/openai/deployments/gpt-4/chat/completions",
			query: "api-version=2024-02-15-preview",
			host:  azureHost,
			header: map[string]string{
				"Api-Key":      azureKey,
				"Content-Type": "application/json",
			},
			absent:  []string{"Authorization"},
			model:   "gpt-4",
			numbers: map[string]float64{"max_tokens": 512, "temperature": 1.0},
			keys: []string{"messages", "model", "max_tokens", "temperature",
				"frequency_penalty", "presence_penalty", "top_p", "stop"},
			sameAsClient: []string{"messages", "frequency_penalty", "presence_penalty", "top_p", "stop"},
		})
		checkRelayed(t, r, llm, "Mock answer to: Write me a 50-word introduction for Apache APISIX.")
		if n := len(s.openai.Requests()); n != 0 {
			t.Errorf("the OpenAI cluster received %d requests for the Azure route", n)
		}
		if n := len(s.echo.Requests()); n != 0 {
			t.Errorf("the upstream received %d requests, want 0", n)
		}
	})

	t.Run("forward LLM response to upstream", func(t *testing.T) {
		s.reset()
		r := send(t, s.gw.URL("passthrough"), curl("api.openai.com:443", seedMathBody))
		llm := onlyRequest(t, s.openai)
		checkLLMRequest(t, llm, seedMathBody, llmWant{
			path: "/v1/chat/completions", host: "api.openai.com",
			header: map[string]string{
				"Authorization": "Bearer " + openAIKey,
				"Content-Type":  "application/json",
			},
			model:        "gpt-4",
			keys:         []string{"messages", "model"},
			sameAsClient: []string{"messages"},
		})
		if llm.Status != http.StatusOK || len(llm.Response) == 0 {
			t.Fatalf("the mock answered %d %q", llm.Status, llm.Response)
		}

		// What the upstream received: the LLM's answer as the body, the
		// client's headers, never the LLM credential.
		ups := s.echo.Requests()
		if len(ups) != 1 {
			t.Fatalf("the upstream received %d requests, want 1", len(ups))
		}
		up := ups[0]
		if up.Method != http.MethodPost || up.Path != "/anything" {
			t.Errorf("upstream request %s %s, want POST /anything", up.Method, up.Path)
		}
		if !bytes.Equal(up.Body, llm.Response) {
			t.Errorf("upstream body\n%s\nwant the LLM's answer\n%s", up.Body, llm.Response)
		}
		if ct := up.Header.Get("Content-Type"); ct != "application/json" {
			t.Errorf("upstream content-type %q, want application/json", ct)
		}
		if cl := up.Header.Get("Content-Length"); cl != strconv.Itoa(len(llm.Response)) {
			t.Errorf("upstream content-length %q, want %d", cl, len(llm.Response))
		}
		if up.Host != "api.openai.com:443" || up.Header.Get("User-Agent") != "curl/8.6.0" || up.Header.Get("Accept") != "*/*" {
			t.Errorf("upstream Host %q User-Agent %q Accept %q, want the client's", up.Host, up.Header.Get("User-Agent"), up.Header.Get("Accept"))
		}
		for _, h := range []string{"Authorization", "Api-Key"} {
			if v := up.Header.Values(h); len(v) != 0 {
				t.Errorf("upstream got %s %q; the client sent none", h, v)
			}
		}
		noCredential(t, "the upstream", up.Header, openAIKey)

		// What the client got: the echo's description of that request.
		if r.Status != http.StatusOK || !strings.HasPrefix(r.Header.Get("Content-Type"), "application/json") {
			t.Fatalf("client status %d content-type %q; body %s", r.Status, r.Header.Get("Content-Type"), r.Body)
		}
		var e echo.Response
		if err := json.Unmarshal(r.Body, &e); err != nil {
			t.Fatalf("client body is not the echo's answer: %v: %s", err, r.Body)
		}
		if e.Data != string(llm.Response) || e.Method != http.MethodPost {
			t.Errorf("echo data %q method %q, want the LLM's answer and POST", e.Data, e.Method)
		}
		if !jsonEqual(t, e.JSON, llm.Response) {
			t.Errorf("echo json %s, want %s", e.JSON, llm.Response)
		}
		if e.Headers["Content-Type"] != "application/json" || e.Headers["Content-Length"] != strconv.Itoa(len(llm.Response)) {
			t.Errorf("echo headers %v", e.Headers)
		}
		noCredential(t, "the client", r.Header, openAIKey)
	})
}

// noCredential fails when any header value carries the secret.
func noCredential(t *testing.T, who string, h http.Header, secret string) {
	t.Helper()
	for k, vs := range h {
		for _, v := range vs {
			if strings.Contains(v, secret) {
				t.Errorf("%s got the LLM credential in %s: %q", who, k, v)
			}
		}
	}
}

// jsonEqual compares two JSON documents by value.
func jsonEqual(t *testing.T, a, b []byte) bool {
	t.Helper()
	var x, y any
	if json.Unmarshal(a, &x) != nil || json.Unmarshal(b, &y) != nil {
		return false
	}
	xa, _ := json.Marshal(x)
	ya, _ := json.Marshal(y)
	return bytes.Equal(xa, ya)
}
