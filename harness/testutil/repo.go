package testutil

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"

	"testing"
)

// ErrNoRepoRoot is returned when no directory above the working directory
// holds go.mod.
var ErrNoRepoRoot = errors.New("no go.mod above the working directory")

// ErrNotBuilt is wrapped by the errors about a missing artifact of make build.
var ErrNotBuilt = errors.New("run make build first")

// Artifacts of make build, relative to the repository root.
const (
	WasmFile   = "build/ai-proxy.wasm"
	GatewayBin = "build/gateway"
)

// RepoRoot returns the nearest directory holding go.mod at or above the
// working directory (a test's working directory is its package's).
func RepoRoot() (string, error) {
	dir, err := os.Getwd()
	if err != nil {
		return "", err
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			return dir, nil
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", ErrNoRepoRoot
		}
		dir = parent
	}
}

// Artifact returns root/rel (rel slash-separated, such as WasmFile) and, when
// that is not a non-empty regular file, an error "REL is missing: run make
// build first" wrapping ErrNotBuilt.
func Artifact(root, rel string) (string, error) {
	path := filepath.Join(root, filepath.FromSlash(rel))
	if st, err := os.Stat(path); err == nil && st.Mode().IsRegular() && st.Size() > 0 {
		return path, nil
	}
	return path, fmt.Errorf("%s is missing: %w", rel, ErrNotBuilt)
}

// ReadArtifact returns the contents of the artifact rel of the repository
// holding the working directory; see Artifact for its errors.
func ReadArtifact(rel string) ([]byte, error) {
	root, err := RepoRoot()
	if err != nil {
		return nil, err
	}
	path, err := Artifact(root, rel)
	if err != nil {
		return nil, err
	}
	return os.ReadFile(path)
}

// Checkout is the repository checkout the tests run in: its root and the
// paths of the artifacts of make build, which may be missing.
type Checkout struct {
	Root    string
	Wasm    string // WasmFile
	Gateway string // GatewayBin

	wasmErr, gatewayErr error
}

// FindCheckout finds the checkout holding the working directory (see
// RepoRoot). A missing artifact is no error here: NeedBuild and NeedWasm
// report it to the tests that need it.
func FindCheckout() (*Checkout, error) {
	root, err := RepoRoot()
	if err != nil {
		return nil, err
	}
	c := &Checkout{Root: root}
	c.Wasm, c.wasmErr = Artifact(root, WasmFile)
	c.Gateway, c.gatewayErr = Artifact(root, GatewayBin)
	return c, nil
}

// MustFindCheckout is FindCheckout for a test package's variables: it panics
// when the working directory is not in the repository, which go test never
// does.
func MustFindCheckout() *Checkout {
	c, err := FindCheckout()
	if err != nil {
		panic("testutil: " + err.Error())
	}
	return c
}

// NeedBuild fails the test (it does not skip it) when build/ai-proxy.wasm or
// build/gateway is missing.
func (c *Checkout) NeedBuild(tb testing.TB) {
	tb.Helper()
	if err := errors.Join(c.wasmErr, c.gatewayErr); err != nil {
		tb.Fatal(err)
	}
}

// NeedWasm fails the test when build/ai-proxy.wasm is missing.
func (c *Checkout) NeedWasm(tb testing.TB) {
	tb.Helper()
	if c.wasmErr != nil {
		tb.Fatal(c.wasmErr)
	}
}
