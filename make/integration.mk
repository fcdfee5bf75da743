# Integration tests: the webhook, started through the same code path as
# `mtls-webhook serve`, behind a real kube-apiserver + etcd (envtest) and a
# real kube-controller-manager. The webhook configuration they register is
# the Helm chart's own, rendered with bin/helm. See docs/integration.md.


# HELM and its build rule come from make/helm.mk.
INTEGRATION_ENV := KUBEBUILDER_ASSETS=$(BIN) HELM=$(HELM)

.PHONY: test-integration
test-integration: k8s-bins $(HELM) ## Run the webhook against a real API server, etcd and controller manager.
	$(INTEGRATION_ENV) $(GO) test -count=1 -timeout 20m ./test/integration/...

# The benchmark prints p50/p99 pod create latency with and without the
# webhook (same run, alternating) and reports them as benchmark metrics.
.PHONY: bench-integration
bench-integration: k8s-bins $(HELM) ## Measure pod create latency through the API server with vs without the webhook.
	$(INTEGRATION_ENV) $(GO) test -count=1 -timeout 20m -run '^$$' -bench '^BenchmarkPodCreateLatency$$' -benchtime 1x -v ./test/integration/
