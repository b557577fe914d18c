package e2e

import "ai-proxy/harness/testutil"

// checkout is the repository and the artifacts of make build; the tests
// that need the artifacts call its NeedBuild or NeedWasm first.
var checkout = testutil.MustFindCheckout()
