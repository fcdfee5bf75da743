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
render: ## Show what the webhook injects into examples/, without a cluster.
	@for f in examples/*.yaml; do echo "# ---- $$f"; $(GO) run ./cmd/webhook render -f "$$f"; done

.PHONY: test-unit
test-unit: openssl ## Unit, golden and fuzz-seed tests of the webhook packages (race detector on).
	$(GO) test -race -count=1 $(CORE_PKGS)
	$(GO) test -race -count=1 -run '^Test' ./test/load  # the load generator's own tests; its benchmark runs in make bench
	$(GO) test -race -count=1 ./test/toolbox  # the e2e suite's fetch and capture tool

# The packages that hold fuzzers, and each package's fuzzers, are found, not
# listed: a new Fuzz function is fuzzed without editing this file.
FUZZ_DIRS := cmd internal pkg demo-apps

.PHONY: fuzz
fuzz: ## Fuzz every Fuzz target of the webhook and demo apps (go test -list finds them) for FUZZTIME each (default 60s).
	@pkgs=$$(grep -rl --include='*_test.go' '^func Fuzz' $(FUZZ_DIRS) | xargs -n1 dirname | sort -u); \
	  for dir in $$pkgs; do \
	    for f in $$($(GO) test -list '^Fuzz' "./$$dir" | grep '^Fuzz'); do \
	      echo "fuzz: $$dir $$f"; \
	      $(GO) test -run '^$$' -fuzz "^$$f\$$" -fuzztime $(FUZZTIME) "./$$dir"; \
	    done; \
	  done

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

