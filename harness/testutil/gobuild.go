package testutil

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
)

// GoTool returns the go command: the one on PATH (go test puts its own
// toolchain's bin directory first), else the one of the toolchain that built
// the test.
func GoTool() string {
	if p, err := exec.LookPath("go"); err == nil {
		return p
	}
	return filepath.Join(runtime.GOROOT(), "bin", "go")
}

// Build compiles the package pkg (as go build takes it, relative to the
// working directory) for the host into the executable out.
func Build(pkg, out string) error {
	return goBuild(nil, "-o", out, pkg)
}

// BuildWasm compiles the package pkg for GOOS=wasip1 GOARCH=wasm as a reactor
// (-buildmode=c-shared) into the module out.
func BuildWasm(pkg, out string) error {
	return goBuild([]string{"GOOS=wasip1", "GOARCH=wasm"}, "-buildmode=c-shared", "-o", out, pkg)
}

// BuildWasmBytes is BuildWasm into a temporary file, and returns the module.
func BuildWasmBytes(pkg string) ([]byte, error) {
	dir, err := os.MkdirTemp("", "testutil-wasm-")
	if err != nil {
		return nil, err
	}
	defer os.RemoveAll(dir)
	out := filepath.Join(dir, "module.wasm")
	if err := BuildWasm(pkg, out); err != nil {
		return nil, err
	}
	return os.ReadFile(out)
}

// goBuild runs go build with args, with the environment's GOFLAGS cleared
// and env added; its error carries the command's output.
func goBuild(env []string, args ...string) error {
	cmd := exec.Command(GoTool(), append([]string{"build"}, args...)...)
	cmd.Env = append(append(os.Environ(), "GOFLAGS="), env...)
	if out, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("go build %v: %w\n%s", args, err, out)
	}
	return nil
}
