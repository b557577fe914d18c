package rawjson

import (
	"encoding/json"
	"testing"
)

func TestSkipTrustedAgreesWithValue(t *testing.T) {
	docs := []string{
		`1`, `-1.5e3`, `true`, `null`, `"a\"b\\"`, `[]`, `{}`, `[1,"x",{"a":[true,null]}]`,
		`{"id":"c","choices":[{"message":{"content":"he said \"}\" and ]"}}],"usage":{"prompt_tokens":1}}`,
		`  {"a" : [ 1 , 2 ] }  `,
	}
	for _, d := range docs {
		want, err := Value([]byte(d), 0)
		if err != nil {
			t.Fatalf("%s: %v", d, err)
		}
		if got := SkipTrusted([]byte(d), 0); got != want {
			t.Errorf("SkipTrusted(%s) = %d, want %d", d, got, want)
		}
	}
}

func TestEachTopMember(t *testing.T) {
	doc := []byte(`{"model":"gpt-4","choices":[{"delta":{"content":"x,y}"}}],"usage" : {"total_tokens":3}}`)
	got := map[string]string{}
	ok := EachTopMember(doc, func(k, v []byte) bool {
		got[string(k)] = string(v)
		return true
	})
	if !ok || got[`"model"`] != `"gpt-4"` || got[`"usage"`] != `{"total_tokens":3}` || len(got) != 3 {
		t.Fatalf("ok=%v members=%v", ok, got)
	}
	if EachTopMember([]byte(`[1]`), func(k, v []byte) bool { return true }) {
		t.Fatal("an array is not an object")
	}
}

// On any input the fast paths stay in bounds, and on valid JSON SkipTrusted
// agrees with the validating scanner.
func FuzzSkipTrusted(f *testing.F) {
	for _, s := range []string{`{"a":1}`, `[1,[2,{"b":"\u00e9"}]]`, `"x\\"`, `{"a":"b`, `}`, `"\`} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		end := SkipTrusted(b, 0)
		if end < 0 || end > len(b) {
			t.Fatalf("end %d out of [0,%d]", end, len(b))
		}
		EachTopMember(b, func(k, v []byte) bool { return true })
		if json.Valid(b) {
			want, err := Value(b, 0)
			if err == nil && end != want {
				t.Fatalf("SkipTrusted = %d, Value = %d for %q", end, want, b)
			}
		}
	})
}
