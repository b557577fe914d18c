package bootstrap

import "sigs.k8s.io/yaml"

// ListenerSpec is one listener of a generated bootstrap: an HTTP connection
// manager with one route and, when Plugin is set, the ai-proxy wasm filter.
type ListenerSpec struct {
	Name        string
	Port        int    // 0: a free port is picked when the gateway starts
	BufferLimit int    // per_connection_buffer_limit_bytes; 0: Envoy's default (1 MiB)
	Plugin      string // the ai-proxy configuration (JSON); "": no wasm filter
	Cluster     string // the route's cluster
	Prefix      string // the route's match prefix; "": "/"
	Timeout     string // the route's timeout ("10s"); "": Envoy's default
}

// ClusterSpec is one STATIC (by default) cluster of a generated bootstrap.
type ClusterSpec struct {
	Name string
	Host string // "": 127.0.0.1
	Port int
	Type string // "": STATIC
	TLS  bool   // envoy.transport_sockets.tls, no validation_context
	SNI  string
}

// Spec describes an Envoy bootstrap in the supported subset, for tests and
// benchmarks that generate one (admin and listeners on 127.0.0.1).
type Spec struct {
	AdminPort int // 0: a free port is picked when the gateway starts
	Listeners []ListenerSpec
	Clusters  []ClusterSpec
	WasmFile  string // "": build/ai-proxy.wasm, relative to the gateway's working directory
}

// Doc is the bootstrap as a YAML/JSON document.
func (b Spec) Doc() map[string]any {
	wasm := b.WasmFile
	if wasm == "" {
		wasm = "build/ai-proxy.wasm"
	}
	sock := func(host string, port int) map[string]any {
		return map[string]any{"socket_address": map[string]any{"address": host, "port_value": port}}
	}
	var listeners []any
	for _, l := range b.Listeners {
		route := map[string]any{"cluster": l.Cluster}
		if l.Timeout != "" {
			route["timeout"] = l.Timeout
		}
		prefix := l.Prefix
		if prefix == "" {
			prefix = "/"
		}
		var filters []any
		if l.Plugin != "" {
			filters = append(filters, map[string]any{
				"name": "envoy.filters.http.wasm",
				"typed_config": map[string]any{
					"@type": "type.googleapis.com/envoy.extensions.filters.http.wasm.v3.Wasm",
					"config": map[string]any{
						"name":    "ai-proxy",
						"root_id": "ai-proxy",
						"configuration": map[string]any{
							"@type": "type.googleapis.com/google.protobuf.StringValue",
							"value": l.Plugin,
						},
						"vm_config": map[string]any{
							"runtime": "envoy.wasm.runtime.v8",
							"code":    map[string]any{"local": map[string]any{"filename": wasm}},
						},
					},
				},
			})
		}
		filters = append(filters, map[string]any{
			"name": "envoy.filters.http.router",
			"typed_config": map[string]any{
				"@type": "type.googleapis.com/envoy.extensions.filters.http.router.v3.Router",
			},
		})
		ln := map[string]any{
			"name":    l.Name,
			"address": sock("127.0.0.1", l.Port),
			"filter_chains": []any{map[string]any{"filters": []any{map[string]any{
				"name": "envoy.filters.network.http_connection_manager",
				"typed_config": map[string]any{
					"@type":       "type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager",
					"stat_prefix": l.Name,
					"route_config": map[string]any{
						"name": l.Name + "_route",
						"virtual_hosts": []any{map[string]any{
							"name":    "all",
							"domains": []any{"*"},
							"routes": []any{map[string]any{
								"match": map[string]any{"prefix": prefix},
								"route": route,
							}},
						}},
					},
					"http_filters": filters,
				},
			}}}},
		}
		if l.BufferLimit > 0 {
			ln["per_connection_buffer_limit_bytes"] = l.BufferLimit
		}
		listeners = append(listeners, ln)
	}
	var clusters []any
	for _, c := range b.Clusters {
		host, typ := c.Host, c.Type
		if host == "" {
			host = "127.0.0.1"
		}
		if typ == "" {
			typ = "STATIC"
		}
		cl := map[string]any{
			"name":            c.Name,
			"type":            typ,
			"connect_timeout": "1s",
			"load_assignment": map[string]any{
				"cluster_name": c.Name,
				"endpoints": []any{map[string]any{"lb_endpoints": []any{map[string]any{
					"endpoint": map[string]any{"address": sock(host, c.Port)},
				}}}},
			},
		}
		if c.TLS {
			tls := map[string]any{"@type": "type.googleapis.com/envoy.extensions.transport_sockets.tls.v3.UpstreamTlsContext"}
			if c.SNI != "" {
				tls["sni"] = c.SNI
			}
			cl["transport_socket"] = map[string]any{"name": "envoy.transport_sockets.tls", "typed_config": tls}
		}
		clusters = append(clusters, cl)
	}
	return map[string]any{
		"admin":            map[string]any{"address": sock("127.0.0.1", b.AdminPort)},
		"static_resources": map[string]any{"listeners": listeners, "clusters": clusters},
	}
}

// YAML is the bootstrap file.
func (b Spec) YAML() []byte {
	out, err := yaml.Marshal(b.Doc())
	if err != nil {
		panic(err) // plain maps: cannot fail
	}
	return out
}
