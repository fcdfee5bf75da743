# Releases (maintainers, from CI on a tag: .github/workflows/release.yaml).
# hack/release.sh builds the images with the same builder as `make images`
# and packages both charts with the release's version and image defaults;
# with --push it pushes them (crane, helm push to OCI) and signs every digest
# keylessly (cosign). Both tools are pinned and built into bin/ on demand.

CRANE_VERSION  := v0.22.1
COSIGN_VERSION := v2.6.5
CRANE          := $(BIN)/crane
COSIGN         := $(BIN)/cosign
RELEASE_ENV     = REGISTRY="$(REGISTRY)" HELM="$(BIN)/helm" CRANE="$(CRANE)" COSIGN="$(COSIGN)" BIN="$(BIN)"

$(CRANE):
	GOBIN=$(BIN) $(GO) install github.com/google/go-containerregistry/cmd/crane@$(CRANE_VERSION)

$(COSIGN):
	GOBIN=$(BIN) $(GO) install github.com/sigstore/cosign/v2/cmd/cosign@$(COSIGN_VERSION)

.PHONY: release-artifacts
release-artifacts: $(BIN)/helm ## Build the images and charts of RELEASE_VERSION (e.g. 0.2.0) into bin/release/, without pushing.
	@test -n "$(RELEASE_VERSION)" || { echo "set RELEASE_VERSION, e.g. make release-artifacts RELEASE_VERSION=0.2.0"; exit 2; }
	$(RELEASE_ENV) hack/release.sh "$(RELEASE_VERSION)"

.PHONY: release-publish
release-publish: $(BIN)/helm $(CRANE) $(COSIGN) ## Build, push to REGISTRY and sign RELEASE_VERSION (needs a registry login and an OIDC identity for cosign).
	@test -n "$(RELEASE_VERSION)" || { echo "set RELEASE_VERSION, e.g. make release-publish RELEASE_VERSION=0.2.0"; exit 2; }
	$(RELEASE_ENV) hack/release.sh "$(RELEASE_VERSION)" --push
