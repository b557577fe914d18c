package rawjson

import (
	"encoding/json"
	"strings"
	"testing"
)

var validityCases = []struct {
	in   string
	want bool
}{
	{`{}`, true},
	{` { } `, true},
	{"\t\r\n{\"a\":1}\n", true},
	{`[]`, true},
	{`[1,2,3]`, true},
	{`"x"`, true},
	{`0`, true},
	{`-0`, true},
	{`-0.5e+10`, true},
	{`1E5`, true},
	{`true`, true},
	{`false`, true},
	{`null`, true},
	{`{"a":{"b":[{"c":null}]},"d":"e"}`, true},
	{`"\u00e9\n\t\"\\\/\b\f\r"`, true},
	{`"\ud83d\ude00"`, true},
	{"\"\xff\xfe\"", true}, // invalid UTF-8 is passed through, as encoding/json.Valid does
	{"\"\x7f\"", true},
	{``, false},
	{` `, false},
	{`{`, false},
	{`}`, false},
	{`{"a"}`, false},
	{`{"a":}`, false},
	{`{"a":1,}`, false},
	{`{,"a":1}`, false},
	{`{"a":1 "b":2}`, false},
	{`{a:1}`, false},
	{`{'a':1}`, false},
	{`[1,]`, false},
	{`[,1]`, false},
	{`[1 2]`, false},
	{`{"a":1}}`, false},
	{`{"a":1} x`, false},
	{`{} {}`, false},
	{`01`, false},
	{`1.`, false},
	{`.5`, false},
	{`+1`, false},
	{`1e`, false},
	{`1e+`, false},
	{`-`, false},
	{`--1`, false},
	{`tru`, false},
	{`True`, false},
	{`nul`, false},
	{`"abc`, false},
	{`"\x"`, false},
	{`"\u12"`, false},
	{`"\u12G4"`, false},
	{"\"a\nb\"", false},
	{"\"\x00\"", false},
	{"\xef\xbb\xbf{}", false}, // a BOM is not JSON
	{`NaN`, false},
	{`{"a":[}`, false},
	{`{"a":{]}`, false},
	{`[{"a":1]]`, false},
	{`["a":1]`, false},
}

func TestValidMatchesEncodingJSON(t *testing.T) {
	for _, tc := range validityCases {
		if got := Valid([]byte(tc.in)); got != tc.want {
			t.Errorf("Valid(%q) = %v, want %v", tc.in, got, tc.want)
		}
		if ref := json.Valid([]byte(tc.in)); ref != tc.want {
			t.Errorf("test table disagrees with encoding/json for %q: json.Valid = %v", tc.in, ref)
		}
	}
}

func TestDepthLimit(t *testing.T) {
	for _, tc := range []struct {
		depth int
		want  bool
	}{{MaxDepth, true}, {MaxDepth + 1, false}} {
		arr := strings.Repeat("[", tc.depth) + strings.Repeat("]", tc.depth)
		if got := Valid([]byte(arr)); got != tc.want {
			t.Errorf("arrays at depth %d: Valid = %v, want %v", tc.depth, got, tc.want)
		}
		if ref := json.Valid([]byte(arr)); ref != tc.want {
			t.Errorf("encoding/json disagrees at depth %d", tc.depth)
		}
		// An object holding arrays: the object is one level of the limit.
		obj := `{"a":` + strings.Repeat("[", tc.depth-1) + strings.Repeat("]", tc.depth-1) + `}`
		var s ObjectScanner
		if err := s.Reset([]byte(obj)); err != nil {
			t.Fatal(err)
		}
		for s.Next() {
		}
		if got := s.Err() == nil; got != tc.want {
			t.Errorf("ObjectScanner at depth %d: ok = %v, want %v", tc.depth, got, tc.want)
		}
	}
}

func TestIsObject(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want bool
	}{
		{`{}`, true}, {` {"a":[1]} `, true}, {`[]`, false}, {`"{}"`, false}, {`{`, false},
		{``, false}, {`null`, false}, {`{} x`, false},
	} {
		if got := IsObject([]byte(tc.in)); got != tc.want {
			t.Errorf("IsObject(%q) = %v, want %v", tc.in, got, tc.want)
		}
	}
}

func TestMembers(t *testing.T) {
	doc := " {\"a\" : 1 , \"b\\u0022\":{\"x\":[1, 2]},\"c\":\"s\" ,\"a\":null}\n"
	ms, err := Members([]byte(doc))
	if err != nil {
		t.Fatal(err)
	}
	want := []struct {
		key     string
		escaped bool
		value   string
	}{
		{`"a"`, false, `1`},
		{`"b\u0022"`, true, `{"x":[1, 2]}`},
		{`"c"`, false, `"s"`},
		{`"a"`, false, `null`},
	}
	if len(ms) != len(want) {
		t.Fatalf("got %d members, want %d", len(ms), len(want))
	}
	for i, w := range want {
		if string(ms[i].Key) != w.key || ms[i].KeyEscaped != w.escaped || string(ms[i].Value) != w.value {
			t.Errorf("member %d = {%s %v %s}, want {%s %v %s}", i, ms[i].Key, ms[i].KeyEscaped, ms[i].Value, w.key, w.escaped, w.value)
		}
	}
	if !EqualString(ms[1].Key, ms[1].KeyEscaped, `b"`) {
		t.Errorf("escaped key does not compare equal to its decoded form")
	}

	for _, bad := range []string{``, `[]`, `{"a":1`, `{"a":1,}`, `{"a":1}x`, `{"a" 1}`, `{"a":1 "b":2}`, `{1:2}`} {
		if _, err := Members([]byte(bad)); err != ErrSyntax {
			t.Errorf("Members(%q) err = %v, want ErrSyntax", bad, err)
		}
	}
	if ms, err := Members([]byte(` { } `)); err != nil || len(ms) != 0 {
		t.Errorf("Members of empty object = %v, %v", ms, err)
	}
}

func TestSpan(t *testing.T) {
	doc := []byte(`{ "a" : [1] , "b":2 }`)
	var s ObjectScanner
	if err := s.Reset(doc); err != nil {
		t.Fatal(err)
	}
	var spans []string
	for s.Next() {
		a, b := s.Span()
		spans = append(spans, string(doc[a:b]))
	}
	if s.Err() != nil {
		t.Fatal(s.Err())
	}
	if strings.Join(spans, "|") != `"a" : [1]|"b":2` {
		t.Errorf("spans = %q", spans)
	}
}

func TestUnquoteAndEqualString(t *testing.T) {
	for _, tc := range []string{
		`""`, `"plain"`, `"a\"b"`, `"\\\/\b\f\n\r\t"`, `"\u00e9t\u00E9"`, `"\ud83d\ude00!"`,
		`"\ud83d"`, `"\ude00x"`, `"\ud83d\u0041"`, "\"caf\xc3\xa9\"", `"\u0000"`,
	} {
		var want string
		if err := json.Unmarshal([]byte(tc), &want); err != nil {
			t.Fatalf("bad test case %s: %v", tc, err)
		}
		got, ok := Unquote([]byte(tc))
		if !ok || got != want {
			t.Errorf("Unquote(%s) = %q, %v; want %q", tc, got, ok, want)
		}
		_, escaped, err := String([]byte(tc), 0)
		if err != nil {
			t.Fatal(err)
		}
		if !EqualString([]byte(tc), escaped, want) {
			t.Errorf("EqualString(%s, %q) = false", tc, want)
		}
		if EqualString([]byte(tc), escaped, want+"x") {
			t.Errorf("EqualString(%s, %q+x) = true", tc, want)
		}
		if len(want) > 0 && EqualString([]byte(tc), escaped, want[:len(want)-1]) {
			t.Errorf("EqualString(%s, prefix) = true", tc)
		}
	}
	for _, bad := range []string{``, `"`, `"a`, `a"`, `"a"b`, `"\q"`, `1`} {
		if _, ok := Unquote([]byte(bad)); ok {
			t.Errorf("Unquote(%q) ok", bad)
		}
	}
}

func TestAppendString(t *testing.T) {
	for _, tc := range []struct{ in, want string }{
		{``, `""`},
		{`hello`, `"hello"`},
		{`a"b\c`, `"a\"b\\c"`},
		{"l1\nl2\r\t\b\f", `"l1\nl2\r\t\b\f"`},
		{"\x00\x1f", `"\u0000\u001f"`},
		{"é😀", `"é😀"`},
		{"bad\xffutf8", `"bad\ufffdutf8"`},
		{"\u2028\u2029", `"\u2028\u2029"`},
		{"<tag>&", `"<tag>&"`},
	} {
		got := AppendString([]byte("x"), tc.in)
		if string(got) != "x"+tc.want {
			t.Errorf("AppendString(%q) = %s, want %s", tc.in, got[1:], tc.want)
		}
		var back string
		if err := json.Unmarshal(got[1:], &back); err != nil {
			t.Errorf("AppendString(%q) is not JSON: %v", tc.in, err)
		}
		if s, ok := Unquote(got[1:]); !ok || (s != tc.in && !strings.Contains(tc.in, "\xff")) {
			t.Errorf("round trip of %q = %q, %v", tc.in, s, ok)
		}
	}
}

func TestScanDoesNotAllocate(t *testing.T) {
	doc := []byte(`{"model":"gpt-4","messages":[{"role":"user","content":"hi \u00e9"}],"stream":true}`)
	allocs := testing.AllocsPerRun(100, func() {
		var s ObjectScanner
		_ = s.Reset(doc)
		for s.Next() {
			m := s.Member()
			_ = EqualString(m.Key, m.KeyEscaped, "stream")
		}
		if s.Err() != nil || !Valid(doc) {
			panic("invalid")
		}
	})
	if allocs != 0 {
		t.Errorf("scan allocates %v times per run", allocs)
	}
}

func FuzzValid(f *testing.F) {
	for _, tc := range validityCases {
		f.Add([]byte(tc.in))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		got, want := Valid(b), json.Valid(b)
		if got != want {
			t.Fatalf("Valid(%q) = %v, encoding/json says %v", b, got, want)
		}
		if IsObject(b) {
			var m map[string]json.RawMessage
			if err := json.Unmarshal(b, &m); err != nil {
				t.Fatalf("IsObject(%q) but Unmarshal: %v", b, err)
			}
			ms, err := Members(b)
			if err != nil {
				t.Fatalf("IsObject(%q) but Members: %v", b, err)
			}
			for _, mb := range ms {
				k, ok := Unquote(mb.Key)
				if !ok {
					t.Fatalf("bad key %q", mb.Key)
				}
				if _, ok := m[k]; !ok && !strings.ContainsRune(k, '\ufffd') {
					t.Fatalf("key %q not found by encoding/json in %q", k, b)
				}
			}
		}
	})
}
