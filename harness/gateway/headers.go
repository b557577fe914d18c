package gateway

import (
	"crypto/rand"
	"encoding/hex"
	"net"
	"net/http"
	"sort"
	"strings"

	"ai-proxy/filter/proxywasm/abi"
)

// hopByHop are the connection-level headers a proxy never forwards.
var hopByHop = map[string]bool{
	"connection":        true,
	"keep-alive":        true,
	"proxy-connection":  true,
	"transfer-encoding": true,
	"upgrade":           true,
	"te":                true,
	"trailer":           true,
}

// requestHeaders builds the request header map as Envoy presents it to the
// filters: :authority, :path (with query), :method, :scheme, then the other
// headers lowercased (sorted by name, values in order), with x-forwarded-proto
// set and an x-request-id generated when absent. It also returns the request
// id: the first x-request-id value (as sent, even empty), else the generated one.
func requestHeaders(r *http.Request, stripPort bool) ([]abi.Header, string) {
	authority := r.Host
	if stripPort {
		authority = hostWithoutPort(authority)
	}
	path := r.RequestURI
	if path == "" || !strings.HasPrefix(path, "/") {
		path = r.URL.RequestURI()
	}
	hs := make([]abi.Header, 0, 6+len(r.Header))
	hs = append(hs,
		abi.Header{":authority", authority},
		abi.Header{":path", path},
		abi.Header{":method", r.Method},
		abi.Header{":scheme", "http"},
	)
	hs = fromHTTPHeader(hs, r.Header)
	var id string
	seen := false
	out := hs[:0]
	for _, h := range hs {
		switch {
		case h[0] == "x-forwarded-proto":
			continue
		case h[0] == "x-request-id" && !seen:
			id, seen = h[1], true
		}
		out = append(out, h)
	}
	hs = out
	if id == "" {
		gen := newRequestID()
		hs = append(hs, abi.Header{"x-request-id", gen})
		if !seen {
			id = gen
		}
	}
	return append(hs, abi.Header{"x-forwarded-proto", "http"}), id
}

// fromHTTPHeader appends h to hs with lowercased names, sorted by name, without
// hop-by-hop headers.
func fromHTTPHeader(hs []abi.Header, h http.Header) []abi.Header {
	names := make([]string, 0, len(h))
	for k := range h {
		names = append(names, k)
	}
	sort.Strings(names)
	for _, k := range names {
		lk := strings.ToLower(k)
		if hopByHop[lk] || lk == "host" {
			continue
		}
		for _, v := range h[k] {
			hs = append(hs, abi.Header{lk, v})
		}
	}
	return hs
}

// setRequestHeaders copies the non-pseudo, non-hop-by-hop headers of hs to req
// (content-length and host are carried by req.ContentLength and req.Host).
// Go's default User-Agent is suppressed when the filters left none, as Envoy
// adds none.
func setRequestHeaders(req *http.Request, hs []abi.Header) {
	for _, h := range hs {
		k := strings.ToLower(h[0])
		if strings.HasPrefix(k, ":") || hopByHop[k] || k == "host" || k == "content-length" {
			continue
		}
		req.Header.Add(k, h[1])
	}
	if _, ok := req.Header["User-Agent"]; !ok {
		req.Header["User-Agent"] = []string{""}
	}
}

// setResponseHeaders copies the non-pseudo, non-hop-by-hop headers of hs to w
// and keeps Go from adding a sniffed Content-Type or a Date of its own.
func setResponseHeaders(w http.ResponseWriter, hs []abi.Header) {
	dst := w.Header()
	for _, h := range hs {
		k := strings.ToLower(h[0])
		if strings.HasPrefix(k, ":") || hopByHop[k] {
			continue
		}
		dst.Add(k, h[1])
	}
	if _, ok := dst["Content-Type"]; !ok {
		dst["Content-Type"] = nil
	}
	if _, ok := dst["Date"]; !ok {
		dst["Date"] = nil
	}
}

// hostWithoutPort drops a ":port" suffix from a Host value (IPv6 aware).
func hostWithoutPort(host string) string {
	if h, _, err := net.SplitHostPort(host); err == nil {
		if strings.Contains(h, ":") {
			return "[" + h + "]"
		}
		return h
	}
	return host
}

// newRequestID returns a random UUID v4, as Envoy generates x-request-id.
func newRequestID() string {
	var b [16]byte
	rand.Read(b[:])
	b[6] = b[6]&0x0f | 0x40
	b[8] = b[8]&0x3f | 0x80
	var out [36]byte
	hex.Encode(out[0:8], b[0:4])
	out[8] = '-'
	hex.Encode(out[9:13], b[4:6])
	out[13] = '-'
	hex.Encode(out[14:18], b[6:8])
	out[18] = '-'
	hex.Encode(out[19:23], b[8:10])
	out[23] = '-'
	hex.Encode(out[24:], b[10:])
	return string(out[:])
}
