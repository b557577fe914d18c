package e2e

import (
	"net/http"
	"strings"
	"testing"

	"ai-proxy/e2e/mockllm"
)

// clientSecrets are credentials and headers of the client that must never
// reach the LLM.
var clientSecrets = [][2]string{
	{"Authorization", "Bearer client-secret"},
	{"Cookie", "session=client-cookie"},
	{"Proxy-Authorization", "Basic Y2xpZW50OnNlY3JldA=="},
	{"Api-Key", "client-api-key"},
	{"X-Api-Key", "client-x-api-key"},
	{"Accept-Encoding", "br"},
	{"Keep-Alive", "timeout=5"},
}

// clientTrace are headers of the client that the LLM call carries.
var clientTrace = [][2]string{
	{"X-Request-Id", "rid-e2e-1"},
	{"Traceparent", "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"},
	{"User-Agent", "e2e-agent/1.0"},
}

func secretCall(host string) Call {
	h := append([][2]string{{"Content-Type", "application/json"}}, clientSecrets...)
	return Call{Host: host, Header: append(h, clientTrace...), Body: seedMathBody}
}

// checkLLMHeaders checks that the LLM got the configured credential (header
// cred = value) and the client's trace headers, and none of the client's
// secrets.
func checkLLMHeaders(t *testing.T, got mockllm.Request, cred, value string) {
	t.Helper()
	if v := got.Header.Values(cred); len(v) != 1 || v[0] != value {
		t.Errorf("LLM %s = %q, want exactly the configured %q", cred, v, value)
	}
	for _, h := range clientSecrets {
		for _, v := range got.Header.Values(h[0]) {
			if strings.Contains(v, h[1]) {
				t.Errorf("the client's %s %q reached the LLM", h[0], v)
			}
		}
	}
	for _, h := range []string{"Cookie", "Proxy-Authorization", "X-Api-Key", "Keep-Alive"} {
		if v := got.Header.Values(h); len(v) != 0 {
			t.Errorf("LLM got %s %q, want none", h, v)
		}
	}
	for _, h := range clientTrace {
		if v := got.Header.Get(h[0]); v != h[1] {
			t.Errorf("LLM %s = %q, want the client's %q", h[0], v, h[1])
		}
	}
}

func TestCredentialsNotLeaked(t *testing.T) {
	t.Parallel()
	s := startSeed(t)

	t.Run("callout: the LLM gets the configured key only", func(t *testing.T) {
		s.reset()
		r := send(t, s.gw.URL("proxy"), secretCall("api.openai.com:443"))
		if r.Status != http.StatusOK {
			t.Fatalf("status %d: %s", r.Status, r.Body)
		}
		llm := onlyRequest(t, s.openai)
		checkLLMHeaders(t, llm, "Authorization", "Bearer "+openAIKey)
		if v := llm.Header.Values("Api-Key"); len(v) != 0 {
			t.Errorf("LLM got Api-Key %q, want none", v)
		}
		noCredential(t, "the client", r.Header, openAIKey)
	})

	t.Run("azure: api-key replaced, client authorization dropped", func(t *testing.T) {
		s.reset()
		r := send(t, s.gw.URL("azure"), secretCall(""))
		if r.Status != http.StatusOK {
			t.Fatalf("status %d: %s", r.Status, r.Body)
		}
		llm := onlyRequest(t, s.azure)
		checkLLMHeaders(t, llm, "Api-Key", azureKey)
		if v := llm.Header.Values("Authorization"); len(v) != 0 {
			t.Errorf("LLM got Authorization %q, want none", v)
		}
		noCredential(t, "the client", r.Header, azureKey)
	})

	t.Run("passthrough: the upstream gets the client's headers, never the LLM key", func(t *testing.T) {
		s.reset()
		r := send(t, s.gw.URL("passthrough"), secretCall("api.openai.com:443"))
		if r.Status != http.StatusOK {
			t.Fatalf("status %d: %s", r.Status, r.Body)
		}
		checkLLMHeaders(t, onlyRequest(t, s.openai), "Authorization", "Bearer "+openAIKey)
		ups := s.echo.Requests()
		if len(ups) != 1 {
			t.Fatalf("the upstream received %d requests, want 1", len(ups))
		}
		up := ups[0]
		noCredential(t, "the upstream", up.Header, openAIKey)
		for _, h := range [][2]string{{"Authorization", "Bearer client-secret"}, {"Cookie", "session=client-cookie"}, {"X-Request-Id", "rid-e2e-1"}} {
			if v := up.Header.Get(h[0]); v != h[1] {
				t.Errorf("upstream %s = %q, want the client's %q", h[0], v, h[1])
			}
		}
		noCredential(t, "the client", r.Header, openAIKey)
	})
}
