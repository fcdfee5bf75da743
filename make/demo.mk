# `make demo`: the whole flow on one machine without Docker — etcd,
# kube-apiserver, kube-controller-manager, cert-manager's controllers, the
# real cert-manager csi-driver, the webhook and a node agent playing the
# kubelet. See docs/demo.md. Needs root (mounts, mount namespaces).

CSI_DRIVER_VERSION := v0.12.0
CSI_DRIVER_TOOLS   := $(CURDIR)/hack/tools/csidriver
CSI_DRIVER_BIN     := $(BIN)/cert-manager-csi-driver
# e.g. make demo DEMO_FLAGS='--duration 3m' or DEMO_FLAGS='--scene restart'
DEMO_FLAGS         ?=


.PHONY: csi-driver-bin demo test-demo-e2e

# The tools module pins csi-driver with the main module's versions; the
# binary is rebuilt only when missing or older than the tools go.mod.
csi-driver-bin: ## Build the cert-manager csi-driver v0.12.0 into bin/cert-manager-csi-driver (skips when built).
	@mkdir -p "$(BIN)"
	@if [ -x "$(CSI_DRIVER_BIN)" ] && [ "$(CSI_DRIVER_BIN)" -nt "$(CSI_DRIVER_TOOLS)/go.mod" ]; then \
	  echo "bin/cert-manager-csi-driver: $(CSI_DRIVER_VERSION) already built"; \
	else \
	  echo "building bin/cert-manager-csi-driver $(CSI_DRIVER_VERSION)"; \
	  cd "$(CSI_DRIVER_TOOLS)" && $(GO) build -o "$(CSI_DRIVER_BIN)" github.com/cert-manager/csi-driver/cmd; \
	fi

demo: k8s-bins kubectl-bin csi-driver-bin $(BIN)/helm ## Run the live demo (root): real cert-manager + CSI driver, rotations under load. DEMO_FLAGS='--duration 2m'.
	$(GO) build -o "$(BIN)/mtls-demo" ./cmd/demo
	"$(BIN)/mtls-demo" --bin-dir "$(BIN)" $(DEMO_FLAGS)

test-demo-e2e: k8s-bins csi-driver-bin $(BIN)/helm ## End-to-end tests of the demo machinery (root): issuance, mTLS, 3 renewals under load, wire, rogue clients.
	$(GO) test -count=1 -timeout 10m ./test/demoe2e/...
