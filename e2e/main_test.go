package e2e

import "ai-proxy/internal/testutil"

// checkout is the repository and the artifacts of make build; the tests
// that need the artifacts call its NeedBuild or NeedWasm first.
var checkout = testutil.MustFindCheckout()
