package deploy

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"testing"
)

// Paths of the repository and of the artifacts of make build.
var (
	repoRoot   string
	wasmPath   string // build/ai-proxy.wasm
	gatewayBin string // build/gateway
)

func TestMain(m *testing.M) {
	dir, err := os.Getwd()
	if err != nil {
		fmt.Fprintln(os.Stderr, "deploy:", err)
		os.Exit(2)
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			break
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			fmt.Fprintln(os.Stderr, "deploy: no go.mod above the working directory")
			os.Exit(2)
		}
		dir = parent
	}
	repoRoot = dir
	wasmPath = filepath.Join(dir, "build", "ai-proxy.wasm")
	gatewayBin = filepath.Join(dir, "build", "gateway")
	os.Exit(m.Run())
}

// needBuild fails the test (it does not skip it) when build/ai-proxy.wasm or
// build/gateway is missing.
func needBuild(t *testing.T) {
	t.Helper()
	var errs []error
	for _, p := range []string{wasmPath, gatewayBin} {
		if st, err := os.Stat(p); err != nil || st.IsDir() || st.Size() == 0 {
			rel, _ := filepath.Rel(repoRoot, p)
			errs = append(errs, fmt.Errorf("%s is missing: run make build first", rel))
		}
	}
	if err := errors.Join(errs...); err != nil {
		t.Fatal(err)
	}
}

// repoFile reads a file of the repository.
func repoFile(t *testing.T, rel string) []byte {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(repoRoot, filepath.FromSlash(rel)))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// seedProxyConfig is the ai-proxy configuration of the first example of the
// seed documentation (shared/seed/ai-proxy.md), with the documentation's
// placeholder key.
const seedProxyConfig = `{
  "auth": {"header": {"Authorization": "Bearer sk-your-openai-api-key"}},
  "model": {"provider": "openai", "name": "gpt-4", "options": {"max_tokens": 512, "temperature": 1.0}},
  "passthrough": false
}`

// seedMathBody is the body of the first example's curl.
const seedMathBody = `{
"messages": [
{ "role": "system", "content": "You are a mathematician" },
{ "role": "user", "content": "What is 1+1?" }
]
}`
