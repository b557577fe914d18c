// Package aiproxy is the filter's context types: the plugin (root context)
// holding the validated configuration, and the per-request stream that
// shapes the body, calls the LLM and answers. It is the only package besides
// filter/proxywasm that talks to the host.
package aiproxy

import (
	"errors"
	"strings"

	"ai-proxy/filter/config"
	"ai-proxy/filter/proxywasm"
	"ai-proxy/filter/proxywasm/abi"
	"ai-proxy/filter/shape"
)

// Plugin is one filter configuration on one VM. Everything in it is computed
// once in OnPluginStart and read-only afterwards.
type Plugin struct {
	cfg *config.Config
	// plan shapes request bodies (configured model and options).
	plan *shape.Plan
	// callHeaders are the fixed headers of every LLM call: pseudo-headers,
	// content-type and the configured credentials.
	callHeaders []abi.Header
	// dropped are the lowercased client header names never sent to the LLM
	// by a call-out.
	dropped map[string]struct{}
	metrics metrics
	// needsBodyRequest is set on hosts without body replacement (APISIX),
	// which also deliver the request body only to filters that ask for it.
	needsBodyRequest bool
	// free are deleted streams, zeroed, for NewHttpContext to reuse.
	free []*Stream
}

var _ proxywasm.RootContext = (*Plugin)(nil)

// NewPlugin creates the root context contextID.
func NewPlugin(contextID uint32) proxywasm.RootContext { return &Plugin{} }

// OnVMStart implements proxywasm.RootContext.
func (p *Plugin) OnVMStart(int) bool { return true }

// OnTick implements proxywasm.RootContext.
func (p *Plugin) OnTick() {}

// OnPluginStart implements proxywasm.RootContext: it parses and validates the
// configuration; a bad one is rejected here with a log line naming the field.
func (p *Plugin) OnPluginStart(size int) bool {
	data, err := proxywasm.GetPluginConfiguration()
	if err != nil {
		proxywasm.LogError("ai-proxy: cannot read the plugin configuration: " + err.Error())
		return false
	}
	cfg, err := config.Parse(data)
	if err != nil {
		proxywasm.LogError("ai-proxy: " + err.Error())
		return false
	}
	p.needsBodyRequest = !hostCanReplaceBodies()
	if (cfg.Passthrough || cfg.Forward == config.ForwardRoute) && p.needsBodyRequest {
		what := `forward "route"`
		if cfg.Passthrough {
			what = "passthrough=true"
		}
		proxywasm.LogError("ai-proxy: invalid configuration: " + what + " needs a proxy that can replace request bodies, and this one cannot (APISIX's wasm host does not implement proxy_set_buffer_bytes); use forward \"callout\" with passthrough=false here")
		return false
	}
	p.setConfig(cfg)
	proxywasm.LogInfo("ai-proxy: configured provider " + string(cfg.Provider) + ", endpoint " + cfg.Endpoint.Scheme + "://" + cfg.Endpoint.Authority + ", cluster " + cfg.Cluster)
	return true
}

// hostCanReplaceBodies probes the host: a host that implements body
// replacement answers proxy_set_buffer_bytes outside a stream with some
// argument error; one that does not (APISIX) answers UNIMPLEMENTED.
func hostCanReplaceBodies() bool {
	err := proxywasm.ReplaceBuffer(abi.BufferHTTPRequestBody, nil)
	return !errors.Is(err, proxywasm.ErrUnimplemented)
}

// clientHeadersNeverForwarded are dropped from the client's headers on the
// LLM call: credentials of the client, headers the call sets itself, and
// hop-by-hop headers.
var clientHeadersNeverForwarded = []string{
	"authorization", "proxy-authorization", "cookie", "api-key", "x-api-key",
	"host", "content-length", "content-type", "accept-encoding", "transfer-encoding",
	"connection", "keep-alive", "proxy-connection", "te", "trailer", "upgrade", "expect",
}

func (p *Plugin) setConfig(cfg *config.Config) {
	p.cfg = cfg
	p.plan = shape.NewPlan(cfg.Model, cfg.Options)
	p.callHeaders = []abi.Header{
		{":method", "POST"},
		{":path", cfg.Endpoint.Path},
		{":authority", cfg.Endpoint.Authority},
		{":scheme", cfg.Endpoint.Scheme},
		{"content-type", "application/json"},
	}
	for _, h := range cfg.AuthHeaders {
		p.callHeaders = append(p.callHeaders, abi.Header{h[0], h[1]})
	}
	p.dropped = make(map[string]struct{}, len(clientHeadersNeverForwarded)+len(cfg.AuthHeaderNames))
	for _, n := range clientHeadersNeverForwarded {
		p.dropped[n] = struct{}{}
	}
	for _, n := range cfg.AuthHeaderNames {
		p.dropped[strings.ToLower(n)] = struct{}{}
	}
	p.metrics.init(string(cfg.Provider))
}

// forwardable reports whether the client header name goes to the LLM.
func (p *Plugin) forwardable(name string) bool {
	if name == "" || name[0] == ':' {
		return false
	}
	if strings.HasPrefix(name, "x-envoy-") {
		return false
	}
	_, drop := p.dropped[name]
	return !drop
}

// NewHttpContext implements proxywasm.RootContext. Streams are recycled (see
// Stream.OnHttpContextDelete): a request then allocates no Stream.
func (p *Plugin) NewHttpContext(contextID uint32) proxywasm.HttpContext {
	var s *Stream
	if n := len(p.free); n > 0 {
		s = p.free[n-1]
		p.free[n-1] = nil
		p.free = p.free[:n-1]
	} else {
		s = new(Stream)
	}
	s.plugin = p
	return s
}

// maxFreeStreams bounds the recycled streams a plugin keeps.
const maxFreeStreams = 256
