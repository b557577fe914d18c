// Command ocitool packages build/ai-proxy.wasm as the OCI image Istio's
// WasmPlugin and Envoy Gateway pull (see package ai-proxy/harness/oci), and
// pushes it:
//
//	ocitool build [-wasm FILE] [-o FILE] [-tag TAG]
//	ocitool push  [-layout FILE] [-insecure] REGISTRY/REPOSITORY:TAG
//
// build writes an OCI image-layout tarball (default build/ai-proxy-oci.tar)
// and checks it by reading it back. push sends the image of such a tarball
// to a registry with the Docker credentials (DOCKER_CONFIG or
// ~/.docker/config.json) and prints the pushed reference with its digest;
// -insecure allows plain HTTP (localhost and 127.0.0.1 always may).
// Errors are one line "ocitool: reason" and exit status 1 (2 for usage).
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"

	"ai-proxy/harness/oci"
)

// Defaults of the flags: the artifacts of make build and make oci.
const (
	defaultWasm   = "build/ai-proxy.wasm"
	defaultLayout = "build/ai-proxy-oci.tar"
	defaultTag    = "latest"
)

// Exit codes.
const (
	exitOK    = 0
	exitFail  = 1
	exitUsage = 2
)

const usage = `usage:
  ocitool build [-wasm FILE] [-o FILE] [-tag TAG]
  ocitool push  [-layout FILE] [-insecure] REGISTRY/REPOSITORY:TAG`

func main() {
	os.Exit(run(context.Background(), os.Args[1:], os.Stdout, os.Stderr))
}

// errUsage marks command-line errors.
var errUsage = errors.New("usage")

// run is the command; it returns the exit code.
func run(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	var err error
	switch {
	case len(args) == 0:
		err = fmt.Errorf("%w: no command", errUsage)
	case args[0] == "build":
		err = build(args[1:], stdout)
	case args[0] == "push":
		err = push(ctx, args[1:], stdout)
	default:
		err = fmt.Errorf("%w: unknown command %q", errUsage, args[0])
	}
	if err == nil {
		return exitOK
	}
	fmt.Fprintf(stderr, "ocitool: %s\n", strings.Join(strings.Fields(err.Error()), " "))
	if errors.Is(err, errUsage) {
		fmt.Fprintln(stderr, usage)
		return exitUsage
	}
	return exitFail
}

func flags(name string) *flag.FlagSet {
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	return fs
}

func parse(fs *flag.FlagSet, args []string) error {
	if err := fs.Parse(args); err != nil {
		return fmt.Errorf("%w: %v", errUsage, err)
	}
	return nil
}

// build writes the layout tarball of the module, then reads it back and
// checks that its module layer is the module.
func build(args []string, stdout io.Writer) error {
	fs := flags("build")
	wasm := fs.String("wasm", defaultWasm, "the module")
	out := fs.String("o", defaultLayout, "the OCI image-layout tarball to write")
	tag := fs.String("tag", defaultTag, "the tag recorded in index.json")
	if err := parse(fs, args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("%w: unexpected argument %q", errUsage, fs.Arg(0))
	}
	module, err := os.ReadFile(*wasm)
	if err != nil {
		if errors.Is(err, os.ErrNotExist) {
			return fmt.Errorf("%s is missing: run make build first", *wasm)
		}
		return err
	}
	img, err := oci.NewImage(module, oci.DefaultRuntimeConfig())
	if err != nil {
		return fmt.Errorf("%s: %w", *wasm, err)
	}
	if err := os.MkdirAll(filepath.Dir(*out), 0o755); err != nil {
		return err
	}
	tmp, err := os.CreateTemp(filepath.Dir(*out), ".ocitool-*")
	if err != nil {
		return err
	}
	defer os.Remove(tmp.Name())
	if err := oci.WriteLayout(tmp, img, *tag); err != nil {
		tmp.Close()
		return fmt.Errorf("%s: %w", *out, err)
	}
	if err := tmp.Close(); err != nil {
		return err
	}
	if err := check(tmp.Name(), module); err != nil {
		return fmt.Errorf("%s: %w", *out, err)
	}
	if err := os.Chmod(tmp.Name(), 0o644); err != nil {
		return err
	}
	if err := os.Rename(tmp.Name(), *out); err != nil {
		return err
	}
	d, err := img.Digest()
	if err != nil {
		return err
	}
	fmt.Fprintf(stdout, "ocitool: wrote %s (%s:%s, %s, module %d bytes)\n", *out, filepath.Base(*wasm), *tag, d, len(module))
	return nil
}

// check reads the tarball back and compares its module layer with module.
func check(path string, module []byte) error {
	f, err := os.Open(path)
	if err != nil {
		return err
	}
	defer f.Close()
	l, err := oci.ReadLayout(f)
	if err != nil {
		return err
	}
	defer l.Close()
	got, err := oci.Module(l.Image)
	if err != nil {
		return err
	}
	if string(got) != string(module) {
		return errors.New("the module layer read back differs from the module")
	}
	return nil
}

// push sends the layout's image to the reference.
func push(ctx context.Context, args []string, stdout io.Writer) error {
	fs := flags("push")
	path := fs.String("layout", defaultLayout, "the OCI image-layout tarball to push")
	insecure := fs.Bool("insecure", false, "allow plain HTTP to the registry")
	if err := parse(fs, args); err != nil {
		return err
	}
	if fs.NArg() != 1 || fs.Arg(0) == "" {
		return fmt.Errorf("%w: push takes one image reference (IMAGE=registry/repository:tag)", errUsage)
	}
	ref, err := oci.ParseReference(fs.Arg(0), *insecure)
	if err != nil {
		return err
	}
	f, err := os.Open(*path)
	if err != nil {
		if errors.Is(err, os.ErrNotExist) {
			return fmt.Errorf("%s is missing: run make oci first", *path)
		}
		return err
	}
	defer f.Close()
	l, err := oci.ReadLayout(f)
	if err != nil {
		return fmt.Errorf("%s: %w", *path, err)
	}
	defer l.Close()
	if _, err := oci.Module(l.Image); err != nil {
		return fmt.Errorf("%s: %w", *path, err)
	}
	d, err := oci.Push(ref, l.Image, oci.RemoteOptions(ctx)...)
	if err != nil {
		return err
	}
	fmt.Fprintf(stdout, "ocitool: pushed %s@%s\n", ref.Context().Name(), d)
	fmt.Fprintf(stdout, "ocitool: WasmPlugin url: oci://%s\n", ref.Name())
	return nil
}
