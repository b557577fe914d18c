package e2e

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"ai-proxy/harness/bootstrap"
)

// loadConfig parses a bootstrap of the repository with the gateway's loader:
// Envoy's schema (go-control-plane types and their validation rules), then
// the supported subset.
func loadConfig(t *testing.T, rel string, edit func([]byte) []byte) *bootstrap.Config {
	t.Helper()
	data, err := os.ReadFile(filepath.Join(checkout.Root, rel))
	if err != nil {
		t.Fatal(err)
	}
	if edit != nil {
		data = edit(data)
	}
	cfg, err := bootstrap.Parse(data)
	if err != nil {
		t.Fatalf("%s: %v", rel, err)
	}
	return cfg
}

// TestEnvoyYAML checks envoy.yaml against Envoy's schema and that it is the
// seed's three examples: one listener each, the wasm filter with the
// documented configuration, TLS clusters named host:port for the LLMs.
func TestEnvoyYAML(t *testing.T) {
	cfg := loadConfig(t, "envoy.yaml", nil)
	cwd, err := os.Getwd()
	if err != nil {
		t.Fatal(err)
	}
	if cfg.Admin == nil || cfg.Admin.Address != "127.0.0.1:9901" {
		t.Errorf("admin %+v, want 127.0.0.1:9901", cfg.Admin)
	}
	placeholders := strings.NewReplacer(openAIKey, "sk-your-openai-api-key", azureKey, "your-azure-openai-api-key")
	want := []struct {
		name, addr, config string
	}{
		{"openai", "0.0.0.0:9080", placeholders.Replace(seedProxyConfig)},
		{"azure", "0.0.0.0:9081", placeholders.Replace(seedAzureConfig)},
		{"passthrough", "0.0.0.0:9082", placeholders.Replace(seedPassthroughConfig)},
	}
	if len(cfg.Listeners) != len(want) {
		t.Fatalf("%d listeners, want %d", len(cfg.Listeners), len(want))
	}
	for i, w := range want {
		l := cfg.Listeners[i]
		if l.Name != w.name || l.Address != w.addr {
			t.Errorf("listener %d: %s on %s, want %s on %s", i, l.Name, l.Address, w.name, w.addr)
		}
		if len(l.VirtualHosts) != 1 || len(l.VirtualHosts[0].Routes) != 1 {
			t.Fatalf("listener %s: want one virtual host with one route", l.Name)
		}
		rt := l.VirtualHosts[0].Routes[0]
		if rt.Match != bootstrap.MatchPrefix || rt.Value != "/anything" || rt.Cluster != "httpbin" {
			t.Errorf("listener %s route %+v, want prefix /anything → httpbin", l.Name, rt)
		}
		if len(l.Filters) != 1 {
			t.Fatalf("listener %s: %d wasm filters, want 1", l.Name, len(l.Filters))
		}
		f := l.Filters[0]
		if f.Runtime != "envoy.wasm.runtime.v8" {
			t.Errorf("listener %s runtime %q, want envoy.wasm.runtime.v8", l.Name, f.Runtime)
		}
		if f.CodePath != filepath.Join(cwd, "build", "ai-proxy.wasm") {
			t.Errorf("listener %s code %q, want ./build/ai-proxy.wasm", l.Name, f.CodePath)
		}
		if !jsonEqual(t, f.Configuration, []byte(w.config)) {
			t.Errorf("listener %s configuration\n%s\nwant the seed's\n%s", l.Name, f.Configuration, w.config)
		}
		if f.VMKey() != cfg.Listeners[0].Filters[0].VMKey() {
			t.Errorf("listener %s does not share the VM of the first listener", l.Name)
		}
	}
	wantClusters := []struct {
		name, addr, sni string
	}{
		{"api.openai.com:443", "api.openai.com:443", "api.openai.com"},
		{azureCluster, azureCluster, azureHost},
		{"httpbin", "httpbin.org:80", ""},
	}
	if len(cfg.Clusters) != len(wantClusters) {
		t.Fatalf("%d clusters, want %d", len(cfg.Clusters), len(wantClusters))
	}
	for i, w := range wantClusters {
		c := cfg.Clusters[i]
		if c.Name != w.name || c.Type != bootstrap.LogicalDNS || len(c.Endpoints) != 1 || c.Endpoints[0].Addr() != w.addr {
			t.Errorf("cluster %d: %s %s %v, want %s LOGICAL_DNS %s", i, c.Name, c.Type, c.Endpoints, w.name, w.addr)
		}
		switch {
		case w.sni == "" && c.TLS != nil:
			t.Errorf("cluster %s has TLS, want plain HTTP", c.Name)
		case w.sni != "" && (c.TLS == nil || c.TLS.SNI != w.sni || c.TLS.CAFile == ""):
			t.Errorf("cluster %s TLS %+v, want sni %s and a trusted CA", c.Name, c.TLS, w.sni)
		}
	}
}

// TestRunConfigs checks the bootstraps of `make run`: run/gateway.yaml (the
// mock; TestMakeRunConfig runs it) and run/openai.yaml once make has put a
// key in it.
func TestRunConfigs(t *testing.T) {
	cfg := loadConfig(t, "run/gateway.yaml", nil)
	if len(cfg.Listeners) != 1 || cfg.Listeners[0].Address != "127.0.0.1:9080" {
		t.Fatalf("run/gateway.yaml listeners %+v, want one on 127.0.0.1:9080", cfg.Listeners)
	}
	mockConfig := strings.ReplaceAll(seedProxyConfig, openAIKey, "sk-mock-key")
	if f := cfg.Listeners[0].Filters; len(f) != 1 || !jsonEqual(t, f[0].Configuration, []byte(mockConfig)) {
		t.Errorf("run/gateway.yaml: want the seed's first configuration with Bearer sk-mock-key")
	}
	if c := cfg.Cluster("api.openai.com:443"); c == nil || c.TLS != nil || len(c.Endpoints) != 1 || c.Endpoints[0].Addr() != "127.0.0.1:18081" {
		t.Errorf("run/gateway.yaml: want cluster api.openai.com:443 = plain 127.0.0.1:18081 (the mock), got %+v", c)
	}

	raw, err := os.ReadFile(filepath.Join(checkout.Root, "run", "openai.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	if n := bytes.Count(raw, []byte("__OPENAI_API_KEY__")); n != 1 {
		t.Fatalf("run/openai.yaml has %d __OPENAI_API_KEY__ placeholders, want 1", n)
	}
	cfg = loadConfig(t, "run/openai.yaml", func(b []byte) []byte {
		return bytes.ReplaceAll(b, []byte("__OPENAI_API_KEY__"), []byte("sk-real-key"))
	})
	f := cfg.Listeners[0].Filters
	if len(f) != 1 || !strings.Contains(string(f[0].Configuration), `"Bearer sk-real-key"`) {
		t.Errorf("run/openai.yaml: the key does not land in the plugin's Authorization header")
	}
	c := cfg.Cluster("api.openai.com:443")
	if c == nil || c.TLS == nil || c.TLS.SNI != "api.openai.com" || c.TLS.CAFile == "" || c.Endpoints[0].Addr() != "api.openai.com:443" {
		t.Errorf("run/openai.yaml: want a verified TLS cluster to api.openai.com:443, got %+v", c)
	}
}
