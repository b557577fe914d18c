package gateway

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"ai-proxy/filter/proxywasm/abi"
	"ai-proxy/harness"
	"ai-proxy/harness/bootstrap"
)

// MaxCallResponseBytes caps the body of a proxy_http_call response; a larger
// answer is a failed call.
const MaxCallResponseBytes = 64 << 20

// errNoHealthyUpstream: the cluster has no endpoint.
var errNoHealthyUpstream = errors.New("no healthy upstream")

// upstream is a cluster at run time: one keep-alive HTTP/1.1 transport whose
// dialer balances the endpoints round robin per connection.
type upstream struct {
	cfg       *bootstrap.Cluster
	transport *http.Transport
	tls       *tls.Config // nil for plain HTTP
	next      atomic.Uint64
	conns     *atomic.Int64 // open connections of the gateway's clusters; nil: not counted
}

func newUpstream(c *bootstrap.Cluster) (*upstream, error) {
	u := &upstream{cfg: c}
	if c.TLS != nil {
		cfg, err := clusterTLS(c.TLS)
		if err != nil {
			return nil, err
		}
		u.tls = cfg
	}
	u.transport = &http.Transport{
		DialContext:         u.dial,
		MaxIdleConnsPerHost: 64,
		IdleConnTimeout:     time.Hour, // Envoy's default idle_timeout
		DisableCompression:  true,
		TLSNextProto:        map[string]func(string, *tls.Conn) http.RoundTripper{}, // HTTP/1.1 only
	}
	if u.tls != nil {
		u.transport.DialTLSContext = u.dialTLS
	}
	return u, nil
}

// scheme is the URL scheme that selects the transport's TLS dialer.
func (u *upstream) scheme() string {
	if u.tls != nil {
		return "https"
	}
	return "http"
}

// pick returns the next endpoint, round robin.
func (u *upstream) pick() (bootstrap.Endpoint, error) {
	eps := u.cfg.Endpoints
	if len(eps) == 0 {
		return bootstrap.Endpoint{}, errNoHealthyUpstream
	}
	return eps[(u.next.Add(1)-1)%uint64(len(eps))], nil
}

// dialEndpoint connects to the next endpoint within connect_timeout; the
// connection counts in u.conns. DNS clusters resolve the host name at dial
// time.
func (u *upstream) dialEndpoint(ctx context.Context) (bootstrap.Endpoint, net.Conn, error) {
	ep, err := u.pick()
	if err != nil {
		return ep, nil, err
	}
	d := net.Dialer{Timeout: u.cfg.ConnectTimeout}
	conn, err := d.DialContext(ctx, u.cfg.Network, ep.Addr())
	if err != nil {
		return ep, nil, err
	}
	return ep, u.counted(conn), nil
}

// dial connects to the next endpoint (see dialEndpoint).
func (u *upstream) dial(ctx context.Context, _, _ string) (net.Conn, error) {
	_, conn, err := u.dialEndpoint(ctx)
	return conn, err
}

// counted wraps conn so that it counts in u.conns until it is closed.
func (u *upstream) counted(conn net.Conn) net.Conn {
	if u.conns == nil {
		return conn
	}
	u.conns.Add(1)
	return &countedConn{Conn: conn, n: u.conns}
}

// countedConn decrements n on its first Close.
type countedConn struct {
	net.Conn
	n    *atomic.Int64
	once sync.Once
}

func (c *countedConn) Close() error {
	c.once.Do(func() { c.n.Add(-1) })
	return c.Conn.Close()
}

// dialTLS connects and handshakes within connect_timeout, sending the
// configured SNI (or the endpoint's host name when it is not an IP).
func (u *upstream) dialTLS(ctx context.Context, _, _ string) (net.Conn, error) {
	ctx, cancel := context.WithTimeout(ctx, u.cfg.ConnectTimeout)
	defer cancel()
	ep, conn, err := u.dialEndpoint(ctx)
	if err != nil {
		return nil, err
	}
	cfg := u.tls.Clone()
	if cfg.ServerName == "" && net.ParseIP(ep.Host) == nil {
		cfg.ServerName = ep.Host
	}
	tc := tls.Client(conn, cfg)
	if err := tc.HandshakeContext(ctx); err != nil {
		conn.Close()
		return nil, err
	}
	return tc, nil
}

// clusterTLS builds the client TLS configuration of an UpstreamTlsContext:
// without a trusted CA the server certificate is not verified (Envoy's
// behaviour); with one the chain is verified against it but the host name is
// not (Envoy checks SANs only when SAN matchers are configured).
func clusterTLS(t *bootstrap.TLS) (*tls.Config, error) {
	cfg := &tls.Config{
		ServerName:         t.SNI,
		InsecureSkipVerify: true, // verification, when configured, is VerifyPeerCertificate
		MinVersion:         tls.VersionTLS12,
	}
	if t.CAFile == "" {
		return cfg, nil
	}
	pem, err := os.ReadFile(t.CAFile)
	if err != nil {
		return nil, fmt.Errorf("trusted_ca: %v", err)
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(pem) {
		return nil, fmt.Errorf("trusted_ca %s: no PEM certificate found", t.CAFile)
	}
	cfg.VerifyPeerCertificate = func(raw [][]byte, _ [][]*x509.Certificate) error {
		if len(raw) == 0 {
			return errors.New("tls: server sent no certificate")
		}
		certs := make([]*x509.Certificate, len(raw))
		for i, r := range raw {
			c, err := x509.ParseCertificate(r)
			if err != nil {
				return err
			}
			certs[i] = c
		}
		inter := x509.NewCertPool()
		for _, c := range certs[1:] {
			inter.AddCert(c)
		}
		_, err := certs[0].Verify(x509.VerifyOptions{Roots: pool, Intermediates: inter})
		return err
	}
	return cfg, nil
}

// directCaller serves http calls whose upstream is "host:port" (apisix
// profile): it dials the address itself, with TLS (system roots, SNI = host)
// when the call's :scheme is https.
type directCaller struct {
	transport *http.Transport
}

func newDirectCaller() *directCaller {
	return &directCaller{transport: &http.Transport{
		DialContext:         (&net.Dialer{Timeout: 10 * time.Second}).DialContext,
		MaxIdleConnsPerHost: 16,
		IdleConnTimeout:     90 * time.Second,
		DisableCompression:  true,
		TLSNextProto:        map[string]func(string, *tls.Conn) http.RoundTripper{},
	}}
}

// callFunc resolves the call's upstream and returns the function that performs
// it, or nil when the upstream is unknown (the guest then gets BAD_ARGUMENT).
func (g *Gateway) callFunc(call harness.HTTPCall) func(context.Context) *harness.CallResponse {
	var rt http.RoundTripper
	var scheme, host string
	if g.opts.Profile == harness.ProfileAPISIX {
		if _, _, err := net.SplitHostPort(call.Upstream); err != nil {
			return nil
		}
		rt, host = g.direct.transport, call.Upstream
		scheme = "http"
		if strings.EqualFold(call.Header(":scheme"), "https") {
			scheme = "https"
		}
	} else {
		u := g.clusters[call.Upstream]
		if u == nil {
			return nil
		}
		rt, scheme, host = u.transport, u.scheme(), "cluster"
	}
	return func(ctx context.Context) *harness.CallResponse {
		if call.Timeout > 0 {
			var cancel context.CancelFunc
			ctx, cancel = context.WithTimeout(ctx, call.Timeout)
			defer cancel()
		}
		req, err := newRequest(ctx, call.Headers, scheme, host, bytes.NewReader(call.Body), int64(len(call.Body)))
		if err != nil {
			g.log.Debug("http call rejected", "upstream", call.Upstream, "err", err,
				"method", call.Header(":method"), "path", call.Header(":path"))
			return nil
		}
		resp, err := rt.RoundTrip(req)
		if err != nil {
			g.log.Debug("http call failed", "upstream", call.Upstream, "err", err)
			return nil
		}
		defer resp.Body.Close()
		body, err := io.ReadAll(io.LimitReader(resp.Body, MaxCallResponseBytes+1))
		if err != nil || len(body) > MaxCallResponseBytes {
			g.log.Debug("http call response unreadable", "upstream", call.Upstream, "err", err, "bytes", len(body))
			return nil
		}
		return &harness.CallResponse{
			Headers:  responseHeaders(resp),
			Body:     body,
			Trailers: fromHTTPHeader(nil, resp.Trailer),
		}
	}
}

// responseHeaders returns ":status" then the response headers, lowercased.
func responseHeaders(resp *http.Response) []abi.Header {
	hs := []abi.Header{{":status", strconv.Itoa(resp.StatusCode)}}
	return fromHTTPHeader(hs, resp.Header)
}
