package deploy

import (
	"os"
	"path/filepath"
	"testing"

	"ai-proxy/harness/testutil"
)

// checkout is the repository and the artifacts of make build; the tests
// that need the artifacts call its NeedBuild or NeedWasm first.
var checkout = testutil.MustFindCheckout()

// repoFile reads a file of the repository.
func repoFile(t *testing.T, rel string) []byte {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(checkout.Root, filepath.FromSlash(rel)))
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
