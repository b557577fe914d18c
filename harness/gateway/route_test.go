package gateway

import (
	"net/http"
	"reflect"
	"regexp"
	"testing"

	"ai-proxy/filter/proxywasm/abi"
	"ai-proxy/harness/bootstrap"
)

func TestFindRoute(t *testing.T) {
	rt := func(c string) []*bootstrap.Route {
		return []*bootstrap.Route{{Match: bootstrap.MatchPrefix, Value: "/", Cluster: c}}
	}
	vhosts := []*bootstrap.VirtualHost{
		{Name: "any", Domains: []string{"*"}, Routes: rt("any")},
		{Name: "prefix", Domains: []string{"api.*"}, Routes: rt("prefix")},
		{Name: "short-suffix", Domains: []string{"*.com"}, Routes: rt("short-suffix")},
		{Name: "long-suffix", Domains: []string{"*.example.com"}, Routes: rt("long-suffix")},
		{Name: "exact", Domains: []string{"www.example.com", "www.example.com:8080"}, Routes: rt("exact")},
		{Name: "no-routes", Domains: []string{"empty.test"}},
	}
	cases := []struct {
		host       string
		ignorePort bool
		want       string // cluster, or "" for no route
	}{
		{"www.example.com", false, "exact"},
		{"WWW.EXAMPLE.COM", false, "exact"},
		{"www.example.com:8080", false, "exact"},
		{"www.example.com:9090", false, "any"}, // the port is part of the host
		{"www.example.com:9090", true, "exact"},
		{"a.example.com", false, "long-suffix"},
		{"a.other.com", false, "short-suffix"},
		{"api.local", false, "prefix"},
		{"api.example.com", false, "long-suffix"}, // suffix wildcards before prefix wildcards
		{"localhost", false, "any"},
		{"empty.test", false, ""},
		{"[::1]:80", true, "any"},
	}
	for _, tc := range cases {
		_, r := findRoute(vhosts, tc.host, "/x", tc.ignorePort)
		got := ""
		if r != nil {
			got = r.Cluster
		}
		if got != tc.want {
			t.Errorf("host %q ignorePort=%v: %q, want %q", tc.host, tc.ignorePort, got, tc.want)
		}
	}
	if vh, r := findRoute(vhosts[4:5], "other", "/", false); vh != nil || r != nil {
		t.Errorf("no virtual host for the domain: got %v %v", vh, r)
	}
}

func TestRequestHeaders(t *testing.T) {
	r, err := http.NewRequest("POST", "http://api.example.com:8080/v1/chat?stream=1", nil)
	if err != nil {
		t.Fatal(err)
	}
	r.RequestURI = "/v1/chat?stream=1"
	r.Header = http.Header{
		"Content-Type":      {"application/json"},
		"Authorization":     {"Bearer x"},
		"X-Multi":           {"1", "2"},
		"Connection":        {"keep-alive"},
		"Keep-Alive":        {"timeout=5"},
		"X-Forwarded-Proto": {"https"}, // replaced: the gateway's scheme is http
		"X-Request-Id":      {"given"},
	}
	got, reqID := requestHeaders(r, false)
	want := []abi.Header{
		{":authority", "api.example.com:8080"},
		{":path", "/v1/chat?stream=1"},
		{":method", "POST"},
		{":scheme", "http"},
		{"authorization", "Bearer x"},
		{"content-type", "application/json"},
		{"x-multi", "1"},
		{"x-multi", "2"},
		{"x-request-id", "given"},
		{"x-forwarded-proto", "http"},
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("requestHeaders:\n got %v\nwant %v", got, want)
	}
	if reqID != "given" {
		t.Errorf("request id %q, want the client's", reqID)
	}
	r.Header.Del("X-Request-Id")
	got, reqID = requestHeaders(r, true)
	if got[0] != (abi.Header{":authority", "api.example.com"}) {
		t.Errorf("strip_any_host_port: %v", got[0])
	}
	id := got[len(got)-2]
	if id[0] != "x-request-id" || !regexp.MustCompile(`^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$`).MatchString(id[1]) {
		t.Errorf("generated x-request-id %v", id)
	}
	if reqID != id[1] {
		t.Errorf("request id %q, want the generated %q", reqID, id[1])
	}
}

func TestLocalReplyHeaders(t *testing.T) {
	cases := []struct {
		rep  localReply
		want []abi.Header
	}{
		{localReply{status: 403, body: []byte("no")}, []abi.Header{
			{":status", "403"}, {"content-type", "text/plain"}, {"content-length", "2"}}},
		{localReply{status: 200, headers: []abi.Header{{"Content-Type", "application/json"}, {"Content-Length", "99"}, {"X-A", "1"}}, body: []byte("{}")},
			[]abi.Header{{":status", "200"}, {"content-type", "application/json"}, {"x-a", "1"}, {"content-length", "2"}}},
		{localReply{status: 204}, []abi.Header{{":status", "204"}, {"content-length", "0"}}},
	}
	for _, tc := range cases {
		if got := tc.rep.responseHeaders(); !reflect.DeepEqual(got, tc.want) {
			t.Errorf("%d: %v, want %v", tc.rep.status, got, tc.want)
		}
	}
}
