// Command mockllm serves the mock LLM of ai-proxy/e2e/mockllm (an
// OpenAI-compatible chat-completions API with deterministic answers) over
// plain HTTP, for the docker-compose setup (e2e/docker-compose.yaml):
//
//	mockllm [-addr :8080]
//
// It forgets the requests it records every minute, so that a long-running
// container does not grow. SIGTERM and SIGINT stop it.
package main

import (
	"ai-proxy/e2e/mockllm"
	"ai-proxy/e2e/serve"
)

func main() {
	m := mockllm.New()
	serve.Main("mockllm", m.Handler(), m.Reset)
}
