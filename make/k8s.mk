# Control-plane binaries for the integration tests (and `make demo`): etcd,
# kube-apiserver and kube-controller-manager, built from the pinned tools
# modules under hack/tools so that k8s.io/kubernetes and etcd never enter the
# main module's dependency graph. envtest finds them through
# KUBEBUILDER_ASSETS=$(BIN).

K8S_VERSION  := v1.37.2
ETCD_VERSION := 3.6.16
K8S_TOOLS    := $(CURDIR)/hack/tools/k8s
ETCD_TOOLS   := $(CURDIR)/hack/tools/etcd
# kube-apiserver built with plain `go build` reports v0.0.0-master; stamp the
# real version so --version (and the skip check below) tell the truth.
K8S_LDFLAGS  := -X k8s.io/component-base/version.gitVersion=$(K8S_VERSION)

# $(call build-if-stale,binary,version text,module dir,package,extra go build flags)
# Rebuilds bin/<binary> unless `bin/<binary> --version` already prints the
# pinned version, so a warm `make test` costs nothing here. grep reads all
# of the output (no -q) so that pipefail never sees a SIGPIPE'd --version.
define build-if-stale
	@if "$(BIN)/$(1)" --version 2>/dev/null | grep -F -- "$(2)" >/dev/null; then \
	  echo "bin/$(1): $(2) already built"; \
	else \
	  echo "building bin/$(1) $(2) (cold: several minutes)"; \
	  cd "$(3)" && $(GO) build -o "$(BIN)/$(1)" $(5) $(4); \
	fi
endef

.PHONY: k8s-bins
k8s-bins: ## Build etcd, kube-apiserver and kube-controller-manager into bin/ (skips those already at the pinned version).
	@mkdir -p "$(BIN)"
	$(call build-if-stale,etcd,Version: $(ETCD_VERSION),$(ETCD_TOOLS),go.etcd.io/etcd/server/v3,)
	$(call build-if-stale,kube-apiserver,Kubernetes $(K8S_VERSION),$(K8S_TOOLS),k8s.io/kubernetes/cmd/kube-apiserver,-ldflags "$(K8S_LDFLAGS)")
	$(call build-if-stale,kube-controller-manager,Kubernetes $(K8S_VERSION),$(K8S_TOOLS),k8s.io/kubernetes/cmd/kube-controller-manager,-ldflags "$(K8S_LDFLAGS)")

# kubectl, for looking around the `make demo` control plane and the kind
# cluster. `kubectl --version` does not exist, hence its own staleness check.
.PHONY: kubectl-bin
kubectl-bin: ## Build kubectl (same Kubernetes version) into bin/kubectl (skips when built).
	@mkdir -p "$(BIN)"
	@if "$(BIN)/kubectl" version --client 2>/dev/null | grep -F -- "Client Version: $(K8S_VERSION)" >/dev/null; then \
	  echo "bin/kubectl: $(K8S_VERSION) already built"; \
	else \
	  echo "building bin/kubectl $(K8S_VERSION)"; \
	  cd "$(K8S_TOOLS)" && $(GO) build -o "$(BIN)/kubectl" -ldflags "$(K8S_LDFLAGS)" k8s.io/kubernetes/cmd/kubectl; \
	fi
