package e2e

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"testing"
)

// Paths of the repository and of the artifacts `make build` writes.
var (
	repoRoot   string
	wasmPath   string // build/ai-proxy.wasm
	gatewayBin string // build/gateway
	// wasmErr and gatewayErr are set when the artifact is missing.
	wasmErr, gatewayErr error
)

func TestMain(m *testing.M) {
	root, err := findRepoRoot()
	if err != nil {
		fmt.Fprintln(os.Stderr, "e2e:", err)
		os.Exit(2)
	}
	repoRoot = root
	wasmPath = filepath.Join(root, "build", "ai-proxy.wasm")
	gatewayBin = filepath.Join(root, "build", "gateway")
	wasmErr = missing(root, wasmPath)
	gatewayErr = missing(root, gatewayBin)
	os.Exit(m.Run())
}

// needBuild fails the test (it does not skip it) when the artifacts of
// `make build` are missing.
func needBuild(t *testing.T) {
	t.Helper()
	if err := errors.Join(wasmErr, gatewayErr); err != nil {
		t.Fatal(err)
	}
}

// needWasm fails the test when build/ai-proxy.wasm is missing.
func needWasm(t *testing.T) {
	t.Helper()
	if wasmErr != nil {
		t.Fatal(wasmErr)
	}
}

// missing returns an error telling to run make build when path is not a
// non-empty file.
func missing(root, path string) error {
	if st, err := os.Stat(path); err == nil && !st.IsDir() && st.Size() > 0 {
		return nil
	}
	rel, _ := filepath.Rel(root, path)
	return fmt.Errorf("%s is missing: run make build first", rel)
}

// findRepoRoot walks up from the working directory to the directory holding go.mod.
func findRepoRoot() (string, error) {
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
			return "", errors.New("no go.mod above the working directory")
		}
		dir = parent
	}
}
