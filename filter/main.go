// Command filter is the ai-proxy proxy-wasm module (GOOS=wasip1 GOARCH=wasm
// -buildmode=c-shared). It only wires the context types; see filter/aiproxy.
package main

import (
	"ai-proxy/filter/aiproxy"
	"ai-proxy/filter/proxywasm"
)

func init() {
	proxywasm.SetRootContextFactory(aiproxy.NewPlugin)
	proxywasm.SetPanicHandler(aiproxy.OnPanic)
}

func main() {}
