package mockllm

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"
)

const seedBody = `{
"messages": [
{ "role": "system", "content": "You are a mathematician" },
{ "role": "user", "content": "What is 1+1?" }
]
}`

func start(t *testing.T, useTLS bool) (*Server, string) {
	t.Helper()
	s := New()
	url := s.Start(useTLS)
	t.Cleanup(s.Close)
	return s, url
}

func post(t *testing.T, c *http.Client, url, body string, hdr map[string]string) (*http.Response, []byte) {
	t.Helper()
	req, err := http.NewRequest(http.MethodPost, url, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/json")
	for k, v := range hdr {
		req.Header.Set(k, v)
	}
	resp, err := c.Do(req)
	if err != nil {
		t.Fatalf("POST %s: %v", url, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("read body: %v", err)
	}
	return resp, b
}

type completion struct {
	ID      string `json:"id"`
	Object  string `json:"object"`
	Created int64  `json:"created"`
	Model   string `json:"model"`
	Choices []struct {
		Index   int `json:"index"`
		Message struct {
			Role    string `json:"role"`
			Content string `json:"content"`
		} `json:"message"`
		FinishReason string `json:"finish_reason"`
	} `json:"choices"`
	Usage Usage `json:"usage"`
}

func TestCompletionJSON(t *testing.T) {
	tests := []struct {
		name      string
		body      string
		wantModel string
		wantText  string
		wantUsage Usage
	}{
		{
			name:      "seed question",
			body:      `{"model":"gpt-4","max_tokens":512,"messages":[{"role":"system","content":"You are a mathematician"},{"role":"user","content":"What is 1+1?"}]}`,
			wantModel: "gpt-4",
			wantText:  "1+1 equals 2.",
			wantUsage: Usage{PromptTokens: 7, CompletionTokens: 3, TotalTokens: 10},
		},
		{
			name:      "no model, other question",
			body:      `{"messages":[{"role":"user","content":"hello there"}]}`,
			wantModel: DefaultModel,
			wantText:  "Mock answer to: hello there",
			wantUsage: Usage{PromptTokens: 2, CompletionTokens: 5, TotalTokens: 7},
		},
		{
			name:      "content parts, last user message wins",
			body:      `{"model":"m","messages":[{"role":"user","content":"first"},{"role":"assistant","content":"x"},{"role":"user","content":[{"type":"text","text":"second"},{"type":"text","text":"part"}]}]}`,
			wantModel: "m",
			wantText:  "Mock answer to: second part",
			wantUsage: Usage{PromptTokens: 4, CompletionTokens: 5, TotalTokens: 9},
		},
	}
	s, url := start(t, false)
	for i, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			resp, body := post(t, http.DefaultClient, url+"/v1/chat/completions?x=1", tc.body, map[string]string{"Authorization": "Bearer k"})
			if resp.StatusCode != http.StatusOK {
				t.Fatalf("status %d, body %s", resp.StatusCode, body)
			}
			if ct := resp.Header.Get("Content-Type"); ct != "application/json" {
				t.Errorf("content-type %q", ct)
			}
			var c completion
			if err := json.Unmarshal(body, &c); err != nil {
				t.Fatalf("answer is not JSON: %v: %s", err, body)
			}
			wantID := "chatcmpl-mock-" + string(rune('1'+i))
			if c.ID != wantID || c.Object != "chat.completion" || c.Created != Created || c.Model != tc.wantModel {
				t.Errorf("got id=%q object=%q created=%d model=%q, want %q chat.completion %d %q",
					c.ID, c.Object, c.Created, c.Model, wantID, Created, tc.wantModel)
			}
			if len(c.Choices) != 1 || c.Choices[0].Message.Role != "assistant" ||
				c.Choices[0].Message.Content != tc.wantText || c.Choices[0].FinishReason != "stop" {
				t.Errorf("choices = %+v, want one assistant %q stop", c.Choices, tc.wantText)
			}
			if c.Usage != tc.wantUsage {
				t.Errorf("usage = %+v, want %+v", c.Usage, tc.wantUsage)
			}
			reqs := s.Requests()
			last := reqs[len(reqs)-1]
			if last.Method != http.MethodPost || last.Path != "/v1/chat/completions" || last.RawQuery != "x=1" ||
				last.Header.Get("Authorization") != "Bearer k" || string(last.Body) != tc.body {
				t.Errorf("recorded %+v", last)
			}
			if last.Status != http.StatusOK || !bytes.Equal(last.Response, body) {
				t.Errorf("recorded answer %d %q, client got %q", last.Status, last.Response, body)
			}
		})
	}
	if n := len(s.Requests()); n != len(tests) {
		t.Errorf("recorded %d requests, want %d", n, len(tests))
	}
}

// sseEvents splits an SSE body into its data payloads.
func sseEvents(t *testing.T, body []byte) []string {
	t.Helper()
	var out []string
	for _, ev := range strings.Split(string(body), "\n\n") {
		if ev == "" {
			continue
		}
		if !strings.HasPrefix(ev, "data: ") {
			t.Fatalf("event without data: %q", ev)
		}
		out = append(out, strings.TrimPrefix(ev, "data: "))
	}
	return out
}

func TestCompletionSSE(t *testing.T) {
	for _, includeUsage := range []bool{false, true} {
		name := "without usage"
		body := `{"model":"gpt-4","stream":true,"messages":[{"role":"user","content":"What is 1+1?"}]}`
		if includeUsage {
			name = "with usage"
			body = `{"model":"gpt-4","stream":true,"stream_options":{"include_usage":true},"messages":[{"role":"user","content":"What is 1+1?"}]}`
		}
		t.Run(name, func(t *testing.T) {
			s, url := start(t, false)
			resp, raw := post(t, http.DefaultClient, url+"/v1/chat/completions", body, nil)
			if resp.StatusCode != http.StatusOK || resp.Header.Get("Content-Type") != "text/event-stream" {
				t.Fatalf("status %d content-type %q", resp.StatusCode, resp.Header.Get("Content-Type"))
			}
			events := sseEvents(t, raw)
			if events[len(events)-1] != "[DONE]" {
				t.Fatalf("last event %q, want [DONE]", events[len(events)-1])
			}
			var text strings.Builder
			var usage *Usage
			finished := false
			for _, e := range events[:len(events)-1] {
				var ch struct {
					Object  string `json:"object"`
					Model   string `json:"model"`
					Choices []struct {
						Delta struct {
							Content string `json:"content"`
						} `json:"delta"`
						FinishReason *string `json:"finish_reason"`
					} `json:"choices"`
					Usage *Usage `json:"usage"`
				}
				if err := json.Unmarshal([]byte(e), &ch); err != nil {
					t.Fatalf("chunk %q: %v", e, err)
				}
				if ch.Object != "chat.completion.chunk" || ch.Model != "gpt-4" {
					t.Errorf("chunk object %q model %q", ch.Object, ch.Model)
				}
				for _, c := range ch.Choices {
					text.WriteString(c.Delta.Content)
					if c.FinishReason != nil && *c.FinishReason == "stop" {
						finished = true
					}
				}
				if ch.Usage != nil {
					if len(ch.Choices) != 0 {
						t.Errorf("usage chunk has choices: %s", e)
					}
					usage = ch.Usage
				}
			}
			if text.String() != "1+1 equals 2." || !finished {
				t.Errorf("streamed %q finished=%v", text.String(), finished)
			}
			// 2 for role and stop, 3 words, [DONE], and the usage chunk.
			wantEvents := 6
			if includeUsage {
				wantEvents = 7
				if usage == nil || *usage != (Usage{PromptTokens: 3, CompletionTokens: 3, TotalTokens: 6}) {
					t.Errorf("usage = %+v", usage)
				}
			} else if usage != nil {
				t.Errorf("usage sent without include_usage: %+v", usage)
			}
			if len(events) != wantEvents {
				t.Errorf("%d events, want %d", len(events), wantEvents)
			}
			if got := s.Requests()[0].Response; !bytes.Equal(got, raw) {
				t.Errorf("recorded response differs from what was sent")
			}
		})
	}
}

func TestBehaviors(t *testing.T) {
	s, url := start(t, false)
	const req = `{"model":"gpt-4","messages":[{"role":"user","content":"What is 1+1?"}]}`

	// Queued behaviors run in order, then the one given to Set, then Reset restores the default.
	s.Next(Behavior{Status: 429, Body: []byte(`{"error":{"message":"slow down"}}`),
		Headers: map[string]string{"Retry-After": "7", "X-Ratelimit-Remaining-Requests": "0"}})
	s.Next(Behavior{Status: 500, Body: []byte("boom"), ContentType: "text/plain"})
	s.Set(Behavior{Status: 503, Headers: map[string]string{"X-Mock": "set"}})

	steps := []struct {
		status      int
		contentType string
		body        string // "" = a completion
		header      [2]string
	}{
		{429, "application/json", `{"error":{"message":"slow down"}}`, [2]string{"Retry-After", "7"}},
		{500, "text/plain", "boom", [2]string{}},
		{503, "application/json", "", [2]string{"X-Mock", "set"}},
		{503, "application/json", "", [2]string{"X-Mock", "set"}},
	}
	for i, st := range steps {
		resp, body := post(t, http.DefaultClient, url, req, nil)
		if resp.StatusCode != st.status || resp.Header.Get("Content-Type") != st.contentType {
			t.Errorf("step %d: status %d content-type %q, want %d %q", i, resp.StatusCode, resp.Header.Get("Content-Type"), st.status, st.contentType)
		}
		if st.body != "" && string(body) != st.body {
			t.Errorf("step %d: body %q, want %q", i, body, st.body)
		}
		if st.body == "" && !strings.Contains(string(body), "1+1 equals 2.") {
			t.Errorf("step %d: body %q is not the completion", i, body)
		}
		if st.header[0] != "" && resp.Header.Get(st.header[0]) != st.header[1] {
			t.Errorf("step %d: header %s = %q, want %q", i, st.header[0], resp.Header.Get(st.header[0]), st.header[1])
		}
	}
	if n := len(s.Requests()); n != len(steps) {
		t.Errorf("recorded %d requests, want %d", n, len(steps))
	}
	s.Reset()
	if n := len(s.Requests()); n != 0 {
		t.Errorf("after Reset: %d requests recorded", n)
	}
	resp, _ := post(t, http.DefaultClient, url, req, nil)
	if resp.StatusCode != http.StatusOK || resp.Header.Get("X-Mock") != "" {
		t.Errorf("after Reset: status %d X-Mock %q, want the default answer", resp.StatusCode, resp.Header.Get("X-Mock"))
	}
}

func TestInvalidJSON(t *testing.T) {
	_, url := start(t, false)
	resp, body := post(t, http.DefaultClient, url, "{not json", nil)
	if resp.StatusCode != http.StatusBadRequest {
		t.Fatalf("status %d", resp.StatusCode)
	}
	var e struct {
		Error struct {
			Message string `json:"message"`
			Type    string `json:"type"`
		} `json:"error"`
	}
	if err := json.Unmarshal(body, &e); err != nil || e.Error.Message == "" || e.Error.Type != "invalid_request_error" {
		t.Errorf("error body %s (%v)", body, err)
	}
}

func TestDelay(t *testing.T) {
	s, url := start(t, false)
	s.Next(Behavior{Delay: 300 * time.Millisecond})
	t0 := time.Now()
	resp, _ := post(t, http.DefaultClient, url, seedBody, nil)
	if d := time.Since(t0); d < 300*time.Millisecond || resp.StatusCode != http.StatusOK {
		t.Errorf("answered %d after %v, want 200 after >= 300ms", resp.StatusCode, d)
	}

	// A client that gives up early: the handler must not hold Close.
	s.Next(Behavior{Delay: 10 * time.Second})
	c := &http.Client{Timeout: 100 * time.Millisecond}
	if _, err := c.Post(url, "application/json", strings.NewReader(seedBody)); err == nil {
		t.Error("expected a client timeout")
	}
	done := make(chan struct{})
	go func() { s.Close(); close(done) }()
	select {
	case <-done:
	case <-time.After(3 * time.Second):
		t.Error("Close blocked on a delayed answer")
	}
}

func TestResetAndGarbage(t *testing.T) {
	for _, useTLS := range []bool{false, true} {
		for _, b := range []Behavior{{Reset: true}, {Garbage: true}} {
			name := "reset"
			if b.Garbage {
				name = "garbage"
			}
			if useTLS {
				name += "/tls"
			}
			t.Run(name, func(t *testing.T) {
				s, url := start(t, useTLS)
				s.Next(b)
				tr := s.Client().Transport.(*http.Transport).Clone()
				tr.DisableKeepAlives = true
				c := &http.Client{Transport: tr, Timeout: 5 * time.Second}
				resp, err := c.Post(url+"/v1/chat/completions", "application/json", strings.NewReader(seedBody))
				if err == nil {
					resp.Body.Close()
					t.Fatalf("got status %d, want a transport error", resp.StatusCode)
				}
				var ne net.Error
				if errors.As(err, &ne) && ne.Timeout() {
					t.Fatalf("got a timeout, want a failure at once: %v", err)
				}
				reqs := s.Requests()
				if len(reqs) != 1 || reqs[0].Status != 0 {
					t.Errorf("recorded %+v", reqs)
				}
				// The next request is answered normally.
				resp2, body := post(t, c, url+"/v1/chat/completions", seedBody, nil)
				if resp2.StatusCode != http.StatusOK || !strings.Contains(string(body), "1+1 equals 2.") {
					t.Errorf("after %s: %d %s", name, resp2.StatusCode, body)
				}
			})
		}
	}
}

func TestChunks(t *testing.T) {
	s, url := start(t, true)
	chunks := [][]byte{[]byte("data: {\"a\":1}\n\n"), []byte("data: {\"a\":2}\n\n"), []byte("data: [DONE]\n\n")}
	const pace = 200 * time.Millisecond
	s.Next(Behavior{Chunks: chunks, ChunkDelay: pace, Headers: map[string]string{"X-Request-Id": "r1"}})

	t0 := time.Now()
	resp, err := s.Client().Post(url, "application/json", strings.NewReader(seedBody))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.Header.Get("Content-Type") != "text/event-stream" || resp.Header.Get("X-Request-Id") != "r1" {
		t.Errorf("headers %v", resp.Header)
	}
	r := bufio.NewReader(resp.Body)
	var got []byte
	for i := range chunks {
		line, err := r.ReadBytes('\n')
		if err != nil {
			t.Fatal(err)
		}
		blank, err := r.ReadBytes('\n')
		if err != nil {
			t.Fatal(err)
		}
		got = append(append(got, line...), blank...)
		el := time.Since(t0)
		// Chunk i is flushed on its own, about i*pace after the start.
		if i == 0 && el > pace*3/4 {
			t.Errorf("first chunk arrived after %v: not flushed", el)
		}
		if i > 0 && el < time.Duration(i)*pace-pace/4 {
			t.Errorf("chunk %d arrived after %v, before its delay", i, el)
		}
	}
	if want := bytes.Join(chunks, nil); !bytes.Equal(got, want) {
		t.Errorf("body %q, want %q", got, want)
	}
	if _, err := r.ReadByte(); err != io.EOF {
		t.Errorf("extra bytes after the chunks (%v)", err)
	}
	if rec := s.Requests()[0].Response; !bytes.Equal(rec, bytes.Join(chunks, nil)) {
		t.Errorf("recorded %q", rec)
	}
}

func TestServe(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	s := New()
	errc := make(chan error, 1)
	go func() { errc <- s.Serve(l) }()
	resp, body := post(t, http.DefaultClient, "http://"+l.Addr().String()+"/v1/chat/completions", seedBody, nil)
	if resp.StatusCode != http.StatusOK || !strings.Contains(string(body), `"content":"1+1 equals 2."`) {
		t.Errorf("%d %s", resp.StatusCode, body)
	}
	l.Close()
	select {
	case err := <-errc:
		if err == nil {
			t.Error("Serve returned nil")
		}
	case <-time.After(3 * time.Second):
		t.Error("Serve did not return after the listener closed")
	}
}
