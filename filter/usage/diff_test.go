package usage

import (
	"bytes"
	"math/bits"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"unsafe"

	"ai-proxy/filter/rawjson"
)

// refUsage is what the former FromResponse made of a raw usage value.
func refUsage(raw []byte) (Usage, bool) {
	if !rawjson.Valid(raw) {
		return Usage{}, false
	}
	return refParse(raw)
}

// diffBodies are edge cases for the differential tests (and fuzz seeds).
var diffBodies = []string{
	`{"model":"gpt-4","usage":{"prompt_tokens":1,"completion_tokens":4,"total_tokens":5}}`,
	`{"model":"a\"b","usage":{"prompt_tokens":1}}`,
	`{"model":"a\u00e9\ud83d\ude00\ud800x","usage":null}`,
	`{"model":"a` + "\x01" + `b"}`,
	`{"model":"a\x"}`,
	`{"model":"abc\"`,
	`{"model":"abc`,
	`{"model":"`,
	`{"model":""}`,
	`{"model":}`,
	`{"model":,"usage":{}}`,
	`{"model"`,
	`{"model" "x"}`,
	`{"m\odel":"x"}`,
	`{"\u006dodel":"x","\u0075sage":{"\u0070rompt_tokens":2}}`,
	`{"model":12"abc","usage":{"total_tokens":1}}`,
	`{"usage":{"total_tokens":1}x,"model":"m"}`,
	`{"usage":{"total_tokens":1},"model":"m"`,
	`{"x":[}],"usage":{"total_tokens":1}}`,
	`{"x":{"a":"]}\"}"},"usage":{"total_tokens":1}}`,
	`{"usage":{"a":[}]}}`,
	`{"usage":{"prompt_tokens":-0,"completion_tokens":-0.00,"total_tokens":0.0}}`,
	`{"usage":{"prompt_tokens":-1,"prompt_tokens":5,"prompt_tokens":6}}`,
	`{"usage":{"prompt_tokens":01}}`,
	`{"usage":{"prompt_tokens":1.}}`,
	`{"usage":{"prompt_tokens":1e}}`,
	`{"usage":{"prompt_tokens":1E+2,"completion_tokens":2e-0,"total_tokens":-}}`,
	`{"usage":{"prompt_tokens":9223372036854775807,"completion_tokens":9223372036854775808,"total_tokens":92233720368547758070}}`,
	`{"usage":{"prompt_tokens":9223372036854775806,"completion_tokens":9223372036854775807}}`,
	`{"usage":{"prompt_tokens":-9223372036854775808}}`,
	`{"usage":{"prompt_tokens":"1","completion_tokens":true,"total_tokens":null,"x":false,"y":[1,{"z":"w"}]}}`,
	`{"usage":{"prompt_tokens":tru}}`,
	`{"usage":{"prompt_tokens":1,}}`,
	`{"usage":{,"prompt_tokens":1}}`,
	`{"usage":{"prompt_tokens" 1}}`,
	`{"usage":{"prompt_tokens":1 "completion_tokens":2}}`,
	`{"usage":{"prompt_tok\u0065ns":3,"prompt_tokens":4}}`,
	`{"usage":{"prompt_tok\ens":3}}`,
	`{"usage":{"prompt_tokens` + "\x02" + `":3}}`,
	`{"usage":{"prompt_cache_hit_tokens":8,"prompt_tokens_details":{"cached_tokens":6}}}`,
	`{"usage":{"prompt_cache_hit_tokens":8,"prompt_tokens_details":{"cached_tokens":-6}}}`,
	`{"usage":{"prompt_tokens_details":{"cached_tokens":-1,"cached_tokens":3},"prompt_tokens_details":{"cached_tokens":4}}}`,
	`{"usage":{"prompt_tokens_details":{"cached_tokens":"1"},"prompt_tokens_details":{"cached_tokens":4}}}`,
	`{"usage":{"prompt_tokens_details":{"cached_tokens":2},"prompt_tokens_details":{"cached_tokens":4}}}`,
	`{"usage":{"prompt_tokens_details":{"cach\u0065d_tokens":2,"x":[[{}]]}}}`,
	`{"usage":{"prompt_tokens_details":{"a":1,"cached_tokens":2,"b":"c"},"completion_tokens_details":{"reasoning_tokens":7}}}`,
	`{"usage":{"prompt_tokens_details":{"cached_tokens":2,}}}`,
	`{"usage":{"prompt_tokens_details":{"cached_tokens":2} ,"completion_tokens_details":{ }}}`,
	`{"usage":{"prompt_tokens_details":{"cached_tokens":2 "x":1}}}`,
	`{"usage":{"prompt_tokens_details":{"cached_tokens"}}}`,
	`{"usage":{"prompt_tokens_details":[{"cached_tokens":2}],"completion_tokens_details":null}}`,
	`{"usage":{"completion_tokens_details":{"reasoning_tokens":{"a":1}},"completion_tokens_details":{"reasoning_tokens":3}}}`,
	`{"usage":{"prompt_tokens_details":{"cached_tokens":1,"cached_tokens":tru}}}`,
	"{ \"usage\" :\t{ \"prompt_tokens\" : 1 ,\n\"completion_tokens\" :2 } ,\r\"model\": \"m\" }",
	`{"usage":{}} `,
	`{"usage":{ }`,
	`{"usage":{`,
	`{"usage":`,
	`{"usage"`,
	`{"usage":"{\"prompt_tokens\":1}"}`,
	`{"usage":{"x":"\ud800","y":"\u12"}}`,
	`{"usage":{"x":"a` + "\x1f" + `"}}`,
	` {}`,
	`{`,
	`{"usage":{"prompt_tokens":1}}` + strings.Repeat(`,"x":1`, 3),
}

// checkAgainstRef compares FromResponse, FromResponseBytes and readUsage with
// the reference implementation on body.
func checkAgainstRef(t *testing.T, body []byte) {
	t.Helper()
	orig := bytes.Clone(body)
	wu, wm, wok := refFromResponse(body)
	u, m, ok := FromResponse(body)
	if u != wu || m != wm || ok != wok {
		t.Fatalf("FromResponse(%q) = %+v, %q, %v; reference %+v, %q, %v", body, u, m, ok, wu, wm, wok)
	}
	bu, bm, bok := FromResponseBytes(body)
	if bu != wu || string(bm) != wm || bok != wok {
		t.Fatalf("FromResponseBytes(%q) = %+v, %q, %v; reference %+v, %q, %v", body, bu, bm, bok, wu, wm, wok)
	}
	// A model that aliases body is the inside of a JSON string without
	// escapes.
	if len(bm) > 0 {
		p := uintptr(unsafe.Pointer(unsafe.SliceData(bm)))
		lo := uintptr(unsafe.Pointer(unsafe.SliceData(body)))
		if p >= lo && p < lo+uintptr(len(body)) {
			at := int(p - lo)
			if at == 0 || body[at-1] != '"' || at+len(bm) >= len(body) || body[at+len(bm)] != '"' || bytes.IndexByte(bm, '\\') >= 0 {
				t.Fatalf("FromResponseBytes(%q): aliased model %q at %d is not a JSON string without escapes", body, bm, at)
			}
		}
	}
	ru, rok := readUsage(body)
	if wru, wrok := refUsage(body); ru != wru || rok != wrok {
		t.Fatalf("readUsage(%q) = %+v, %v; reference %+v, %v", body, ru, rok, wru, wrok)
	}
	if !bytes.Equal(body, orig) {
		t.Fatalf("body changed")
	}
}

func TestFromResponseMatchesRef(t *testing.T) {
	for _, b := range diffBodies {
		checkAgainstRef(t, []byte(b))
		// Every prefix: answers cut anywhere.
		for n := range len(b) {
			checkAgainstRef(t, []byte(b[:n]))
		}
		// The usage value alone, as readUsage sees it.
		if i := strings.Index(b, `"usage":`); i >= 0 {
			checkAgainstRef(t, []byte(b[i+len(`"usage":`):]))
		}
	}
	for _, bb := range benchBodies {
		checkAgainstRef(t, []byte(bb.body))
	}
}

// The usage object may nest MaxDepth levels, itself included, as before.
func TestUsageDepthLimit(t *testing.T) {
	nest := func(n int) string { return strings.Repeat("[", n) + strings.Repeat("]", n) }
	for _, tc := range []struct {
		name  string
		body  string
		known bool
	}{
		{"member at the limit", `{"usage":{"prompt_tokens":1,"x":` + nest(rawjson.MaxDepth-1) + `}}`, true},
		{"member past the limit", `{"usage":{"prompt_tokens":1,"x":` + nest(rawjson.MaxDepth) + `}}`, false},
		{"detail at the limit", `{"usage":{"prompt_tokens_details":{"x":` + nest(rawjson.MaxDepth-2) + `}}}`, true},
		{"detail past the limit", `{"usage":{"prompt_tokens_details":{"x":` + nest(rawjson.MaxDepth-1) + `}}}`, false},
	} {
		u, _, ok := FromResponse([]byte(tc.body))
		if !ok || u.Known != tc.known {
			t.Errorf("%s: known %v, want %v", tc.name, u.Known, tc.known)
		}
		checkAgainstRef(t, []byte(tc.body))
	}
}

// FromResponseBytes does not allocate for a model without escapes, and its
// model aliases the body.
func TestFromResponseBytesAliases(t *testing.T) {
	body := []byte(benchBodies[0].body)
	var model []byte
	allocs := testing.AllocsPerRun(10, func() {
		var u Usage
		u, model, _ = FromResponseBytes(body)
		if !u.Known {
			t.Fatal("no usage")
		}
	})
	if allocs != 0 {
		t.Errorf("FromResponseBytes allocated %v times", allocs)
	}
	i := bytes.Index(body, []byte(`"gpt-4"`)) + 1
	if &model[0] != &body[i] || len(model) != len("gpt-4") {
		t.Errorf("model %q does not alias body[%d:]", model, i)
	}
	_, model, _ = FromResponseBytes([]byte(`{"model":"gpt\u002d4"}`))
	if string(model) != "gpt-4" {
		t.Errorf("escaped model = %q", model)
	}
}

// FuzzFromResponseDiff checks FromResponse, FromResponseBytes and readUsage
// against the former implementation (ref_test.go) on any input.
func FuzzFromResponseDiff(f *testing.F) {
	for _, b := range diffBodies {
		f.Add([]byte(b))
	}
	for _, bb := range benchBodies {
		f.Add([]byte(bb.body))
	}
	files, _ := filepath.Glob("testdata/*.json")
	for _, p := range files {
		b, err := os.ReadFile(p)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		checkAgainstRef(t, body)
	})
}

// digits and nonDigits read a count of one to seven digits from a word.
func TestDigits(t *testing.T) {
	for _, s := range []string{"0,", "7}", "12,", "1310}", "99999,", "1234567,", "9876543}", "4000007,"} {
		b := []byte(s + "xxxxxxxx")
		w := rawjson.Word(b, 0)
		k := bits.TrailingZeros64(nonDigits(w)) >> 3
		want, _ := strconv.ParseInt(s[:len(s)-1], 10, 64)
		if k != len(s)-1 || int64(digits(w, k)) != want {
			t.Errorf("%q: %d digits, value %d; want %d, %d", s, k, digits(w, k), len(s)-1, want)
		}
	}
	// Bytes around the digits, and high bytes, are not digits.
	for c := range 256 {
		w := uint64(c) | uint64('5')<<8
		k := bits.TrailingZeros64(nonDigits(w)) >> 3
		if isDigit(byte(c)) != (k > 0) {
			t.Errorf("byte %#x: %d leading digits", c, k)
		}
	}
}
