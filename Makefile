# mtls-webhook: `make help` lists every target.
SHELL := /usr/bin/env bash
.SHELLFLAGS := -euo pipefail -c
.DEFAULT_GOAL := help

BIN      := $(CURDIR)/bin
GO       ?= go
export GOBIN := $(BIN)
export PATH  := $(BIN):$(PATH)

# Fragments under make/ add their own targets and append to TEST_TARGETS.
TEST_TARGETS :=
include $(sort $(wildcard make/*.mk))

.PHONY: help
help: ## Show this help.
	@awk 'BEGIN {FS = ":.*## "} /^[a-zA-Z0-9_.-]+:.*## / {printf "  \033[36m%-18s\033[0m %s\n", $$1, $$2}' $(MAKEFILE_LIST)

.PHONY: test
test: $(TEST_TARGETS) ## Run every test: lint, unit, fuzz seeds, charts and the real control plane.
	@echo "make test: all suites passed ($(TEST_TARGETS))"
