package echo

import (
	"encoding/json"
	"io"
	"net/http"
	"strings"
	"testing"
)

func TestEcho(t *testing.T) {
	s := New()
	url := s.Start()
	t.Cleanup(s.Close)

	tests := []struct {
		name, method, path, body, contentType string
		wantJSON                              string // compacted; "null" when not JSON
		wantArgs                              map[string]string
	}{
		{"json post", http.MethodPost, "/anything", `{"a": [1, 2], "b": "x"}`, "application/json", `{"a":[1,2],"b":"x"}`, map[string]string{}},
		{"text post with query", http.MethodPost, "/anything/deep?x=1&y=two", "plain words", "text/plain", "null", map[string]string{"x": "1", "y": "two"}},
		{"get without body", http.MethodGet, "/status", "", "", "null", map[string]string{}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			s.Reset()
			var body io.Reader
			if tc.body != "" {
				body = strings.NewReader(tc.body)
			}
			req, err := http.NewRequest(tc.method, url+tc.path, body)
			if err != nil {
				t.Fatal(err)
			}
			req.Host = "api.openai.com:443"
			req.Header.Set("User-Agent", "curl/8.6.0")
			req.Header.Set("X-Custom", "one")
			req.Header.Add("X-Custom", "two")
			if tc.contentType != "" {
				req.Header.Set("Content-Type", tc.contentType)
			}
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			raw, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if resp.StatusCode != http.StatusOK || resp.Header.Get("Content-Type") != "application/json" {
				t.Fatalf("status %d content-type %q", resp.StatusCode, resp.Header.Get("Content-Type"))
			}
			var got Response
			if err := json.Unmarshal(raw, &got); err != nil {
				t.Fatalf("answer %s: %v", raw, err)
			}
			if got.Method != tc.method || got.Data != tc.body || got.URL != "http://api.openai.com:443"+tc.path || got.Origin != "127.0.0.1" {
				t.Errorf("method %q data %q url %q origin %q", got.Method, got.Data, got.URL, got.Origin)
			}
			if compact(t, got.JSON) != tc.wantJSON {
				t.Errorf("json = %s, want %s", got.JSON, tc.wantJSON)
			}
			if len(got.Args) != len(tc.wantArgs) {
				t.Errorf("args = %v, want %v", got.Args, tc.wantArgs)
			}
			for k, v := range tc.wantArgs {
				if got.Args[k] != v {
					t.Errorf("args[%s] = %q, want %q", k, got.Args[k], v)
				}
			}
			wantHeaders := map[string]string{"Host": "api.openai.com:443", "User-Agent": "curl/8.6.0", "X-Custom": "one"}
			if tc.body != "" {
				wantHeaders["Content-Length"] = itoa(len(tc.body))
				wantHeaders["Content-Type"] = tc.contentType
			} else if _, ok := got.Headers["Content-Length"]; ok {
				t.Errorf("Content-Length reported for a request that sent none: %v", got.Headers)
			}
			for k, v := range wantHeaders {
				if got.Headers[k] != v {
					t.Errorf("headers[%s] = %q, want %q (all: %v)", k, got.Headers[k], v, got.Headers)
				}
			}
			reqs := s.Requests()
			if len(reqs) != 1 {
				t.Fatalf("recorded %d requests", len(reqs))
			}
			r := reqs[0]
			if r.Method != tc.method || r.Host != "api.openai.com:443" || string(r.Body) != tc.body ||
				len(r.Header.Values("X-Custom")) != 2 {
				t.Errorf("recorded %+v", r)
			}
		})
	}
}

func compact(t *testing.T, raw json.RawMessage) string {
	t.Helper()
	var v any
	if err := json.Unmarshal(raw, &v); err != nil {
		t.Fatalf("%s: %v", raw, err)
	}
	out, _ := json.Marshal(v)
	return string(out)
}

func itoa(n int) string {
	b, _ := json.Marshal(n)
	return string(b)
}
