package e2e

import (
	"bytes"
	"encoding/json"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"sigs.k8s.io/yaml"

	"ai-proxy/e2e/echo"
	"ai-proxy/e2e/mockllm"
	"ai-proxy/harness/testutil"
)

// TestPluginConfigRejected: a plugin configuration the filter refuses stops
// the gateway at start with a non-zero exit and one line naming the field.
func TestPluginConfigRejected(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name, config, mention string
	}{
		{"unknown provider", `{"auth":{"header":{"Authorization":"Bearer k"}},"model":{"provider":"no-such-provider","name":"gpt-4"}}`, "provider"},
		{"unknown provider (flat schema)", `{"provider":"no-such-provider","auth":{"header":{"Authorization":"Bearer k"}},"options":{"model":"gpt-4"}}`, "provider"},
		{"endpoint not http(s)", `{"auth":{"header":{"Authorization":"Bearer k"}},"model":{"provider":"openai","name":"gpt-4"},"override":{"endpoint":"ftp://example.com/v1"}}`, "endpoint"},
		{"openai-compatible without endpoint", `{"auth":{"header":{"Authorization":"Bearer k"}},"model":{"provider":"openai-compatible","name":"m"}}`, "endpoint"},
		{"timeout of the wrong type", `{"auth":{"header":{"Authorization":"Bearer k"}},"model":{"provider":"openai","name":"gpt-4"},"timeout":"soon"}`, "timeout"},
		{"not JSON", `{"auth":`, ""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			boot := Bootstrap{
				Listeners: []Listener{{Name: "main", Plugin: tc.config, Cluster: "llm"}},
				Clusters:  []Cluster{{Name: "llm", Port: closedPort(t)}, {Name: openAICluster, Port: closedPort(t)}},
			}
			wantRefused(t, boot.YAML(), tc.mention)
		})
	}
}

// TestBootstrapRejected: a bootstrap outside the supported subset stops the
// gateway with a non-zero exit and one line naming what is wrong.
func TestBootstrapRejected(t *testing.T) {
	t.Parallel()
	base := func(t *testing.T) map[string]any {
		return Bootstrap{
			Listeners: []Listener{{Name: "main", Plugin: seedProxyConfig, Cluster: "llm"}},
			Clusters:  []Cluster{{Name: "llm", Port: closedPort(t)}, {Name: openAICluster, Port: closedPort(t)}},
		}.Doc()
	}
	clusters := func(d map[string]any) []any { return d["static_resources"].(map[string]any)["clusters"].([]any) }
	hcm := func(d map[string]any) map[string]any {
		l := d["static_resources"].(map[string]any)["listeners"].([]any)[0].(map[string]any)
		f := l["filter_chains"].([]any)[0].(map[string]any)["filters"].([]any)[0].(map[string]any)
		return f["typed_config"].(map[string]any)
	}
	tests := []struct {
		name    string
		edit    func(d map[string]any)
		mention string
	}{
		{"EDS cluster", func(d map[string]any) { clusters(d)[0].(map[string]any)["type"] = "EDS" }, "eds"},
		{"unknown field", func(d map[string]any) { d["static_resource"] = map[string]any{} }, "static_resource"},
		{"unsupported http filter", func(d map[string]any) {
			h := hcm(d)
			h["http_filters"] = append([]any{map[string]any{
				"name":         "envoy.filters.http.cors",
				"typed_config": map[string]any{"@type": "type.googleapis.com/envoy.extensions.filters.http.cors.v3.Cors"},
			}}, h["http_filters"].([]any)...)
		}, "cors"},
		{"missing wasm file", func(d map[string]any) {
			w := hcm(d)["http_filters"].([]any)[0].(map[string]any)["typed_config"].(map[string]any)
			w["config"].(map[string]any)["vm_config"].(map[string]any)["code"] = map[string]any{
				"local": map[string]any{"filename": "build/no-such-filter.wasm"}}
		}, "no-such-filter.wasm"},
		{"route to an unknown cluster", func(d map[string]any) {
			vh := hcm(d)["route_config"].(map[string]any)["virtual_hosts"].([]any)[0].(map[string]any)
			vh["routes"].([]any)[0].(map[string]any)["route"].(map[string]any)["cluster"] = "nowhere"
		}, "nowhere"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			doc := base(t)
			tc.edit(doc)
			data, err := yaml.Marshal(doc)
			if err != nil {
				t.Fatal(err)
			}
			wantRefused(t, data, tc.mention)
		})
	}
}

// TestPluginConfigForms runs the other configuration forms of the contract
// through the gateway: the flat 3.12+ schema, deepseek's default endpoint,
// auth.query merged with the endpoint's query, the cluster key, and stream.
func TestPluginConfigForms(t *testing.T) {
	t.Parallel()
	checkout.NeedBuild(t)
	openai, deepseek, custom := mockllm.New(), mockllm.New(), mockllm.New()
	for _, m := range []*mockllm.Server{openai, deepseek} {
		m.Start(true)
		t.Cleanup(m.Close)
	}
	custom.Start(false)
	t.Cleanup(custom.Close)
	up := echo.New()
	up.Start()
	t.Cleanup(up.Close)

	gw := StartGateway(t, Bootstrap{
		Listeners: []Listener{
			{Name: "flat", Cluster: "httpbin", Plugin: `{"provider":"openai","auth":{"header":{"Authorization":"Bearer flat-key"}},"options":{"model":"gpt-4o","max_tokens":100}}`},
			{Name: "deepseek", Cluster: "httpbin", Plugin: `{"provider":"deepseek","auth":{"header":{"Authorization":"Bearer ds-key"}},"options":{"model":"deepseek-chat"}}`},
			{Name: "query", Cluster: "httpbin", Plugin: `{"auth":{"query":{"key":"q-key"}},"model":{"provider":"openai-compatible","name":"local-model"},` +
				`"override":{"endpoint":"http://llm.internal:8080/v1/chat/completions?tenant=e2e"},"cluster":"custom-llm"}`},
			{Name: "stream", Cluster: "httpbin", Plugin: seedProxyConfig},
		},
		Clusters: []Cluster{
			{Name: openAICluster, Port: openai.Port(), TLS: true, SNI: "api.openai.com"},
			{Name: "api.deepseek.com:443", Port: deepseek.Port(), TLS: true, SNI: "api.deepseek.com"},
			{Name: "custom-llm", Port: custom.Port()},
			{Name: "httpbin", Port: up.Port()},
		},
	})

	tests := []struct {
		name, listener, body string
		mock                 *mockllm.Server
		path, query, host    string
		header               map[string]string
		bodyHas              map[string]string // top-level key → exact JSON
	}{
		{name: "flat schema", listener: "flat", body: seedMathBody, mock: openai,
			path: "/v1/chat/completions", host: "api.openai.com",
			header:  map[string]string{"Authorization": "Bearer flat-key"},
			bodyHas: map[string]string{"model": `"gpt-4o"`, "max_tokens": "100"}},
		{name: "deepseek default endpoint", listener: "deepseek", body: seedMathBody, mock: deepseek,
			path: "/chat/completions", host: "api.deepseek.com",
			header:  map[string]string{"Authorization": "Bearer ds-key"},
			bodyHas: map[string]string{"model": `"deepseek-chat"`}},
		{name: "auth.query, endpoint query and cluster key", listener: "query", body: seedMathBody, mock: custom,
			path: "/v1/chat/completions", host: "llm.internal:8080",
			bodyHas: map[string]string{"model": `"local-model"`}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			tc.mock.Reset()
			r := send(t, gw.URL(tc.listener), curl("", tc.body))
			if r.Status != http.StatusOK {
				t.Fatalf("status %d: %s", r.Status, r.Body)
			}
			got := onlyRequest(t, tc.mock)
			if got.Path != tc.path || got.Host != tc.host {
				t.Errorf("LLM %s Host %q, want %s Host %q", got.Path, got.Host, tc.path, tc.host)
			}
			for k, v := range tc.header {
				if g := got.Header.Get(k); g != v {
					t.Errorf("LLM %s = %q, want %q", k, g, v)
				}
			}
			body := fields(t, "LLM body", got.Body)
			for k, v := range tc.bodyHas {
				if !jsonEqual(t, body[k], []byte(v)) {
					t.Errorf("LLM %s = %s, want %s", k, body[k], v)
				}
			}
			if !bytes.Equal(r.Body, got.Response) {
				t.Errorf("client got %s, want the LLM's %s", r.Body, got.Response)
			}
		})
	}
	t.Run("auth.query merged with the endpoint query", func(t *testing.T) {
		reqs := custom.Requests()
		if len(reqs) != 1 {
			t.Fatalf("%d requests", len(reqs))
		}
		q := reqs[0].RawQuery
		if !strings.Contains(q, "tenant=e2e") || !strings.Contains(q, "key=q-key") {
			t.Errorf("LLM query %q, want tenant=e2e and key=q-key", q)
		}
		if v := reqs[0].Header.Values("Authorization"); len(v) != 0 {
			t.Errorf("LLM Authorization %q with query auth only", v)
		}
	})

	t.Run("stream sets include_usage and the SSE answer is relayed whole", func(t *testing.T) {
		openai.Reset()
		body := `{"stream":true,"messages":[{"role":"user","content":"What is 1+1?"}]}`
		r := send(t, gw.URL("stream"), curl("", body))
		got := onlyRequest(t, openai)
		b := fields(t, "LLM body", got.Body)
		if !jsonEqual(t, b["stream"], []byte("true")) || !jsonEqual(t, b["stream_options"], []byte(`{"include_usage":true}`)) {
			t.Errorf("LLM stream %s stream_options %s, want true and include_usage", b["stream"], b["stream_options"])
		}
		if r.Status != http.StatusOK || !strings.HasPrefix(r.Header.Get("Content-Type"), "text/event-stream") {
			t.Errorf("client status %d content-type %q", r.Status, r.Header.Get("Content-Type"))
		}
		if !bytes.Equal(r.Body, got.Response) {
			t.Errorf("client got\n%s\nwant the LLM's SSE\n%s", r.Body, got.Response)
		}
		if !strings.Contains(string(r.Body), `"usage":{"prompt_tokens"`) || !strings.HasSuffix(string(r.Body), "data: [DONE]\n\n") {
			t.Errorf("SSE without the usage chunk or [DONE]: %s", r.Body)
		}
	})
}

// TestMakeRunConfig runs run/gateway.yaml (what `make run` starts) with the
// embedded mock LLM, on free ports, and sends the seed's first curl.
func TestMakeRunConfig(t *testing.T) {
	t.Parallel()
	checkout.NeedBuild(t)
	data, err := os.ReadFile(filepath.Join(checkout.Root, "run", "gateway.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	js, err := yaml.YAMLToJSON(data)
	if err != nil {
		t.Fatal(err)
	}
	var doc map[string]any
	if err := json.Unmarshal(js, &doc); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(js), `\"Bearer sk-mock-key\"`) {
		t.Errorf("run/gateway.yaml does not carry the seed's configuration with Bearer sk-mock-key")
	}
	sr := doc["static_resources"].(map[string]any)
	listeners := sr["listeners"].([]any)
	if len(listeners) != 1 {
		t.Fatalf("%d listeners, want 1", len(listeners))
	}
	name, _ := listeners[0].(map[string]any)["name"].(string)
	lsa := listeners[0].(map[string]any)["address"].(map[string]any)["socket_address"].(map[string]any)
	if lsa["address"] != "127.0.0.1" || lsa["port_value"] != float64(9080) {
		t.Errorf("listener %v, want 127.0.0.1:9080", lsa)
	}

	// Same file, free ports: the listener and the admin on port 0 (the
	// gateway picks and prints them), the mock that every cluster points to on
	// a port free now.
	mock := testutil.FreePort(t)
	lsa["port_value"] = 0
	if a, ok := doc["admin"].(map[string]any); ok {
		a["address"].(map[string]any)["socket_address"].(map[string]any)["port_value"] = 0
	}
	for _, c := range sr["clusters"].([]any) {
		la := c.(map[string]any)["load_assignment"].(map[string]any)
		for _, e := range la["endpoints"].([]any) {
			for _, lbe := range e.(map[string]any)["lb_endpoints"].([]any) {
				sa := lbe.(map[string]any)["endpoint"].(map[string]any)["address"].(map[string]any)["socket_address"].(map[string]any)
				if sa["port_value"] != float64(18081) {
					t.Errorf("cluster %v points to port %v, want the mock's 18081", c.(map[string]any)["name"], sa["port_value"])
				}
				sa["port_value"] = mock
			}
		}
	}
	out, err := yaml.Marshal(doc)
	if err != nil {
		t.Fatal(err)
	}
	g := &Gateway{t: t, File: writeBootstrap(t, out)}
	if err := launchFile(g, "-mock-llm", "127.0.0.1:"+strconv.Itoa(mock)); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(g.Stop)

	r := send(t, g.URL(name), curl("api.openai.com:443", seedMathBody))
	if r.Status != http.StatusOK {
		t.Fatalf("status %d: %s", r.Status, r.Body)
	}
	var c struct {
		Model   string `json:"model"`
		Choices []struct {
			Message struct {
				Content string `json:"content"`
			} `json:"message"`
		} `json:"choices"`
	}
	if err := json.Unmarshal(r.Body, &c); err != nil || len(c.Choices) != 1 || c.Choices[0].Message.Content != "1+1 equals 2." || c.Model != "gpt-4" {
		t.Errorf("make run answered %s (%v), want gpt-4 saying 1+1 equals 2.", r.Body, err)
	}
}
