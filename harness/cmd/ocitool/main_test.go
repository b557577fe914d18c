package main

import (
	"bytes"
	"context"
	"io"
	"log"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-containerregistry/pkg/registry"

	"ai-proxy/harness/oci"
)

// TestBuildPush runs the commands of make oci and make push: build a
// layout tarball from a module, push it to an in-process registry, and pull
// back the same module.
func TestBuildPush(t *testing.T) {
	dir := t.TempDir()
	module := append([]byte("\x00asm\x01\x00\x00\x00"), "a module"...)
	wasm := filepath.Join(dir, "m.wasm")
	if err := os.WriteFile(wasm, module, 0o644); err != nil {
		t.Fatal(err)
	}
	tarball := filepath.Join(dir, "out", "m-oci.tar")
	var out, errb bytes.Buffer
	if code := run(context.Background(), []string{"build", "-wasm", wasm, "-o", tarball, "-tag", "v2"}, &out, &errb); code != exitOK {
		t.Fatalf("build exit %d: %s", code, errb.String())
	}
	if !strings.Contains(out.String(), "wrote "+tarball) {
		t.Errorf("build printed %q", out.String())
	}
	st, err := os.Stat(tarball)
	if err != nil || st.Mode().Perm() != 0o644 {
		t.Fatalf("tarball: %v %v", st, err)
	}
	if left, _ := filepath.Glob(filepath.Join(dir, "out", ".ocitool-*")); len(left) != 0 {
		t.Errorf("temporary files left: %v", left)
	}

	srv := httptest.NewServer(registry.New(registry.Logger(log.New(io.Discard, "", 0))))
	defer srv.Close()
	image := strings.TrimPrefix(srv.URL, "http://") + "/ai-proxy:v2"
	out.Reset()
	errb.Reset()
	if code := run(context.Background(), []string{"push", "-layout", tarball, image}, &out, &errb); code != exitOK {
		t.Fatalf("push exit %d: %s", code, errb.String())
	}
	if !strings.Contains(out.String(), "url: oci://"+image) {
		t.Errorf("push printed %q", out.String())
	}
	ref, err := oci.ParseReference(image, false)
	if err != nil {
		t.Fatal(err)
	}
	img, err := oci.Pull(ref, oci.RemoteOptions(context.Background())...)
	if err != nil {
		t.Fatal(err)
	}
	got, err := oci.Module(img)
	if err != nil || !bytes.Equal(got, module) {
		t.Errorf("pulled module %q, %v; want %q", got, err, module)
	}
}

func TestErrors(t *testing.T) {
	dir := t.TempDir()
	notWasm := filepath.Join(dir, "x.wasm")
	if err := os.WriteFile(notWasm, []byte("hello"), 0o644); err != nil {
		t.Fatal(err)
	}
	cases := []struct {
		name string
		args []string
		code int
		want string
	}{
		{"no command", nil, exitUsage, "ocitool: usage: no command"},
		{"unknown command", []string{"pull"}, exitUsage, `unknown command "pull"`},
		{"bad flag", []string{"build", "-nope"}, exitUsage, "flag provided but not defined: -nope"},
		{"missing module", []string{"build", "-wasm", filepath.Join(dir, "none.wasm"), "-o", filepath.Join(dir, "o.tar")}, exitFail, "none.wasm is missing: run make build first"},
		{"not a module", []string{"build", "-wasm", notWasm, "-o", filepath.Join(dir, "o.tar")}, exitFail, "not a WebAssembly module"},
		{"push without image", []string{"push"}, exitUsage, "push takes one image reference"},
		{"push bad reference", []string{"push", "UPPER/Case:tag"}, exitFail, `image reference "UPPER/Case:tag"`},
		{"push missing layout", []string{"push", "-layout", filepath.Join(dir, "none.tar"), "127.0.0.1:1/x:y"}, exitFail, "none.tar is missing: run make oci first"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			var out, errb bytes.Buffer
			code := run(context.Background(), tc.args, &out, &errb)
			first, _, _ := strings.Cut(errb.String(), "\n")
			if code != tc.code || !strings.Contains(first, tc.want) || !strings.HasPrefix(first, "ocitool: ") {
				t.Errorf("exit %d, stderr %q; want exit %d and a first line containing %q", code, errb.String(), tc.code, tc.want)
			}
		})
	}
}
