// Package e2e holds the end-to-end tests of ai-proxy. They are black-box: each
// test writes an Envoy bootstrap, starts build/gateway on it (with
// build/ai-proxy.wasm as the filter), and talks HTTP to it, with a mock LLM
// (e2e/mockllm) and an httpbin-like echo (e2e/echo) as the upstreams, all on
// 127.0.0.1. They rely only on CONTRACT.md: the gateway CLI, the bootstrap
// subset, the plugin configuration and the errors the client sees.
//
// Run `make build` first (`make test` does): the tests fail, and do not skip,
// when build/ai-proxy.wasm or build/gateway is missing.
package e2e
