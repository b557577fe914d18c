package config

import (
	"net/netip"
	"sort"
	"strconv"
	"strings"
)

// Endpoint is the LLM endpoint, resolved once at configure time into the pieces
// the filter puts on the wire.
type Endpoint struct {
	// URL is the endpoint as configured (override.endpoint) or the provider's
	// default, without auth.query.
	URL string
	// Scheme is "http" or "https" (lower case).
	Scheme string
	// Host is the hostname (lower case) or IP address, without port or brackets.
	Host string
	// Port is the explicit port, or 80/443 from the scheme.
	Port int
	// Authority is the value for :authority: Host (IPv6 in brackets), plus
	// ":port" only when Port is not the scheme's default.
	Authority string
	// Path is the value for :path: the endpoint's path, then "?" and the merged
	// query when there is one.
	//
	// An endpoint without a path (e.g. "http://127.0.0.1:8080") gets the
	// provider's default path, as APISIX does ("/v1/chat/completions" for openai
	// and openai-compatible, "/chat/completions" for deepseek); azure-openai
	// needs an explicit path. Bytes not allowed in a path are percent-encoded.
	//
	// The query is the endpoint's own query pairs, verbatim and in their order,
	// followed by the auth.query pairs whose key the endpoint does not have
	// (the endpoint's value wins, as in APISIX), sorted by key and
	// percent-encoded (space as %20).
	Path string
}

// defaultPort returns the port the scheme implies.
func defaultPort(scheme string) int {
	if scheme == "https" {
		return 443
	}
	return 80
}

// hostPort formats host and port for an authority or a cluster name.
func hostPort(host string, port int) string {
	if strings.IndexByte(host, ':') >= 0 {
		host = "[" + host + "]"
	}
	return host + ":" + strconv.Itoa(port)
}

// parseEndpoint parses raw (an http or https URL) and merges query (auth.query
// pairs, sorted by key) into its path. defaultPath is used when the URL has no
// path ("" = the URL must have one). It returns a FieldError for field.
func parseEndpoint(field, raw, defaultPath string, query [][2]string) (Endpoint, error) {
	bad := func(msg string) (Endpoint, error) {
		return Endpoint{}, fieldErr(field, msg)
	}
	notHTTP := func() (Endpoint, error) { return bad(quoteURL(raw) + " is not an http(s) URL") }

	rest := raw
	colon := strings.IndexByte(rest, ':')
	if colon <= 0 {
		return notHTTP()
	}
	scheme := strings.ToLower(rest[:colon])
	if scheme != "http" && scheme != "https" {
		return notHTTP()
	}
	rest = rest[colon+1:]
	if !strings.HasPrefix(rest, "//") {
		return notHTTP()
	}
	rest = rest[2:]
	if i := strings.IndexByte(rest, '#'); i >= 0 {
		rest = rest[:i] // a fragment is never sent
	}
	authEnd := strings.IndexAny(rest, "/?")
	if authEnd < 0 {
		authEnd = len(rest)
	}
	authority, rest := rest[:authEnd], rest[authEnd:]
	if strings.IndexByte(authority, '@') >= 0 {
		// Never echo it: user info may hold a password.
		return bad("must not contain user information (put credentials in auth.header)")
	}

	host, portStr := authority, ""
	if strings.HasPrefix(authority, "[") {
		end := strings.IndexByte(authority, ']')
		if end < 0 {
			return bad(quoteURL(raw) + " has an invalid IPv6 host")
		}
		host = authority[1:end]
		after := authority[end+1:]
		if after != "" {
			if after[0] != ':' {
				return bad(quoteURL(raw) + " has an invalid port")
			}
			portStr = after[1:]
		}
		addr, err := netip.ParseAddr(host)
		if err != nil || !addr.Is6() || addr.Zone() != "" {
			return bad(quoteURL(raw) + " has an invalid IPv6 host")
		}
		host = addr.String()
	} else {
		if i := strings.LastIndexByte(authority, ':'); i >= 0 {
			host, portStr = authority[:i], authority[i+1:]
		}
		if !validRegName(host) {
			return bad(quoteURL(raw) + " has no valid host")
		}
		host = strings.ToLower(host)
	}

	port := defaultPort(scheme)
	if portStr != "" {
		p, err := strconv.Atoi(portStr)
		if err != nil || p < 1 || p > 65535 || portStr[0] == '+' || portStr[0] == '-' {
			return bad(quoteURL(raw) + " has an invalid port")
		}
		port = p
	}

	path, rawQuery := rest, ""
	if i := strings.IndexByte(rest, '?'); i >= 0 {
		path, rawQuery = rest[:i], rest[i+1:]
	}
	if path == "" {
		if defaultPath == "" {
			return bad("must include the path (e.g. https://NAME.openai.azure.com/openai/deployments/DEPLOYMENT/chat/completions?api-version=VERSION)")
		}
		path = defaultPath
	}
	var ok bool
	if path, ok = escapeAllowed(path, pathChars); !ok {
		return bad(quoteURL(raw) + " has an invalid percent-encoding in its path")
	}

	q, ok := mergeQuery(rawQuery, query)
	if !ok {
		return bad("has an invalid percent-encoding in its query")
	}
	if q != "" {
		path += "?" + q
	}

	authorityOut := host
	if strings.IndexByte(host, ':') >= 0 {
		authorityOut = "[" + host + "]"
	}
	if port != defaultPort(scheme) {
		authorityOut = hostPort(host, port)
	}
	return Endpoint{
		URL:       raw,
		Scheme:    scheme,
		Host:      host,
		Port:      port,
		Authority: authorityOut,
		Path:      path,
	}, nil
}

// validRegName accepts a DNS name or IPv4 address: letters, digits, '-', '.',
// '_' and '~', not empty.
func validRegName(h string) bool {
	if h == "" {
		return false
	}
	for i := 0; i < len(h); i++ {
		c := h[i]
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-' || c == '.' || c == '_' || c == '~') {
			return false
		}
	}
	return true
}

// Byte classes for escapeAllowed.
const (
	pathChars  = "/:@!$&'()*+,;=-._~"
	queryChars = "/?:@!$'()*+,;-._~" // within one key or value: no '&' or '='
)

func isUnreserved(c byte) bool {
	return c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-' || c == '.' || c == '_' || c == '~'
}

// escapeAllowed percent-encodes every byte of s that is neither unreserved nor
// in extra nor part of a valid %XX escape. ok is false when s holds a '%' that
// does not start a valid escape.
func escapeAllowed(s, extra string) (string, bool) {
	need := false
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c == '%' {
			if i+2 >= len(s) || !isHexByte(s[i+1]) || !isHexByte(s[i+2]) {
				return "", false
			}
			i += 2
			continue
		}
		if !isUnreserved(c) && strings.IndexByte(extra, c) < 0 {
			need = true
		}
	}
	if !need {
		return s, true
	}
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c == '%' || isUnreserved(c) || strings.IndexByte(extra, c) >= 0 {
			b.WriteByte(c)
			continue
		}
		b.WriteByte('%')
		b.WriteByte(upperHex[c>>4])
		b.WriteByte(upperHex[c&15])
	}
	return b.String(), true
}

const upperHex = "0123456789ABCDEF"

func isHexByte(c byte) bool {
	return c >= '0' && c <= '9' || c >= 'a' && c <= 'f' || c >= 'A' && c <= 'F'
}

func unhex(c byte) byte {
	switch {
	case c >= '0' && c <= '9':
		return c - '0'
	case c >= 'a' && c <= 'f':
		return c - 'a' + 10
	default:
		return c - 'A' + 10
	}
}

// queryUnescape decodes a form-encoded query component ('+' is a space) whose
// escapes were already validated.
func queryUnescape(s string) string {
	if strings.IndexByte(s, '%') < 0 && strings.IndexByte(s, '+') < 0 {
		return s
	}
	b := make([]byte, 0, len(s))
	for i := 0; i < len(s); i++ {
		switch c := s[i]; c {
		case '+':
			b = append(b, ' ')
		case '%':
			b = append(b, unhex(s[i+1])<<4|unhex(s[i+2]))
			i += 2
		default:
			b = append(b, c)
		}
	}
	return string(b)
}

// queryEscape percent-encodes every byte but the unreserved ones (space is %20).
func queryEscape(s string) string {
	n := 0
	for i := 0; i < len(s); i++ {
		if !isUnreserved(s[i]) {
			n++
		}
	}
	if n == 0 {
		return s
	}
	b := make([]byte, 0, len(s)+2*n)
	for i := 0; i < len(s); i++ {
		c := s[i]
		if isUnreserved(c) {
			b = append(b, c)
		} else {
			b = append(b, '%', upperHex[c>>4], upperHex[c&15])
		}
	}
	return string(b)
}

// mergeQuery returns the endpoint's raw query pairs (kept verbatim except for
// percent-encoding bytes that are not allowed) followed by the auth pairs
// (sorted by key) whose decoded key the endpoint does not have.
func mergeQuery(rawQuery string, auth [][2]string) (string, bool) {
	var parts []string
	seen := map[string]bool{}
	for _, piece := range strings.Split(rawQuery, "&") {
		if piece == "" {
			continue
		}
		key := piece
		if i := strings.IndexByte(piece, '='); i >= 0 {
			key = piece[:i]
		}
		k, ok := escapeAllowed(key, queryChars)
		if !ok {
			return "", false
		}
		v := ""
		if len(key) < len(piece) {
			if v, ok = escapeAllowed(piece[len(key)+1:], queryChars+"="); !ok {
				return "", false
			}
			v = "=" + v
		}
		seen[queryUnescape(k)] = true
		parts = append(parts, k+v)
	}
	sorted := append([][2]string(nil), auth...)
	sort.Slice(sorted, func(i, j int) bool { return sorted[i][0] < sorted[j][0] })
	for _, kv := range sorted {
		if seen[kv[0]] {
			continue
		}
		parts = append(parts, queryEscape(kv[0])+"="+queryEscape(kv[1]))
	}
	return strings.Join(parts, "&"), true
}

// quoteURL quotes an endpoint for an error message, without its query (which
// may carry a key) and cut to a readable length.
func quoteURL(raw string) string {
	if i := strings.IndexByte(raw, '?'); i >= 0 {
		raw = raw[:i] + "?…"
	}
	return quoteTrunc(raw)
}
