package aiproxy

// Request header names and values as the filter reads them, without
// lowercasing copies: hosts hand names over in lower case (HTTP/2, Envoy,
// the gateway), but a name or value in another case must mean the same.
// In wasm every byte loop and string comparison costs tens of
// instructions, and every request passes its dozen headers through here:
// names are told apart by their length first.

// Kinds of client request headers (headerKind).
const (
	headerOther = iota
	headerPath
	headerContentType
	headerContentLength
	// headerCredential is a client credential or Accept-Encoding: removed
	// in route mode (so the answer comes back uncompressed and readable for
	// usage), unless a configured auth header of that name replaces it.
	headerCredential
)

// knownHeaders are the request headers the filter acts on, indexed by the
// length of their name: no two share a length (the compiler refuses a
// duplicate index), so a name is one of them only if it equals, ignoring
// case, the one of its length.
var knownHeaders = [...]struct {
	lower string
	kind  int
}{
	len(":path"):               {":path", headerPath},
	len("cookie"):              {"cookie", headerCredential},
	len("api-key"):             {"api-key", headerCredential},
	len("x-api-key"):           {"x-api-key", headerCredential},
	len("content-type"):        {"content-type", headerContentType},
	len("authorization"):       {"authorization", headerCredential},
	len("content-length"):      {"content-length", headerContentLength},
	len("accept-encoding"):     {"accept-encoding", headerCredential},
	len("proxy-authorization"): {"proxy-authorization", headerCredential},
}

// headerKind classifies a request header name in any letter case and
// returns its lowercase form when it is one the filter knows (else "").
func headerKind(name string) (kind int, lower string) {
	if len(name) >= len(knownHeaders) {
		return headerOther, ""
	}
	h := &knownHeaders[len(name)]
	if h.lower == "" || !equalFoldLower(name, h.lower) {
		return headerOther, ""
	}
	return h.kind, h.lower
}

// equalFoldLower reports whether s equals lower, a lowercase ASCII string,
// ignoring the case of ASCII letters in s.
func equalFoldLower(s, lower string) bool {
	if len(s) != len(lower) {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if 'A' <= c && c <= 'Z' {
			c += 'a' - 'A'
		}
		if c != lower[i] {
			return false
		}
	}
	return true
}

// hasPrefixFoldLower is strings.HasPrefix ignoring the case of ASCII letters
// in s; prefix is lowercase ASCII.
func hasPrefixFoldLower(s, prefix string) bool {
	return len(s) >= len(prefix) && equalFoldLower(s[:len(prefix)], prefix)
}

// trimOWS removes the optional whitespace (spaces and tabs; CR and LF too)
// around a header value.
func trimOWS(s string) string {
	for len(s) > 0 && isOWS(s[0]) {
		s = s[1:]
	}
	for len(s) > 0 && isOWS(s[len(s)-1]) {
		s = s[:len(s)-1]
	}
	return s
}

func isOWS(c byte) bool { return c == ' ' || c == '\t' || c == '\r' || c == '\n' }

// isJSONContentType accepts application/json and application/*+json, in any
// case, with parameters.
func isJSONContentType(v string) bool {
	for i := 0; i < len(v); i++ {
		if v[i] == ';' {
			v = v[:i]
			break
		}
	}
	v = trimOWS(v)
	const app = "application/"
	if !hasPrefixFoldLower(v, app) {
		return false
	}
	sub := v[len(app):]
	return equalFoldLower(sub, "json") || len(sub) >= len("+json") && equalFoldLower(sub[len(sub)-len("+json"):], "+json")
}

// isEventStream reports whether a Content-Type is text/event-stream.
func isEventStream(contentType string) bool {
	return hasPrefixFoldLower(trimOWS(contentType), "text/event-stream")
}

// declaredOver reports whether a Content-Length value declares more than
// limit bytes. A value that is not a decimal number (an optional '+', then
// digits) declares nothing here: the body's own size is checked as it comes.
func declaredOver(value string, limit int) bool {
	v := trimOWS(value)
	if len(v) > 0 && v[0] == '+' {
		v = v[1:]
	}
	if len(v) == 0 {
		return false
	}
	n := 0
	for i := 0; i < len(v); i++ {
		c := v[i]
		if c < '0' || c > '9' {
			return false
		}
		if n > limit {
			// Already over, and more digits only make it larger (this
			// also keeps n from overflowing).
			n = limit + 1
			continue
		}
		n = n*10 + int(c-'0')
	}
	return n > limit
}
