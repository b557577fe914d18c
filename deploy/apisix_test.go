package deploy

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"sigs.k8s.io/yaml"

	"ai-proxy/filter/config"
)

// apisixWasmPlugin is one entry of config.yaml's wasm.plugins.
type apisixWasmPlugin struct {
	Name             string `json:"name"`
	Priority         int    `json:"priority"`
	File             string `json:"file"`
	HTTPRequestPhase string `json:"http_request_phase"`
}

// apisixRoute is an Admin API route object, the fields route.json uses.
type apisixRoute struct {
	ID      string   `json:"id"`
	URI     string   `json:"uri"`
	Methods []string `json:"methods"`
	Plugins map[string]struct {
		Conf json.RawMessage `json:"conf"`
	} `json:"plugins"`
	Upstream struct {
		Type  string         `json:"type"`
		Nodes map[string]int `json:"nodes"`
	} `json:"upstream"`
}

// strictJSON decodes data into v, refusing unknown fields and trailing data.
func strictJSON(data []byte, v any) error {
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return err
	}
	if dec.More() {
		return fmt.Errorf("data after the JSON value")
	}
	return nil
}

func loadAPISIXPlugin(t *testing.T) apisixWasmPlugin {
	t.Helper()
	var doc struct {
		Wasm struct {
			Plugins []apisixWasmPlugin `json:"plugins"`
		} `json:"wasm"`
	}
	js, err := yaml.YAMLToJSON(repoFile(t, "deploy/apisix/config.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	if err := strictJSON(js, &doc); err != nil {
		t.Fatalf("deploy/apisix/config.yaml: %v", err)
	}
	if len(doc.Wasm.Plugins) != 1 {
		t.Fatalf("deploy/apisix/config.yaml: %d wasm plugins, want 1", len(doc.Wasm.Plugins))
	}
	return doc.Wasm.Plugins[0]
}

func loadAPISIXRoute(t *testing.T) apisixRoute {
	t.Helper()
	var r apisixRoute
	if err := strictJSON(repoFile(t, "deploy/apisix/route.json"), &r); err != nil {
		t.Fatalf("deploy/apisix/route.json: %v", err)
	}
	return r
}

// builtinAIPlugins are APISIX's own plugin names the wasm plugin must not take.
var builtinAIPlugins = []string{"ai-proxy", "ai-proxy-multi", "ai-request-rewrite", "ai-prompt-guard",
	"ai-prompt-template", "ai-prompt-decorator", "ai-rag", "ai-cache", "ai-rate-limiting", "ai"}

// TestAPISIXFiles checks the wasm section of config.yaml and the Admin API
// route: one plugin whose name is not an APISIX plugin's, loaded in the
// access phase after authentication, and a route carrying the seed's first
// configuration, which the filter's validator accepts.
func TestAPISIXFiles(t *testing.T) {
	p := loadAPISIXPlugin(t)
	for _, b := range builtinAIPlugins {
		if p.Name == b {
			t.Errorf("plugin name %q is APISIX's own plugin", p.Name)
		}
	}
	if p.Name != "ai-proxy-wasm" || filepath.Base(p.File) != "ai-proxy.wasm" || !filepath.IsAbs(p.File) || p.HTTPRequestPhase != "access" {
		t.Errorf("wasm plugin %+v, want ai-proxy-wasm, an absolute .../ai-proxy.wasm, access phase", p)
	}
	if p.Priority <= 0 || p.Priority >= 2500 || p.Priority == 1040 || p.Priority == 1041 {
		t.Errorf("priority %d: want below the authentication plugins (2500) and not ai-proxy's (1040, 1041)", p.Priority)
	}

	r := loadAPISIXRoute(t)
	if r.ID == "" || r.URI != "/anything" || len(r.Methods) != 1 || r.Methods[0] != "POST" || r.Upstream.Type != "roundrobin" || len(r.Upstream.Nodes) != 1 {
		t.Errorf("route %+v, want the seed's: POST /anything, one roundrobin node", r)
	}
	if len(r.Plugins) != 1 {
		t.Fatalf("route plugins %v, want only %s", r.Plugins, p.Name)
	}
	pl, ok := r.Plugins[p.Name]
	if !ok {
		t.Fatalf("the route does not enable %q (config.yaml's name): %v", p.Name, r.Plugins)
	}
	cfg, err := config.Parse(pl.Conf)
	if err != nil {
		t.Fatalf("the route's conf is rejected by the filter: %v", err)
	}
	if cfg.Passthrough || cfg.Forward != config.ForwardCallout || cfg.Cluster != "api.openai.com:443" || cfg.Endpoint.Scheme != "https" {
		t.Errorf("conf: passthrough %v forward %q cluster %q scheme %q; want what APISIX can serve: a call-out to api.openai.com:443 over https",
			cfg.Passthrough, cfg.Forward, cfg.Cluster, cfg.Endpoint.Scheme)
	}
	if !jsonEqual(t, pl.Conf, []byte(seedProxyConfig)) {
		t.Errorf("conf\n%s\nwant the seed's first configuration\n%s", pl.Conf, seedProxyConfig)
	}
}

func jsonEqual(t *testing.T, a, b []byte) bool {
	t.Helper()
	var x, y any
	if json.Unmarshal(a, &x) != nil || json.Unmarshal(b, &y) != nil {
		return false
	}
	return mustJSON(t, x) == mustJSON(t, y)
}

// TestAPISIXRouteScript runs route.sh against a fake Admin API: it PUTs
// route.json with the key filled in.
func TestAPISIXRouteScript(t *testing.T) {
	if _, err := exec.LookPath("curl"); err != nil {
		t.Fatal("route.sh needs curl, which is not installed")
	}
	var mu sync.Mutex
	var got []*http.Request
	var bodies [][]byte
	admin := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		mu.Lock()
		got, bodies = append(got, r), append(bodies, b)
		mu.Unlock()
		if r.Header.Get("X-API-KEY") != "admin-key" {
			http.Error(w, `{"error_msg":"failed to check token"}`, http.StatusUnauthorized)
			return
		}
		w.Header().Set("Content-Type", "application/json")
		fmt.Fprintf(w, `{"key":"/apisix/routes/ai-proxy-wasm-route","value":%s}`, b)
	}))
	defer admin.Close()
	script := filepath.Join(checkout.Root, "deploy", "apisix", "route.sh")
	run := func(env ...string) (string, error) {
		cmd := exec.Command("sh", script)
		cmd.Env = append([]string{"PATH=" + os.Getenv("PATH"), "APISIX_ADMIN=" + admin.URL}, env...)
		out, err := cmd.CombinedOutput()
		return string(out), err
	}

	out, err := run("ADMIN_API_KEY=admin-key", "OPENAI_API_KEY=sk-real_key-1")
	if err != nil {
		t.Fatalf("route.sh: %v\n%s", err, out)
	}
	mu.Lock()
	if len(got) != 1 || got[0].Method != http.MethodPut || got[0].URL.Path != "/apisix/admin/routes" || got[0].Header.Get("Content-Type") != "application/json" {
		t.Fatalf("admin requests %v", got)
	}
	body := bodies[0]
	mu.Unlock()
	want := bytes.ReplaceAll(repoFile(t, "deploy/apisix/route.json"), []byte("sk-your-openai-api-key"), []byte("sk-real_key-1"))
	if !bytes.Equal(body, want) {
		t.Errorf("route.sh sent\n%s\nwant route.json with the key\n%s", body, want)
	}
	if !strings.Contains(out, `"key":"/apisix/routes/ai-proxy-wasm-route"`) {
		t.Errorf("route.sh did not print the Admin API's answer: %s", out)
	}

	cases := []struct {
		name string
		env  []string
		want string
	}{
		{"no admin key", []string{"OPENAI_API_KEY=sk-1"}, "ADMIN_API_KEY"},
		{"no openai key", []string{"ADMIN_API_KEY=admin-key"}, "OPENAI_API_KEY"},
		{"key with a quote", []string{"ADMIN_API_KEY=admin-key", `OPENAI_API_KEY=sk-"x`}, "characters other than"},
		{"refused by the Admin API", []string{"ADMIN_API_KEY=wrong", "OPENAI_API_KEY=sk-1"}, "failed to check token"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			out, err := run(tc.env...)
			if err == nil || !strings.Contains(out, tc.want) {
				t.Errorf("route.sh: %v, output %q; want a failure mentioning %q", err, out, tc.want)
			}
		})
	}
}

// apisixBootstrap is a bootstrap with one listener "apisix" whose route
// /anything goes to the cluster httpbin (the echo) through the ai-proxy
// filter configured with conf.
func apisixBootstrap(t *testing.T, conf []byte, echoPort int) []byte {
	t.Helper()
	doc := map[string]any{
		"static_resources": map[string]any{
			"listeners": []any{map[string]any{
				"name":    "apisix",
				"address": map[string]any{"socket_address": map[string]any{"address": "127.0.0.1", "port_value": 0}},
				"filter_chains": []any{map[string]any{"filters": []any{map[string]any{
					"name": "envoy.filters.network.http_connection_manager",
					"typed_config": map[string]any{
						"@type":       "type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager",
						"stat_prefix": "apisix",
						"route_config": map[string]any{"virtual_hosts": []any{map[string]any{
							"name": "all", "domains": []any{"*"},
							"routes": []any{map[string]any{"match": map[string]any{"prefix": "/anything"}, "route": map[string]any{"cluster": "httpbin"}}},
						}}},
						"http_filters": []any{
							map[string]any{
								"name": "envoy.filters.http.wasm",
								"typed_config": map[string]any{
									"@type": "type.googleapis.com/envoy.extensions.filters.http.wasm.v3.Wasm",
									"config": map[string]any{
										"name":          "ai-proxy-wasm",
										"configuration": map[string]any{"@type": "type.googleapis.com/google.protobuf.StringValue", "value": string(conf)},
										"vm_config": map[string]any{
											"runtime": "envoy.wasm.runtime.v8",
											"code":    map[string]any{"local": map[string]any{"filename": checkout.Wasm}},
										},
									},
								},
							},
							map[string]any{"name": "envoy.filters.http.router", "typed_config": map[string]any{"@type": "type.googleapis.com/envoy.extensions.filters.http.router.v3.Router"}},
						},
					},
				}}}},
			}},
			"clusters": []any{map[string]any{
				"name": "httpbin", "type": "STATIC",
				"load_assignment": map[string]any{"cluster_name": "httpbin", "endpoints": []any{map[string]any{"lb_endpoints": []any{
					map[string]any{"endpoint": map[string]any{"address": map[string]any{"socket_address": map[string]any{"address": "127.0.0.1", "port_value": echoPort}}}},
				}}}},
			}},
		},
	}
	b, err := yaml.Marshal(doc)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// confWith returns the JSON object conf with its top-level key set to v.
func confWith(t *testing.T, conf []byte, key string, v any) []byte {
	t.Helper()
	var m map[string]any
	if err := json.Unmarshal(conf, &m); err != nil {
		t.Fatal(err)
	}
	m[key] = v
	return []byte(mustJSON(t, m))
}

// TestAPISIXProfileSeed runs the seed's first example under build/gateway
// -profile apisix, which behaves like APISIX's wasm host: the call-out goes
// to host:port directly (no cluster), bodies cannot be replaced. The
// configuration is route.json's conf with override.endpoint pointing at a
// mock LLM on 127.0.0.1 (the gateway dials the endpoint's host:port, the
// plugin's default cluster).
func TestAPISIXProfileSeed(t *testing.T) {
	t.Parallel()
	checkout.NeedBuild(t)
	llm, up := startMocks(t)

	conf := confWith(t, loadAPISIXRoute(t).Plugins["ai-proxy-wasm"].Conf, "override", map[string]any{"endpoint": "http://" + llm.Addr() + "/v1/chat/completions"})
	g, ready := runGateway(t, apisixBootstrap(t, conf, up.Port()), "-profile", "apisix")
	if !ready {
		t.Fatalf("the gateway did not start:\n%s", g.Output())
	}
	status, hdr, body := curlPost(t, gatewayURL(t, g, "listener apisix")+"/anything", "api.openai.com:443", seedMathBody)
	if status != http.StatusOK || hdr.Get("Content-Type") != "application/json" {
		t.Fatalf("client got %d %q: %s\n%s", status, hdr.Get("Content-Type"), body, g.Output())
	}
	reqs := llm.Requests()
	if len(reqs) != 1 {
		t.Fatalf("the LLM received %d requests, want 1", len(reqs))
	}
	r := reqs[0]
	if r.Method != http.MethodPost || r.Path != "/v1/chat/completions" || r.Header.Get("Authorization") != "Bearer sk-your-openai-api-key" {
		t.Errorf("LLM request %s %s Authorization %q", r.Method, r.Path, r.Header.Get("Authorization"))
	}
	var sent struct {
		Model       string          `json:"model"`
		MaxTokens   int             `json:"max_tokens"`
		Temperature float64         `json:"temperature"`
		Messages    json.RawMessage `json:"messages"`
	}
	if err := json.Unmarshal(r.Body, &sent); err != nil || sent.Model != "gpt-4" || sent.MaxTokens != 512 || sent.Temperature != 1.0 || len(sent.Messages) == 0 {
		t.Errorf("LLM body %s (%v)", r.Body, err)
	}
	if !bytes.Equal(body, r.Response) {
		t.Errorf("client body\n%s\nwant the LLM's answer\n%s", body, r.Response)
	}
	var c struct {
		Choices []struct {
			Message struct {
				Content string `json:"content"`
			} `json:"message"`
		} `json:"choices"`
	}
	if err := json.Unmarshal(body, &c); err != nil || len(c.Choices) != 1 || c.Choices[0].Message.Content != "1+1 equals 2." {
		t.Errorf("client body %s, want the completion \"1+1 equals 2.\"", body)
	}
	if n := len(up.Requests()); n != 0 {
		t.Errorf("the route's upstream got %d requests with passthrough=false, want 0", n)
	}
}

// TestAPISIXProfileRefusals: the configurations APISIX cannot serve stop the
// gateway under -profile apisix with a reason, instead of answering wrongly.
func TestAPISIXProfileRefusals(t *testing.T) {
	t.Parallel()
	checkout.NeedBuild(t)
	base := loadAPISIXRoute(t).Plugins["ai-proxy-wasm"].Conf
	cases := []struct {
		name string
		conf []byte
		want string
	}{
		{"passthrough", confWith(t, base, "passthrough", true), "passthrough"},
		{"route mode", confWith(t, base, "forward", "route"), "route"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			g, ready := runGateway(t, apisixBootstrap(t, tc.conf, 9), "-profile", "apisix")
			if ready {
				t.Fatalf("the gateway started with a configuration APISIX cannot serve:\n%s", g.Output())
			}
			out := g.Output()
			if g.ExitCode() != 1 || !strings.Contains(out, "plugin configuration rejected") || !strings.Contains(out, tc.want) {
				t.Errorf("exit %d, stderr:\n%s\nwant exit 1, \"plugin configuration rejected\" and %q", g.ExitCode(), out, tc.want)
			}
		})
	}
}
