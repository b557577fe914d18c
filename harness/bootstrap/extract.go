package bootstrap

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"net"
	"net/url"
	"path/filepath"
	"sort"
	"strings"

	bootstrapv3 "github.com/envoyproxy/go-control-plane/envoy/config/bootstrap/v3"
	clusterv3 "github.com/envoyproxy/go-control-plane/envoy/config/cluster/v3"
	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	endpointv3 "github.com/envoyproxy/go-control-plane/envoy/config/endpoint/v3"
	listenerv3 "github.com/envoyproxy/go-control-plane/envoy/config/listener/v3"
	routev3 "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"
	routerv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/router/v3"
	wasmfilterv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/wasm/v3"
	hcmv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/http_connection_manager/v3"
	tlsv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/transport_sockets/tls/v3"
	wasmv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/wasm/v3"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"
	"google.golang.org/protobuf/types/known/anypb"
	"google.golang.org/protobuf/types/known/structpb"
	"google.golang.org/protobuf/types/known/wrapperspb"
)

// Extension names, for messages.
const (
	hcmFilterName    = "envoy.filters.network.http_connection_manager"
	routerFilterName = "envoy.filters.http.router"
)

// only refuses any field set in m other than the allowed ones, naming the one
// with the lowest field number.
func only(path string, m proto.Message, allowed ...string) error {
	var bad []protoreflect.FieldDescriptor
	m.ProtoReflect().Range(func(fd protoreflect.FieldDescriptor, _ protoreflect.Value) bool {
		for _, a := range allowed {
			if string(fd.Name()) == a {
				return true
			}
		}
		bad = append(bad, fd)
		return true
	})
	if len(bad) == 0 {
		return nil
	}
	sort.Slice(bad, func(i, j int) bool { return bad[i].Number() < bad[j].Number() })
	if path == "" {
		path = "bootstrap"
	}
	return unsupportedf(path, "field %q is not supported", bad[0].Name())
}

func extract(bs *bootstrapv3.Bootstrap) (*Config, error) {
	if err := only("", bs, "static_resources", "admin"); err != nil {
		return nil, err
	}
	cfg := &Config{}
	if a := bs.GetAdmin(); a != nil {
		if err := only("admin", a, "address"); err != nil {
			return nil, err
		}
		if a.GetAddress() == nil {
			return nil, unsupportedf("admin", "address is required")
		}
		addr, err := socketAddress("admin.address", a.GetAddress())
		if err != nil {
			return nil, err
		}
		cfg.Admin = &Admin{Address: addr}
	}
	sr := bs.GetStaticResources()
	if sr == nil {
		return nil, unsupportedf("", "static_resources is required")
	}
	if err := only("static_resources", sr, "listeners", "clusters"); err != nil {
		return nil, err
	}
	for i, c := range sr.GetClusters() {
		path := fmt.Sprintf("static_resources.clusters[%d]", i)
		cl, err := cluster(path, c)
		if err != nil {
			return nil, err
		}
		if cfg.Cluster(cl.Name) != nil {
			return nil, invalidf(path+".name", "duplicate cluster name %q", cl.Name)
		}
		cfg.Clusters = append(cfg.Clusters, cl)
	}
	if len(sr.GetListeners()) == 0 {
		return nil, unsupportedf("static_resources.listeners", "at least one listener is required")
	}
	names := map[string]bool{}
	for i, l := range sr.GetListeners() {
		path := fmt.Sprintf("static_resources.listeners[%d]", i)
		ln, err := listener(path, i, l, cfg)
		if err != nil {
			return nil, err
		}
		if names[ln.Name] {
			return nil, invalidf(path+".name", "duplicate listener name %q", ln.Name)
		}
		names[ln.Name] = true
		cfg.Listeners = append(cfg.Listeners, ln)
	}
	return cfg, nil
}

// socketAddress returns "host:port" from an Address holding a socket_address.
func socketAddress(path string, a *corev3.Address) (string, error) {
	if err := only(path, a, "socket_address"); err != nil {
		return "", err
	}
	sa := a.GetSocketAddress()
	if sa == nil {
		return "", unsupportedf(path, "socket_address is required")
	}
	path += ".socket_address"
	if err := only(path, sa, "address", "port_value"); err != nil {
		return "", err
	}
	return net.JoinHostPort(sa.GetAddress(), fmt.Sprint(sa.GetPortValue())), nil
}

func listener(path string, index int, l *listenerv3.Listener, cfg *Config) (*Listener, error) {
	if err := only(path, l, "name", "address", "per_connection_buffer_limit_bytes", "filter_chains"); err != nil {
		return nil, err
	}
	ln := &Listener{Name: l.GetName(), BufferLimit: DefaultBufferLimit}
	if ln.Name == "" {
		ln.Name = fmt.Sprintf("listener_%d", index)
	}
	if l.GetAddress() == nil {
		return nil, unsupportedf(path, "address is required")
	}
	addr, err := socketAddress(path+".address", l.GetAddress())
	if err != nil {
		return nil, err
	}
	ln.Address = addr
	if b := l.GetPerConnectionBufferLimitBytes(); b != nil {
		ln.BufferLimit = int(b.GetValue())
	}
	if n := len(l.GetFilterChains()); n != 1 {
		return nil, unsupportedf(path+".filter_chains", "exactly one filter chain is supported, got %d", n)
	}
	fcPath := path + ".filter_chains[0]"
	fc := l.GetFilterChains()[0]
	if err := only(fcPath, fc, "name", "filters"); err != nil {
		return nil, err
	}
	if n := len(fc.GetFilters()); n != 1 {
		return nil, unsupportedf(fcPath+".filters", "exactly one network filter (%s) is supported, got %d", hcmFilterName, n)
	}
	fPath := fcPath + ".filters[0]"
	f := fc.GetFilters()[0]
	if err := only(fPath, f, "name", "typed_config"); err != nil {
		return nil, err
	}
	var hcm hcmv3.HttpConnectionManager
	if err := unpack(fPath, "network filter", f.GetName(), f.GetTypedConfig(), &hcm); err != nil {
		return nil, err
	}
	if err := httpConnectionManager(fPath+".typed_config", &hcm, ln, cfg); err != nil {
		return nil, err
	}
	return ln, nil
}

// unpack checks that a typed_config holds the message type of m and
// unmarshals and validates it. kind and name word the refusal.
func unpack(path, kind, name string, a *anypb.Any, m interface {
	proto.Message
	ValidateAll() error
}) error {
	if a == nil {
		return unsupportedf(path, "typed_config is required")
	}
	if !a.MessageIs(m) {
		return unsupportedf(path, "unsupported %s %q (type %s)", kind, name, a.GetTypeUrl())
	}
	if err := a.UnmarshalTo(m); err != nil {
		return invalidf(path+".typed_config", "%v", err)
	}
	return validate(path+".typed_config", m)
}

func httpConnectionManager(path string, hcm *hcmv3.HttpConnectionManager, ln *Listener, cfg *Config) error {
	if err := only(path, hcm, "stat_prefix", "codec_type", "route_config", "http_filters", "strip_any_host_port"); err != nil {
		return err
	}
	switch hcm.GetCodecType() {
	case hcmv3.HttpConnectionManager_AUTO, hcmv3.HttpConnectionManager_HTTP1:
	default:
		return unsupportedf(path+".codec_type", "codec %s is not supported (AUTO or HTTP1)", hcm.GetCodecType())
	}
	ln.StatPrefix = hcm.GetStatPrefix()
	ln.StripAnyHostPort = hcm.GetStripAnyHostPort()
	rc := hcm.GetRouteConfig()
	if rc == nil {
		return unsupportedf(path, "an inline route_config is required")
	}
	if err := routeConfig(path+".route_config", rc, ln, cfg); err != nil {
		return err
	}
	filters := hcm.GetHttpFilters()
	if len(filters) == 0 {
		return unsupportedf(path+".http_filters", "the last http filter must be %s", routerFilterName)
	}
	for i, hf := range filters {
		hfPath := fmt.Sprintf("%s.http_filters[%d]", path, i)
		if err := only(hfPath, hf, "name", "typed_config"); err != nil {
			return err
		}
		tc := hf.GetTypedConfig()
		if tc == nil {
			return unsupportedf(hfPath, "typed_config is required")
		}
		last := i == len(filters)-1
		switch {
		case tc.MessageIs(&routerv3.Router{}):
			if !last {
				return unsupportedf(hfPath, "%s must be the last http filter", routerFilterName)
			}
			var r routerv3.Router
			if err := unpack(hfPath, "http filter", hf.GetName(), tc, &r); err != nil {
				return err
			}
			if err := only(hfPath+".typed_config", &r); err != nil {
				return err
			}
		case tc.MessageIs(&wasmfilterv3.Wasm{}):
			if last {
				return unsupportedf(hfPath, "the last http filter must be %s", routerFilterName)
			}
			var w wasmfilterv3.Wasm
			if err := unpack(hfPath, "http filter", hf.GetName(), tc, &w); err != nil {
				return err
			}
			wf, err := wasmFilter(hfPath+".typed_config", hf.GetName(), &w, cfg)
			if err != nil {
				return err
			}
			ln.Filters = append(ln.Filters, wf)
		default:
			return unsupportedf(hfPath, "unsupported http filter %q (type %s)", hf.GetName(), tc.GetTypeUrl())
		}
	}
	return nil
}

func routeConfig(path string, rc *routev3.RouteConfiguration, ln *Listener, cfg *Config) error {
	if err := only(path, rc, "name", "virtual_hosts", "ignore_port_in_host_matching"); err != nil {
		return err
	}
	ln.IgnorePortInHostMatching = rc.GetIgnorePortInHostMatching()
	seen := map[string]string{}
	for i, vh := range rc.GetVirtualHosts() {
		vhPath := fmt.Sprintf("%s.virtual_hosts[%d]", path, i)
		if err := only(vhPath, vh, "name", "domains", "routes"); err != nil {
			return err
		}
		v := &VirtualHost{Name: vh.GetName()}
		for j, d := range vh.GetDomains() {
			d = strings.ToLower(d)
			if d == "" {
				return invalidf(fmt.Sprintf("%s.domains[%d]", vhPath, j), "empty domain")
			}
			if other, dup := seen[d]; dup {
				return invalidf(fmt.Sprintf("%s.domains[%d]", vhPath, j), "domain %q is already used by virtual host %q", d, other)
			}
			seen[d] = vh.GetName()
			v.Domains = append(v.Domains, d)
		}
		for j, r := range vh.GetRoutes() {
			rt, err := route(fmt.Sprintf("%s.routes[%d]", vhPath, j), r, cfg)
			if err != nil {
				return err
			}
			v.Routes = append(v.Routes, rt)
		}
		ln.VirtualHosts = append(ln.VirtualHosts, v)
	}
	return nil
}

func route(path string, r *routev3.Route, cfg *Config) (*Route, error) {
	if err := only(path, r, "name", "match", "route"); err != nil {
		return nil, err
	}
	rt := &Route{Name: r.GetName(), Timeout: DefaultRouteTimeout}
	m := r.GetMatch()
	if err := only(path+".match", m, "prefix", "path"); err != nil {
		return nil, err
	}
	switch ps := m.GetPathSpecifier().(type) {
	case *routev3.RouteMatch_Prefix:
		rt.Match, rt.Value = MatchPrefix, ps.Prefix
	case *routev3.RouteMatch_Path:
		rt.Match, rt.Value = MatchPath, ps.Path
	default:
		return nil, unsupportedf(path+".match", "match.prefix or match.path is required")
	}
	ra := r.GetRoute()
	if ra == nil {
		return nil, unsupportedf(path, "a route action (route.cluster) is required")
	}
	if err := only(path+".route", ra, "cluster", "timeout"); err != nil {
		return nil, err
	}
	rt.Cluster = ra.GetCluster()
	if rt.Cluster == "" {
		return nil, unsupportedf(path+".route", "route.cluster is required")
	}
	if cfg.Cluster(rt.Cluster) == nil {
		return nil, invalidf(path+".route.cluster", "unknown cluster %q", rt.Cluster)
	}
	if t := ra.GetTimeout(); t != nil {
		rt.Timeout = t.AsDuration()
	}
	return rt, nil
}

func wasmFilter(path, name string, w *wasmfilterv3.Wasm, cfg *Config) (*WasmFilter, error) {
	if err := only(path, w, "config"); err != nil {
		return nil, err
	}
	pc := w.GetConfig()
	if pc == nil {
		return nil, unsupportedf(path, "config is required")
	}
	path += ".config"
	if err := only(path, pc, "name", "root_id", "vm_config", "configuration", "allow_on_headers_stop_iteration"); err != nil {
		return nil, err
	}
	wf := &WasmFilter{
		Name:                        name,
		PluginName:                  pc.GetName(),
		RootID:                      pc.GetRootId(),
		AllowOnHeadersStopIteration: pc.GetAllowOnHeadersStopIteration().GetValue(),
	}
	var err error
	if wf.Configuration, err = anyBytes(path+".configuration", pc.GetConfiguration()); err != nil {
		return nil, err
	}
	vm := pc.GetVmConfig()
	if vm == nil {
		return nil, unsupportedf(path, "vm_config is required")
	}
	vmPath := path + ".vm_config"
	if err := vmConfig(vmPath, vm, wf, cfg); err != nil {
		return nil, err
	}
	return wf, nil
}

func vmConfig(path string, vm *wasmv3.VmConfig, wf *WasmFilter, cfg *Config) error {
	if err := only(path, vm, "vm_id", "runtime", "code", "configuration"); err != nil {
		return err
	}
	wf.VMID, wf.Runtime = vm.GetVmId(), vm.GetRuntime()
	var err error
	if wf.VMConfiguration, err = anyBytes(path+".configuration", vm.GetConfiguration()); err != nil {
		return err
	}
	code := vm.GetCode()
	if code == nil {
		return unsupportedf(path, "code is required")
	}
	if r := code.GetRemote(); r != nil {
		wf.RemoteCode, err = remoteCode(path+".code.remote", r, cfg)
		return err
	}
	local := code.GetLocal()
	if local == nil {
		return unsupportedf(path+".code", "code.local.filename is required")
	}
	if err := only(path+".code.local", local, "filename"); err != nil {
		return err
	}
	if local.GetFilename() == "" {
		return unsupportedf(path+".code.local", "filename is required")
	}
	wf.CodePath, err = filepath.Abs(local.GetFilename())
	if err != nil {
		return invalidf(path+".code.local.filename", "%v", err)
	}
	return nil
}

// remoteCode extracts a RemoteDataSource. Its http_uri.cluster must be a
// cluster of the bootstrap: Envoy's fetch through an unknown cluster fails
// ("no cluster"), so the gateway refuses it when it loads the file.
func remoteCode(path string, r *corev3.RemoteDataSource, cfg *Config) (*RemoteCode, error) {
	if err := only(path, r, "http_uri", "sha256", "retry_policy"); err != nil {
		return nil, err
	}
	hu := r.GetHttpUri()
	if err := only(path+".http_uri", hu, "uri", "cluster", "timeout"); err != nil {
		return nil, err
	}
	u, err := url.Parse(hu.GetUri())
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return nil, invalidf(path+".http_uri.uri", "want an http or https URL with a host, got %q", hu.GetUri())
	}
	if cfg.Cluster(hu.GetCluster()) == nil {
		return nil, invalidf(path+".http_uri.cluster", "unknown cluster %q", hu.GetCluster())
	}
	sum := strings.ToLower(r.GetSha256())
	if b, err := hex.DecodeString(sum); err != nil || len(b) != sha256.Size {
		return nil, invalidf(path+".sha256", "want 64 hex digits, got %q", r.GetSha256())
	}
	rc := &RemoteCode{
		URI:          hu.GetUri(),
		Cluster:      hu.GetCluster(),
		Timeout:      hu.GetTimeout().AsDuration(),
		SHA256:       sum,
		Retries:      DefaultRemoteRetries,
		BaseInterval: DefaultRemoteBackoff,
	}
	if rp := r.GetRetryPolicy(); rp != nil {
		rpPath := path + ".retry_policy"
		if err := only(rpPath, rp, "retry_back_off", "num_retries"); err != nil {
			return nil, err
		}
		if n := rp.GetNumRetries(); n != nil {
			rc.Retries = int(n.GetValue())
		}
		if b := rp.GetRetryBackOff(); b != nil {
			rc.BaseInterval = b.GetBaseInterval().AsDuration()
			if m := b.GetMaxInterval(); m != nil {
				rc.MaxInterval = m.AsDuration()
				if rc.MaxInterval < rc.BaseInterval {
					return nil, invalidf(rpPath+".retry_back_off.max_interval", "must not be below base_interval")
				}
			}
		}
	}
	if rc.MaxInterval == 0 {
		rc.MaxInterval = 10 * rc.BaseInterval
	}
	return rc, nil
}

// anyBytes returns the bytes Envoy hands a plugin for a configuration Any:
// StringValue and BytesValue as is, Struct as JSON; nil when absent.
func anyBytes(path string, a *anypb.Any) ([]byte, error) {
	if a == nil {
		return nil, nil
	}
	m, err := a.UnmarshalNew()
	if err != nil {
		return nil, invalidf(path, "%v", err)
	}
	switch v := m.(type) {
	case *wrapperspb.StringValue:
		return []byte(v.GetValue()), nil
	case *wrapperspb.BytesValue:
		return v.GetValue(), nil
	case *structpb.Struct:
		b, err := json.Marshal(v.AsMap())
		if err != nil {
			return nil, invalidf(path, "%v", err)
		}
		return b, nil
	}
	return nil, unsupportedf(path, "type %s is not supported (use google.protobuf.StringValue)", a.GetTypeUrl())
}

func cluster(path string, c *clusterv3.Cluster) (*Cluster, error) {
	if err := only(path, c, "name", "type", "connect_timeout", "load_assignment", "transport_socket", "dns_lookup_family"); err != nil {
		return nil, err
	}
	cl := &Cluster{Name: c.GetName(), ConnectTimeout: DefaultConnectTimeout, Network: "tcp"}
	switch c.GetType() {
	case clusterv3.Cluster_STATIC:
		cl.Type = Static
	case clusterv3.Cluster_STRICT_DNS:
		cl.Type = StrictDNS
	case clusterv3.Cluster_LOGICAL_DNS:
		cl.Type = LogicalDNS
	default:
		return nil, unsupportedf(path+".type", "cluster type %s is not supported (STATIC, STRICT_DNS or LOGICAL_DNS)", c.GetType())
	}
	if t := c.GetConnectTimeout(); t != nil {
		cl.ConnectTimeout = t.AsDuration()
		if cl.ConnectTimeout <= 0 {
			return nil, invalidf(path+".connect_timeout", "must be positive")
		}
	}
	switch c.GetDnsLookupFamily() {
	case clusterv3.Cluster_V4_ONLY:
		cl.Network = "tcp4"
	case clusterv3.Cluster_V6_ONLY:
		cl.Network = "tcp6"
	}
	if la := c.GetLoadAssignment(); la != nil {
		laPath := path + ".load_assignment"
		if err := only(laPath, la, "cluster_name", "endpoints"); err != nil {
			return nil, err
		}
		for i, lle := range la.GetEndpoints() {
			llePath := fmt.Sprintf("%s.endpoints[%d]", laPath, i)
			if err := only(llePath, lle, "lb_endpoints"); err != nil {
				return nil, err
			}
			for j, lbe := range lle.GetLbEndpoints() {
				ep, err := endpoint(fmt.Sprintf("%s.lb_endpoints[%d]", llePath, j), lbe, cl.Type)
				if err != nil {
					return nil, err
				}
				cl.Endpoints = append(cl.Endpoints, ep)
			}
		}
	}
	if cl.Type == LogicalDNS && len(cl.Endpoints) != 1 {
		return nil, invalidf(path+".load_assignment", "a LOGICAL_DNS cluster needs exactly one endpoint, got %d", len(cl.Endpoints))
	}
	if ts := c.GetTransportSocket(); ts != nil {
		tls, err := transportSocket(path+".transport_socket", ts)
		if err != nil {
			return nil, err
		}
		cl.TLS = tls
	}
	return cl, nil
}

func endpoint(path string, lbe *endpointv3.LbEndpoint, t ClusterType) (Endpoint, error) {
	if err := only(path, lbe, "endpoint"); err != nil {
		return Endpoint{}, err
	}
	ep := lbe.GetEndpoint()
	if ep == nil {
		return Endpoint{}, unsupportedf(path, "endpoint is required")
	}
	path += ".endpoint"
	if err := only(path, ep, "address"); err != nil {
		return Endpoint{}, err
	}
	if ep.GetAddress() == nil {
		return Endpoint{}, unsupportedf(path, "address is required")
	}
	if _, err := socketAddress(path+".address", ep.GetAddress()); err != nil {
		return Endpoint{}, err
	}
	sa := ep.GetAddress().GetSocketAddress()
	if t == Static && net.ParseIP(sa.GetAddress()) == nil {
		return Endpoint{}, invalidf(path+".address.socket_address.address", "a STATIC cluster needs an IP address, got %q", sa.GetAddress())
	}
	if sa.GetPortValue() == 0 {
		return Endpoint{}, invalidf(path+".address.socket_address.port_value", "an endpoint needs a port")
	}
	return Endpoint{Host: sa.GetAddress(), Port: int(sa.GetPortValue())}, nil
}

func transportSocket(path string, ts *corev3.TransportSocket) (*TLS, error) {
	if err := only(path, ts, "name", "typed_config"); err != nil {
		return nil, err
	}
	var up tlsv3.UpstreamTlsContext
	if err := unpack(path, "transport socket", ts.GetName(), ts.GetTypedConfig(), &up); err != nil {
		return nil, err
	}
	path += ".typed_config"
	if err := only(path, &up, "sni", "common_tls_context"); err != nil {
		return nil, err
	}
	out := &TLS{SNI: up.GetSni()}
	ctx := up.GetCommonTlsContext()
	if ctx == nil {
		return out, nil
	}
	path += ".common_tls_context"
	if err := only(path, ctx, "validation_context", "alpn_protocols"); err != nil {
		return nil, err
	}
	out.ALPN = ctx.GetAlpnProtocols()
	vc := ctx.GetValidationContext()
	if vc == nil {
		return out, nil
	}
	path += ".validation_context"
	if err := only(path, vc, "trusted_ca"); err != nil {
		return nil, err
	}
	ca := vc.GetTrustedCa()
	if ca == nil {
		return out, nil
	}
	if err := only(path+".trusted_ca", ca, "filename"); err != nil {
		return nil, err
	}
	if ca.GetFilename() == "" {
		return nil, unsupportedf(path+".trusted_ca", "filename is required")
	}
	abs, err := filepath.Abs(ca.GetFilename())
	if err != nil {
		return nil, invalidf(path+".trusted_ca.filename", "%v", err)
	}
	out.CAFile = abs
	return out, nil
}
