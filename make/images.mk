# Container images and the kind end-to-end suite (docs/kind-e2e.md).
# Included by the top-level Makefile, which defines GO and BIN and exports
# GOBIN and PATH (bin/ first).

# Image names and tags match the charts' defaults (helm/*/values.yaml and
# appVersion 0.1.0), so `helm install` with default values runs these images.
REGISTRY   ?= ghcr.io/mtls-demo
IMAGE_TAG  ?= 0.1.0
VERSION    ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo dev)
DOCKER     ?= docker
WEBHOOK_IMAGE   := $(REGISTRY)/mtls-webhook:$(IMAGE_TAG)
DEMO_IMAGE_APPS := backend frontend client
# ghcr.io/mtls-demo/demo-backend:0.1.0 etc. The client is not in a chart; the
# e2e suite runs it as a pod.
demo_image = $(REGISTRY)/demo-$(1):$(IMAGE_TAG)
IMAGES := $(WEBHOOK_IMAGE) $(foreach a,$(DEMO_IMAGE_APPS),$(call demo_image,$(a)))

KIND_VERSION      := v0.33.0
KIND              := $(BIN)/kind
KIND_CLUSTER_NAME ?= mtls-webhook-e2e

# Built from source through the Go module proxy, like every other tool.
$(KIND):
	GOBIN=$(BIN) $(GO) install sigs.k8s.io/kind@$(KIND_VERSION)

.PHONY: images
images: ## Build the webhook and the three demo app images (REGISTRY, IMAGE_TAG, VERSION).
	$(DOCKER) build --build-arg VERSION=$(VERSION) -t $(WEBHOOK_IMAGE) -f Dockerfile .
	@for app in $(DEMO_IMAGE_APPS); do \
	  echo "$(DOCKER) build demo-apps/Dockerfile APP=$$app -> $(REGISTRY)/demo-$$app:$(IMAGE_TAG)"; \
	  $(DOCKER) build --build-arg APP="$$app" --build-arg VERSION=$(VERSION) \
	    -t "$(REGISTRY)/demo-$$app:$(IMAGE_TAG)" -f demo-apps/Dockerfile .; \
	done

.PHONY: kind-load
kind-load: $(KIND) ## Load the four images into the kind cluster KIND_CLUSTER_NAME.
	@for img in $(IMAGES); do \
	  $(KIND) load docker-image --name $(KIND_CLUSTER_NAME) "$$img"; \
	done

# The scripts find the tools through these variables; see hack/kind-e2e.sh.
KIND_ENV = KIND="$(KIND)" HELM="$(HELM)" GO="$(GO)" \
  KIND_CLUSTER_NAME="$(KIND_CLUSTER_NAME)" REGISTRY="$(REGISTRY)" IMAGE_TAG="$(IMAGE_TAG)"

.PHONY: kind-up
kind-up: $(KIND) $(HELM) ## Create (or reuse) the kind cluster with cert-manager and its CSI driver.
	$(KIND_ENV) hack/kind-up.sh

.PHONY: kind-e2e
kind-e2e: $(KIND) $(HELM) ## Build images, bring up kind, install both charts, run test/e2e (KEEP=1 keeps the cluster).
	$(KIND_ENV) hack/kind-e2e.sh

.PHONY: kind-down
kind-down: $(KIND) ## Delete the kind cluster.
	$(KIND_ENV) hack/kind-down.sh
