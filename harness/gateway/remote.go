package gateway

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"net/url"
	"time"

	"ai-proxy/harness/bootstrap"
)

// MaxRemoteCodeBytes caps the size of a remote wasm module.
const MaxRemoteCodeBytes = 256 << 20

// Errors of fetching vm_config.code.remote; New wraps them with ErrModule.
var (
	// ErrRemoteFetch: no attempt got a usable answer (unreachable, timeout,
	// a status other than 200, an empty body).
	ErrRemoteFetch = errors.New("remote code fetch failed")
	// ErrSHA256Mismatch: the fetched module does not hash to the configured
	// sha256. The message names both digests.
	ErrSHA256Mismatch = errors.New("sha256 mismatch")
)

// fetchRemote gets remote wasm code as Envoy's remote data provider does:
// GET the URI's path and query with the URI's host as Host, through the
// named cluster's endpoints (and its TLS, if any); accept only a 200 with a
// non-empty body whose sha256 is the configured one; on any failure retry
// rc.Retries times with a jittered exponential back-off. The last failure
// is returned.
func (g *Gateway) fetchRemote(ctx context.Context, rc *bootstrap.RemoteCode) ([]byte, error) {
	u := g.clusters[rc.Cluster]
	if u == nil { // the bootstrap loader refuses this; keep New safe anyway
		return nil, fmt.Errorf("%w: unknown cluster %q", ErrRemoteFetch, rc.Cluster)
	}
	target, err := url.Parse(rc.URI)
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrRemoteFetch, err)
	}
	var last error
	for attempt := 0; ; attempt++ {
		body, err := fetchOnce(ctx, u, target, rc.Timeout)
		if err == nil {
			sum := sha256.Sum256(body)
			if got := hex.EncodeToString(sum[:]); got != rc.SHA256 {
				err = fmt.Errorf("%w: expected %s, got %s (%d bytes)", ErrSHA256Mismatch, rc.SHA256, got, len(body))
			} else {
				return body, nil
			}
		}
		last = err
		if attempt >= rc.Retries {
			break
		}
		wait := backoff(attempt, rc.BaseInterval, rc.MaxInterval)
		g.log.Warn("remote wasm code: attempt failed, retrying", "uri", rc.URI, "cluster", rc.Cluster, "attempt", attempt+1, "retry_in", wait, "err", err)
		select {
		case <-time.After(wait):
		case <-ctx.Done():
			return nil, fmt.Errorf("%w: %v", ErrRemoteFetch, ctx.Err())
		}
	}
	if n := rc.Retries + 1; n > 1 {
		return nil, fmt.Errorf("%w (%d attempts)", last, n)
	}
	return nil, last
}

// fetchOnce is one GET of target through the upstream u.
func fetchOnce(ctx context.Context, u *upstream, target *url.URL, timeout time.Duration) ([]byte, error) {
	if timeout > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, timeout)
		defer cancel()
	}
	// The transport dials the cluster's endpoints whatever the URL's host
	// is; the URL's host only sets the Host header.
	reqURL := url.URL{Scheme: u.scheme(), Host: "cluster", Path: target.Path, RawPath: target.RawPath, RawQuery: target.RawQuery}
	if reqURL.Path == "" {
		reqURL.Path = "/"
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, reqURL.String(), nil)
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrRemoteFetch, err)
	}
	req.Host = target.Host
	resp, err := u.transport.RoundTrip(req)
	if err != nil {
		return nil, fmt.Errorf("%w: %s", ErrRemoteFetch, oneLine(err.Error()))
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("%w: status %d", ErrRemoteFetch, resp.StatusCode)
	}
	body, err := io.ReadAll(io.LimitReader(resp.Body, MaxRemoteCodeBytes+1))
	if err != nil {
		return nil, fmt.Errorf("%w: reading the body: %s", ErrRemoteFetch, oneLine(err.Error()))
	}
	switch {
	case len(body) == 0:
		return nil, fmt.Errorf("%w: empty body", ErrRemoteFetch)
	case len(body) > MaxRemoteCodeBytes:
		return nil, fmt.Errorf("%w: body over %d bytes", ErrRemoteFetch, MaxRemoteCodeBytes)
	}
	return body, nil
}

// backoff is Envoy's jittered exponential back-off: before retry n (0-based)
// a random wait below base*(2^(n+1)-1), never above max.
func backoff(n int, base, max time.Duration) time.Duration {
	if base <= 0 {
		return 0
	}
	ceiling := max
	if n < 30 {
		if c := base * time.Duration(1<<(n+1)-1); c > 0 && c < max {
			ceiling = c
		}
	}
	if ceiling <= 0 {
		return 0
	}
	return time.Duration(rand.Int64N(int64(ceiling)))
}
