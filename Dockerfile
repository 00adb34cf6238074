# Herald's container image: a static binary on an empty base.
#
#   docker build --build-arg VERSION=$(git describe --tags --always) -t herald .
#   docker run -p 6001:6001 herald
#
# The builder stage compiles a static binary (no cgo, paths trimmed, the
# version stamped for `herald version`); the image itself is FROM scratch:
# the binary (dashboard embedded), CA certificates for rediss://, https
# webhooks and ACME, and nothing else. docs/deploy.md explains the settings.
# deploy/test/container_test.go builds the final stage below with podman.

ARG GO_VERSION=1.26

FROM golang:${GO_VERSION}-bookworm AS build
WORKDIR /src
COPY go.mod go.sum ./
# go.mod replaces nbio with the patched copy here (third_party/README.md).
COPY third_party ./third_party
RUN go mod download
COPY cmd ./cmd
COPY internal ./internal
ARG VERSION=dev
RUN CGO_ENABLED=0 go build -trimpath -ldflags "-s -w -X main.version=${VERSION}" -o /out/herald ./cmd/herald \
 && /out/herald version

# The image. Everything from here to the end is what the container test
# builds (with its own "build" stage holding a binary from go build).
FROM scratch AS image
ARG VERSION=dev
LABEL org.opencontainers.image.title="Herald" \
      org.opencontainers.image.description="Self-hosted realtime server speaking the Pusher Channels protocol (Laravel broadcasting, Echo, pusher-js)" \
      org.opencontainers.image.source="https://github.com/herald-ws/herald" \
      org.opencontainers.image.documentation="https://github.com/herald-ws/herald/blob/main/docs/deploy.md" \
      org.opencontainers.image.licenses="MIT" \
      org.opencontainers.image.version="${VERSION}"
COPY --from=build /etc/ssl/certs/ca-certificates.crt /etc/ssl/certs/ca-certificates.crt
COPY --from=build /out/herald /herald
# 65532 is the "nonroot" user of distroless images; no shell or passwd needed.
USER 65532:65532
# Listen on every interface inside the container; the port is the default.
ENV HERALD_HOST=0.0.0.0 \
    HERALD_PORT=6001 \
    HERALD_LOG_FORMAT=json
# 6001: WebSocket, HTTP API, /up, /ready (and /metrics unless metrics_addr
# moves it, e.g. HERALD_METRICS_ADDR=:9090).
EXPOSE 6001
# No curl in the image: the binary checks its own /up (HERALD_PORT, or the
# port of HERALD_METRICS_ADDR when set).
HEALTHCHECK --interval=10s --timeout=3s --start-period=5s --retries=3 CMD ["/herald", "health"]
# SIGTERM drains (clients get 4200 and reconnect elsewhere) for
# shutdown_timeout: give `docker stop -t` at least that plus a few seconds.
STOPSIGNAL SIGTERM
ENTRYPOINT ["/herald"]
CMD ["serve"]
