package shape

import (
	"bytes"
	"encoding/json"
	"errors"
	"reflect"
	"strconv"
	"testing"
	"unicode/utf8"

	"ai-proxy/filter/config"
	"ai-proxy/filter/rawjson"
)

func opts(kv ...string) []config.Option {
	var out []config.Option
	for i := 0; i < len(kv); i += 2 {
		out = append(out, config.Option{Key: kv[i], Raw: []byte(kv[i+1])})
	}
	return out
}

func TestRequest(t *testing.T) {
	tests := []struct {
		name    string
		model   string
		options []config.Option
		body    string
		want    string
		info    Info
		same    bool // the body itself is returned
	}{
		{
			name:  "seed example 1: model and options added to a messages-only body",
			model: "gpt-4", options: opts("max_tokens", "512", "temperature", "1.0"),
			body: `{"messages":[{"role":"system","content":"You are a mathematician"},{"role":"user","content":"What is 1+1?"}]}`,
			want: `{"messages":[{"role":"system","content":"You are a mathematician"},{"role":"user","content":"What is 1+1?"}],"model":"gpt-4","max_tokens":512,"temperature":1.0}`,
			info: Info{Model: "gpt-4"},
		},
		{
			name:  "configured values overwrite the client's, the rest keep their bytes and order",
			model: "gpt-4", options: opts("max_tokens", "512", "temperature", "1.0"),
			body: `{"model":"gpt-3.5-turbo","max_tokens":800,"temperature":0.7,"frequency_penalty":0,"top_p":0.95,"stop":null}`,
			want: `{"frequency_penalty":0,"top_p":0.95,"stop":null,"model":"gpt-4","max_tokens":512,"temperature":1.0}`,
			info: Info{RequestedModel: "gpt-3.5-turbo", Model: "gpt-4"},
		},
		{
			name: "no configuration and no stream: the body itself",
			body: " {\"model\":\"m\", \"messages\" : [ ] }\n",
			want: " {\"model\":\"m\", \"messages\" : [ ] }\n",
			info: Info{RequestedModel: "m", Model: "m"}, same: true,
		},
		{
			name: "no configuration, stream: stream_options appended",
			body: `{"model":"m","stream":true}`,
			want: `{"model":"m","stream":true,"stream_options":{"include_usage":true}}`,
			info: Info{RequestedModel: "m", Model: "m", Stream: true},
		},
		{
			name: "no configuration, stream: client stream_options replaced",
			body: `{"stream_options":{"include_usage":false,"x":1},"stream":true,"messages":[]}`,
			want: `{"stream":true,"messages":[],"stream_options":{"include_usage":true}}`,
			info: Info{Stream: true},
		},
		{
			name: "no configuration, stream, client already asks for usage: the body itself",
			body: `{"stream":true,"stream_options":{"include_usage":true}}`,
			want: `{"stream":true,"stream_options":{"include_usage":true}}`,
			info: Info{Stream: true}, same: true,
		},
		{
			name: "no configuration, stream, duplicate stream_options: rewritten",
			body: `{"stream":true,"stream_options":{"include_usage":true},"stream_options":{"include_usage":true}}`,
			want: `{"stream":true,"stream_options":{"include_usage":true}}`,
			info: Info{Stream: true},
		},
		{
			name: "no configuration, stream false: client stream_options kept",
			body: `{"stream":false,"stream_options":{"include_usage":false}}`,
			want: `{"stream":false,"stream_options":{"include_usage":false}}`,
			same: true,
		},
		{
			name:  "client stream=true with a model configured",
			model: "gpt-4",
			body:  `{"model":"gpt-4","stream":true,"stream_options":{"include_usage":false},"messages":[{"role":"user","content":"hi"}]}`,
			want:  `{"stream":true,"messages":[{"role":"user","content":"hi"}],"model":"gpt-4","stream_options":{"include_usage":true}}`,
			info:  Info{RequestedModel: "gpt-4", Model: "gpt-4", Stream: true},
		},
		{
			name:  "client stream_options before stream (second pass)",
			model: "gpt-4",
			body:  `{"stream_options":{"include_usage":false},"messages":[],"stream":true}`,
			want:  `{"messages":[],"stream":true,"model":"gpt-4","stream_options":{"include_usage":true}}`,
			info:  Info{Model: "gpt-4", Stream: true},
		},
		{
			name:  "configured stream=true wins over the client's false",
			model: "gpt-4", options: opts("stream", "true"),
			body: `{"stream":false,"stream_options":{"x":1},"messages":[]}`,
			want: `{"messages":[],"model":"gpt-4","stream":true,"stream_options":{"include_usage":true}}`,
			info: Info{Model: "gpt-4", Stream: true},
		},
		{
			name:    "configured stream=false wins over the client's true; client stream_options stays",
			options: opts("stream", "false"),
			body:    `{"stream":true,"stream_options":{"include_usage":true},"messages":[]}`,
			want:    `{"stream_options":{"include_usage":true},"messages":[],"stream":false}`,
			info:    Info{},
		},
		{
			name:    "configured stream_options is sent as configured, nothing injected",
			options: opts("stream_options", `{"include_usage":false}`),
			body:    `{"stream":true,"stream_options":{"include_usage":true}}`,
			want:    `{"stream":true,"stream_options":{"include_usage":false}}`,
			info:    Info{Stream: true},
		},
		{
			name: "only the literal true streams",
			body: `{"stream":"true","a":1}`,
			want: `{"stream":"true","a":1}`,
			same: true,
		},
		{
			name: "the last duplicate stream decides",
			body: `{"stream":true,"stream":false}`,
			want: `{"stream":true,"stream":false}`,
			same: true,
		},
		{
			name:  "every duplicate of an overridden key is dropped; other duplicates stay",
			model: "gpt-4", options: opts("temperature", "0"),
			body: `{"model":"a","x":1,"model":"b","temperature":1,"x":2,"temperature":2}`,
			want: `{"x":1,"x":2,"model":"gpt-4","temperature":0}`,
			info: Info{RequestedModel: "b", Model: "gpt-4"},
		},
		{
			name:  "escaped keys are compared decoded",
			model: "gpt-4", options: opts("top_p", "0.5"),
			body: `{"mod\u0065l":"x","top\u005fp":1,"\u0073tream":true,"m\"x":1}`,
			want: `{"\u0073tream":true,"m\"x":1,"model":"gpt-4","top_p":0.5,"stream_options":{"include_usage":true}}`,
			info: Info{RequestedModel: "x", Model: "gpt-4", Stream: true},
		},
		{
			name:    "configured keys that need escaping are encoded",
			options: opts("a\"b", `"v"`, "é\n", `1`),
			body:    `{"a\"b":0}`,
			want:    `{"a\"b":"v","é\n":1}`,
		},
		{
			name:  "whitespace: member bytes kept, framing compacted",
			model: "m",
			body:  "\n {\n  \"messages\" :\t[ {\"role\" : \"user\"} ] ,\n  \"model\": \"x\"\n }\n\n",
			want:  `{"messages" :` + "\t" + `[ {"role" : "user"} ],"model":"m"}`,
			info:  Info{RequestedModel: "x", Model: "m"},
		},
		{
			name:  "nested objects and arrays are untouched, nested model/stream keys are not top-level",
			model: "m",
			body:  `{"tools":[{"type":"function","function":{"name":"f","parameters":{"model":"inner","stream":true}}}],"metadata":{"model":"z"}}`,
			want:  `{"tools":[{"type":"function","function":{"name":"f","parameters":{"model":"inner","stream":true}}}],"metadata":{"model":"z"},"model":"m"}`,
			info:  Info{Model: "m"},
		},
		{
			name:  "empty client object",
			model: "m", options: opts("n", "1"),
			body: `{}`,
			want: `{"model":"m","n":1}`,
			info: Info{Model: "m"},
		},
		{
			name:  "client object made only of overridden keys",
			model: "m",
			body:  `{"model":"a"}`,
			want:  `{"model":"m"}`,
			info:  Info{RequestedModel: "a", Model: "m"},
		},
		{
			name:    "no configured model: the client's model stays and is the effective model",
			options: opts("max_tokens", "10"),
			body:    `{"model":"llama3","messages":[]}`,
			want:    `{"model":"llama3","messages":[],"max_tokens":10}`,
			info:    Info{RequestedModel: "llama3", Model: "llama3"},
		},
		{
			name:  "a non-string client model is not a requested model",
			model: "m",
			body:  `{"model":5}`,
			want:  `{"model":"m"}`,
			info:  Info{Model: "m"},
		},
		{
			name: "an escaped client model is decoded in Info",
			body: `{"model":"gpt\u002d4\n"}`,
			want: `{"model":"gpt\u002d4\n"}`,
			info: Info{RequestedModel: "gpt-4\n", Model: "gpt-4\n"}, same: true,
		},
		{
			name:    "option values keep their exact configured bytes",
			options: opts("response_format", `{ "type" : "json_object" }`, "stop", `["\n", "END"]`),
			body:    `{"messages":[]}`,
			want:    `{"messages":[],"response_format":{ "type" : "json_object" },"stop":["\n", "END"]}`,
		},
		{
			name:    "a model option is the model when no model is given",
			options: opts("model", `"gpt-4o"`, "n", "1"),
			body:    `{"model":"x"}`,
			want:    `{"model":"gpt-4o","n":1}`,
			info:    Info{RequestedModel: "x", Model: "gpt-4o"},
		},
		{
			name:  "a model option is ignored when the model is given",
			model: "gpt-4", options: opts("model", `"gpt-4o"`),
			body: `{}`,
			want: `{"model":"gpt-4"}`,
			info: Info{Model: "gpt-4"},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			p := NewPlan(tc.model, tc.options)
			body := []byte(tc.body)
			got, info, err := p.Request(nil, body)
			if err != nil {
				t.Fatalf("Request: %v", err)
			}
			if string(got) != tc.want {
				t.Errorf("Request =\n%s\nwant\n%s", got, tc.want)
			}
			if info != tc.info {
				t.Errorf("Info = %+v, want %+v", info, tc.info)
			}
			same := len(got) > 0 && &got[0] == &body[0]
			if same != tc.same {
				t.Errorf("returned the body itself = %v, want %v", same, tc.same)
			}
			assertObject(t, got)

			// Appending to a non-empty dst keeps its prefix and gives the same result.
			prefix := []byte("PREFIX")
			got2, info2, err := p.Request(prefix, body)
			if err != nil {
				t.Fatal(err)
			}
			if tc.same {
				if &got2[0] != &body[0] {
					t.Errorf("with dst: unchanged body was copied")
				}
			} else if string(got2) != "PREFIX"+tc.want || info2 != tc.info {
				t.Errorf("with dst: %q, %+v", got2, info2)
			}
			// The convenience function agrees.
			got3, info3, err := NewPlan(tc.model, tc.options).Request(nil, body)
			if err != nil || string(got3) != tc.want || info3 != tc.info {
				t.Errorf("Request func: %q, %+v, %v", got3, info3, err)
			}
		})
	}
}

// assertObject checks that b is a valid JSON object for every parser we have.
func assertObject(t *testing.T, b []byte) {
	t.Helper()
	if !json.Valid(b) || !IsJSONObject(b) {
		t.Fatalf("output is not a valid JSON object: %q", b)
	}
	var m map[string]any
	if err := json.Unmarshal(b, &m); err != nil {
		t.Fatalf("output does not unmarshal: %v (%q)", err, b)
	}
}

func TestRequestErrors(t *testing.T) {
	p := NewPlan("gpt-4", opts("temperature", "1"))
	for _, tc := range []struct {
		body string
		err  error
	}{
		{``, ErrEmptyBody},
		{"  \n\t\r ", ErrEmptyBody},
		{`[]`, ErrNotObject},
		{` [{"model":"x"}] `, ErrNotObject},
		{`"text"`, ErrNotObject},
		{`null`, ErrNotObject},
		{`42`, ErrNotObject},
		{`{`, ErrInvalidJSON},
		{`{"messages":[}`, ErrInvalidJSON},
		{`{"a":1,}`, ErrInvalidJSON},
		{`{"a":1} {"b":2}`, ErrInvalidJSON},
		{`{"a":1}x`, ErrInvalidJSON},
		{`{"model":"unterminated}`, ErrInvalidJSON},
		{`{'a':1}`, ErrInvalidJSON},
		{`[1,`, ErrInvalidJSON},
		{`nul`, ErrInvalidJSON},
		{"\xef\xbb\xbf{}", ErrInvalidJSON},
		{"{\"a\":\"\x01\"}", ErrInvalidJSON},
	} {
		dst := []byte("keep")
		for _, plan := range []*Plan{p, NewPlan("", nil)} {
			out, info, err := plan.Request(dst, []byte(tc.body))
			if !errors.Is(err, tc.err) {
				t.Errorf("Request(%q) err = %v, want %v", tc.body, err, tc.err)
			}
			if string(out) != "keep" || info != (Info{}) {
				t.Errorf("Request(%q) on error = %q, %+v", tc.body, out, info)
			}
		}
	}
}

func TestIsJSONObject(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want bool
	}{
		{`{}`, true}, {" {\"id\":\"x\",\"choices\":[]}\n", true}, {`[]`, false}, {`success`, false},
		{``, false}, {`{"a":}`, false}, {`"{}"`, false},
	} {
		if got := IsJSONObject([]byte(tc.in)); got != tc.want {
			t.Errorf("IsJSONObject(%q) = %v, want %v", tc.in, got, tc.want)
		}
	}
}

func TestRequestFromConfig(t *testing.T) {
	c, err := config.Parse([]byte(`{"auth":{"header":{"Authorization":"Bearer x"}},
		"model":{"provider":"openai","name":"gpt-4","options":{"max_tokens":512,"temperature":1.0}},"passthrough":false}`))
	if err != nil {
		t.Fatal(err)
	}
	out, info, err := NewPlan(c.Model, c.Options).Request(nil, []byte(`{"messages":[{"role":"user","content":"What is 1+1?"}],"stream":true}`))
	if err != nil {
		t.Fatal(err)
	}
	want := `{"messages":[{"role":"user","content":"What is 1+1?"}],"stream":true,"model":"gpt-4","max_tokens":512,"temperature":1.0,"stream_options":{"include_usage":true}}`
	if string(out) != want || info != (Info{Model: "gpt-4", Stream: true}) {
		t.Errorf("got %s %+v", out, info)
	}
}

// The semantic result equals "decode, overwrite, encode" done with encoding/json.
func TestRequestMatchesMapSemantics(t *testing.T) {
	p := NewPlan("gpt-4", opts("temperature", "0.5", "stop", `["x"]`))
	body := `{"model":"a","temperature":1,"messages":[{"role":"user","content":"hé \"q\" \u2028"}],"stream":true,"stream_options":{"a":1},"n":2}`
	out, _, err := p.Request(nil, []byte(body))
	if err != nil {
		t.Fatal(err)
	}
	var want map[string]any
	_ = json.Unmarshal([]byte(body), &want)
	want["model"] = "gpt-4"
	want["temperature"] = 0.5
	want["stop"] = []any{"x"}
	want["stream_options"] = map[string]any{"include_usage": true}
	var got map[string]any
	if err := json.Unmarshal(out, &got); err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("got %v\nwant %v", got, want)
	}
}

func TestRequestAllocations(t *testing.T) {
	body := chatBody(64 << 10)
	p := NewPlan("gpt-4", opts("max_tokens", "512", "temperature", "1.0"))
	dst := make([]byte, 0, 2*len(body))
	p.Request(dst, body) // warm the model cache
	if a := testing.AllocsPerRun(50, func() {
		if _, _, err := p.Request(dst[:0], body); err != nil {
			panic(err)
		}
	}); a != 0 {
		t.Errorf("Request with capacity allocates %v times", a)
	}
	if a := testing.AllocsPerRun(50, func() { p.Request(nil, body) }); a != 1 {
		t.Errorf("Request without capacity allocates %v times, want 1 (the output)", a)
	}
	empty := NewPlan("", nil)
	noStream := bytes.Replace(body, []byte(`"stream":true`), []byte(`"stream":false`), 1)
	empty.Request(nil, noStream) // warm the model cache
	if a := testing.AllocsPerRun(50, func() {
		if out, _, _ := empty.Request(nil, noStream); &out[0] != &noStream[0] {
			panic("copied")
		}
	}); a != 0 {
		t.Errorf("unchanged body allocates %v times", a)
	}
}

func TestPlanConcurrentUse(t *testing.T) {
	p := NewPlan("gpt-4", nil)
	done := make(chan bool)
	for g := 0; g < 4; g++ {
		go func(g int) {
			for i := 0; i < 200; i++ {
				m := "model-" + strconv.Itoa((g+i)%3)
				_, info, err := p.Request(nil, []byte(`{"model":"`+m+`"}`))
				if err != nil || info.RequestedModel != m {
					t.Errorf("RequestedModel = %q, want %q (%v)", info.RequestedModel, m, err)
				}
			}
			done <- true
		}(g)
	}
	for g := 0; g < 4; g++ {
		<-done
	}
}

// chatBody builds a realistic chat completion request of about size bytes.
func chatBody(size int) []byte {
	var b bytes.Buffer
	b.WriteString(`{"model":"gpt-4","temperature":0.7,"stream":true,"messages":[`)
	b.WriteString(`{"role":"system","content":"You are a helpful assistant. Answer with \"care\" and cite sources.\nBe brief."}`)
	sentence := `Explain the difference between TCP and UDP, with examples — including QUIC (RFC 9000) and \"head-of-line blocking\".\n`
	for i := 0; b.Len() < size-200; i++ {
		role := "user"
		if i%2 == 1 {
			role = "assistant"
		}
		b.WriteString(`,{"role":"` + role + `","content":"`)
		for j := 0; j < 1+i%4; j++ {
			b.WriteString(sentence)
		}
		b.WriteString(`"}`)
	}
	b.WriteString(`],"max_tokens":800,"user":"user-1234"}`)
	return b.Bytes()
}

func benchmarkRequest(b *testing.B, size int) {
	body := chatBody(size)
	p := NewPlan("gpt-4", opts("max_tokens", "512", "temperature", "1.0"))
	out, _, err := p.Request(nil, body)
	if err != nil {
		b.Fatal(err)
	}
	assertValidB(b, out)
	dst := make([]byte, 0, len(out)+64)
	b.SetBytes(int64(len(body)))
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		if _, _, err := p.Request(dst[:0], body); err != nil {
			b.Fatal(err)
		}
	}
}

func assertValidB(b *testing.B, out []byte) {
	if !json.Valid(out) {
		b.Fatalf("invalid output")
	}
}

func BenchmarkRequest_1KB(b *testing.B)   { benchmarkRequest(b, 1<<10) }
func BenchmarkRequest_64KiB(b *testing.B) { benchmarkRequest(b, 64<<10) }
func BenchmarkRequest_1MiB(b *testing.B)  { benchmarkRequest(b, 1<<20) }

// BenchmarkRequest_64KiB_NewBuffer lets Request allocate the output each time.
func BenchmarkRequest_64KiB_NewBuffer(b *testing.B) {
	body := chatBody(64 << 10)
	p := NewPlan("gpt-4", opts("max_tokens", "512", "temperature", "1.0"))
	b.SetBytes(int64(len(body)))
	b.ReportAllocs()
	for i := 0; i < b.N; i++ {
		if _, _, err := p.Request(nil, body); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkValidate_64KiB is the validation alone, for comparison.
func BenchmarkValidate_64KiB(b *testing.B) {
	body := chatBody(64 << 10)
	b.SetBytes(int64(len(body)))
	b.ReportAllocs()
	for i := 0; i < b.N; i++ {
		if !rawjson.Valid(body) {
			b.Fatal("invalid")
		}
	}
}

func FuzzRequest(f *testing.F) {
	seeds := []string{
		`{}`, `{"model":"a","stream":true}`, `{"stream_options":{},"stream":true}`,
		`{"mod\u0065l":1,"x":[1,{"y":null}]}`, ` {"a" : "b" } `, `[]`, `{`, `{"stream":true,"stream":false}`,
		`{"temperature":1,"temperature":2,"messages":[{"role":"user","content":"hi"}]}`,
		"{\"a\":\"\xff\"}",
	}
	for _, s := range seeds {
		f.Add([]byte(s), uint8(0))
		f.Add([]byte(s), uint8(5))
	}
	plans := []*Plan{
		NewPlan("", nil),
		NewPlan("gpt-4", nil),
		NewPlan("gpt-4", opts("temperature", "0.5", "max_tokens", "10")),
		NewPlan("", opts("stream", "true")),
		NewPlan("m", opts("stream", "false", "x", `{"a":[1,2]}`)),
		NewPlan("", opts("stream_options", `{"include_usage":false}`)),
		NewPlan("q\"uote", opts("k\\ey", `"v"`)),
	}
	f.Fuzz(func(t *testing.T, body []byte, which uint8) {
		p := plans[int(which)%len(plans)]
		orig := append([]byte(nil), body...)
		out, info, err := p.Request(nil, body)
		if !bytes.Equal(body, orig) {
			t.Fatalf("Request modified its input")
		}
		isObj := json.Valid(body) && rawjson.SkipSpace(body, 0) < len(body) && body[rawjson.SkipSpace(body, 0)] == '{'
		if err != nil {
			if isObj {
				t.Fatalf("Request(%q) = %v for a valid object", body, err)
			}
			return
		}
		if !isObj {
			t.Fatalf("Request(%q) accepted a non-object", body)
		}
		if !json.Valid(out) || !IsJSONObject(out) {
			t.Fatalf("Request(%q) = %q: not a valid JSON object", body, out)
		}
		var got map[string]json.RawMessage
		if err := json.Unmarshal(out, &got); err != nil {
			t.Fatalf("output %q does not unmarshal: %v", out, err)
		}
		if p.model != "" && info.Model != p.model {
			t.Fatalf("Info.Model = %q, want %q", info.Model, p.model)
		}
		if p.model != "" && string(got["model"]) != string(rawjson.AppendString(nil, p.model)) {
			t.Fatalf("configured model missing: %q", out)
		}
		if info.Stream && !p.streamOptionsSet && string(got["stream_options"]) != `{"include_usage":true}` {
			t.Fatalf("stream without include_usage: %q", out)
		}
		// Compare with decode-overwrite semantics (for bodies whose keys decode
		// unambiguously).
		var in map[string]json.RawMessage
		if err := json.Unmarshal(body, &in); err == nil && !bytes.Contains(body, []byte(`\ud`)) && utf8.Valid(body) {
			for k := range in {
				if _, ok := got[k]; !ok && !(k == "stream_options" && info.Stream) {
					t.Fatalf("client key %q lost: %q", k, out)
				}
			}
		}
	})
}
