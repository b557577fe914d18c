package main

import (
	"bytes"
	"encoding/json"
	"io"
	"testing"

	"ai-proxy/harness/bootstrap"
)

func TestChatBody(t *testing.T) {
	for _, n := range []int{200, 1024, 4096} {
		b := chatBody(n)
		if len(b) != n {
			t.Errorf("chatBody(%d) has %d bytes", n, len(b))
		}
		var req struct {
			Stream   *bool `json:"stream"`
			Messages []struct {
				Role, Content string
			} `json:"messages"`
		}
		if err := json.Unmarshal(b, &req); err != nil {
			t.Fatalf("chatBody(%d) is not JSON: %v\n%s", n, err, b)
		}
		if req.Stream == nil || *req.Stream || len(req.Messages) != 2 || req.Messages[1].Role != "user" {
			t.Errorf("chatBody(%d) = %s", n, b)
		}
		if !bytes.Contains(b, []byte(`"stream":false`)) {
			t.Errorf("chatBody(%d) lacks \"stream\":false (turned into a stream by the setup)", n)
		}
	}
}

// The generated bootstrap is one the gateway accepts: Envoy's schema, the
// supported subset, one listener per configuration with or without the
// filter.
func TestBootstrapYAML(t *testing.T) {
	data := bootstrapYAML("/nonexistent/ai-proxy.wasm",
		[]bootstrap.ListenerSpec{{Name: "plain", Cluster: "llm"}, {Name: "route", Plugin: routeConf, Cluster: "llm"}, {Name: "callout", Plugin: calloutConf, Cluster: "llm"}},
		[]bootstrap.ClusterSpec{{Name: "llm", Port: 18081}})
	cfg, err := bootstrap.Parse(data)
	if err != nil {
		t.Fatalf("bootstrap.Parse: %v\n%s", err, data)
	}
	if len(cfg.Listeners) != 3 {
		t.Fatalf("%d listeners, want 3", len(cfg.Listeners))
	}
	for i, wantFilters := range []int{0, 1, 1} {
		l := cfg.Listeners[i]
		if len(l.Filters) != wantFilters {
			t.Errorf("listener %s: %d wasm filters, want %d", l.Name, len(l.Filters), wantFilters)
		}
		if l.Address != "127.0.0.1:0" {
			t.Errorf("listener %s on %s, want 127.0.0.1:0", l.Name, l.Address)
		}
	}
	if c := cfg.Cluster("llm"); c == nil {
		t.Error("no cluster llm")
	}
}

func TestParseFlags(t *testing.T) {
	o, err := parseFlags([]string{"-quick", "-phases", "throughput,streams"}, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	if !o.phases["throughput"] || !o.phases["streams"] || o.phases["startup"] || o.rssRequests != 5000 {
		t.Errorf("options %+v", o)
	}
	o, err = parseFlags(nil, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range allPhases {
		if !o.phases[p] {
			t.Errorf("phase %s not on by default", p)
		}
	}
	if o.rssRequests != 100_000 || o.streamRequests != 1000 || o.concurrency != 16 {
		t.Errorf("defaults %+v", o)
	}
	for _, args := range [][]string{{"-phases", "nope"}, {"-concurrency", "0"}, {"extra"}} {
		if _, err := parseFlags(args, io.Discard); err == nil {
			t.Errorf("parseFlags(%q) accepted", args)
		}
	}
}
