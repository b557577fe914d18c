# The echo service of e2e/docker-compose.yaml: ai-proxy/e2e/cmd/echo, a
# static Go binary on distroless. Build context: the repository root.
#
#   docker build -f e2e/docker/echo.Dockerfile -t ai-proxy-echo .
FROM golang:1.26-bookworm AS build
WORKDIR /src
COPY go.mod go.sum ./
COPY e2e/echo/ e2e/echo/
COPY e2e/serve/ e2e/serve/
COPY e2e/cmd/echo/ e2e/cmd/echo/
RUN CGO_ENABLED=0 go build -trimpath -ldflags='-s -w' -o /out/echo ./e2e/cmd/echo

FROM gcr.io/distroless/static-debian12:nonroot
COPY --from=build /out/echo /echo
EXPOSE 8080
ENTRYPOINT ["/echo", "-addr", ":8080"]
