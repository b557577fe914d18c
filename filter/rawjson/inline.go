package rawjson

import "math/bits"

// Helpers for callers that run their own scanning loop over a document. In
// wasm every function call, and every backward jump of a loop, is expensive,
// so a hot reader may want one flat loop that moves a word at a time and
// jumps straight to the next byte that matters: with m := StringStops(Word(b,
// i)), the first such byte of the word is b[i+bits.TrailingZeros64(m)/8] (m
// == 0: none). Word, StringStops and ValueStops are small enough to be
// inlined.

// Word returns b[i:i+8] as a little-endian word, in one load. It panics
// unless i+8 <= len(b): the caller checks the bounds.
func Word(b []byte, i int) uint64 { return load64(b, i) }

// StringStops returns the high bit (0x80) of each byte of the little-endian
// word w (see Word) that is '"', '\\' or a control character (< 0x20): the
// bytes that end a plain run in a JSON string. Its lowest set bit is exact;
// bits above a flagged byte may be false positives.
func StringStops(w uint64) uint64 {
	return (hasZero(w^(ones*'"')) | hasZero(w^(ones*'\\')) | (w-ones*0x20)&^w) & highs
}

// ValueStops returns the high bit (0x80) of each byte of the little-endian
// word w that is '"', '[', ']', '{' or '}': the only bytes that matter when
// skipping the inside of an array or object without validating it (see
// SkipTrusted). Its lowest set bit is exact; bits above a flagged byte may be
// false positives.
func ValueStops(w uint64) uint64 {
	// '[' and '{' differ only by 0x20, as do ']' and '}'.
	lower := w | ones*0x20
	return (hasZero(w^(ones*'"')) | hasZero(lower^(ones*'{')) | hasZero(lower^(ones*'}'))) & highs
}

// ScalarStops returns the high bit (0x80) of each byte of the
// little-endian word w that is one of the ValueStops, ',' or ':', or at most
// 0x20 (whitespace, and the other control characters): a superset of the
// bytes that end a scalar value when it is skipped without validating it
// (see SkipTrusted). Its lowest set bit is exact; bits above a flagged byte
// may be false positives.
func ScalarStops(w uint64) uint64 {
	lower := w | ones*0x20
	return (hasZero(w^(ones*'"')) | hasZero(lower^(ones*'{')) | hasZero(lower^(ones*'}')) |
		hasZero(w^(ones*',')) | hasZero(w^(ones*':')) | (w-ones*0x21)&^w) & highs
}

// StringStop returns the index of the first byte at or after i that ends a
// plain run in a JSON string ('"', '\\' or a control byte), or len(b) when
// there is none: two words at a time along a run, then one, the last bytes
// one by one. Every string scan of this package and of its readers goes
// through it (a small function: the same loop inside a big one runs slower
// in wasm).
func StringStop(b []byte, i int) int {
	for i+16 <= len(b) && StringStops(load64(b, i))|StringStops(load64(b, i+8)) == 0 {
		i += 16
	}
	for i+8 <= len(b) {
		if m := StringStops(load64(b, i)); m != 0 {
			return i + bits.TrailingZeros64(m)>>3
		}
		i += 8
	}
	for i < len(b) {
		if c := b[i]; c == '"' || c == '\\' || c < 0x20 {
			return i
		}
		i++
	}
	return i
}

// hasZero flags (in the high bit of each byte) the zero bytes of w: exactly
// for the lowest one; a borrow may flag bytes above it too.
func hasZero(w uint64) uint64 { return (w - ones) &^ w }

// ValueDepth is Value for a value nested inside depth enclosing arrays or
// objects that the caller has already opened: it validates the value that
// starts at the first non-whitespace byte at or after i with at most
// MaxDepth-depth levels of nesting of its own, so that the whole document
// keeps to MaxDepth (with depth >= MaxDepth, only a scalar is valid). It
// returns the index just past the value.
func ValueDepth(b []byte, i, depth int) (end int, err error) {
	return value(b, i, max(MaxDepth-depth, 0))
}
