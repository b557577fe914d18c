package rawjson

import (
	"math/bits"
	"math/rand"
	"testing"
)

// firstStop is the reference for the Stops functions: the index of the
// first byte of word that is in set, or 8.
func firstStop(word []byte, set func(byte) bool) int {
	for i, c := range word {
		if set(c) {
			return i
		}
	}
	return 8
}

func isStringStop(c byte) bool { return c == '"' || c == '\\' || c < 0x20 }

func isValueStop(c byte) bool { return c == '"' || c == '[' || c == ']' || c == '{' || c == '}' }

func isScalarStop(c byte) bool { return isValueStop(c) || c == ',' || c == ':' || c <= 0x20 }

// The lowest flagged byte of StringStops, ValueStops and ScalarStops is the first byte of
// the set, for every byte in every position (among plain bytes, and after
// other arbitrary bytes), and for random words.
func TestStops(t *testing.T) {
	stops := []struct {
		name string
		fn   func(uint64) uint64
		set  func(byte) bool
	}{{"StringStops", StringStops, isStringStop}, {"ValueStops", ValueStops, isValueStop}, {"ScalarStops", ScalarStops, isScalarStop}}
	check := func(word []byte) {
		t.Helper()
		for _, s := range stops {
			m := s.fn(Word(word, 0))
			if got, want := bits.TrailingZeros64(m)/8, firstStop(word, s.set); got != want {
				t.Fatalf("%s(% x): first stop at %d, want %d", s.name, word, got, want)
			}
		}
	}
	word := make([]byte, 8)
	for _, fill := range []byte{'a', 0x80, 0xff, ' ', '0'} {
		for pos := range 8 {
			for c := range 256 {
				for other := range 256 {
					for i := range word {
						word[i] = fill
					}
					word[pos] = byte(c)
					// Any byte after the first stop, or anywhere when
					// there is none.
					if pos < 7 {
						word[7] = byte(other)
					}
					check(word)
				}
			}
		}
	}
	rng := rand.New(rand.NewSource(1))
	alphabet := []byte("\"\\{}[]\x00\x1f\x20\x21\x7f\x80\xa2\xdc\xfb\xfd\xff az:,")
	for range 200000 {
		for i := range word {
			if rng.Intn(2) == 0 {
				word[i] = alphabet[rng.Intn(len(alphabet))]
			} else {
				word[i] = byte(rng.Intn(256))
			}
		}
		check(word)
	}
}

// ValueDepth keeps the whole document to MaxDepth.
func TestValueDepth(t *testing.T) {
	nest := func(n int) []byte {
		b := make([]byte, 2*n)
		for i := range n {
			b[i], b[2*n-1-i] = '[', ']'
		}
		return b
	}
	for _, tc := range []struct{ depth, n int }{{0, MaxDepth}, {1, MaxDepth - 1}, {2, MaxDepth - 2}, {MaxDepth - 1, 1}, {MaxDepth, 0}, {MaxDepth + 5, 0}} {
		if end, err := ValueDepth([]byte("1"), 0, tc.depth); err != nil || end != 1 {
			t.Errorf("depth %d: scalar: %d, %v", tc.depth, end, err)
		}
		if tc.n == 0 {
			if _, err := ValueDepth([]byte("[]"), 0, tc.depth); err == nil {
				t.Errorf("depth %d: array accepted", tc.depth)
			}
			continue
		}
		if end, err := ValueDepth(nest(tc.n), 0, tc.depth); err != nil || end != 2*tc.n {
			t.Errorf("depth %d, %d levels: %d, %v", tc.depth, tc.n, end, err)
		}
		if _, err := ValueDepth(nest(tc.n+1), 0, tc.depth); err == nil {
			t.Errorf("depth %d, %d levels accepted", tc.depth, tc.n+1)
		}
	}
}
