# Container images (without Docker) and the kind end-to-end suite
# (docs/kind-e2e.md). Included by the top-level Makefile, which defines GO
# and BIN and exports GOBIN and PATH (bin/ first).

# Image names and tags match the charts' defaults (helm/*/values.yaml and
# appVersion 0.1.0), so `helm install` with default values runs these images.
REGISTRY   ?= ghcr.io/mtls-demo
IMAGE_TAG  ?= 0.1.0
VERSION    ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo dev)
DOCKER     ?= docker
# The list of images is internal/images.Specs; `go run ./hack/images -list`
# prints it. IMAGES_ONLY=a,b builds a subset.
IMAGES_DIR  := $(BIN)/images
IMAGES_ONLY ?=
IMAGE_BUILDER = $(GO) run ./hack/images -out "$(IMAGES_DIR)" -registry "$(REGISTRY)" -tag "$(IMAGE_TAG)" -version "$(VERSION)"
# The project's own images: the ones the kind suite loads (cert-manager and
# its CSI driver come from the Jetstack charts' images there).
PROJECT_IMAGES := mtls-webhook,demo-backend,demo-frontend,demo-client,e2e-toolbox
KIND_IMAGES    ?= $(PROJECT_IMAGES)
# For docker-images: the Dockerfiles' builds.
WEBHOOK_IMAGE   := $(REGISTRY)/mtls-webhook:$(IMAGE_TAG)
DEMO_IMAGE_APPS := backend frontend client

KIND_VERSION      := v0.33.0
# The binary is bin/kind; the clusters' kubeconfigs and logs go to
# bin/kind-e2e/ (a directory named bin/kind cannot exist next to it).
KIND              := $(BIN)/kind
KIND_CLUSTER_NAME ?= mtls-webhook-e2e

# Built from source through the Go module proxy, like every other tool.
$(KIND):
	GOBIN=$(BIN) $(GO) install sigs.k8s.io/kind@$(KIND_VERSION)

.PHONY: images
images: ## Build every image as a docker-archive tarball in bin/images, with bin/images/index.json (no Docker; IMAGES_ONLY=a,b).
	$(IMAGE_BUILDER) $(if $(IMAGES_ONLY),-only "$(IMAGES_ONLY)")

.PHONY: docker-images
docker-images: ## With a Docker engine: build the webhook and demo app images from the Dockerfiles (REGISTRY, IMAGE_TAG, VERSION).
	$(DOCKER) build --build-arg VERSION=$(VERSION) -t $(WEBHOOK_IMAGE) -f Dockerfile .
	@for app in $(DEMO_IMAGE_APPS); do \
	  echo "$(DOCKER) build demo-apps/Dockerfile APP=$$app -> $(REGISTRY)/demo-$$app:$(IMAGE_TAG)"; \
	  $(DOCKER) build --build-arg APP="$$app" --build-arg VERSION=$(VERSION) \
	    -t "$(REGISTRY)/demo-$$app:$(IMAGE_TAG)" -f demo-apps/Dockerfile .; \
	done

.PHONY: kind-load
kind-load: $(KIND) ## Load the KIND_IMAGES tarballs (default: the project's images, the e2e toolbox included) into the kind cluster KIND_CLUSTER_NAME.
	$(IMAGE_BUILDER) -only "$(KIND_IMAGES)"
	@$(IMAGE_BUILDER) -only "$(KIND_IMAGES)" -tarballs | while read -r tarball; do \
	  echo "kind load image-archive $$tarball"; \
	  $(KIND) load image-archive --name $(KIND_CLUSTER_NAME) "$$tarball"; \
	done

.PHONY: test-images
test-images: $(GOLANGCI_LINT) ## Test the image builder (webhook image read back, Dockerfiles agree), pause and the CSI sidecars.
	@unformatted="$$(gofmt -l hack/images hack/pause internal/images hack/tools/csisidecars)"; \
	  if [ -n "$$unformatted" ]; then echo "gofmt needed: $$unformatted"; exit 1; fi
	$(GO) test -count=1 ./hack/images ./hack/pause ./internal/images
	cd hack/tools/csisidecars && $(GO) vet ./... && $(GOLANGCI_LINT) run ./... && $(GO) test -count=1 ./...


# The scripts find the tools through these variables; see hack/kind-e2e.sh.
KIND_ENV = KIND="$(KIND)" HELM="$(HELM)" GO="$(GO)" \
  KIND_CLUSTER_NAME="$(KIND_CLUSTER_NAME)" REGISTRY="$(REGISTRY)" IMAGE_TAG="$(IMAGE_TAG)" \
  KIND_IMAGES="$(KIND_IMAGES)"

.PHONY: kind-up
kind-up: $(KIND) $(HELM) ## Create (or reuse) the kind cluster with cert-manager and its CSI driver.
	$(KIND_ENV) hack/kind-up.sh

.PHONY: kind-e2e
kind-e2e: $(KIND) $(HELM) ## Build the image tarballs, bring up kind, load them, install both charts, run test/e2e (KEEP=1 keeps the cluster).
	$(KIND_ENV) hack/kind-e2e.sh

.PHONY: kind-down
kind-down: $(KIND) ## Delete the kind cluster.
	$(KIND_ENV) hack/kind-down.sh
