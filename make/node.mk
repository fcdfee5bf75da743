# The local node (internal/cluster): kubelet, kube-scheduler and kube-proxy
# from the same Kubernetes tools module as the control plane, containerd
# built from its pinned tools module, and runc, the CNI plugins and nft from
# pinned Debian packages unpacked into bin/ (nothing is installed
# system-wide). `make cluster-up` starts the whole cluster in the foreground;
# `make test-cluster` runs its tests (root, overlayfs, ports 6443/10250 and
# 23790/23800 free).

CONTAINERD_VERSION := 2.4.2
CONTAINERD_TOOLS   := $(CURDIR)/hack/tools/containerd
# CGO off and the snapshotters this node does not use left out, as
# containerd's own static builds do; the version stamp is what the CRI
# reports, so the node shows containerd://2.4.2.
CONTAINERD_TAGS    := no_btrfs no_devmapper no_zfs no_aufs
CONTAINERD_LDFLAGS := -X github.com/containerd/containerd/v2/version.Version=$(CONTAINERD_VERSION)

# Debian bookworm packages (apt-get download + dpkg-deb -x, as make/checks.mk
# does for shellcheck). runc needs libseccomp2 and nft needs libjansson4,
# libmnl0, libedit2 and libxtables12 from the base system; libnftables1 and
# libnftnl11 are unpacked next to nft and found through bin/nft, a wrapper
# that sets LD_LIBRARY_PATH.
RUNC_DEB     := runc=1.1.5+ds1-1+deb12u1
RUNC_VERSION := 1.1.5
CNI_DEB      := containernetworking-plugins=1.1.1+ds1-3+b5
NFT_DEBS     := nftables=1.0.6-2+deb12u2 libnftables1=1.0.6-2+deb12u2 libnftnl11=1.2.4-2
NFT_VERSION  := 1.0.6
# Only the plugins the node's CNI config uses (containerd adds loopback).
CNI_PLUGINS  := bridge host-local loopback

# $(call build-containerd-if-stale,binary,version flag)
define build-containerd-if-stale
	@if "$(BIN)/$(1)" $(2) 2>/dev/null | grep -E -- " $(CONTAINERD_VERSION)( |$$)" >/dev/null; then \
	  echo "bin/$(1): $(CONTAINERD_VERSION) already built"; \
	else \
	  echo "building bin/$(1) $(CONTAINERD_VERSION)"; \
	  cd "$(CONTAINERD_TOOLS)" && CGO_ENABLED=0 $(GO) build -trimpath -tags "$(CONTAINERD_TAGS)" \
	    -ldflags "$(CONTAINERD_LDFLAGS)" -o "$(BIN)/$(1)" github.com/containerd/containerd/v2/cmd/$(1); \
	fi
endef

.PHONY: node-bins
node-bins: k8s-bins kubectl-bin containerd-bins node-debs ## Build/install the node: kubelet, kube-scheduler, kube-proxy, containerd, ctr, runc, CNI plugins, nft (pinned, into bin/).
	$(call build-if-stale,kubelet,Kubernetes $(K8S_VERSION),$(K8S_TOOLS),k8s.io/kubernetes/cmd/kubelet,-ldflags "$(K8S_LDFLAGS)")
	$(call build-if-stale,kube-scheduler,Kubernetes $(K8S_VERSION),$(K8S_TOOLS),k8s.io/kubernetes/cmd/kube-scheduler,-ldflags "$(K8S_LDFLAGS)")
	$(call build-if-stale,kube-proxy,Kubernetes $(K8S_VERSION),$(K8S_TOOLS),k8s.io/kubernetes/cmd/kube-proxy,-ldflags "$(K8S_LDFLAGS)")

.PHONY: containerd-bins
containerd-bins: ## Build containerd, ctr and containerd-shim-runc-v2 (pinned 2.4.2, CGO off) into bin/ (skips those already built).
	@mkdir -p "$(BIN)"
	$(call build-containerd-if-stale,containerd,--version)
	$(call build-containerd-if-stale,ctr,--version)
	$(call build-containerd-if-stale,containerd-shim-runc-v2,-v)

.PHONY: node-debs
node-debs: ## Install runc, the CNI bridge/host-local/loopback plugins and nft from pinned Debian packages into bin/.
	@if "$(BIN)/runc" --version 2>/dev/null | grep -F "runc version $(RUNC_VERSION)" >/dev/null; then \
	  echo "bin/runc: $(RUNC_VERSION) already installed"; \
	else \
	  tmp=$$(mktemp -d); trap 'rm -rf "$$tmp"' EXIT; \
	  hack/install-deb.sh "$$tmp" "$(RUNC_DEB)"; \
	  install -m 0755 "$$tmp/usr/sbin/runc" "$(BIN)/runc"; \
	  "$(BIN)/runc" --version | grep -F "runc version $(RUNC_VERSION)"; \
	fi
	@if [ "$$(cat "$(BIN)/cni/.version" 2>/dev/null)" = "$(CNI_DEB)" ]; then \
	  echo "bin/cni: $(CNI_DEB) already installed"; \
	else \
	  tmp=$$(mktemp -d); trap 'rm -rf "$$tmp"' EXIT; \
	  hack/install-deb.sh "$$tmp" "$(CNI_DEB)"; \
	  mkdir -p "$(BIN)/cni"; \
	  for p in $(CNI_PLUGINS); do install -m 0755 "$$tmp/usr/lib/cni/$$p" "$(BIN)/cni/$$p"; done; \
	  echo "$(CNI_DEB)" > "$(BIN)/cni/.version"; echo "bin/cni: $(CNI_PLUGINS) from $(CNI_DEB)"; \
	fi
	@if "$(BIN)/nft" --version 2>/dev/null | grep -F "nftables v$(NFT_VERSION)" >/dev/null; then \
	  echo "bin/nft: $(NFT_VERSION) already installed"; \
	else \
	  rm -rf "$(BIN)/nft-root"; \
	  hack/install-deb.sh "$(BIN)/nft-root" $(NFT_DEBS); \
	  install -m 0755 hack/cluster/nft-wrapper.sh "$(BIN)/nft"; \
	  "$(BIN)/nft" --version | grep -F "nftables v$(NFT_VERSION)"; \
	fi

# Images come from bin/images/*.tar (make images); the cluster imports all of
# them before the kubelet starts. CLUSTER_FLAGS, e.g. --state-dir.
CLUSTER_FLAGS ?=

.PHONY: cluster-up
cluster-up: node-bins ## Start the local cluster (root) in the foreground with bin/images/*.tar; Ctrl-C stops it and restores the host.
	$(GO) run ./hack/cluster up --bin-dir "$(BIN)" $(CLUSTER_FLAGS) $(wildcard $(BIN)/images/*.tar)

.PHONY: cluster-down
cluster-down: ## Undo a cluster that was killed (kill -9): processes, mounts, links, nft tables, cgroups, sysctls.
	$(GO) run ./hack/cluster down --bin-dir "$(BIN)" $(CLUSTER_FLAGS)

# One cluster at a time on a machine (fixed ports, one bridge), hence -p 1.
# netpol-bins for its iptables: a test checks, in a network namespace of its
# own, the accept the cluster adds where a FORWARD policy drops (Docker).
# The tests import bin/images/{pause,coredns}.tar (make images).
.PHONY: test-cluster
test-cluster: node-bins netpol-bins images ## Test the local cluster (root): Ready node, real containers, Services, DNS, host restored after Stop and after kill -9.
	$(GO) test -tags cluster -count=1 -p 1 -timeout 20m -v ./internal/cluster/...

