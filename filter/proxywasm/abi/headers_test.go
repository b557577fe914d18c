package abi

import (
	"bytes"
	"errors"
	"testing"
)

// The spec's own example: {a:1, b:22}.
func TestEncodeHeadersSpecExample(t *testing.T) {
	want := []byte{
		2, 0, 0, 0,
		1, 0, 0, 0, 1, 0, 0, 0,
		1, 0, 0, 0, 2, 0, 0, 0,
		'a', 0, '1', 0, 'b', 0, '2', '2', 0,
	}
	hs := []Header{{"a", "1"}, {"b", "22"}}
	got := EncodeHeaders(hs)
	if !bytes.Equal(got, want) {
		t.Fatalf("EncodeHeaders = %v, want %v", got, want)
	}
	if EncodedSize(hs) != len(want) {
		t.Fatalf("EncodedSize = %d, want %d", EncodedSize(hs), len(want))
	}
	back, err := DecodeHeaders(want)
	if err != nil {
		t.Fatal(err)
	}
	if len(back) != 2 || back[0] != hs[0] || back[1] != hs[1] {
		t.Fatalf("DecodeHeaders = %v", back)
	}
}

func TestDecodeHeadersEmptyForms(t *testing.T) {
	for _, in := range [][]byte{nil, {0}, {0, 0, 0, 0}} {
		hs, err := DecodeHeaders(in)
		if err != nil || len(hs) != 0 {
			t.Fatalf("DecodeHeaders(%v) = %v, %v", in, hs, err)
		}
	}
}

func TestDecodeHeadersMalformed(t *testing.T) {
	good := EncodeHeaders([]Header{{":path", "/v1"}, {"x", ""}})
	for i := 1; i < len(good); i++ {
		if _, err := DecodeHeaders(good[:i]); !errors.Is(err, ErrBadHeaderMap) && i != 1 {
			t.Fatalf("truncated at %d: err = %v", i, err)
		}
	}
	huge := []byte{0xff, 0xff, 0xff, 0x7f, 1, 2, 3}
	if _, err := DecodeHeaders(huge); !errors.Is(err, ErrBadHeaderMap) {
		t.Fatalf("huge count: err = %v", err)
	}
	bad := append([]byte(nil), good...)
	bad[len(bad)-1] = 'x' // missing NUL terminator
	if _, err := DecodeHeaders(bad); !errors.Is(err, ErrBadHeaderMap) {
		t.Fatalf("missing NUL: err = %v", err)
	}
}

func TestPropertyPath(t *testing.T) {
	if got := string(PropertyPath("request", "path")); got != "request\x00path" {
		t.Fatalf("PropertyPath = %q", got)
	}
}
