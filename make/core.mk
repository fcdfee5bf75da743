# The webhook itself: build, render, unit tests, fuzzing, lint.

GOLANGCI_LINT_VERSION := v2.15.0
GOLANGCI_LINT         := $(BIN)/golangci-lint
FUZZTIME              ?= 60s
# Packages of the main module; the tools modules under hack/tools are separate.
CORE_PKGS := ./cmd/... ./internal/... ./pkg/...

.PHONY: build
build: ## Build the webhook binary into bin/mtls-webhook.
	$(GO) build -o $(BIN)/mtls-webhook ./cmd/webhook

.PHONY: render
render: ## Show what the webhook injects into examples/, without a cluster (the main job for now).
	@for f in examples/*.yaml; do echo "# ---- $$f"; $(GO) run ./cmd/webhook render -f "$$f"; done

.PHONY: test-unit
test-unit: openssl ## Unit, golden and fuzz-seed tests of the webhook packages (race detector on).
	$(GO) test -race -count=1 $(CORE_PKGS)
	$(GO) test -race -count=1 -run '^Test' ./test/load  # the load generator's own tests; its benchmark runs in make bench
	$(GO) test -race -count=1 ./test/toolbox  # the e2e suite's fetch and capture tool

.PHONY: fuzz
fuzz: ## Fuzz the annotation parser (and its length bombs), the admission handler, its HTTP server, the workloads endpoint, the hostile-input bounds and the demo apps' parsers: all nine fuzzers, FUZZTIME each (default 60s).
	$(GO) test -run '^$$' -fuzz '^FuzzParse$$' -fuzztime $(FUZZTIME) ./pkg/annotations
	$(GO) test -run '^$$' -fuzz '^FuzzParseLengthBombs$$' -fuzztime $(FUZZTIME) ./pkg/annotations
	$(GO) test -run '^$$' -fuzz '^FuzzHandle$$' -fuzztime $(FUZZTIME) ./pkg/webhook
	$(GO) test -run '^$$' -fuzz '^FuzzServeHTTP$$' -fuzztime $(FUZZTIME) ./pkg/webhook
	$(GO) test -run '^$$' -fuzz '^FuzzWorkloads$$' -fuzztime $(FUZZTIME) ./pkg/webhook
	$(GO) test -run '^$$' -fuzz '^FuzzHostileBounds$$' -fuzztime $(FUZZTIME) ./pkg/webhook
	$(GO) test -run '^$$' -fuzz '^FuzzParseAllowedClients$$' -fuzztime $(FUZZTIME) ./demo-apps/app
	$(GO) test -run '^$$' -fuzz '^FuzzReadRequestID$$' -fuzztime $(FUZZTIME) ./demo-apps/app

.PHONY: bench-core
bench-core: ## Benchmark the admission handler against the decode+encode floor.
	$(GO) test -run '^$$' -bench . -benchmem -count 5 ./pkg/webhook

$(GOLANGCI_LINT):
	GOBIN=$(BIN) $(GO) install github.com/golangci/golangci-lint/v2/cmd/golangci-lint@$(GOLANGCI_LINT_VERSION)

.PHONY: lint
lint: $(GOLANGCI_LINT) ## Run gofmt, go vet and golangci-lint (pinned, installed into bin/).
	@unformatted=$$(gofmt -l cmd internal pkg demo-apps test hack 2>/dev/null); \
	  if [ -n "$$unformatted" ]; then echo "gofmt needed:"; echo "$$unformatted"; exit 1; fi
	$(GO) vet ./...
	$(GOLANGCI_LINT) run ./...

TEST_TARGETS := lint test-unit $(TEST_TARGETS)
