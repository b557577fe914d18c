// Command echo serves the httpbin-like echo of ai-proxy/e2e/echo (every
// path answers a JSON description of the request, as httpbin's /anything) over
// plain HTTP, for the docker-compose setup (e2e/docker-compose.yaml):
//
//	echo [-addr :8080]
//
// It forgets the requests it records every minute, so that a long-running
// container does not grow. SIGTERM and SIGINT stop it.
package main

import (
	"ai-proxy/e2e/echo"
	"ai-proxy/e2e/serve"
)

func main() {
	m := echo.New()
	serve.Main("echo", m.Handler(), m.Reset)
}
