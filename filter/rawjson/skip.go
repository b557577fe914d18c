package rawjson

// Fast paths for reading documents this code does not need to validate (a
// provider's answer read only for its usage). They never panic and never read
// out of bounds on any input; on invalid JSON they return garbage offsets or
// false, never an error.

// SkipTrusted returns the index just past the JSON value that starts at the
// first non-whitespace byte at or after i, without validating it: strings are
// skipped by their quotes and escapes, containers by bracket depth, scalars up
// to the next delimiter. On valid JSON it agrees with Value.
func SkipTrusted(b []byte, i int) int {
	i = SkipSpace(b, i)
	depth := 0
	for i < len(b) {
		switch c := b[i]; c {
		case '"':
			i = skipString(b, i)
			if depth == 0 {
				return i
			}
		case '{', '[':
			depth++
			i++
		case '}', ']':
			if depth == 0 {
				return i
			}
			depth--
			i++
			if depth == 0 {
				return i
			}
		case ',', ' ', '\t', '\n', '\r', ':':
			if depth == 0 {
				return i
			}
			i++
		default:
			i++
		}
	}
	return i
}

// skipString returns the index just past the string whose opening quote is
// at b[i], skipping plain runs a word at a time.
func skipString(b []byte, i int) int {
	i++
	for {
		if i = StringStop(b, i); i >= len(b) {
			return len(b)
		}
		switch b[i] {
		case '"':
			return i + 1
		case '\\':
			i += 2
		default: // a control byte, skipped as the string's
			i++
		}
	}
}

// EachTopMember calls fn with the raw key (quotes included) and raw value of
// each member of the object doc, without validating doc; it stops when fn
// returns false or the object ends. It reports whether doc starts like an
// object.
func EachTopMember(doc []byte, fn func(key, value []byte) bool) bool {
	i := SkipSpace(doc, 0)
	if i >= len(doc) || doc[i] != '{' {
		return false
	}
	i++
	for {
		i = SkipSpace(doc, i)
		if i >= len(doc) || doc[i] != '"' {
			return true
		}
		k := skipString(doc, i)
		key := doc[i:k]
		i = SkipSpace(doc, k)
		if i >= len(doc) || doc[i] != ':' {
			return true
		}
		start := SkipSpace(doc, i+1)
		end := SkipTrusted(doc, start)
		if end <= start {
			return true
		}
		if !fn(key, doc[start:end]) {
			return true
		}
		i = SkipSpace(doc, end)
		if i >= len(doc) || doc[i] != ',' {
			return true
		}
		i++
	}
}
