package gateway

import (
	"bufio"
	"bytes"
	"encoding/json"
	"io"
	"net/http"
	"runtime/pprof"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"ai-proxy/harness/testutil"
)

// syncBuffer is an io.Writer safe for concurrent use.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// accessLines decodes the access log, checking that every line is one JSON
// object whose keys start with the AccessLogEntry fields in order.
func accessLines(t *testing.T, text string) []map[string]any {
	t.Helper()
	fixed := []string{"start_time", "listener", "method", "path", "authority", "protocol", "status",
		"response_flags", "duration_ms", "bytes_received", "bytes_sent", "upstream_cluster", "request_id"}
	var out []map[string]any
	sc := bufio.NewScanner(strings.NewReader(text))
	for sc.Scan() {
		line := sc.Bytes()
		var m map[string]any
		dec := json.NewDecoder(bytes.NewReader(line))
		dec.UseNumber()
		if err := dec.Decode(&m); err != nil {
			t.Fatalf("access-log line is not JSON: %v: %s", err, line)
		}
		keys := jsonKeys(t, line)
		if len(keys) < len(fixed) {
			t.Fatalf("access-log line has %d keys, want at least %d: %s", len(keys), len(fixed), line)
		}
		for i, k := range fixed {
			if keys[i] != k {
				t.Fatalf("access-log key %d is %q, want %q: %s", i, keys[i], k, line)
			}
		}
		for i := len(fixed) + 1; i < len(keys); i++ {
			if keys[i-1] >= keys[i] {
				t.Errorf("properties not sorted: %q before %q", keys[i-1], keys[i])
			}
		}
		if _, err := time.Parse(time.RFC3339Nano, m["start_time"].(string)); err != nil {
			t.Errorf("start_time: %v", err)
		}
		if d, err := m["duration_ms"].(json.Number).Float64(); err != nil || d < 0 || d > 60000 {
			t.Errorf("duration_ms = %v", m["duration_ms"])
		}
		out = append(out, m)
	}
	return out
}

// jsonKeys returns the top-level keys of a JSON object in document order.
func jsonKeys(t *testing.T, obj []byte) []string {
	t.Helper()
	dec := json.NewDecoder(bytes.NewReader(obj))
	if _, err := dec.Token(); err != nil {
		t.Fatal(err)
	}
	var keys []string
	for dec.More() {
		tok, err := dec.Token()
		if err != nil {
			t.Fatal(err)
		}
		keys = append(keys, tok.(string))
		var skip json.RawMessage
		if err := dec.Decode(&skip); err != nil {
			t.Fatal(err)
		}
	}
	return keys
}

// waitLines polls the log until it holds n lines.
func waitLines(t *testing.T, log *syncBuffer, n int) []map[string]any {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for {
		text := log.String()
		if strings.Count(text, "\n") >= n || time.Now().After(deadline) {
			lines := accessLines(t, text)
			if len(lines) != n {
				t.Fatalf("%d access-log lines, want %d:\n%s", len(lines), n, text)
			}
			return lines
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func TestAccessLog(t *testing.T) {
	upstream, _ := echoServer(t, "up")
	dead := testutil.FreeAddr(t)
	var log syncBuffer
	g := start(t, setup{
		Filters: []filterSpec{{Tag: "A"}},
		VHosts: []vhostSpec{{Domains: []string{"*"}, Routes: []routeSpec{
			{Prefix: "/dead", Cluster: "dead"},
			{Prefix: "/up", Cluster: "upstream"},
		}}},
		Clusters: []clusterSpec{{Name: "upstream", Addrs: []string{upstream}}, {Name: "dead", Addrs: []string{dead}}},
		Options:  Options{AccessLog: &log},
	})

	type want map[string]any // field → value (string, int or float64); nil: absent
	cases := []struct {
		name    string
		method  string
		path    string
		headers map[string]string
		body    string
		want    want
	}{
		{
			name: "properties set in headers and in on_log", method: "GET", path: "/up/x?y=1",
			headers: map[string]string{
				"x-request-id":    "rid-1",
				"x-test-prop":     "llm_prompt_tokens=12;llm_model=4;request_llm_model=gpt-4;other=zzz;llm_provider=openai;llm_total_tokens=1",
				"x-test-prop-log": "llm_completion_tokens=7;llm_time_to_first_token=3.5;llm_total_tokens=19",
			},
			want: want{
				"listener": "main", "method": "GET", "path": "/up/x?y=1", "protocol": "HTTP/1.1", "status": 200,
				"response_flags": "", "bytes_received": 0, "upstream_cluster": "upstream", "request_id": "rid-1",
				"llm_prompt_tokens": 12, "llm_model": "4", "request_llm_model": "gpt-4", "llm_provider": "openai",
				"llm_completion_tokens": 7, "llm_time_to_first_token": 3.5, "llm_total_tokens": 19, "other": nil,
			},
		},
		{
			name: "values that are not JSON decimals stay strings", method: "GET", path: "/up",
			headers: map[string]string{"x-test-prop": `llm_a=007;llm_b=-1;llm_c=1.;llm_d=1e5;llm_e=;llm_f=0.25;llm_g=x"y`},
			want:    want{"llm_a": "007", "llm_b": -1, "llm_c": "1.", "llm_d": "1e5", "llm_e": "", "llm_f": 0.25, "llm_g": `x"y`},
		},
		{
			name: "request body counted", method: "POST", path: "/up/post", body: "hello",
			want: want{"method": "POST", "status": 200, "bytes_received": 5, "upstream_cluster": "upstream"},
		},
		{
			name: "local reply never reaches the router", method: "GET", path: "/up/local",
			headers: map[string]string{"x-test-local": "403"},
			want:    want{"status": 403, "upstream_cluster": "", "bytes_sent": len("local:A"), "response_flags": ""},
		},
		{
			name: "no route", method: "GET", path: "/nowhere",
			want: want{"status": 404, "upstream_cluster": "", "response_flags": "NR"},
		},
		{
			name: "upstream unreachable", method: "GET", path: "/dead",
			want: want{"status": 503, "upstream_cluster": "dead", "response_flags": "UF"},
		},
	}
	bodies := make([]string, len(cases))
	for i, tc := range cases {
		_, _, bodies[i] = do(t, tc.method, g.URL+tc.path, "", tc.headers, tc.body)
	}
	// A line is written when the request's streams are done, which may be
	// after the client has the whole response: lines are matched by path.
	byPath := map[string]map[string]any{}
	for _, line := range waitLines(t, &log, len(cases)) {
		byPath[line["path"].(string)] = line
	}
	for i, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			line := byPath[tc.path]
			if line == nil {
				t.Fatalf("no access-log line for %s", tc.path)
			}
			if tc.want["bytes_sent"] == nil && line["status"].(json.Number).String() == "200" {
				tc.want["bytes_sent"] = len(bodies[i])
			}
			if id, _ := line["request_id"].(string); id == "" {
				t.Errorf("request_id is empty: a generated x-request-id is expected")
			}
			for k, v := range tc.want {
				got, ok := line[k]
				if v == nil {
					if ok {
						t.Errorf("%s = %v, want it absent", k, got)
					}
					continue
				}
				if !ok {
					t.Errorf("%s absent, want %v", k, v)
					continue
				}
				switch v := v.(type) {
				case string:
					if s, isStr := got.(string); !isStr || s != v {
						t.Errorf("%s = %#v, want string %q", k, got, v)
					}
				case int:
					if n, isNum := got.(json.Number); !isNum || n.String() != strconv.Itoa(v) {
						t.Errorf("%s = %#v, want number %d", k, got, v)
					}
				case float64:
					if n, isNum := got.(json.Number); !isNum || n.String() != strconv.FormatFloat(v, 'f', -1, 64) {
						t.Errorf("%s = %#v, want number %v", k, got, v)
					}
				}
			}
		})
	}
}

func TestPropertyValue(t *testing.T) {
	tests := []struct{ name, in, want string }{
		{"llm_prompt_tokens", "12", `12`},
		{"llm_prompt_tokens", "0", `0`},
		{"llm_time_to_first_token", "12.5", `12.5`},
		{"llm_x", "-3", `-3`},
		{"llm_x", "012", `"012"`},
		{"llm_x", "1.", `"1."`},
		{"llm_x", ".5", `".5"`},
		{"llm_x", "1e3", `"1e3"`},
		{"llm_x", "-", `"-"`},
		{"llm_x", "", `""`},
		{"llm_x", "a\"b\n", `"a\"b\n"`},
		{"llm_model", "4", `"4"`},
		{"request_llm_model", "123", `"123"`},
		{"llm_provider", "1", `"1"`},
	}
	for _, tc := range tests {
		if got := string(propertyValue(tc.name, []byte(tc.in))); got != tc.want {
			t.Errorf("propertyValue(%q, %q) = %s, want %s", tc.name, tc.in, got, tc.want)
		}
	}
}

// adminClient opens a connection per request, so that polling the admin
// leaves no connection (and no goroutine) behind.
var adminClient = &http.Client{Transport: &http.Transport{DisableKeepAlives: true}, Timeout: 5 * time.Second}

// debugStreams reads GET /debug/streams.
func debugStreams(t *testing.T, g *testGateway) StreamStats {
	t.Helper()
	resp, err := adminClient.Get(g.Admin + "/debug/streams")
	if err != nil {
		t.Fatal(err)
	}
	body, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	if err != nil || resp.StatusCode != 200 {
		t.Fatalf("/debug/streams: %d %s %v", resp.StatusCode, body, err)
	}
	var st StreamStats
	if err := json.Unmarshal(body, &st); err != nil {
		t.Fatalf("/debug/streams: %v: %s", err, body)
	}
	return st
}

// waitIdle polls /debug/streams until no stream, request or upstream request
// is left, and returns the last reading.
func waitIdle(t *testing.T, g *testGateway) StreamStats {
	t.Helper()
	deadline := time.Now().Add(3 * time.Second)
	for {
		st := debugStreams(t, g)
		if st.LiveStreams == 0 && st.ActiveRequests == 0 && st.UpstreamRequests == 0 && st.HTTPCalls == 0 {
			return st
		}
		if time.Now().After(deadline) {
			t.Fatalf("still open 3s after the request ended: %+v", st)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// TestClientDisconnectMidStream: the client goes away while the upstream
// streams; the gateway cancels the upstream request at once, closes its
// connection, ends the filter streams and logs DC.
func TestClientDisconnectMidStream(t *testing.T) {
	upstreamGone := make(chan time.Time, 1)
	upstream := newServer(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/event-stream")
		f := w.(http.Flusher)
		for i := 0; ; i++ {
			if _, err := io.WriteString(w, "data: "+strconv.Itoa(i)+"\n\n"); err != nil {
				upstreamGone <- time.Now()
				return
			}
			f.Flush()
			select {
			case <-r.Context().Done():
				upstreamGone <- time.Now()
				return
			case <-time.After(50 * time.Millisecond):
			}
		}
	}))
	var log syncBuffer
	g := start(t, setup{
		Filters:  []filterSpec{{Tag: "A"}},
		Clusters: []clusterSpec{{Name: "upstream", Addrs: []string{upstream}}},
		Admin:    true,
		Options:  Options{AccessLog: &log},
	})
	base := debugStreams(t, g)

	req, _ := http.NewRequest("GET", g.URL+"/stream", nil)
	req.Header.Set("x-test-prop", "llm_model=m")
	tr := &http.Transport{DisableKeepAlives: true}
	resp, err := (&http.Client{Transport: tr}).Do(req)
	if err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 64)
	if n, err := resp.Body.Read(buf); err != nil || !strings.HasPrefix(string(buf[:n]), "data: 0") {
		t.Fatalf("first chunk: %q, %v", buf[:n], err)
	}
	during := debugStreams(t, g)
	if during.LiveStreams != 1 || during.ActiveRequests != 1 || during.UpstreamRequests != 1 || during.UpstreamConnections != 1 {
		t.Errorf("while streaming: %+v; want 1 live stream, 1 request, 1 upstream request, 1 connection", during)
	}
	closed := time.Now()
	resp.Body.Close()
	tr.CloseIdleConnections()

	select {
	case at := <-upstreamGone:
		if d := at.Sub(closed); d > time.Second {
			t.Errorf("the upstream saw the end %v after the client left", d)
		}
	case <-time.After(3 * time.Second):
		t.Fatal("the upstream still streams 3s after the client left")
	}
	after := waitIdle(t, g)
	if after.UpstreamConnections != 0 {
		t.Errorf("upstream connections after the disconnect: %d, want 0 (an aborted response's connection is not reused)", after.UpstreamConnections)
	}
	// Goroutines settle once the connections' loops have ended.
	deadline := time.Now().Add(3 * time.Second)
	for after.Goroutines > base.Goroutines && time.Now().Before(deadline) {
		time.Sleep(20 * time.Millisecond)
		after = debugStreams(t, g)
	}
	if after.Goroutines > base.Goroutines {
		var dump strings.Builder
		pprof.Lookup("goroutine").WriteTo(&dump, 1)
		t.Errorf("goroutines: %d before the request, %d after:\n%s", base.Goroutines, after.Goroutines, dump.String())
	}
	line := waitLines(t, &log, 1)[0]
	if line["response_flags"] != "DC" || line["status"].(json.Number).String() != "200" || line["llm_model"] != "m" {
		t.Errorf("access-log line: %v; want status 200, response_flags DC, llm_model m", line)
	}
}

func TestDebugEndpoints(t *testing.T) {
	release := make(chan struct{})
	arrived := make(chan struct{}, 1)
	upstream := newServer(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		arrived <- struct{}{}
		<-release
		io.WriteString(w, "ok")
	}))
	g := start(t, setup{
		Filters:  []filterSpec{{Tag: "A"}, {Tag: "B"}},
		Clusters: []clusterSpec{{Name: "upstream", Addrs: []string{upstream}}},
		Admin:    true,
	})
	done := make(chan string)
	go func() {
		_, _, body := do(t, "GET", g.URL+"/held", "", nil, "")
		done <- body
	}()
	select {
	case <-arrived:
	case <-time.After(5 * time.Second):
		t.Fatal("the request did not reach the upstream")
	}
	st := debugStreams(t, g)
	if st.LiveStreams != 2 || st.ActiveRequests != 1 || st.UpstreamRequests != 1 || st.UpstreamConnections != 1 || st.Goroutines == 0 {
		t.Errorf("while held: %+v; want 2 live streams (two filters), 1 request, 1 upstream request, 1 connection", st)
	}
	close(release)
	if body := <-done; body != "ok" {
		t.Fatalf("body %q", body)
	}
	st = waitIdle(t, g)
	if st.UpstreamConnections != 1 {
		t.Errorf("after the request: %d upstream connections, want 1 (idle, kept alive)", st.UpstreamConnections)
	}

	status, hdr, body := do(t, "GET", g.Admin+"/debug/memory?gc=1", "", nil, "")
	var ms MemoryStats
	if status != 200 || hdr.Get("Content-Type") != "application/json" || json.Unmarshal([]byte(body), &ms) != nil {
		t.Fatalf("/debug/memory: %d %q %s", status, hdr.Get("Content-Type"), body)
	}
	if ms.HeapAlloc == 0 || ms.HeapInuse < ms.HeapAlloc/2 || ms.Sys < ms.HeapSys || ms.NumGC == 0 || ms.VMMemory == 0 {
		t.Errorf("/debug/memory: %+v", ms)
	}
	if ms.VMMemory%65536 != 0 {
		t.Errorf("vm_memory %d is not a whole number of wasm pages", ms.VMMemory)
	}
}
