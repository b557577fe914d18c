//go:build wasip1

// Command panicker is a test module built on filter/proxywasm: its streams
// panic on request, so tests can check that the binding recovers.
package main

import (
	"ai-proxy/filter/proxywasm"
	"ai-proxy/filter/proxywasm/abi"
)

func init() {
	proxywasm.SetRootContextFactory(func(uint32) proxywasm.RootContext { return root{} })
	proxywasm.SetPanicHandler(func(any) {
		_ = proxywasm.SendHttpResponse(500, []abi.Header{{"content-type", "application/json"}},
			[]byte(`{"error":{"message":"internal error","type":"server_error","code":"internal_error"}}`), abi.GRPCStatusNone)
	})
}

func main() {}

type root struct{}

func (root) OnVMStart(int) bool { return true }
func (root) OnPluginStart(int) bool {
	conf, _ := proxywasm.GetPluginConfiguration()
	return string(conf) != "reject"
}
func (root) OnTick()                                     {}
func (root) NewHttpContext(uint32) proxywasm.HttpContext { return &stream{} }

type stream struct {
	proxywasm.DefaultHttpContext
}

func (s *stream) OnHttpRequestHeaders(int, bool) abi.Action {
	mode, _ := proxywasm.GetHeader(abi.MapHTTPRequestHeaders, "x-mode")
	switch mode {
	case "panic":
		var m map[string]int
		m["boom"] = 1 // nil map write: a runtime panic
	case "call":
		_, err := proxywasm.DispatchHttpCall("llm", []abi.Header{{":method", "POST"}, {":path", "/"}, {":authority", "llm"}}, nil, 1000,
			func(numHeaders, bodySize, _ int) {
				if numHeaders == 0 {
					panic("call failed")
				}
				body, _ := proxywasm.GetCallResponseBody(bodySize)
				_ = proxywasm.SendHttpResponse(200, nil, body, abi.GRPCStatusNone)
			})
		if err != nil {
			panic(err)
		}
		return abi.ActionPause
	}
	_ = proxywasm.ReplaceHeader(abi.MapHTTPRequestHeaders, "x-seen", "1")
	return abi.ActionContinue
}
