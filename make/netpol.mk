# NetworkPolicy enforcement for the local node (internal/netpol):
# kube-router's network-policy controller (only its firewall), built from
# the pinned tools module hack/tools/kuberouter, and the netfilter tools it
# runs (iptables with the nf_tables backend, ipset) plus nft to look at the
# result, from pinned Debian bookworm packages unpacked into bin/netfilter
# (nothing is installed system-wide). The unpacked binaries need libc6 and,
# for nft, libedit2, libgmp10 and libjansson4 from the base system.
# `make test-netpol` proves with real packets between network namespaces
# that a NetworkPolicy is enforced and that the host's iptables and ipsets
# are as before afterwards (root; etcd and kube-apiserver from k8s-bins).

KUBE_ROUTER_VERSION := v2.1.0
KUBE_ROUTER_TOOLS   := $(CURDIR)/hack/tools/kuberouter
KUBE_ROUTER_LDFLAGS := -X github.com/cloudnativelabs/kube-router/v2/pkg/version.Version=$(KUBE_ROUTER_VERSION)
NETFILTER_BIN       := $(BIN)/netfilter/bin
IPTABLES_VERSION    := 1.8.9
IPSET_VERSION       := 7.17
NFT_TOOLS_VERSION   := 1.0.6
NETFILTER_DEBS      := iptables=1.8.9-2 libip4tc2=1.8.9-2 libip6tc2=1.8.9-2 libxtables12=1.8.9-2 \
                       libnftnl11=1.2.4-2 libnetfilter-conntrack3=1.0.9-3 libnfnetlink0=1.0.2-2 libmnl0=1.0.4-3 \
                       ipset=7.17-1 libipset13=7.17-1 nftables=1.0.6-2+deb12u2 libnftables1=1.0.6-2+deb12u2

.PHONY: netpol-bins
netpol-bins: ## Build bin/kube-router (v2.1.0, firewall only is used) and unpack iptables/ipset/nft (pinned Debian) into bin/netfilter.
	@mkdir -p "$(BIN)"
	@if "$(BIN)/kube-router" --version 2>&1 | grep -F -- "version $(KUBE_ROUTER_VERSION)," >/dev/null; then \
	  echo "bin/kube-router: $(KUBE_ROUTER_VERSION) already built"; \
	else \
	  echo "building bin/kube-router $(KUBE_ROUTER_VERSION) (cold: several minutes)"; \
	  cd "$(KUBE_ROUTER_TOOLS)" && $(GO) build -trimpath -o "$(BIN)/kube-router" -ldflags "$(KUBE_ROUTER_LDFLAGS)" \
	    github.com/cloudnativelabs/kube-router/v2/cmd/kube-router; \
	fi
	@if [ "$$(cat "$(BIN)/netfilter/.debs" 2>/dev/null | tr '\n' ' ')" = "$$(printf '%s ' $(NETFILTER_DEBS))" ] && \
	   "$(NETFILTER_BIN)/iptables" --version 2>/dev/null | grep -F "iptables v$(IPTABLES_VERSION) (nf_tables)" >/dev/null && \
	   "$(NETFILTER_BIN)/ipset" version 2>/dev/null | grep -F "v$(IPSET_VERSION)," >/dev/null && \
	   "$(NETFILTER_BIN)/nft" --version 2>/dev/null | grep -F "v$(NFT_TOOLS_VERSION)" >/dev/null; then \
	  echo "bin/netfilter: iptables $(IPTABLES_VERSION), ipset $(IPSET_VERSION), nft $(NFT_TOOLS_VERSION) already installed"; \
	else \
	  hack/netpol/install-tools.sh "$(BIN)" $(NETFILTER_DEBS); \
	  "$(NETFILTER_BIN)/iptables" --version | grep -F "iptables v$(IPTABLES_VERSION) (nf_tables)"; \
	  "$(NETFILTER_BIN)/ipset" version | grep -F "v$(IPSET_VERSION),"; \
	  "$(NETFILTER_BIN)/nft" --version | grep -F "v$(NFT_TOOLS_VERSION)"; \
	fi

# Root only; one run at a time on a machine (it changes the host's filter
# table while it runs), hence -p 1.
.PHONY: test-netpol
test-netpol: netpol-bins k8s-bins ## Prove NetworkPolicy enforcement with real packets between netns; host iptables/ipsets restored (root).
	KUBEBUILDER_ASSETS=$(BIN) $(GO) test -tags netpol -count=1 -p 1 -timeout 10m -v ./internal/netpol/...

