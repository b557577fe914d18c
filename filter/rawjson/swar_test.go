package rawjson

import "testing"

// StringStops must flag every word holding '"', '\\' or a control byte in
// any position, and no word of plain ASCII bytes.
func TestStringStopsFlagsSpecialBytes(t *testing.T) {
	for pos := 0; pos < 8; pos++ {
		for c := 0; c < 256; c++ {
			word := make([]byte, 8)
			for i := range word {
				word[i] = 'a'
			}
			word[pos] = byte(c)
			got := StringStops(load64(word, 0)) != 0
			special := c == '"' || c == '\\' || c < 0x20
			if special && !got {
				t.Fatalf("byte %#x at %d not flagged", c, pos)
			}
			if !special && c < 0x80 && got {
				t.Fatalf("plain byte %#x at %d flagged", c, pos)
			}
		}
	}
}

// Long strings exercise the word-at-a-time path on both sides of a special byte.
func TestStringLongRuns(t *testing.T) {
	for n := 0; n < 40; n++ {
		for _, tail := range []string{`"`, `\n"`, "\x01\"", `\"x"`} {
			s := `"` + repeat('x', n) + tail
			end, _, err := String([]byte(s), 0)
			wantErr := tail == "\x01\""
			if (err != nil) != wantErr {
				t.Fatalf("%q: err %v", s, err)
			}
			if !wantErr && end != len(s) {
				t.Fatalf("%q: end %d, want %d", s, end, len(s))
			}
		}
	}
}

func repeat(c byte, n int) string {
	b := make([]byte, n)
	for i := range b {
		b[i] = c
	}
	return string(b)
}
