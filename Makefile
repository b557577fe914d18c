# ai-proxy: an LLM gateway as one proxy-wasm filter in Go, plus a wazero-based
# gateway that hosts it. See README.md.

GO           ?= go
BUILD        := build
WASM         := $(BUILD)/ai-proxy.wasm
GATEWAY      := $(BUILD)/gateway
TEST_TIMEOUT ?= 10m
MOCK_LLM     ?= 127.0.0.1:18081
OCI          := $(BUILD)/ai-proxy-oci.tar
OCI_TAG      ?= latest
IMAGE        ?=
# WASM_BUILD builds a Go package as a wasip1 reactor module: add -o FILE PKG.
WASM_BUILD    = GOOS=wasip1 GOARCH=wasm $(GO) build -buildmode=c-shared -trimpath -ldflags='-s -w'

.PHONY: all build test run bench lint check clean
.PHONY: oci push

all: build

## build: build/ai-proxy.wasm (the filter, standard Go wasip1 reactor) and build/gateway
build:
	@mkdir -p $(BUILD)
	$(WASM_BUILD) -o $(WASM) ./filter
	$(GO) build -o $(GATEWAY) ./harness/cmd/gateway

## test: every test (unit, harness, e2e through build/gateway)
test: build
	$(GO) test -count=1 -timeout $(TEST_TIMEOUT) ./...

## run: the gateway on 127.0.0.1:9080 with the seed's first example; the embedded
## mock LLM, or the real OpenAI API when OPENAI_API_KEY is set
run: build
	@if [ -n "$$OPENAI_API_KEY" ]; then \
		umask 077; \
		awk '{ gsub(/__OPENAI_API_KEY__/, ENVIRON["OPENAI_API_KEY"]); print }' run/openai.yaml > $(BUILD)/run-openai.yaml; \
		config=$(BUILD)/run-openai.yaml; mock=""; \
		echo "ai-proxy: OPENAI_API_KEY is set: talking to api.openai.com"; \
	else \
		config=run/gateway.yaml; mock="-mock-llm $(MOCK_LLM)"; \
		echo "ai-proxy: mock LLM on $(MOCK_LLM) (set OPENAI_API_KEY to talk to OpenAI)"; \
	fi; \
	echo "ai-proxy: listening on http://127.0.0.1:9080 (admin http://127.0.0.1:9901); try:"; \
	echo ""; \
	echo "  curl http://127.0.0.1:9080/anything -X POST -H 'Content-Type: application/json' -H 'Host: api.openai.com:443' -d '{\"messages\":[{\"role\":\"system\",\"content\":\"You are a mathematician\"},{\"role\":\"user\",\"content\":\"What is 1+1?\"}]}'"; \
	echo ""; \
	exec ./$(GATEWAY) -config $$config $$mock

## oci: build/ai-proxy-oci.tar, an OCI image layout holding build/ai-proxy.wasm as
## Istio's WasmPlugin and Envoy Gateway pull it (Wasm image spec, "oci" variant)
oci: build
	$(GO) run ./harness/cmd/ocitool build -wasm $(WASM) -o $(OCI) -tag $(OCI_TAG)

## push: push build/ai-proxy-oci.tar to IMAGE=registry/repository:tag, with the
## Docker credentials (DOCKER_CONFIG or ~/.docker/config.json)
push:
	@if [ -z "$(IMAGE)" ]; then echo "usage: make push IMAGE=registry/repository:tag"; exit 2; fi
	@$(MAKE) --no-print-directory oci
	$(GO) run ./harness/cmd/ocitool push -layout $(OCI) $(IMAGE)

## bench: the benchmark suite (harness/cmd/aibench): the gateway with and without
## the filter side by side, the filter's cost in the harness, memory, start-up;
## writes build/bench.json and prints the table. BENCH_FLAGS adds flags, e.g.
## BENCH_FLAGS='-inprocess -cpuprofile build/bench.pprof' or '-quick'.
BENCH_FLAGS ?=
bench: build
	$(WASM_BUILD) -o $(BUILD)/wasmbench.wasm ./filter/shape/testdata/wasmbench
	$(GO) build -o $(BUILD)/aibench ./harness/cmd/aibench
	./$(BUILD)/aibench -gateway $(GATEWAY) -wasm $(WASM) -shape-wasm $(BUILD)/wasmbench.wasm -out $(BUILD)/bench.json $(BENCH_FLAGS)

## lint: go vet (native and wasip1) and gofmt
lint:
	$(GO) vet ./...
	GOOS=wasip1 GOARCH=wasm $(GO) vet ./filter/...
	@out="$$(gofmt -l .)"; if [ -n "$$out" ]; then echo "gofmt -l:"; echo "$$out"; exit 1; fi

## check: lint, then fail if go mod tidy or anything else leaves the tree dirty
check: lint
	$(GO) mod tidy
	git diff --exit-code

clean:
	rm -rf $(BUILD)
