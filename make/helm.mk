# Helm charts (helm/): the pinned helm binary, lint and chart tests.

HELM_VERSION := v3.22.0
HELM         := $(BIN)/helm
HELM_CHARTS  := helm/mtls-webhook helm/mtls-demo

# Built from source through the Go module proxy (no binary download).
$(HELM):
	GOBIN=$(BIN) $(GO) install helm.sh/helm/v3/cmd/helm@$(HELM_VERSION)

.PHONY: helm-lint
helm-lint: $(HELM) ## Lint both Helm charts with helm lint --strict.
	@for c in $(HELM_CHARTS); do $(HELM) lint --strict --kube-version 1.37.0 "$$c"; done

.PHONY: test-helm
test-helm: $(HELM) k8s-bins ## Test the Helm charts: lint, schema, render, apply to a real API server.
	HELM=$(HELM) KUBEBUILDER_ASSETS=$(BIN) $(GO) test -count=1 ./test/helm/...


.PHONY: helm-docs
helm-docs: ## Rewrite the values tables of helm/README.md from the values.yaml comments (test-helm checks they match).
	$(GO) run ./hack/helmdocs
