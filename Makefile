# Herald's build and test entry points. `make test` is what CI runs
# (.ci/run); it installs what the tests need and runs every test.

GO        ?= go
BIN       := bin/herald
# The load tool, a binary of its own so that herald never links it.
BENCH_BIN := bin/herald-bench
FUZZTIME  ?= 5s
E2E_DIR   := test/e2e
STATICCHECK_VERSION := v0.8.2
# The dashboard's browser tests drive Debian's Chromium (playwright-core
# never downloads a browser).
CHROMIUM  := /usr/bin/chromium
# Herald's own packages: third_party/ holds patched copies of upstream code
# (built, but linted and tested upstream; our tests of the patches are in
# internal/transport).
GOPKGS    := ./cmd/... ./internal/... ./bench/...
SUDO      := $(shell [ "$$(id -u)" = 0 ] || echo sudo)
# The Laravel redis broadcaster test runs Laravel itself, from Debian's
# packages (Composer packages cannot be installed here).
LARAVEL   := /usr/share/php/Illuminate/autoload.php
# Stamped into the binary (`herald version`); the Dockerfile takes it as a build arg.
VERSION   ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo dev)
# Debian packages the deployment tests run: podman/buildah (container image),
# nginx and caddy (proxy e2e test), supervisor, systemd (systemd-analyze), openssl.
DEPLOY_TOOLS := podman:podman buildah:buildah nginx:nginx caddy:caddy supervisord:supervisor systemd-analyze:systemd openssl:openssl

.PHONY: all build test lint unit fuzz e2e e2e-deps e2e-browser e2e-laravel e2e-psql deploy-deps deploy-test manifests bench bench-cluster clean

all: build

## build: the static server binary, built as the Dockerfile builds it, and the load tool beside it.
build:
	CGO_ENABLED=0 $(GO) build -trimpath -ldflags "-s -w -X main.version=$(VERSION)" -o $(BIN) ./cmd/herald
	CGO_ENABLED=0 $(GO) build -trimpath -ldflags "-s -w" -o $(BENCH_BIN) ./cmd/herald-bench

## test: everything CI runs: lint, Go tests with -race, fuzz targets, end-to-end tests, deployment tests.
test: lint unit fuzz e2e deploy-test

lint:
	@out=$$(gofmt -l cmd internal test sdk deploy 2>/dev/null); if [ -n "$$out" ]; then echo "gofmt needed:"; echo "$$out"; exit 1; fi
	$(GO) vet $(GOPKGS)
	$(GO) run honnef.co/go/tools/cmd/staticcheck@$(STATICCHECK_VERSION) $(GOPKGS)
	cd sdk && $(GO) vet ./... && $(GO) run honnef.co/go/tools/cmd/staticcheck@$(STATICCHECK_VERSION) ./...
	@# macOS (kqueue) and Windows builds must keep compiling: developers run them.
	GOOS=darwin $(GO) build ./...
	GOOS=darwin $(GO) vet $(GOPKGS)
	GOOS=windows $(GO) build ./...
	GOOS=windows $(GO) vet $(GOPKGS)

unit:
	$(GO) test -race -count=1 $(GOPKGS)
	cd sdk && $(GO) test -race -count=1 ./...

## fuzz: every Fuzz target for FUZZTIME each (seed corpora also run in `unit`).
fuzz:
	FUZZTIME=$(FUZZTIME) GO=$(GO) scripts/fuzz.sh

e2e-deps:
	cd $(E2E_DIR) && npm ci --no-audit --no-fund

## e2e-browser: Debian's chromium for tests/dashboard.test.mjs, when missing.
e2e-browser:
	@if [ ! -x $(CHROMIUM) ]; then \
		echo "installing chromium (apt-get)"; \
		$(SUDO) apt-get update -qq && $(SUDO) env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium; \
	fi

## e2e-laravel: php-cli, Laravel and phpredis for tests/laravel-redis.test.mjs, when missing.
e2e-laravel:
	@if [ ! -f $(LARAVEL) ] || ! command -v php >/dev/null || ! php -m 2>/dev/null | grep -qx redis; then \
		echo "installing php-cli php-laravel-framework php-redis (apt-get)"; \
		$(SUDO) apt-get update -qq && $(SUDO) env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq php-cli php-laravel-framework php-redis; \
	fi

## e2e-psql: the PostgreSQL client for tests/apps-store.test.mjs (schema per run), when missing.
e2e-psql:
	@if ! command -v psql >/dev/null; then \
		echo "installing postgresql-client (apt-get)"; \
		$(SUDO) apt-get update -qq && $(SUDO) env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq postgresql-client; \
	fi

e2e: build e2e-deps e2e-browser e2e-laravel e2e-psql deploy-deps
	cd $(E2E_DIR) && HERALD_BIN=$(CURDIR)/$(BIN) npm test

## deploy-deps: the Debian packages of DEPLOY_TOOLS whose command is missing.
deploy-deps:
	@missing=""; for t in $(DEPLOY_TOOLS); do cmd=$${t%%:*}; pkg=$${t#*:}; \
		command -v $$cmd >/dev/null 2>&1 || [ -x /usr/sbin/$$cmd ] || missing="$$missing $$pkg"; done; \
	if [ -n "$$missing" ]; then \
		echo "installing$$missing (apt-get)"; \
		$(SUDO) apt-get update -qq && $(SUDO) env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $$missing; \
	fi

## deploy-test: the Dockerfile (built and run with podman), the Helm chart and
## manifests, Compose, systemd and Supervisor files (deploy/test, a module of
## its own so that Helm and Kubernetes stay out of Herald's go.mod). It checks
## files and runs the binary, so it skips -race (none of Herald's code is in it).
deploy-test: build deploy-deps
	cd deploy/test && $(GO) vet ./... && $(GO) run honnef.co/go/tools/cmd/staticcheck@$(STATICCHECK_VERSION) ./...
	cd deploy/test && HERALD_BIN=$(CURDIR)/$(BIN) $(GO) test -count=1 ./...

## manifests: rewrite deploy/kubernetes/herald.yaml from the Helm chart.
manifests:
	cd deploy/test && UPDATE_MANIFESTS=1 $(GO) test -count=1 -run TestManifestsMatchChart .

## bench: short forms of the load scenarios (bin/herald-bench) against a fresh bin/herald (bench/README.md has the full ones).
bench: build
	HERALD_BIN=$(CURDIR)/$(BIN) HERALD_BENCH_BIN=$(CURDIR)/$(BENCH_BIN) bench/run.sh

## bench-cluster: the fanout scenarios across three nodes and a redis-server of their own.
bench-cluster: build
	HERALD_BIN=$(CURDIR)/$(BIN) HERALD_BENCH_BIN=$(CURDIR)/$(BENCH_BIN) bench/cluster.sh

clean:
	rm -rf bin $(E2E_DIR)/node_modules
