package rawjson

// Lookup returns the raw bytes of the value at path in doc, where each path
// element names a member of the object reached so far: Lookup(doc, "usage",
// "prompt_tokens") is doc.usage.prompt_tokens. With an empty path it returns
// the value doc holds. The returned slice aliases doc and holds no surrounding
// whitespace. It never allocates.
//
// ok is false when a member is missing, when a value on the path is not an
// object, or when the bytes read up to the value are not valid JSON. When an
// object holds the same key twice, the first member wins (as in gjson;
// encoding/json keeps the last).
//
// Lookup reads doc once, from the start to the end of the returned value,
// validating what it reads (skipped members included) and nothing past it: a
// document that is broken after the value still yields it. Check Valid first
// when the integrity of the whole document matters.
func Lookup(doc []byte, path ...string) (raw []byte, ok bool) {
	i := SkipSpace(doc, 0)
	depth := 0
	for _, key := range path {
		if i >= len(doc) || doc[i] != '{' || depth == MaxDepth {
			return nil, false
		}
		depth++
		i = SkipSpace(doc, i+1)
		if i < len(doc) && doc[i] == '}' {
			return nil, false
		}
		for {
			keyStart := i
			next, keyEnd, escaped, err := memberKey(doc, i)
			if err != nil {
				return nil, false
			}
			i = SkipSpace(doc, next)
			if EqualString(doc[keyStart:keyEnd], escaped, key) {
				break // the value at i is the next step
			}
			end, err := value(doc, i, MaxDepth-depth)
			if err != nil {
				return nil, false
			}
			i = SkipSpace(doc, end)
			if i >= len(doc) || doc[i] != ',' {
				return nil, false // '}' (not found) or a syntax error
			}
			i = SkipSpace(doc, i+1)
		}
	}
	end, err := value(doc, i, MaxDepth-depth)
	if err != nil {
		return nil, false
	}
	return doc[i:end:end], true
}

// Int returns the value of raw, which must be exactly one JSON number (no
// surrounding whitespace) holding an integer that fits in an int64. The
// integer may carry a fraction made only of zeros ("12.0" is 12); a non-zero
// fraction ("12.5"), an exponent ("1e3", even when integral), a leading '+' or
// leading zeros are rejected with ok=false. It never allocates.
func Int(raw []byte) (n int64, ok bool) {
	i := 0
	neg := false
	if len(raw) > 0 && raw[0] == '-' {
		neg, i = true, 1
	}
	if i >= len(raw) || !isDigit(raw[i]) || raw[i] == '0' && i+1 < len(raw) && isDigit(raw[i+1]) {
		return 0, false
	}
	// limit is the magnitude allowed: 2^63-1, or 2^63 for a negative number.
	limit := uint64(1<<63 - 1)
	if neg {
		limit++
	}
	var u uint64
	for ; i < len(raw) && isDigit(raw[i]); i++ {
		d := uint64(raw[i] - '0')
		if u > (limit-d)/10 {
			return 0, false
		}
		u = u*10 + d
	}
	if i < len(raw) && raw[i] == '.' {
		i++
		if i >= len(raw) {
			return 0, false
		}
		for ; i < len(raw); i++ {
			if raw[i] != '0' {
				return 0, false
			}
		}
	}
	if i != len(raw) {
		return 0, false
	}
	if neg {
		return int64(-u), true // -2^63 wraps to itself, as intended
	}
	return int64(u), true
}

// ArrayScanner walks the elements of one JSON array, validating the document
// as it goes. Its zero value is not ready: call Reset. It does not allocate.
//
//	var s rawjson.ArrayScanner
//	if err := s.Reset(doc); err != nil { ... }
//	for s.Next() { v := s.Value(); ... }
//	if err := s.Err(); err != nil { ... } // the document is invalid
//
// When Next returns false with Err() == nil, the whole document was a valid
// array followed only by whitespace.
type ArrayScanner struct {
	container
	v []byte
}

// Reset starts scanning doc, which must hold a single array (leading and
// trailing whitespace allowed). It returns ErrSyntax when doc does not start
// with '[' after whitespace.
func (s *ArrayScanner) Reset(doc []byte) error {
	*s = ArrayScanner{}
	return s.reset(doc, '[')
}

// Next advances to the next element. It returns false at the end of the array
// or on a syntax error (see Err).
func (s *ArrayScanner) Next() bool {
	i, ok := s.next(']')
	if !ok {
		return false
	}
	b := s.b
	end, err := value(b, i, MaxDepth-1) // the array itself is one level
	if err != nil {
		return s.fail(end)
	}
	s.v = b[i:end:end]
	s.i = end
	s.n++
	return true
}

// Value returns the raw bytes of the current element (valid after Next
// returned true), without surrounding whitespace. It aliases the document.
func (s *ArrayScanner) Value() []byte { return s.v }

// Err returns ErrSyntax once the scan met invalid JSON, else nil.
func (s *ArrayScanner) Err() error { return s.err }
