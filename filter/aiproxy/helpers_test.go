package aiproxy

import (
	"strconv"
	"strings"
	"testing"
)

func TestHeaderKind(t *testing.T) {
	tests := []struct {
		name  string
		kind  int
		lower string
	}{
		{":path", headerPath, ":path"},
		{":Path", headerPath, ":path"}, // hosts send pseudo-headers lowercase; folding is harmless
		{"content-type", headerContentType, "content-type"},
		{"Content-Type", headerContentType, "content-type"},
		{"content-length", headerContentLength, "content-length"},
		{"CONTENT-LENGTH", headerContentLength, "content-length"},
		{"authorization", headerCredential, "authorization"},
		{"Proxy-Authorization", headerCredential, "proxy-authorization"},
		{"cookie", headerCredential, "cookie"},
		{"Api-Key", headerCredential, "api-key"},
		{"x-api-key", headerCredential, "x-api-key"},
		{"Accept-Encoding", headerCredential, "accept-encoding"},
		// Same lengths as known names, other names.
		{"x-request-id", headerOther, ""},  // 12, as content-type
		{"user-agent", headerOther, ""},    // 10
		{"x-forwarded-f", headerOther, ""}, // 13, as authorization
		{":authority", headerOther, ""},
		{"content-typf", headerOther, ""},
		{"", headerOther, ""},
	}
	for _, tc := range tests {
		kind, lower := headerKind(tc.name)
		if kind != tc.kind || lower != tc.lower {
			t.Errorf("headerKind(%q) = %d, %q; want %d, %q", tc.name, kind, lower, tc.kind, tc.lower)
		}
		// Every known name is found whatever its case, and the lowercase
		// form is the name lowercased.
		if kind != headerOther && lower != strings.ToLower(tc.name) {
			t.Errorf("headerKind(%q): lower %q is not the name lowercased", tc.name, lower)
		}
	}
}

func TestIsJSONContentType(t *testing.T) {
	tests := []struct {
		v    string
		want bool
	}{
		{"application/json", true},
		{"Application/JSON", true},
		{"application/json; charset=utf-8", true},
		{"  application/json\t;charset=utf-8", true},
		{"application/vnd.api+json", true},
		{"APPLICATION/VND.API+JSON; x=y", true},
		{"application/+json", true},
		{"application/jsonx", false},
		{"application/", false},
		{"text/json", false},
		{"text/plain", false},
		{"json", false},
		{"", false},
		{"application/x-www-form-urlencoded", false},
	}
	for _, tc := range tests {
		if got := isJSONContentType(tc.v); got != tc.want {
			t.Errorf("isJSONContentType(%q) = %v, want %v", tc.v, got, tc.want)
		}
	}
}

func TestIsEventStream(t *testing.T) {
	for v, want := range map[string]bool{
		"text/event-stream":                 true,
		" Text/Event-Stream; charset=utf-8": true,
		"text/event-stream2":                true, // a prefix, as before
		"text/event":                        false,
		"application/json":                  false,
		"":                                  false,
	} {
		if got := isEventStream(v); got != want {
			t.Errorf("isEventStream(%q) = %v, want %v", v, got, want)
		}
	}
}

func TestDeclaredOver(t *testing.T) {
	const limit = 1000
	tests := []struct {
		v    string
		want bool
	}{
		{"1000", false},
		{"1001", true},
		{" 1001 ", true},
		{"+1001", true},
		{"0", false},
		{"999", false},
		{"99999999999999999999999999", true}, // past int64: still over
		{"-5", false},
		{"12a", false},
		{"", false},
		{"+", false},
		{"1 000", false},
	}
	for _, tc := range tests {
		if got := declaredOver(tc.v, limit); got != tc.want {
			t.Errorf("declaredOver(%q, %d) = %v, want %v", tc.v, limit, got, tc.want)
		}
	}
	// Against strconv for every value around the largest limit the
	// configuration allows (max_req_body_size <= 1<<53).
	big := 1 << 53
	for _, n := range []int{big - 1, big, big + 1, big * 9, big*10 + 9} {
		if got := declaredOver(strconv.Itoa(n), big); got != (n > big) {
			t.Errorf("declaredOver(%d, %d) = %v", n, big, got)
		}
	}
}

func TestFormatInt(t *testing.T) {
	for _, v := range []int64{0, 1, 9, 10, 99, 100, 512, 123456789, -1, -10, 1<<63 - 1, -1 << 63} {
		if got, want := string(formatInt(v)), strconv.FormatInt(v, 10); got != want {
			t.Errorf("formatInt(%d) = %q, want %q", v, got, want)
		}
	}
}
