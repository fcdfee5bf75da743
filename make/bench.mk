# `make bench`: every benchmark, medians of several runs, each figure against
# a baseline from the same run, written to docs/BENCHMARKS.md by
# hack/benchreport. Included by the top-level Makefile, which defines GO and
# BIN. The load and API-server suites need the control plane (k8s-bins) and
# helm; $(BIN)/helm is the rule make/helm.mk defines as $(HELM) (named
# directly: this file is read before helm.mk defines HELM).

BENCH_OUT ?= docs/BENCHMARKS.md
# e.g. make bench BENCH_FLAGS='-rounds 3 -count 2' or BENCH_FLAGS='-only core,demo'
BENCH_FLAGS ?=

.PHONY: bench
bench: k8s-bins $(BIN)/helm ## Run every benchmark (about 10 min) and write docs/BENCHMARKS.md with baselines, ratios and targets.
	KUBEBUILDER_ASSETS=$(BIN) HELM=$(BIN)/helm $(GO) run ./hack/benchreport -go "$(GO)" -raw "$(BIN)/bench" -out $(BENCH_OUT) $(BENCH_FLAGS)
