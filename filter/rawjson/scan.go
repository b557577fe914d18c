// Package rawjson validates, scans and writes JSON as raw bytes: no reflection, no
// intermediate tree, and no dependency on fmt, os or encoding/json, so it can be
// linked into the wasm filter (gjson cannot: it pulls in encoding/json, hence fmt
// and os, through github.com/tidwall/pretty).
//
// The grammar is RFC 8259 with the same leniency as encoding/json.Valid and
// gjson.ValidBytes: bytes inside strings are not checked for UTF-8 validity (they
// are passed through untouched); raw control characters (< 0x20) inside strings
// are rejected. Nesting deeper than MaxDepth arrays/objects is rejected, as
// encoding/json does.
//
// Nothing in this package allocates except the Append* functions when dst lacks
// capacity and Unquote, which returns a new string.
package rawjson

import (
	"errors"
	"unsafe"
)

// ErrSyntax reports bytes that are not valid JSON (including nesting deeper than
// MaxDepth).
var ErrSyntax = errors.New("invalid JSON")

// MaxDepth is the deepest nesting of arrays and objects accepted: the same limit
// as encoding/json.
const MaxDepth = 10000

// isSpace reports JSON insignificant whitespace.
func isSpace(c byte) bool { return c == ' ' || c == '\n' || c == '\r' || c == '\t' }

// SkipSpace returns the index of the first byte at or after i that is not JSON
// whitespace, or len(b).
func SkipSpace(b []byte, i int) int {
	for i < len(b) && isSpace(b[i]) {
		i++
	}
	return i
}

// Valid reports whether b holds exactly one JSON value, optionally surrounded by
// whitespace.
func Valid(b []byte) bool {
	end, err := Value(b, 0)
	return err == nil && SkipSpace(b, end) == len(b)
}

// IsObject reports whether b holds exactly one JSON value, optionally surrounded
// by whitespace, and that value is an object.
func IsObject(b []byte) bool {
	i := SkipSpace(b, 0)
	return i < len(b) && b[i] == '{' && Valid(b)
}

// String validates the JSON string that starts at b[i] (which must be '"') and
// returns the index just past its closing quote, and whether it contains any
// backslash escape (if not, the bytes between the quotes are the string itself).
func String(b []byte, i int) (end int, escaped bool, err error) {
	if i >= len(b) || b[i] != '"' {
		return i, false, ErrSyntax
	}
	i++
	for {
		// Plain runs are skipped a word at a time (StringStop): string
		// content is most of a chat body, and byte loops are slow in wasm.
		if i = StringStop(b, i); i >= len(b) {
			return i, escaped, ErrSyntax
		}
		switch c := b[i]; {
		case c == '"':
			return i + 1, escaped, nil
		case c == '\\':
			escaped = true
			if i+1 >= len(b) {
				return i, escaped, ErrSyntax
			}
			switch b[i+1] {
			case '"', '\\', '/', 'b', 'f', 'n', 'r', 't':
				i += 2
			case 'u':
				if i+6 > len(b) || !isHex(b[i+2]) || !isHex(b[i+3]) || !isHex(b[i+4]) || !isHex(b[i+5]) {
					return i, escaped, ErrSyntax
				}
				i += 6
			default:
				return i, escaped, ErrSyntax
			}
		default: // a control byte
			return i, escaped, ErrSyntax
		}
	}
}

const (
	ones  = 0x0101010101010101
	highs = 0x8080808080808080
)

// load64 reads b[i:i+8] as a little-endian word; the caller checks bounds.
// One unaligned 64-bit load (wasm and the usual native targets are little
// endian and allow it) instead of eight byte loads, shifts and ors, which the
// wasm backend does not combine.
func load64(b []byte, i int) uint64 {
	_ = b[i+7]
	return *(*uint64)(unsafe.Pointer(&b[i]))
}

func isHex(c byte) bool {
	return c >= '0' && c <= '9' || c >= 'a' && c <= 'f' || c >= 'A' && c <= 'F'
}

func isDigit(c byte) bool { return c >= '0' && c <= '9' }

// number validates the JSON number starting at b[i].
func number(b []byte, i int) (int, error) {
	if i < len(b) && b[i] == '-' {
		i++
	}
	if i >= len(b) {
		return i, ErrSyntax
	}
	if b[i] == '0' {
		i++
	} else if b[i] >= '1' && b[i] <= '9' {
		for i < len(b) && isDigit(b[i]) {
			i++
		}
	} else {
		return i, ErrSyntax
	}
	if i < len(b) && b[i] == '.' {
		i++
		if i >= len(b) || !isDigit(b[i]) {
			return i, ErrSyntax
		}
		for i < len(b) && isDigit(b[i]) {
			i++
		}
	}
	if i < len(b) && (b[i] == 'e' || b[i] == 'E') {
		i++
		if i < len(b) && (b[i] == '+' || b[i] == '-') {
			i++
		}
		if i >= len(b) || !isDigit(b[i]) {
			return i, ErrSyntax
		}
		for i < len(b) && isDigit(b[i]) {
			i++
		}
	}
	return i, nil
}

func literal(b []byte, i int, lit string) (int, error) {
	if len(b)-i < len(lit) || string(b[i:i+len(lit)]) != lit {
		return i, ErrSyntax
	}
	return i + len(lit), nil
}

// Value validates the JSON value that starts at the first non-whitespace byte at
// or after i and returns the index just past it (trailing whitespace is not
// consumed). It is iterative: deep nesting costs no stack, and the container
// stack is a fixed bit set, so it never allocates.
func Value(b []byte, i int) (end int, err error) { return value(b, i, MaxDepth) }

// value is Value with a nesting limit of maxDepth containers.
//
// It is one flat loop: in wasm a function call costs more than scanning a
// short token, so strings without escapes (keys included) and plain
// integers are read inline, a word at a time for strings; escapes, other
// numbers and literals go to the general functions.
func value(b []byte, i, maxDepth int) (end int, err error) {
	// bit d of stack is set when the container at depth d+1 is an object.
	// Documents nest shallowly: a two-word stack serves up to 128 levels
	// without clearing a MaxDepth-sized array on every call; a deeper
	// document moves to a full one.
	var small [2]uint64
	stack := small[:]
	depth := 0
	wantKey := false // the next token is an object member's key
	for {
		// Expect a value (or a key) at i.
		for i < len(b) && isSpace(b[i]) {
			i++
		}
		if i >= len(b) {
			return i, ErrSyntax
		}
		c := b[i]
		switch {
		case c == '"':
			// A plain string in one step; escapes and errors go to the
			// general scan, from the start.
			j := StringStop(b, i+1)
			switch {
			case j >= len(b):
				return j, ErrSyntax
			case b[j] == '"':
				j++
			default:
				if j, _, err = String(b, i); err != nil {
					return j, err
				}
			}
			i = j
			if wantKey {
				for i < len(b) && isSpace(b[i]) {
					i++
				}
				if i >= len(b) || b[i] != ':' {
					return i, ErrSyntax
				}
				i++
				wantKey = false
				continue // the member's value
			}
		case wantKey:
			return i, ErrSyntax
		case c == '{' || c == '[':
			if depth == maxDepth {
				return i, ErrSyntax
			}
			if depth == len(stack)*64 {
				stack = append(make([]uint64, 0, MaxDepth/64+1), stack...)[:MaxDepth/64+1]
			}
			i++
			for i < len(b) && isSpace(b[i]) {
				i++
			}
			closer := byte(']')
			if c == '{' {
				closer = '}'
			}
			if i < len(b) && b[i] == closer {
				i++
				break // an empty container is a complete value
			}
			if c == '{' {
				stack[depth>>6] |= 1 << (depth & 63)
				wantKey = true
			} else {
				stack[depth>>6] &^= 1 << (depth & 63)
			}
			depth++
			continue // the first element
		case c >= '1' && c <= '9':
			// A plain integer inline; a fraction or exponent goes to number.
			j := i + 1
			for j < len(b) && isDigit(b[j]) {
				j++
			}
			if j < len(b) && (b[j] == '.' || b[j] == 'e' || b[j] == 'E') {
				if j, err = number(b, i); err != nil {
					return j, err
				}
			}
			i = j
		case c == 't':
			if i, err = literal(b, i, "true"); err != nil {
				return i, err
			}
		case c == 'f':
			if i, err = literal(b, i, "false"); err != nil {
				return i, err
			}
		case c == 'n':
			if i, err = literal(b, i, "null"); err != nil {
				return i, err
			}
		default:
			if i, err = number(b, i); err != nil {
				return i, err
			}
		}
		// A value ended at i: close containers until one wants another element.
		for {
			if depth == 0 {
				return i, nil
			}
			for i < len(b) && isSpace(b[i]) {
				i++
			}
			if i >= len(b) {
				return i, ErrSyntax
			}
			isObj := stack[(depth-1)>>6]&(1<<((depth-1)&63)) != 0
			if b[i] == ',' {
				i++
				wantKey = isObj
				break
			}
			if isObj && b[i] == '}' || !isObj && b[i] == ']' {
				i++
				depth--
				continue
			}
			return i, ErrSyntax
		}
	}
}

// memberKey validates `"key" :` at b[i] and returns the index after the
// colon, the index just past the key's closing quote, and whether the key
// contains escapes (see String). On an error, next is where it was met.
func memberKey(b []byte, i int) (next, keyEnd int, escaped bool, err error) {
	keyEnd, escaped, err = String(b, i)
	if err != nil {
		return keyEnd, keyEnd, escaped, err
	}
	i = SkipSpace(b, keyEnd)
	if i >= len(b) || b[i] != ':' {
		return i, keyEnd, escaped, ErrSyntax
	}
	return i + 1, keyEnd, escaped, nil
}

// Member is one object member as raw bytes of the scanned document.
type Member struct {
	// Key is the raw key including its quotes; KeyEscaped reports whether it
	// contains escapes (when false, Key[1:len(Key)-1] is the key itself).
	Key        []byte
	KeyEscaped bool
	// Value is the raw value bytes, without surrounding whitespace.
	Value []byte
}

// ObjectScanner walks the members of one JSON object, validating the document
// as it goes. Its zero value is not ready: call Reset. It does not allocate.
//
//	var s rawjson.ObjectScanner
//	if err := s.Reset(doc); err != nil { ... }
//	for s.Next() { m := s.Member(); ... }
//	if err := s.Err(); err != nil { ... } // the document is invalid
//
// When Next returns false with Err() == nil, the whole document was a valid
// object followed only by whitespace.
type ObjectScanner struct {
	container
	m      Member
	mStart int
}

// Reset starts scanning doc, which must hold a single object (leading and
// trailing whitespace allowed). It returns ErrSyntax when doc does not start
// with '{' after whitespace.
func (s *ObjectScanner) Reset(doc []byte) error {
	*s = ObjectScanner{}
	return s.reset(doc, '{')
}

// Next advances to the next member. It returns false at the end of the object
// or on a syntax error (see Err).
func (s *ObjectScanner) Next() bool {
	if s.done {
		return false
	}
	keyStart, keyEnd, vStart, vEnd, escaped, done, err := NextMember(s.b, s.i, s.n == 0)
	switch {
	case err != nil:
		return s.fail(vEnd)
	case done:
		return s.finish(vEnd)
	}
	s.m.Key, s.m.KeyEscaped, s.m.Value = s.b[keyStart:keyEnd:keyEnd], escaped, s.b[vStart:vEnd:vEnd]
	s.mStart = keyStart
	s.i = vEnd
	s.n++
	return true
}

// NextMember reads the next member of the object being scanned in b: i is
// just past its '{' (first) or past the previous member's value. It returns
// the spans of the raw key (quotes included) and of the raw value, and
// whether the key has escapes; or done, with vEnd just past the closing '}';
// or ErrSyntax, with vEnd where it was met. The value is validated to the
// nesting limit of a member of a top-level object. It is ObjectScanner's step
// without the scanner, for loops that keep their own state.
func NextMember(b []byte, i int, first bool) (keyStart, keyEnd, vStart, vEnd int, escaped, done bool, err error) {
	i = SkipSpace(b, i)
	switch {
	case i >= len(b):
		return 0, 0, 0, i, false, false, ErrSyntax
	case b[i] == '}':
		return 0, 0, 0, i + 1, false, true, nil
	case first:
	case b[i] == ',':
		i = SkipSpace(b, i+1)
	default:
		return 0, 0, 0, i, false, false, ErrSyntax
	}
	next, keyEnd, escaped, err := memberKey(b, i)
	if err != nil {
		return 0, 0, 0, next, false, false, err
	}
	vStart = SkipSpace(b, next)
	vEnd, err = value(b, vStart, MaxDepth-1) // the object itself is one level
	if err != nil {
		return 0, 0, 0, vEnd, false, false, err
	}
	return i, keyEnd, vStart, vEnd, escaped, false, nil
}

// Member returns the current member (valid after Next returned true). Its slices
// alias the scanned document.
func (s *ObjectScanner) Member() Member { return s.m }

// Span returns the byte range [start, end) of the current member in the
// document, from its key's opening quote to the end of its value.
func (s *ObjectScanner) Span() (start, end int) { return s.mStart, s.i }

// Err returns ErrSyntax once the scan met invalid JSON, else nil.
func (s *ObjectScanner) Err() error { return s.err }

// container is the state ArrayScanner and ObjectScanner share: the document,
// the index just past what was read, the number of elements read, and how
// the scan ended.
type container struct {
	b    []byte
	i    int
	n    int
	done bool
	err  error
}

// reset starts scanning doc, which must hold one container that opens with
// opener after whitespace, else the scan ends with ErrSyntax.
func (s *container) reset(doc []byte, opener byte) error {
	*s = container{b: doc}
	i := SkipSpace(doc, 0)
	if i >= len(doc) || doc[i] != opener {
		s.done, s.err = true, ErrSyntax
		return s.err
	}
	s.i = i + 1
	return nil
}

// next reads up to the next element: the separating comma after the first
// one, and whitespace. It returns the index of the element's first byte and
// true, or false when the container ended with closer (see finish) or the
// document is invalid (see fail). The caller reads the element and sets s.i
// past it.
func (s *container) next(closer byte) (int, bool) {
	if s.done {
		return s.i, false
	}
	b := s.b
	i := SkipSpace(b, s.i)
	switch {
	case i >= len(b):
		return i, s.fail(i)
	case b[i] == closer:
		return i, s.finish(i + 1)
	case s.n == 0:
	case b[i] == ',':
		i = SkipSpace(b, i+1)
	default:
		return i, s.fail(i)
	}
	return i, true
}

// fail ends the scan with ErrSyntax met at i; it returns false for Next.
func (s *container) fail(i int) bool {
	s.done, s.err, s.i = true, ErrSyntax, i
	return false
}

// finish ends the scan after the closer at i-1: only whitespace may follow.
// It returns false for Next.
func (s *container) finish(i int) bool {
	s.done, s.i = true, i
	if SkipSpace(s.b, i) != len(s.b) {
		s.err = ErrSyntax
	}
	return false
}

// Members returns the members of the object in doc, in document order,
// validating the whole document. It allocates the slice; it is meant for
// configuration parsing, not for per-request work.
func Members(doc []byte) ([]Member, error) {
	var s ObjectScanner
	if err := s.Reset(doc); err != nil {
		return nil, err
	}
	var ms []Member
	for s.Next() {
		ms = append(ms, s.Member())
	}
	if err := s.Err(); err != nil {
		return nil, err
	}
	return ms, nil
}
