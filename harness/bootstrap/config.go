// Package bootstrap loads the subset of an Envoy v3 bootstrap that the
// harness gateway runs, using Envoy's own schema (go-control-plane types and
// their protoc-gen-validate rules), and turns it into plain Go values.
//
// Anything outside the subset that is set in the file is refused with a
// one-line error naming the field path; nothing is silently ignored.
package bootstrap

import (
	"net"
	"strconv"
	"strings"
	"time"
)

// Defaults Envoy applies when a field is absent.
const (
	// DefaultBufferLimit is Envoy's per_connection_buffer_limit_bytes default (1 MiB).
	DefaultBufferLimit = 1 << 20
	// DefaultRouteTimeout is Envoy's route.timeout default.
	DefaultRouteTimeout = 15 * time.Second
	// DefaultConnectTimeout is Envoy's cluster connect_timeout default.
	DefaultConnectTimeout = 5 * time.Second
)

// Config is the supported part of a bootstrap. It is immutable once returned.
type Config struct {
	// Admin is nil when the bootstrap has no admin section.
	Admin *Admin
	// Listeners in file order.
	Listeners []*Listener
	// Clusters in file order; names are unique.
	Clusters []*Cluster
}

// Cluster returns the cluster named name, or nil.
func (c *Config) Cluster(name string) *Cluster {
	for _, cl := range c.Clusters {
		if cl.Name == name {
			return cl
		}
	}
	return nil
}

// Admin is the admin server.
type Admin struct {
	// Address is "host:port" for net.Listen (port 0: any free port).
	Address string
}

// Listener is one HTTP listener with its route table and filter chain.
type Listener struct {
	// Name is the listener's name ("listener_<index>" when the file gives none).
	Name string
	// Address is "host:port" for net.Listen (port 0: any free port).
	Address string
	// BufferLimit is per_connection_buffer_limit_bytes: the most request or
	// response body the proxy buffers for a stream while a filter pauses it.
	BufferLimit int
	// StatPrefix is the HttpConnectionManager's stat_prefix.
	StatPrefix string
	// IgnorePortInHostMatching is route_config.ignore_port_in_host_matching:
	// the Host port is dropped before virtual host matching.
	IgnorePortInHostMatching bool
	// StripAnyHostPort is the HttpConnectionManager's strip_any_host_port:
	// the port is removed from the Host before the filters and routing see it.
	StripAnyHostPort bool
	// VirtualHosts in file order.
	VirtualHosts []*VirtualHost
	// Filters are the wasm http filters in decoding order. The router, which
	// the bootstrap must list last, is implied.
	Filters []*WasmFilter
}

// VirtualHost is one route_config.virtual_hosts entry.
type VirtualHost struct {
	Name string
	// Domains, lowercased: "*", an exact host (optionally with ":port"),
	// "*suffix" or "prefix*".
	Domains []string
	Routes  []*Route
}

// MatchKind says how a route matches the request path.
type MatchKind int

// Route match kinds.
const (
	// MatchPrefix: the :path starts with Route.Value.
	MatchPrefix MatchKind = iota
	// MatchPath: the :path without its query equals Route.Value.
	MatchPath
)

// String names the kind as the bootstrap field does.
func (k MatchKind) String() string {
	if k == MatchPath {
		return "path"
	}
	return "prefix"
}

// Route is one route of a virtual host.
type Route struct {
	Name    string
	Match   MatchKind
	Value   string
	Cluster string
	// Timeout is route.timeout (DefaultRouteTimeout when absent); 0 disables it.
	Timeout time.Duration
}

// Matches reports whether the request path (":path", query included) matches
// the route, case-sensitively as Envoy's default.
func (r *Route) Matches(path string) bool {
	if r.Match == MatchPath {
		if i := strings.IndexByte(path, '?'); i >= 0 {
			path = path[:i]
		}
		return path == r.Value
	}
	return strings.HasPrefix(path, r.Value)
}

// WasmFilter is one envoy.filters.http.wasm filter.
type WasmFilter struct {
	// Name is the http filter's name.
	Name string
	// PluginName is config.name; RootID is config.root_id.
	PluginName string
	RootID     string
	// Configuration is config.configuration (StringValue/BytesValue as is),
	// nil when absent.
	Configuration []byte
	// VMID, Runtime and VMConfiguration come from config.vm_config.
	VMID            string
	Runtime         string
	VMConfiguration []byte
	// AllowOnHeadersStopIteration is config.allow_on_headers_stop_iteration
	// (Envoy >= 1.35). When false (Envoy's default) a Pause from
	// on_request_headers/on_response_headers stops all iteration: the filter
	// gets no body callback until it resumes the stream. When true the Pause is
	// Envoy's StopIteration: body chunks keep reaching this filter (buffered
	// while it pauses them) and the headers move on when it continues.
	AllowOnHeadersStopIteration bool
	// CodePath is config.vm_config.code.local.filename made absolute against
	// the working directory at load time, as Envoy resolves it. It is "" when
	// the code is remote.
	CodePath string
	// RemoteCode is config.vm_config.code.remote, nil when the code is local.
	RemoteCode *RemoteCode
}

// CodeKey identifies the filter's module: the local file, or the remote
// source's sha256 (Envoy caches remote code by its hash).
func (f *WasmFilter) CodeKey() string {
	if f.RemoteCode != nil {
		return "sha256:" + f.RemoteCode.SHA256
	}
	return f.CodePath
}

// CodeName names the module in messages: the file or the remote URI.
func (f *WasmFilter) CodeName() string {
	if f.RemoteCode != nil {
		return f.RemoteCode.URI
	}
	return f.CodePath
}

// VMKey identifies the VM this filter runs on: filters with equal keys share
// one VM per worker, as Envoy shares a VM between filters with the same
// vm_id, code and VM configuration.
func (f *WasmFilter) VMKey() string {
	return f.VMID + "\x00" + f.CodeKey() + "\x00" + f.Runtime + "\x00" + string(f.VMConfiguration)
}

// Envoy's defaults for fetching remote code (RemoteDataSource.retry_policy
// absent or partly set).
const (
	// DefaultRemoteRetries is retry_policy.num_retries' default.
	DefaultRemoteRetries = 1
	// DefaultRemoteBackoff is retry_back_off.base_interval's default; the
	// max_interval default is 10 times the base interval.
	DefaultRemoteBackoff = time.Second
)

// RemoteCode is a RemoteDataSource: the module is fetched once, at start,
// with GET URI through Cluster, and must hash to SHA256. A failed fetch (no
// answer, a status other than 200, an empty body or a hash mismatch) is
// retried Retries times with a jittered exponential back-off between
// BaseInterval and MaxInterval, as Envoy's remote data provider does.
type RemoteCode struct {
	// URI is http_uri.uri: its path and query are requested, its host is
	// the Host header; the connection goes to the cluster's endpoints.
	URI string
	// Cluster is http_uri.cluster; it names a cluster of the bootstrap.
	Cluster string
	// Timeout is http_uri.timeout, for one attempt (0: none).
	Timeout time.Duration
	// SHA256 is the expected digest, lowercase hex.
	SHA256 string
	// Retries, BaseInterval and MaxInterval come from retry_policy.
	Retries      int
	BaseInterval time.Duration
	MaxInterval  time.Duration
}

// ClusterType is the cluster's discovery type.
type ClusterType int

// Supported discovery types.
const (
	Static ClusterType = iota
	StrictDNS
	LogicalDNS
)

// String names the type as the bootstrap does.
func (t ClusterType) String() string {
	switch t {
	case StrictDNS:
		return "STRICT_DNS"
	case LogicalDNS:
		return "LOGICAL_DNS"
	}
	return "STATIC"
}

// Cluster is one upstream cluster.
type Cluster struct {
	Name           string
	Type           ClusterType
	ConnectTimeout time.Duration
	// Network is the dial network chosen by dns_lookup_family: "tcp", "tcp4" or "tcp6".
	Network string
	// Endpoints in file order, balanced round robin. May be empty (every
	// request then fails with "no healthy upstream").
	Endpoints []Endpoint
	// TLS is nil for plain HTTP.
	TLS *TLS
}

// Endpoint is one endpoint's socket address. For STATIC clusters Host is an
// IP; for DNS clusters it is resolved when dialling.
type Endpoint struct {
	Host string
	Port int
}

// Addr is "host:port".
func (e Endpoint) Addr() string { return net.JoinHostPort(e.Host, strconv.Itoa(e.Port)) }

// TLS is an UpstreamTlsContext.
type TLS struct {
	// SNI is the configured server name. When it is "" the gateway sends the
	// endpoint's host name (none for an IP address).
	SNI string
	// CAFile is validation_context.trusted_ca.filename made absolute. When it
	// is "" the server certificate is not verified, as in Envoy. When set, the
	// chain is verified against it; the host name is not (Envoy only checks
	// SANs when match_typed_subject_alt_names is given, which is unsupported).
	CAFile string
	// ALPN is common_tls_context.alpn_protocols (informational: the harness
	// speaks HTTP/1.1 upstream).
	ALPN []string
}
