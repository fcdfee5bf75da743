# mtls-webhook: `make help` lists every target.
SHELL := /usr/bin/env bash
.SHELLFLAGS := -euo pipefail -c
.DEFAULT_GOAL := help

BIN      := $(CURDIR)/bin
GO       ?= go
export GOBIN := $(BIN)
export PATH  := $(BIN):$(PATH)

# Fragments under make/ define the targets.
include $(sort $(wildcard make/*.mk))

# What `make test` runs, in this order: the fast, root-free suites first, so
# that a lint, unit or chart error shows before the control plane starts;
# then the real API server; the suites that need root and change the host
# (NetworkPolicy, the local cluster, the e2e suite on it) last.
TEST_TARGETS := lint test-unit test-demo-apps test-checks test-helm test-images \
	test-integration test-certmanager \
	test-netpol test-cluster e2e-local

.PHONY: help
help: ## Show this help.
	@awk 'BEGIN {FS = ":.*## "} /^[a-zA-Z0-9_.-]+:.*## / {printf "  \033[36m%-18s\033[0m %s\n", $$1, $$2}' $(MAKEFILE_LIST)
	@echo; echo "make test runs, in order: $(TEST_TARGETS)"

.PHONY: test
test: $(TEST_TARGETS) ## Run every test: lint, unit, fuzz seeds, charts and the real control plane.
	@echo "make test: all suites passed ($(TEST_TARGETS))"
