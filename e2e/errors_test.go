package e2e

import (
	"io"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	"ai-proxy/e2e/echo"
	"ai-proxy/e2e/mockllm"
)

// Plugin "timeout"s of the error matrix: a short one for the listeners that
// test it, a long one elsewhere so that a loaded machine (-race, parallel
// packages) does not turn other rows into timeouts.
const (
	llmTimeoutMS   = 300
	llmNoTimeoutMS = 10000
)

// matrixConfig is the seed's first configuration with an LLM timeout.
func matrixConfig(passthrough bool, endpoint string, timeoutMS int) string {
	override := ""
	if endpoint != "" {
		override = `"override": {"endpoint": "` + endpoint + `"},`
	}
	return `{
"auth": {"header": {"Authorization": "Bearer ` + openAIKey + `"}},
"model": {"provider": "openai", "name": "gpt-4", "options": {"max_tokens": 512, "temperature": 1.0}},
` + override + `
"timeout": ` + strconv.Itoa(timeoutMS) + `,
"passthrough": ` + strconv.FormatBool(passthrough) + `
}`
}

// matrixRow is one line of the contract's "Errors the client sees".
type matrixRow struct {
	name     string
	listener string            // "callout", "passthrough", "down", "slow" or "slow-passthrough"
	header   [][2]string       // nil: Content-Type application/json
	body     string            //
	llm      *mockllm.Behavior // queued for the LLM call; nil: the normal answer
	early    bool              // the gateway answers before reading the whole body: use sendEarly

	wantStatus int
	// An error made by the gateway: code (and type when set).
	wantCode, wantType string
	// Or an answer relayed as it came: body, content type and headers.
	wantBody        string
	wantContentType string
	wantHeaders     map[string]string

	wantLLMCalls int
	maxElapsed   time.Duration // 0: no bound
	minElapsed   time.Duration
}

var jsonCT = [][2]string{{"Content-Type", "application/json"}}

const (
	okBody      = `{"messages":[{"role":"user","content":"What is 1+1?"}]}`
	rateLimited = `{"error":{"message":"Rate limit reached for gpt-4","type":"requests","param":null,"code":"rate_limit_exceeded"}}`
)

func matrixRows() []matrixRow {
	big := `{"messages":[{"role":"user","content":"` + strings.Repeat("a", 100<<10) + `"}]}`
	return []matrixRow{
		{name: "non-JSON content type", listener: "callout", header: [][2]string{{"Content-Type", "text/plain"}}, body: okBody,
			wantStatus: 400, wantCode: "invalid_content_type", wantType: "invalid_request_error"},
		{name: "form content type (curl -d default)", listener: "callout", header: [][2]string{{"Content-Type", "application/x-www-form-urlencoded"}}, body: okBody,
			wantStatus: 400, wantCode: "invalid_content_type", wantType: "invalid_request_error"},
		{name: "empty body", listener: "callout", body: "",
			wantStatus: 400, wantCode: "empty_body", wantType: "invalid_request_error"},
		{name: "malformed JSON", listener: "callout", body: `{"messages": [`,
			wantStatus: 400, wantCode: "invalid_json", wantType: "invalid_request_error"},
		{name: "array body", listener: "callout", body: `[{"role":"user","content":"hi"}]`,
			wantStatus: 400, wantCode: "body_not_object", wantType: "invalid_request_error"},
		{name: "string body", listener: "callout", body: `"hello"`,
			wantStatus: 400, wantCode: "body_not_object", wantType: "invalid_request_error"},
		{name: "body over the buffer limit", listener: "callout", body: big, early: true,
			wantStatus: 413, wantCode: "body_too_large"},
		{name: "LLM connection refused", listener: "down", body: okBody,
			wantStatus: 502, wantCode: "llm_unreachable", maxElapsed: 2 * time.Second},
		{name: "LLM resets the connection", listener: "callout", body: okBody, llm: &mockllm.Behavior{Reset: true},
			wantStatus: 502, wantCode: "llm_unreachable", wantLLMCalls: 1, maxElapsed: 2 * time.Second},
		{name: "LLM answers garbage", listener: "callout", body: okBody, llm: &mockllm.Behavior{Garbage: true},
			wantStatus: 502, wantCode: "llm_unreachable", wantLLMCalls: 1, maxElapsed: 2 * time.Second},
		{name: "LLM too slow", listener: "slow", body: okBody, llm: &mockllm.Behavior{Delay: 3 * time.Second},
			wantStatus: 504, wantCode: "llm_timeout", wantType: "api_error", wantLLMCalls: 1,
			minElapsed: llmTimeoutMS * time.Millisecond * 3 / 4, maxElapsed: 1500 * time.Millisecond},
		{name: "LLM 429 relayed", listener: "callout", body: okBody,
			llm: &mockllm.Behavior{Status: 429, Body: []byte(rateLimited), ContentType: "application/json",
				Headers: map[string]string{"Retry-After": "7", "X-Ratelimit-Remaining-Requests": "0", "X-Request-Id": "req-mock-429"}},
			wantStatus: 429, wantBody: rateLimited, wantContentType: "application/json",
			wantHeaders:  map[string]string{"Retry-After": "7", "X-Ratelimit-Remaining-Requests": "0", "X-Request-Id": "req-mock-429"},
			wantLLMCalls: 1},
		{name: "LLM 500 relayed", listener: "callout", body: okBody,
			llm:        &mockllm.Behavior{Status: 500, Body: []byte("upstream exploded"), ContentType: "text/plain"},
			wantStatus: 500, wantBody: "upstream exploded", wantContentType: "text/plain", wantLLMCalls: 1},
		{name: "LLM 200 non-JSON relayed (passthrough=false)", listener: "callout", body: okBody,
			llm:        &mockllm.Behavior{Body: []byte("this is not JSON"), ContentType: "text/plain"},
			wantStatus: 200, wantBody: "this is not JSON", wantContentType: "text/plain", wantLLMCalls: 1},
		{name: "LLM 200 non-JSON never forwarded (passthrough=true)", listener: "passthrough", body: okBody,
			llm:        &mockllm.Behavior{Body: []byte("this is not JSON"), ContentType: "text/plain"},
			wantStatus: 502, wantCode: "llm_bad_response", wantLLMCalls: 1},
		{name: "LLM 200 JSON array never forwarded (passthrough=true)", listener: "passthrough", body: okBody,
			llm:        &mockllm.Behavior{Body: []byte(`[1,2]`)},
			wantStatus: 502, wantCode: "llm_bad_response", wantLLMCalls: 1},
		{name: "LLM 503 relayed (passthrough=true)", listener: "passthrough", body: okBody,
			llm:        &mockllm.Behavior{Status: 503, Body: []byte(`{"error":{"message":"overloaded"}}`), ContentType: "application/json"},
			wantStatus: 503, wantBody: `{"error":{"message":"overloaded"}}`, wantContentType: "application/json", wantLLMCalls: 1},
		{name: "LLM too slow (passthrough=true)", listener: "slow-passthrough", body: okBody, llm: &mockllm.Behavior{Delay: 3 * time.Second},
			wantStatus: 504, wantCode: "llm_timeout", wantType: "api_error", wantLLMCalls: 1,
			minElapsed: llmTimeoutMS * time.Millisecond * 3 / 4, maxElapsed: 1500 * time.Millisecond},
		{name: "JSON content type with parameters accepted", listener: "callout",
			header: [][2]string{{"Content-Type", "application/json; charset=utf-8"}}, body: okBody,
			wantStatus: 200, wantContentType: "application/json", wantLLMCalls: 1},
	}
}

// matrixSetup is a gateway with the listeners the matrix uses: "callout"
// (passthrough=false, a 64 KiB buffer limit), "passthrough" (to the echo),
// "down" (its LLM cluster points at a closed port), and "slow" and
// "slow-passthrough" (a 300 ms LLM timeout).
type matrixSetup struct {
	gw   *Gateway
	llm  *mockllm.Server
	echo *echo.Server
}

func startMatrix(t *testing.T, args ...string) *matrixSetup {
	t.Helper()
	checkout.NeedBuild(t)
	s := &matrixSetup{llm: mockllm.New(), echo: echo.New()}
	s.llm.Start(true)
	t.Cleanup(s.llm.Close)
	s.echo.Start()
	t.Cleanup(s.echo.Close)
	dead := closedPort(t)
	deadEndpoint := "http://127.0.0.1:" + strconv.Itoa(dead) + "/v1/chat/completions"
	s.gw = StartGateway(t, Bootstrap{
		Listeners: []Listener{
			{Name: "callout", Plugin: matrixConfig(false, "", llmNoTimeoutMS), Cluster: "httpbin", BufferLimit: 64 << 10},
			{Name: "passthrough", Plugin: matrixConfig(true, "", llmNoTimeoutMS), Cluster: "httpbin"},
			{Name: "down", Plugin: matrixConfig(false, deadEndpoint, llmNoTimeoutMS), Cluster: "httpbin"},
			{Name: "slow", Plugin: matrixConfig(false, "", llmTimeoutMS), Cluster: "httpbin"},
			{Name: "slow-passthrough", Plugin: matrixConfig(true, "", llmTimeoutMS), Cluster: "httpbin"},
		},
		Clusters: []Cluster{
			{Name: openAICluster, Port: s.llm.Port(), TLS: true, SNI: "api.openai.com"},
			// The default cluster name of an endpoint is its host:port.
			{Name: "127.0.0.1:" + strconv.Itoa(dead), Port: dead},
			{Name: "httpbin", Port: s.echo.Port()},
		},
	}, args...)
	return s
}

func (s *matrixSetup) run(t *testing.T, row matrixRow) {
	t.Helper()
	s.llm.Reset()
	s.echo.Reset()
	if row.llm != nil {
		s.llm.Next(*row.llm)
	}
	header := row.header
	if header == nil {
		header = jsonCT
	}
	call := Call{Header: header, Body: row.body}
	var r Reply
	if row.early {
		r = sendEarly(t, s.gw.URL(row.listener), call)
	} else {
		r = send(t, s.gw.URL(row.listener), call)
	}

	if row.wantCode != "" {
		wantError(t, r, row.wantStatus, row.wantCode, row.wantType)
	} else {
		if r.Status != row.wantStatus {
			t.Errorf("status %d, want %d; body %s", r.Status, row.wantStatus, r.Body)
		}
		if row.wantBody != "" && string(r.Body) != row.wantBody {
			t.Errorf("body %q, want the LLM's %q", r.Body, row.wantBody)
		}
		if ct := r.Header.Get("Content-Type"); row.wantContentType != "" && ct != row.wantContentType {
			t.Errorf("content-type %q, want %q", ct, row.wantContentType)
		}
		for k, v := range row.wantHeaders {
			if got := r.Header.Get(k); got != v {
				t.Errorf("header %s = %q, want %q", k, got, v)
			}
		}
	}
	if row.maxElapsed > 0 && r.Elapsed > row.maxElapsed {
		t.Errorf("answered after %v, want under %v", r.Elapsed, row.maxElapsed)
	}
	if r.Elapsed < row.minElapsed {
		t.Errorf("answered after %v, want at least %v", r.Elapsed, row.minElapsed)
	}
	if n := len(s.llm.Requests()); n != row.wantLLMCalls {
		t.Errorf("the LLM received %d requests, want %d", n, row.wantLLMCalls)
	}
	if n := len(s.echo.Requests()); n != 0 {
		t.Errorf("the upstream received %d requests, want 0", n)
	}
}

// checkHealthy checks that the gateway still serves both modes and its admin.
func (s *matrixSetup) checkHealthy(t *testing.T) {
	t.Helper()
	s.llm.Reset()
	s.echo.Reset()
	r := send(t, s.gw.URL("callout"), curl("api.openai.com:443", seedMathBody))
	if r.Status != http.StatusOK || !strings.Contains(string(r.Body), "1+1 equals 2.") {
		t.Errorf("callout after the matrix: %d %s", r.Status, r.Body)
	}
	r = send(t, s.gw.URL("passthrough"), curl("api.openai.com:443", seedMathBody))
	if r.Status != http.StatusOK || len(s.echo.Requests()) != 1 {
		t.Errorf("passthrough after the matrix: %d %s (upstream requests: %d)", r.Status, r.Body, len(s.echo.Requests()))
	}
	resp, err := client.Get(s.gw.AdminURL() + "/ready")
	if err != nil {
		t.Fatalf("admin /ready: %v", err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK || strings.TrimSpace(string(b)) != "LIVE" {
		t.Errorf("admin /ready: %d %q, want 200 LIVE", resp.StatusCode, b)
	}
	resp, err = client.Get(s.gw.AdminURL() + "/stats/prometheus")
	if err != nil {
		t.Fatalf("admin /stats/prometheus: %v", err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Errorf("admin /stats/prometheus: %d", resp.StatusCode)
	}
	if !s.gw.Running() {
		t.Errorf("the gateway died")
	}
}

// TestErrorMatrix runs every error of the contract through one gateway with
// two workers (two VMs), checks that it still answers normal requests, then
// sends the failing LLM answers twice more: an error must leave no state
// behind that spoils a later request.
func TestErrorMatrix(t *testing.T) {
	t.Parallel()
	s := startMatrix(t, "-workers", "2")
	for _, row := range matrixRows() {
		t.Run(row.name, func(t *testing.T) { s.run(t, row) })
	}
	t.Run("gateway stays up", s.checkHealthy)
	for i := 2; i <= 3; i++ {
		for _, row := range matrixRows() {
			if row.llm == nil || row.llm.Delay > 0 {
				continue
			}
			t.Run("again "+strconv.Itoa(i)+"/"+row.name, func(t *testing.T) { s.run(t, row) })
		}
		t.Run("again "+strconv.Itoa(i)+"/gateway stays up", s.checkHealthy)
	}
}
