// Package deploy holds no code: it is the home of the deployment files of
// ai-proxy and of their tests.
//
//   - istio/: the WasmPlugin of the first documented example, the
//     ServiceEntry and DestinationRule of the provider, and the ingress
//     Gateway and VirtualService of the route. The tests decode them with
//     Istio's own API types (istio.io/client-go objects, istio.io/api specs
//     through protojson, unknown fields rejected) and check that the plugin
//     configuration passes ai-proxy/filter/config.Parse.
//   - apisix/: the wasm section of APISIX's config.yaml and the Admin API
//     route of the first example (route.json, route.sh). The tests check
//     them and run the example through build/gateway -profile apisix.
//   - the docker-compose setup under e2e/ (docker-compose.yaml,
//     compose/envoy.yaml, docker/*.Dockerfile, compose-test.sh): the tests
//     check what can be checked without a Docker engine, and run
//     compose-test.sh against build/gateway on the compose Envoy
//     configuration.
//   - every Envoy bootstrap of the repository validates against Envoy's
//     schema (harness/bootstrap).
//
// Run `make build` first: tests that need build/ai-proxy.wasm or
// build/gateway fail, and do not skip, when they are missing.
package deploy
