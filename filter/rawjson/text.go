package rawjson

import (
	"unicode/utf16"
	"unicode/utf8"
)

// unescaper decodes the contents of a validated JSON string one UTF-8 chunk at a
// time. Invalid surrogate escapes decode to U+FFFD, as in encoding/json.
type unescaper struct {
	s []byte // the bytes between the quotes
	i int
}

// next returns the next decoded bytes (copied into buf when the source is an
// escape), or ok=false at the end.
func (u *unescaper) next(buf *[4]byte) (chunk []byte, ok bool) {
	s := u.s
	if u.i >= len(s) {
		return nil, false
	}
	if s[u.i] != '\\' {
		// A run of literal bytes up to the next escape.
		j := u.i
		for j < len(s) && s[j] != '\\' {
			j++
		}
		chunk, u.i = s[u.i:j], j
		return chunk, true
	}
	c := s[u.i+1]
	u.i += 2
	switch c {
	case 'b':
		buf[0] = '\b'
	case 'f':
		buf[0] = '\f'
	case 'n':
		buf[0] = '\n'
	case 'r':
		buf[0] = '\r'
	case 't':
		buf[0] = '\t'
	case 'u':
		r := hex4(s[u.i:])
		u.i += 4
		if utf16.IsSurrogate(r) {
			r2 := rune(-1)
			if u.i+6 <= len(s) && s[u.i] == '\\' && s[u.i+1] == 'u' {
				r2 = hex4(s[u.i+2:])
			}
			if d := utf16.DecodeRune(r, r2); d != utf8.RuneError {
				u.i += 6
				r = d
			} else {
				r = utf8.RuneError
			}
		}
		n := utf8.EncodeRune(buf[:], r)
		return buf[:n], true
	default: // '"', '\\', '/'
		buf[0] = c
	}
	return buf[:1], true
}

func hex4(s []byte) rune {
	var r rune
	for _, c := range s[:4] {
		r <<= 4
		switch {
		case c >= '0' && c <= '9':
			r |= rune(c - '0')
		case c >= 'a' && c <= 'f':
			r |= rune(c - 'a' + 10)
		default:
			r |= rune(c - 'A' + 10)
		}
	}
	return r
}

// inner returns the bytes between the quotes of a raw JSON string, or ok=false
// when raw is not a valid JSON string.
func inner(raw []byte) ([]byte, bool) {
	end, _, err := String(raw, 0)
	if err != nil || end != len(raw) {
		return nil, false
	}
	return raw[1 : len(raw)-1], true
}

// AppendUnquote appends the decoded value of the raw JSON string raw (with its
// quotes) to dst. ok is false, and dst is returned unchanged, when raw is not
// exactly one valid JSON string.
func AppendUnquote(dst, raw []byte) (_ []byte, ok bool) {
	s, ok := inner(raw)
	if !ok {
		return dst, false
	}
	u := unescaper{s: s}
	var buf [4]byte
	for {
		chunk, more := u.next(&buf)
		if !more {
			return dst, true
		}
		dst = append(dst, chunk...)
	}
}

// Unquote returns the decoded value of the raw JSON string raw (with its
// quotes), or ok=false when raw is not exactly one valid JSON string.
func Unquote(raw []byte) (string, bool) {
	s, ok := inner(raw)
	if !ok {
		return "", false
	}
	if !hasByte(s, '\\') {
		return string(s), true
	}
	out, _ := AppendUnquote(make([]byte, 0, len(s)), raw)
	return string(out), true
}

func hasByte(s []byte, c byte) bool {
	for _, x := range s {
		if x == c {
			return true
		}
	}
	return false
}

// EqualString reports whether the raw JSON string raw (with its quotes, already
// validated, e.g. a Member.Key) decodes to exactly s. escaped is the flag the
// scanner reported for raw; when false the comparison is a plain byte compare.
// It never allocates.
func EqualString(raw []byte, escaped bool, s string) bool {
	if len(raw) < 2 {
		return false
	}
	body := raw[1 : len(raw)-1]
	if !escaped {
		return string(body) == s
	}
	u := unescaper{s: body}
	var buf [4]byte
	for {
		chunk, more := u.next(&buf)
		if !more {
			return len(s) == 0
		}
		if len(chunk) > len(s) || string(chunk) != s[:len(chunk)] {
			return false
		}
		s = s[len(chunk):]
	}
}

const hexDigits = "0123456789abcdef"

// AppendString appends s to dst as a JSON string with its quotes. Quotes,
// backslashes and control characters are escaped (\n, \r, \t, \b, \f or
// \u00XX), as are U+2028 and U+2029 (so the output is also valid JavaScript);
// invalid UTF-8 bytes become U+FFFD, so the output is always valid UTF-8 JSON.
func AppendString(dst []byte, s string) []byte {
	dst = append(dst, '"')
	start := 0
	for i := 0; i < len(s); {
		c := s[i]
		if c < utf8.RuneSelf {
			if c >= 0x20 && c != '"' && c != '\\' {
				i++
				continue
			}
			dst = append(dst, s[start:i]...)
			switch c {
			case '"', '\\':
				dst = append(dst, '\\', c)
			case '\n':
				dst = append(dst, '\\', 'n')
			case '\r':
				dst = append(dst, '\\', 'r')
			case '\t':
				dst = append(dst, '\\', 't')
			case '\b':
				dst = append(dst, '\\', 'b')
			case '\f':
				dst = append(dst, '\\', 'f')
			default:
				dst = append(dst, '\\', 'u', '0', '0', hexDigits[c>>4], hexDigits[c&0xf])
			}
			i++
			start = i
			continue
		}
		r, size := utf8.DecodeRuneInString(s[i:])
		if r == utf8.RuneError && size == 1 {
			dst = append(dst, s[start:i]...)
			dst = append(dst, `\ufffd`...)
			i++
			start = i
			continue
		}
		if r == '\u2028' || r == '\u2029' {
			dst = append(dst, s[start:i]...)
			dst = append(dst, '\\', 'u', '2', '0', '2', hexDigits[r&0xf])
			i += size
			start = i
			continue
		}
		i += size
	}
	dst = append(dst, s[start:]...)
	return append(dst, '"')
}
