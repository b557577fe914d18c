package abi

import (
	"encoding/binary"
	"errors"
	"unsafe"
)

// Header is one header pair. Pseudo-headers (":path", ":status", ...) travel in
// the same maps as ordinary headers.
type Header [2]string

// ErrBadHeaderMap reports a header map encoding that is truncated or inconsistent.
var ErrBadHeaderMap = errors.New("abi: malformed header map")

// EncodedSize is the number of bytes EncodeHeaders writes for hs.
func EncodedSize(hs []Header) int {
	n := 4 + 8*len(hs)
	for _, h := range hs {
		n += len(h[0]) + len(h[1]) + 2
	}
	return n
}

// AppendHeaders appends the spec's serialization of hs to dst and returns it:
// a little-endian u32 count, count pairs of (u32 key length, u32 value length),
// then each key and value followed by a NUL byte.
func AppendHeaders(dst []byte, hs []Header) []byte {
	dst = binary.LittleEndian.AppendUint32(dst, uint32(len(hs)))
	for _, h := range hs {
		dst = binary.LittleEndian.AppendUint32(dst, uint32(len(h[0])))
		dst = binary.LittleEndian.AppendUint32(dst, uint32(len(h[1])))
	}
	for _, h := range hs {
		dst = append(dst, h[0]...)
		dst = append(dst, 0)
		dst = append(dst, h[1]...)
		dst = append(dst, 0)
	}
	return dst
}

// EncodeHeaders returns the serialization of hs in a new slice of exactly EncodedSize(hs) bytes.
func EncodeHeaders(hs []Header) []byte {
	return AppendHeaders(make([]byte, 0, EncodedSize(hs)), hs)
}

// DecodeHeaders parses a serialized header map. An empty input, or a single
// NUL byte, is an empty map, as the spec allows. The headers own their
// strings (one copy of b's text holds them all).
func DecodeHeaders(b []byte) ([]Header, error) {
	n, err := headerCount(b)
	if n == 0 || err != nil {
		return nil, err
	}
	// One string holds every key and value; the headers are substrings of
	// it, so decoding allocates twice whatever the number of headers.
	return decodeHeaders(make([]Header, 0, n), b[4:4+8*n], string(b[4+8*n:]))
}

// DecodeHeadersView is DecodeHeaders without copies: the headers are
// appended to dst[:0] and their strings alias b, so they are valid only while
// b is unchanged. It serves a caller that reads a map once and keeps nothing.
func DecodeHeadersView(dst []Header, b []byte) ([]Header, error) {
	n, err := headerCount(b)
	if n == 0 || err != nil {
		return dst[:0], err
	}
	text := b[4+8*n:]
	return decodeHeaders(dst[:0], b[4:4+8*n], unsafe.String(unsafe.SliceData(text), len(text)))
}

// headerCount reads and bounds-checks the pair count of a serialized map.
func headerCount(b []byte) (int, error) {
	if len(b) == 0 || (len(b) == 1 && b[0] == 0) {
		return 0, nil
	}
	if len(b) < 4 {
		return 0, ErrBadHeaderMap
	}
	n := int(binary.LittleEndian.Uint32(b))
	if n > (len(b)-4)/8 {
		return 0, ErrBadHeaderMap
	}
	return n, nil
}

// decodeHeaders appends the pairs that sizes describe, cut from data, to hs.
func decodeHeaders(hs []Header, sizes []byte, data string) ([]Header, error) {
	off := 0
	for i := 0; i+8 <= len(sizes); i += 8 {
		kl := int(binary.LittleEndian.Uint32(sizes[i:]))
		vl := int(binary.LittleEndian.Uint32(sizes[i+4:]))
		if kl < 0 || vl < 0 || kl+vl+2 > len(data)-off {
			return nil, ErrBadHeaderMap
		}
		if data[off+kl] != 0 || data[off+kl+1+vl] != 0 {
			return nil, ErrBadHeaderMap
		}
		hs = append(hs, Header{data[off : off+kl], data[off+kl+1 : off+kl+1+vl]})
		off += kl + vl + 2
	}
	return hs, nil
}

// PropertyPath joins property path segments with NUL, as proxy_get_property and
// proxy_set_property expect.
func PropertyPath(segments ...string) []byte {
	var out []byte
	for i, s := range segments {
		if i > 0 {
			out = append(out, 0)
		}
		out = append(out, s...)
	}
	return out
}
