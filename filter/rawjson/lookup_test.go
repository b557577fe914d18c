package rawjson

import (
	"bytes"
	"encoding/json"
	"math"
	"strconv"
	"strings"
	"testing"
)

const lookupDoc = ` {"id":"x","choices":[{"delta":{"content":"}"}}],` +
	`"usage" : { "prompt_tokens" : 12 , "details":{"cached_tokens":3,"n":null},"e\u0073c":"yes"},` +
	`"dup":1,"dup":2, "last":[1, {"a":2}] } `

func TestLookup(t *testing.T) {
	for _, tc := range []struct {
		path []string
		want string
		ok   bool
	}{
		{nil, strings.TrimSpace(lookupDoc), true},
		{[]string{"id"}, `"x"`, true},
		{[]string{"usage", "prompt_tokens"}, `12`, true},
		{[]string{"usage", "details", "cached_tokens"}, `3`, true},
		{[]string{"usage", "details", "n"}, `null`, true},
		{[]string{"usage", "esc"}, `"yes"`, true}, // escaped key
		{[]string{"usage"}, `{ "prompt_tokens" : 12 , "details":{"cached_tokens":3,"n":null},"e\u0073c":"yes"}`, true},
		{[]string{"dup"}, `1`, true}, // first wins
		{[]string{"last"}, `[1, {"a":2}]`, true},
		{[]string{"choices"}, `[{"delta":{"content":"}"}}]`, true},
		{[]string{"missing"}, ``, false},
		{[]string{"usage", "missing"}, ``, false},
		{[]string{"id", "x"}, ``, false},   // not an object
		{[]string{"last", "a"}, ``, false}, // arrays are not walked
		{[]string{"content"}, ``, false},   // nested keys do not match at the top
		{[]string{"usage", "cached_tokens"}, ``, false},
	} {
		got, ok := Lookup([]byte(lookupDoc), tc.path...)
		if ok != tc.ok || string(got) != tc.want {
			t.Errorf("Lookup(%q) = %q, %v; want %q, %v", tc.path, got, ok, tc.want, tc.ok)
		}
	}
}

func TestLookupInvalid(t *testing.T) {
	for _, tc := range []struct {
		doc  string
		path []string
		want string
		ok   bool
	}{
		{``, []string{"a"}, ``, false},
		{`[]`, []string{"a"}, ``, false},
		{`{}`, []string{"a"}, ``, false},
		{`{"a"}`, []string{"a"}, ``, false},
		{`{"a":}`, []string{"a"}, ``, false},
		{`{"b":tru,"a":1}`, []string{"a"}, ``, false}, // a skipped value is validated
		{`{"b":1 "a":1}`, []string{"a"}, ``, false},
		{`{"b":1,}`, []string{"a"}, ``, false},
		{`{"a":[1,}`, []string{"a"}, ``, false},
		{`{"a":1`, []string{"a"}, `1`, true},         // nothing past the value is read
		{`{"a":1}garbage`, []string{"a"}, `1`, true}, // nothing past the value is read
		{`{"a":"1\"2"}`, []string{"a"}, `"1\"2"`, true},
		{` 5 `, nil, `5`, true},
		{` `, nil, ``, false},
	} {
		got, ok := Lookup([]byte(tc.doc), tc.path...)
		if ok != tc.ok || string(got) != tc.want {
			t.Errorf("Lookup(%q, %q) = %q, %v; want %q, %v", tc.doc, tc.path, got, ok, tc.want, tc.ok)
		}
	}
}

func TestLookupDoesNotAllocate(t *testing.T) {
	doc := []byte(lookupDoc)
	allocs := testing.AllocsPerRun(100, func() {
		if v, ok := Lookup(doc, "usage", "details", "cached_tokens"); !ok || string(v) != "3" {
			panic("lookup failed")
		}
		if n, ok := Int([]byte("12345")); !ok || n != 12345 {
			panic("int failed")
		}
	})
	if allocs != 0 {
		t.Errorf("Lookup allocates %v times per run", allocs)
	}
}

func TestInt(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want int64
		ok   bool
	}{
		{`0`, 0, true},
		{`-0`, 0, true},
		{`12`, 12, true},
		{`-12`, -12, true},
		{`12.0`, 12, true},
		{`12.000`, 12, true},
		{`9223372036854775807`, math.MaxInt64, true},
		{`-9223372036854775808`, math.MinInt64, true},
		{`9223372036854775808`, 0, false},
		{`-9223372036854775809`, 0, false},
		{`99999999999999999999`, 0, false},
		{`12.5`, 0, false},
		{`12.`, 0, false},
		{`1e3`, 0, false},
		{`1E3`, 0, false},
		{`12.0e0`, 0, false},
		{`+1`, 0, false},
		{`01`, 0, false},
		{`-01`, 0, false},
		{`-`, 0, false},
		{``, 0, false},
		{` 1`, 0, false},
		{`1 `, 0, false},
		{`"1"`, 0, false},
		{`null`, 0, false},
		{`.5`, 0, false},
		{`0x10`, 0, false},
	} {
		got, ok := Int([]byte(tc.in))
		if got != tc.want || ok != tc.ok {
			t.Errorf("Int(%q) = %d, %v; want %d, %v", tc.in, got, ok, tc.want, tc.ok)
		}
	}
}

func TestArrayScanner(t *testing.T) {
	var s ArrayScanner
	if err := s.Reset([]byte(` [ 1 , {"a":[2]}, "x" ,null,[] ] `)); err != nil {
		t.Fatal(err)
	}
	var got []string
	for s.Next() {
		got = append(got, string(s.Value()))
	}
	if s.Err() != nil {
		t.Fatal(s.Err())
	}
	if want := `1|{"a":[2]}|"x"|null|[]`; strings.Join(got, "|") != want {
		t.Errorf("elements = %q, want %s", got, want)
	}
	if err := s.Reset([]byte(` [ ] `)); err != nil || s.Next() || s.Err() != nil {
		t.Errorf("empty array: err=%v", s.Err())
	}
	for _, bad := range []string{``, `{}`, `[`, `[1`, `[1,]`, `[,1]`, `[1 2]`, `[1]x`, `[tru]`} {
		err := s.Reset([]byte(bad))
		for s.Next() {
		}
		if err == nil && s.Err() == nil {
			t.Errorf("ArrayScanner(%q) reported no error", bad)
		}
	}
}

// FuzzLookup checks Lookup against encoding/json on documents without
// duplicate keys: every member path it can reach must match what
// encoding/json decodes there.
func FuzzLookup(f *testing.F) {
	f.Add([]byte(lookupDoc), "usage", "prompt_tokens")
	f.Add([]byte(`{"a":{"b":1}}`), "a", "b")
	f.Add([]byte(`{"a":1.0}`), "a", "")
	f.Fuzz(func(t *testing.T, doc []byte, k1, k2 string) {
		for _, path := range [][]string{{k1}, {k1, k2}} {
			raw, ok := Lookup(doc, path...)
			if ok && !Valid(raw) {
				t.Fatalf("Lookup(%q, %q) = %q, not valid JSON", doc, path, raw)
			}
			if !Valid(doc) || hasDuplicateKeys(doc) {
				continue
			}
			ref, err := decodeNumbers(doc)
			if err != nil {
				t.Fatal(err)
			}
			want, found := walk(ref, path)
			if found != ok {
				t.Fatalf("Lookup(%q, %q) ok = %v, encoding/json found = %v", doc, path, ok, found)
			}
			if !ok {
				continue
			}
			gotV, err := decodeNumbers(raw)
			if err != nil {
				t.Fatal(err)
			}
			a, _ := json.Marshal(gotV)
			b, _ := json.Marshal(want)
			if !bytes.Equal(a, b) {
				t.Fatalf("Lookup(%q, %q) = %s, encoding/json has %s", doc, path, a, b)
			}
			if n, ok := Int(raw); ok {
				if num, isNum := want.(json.Number); !isNum || string(num) != string(raw) {
					t.Fatalf("Int(%s) = %d, encoding/json has %v", raw, n, want)
				}
				if p, err := strconv.ParseFloat(string(raw), 64); err != nil || p != float64(n) {
					t.Fatalf("Int(%s) = %d, ParseFloat = %v, %v", raw, n, p, err)
				}
			}
		}
	})
}

// decodeNumbers decodes b keeping numbers as written (json.Number).
func decodeNumbers(b []byte) (any, error) {
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.UseNumber()
	var v any
	err := dec.Decode(&v)
	return v, err
}

func walk(v any, path []string) (any, bool) {
	for _, k := range path {
		m, ok := v.(map[string]any)
		if !ok {
			return nil, false
		}
		if v, ok = m[k]; !ok {
			return nil, false
		}
	}
	return v, true
}

// hasDuplicateKeys reports whether any object in the valid document doc has a
// key twice, or a key that is not valid UTF-8 (encoding/json would rewrite it).
func hasDuplicateKeys(doc []byte) bool {
	dec := json.NewDecoder(bytes.NewReader(doc))
	type frame struct {
		obj     bool
		keys    map[string]bool
		wantKey bool
	}
	var stack []*frame
	for {
		tok, err := dec.Token()
		if err != nil {
			return false
		}
		var top *frame
		if len(stack) > 0 {
			top = stack[len(stack)-1]
		}
		isKey := top != nil && top.obj && top.wantKey
		switch v := tok.(type) {
		case json.Delim:
			switch v {
			case '{', '[':
				if top != nil && top.obj {
					top.wantKey = true
				}
				stack = append(stack, &frame{obj: v == '{', keys: map[string]bool{}, wantKey: true})
			default:
				stack = stack[:len(stack)-1]
			}
			continue
		case string:
			if isKey {
				if top.keys[v] || strings.ContainsRune(v, '\ufffd') {
					return true
				}
				top.keys[v] = true
				top.wantKey = false
				continue
			}
		}
		if top != nil && top.obj {
			top.wantKey = true
		}
	}
}
