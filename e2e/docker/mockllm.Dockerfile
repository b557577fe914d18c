# The mockllm service of e2e/docker-compose.yaml: ai-proxy/e2e/cmd/mockllm, a
# static Go binary on distroless. Build context: the repository root.
#
#   docker build -f e2e/docker/mockllm.Dockerfile -t ai-proxy-mockllm .
FROM golang:1.26-bookworm AS build
WORKDIR /src
COPY go.mod go.sum ./
COPY e2e/mockllm/ e2e/mockllm/
COPY e2e/serve/ e2e/serve/
COPY e2e/cmd/mockllm/ e2e/cmd/mockllm/
RUN CGO_ENABLED=0 go build -trimpath -ldflags='-s -w' -o /out/mockllm ./e2e/cmd/mockllm

FROM gcr.io/distroless/static-debian12:nonroot
COPY --from=build /out/mockllm /mockllm
EXPOSE 8080
ENTRYPOINT ["/mockllm", "-addr", ":8080"]
