package bootstrap

import (
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"strconv"
	"strings"
	"testing"
	"time"

	"sigs.k8s.io/yaml"
)

func readFull(t *testing.T) []byte {
	t.Helper()
	b, err := os.ReadFile("testdata/full.yaml")
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestParseFull(t *testing.T) {
	cwd, err := os.Getwd()
	if err != nil {
		t.Fatal(err)
	}
	cfg, err := Parse(readFull(t))
	if err != nil {
		t.Fatalf("Parse: %v", err)
	}
	if cfg.Admin == nil || cfg.Admin.Address != "127.0.0.1:9901" {
		t.Errorf("admin = %+v", cfg.Admin)
	}
	if len(cfg.Listeners) != 2 {
		t.Fatalf("%d listeners", len(cfg.Listeners))
	}
	main := cfg.Listeners[0]
	want := &Listener{
		Name:        "main",
		Address:     "0.0.0.0:10000",
		BufferLimit: 32768,
		StatPrefix:  "ingress_http",
		VirtualHosts: []*VirtualHost{
			{Name: "api", Domains: []string{"api.example.com", "*.example.org", "example.net:8080"}, Routes: []*Route{
				{Match: MatchPath, Value: "/v1/chat/completions", Cluster: "llm", Timeout: 0},
				{Match: MatchPrefix, Value: "/", Cluster: "backend", Timeout: DefaultRouteTimeout},
			}},
			{Name: "default", Domains: []string{"*"}, Routes: []*Route{
				{Match: MatchPrefix, Value: "/slow", Cluster: "backend", Timeout: 120 * time.Second},
			}},
		},
		Filters: []*WasmFilter{
			{
				Name:                        "envoy.filters.http.wasm",
				AllowOnHeadersStopIteration: true,
				PluginName:                  "ai-proxy",
				RootID:                      "ai_proxy_root",
				Configuration:               []byte(`{"provider":"openai"}`),
				VMID:                        "ai-proxy-vm",
				Runtime:                     "envoy.wasm.runtime.v8",
				VMConfiguration:             []byte("vm-config"),
				CodePath:                    filepath.Join(cwd, "build/ai-proxy.wasm"),
			},
			{
				Name:          "second",
				Configuration: []byte(`{"a":1,"b":["x"]}`),
				CodePath:      "/abs/other.wasm",
			},
		},
	}
	if !reflect.DeepEqual(main, want) {
		t.Errorf("listener main:\n got %s\nwant %s", dump(t, main), dump(t, want))
	}
	second := cfg.Listeners[1]
	if second.Name != "listener_1" || second.Address != "127.0.0.1:10001" || second.BufferLimit != DefaultBufferLimit ||
		!second.StripAnyHostPort || !second.IgnorePortInHostMatching || len(second.Filters) != 0 {
		t.Errorf("listener 1 = %s", dump(t, second))
	}
	wantClusters := []*Cluster{
		{Name: "backend", Type: Static, ConnectTimeout: DefaultConnectTimeout, Network: "tcp",
			Endpoints: []Endpoint{{"127.0.0.1", 8080}, {"::1", 8081}}},
		{Name: "llm", Type: LogicalDNS, ConnectTimeout: 250 * time.Millisecond, Network: "tcp4",
			Endpoints: []Endpoint{{"api.openai.com", 443}},
			TLS:       &TLS{SNI: "api.openai.com", CAFile: filepath.Join(cwd, "certs/ca.pem"), ALPN: []string{"http/1.1"}}},
		{Name: "dns", Type: StrictDNS, ConnectTimeout: DefaultConnectTimeout, Network: "tcp",
			Endpoints: []Endpoint{{"localhost", 80}}},
	}
	if !reflect.DeepEqual(cfg.Clusters, wantClusters) {
		t.Errorf("clusters:\n got %s\nwant %s", dump(t, cfg.Clusters), dump(t, wantClusters))
	}
	if cfg.Cluster("llm") != cfg.Clusters[1] || cfg.Cluster("nope") != nil {
		t.Error("Config.Cluster lookup")
	}
	if got := cfg.Clusters[0].Endpoints[1].Addr(); got != "[::1]:8081" {
		t.Errorf("Addr = %q", got)
	}
	if main.Filters[0].VMKey() == main.Filters[1].VMKey() {
		t.Error("filters with different code share a VM key")
	}
}

func dump(t *testing.T, v any) string {
	b, err := yaml.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// TestParseJSON: the same bootstrap written as JSON parses the same.
func TestParseJSON(t *testing.T) {
	js, err := yaml.YAMLToJSON(readFull(t))
	if err != nil {
		t.Fatal(err)
	}
	fromJSON, err := Parse(js)
	if err != nil {
		t.Fatalf("Parse(JSON): %v", err)
	}
	fromYAML, err := Parse(readFull(t))
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(fromJSON, fromYAML) {
		t.Error("JSON and YAML forms differ")
	}
}

func TestLoad(t *testing.T) {
	if _, err := Load("testdata/full.yaml"); err != nil {
		t.Fatalf("Load: %v", err)
	}
	path := filepath.Join(t.TempDir(), "bad.yaml")
	if err := os.WriteFile(path, []byte("static_resources: {listeners: [{name: x, foo: 1}]}"), 0o644); err != nil {
		t.Fatal(err)
	}
	_, err := Load(path)
	if err == nil || !strings.HasPrefix(err.Error(), path+": static_resources.listeners[0]: unknown field \"foo\"") {
		t.Errorf("Load error = %v", err)
	}
	if _, err := Load(filepath.Join(t.TempDir(), "missing.yaml")); !errors.Is(err, ErrInvalid) {
		t.Errorf("missing file: %v", err)
	}
}

// Paths into testdata/full.yaml used by the mutation cases.
const (
	lst0   = "static_resources.listeners.0"
	hcm0   = lst0 + ".filter_chains.0.filters.0.typed_config"
	route0 = hcm0 + ".route_config.virtual_hosts.0.routes.0"
	wasm0  = hcm0 + ".http_filters.0.typed_config.config"
	cl0    = "static_resources.clusters.0"
	cl1    = "static_resources.clusters.1"

	pLst0  = "static_resources.listeners[0]"
	pHCM0  = pLst0 + ".filter_chains[0].filters[0].typed_config"
	pWasm0 = pHCM0 + ".http_filters[0].typed_config.config"
)

func TestParseRefusals(t *testing.T) {
	cases := []struct {
		name string
		edit func(doc map[string]any)
		kind error
		want string // the whole one-line error
	}{
		{
			name: "unsupported network filter",
			edit: func(d map[string]any) {
				set(d, lst0+".filter_chains.0.filters.0", map[string]any{
					"name": "envoy.filters.network.tcp_proxy",
					"typed_config": map[string]any{
						"@type":       "type.googleapis.com/envoy.extensions.filters.network.tcp_proxy.v3.TcpProxy",
						"stat_prefix": "tcp", "cluster": "backend",
					},
				})
			},
			kind: ErrUnsupported,
			want: pLst0 + `.filter_chains[0].filters[0]: unsupported network filter "envoy.filters.network.tcp_proxy" (type type.googleapis.com/envoy.extensions.filters.network.tcp_proxy.v3.TcpProxy)`,
		},
		{
			name: "known message as network filter",
			edit: func(d map[string]any) {
				set(d, hcm0, map[string]any{"@type": "type.googleapis.com/envoy.extensions.filters.http.router.v3.Router"})
			},
			kind: ErrUnsupported,
			want: pLst0 + `.filter_chains[0].filters[0]: unsupported network filter "envoy.filters.network.http_connection_manager" (type type.googleapis.com/envoy.extensions.filters.http.router.v3.Router)`,
		},
		{
			name: "unsupported http filter",
			edit: func(d map[string]any) {
				set(d, hcm0+".http_filters.1", map[string]any{
					"name":         "envoy.filters.http.lua",
					"typed_config": map[string]any{"@type": "type.googleapis.com/envoy.extensions.filters.http.lua.v3.Lua"},
				})
			},
			kind: ErrUnsupported,
			want: pHCM0 + `.http_filters[1]: unsupported http filter "envoy.filters.http.lua" (type type.googleapis.com/envoy.extensions.filters.http.lua.v3.Lua)`,
		},
		{
			name: "two filter chains",
			edit: func(d map[string]any) {
				fcs := get(d, lst0+".filter_chains").([]any)
				set(d, lst0+".filter_chains", append(fcs, fcs[0]))
			},
			kind: ErrUnsupported,
			want: pLst0 + `.filter_chains: exactly one filter chain is supported, got 2`,
		},
		{
			name: "router not last",
			edit: func(d map[string]any) {
				hfs := get(d, hcm0+".http_filters").([]any)
				set(d, hcm0+".http_filters", []any{hfs[2], hfs[0]})
			},
			kind: ErrUnsupported,
			want: pHCM0 + `.http_filters[0]: envoy.filters.http.router must be the last http filter`,
		},
		{
			name: "no router",
			edit: func(d map[string]any) {
				hfs := get(d, hcm0+".http_filters").([]any)
				set(d, hcm0+".http_filters", hfs[:1])
			},
			kind: ErrUnsupported,
			want: pHCM0 + `.http_filters[0]: the last http filter must be envoy.filters.http.router`,
		},
		{
			name: "remote code: unknown cluster",
			edit: func(d map[string]any) {
				set(d, wasm0+".vm_config.code", remoteSource("nope", testSHA, nil))
			},
			kind: ErrInvalid,
			want: pWasm0 + `.vm_config.code.remote.http_uri.cluster: unknown cluster "nope"`,
		},
		{
			name: "remote code: short sha256",
			edit: func(d map[string]any) {
				set(d, wasm0+".vm_config.code", remoteSource("backend", "abc", nil))
			},
			kind: ErrInvalid,
			want: pWasm0 + `.vm_config.code.remote.sha256: want 64 hex digits, got "abc"`,
		},
		{
			name: "remote code: no sha256",
			edit: func(d map[string]any) {
				set(d, wasm0+".vm_config.code", remoteSource("backend", "", nil))
			},
			kind: ErrInvalid,
			want: pWasm0 + `.vm_config.code.remote.sha256: schema: value length must be at least 1 runes`,
		},
		{
			name: "remote code: not an http URL",
			edit: func(d map[string]any) {
				src := remoteSource("backend", testSHA, nil)
				src["remote"].(map[string]any)["http_uri"].(map[string]any)["uri"] = "ftp://example.com/f.wasm"
				set(d, wasm0+".vm_config.code", src)
			},
			kind: ErrInvalid,
			want: pWasm0 + `.vm_config.code.remote.http_uri.uri: want an http or https URL with a host, got "ftp://example.com/f.wasm"`,
		},
		{
			name: "remote code: retry_on",
			edit: func(d map[string]any) {
				set(d, wasm0+".vm_config.code", remoteSource("backend", testSHA, map[string]any{"retry_on": "5xx"}))
			},
			kind: ErrUnsupported,
			want: pWasm0 + `.vm_config.code.remote.retry_policy: field "retry_on" is not supported`,
		},
		{
			name: "remote code: max below base interval",
			edit: func(d map[string]any) {
				set(d, wasm0+".vm_config.code", remoteSource("backend", testSHA, map[string]any{
					"retry_back_off": map[string]any{"base_interval": "2s", "max_interval": "1s"}}))
			},
			kind: ErrInvalid,
			want: pWasm0 + `.vm_config.code.remote.retry_policy.retry_back_off.max_interval: must not be below base_interval`,
		},
		{
			name: "inline code",
			edit: func(d map[string]any) {
				set(d, wasm0+".vm_config.code.local", map[string]any{"inline_string": "x"})
			},
			kind: ErrUnsupported,
			want: pWasm0 + `.vm_config.code.local: field "inline_string" is not supported`,
		},
		{
			name: "configuration type",
			edit: func(d map[string]any) {
				set(d, wasm0+".configuration", map[string]any{"@type": "type.googleapis.com/google.protobuf.UInt32Value", "value": 3})
			},
			kind: ErrUnsupported,
			want: pWasm0 + `.configuration: type type.googleapis.com/google.protobuf.UInt32Value is not supported (use google.protobuf.StringValue)`,
		},
		{
			name: "plugin fail_open",
			edit: func(d map[string]any) { set(d, wasm0+".fail_open", true) },
			kind: ErrUnsupported,
			want: pWasm0 + `: field "fail_open" is not supported`,
		},
		{
			name: "rds",
			edit: func(d map[string]any) {
				del(d, hcm0+".route_config")
				set(d, hcm0+".rds", map[string]any{"route_config_name": "r", "config_source": map[string]any{"ads": map[string]any{}}})
			},
			kind: ErrUnsupported,
			want: pHCM0 + `: field "rds" is not supported`,
		},
		{
			name: "http2 codec",
			edit: func(d map[string]any) { set(d, hcm0+".codec_type", "HTTP2") },
			kind: ErrUnsupported,
			want: pHCM0 + `.codec_type: codec HTTP2 is not supported (AUTO or HTTP1)`,
		},
		{
			name: "hcm access log",
			edit: func(d map[string]any) { set(d, hcm0+".use_remote_address", true) },
			kind: ErrUnsupported,
			want: pHCM0 + `: field "use_remote_address" is not supported`,
		},
		{
			name: "regex match",
			edit: func(d map[string]any) {
				set(d, route0+".match", map[string]any{"safe_regex": map[string]any{"regex": "/v1/.*"}})
			},
			kind: ErrUnsupported,
			want: pHCM0 + `.route_config.virtual_hosts[0].routes[0].match: field "safe_regex" is not supported`,
		},
		{
			name: "header match",
			edit: func(d map[string]any) {
				set(d, route0+".match.headers", []any{map[string]any{"name": "x", "present_match": true}})
			},
			kind: ErrUnsupported,
			want: pHCM0 + `.route_config.virtual_hosts[0].routes[0].match: field "headers" is not supported`,
		},
		{
			name: "direct response",
			edit: func(d map[string]any) {
				del(d, route0+".route")
				set(d, route0+".direct_response", map[string]any{"status": 200})
			},
			kind: ErrUnsupported,
			want: pHCM0 + `.route_config.virtual_hosts[0].routes[0]: field "direct_response" is not supported`,
		},
		{
			name: "prefix rewrite",
			edit: func(d map[string]any) { set(d, route0+".route.prefix_rewrite", "/x") },
			kind: ErrUnsupported,
			want: pHCM0 + `.route_config.virtual_hosts[0].routes[0].route: field "prefix_rewrite" is not supported`,
		},
		{
			name: "unknown cluster",
			edit: func(d map[string]any) { set(d, route0+".route.cluster", "nope") },
			kind: ErrInvalid,
			want: pHCM0 + `.route_config.virtual_hosts[0].routes[0].route.cluster: unknown cluster "nope"`,
		},
		{
			name: "duplicate domain",
			edit: func(d map[string]any) {
				set(d, hcm0+".route_config.virtual_hosts.1.domains", []any{"*", "api.example.com"})
			},
			kind: ErrInvalid,
			want: pHCM0 + `.route_config.virtual_hosts[1].domains[1]: domain "api.example.com" is already used by virtual host "api"`,
		},
		{
			name: "EDS cluster",
			edit: func(d map[string]any) { set(d, cl0+".type", "EDS") },
			kind: ErrUnsupported,
			want: `static_resources.clusters[0].type: cluster type EDS is not supported (STATIC, STRICT_DNS or LOGICAL_DNS)`,
		},
		{
			name: "lb policy",
			edit: func(d map[string]any) { set(d, cl0+".lb_policy", "LEAST_REQUEST") },
			kind: ErrUnsupported,
			want: `static_resources.clusters[0]: field "lb_policy" is not supported`,
		},
		{
			name: "protocol options",
			edit: func(d map[string]any) {
				set(d, cl0+".typed_extension_protocol_options", map[string]any{
					"envoy.extensions.upstreams.http.v3.HttpProtocolOptions": map[string]any{
						"@type":                "type.googleapis.com/envoy.extensions.upstreams.http.v3.HttpProtocolOptions",
						"explicit_http_config": map[string]any{"http2_protocol_options": map[string]any{}},
					},
				})
			},
			kind: ErrUnsupported,
			want: `static_resources.clusters[0].typed_extension_protocol_options[envoy.extensions.upstreams.http.v3.HttpProtocolOptions]: unsupported type "type.googleapis.com/envoy.extensions.upstreams.http.v3.HttpProtocolOptions"`,
		},
		{
			name: "static cluster with host name",
			edit: func(d map[string]any) {
				set(d, cl0+".load_assignment.endpoints.0.lb_endpoints.0.endpoint.address.socket_address.address", "backend.local")
			},
			kind: ErrInvalid,
			want: `static_resources.clusters[0].load_assignment.endpoints[0].lb_endpoints[0].endpoint.address.socket_address.address: a STATIC cluster needs an IP address, got "backend.local"`,
		},
		{
			name: "logical dns with two endpoints",
			edit: func(d map[string]any) {
				eps := get(d, cl1+".load_assignment.endpoints.0.lb_endpoints").([]any)
				set(d, cl1+".load_assignment.endpoints.0.lb_endpoints", append(eps, eps[0]))
			},
			kind: ErrInvalid,
			want: `static_resources.clusters[1].load_assignment: a LOGICAL_DNS cluster needs exactly one endpoint, got 2`,
		},
		{
			name: "endpoint weight",
			edit: func(d map[string]any) {
				set(d, cl0+".load_assignment.endpoints.0.lb_endpoints.0.load_balancing_weight", 3)
			},
			kind: ErrUnsupported,
			want: `static_resources.clusters[0].load_assignment.endpoints[0].lb_endpoints[0]: field "load_balancing_weight" is not supported`,
		},
		{
			name: "unsupported transport socket",
			edit: func(d map[string]any) {
				set(d, cl0+".transport_socket", map[string]any{
					"name":         "envoy.transport_sockets.raw_buffer",
					"typed_config": map[string]any{"@type": "type.googleapis.com/envoy.extensions.transport_sockets.raw_buffer.v3.RawBuffer"},
				})
			},
			kind: ErrUnsupported,
			want: `static_resources.clusters[0].transport_socket: unsupported transport socket "envoy.transport_sockets.raw_buffer" (type type.googleapis.com/envoy.extensions.transport_sockets.raw_buffer.v3.RawBuffer)`,
		},
		{
			name: "san matcher",
			edit: func(d map[string]any) {
				set(d, cl1+".transport_socket.typed_config.common_tls_context.validation_context.match_typed_subject_alt_names",
					[]any{map[string]any{"san_type": "DNS", "matcher": map[string]any{"exact": "api.openai.com"}}})
			},
			kind: ErrUnsupported,
			want: `static_resources.clusters[1].transport_socket.typed_config.common_tls_context.validation_context: field "match_typed_subject_alt_names" is not supported`,
		},
		{
			name: "client certificate",
			edit: func(d map[string]any) {
				set(d, cl1+".transport_socket.typed_config.common_tls_context.tls_certificates",
					[]any{map[string]any{"certificate_chain": map[string]any{"filename": "c.pem"}}})
			},
			kind: ErrUnsupported,
			want: `static_resources.clusters[1].transport_socket.typed_config.common_tls_context: field "tls_certificates" is not supported`,
		},
		{
			name: "node",
			edit: func(d map[string]any) { set(d, "node", map[string]any{"id": "n1"}) },
			kind: ErrUnsupported,
			want: `bootstrap: field "node" is not supported`,
		},
		{
			name: "admin access log",
			edit: func(d map[string]any) { set(d, "admin.profile_path", "/tmp/x") },
			kind: ErrUnsupported,
			want: `admin: field "profile_path" is not supported`,
		},
		{
			name: "named port",
			edit: func(d map[string]any) {
				set(d, lst0+".address.socket_address", map[string]any{"address": "0.0.0.0", "named_port": "http"})
			},
			kind: ErrUnsupported,
			want: pLst0 + `.address.socket_address: field "named_port" is not supported`,
		},
		{
			name: "listener filters",
			edit: func(d map[string]any) {
				set(d, lst0+".listener_filters", []any{map[string]any{
					"name":         "envoy.filters.listener.tls_inspector",
					"typed_config": map[string]any{"@type": "type.googleapis.com/envoy.extensions.filters.listener.tls_inspector.v3.TlsInspector"},
				}})
			},
			kind: ErrUnsupported,
			want: pLst0 + `.listener_filters[0]: unsupported listener filter "envoy.filters.listener.tls_inspector" (type type.googleapis.com/envoy.extensions.filters.listener.tls_inspector.v3.TlsInspector)`,
		},
		{
			name: "duplicate cluster",
			edit: func(d map[string]any) {
				cls := get(d, "static_resources.clusters").([]any)
				set(d, "static_resources.clusters", append(cls, cls[0]))
			},
			kind: ErrInvalid,
			want: `static_resources.clusters[3].name: duplicate cluster name "backend"`,
		},
		{
			name: "no listeners",
			edit: func(d map[string]any) { del(d, "static_resources.listeners") },
			kind: ErrUnsupported,
			want: `static_resources.listeners: at least one listener is required`,
		},
		{
			name: "unknown field",
			edit: func(d map[string]any) { set(d, route0+".route.clustr", "x") },
			kind: ErrInvalid,
			want: pHCM0 + `.route_config.virtual_hosts[0].routes[0].route: unknown field "clustr"`,
		},
		{
			name: "port out of range",
			edit: func(d map[string]any) { set(d, lst0+".address.socket_address.port_value", 70000) },
			kind: ErrInvalid,
			want: pLst0 + `.address.socket_address.port_value: schema: value must be less than or equal to 65535`,
		},
		{
			name: "schema rule inside typed_config",
			edit: func(d map[string]any) { set(d, hcm0+".stat_prefix", "") },
			kind: ErrInvalid,
			want: pHCM0 + `.stat_prefix: schema: value length must be at least 1 runes`,
		},
		{
			name: "wrong value type",
			edit: func(d map[string]any) { set(d, lst0+".per_connection_buffer_limit_bytes", "lots") },
			kind: ErrInvalid,
			want: pLst0 + `.per_connection_buffer_limit_bytes: schema: expected a number`,
		},
		{
			name: "unknown enum name",
			edit: func(d map[string]any) { set(d, cl0+".type", "MAGIC") },
			kind: ErrInvalid,
			want: `static_resources.clusters[0].type: schema: unknown value "MAGIC" for enum envoy.config.cluster.v3.Cluster.DiscoveryType`,
		},
		{
			name: "duration as number",
			edit: func(d map[string]any) { set(d, route0+".route.timeout", 5) },
			kind: ErrInvalid,
			want: pHCM0 + `.route_config.virtual_hosts[0].routes[0].route.timeout: schema: expected a string`,
		},
		{
			name: "bad duration",
			edit: func(d map[string]any) { set(d, route0+".route.timeout", "5 minutes") },
			kind: ErrInvalid,
			want: `schema: invalid google.protobuf.Duration value "5 minutes"`,
		},
		{
			name: "list expected",
			edit: func(d map[string]any) { set(d, hcm0+".route_config.virtual_hosts.0.domains", "x") },
			kind: ErrInvalid,
			want: pHCM0 + `.route_config.virtual_hosts[0].domains: schema: expected a list`,
		},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			var doc map[string]any
			if err := yaml.Unmarshal(readFull(t), &doc); err != nil {
				t.Fatal(err)
			}
			tc.edit(doc)
			b, err := yaml.Marshal(doc)
			if err != nil {
				t.Fatal(err)
			}
			_, err = Parse(b)
			if err == nil {
				t.Fatalf("Parse accepted it; want %q", tc.want)
			}
			if !errors.Is(err, tc.kind) {
				t.Errorf("error kind: %v is not %v", err, tc.kind)
			}
			if err.Error() != tc.want {
				t.Errorf("error\n got %s\nwant %s", err, tc.want)
			}
			if strings.ContainsAny(err.Error(), "\n\r") {
				t.Errorf("error is not one line: %q", err)
			}
		})
	}
}

// testSHA is a well-formed sha256 (of nothing in particular).
const testSHA = "E3B0C44298FC1C149AFBF4C8996FB92427AE41E4649B934CA495991B7852B855"

// remoteSource is a vm_config.code with a remote source through cluster.
func remoteSource(cluster, sha string, retry map[string]any) map[string]any {
	r := map[string]any{
		"http_uri": map[string]any{"uri": "http://modules.example.com/f.wasm?v=1", "cluster": cluster, "timeout": "5s"},
		"sha256":   sha,
	}
	if retry != nil {
		r["retry_policy"] = retry
	}
	return map[string]any{"remote": r}
}

// TestParseRemoteCode: vm_config.code.remote with Envoy's retry defaults and
// with an explicit retry policy.
func TestParseRemoteCode(t *testing.T) {
	cases := []struct {
		name  string
		retry map[string]any
		want  RemoteCode
	}{
		{"defaults", nil, RemoteCode{Retries: 1, BaseInterval: time.Second, MaxInterval: 10 * time.Second}},
		{"num_retries only", map[string]any{"num_retries": 0}, RemoteCode{Retries: 0, BaseInterval: time.Second, MaxInterval: 10 * time.Second}},
		{"back-off base only", map[string]any{"num_retries": 3, "retry_back_off": map[string]any{"base_interval": "0.05s"}},
			RemoteCode{Retries: 3, BaseInterval: 50 * time.Millisecond, MaxInterval: 500 * time.Millisecond}},
		{"back-off base and max", map[string]any{"retry_back_off": map[string]any{"base_interval": "0.1s", "max_interval": "0.2s"}},
			RemoteCode{Retries: 1, BaseInterval: 100 * time.Millisecond, MaxInterval: 200 * time.Millisecond}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			doc := map[string]any{}
			if err := yaml.Unmarshal(readFull(t), &doc); err != nil {
				t.Fatal(err)
			}
			set(doc, wasm0+".vm_config.code", remoteSource("backend", testSHA, tc.retry))
			b, err := yaml.Marshal(doc)
			if err != nil {
				t.Fatal(err)
			}
			cfg, err := Parse(b)
			if err != nil {
				t.Fatalf("Parse: %v", err)
			}
			f := cfg.Listeners[0].Filters[0]
			want := tc.want
			want.URI, want.Cluster, want.Timeout = "http://modules.example.com/f.wasm?v=1", "backend", 5*time.Second
			want.SHA256 = strings.ToLower(testSHA)
			if f.RemoteCode == nil || *f.RemoteCode != want {
				t.Fatalf("RemoteCode = %+v, want %+v", f.RemoteCode, want)
			}
			if f.CodePath != "" || f.CodeKey() != "sha256:"+want.SHA256 || f.CodeName() != want.URI {
				t.Errorf("CodePath %q CodeKey %q CodeName %q", f.CodePath, f.CodeKey(), f.CodeName())
			}
			if f.VMKey() == cfg.Listeners[0].Filters[1].VMKey() {
				t.Error("remote and local code share a VM key")
			}
		})
	}
}

func TestParseInvalidInput(t *testing.T) {
	cases := []struct {
		name, in, want string
	}{
		{"bad yaml", "static_resources: [listeners: {", "yaml"},
		{"empty", "", "the bootstrap is empty or not a mapping"},
		{"scalar", "42", "the bootstrap is empty or not a mapping"},
		{"not a bootstrap", "foo: 1", `unknown field "foo"`},
		{"no static resources", "admin: {address: {socket_address: {address: 127.0.0.1, port_value: 1}}}", "static_resources is required"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Parse([]byte(tc.in))
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("error = %v, want it to contain %q", err, tc.want)
			}
			if strings.ContainsAny(err.Error(), "\n\r") {
				t.Errorf("error is not one line: %q", err)
			}
		})
	}
}

func TestRouteMatches(t *testing.T) {
	cases := []struct {
		kind        MatchKind
		value, path string
		want        bool
	}{
		{MatchPrefix, "/", "/anything?x=1", true},
		{MatchPrefix, "/v1", "/v1/chat", true},
		{MatchPrefix, "/v1", "/V1/chat", false},
		{MatchPrefix, "/v1/", "/v1", false},
		{MatchPath, "/v1/chat", "/v1/chat", true},
		{MatchPath, "/v1/chat", "/v1/chat?stream=1", true},
		{MatchPath, "/v1/chat", "/v1/chat/x", false},
	}
	for _, tc := range cases {
		r := &Route{Match: tc.kind, Value: tc.value}
		if got := r.Matches(tc.path); got != tc.want {
			t.Errorf("%s %q matches %q = %v", tc.kind, tc.value, tc.path, got)
		}
	}
}

// get, set and del address a decoded YAML document by a dotted path whose
// numeric segments index lists.
func get(doc map[string]any, path string) any {
	var cur any = doc
	for _, seg := range strings.Split(path, ".") {
		cur = child(cur, seg)
	}
	return cur
}

func child(node any, seg string) any {
	if i, err := strconv.Atoi(seg); err == nil {
		return node.([]any)[i]
	}
	return node.(map[string]any)[seg]
}

func set(doc map[string]any, path string, v any) {
	parent, last := split(doc, path)
	if i, err := strconv.Atoi(last); err == nil {
		parent.([]any)[i] = v
		return
	}
	m := parent.(map[string]any)
	m[last] = v
}

func del(doc map[string]any, path string) {
	parent, last := split(doc, path)
	delete(parent.(map[string]any), last)
}

func split(doc map[string]any, path string) (any, string) {
	i := strings.LastIndexByte(path, '.')
	if i < 0 {
		return doc, path
	}
	return get(doc, path[:i]), path[i+1:]
}
