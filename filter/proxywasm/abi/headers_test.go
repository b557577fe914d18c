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

// decoders are the two decoders, which accept and refuse the same inputs.
var decoders = []struct {
	name   string
	decode func([]byte) ([]Header, error)
}{
	{"DecodeHeaders", DecodeHeaders},
	{"DecodeHeadersView", func(b []byte) ([]Header, error) { return DecodeHeadersView(nil, b) }},
}

func TestDecodeHeadersMalformed(t *testing.T) {
	good := EncodeHeaders([]Header{{":path", "/v1"}, {"x", ""}})
	for _, d := range decoders {
		for i := 1; i < len(good); i++ {
			if _, err := d.decode(good[:i]); !errors.Is(err, ErrBadHeaderMap) && i != 1 {
				t.Fatalf("%s: truncated at %d: err = %v", d.name, i, err)
			}
		}
		huge := []byte{0xff, 0xff, 0xff, 0x7f, 1, 2, 3}
		if _, err := d.decode(huge); !errors.Is(err, ErrBadHeaderMap) {
			t.Fatalf("%s: huge count: err = %v", d.name, err)
		}
		bad := append([]byte(nil), good...)
		bad[len(bad)-1] = 'x' // missing NUL terminator
		if _, err := d.decode(bad); !errors.Is(err, ErrBadHeaderMap) {
			t.Fatalf("%s: missing NUL: err = %v", d.name, err)
		}
	}
}

// TestDecodeHeadersViewAliases: the view decodes what DecodeHeaders does,
// reuses dst and aliases its input (a change to the input shows), while
// DecodeHeaders owns its strings.
func TestDecodeHeadersViewAliases(t *testing.T) {
	want := []Header{{":path", "/v1/chat/completions"}, {"content-type", "application/json"}, {"x-empty", ""}}
	enc := EncodeHeaders(want)
	owned, err := DecodeHeaders(enc)
	if err != nil {
		t.Fatal(err)
	}
	dst := make([]Header, 1, 8)
	view, err := DecodeHeadersView(dst, enc)
	if err != nil {
		t.Fatal(err)
	}
	if len(view) != len(want) || &view[0] != &dst[:1][0] {
		t.Fatalf("view = %q, want %q in dst's array", view, want)
	}
	for i := range want {
		if view[i] != want[i] || owned[i] != want[i] {
			t.Fatalf("header %d: view %q, owned %q, want %q", i, view[i], owned[i], want[i])
		}
	}
	i := bytes.Index(enc, []byte("/v1"))
	enc[i+1] = 'V'
	if view[0][1] != "/V1/chat/completions" || owned[0][1] != "/v1/chat/completions" {
		t.Fatalf("after changing the input: view %q, owned %q", view[0][1], owned[0][1])
	}
}

func TestPropertyPath(t *testing.T) {
	if got := string(PropertyPath("request", "path")); got != "request\x00path" {
		t.Fatalf("PropertyPath = %q", got)
	}
}
