# `make demo` and `make e2e-local`: the whole flow on the local node
# (internal/stack: kubelet on containerd and runc, kube-proxy, CoreDNS,
# kube-router's NetworkPolicy firewall, cert-manager and its csi-driver from
# their own charts, helm/mtls-webhook), no Docker. Both need root. See
# docs/demo.md and docs/local-cluster.md.

CSI_DRIVER_VERSION := v0.12.0
CSI_DRIVER_TOOLS   := $(CURDIR)/hack/tools/csidriver
CSI_DRIVER_BIN     := $(BIN)/cert-manager-csi-driver
# e.g. make demo DEMO_FLAGS='--duration 3m' or DEMO_FLAGS='--scene restart'
DEMO_FLAGS         ?=
# e.g. make e2e-local E2E_FLAGS='-run TestRoguePodRefused -keep'
E2E_FLAGS          ?=

# Everything the stack runs: the control plane and node, kube-router, helm,
# kubectl (to look around) and every image.
STACK_DEPS := node-bins netpol-bins $(BIN)/helm images


.PHONY: csi-driver-bin demo e2e-local

# The tools module pins csi-driver with the main module's versions; the
# binary is rebuilt only when missing or older than the tools go.mod.
# (The image build compiles the same package; this binary serves
# make test-certmanager's argument checks.)
csi-driver-bin: ## Build the cert-manager csi-driver v0.12.0 into bin/cert-manager-csi-driver (skips when built).
	@mkdir -p "$(BIN)"
	@if [ -x "$(CSI_DRIVER_BIN)" ] && [ "$(CSI_DRIVER_BIN)" -nt "$(CSI_DRIVER_TOOLS)/go.mod" ]; then \
	  echo "bin/cert-manager-csi-driver: $(CSI_DRIVER_VERSION) already built"; \
	else \
	  echo "building bin/cert-manager-csi-driver $(CSI_DRIVER_VERSION)"; \
	  cd "$(CSI_DRIVER_TOOLS)" && $(GO) build -o "$(CSI_DRIVER_BIN)" github.com/cert-manager/csi-driver/cmd; \
	fi

demo: $(STACK_DEPS) ## Run the live demo on the local node (root): rotations under load, rogues, wire capture. DEMO_FLAGS='--duration 6m'.
	$(GO) build -o "$(BIN)/mtls-demo" ./cmd/demo
	"$(BIN)/mtls-demo" --bin-dir "$(BIN)" $(DEMO_FLAGS)

e2e-local: $(STACK_DEPS) ## Run the e2e suite (test/e2e, as on kind) against the local node (root), go test -v output.
	$(GO) run ./hack/e2e-local --bin-dir "$(BIN)" $(E2E_FLAGS)
