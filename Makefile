# trustgate — see README.md. Every target works on a fresh clone.

GO            ?= go
BIN           := bin/trustgate
TOOLS         := $(CURDIR)/bin/tools
STATICCHECK   := $(TOOLS)/staticcheck
STATICCHECK_VERSION := v0.8.2
VERSION       ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo dev)
# The authorization core's tests run under the race detector; the rest (end-to-end tests
# among them) run without it.
RACE_PKGS     := ./schema/... ./store/... ./authzserver/... ./gateway/...
RACE_PATTERN  := /(schema|store|authzserver|gateway)(/|$$)

.PHONY: build run test test-race test-rest lint fmt tools clean fuzz bench bench-smoke screenshots cluster cluster-down cluster-test image

build:
	$(GO) build -ldflags "-X main.version=$(VERSION)" -o $(BIN) ./cmd/trustgate

## run: the gateway on the embedded default (SQLite in ./data, in-process SpiceDB).
run: build
	@echo "trustgate: serving on http://127.0.0.1:8080 (data in ./data; Ctrl-C stops)"
	./$(BIN) serve

## test: every test (the Go SDK, a module of its own in sdk/, too); the core packages under the
## race detector.
test: tests/ts/node_modules test-race test-rest

## tests/ts/node_modules: the pinned MCP TypeScript SDK for tests/ts_sdk_test.go, installed
## again only when the lockfile changes (the stamp is newer than it otherwise). test-rest
## needs it too, so that `make -j test` does not run the tests before it is installed.
.PHONY: tests/ts/node_modules
tests/ts/node_modules: tests/ts/node_modules/.installed
test-rest: tests/ts/node_modules

tests/ts/node_modules/.installed: tests/ts/package.json tests/ts/package-lock.json
	npm ci --prefix tests/ts --no-audit --no-fund
	touch $@

## screenshots: PNGs of the dashboard's main pages in docs/screenshots, taken by its browser
## tests (headless Chromium, axe-core) on the way through the first session, the seed journey,
## the trust map and Why? pages, Pending approvals and approval rules, and Create server's
## review after a sign-in at the server.
screenshots: tests/ts/node_modules
	mkdir -p docs/screenshots
	TRUSTGATE_SCREENSHOTS=$(CURDIR)/docs/screenshots CI=true $(GO) test -count=1 ./tests/ -run '^TestDashboard(Browser|BrowserTrustMap|BrowserApprovals|BrowserUpstreamSignIn|Journey)$$'

test-race:
	$(GO) test -count=1 -race -timeout 30m $(RACE_PKGS)

# tests/ builds the previous release for the mixed-version test: more than go test's default
# 10 minutes for the package on a busy machine.
test-rest:
	$(GO) test -count=1 -timeout 30m $$($(GO) list ./... | grep -Ev '$(RACE_PATTERN)')
	cd sdk && $(GO) test -count=1 ./...

## fuzz: the JSON-RPC parser of the proxy (alone and against the official Go SDK's decoder), its
## tools/list filter, and the event-stream reader (internal/sse), FUZZTIME each (a duration, or
## a count such as 20000x, which CI uses: see .ci/run).
FUZZTIME ?= 10s
fuzz:
	$(GO) test -run='^$$' -fuzz='^FuzzParseMessage$$' -fuzztime=$(FUZZTIME) ./proxy/
	$(GO) test -run='^$$' -fuzz='^FuzzParseMessageAgreesWithSDK$$' -fuzztime=$(FUZZTIME) ./proxy/
	$(GO) test -run='^$$' -fuzz='^FuzzSSEFilter$$' -fuzztime=$(FUZZTIME) ./proxy/
	$(GO) test -run='^$$' -fuzz='^FuzzReader$$' -fuzztime=$(FUZZTIME) ./internal/sse/

lint: $(STATICCHECK)
	@unformatted="$$(gofmt -l $$(git ls-files '*.go'))"; \
	if [ -n "$$unformatted" ]; then echo "gofmt needed:"; echo "$$unformatted"; exit 1; fi
	$(GO) vet ./...
	$(STATICCHECK) ./...
	cd sdk && $(GO) vet ./... && $(STATICCHECK) ./...

fmt:
	gofmt -w $$(git ls-files '*.go')

tools: $(STATICCHECK)

$(STATICCHECK):
	GOBIN=$(TOOLS) $(GO) install honnef.co/go/tools/cmd/staticcheck@$(STATICCHECK_VERSION)

clean:
	rm -rf bin

## bench: the Go benchmarks of the hot path (BENCHTIME each), then the authorization check's
## scale sweep to 10^5 relationships with its plot in bin/sweep.png (minutes; not in CI, which
## runs bench-smoke). `trustgate bench` for the whole-gateway measurement, see README.
BENCHTIME ?= 1s
SWEEP_SIZES ?= 1000,10000,100000
bench: build
	$(GO) test -run='^$$' -bench=. -benchmem -benchtime=$(BENCHTIME) ./bench/
	./$(BIN) bench --mode sweep --sizes $(SWEEP_SIZES) --plot bin/sweep.png

## bench-smoke: checks that `trustgate bench` and the Go benchmarks run (not their speed).
bench-smoke: build
	./$(BIN) bench --duration 2s --clients 4
	$(GO) test -run='^$$' -bench=. -benchtime=100x ./bench/

## cluster: the production topology on this machine (deploy/local-cluster/cluster.sh): HAProxy
## with /readyz checks, three trustgate replicas on one PostgreSQL store, three SpiceDB nodes
## (built at go.mod's version) with dispatch and TLS; state under CLUSTER_DIR. Not part of
## `make test` (the first SpiceDB build alone takes minutes). cluster-down stops it.
CLUSTER_DIR ?= $(CURDIR)/.cluster
cluster:
	deploy/local-cluster/cluster.sh up $(CLUSTER_DIR)

cluster-down:
	deploy/local-cluster/cluster.sh down $(CLUSTER_DIR)

## cluster-test: the fault run against `make cluster` (load through HAProxy, kill -9 of a replica
## and a SpiceDB node, kill switch across replicas, audit verify); CLUSTER_DURATION long.
CLUSTER_DURATION ?= 60s
cluster-test:
	TRUSTGATE_CLUSTER_ENV=$(CLUSTER_DIR)/cluster.env TRUSTGATE_CLUSTER_DURATION=$(CLUSTER_DURATION) \
		$(GO) test -count=1 -v -run '^TestClusterFaultRun$$' -timeout 30m ./tests/

## image: the container image with Debian's buildah (no daemon; deploy/image/build.sh): the
## Dockerfile where its base images can be pulled, otherwise the same image from scratch (the
## static binary, this machine's CA certificates, user 65532, /data, the health check).
## IMAGE_FROM=dockerfile|scratch chooses; tests/image_test.go builds, inspects and runs it.
image:
	VERSION=$(VERSION) deploy/image/build.sh trustgate:$(VERSION)
