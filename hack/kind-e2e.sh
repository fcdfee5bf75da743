#!/usr/bin/env bash
# The whole story on kind: build the project's image tarballs (hack/images,
# no Docker needed for that), bring up kind with cert-manager and its CSI
# driver (hack/kind-up.sh), load the tarballs with `kind load image-archive`
# (the same files the local node imports), install
# mtls-webhook and mtls-demo with helm, run the e2e suite (test/e2e), collect
# logs and events on failure, and delete the cluster unless KEEP=1.
# Re-running with an existing cluster works: kind-up reuses it and the charts
# are installed with `helm upgrade --install`.
#
# Environment: KIND, HELM, GO (tools; default bin/kind, bin/helm, go),
# KIND_CLUSTER_NAME, REGISTRY, IMAGE_TAG (must match `make images`),
# KIND_IMAGES (comma-separated names from internal/images; default the
# project's images and the e2e toolbox), KEEP=1 (keep the cluster), SKIP_IMAGES=1 (reuse the
# tarballs already in bin/images),
# E2E_RUN (go test -run regexp), E2E_TIMEOUT (default 40m),
# ARTIFACTS (where logs go on failure; default bin/kind-e2e/artifacts).
set -euo pipefail

REPO_ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "${REPO_ROOT}"
export KIND=${KIND:-${REPO_ROOT}/bin/kind}
export HELM=${HELM:-${REPO_ROOT}/bin/helm}
GO=${GO:-go}
export KIND_CLUSTER_NAME=${KIND_CLUSTER_NAME:-mtls-webhook-e2e}
export KUBECONFIG_FILE=${KUBECONFIG_FILE:-${REPO_ROOT}/bin/kind-e2e/${KIND_CLUSTER_NAME}.kubeconfig}
REGISTRY=${REGISTRY:-ghcr.io/mtls-demo}
IMAGE_TAG=${IMAGE_TAG:-0.1.0}
KEEP=${KEEP:-0}
ARTIFACTS=${ARTIFACTS:-${REPO_ROOT}/bin/kind-e2e/artifacts}
KIND_IMAGES=${KIND_IMAGES:-mtls-webhook,demo-backend,demo-frontend,demo-client,e2e-toolbox}
WEBHOOK_NAMESPACE=mtls-system
DEMO_NAMESPACE=demo

FRONTEND_IMAGE="${REGISTRY}/demo-frontend:${IMAGE_TAG}"
BACKEND_IMAGE="${REGISTRY}/demo-backend:${IMAGE_TAG}"

log() { printf '[kind-e2e] %s\n' "$*" >&2; }

# On any failure: save everything needed to debug, without kubectl. `kind
# export logs` collects node, kubelet, containerd and every pod's logs; helm
# adds the releases' state. The suite itself dumps events and pod logs of its
# namespaces through client-go when a test fails.
collect() {
  local dir
  dir="${ARTIFACTS}/$(date +%Y%m%d-%H%M%S)"
  mkdir -p "${dir}"
  log "collecting logs into ${dir}"
  "${KIND}" export logs --name "${KIND_CLUSTER_NAME}" "${dir}/kind" || true
  if [[ -f "${KUBECONFIG_FILE}" ]]; then
    local rel
    for rel in "cert-manager:cert-manager" "cert-manager:cert-manager-csi-driver" \
      "${WEBHOOK_NAMESPACE}:mtls-webhook" "${DEMO_NAMESPACE}:mtls-demo"; do
      KUBECONFIG="${KUBECONFIG_FILE}" "${HELM}" status --namespace "${rel%%:*}" --show-resources "${rel#*:}" \
        >"${dir}/helm-${rel#*:}.txt" 2>&1 || true
    done
  fi
}

finish() {
  local rc=$?
  if [[ "${rc}" -ne 0 ]]; then
    collect
  fi
  if [[ "${KEEP}" == 1 ]]; then
    log "KEEP=1: cluster ${KIND_CLUSTER_NAME} kept; export KUBECONFIG=${KUBECONFIG_FILE}"
  else
    hack/kind-down.sh || true
  fi
  if [[ "${rc}" -eq 0 ]]; then log "PASS"; else log "FAIL (exit ${rc})"; fi
  exit "${rc}"
}
trap finish EXIT

# 1. Image tarballs, tagged as the charts' defaults expect.
if [[ "${SKIP_IMAGES:-0}" != 1 ]]; then
  make --no-print-directory images REGISTRY="${REGISTRY}" IMAGE_TAG="${IMAGE_TAG}" IMAGES_ONLY="${KIND_IMAGES}"
fi
# Their paths, from bin/images/index.json (checked against REGISTRY/IMAGE_TAG).
mapfile -t TARBALLS < <("${GO}" run ./hack/images -registry "${REGISTRY}" -tag "${IMAGE_TAG}" -only "${KIND_IMAGES}" -tarballs)
[[ "${#TARBALLS[@]}" -gt 0 ]] || { log "no image tarballs for ${KIND_IMAGES}"; exit 1; }

# 2. Cluster, cert-manager, CSI driver.
hack/kind-up.sh
export KUBECONFIG="${KUBECONFIG_FILE}"

# 3. The tarballs into the node (no registry involved; pullPolicy
# IfNotPresent). kind pipes each into `ctr -n k8s.io images import`.
for tarball in "${TARBALLS[@]}"; do
  log "kind load image-archive ${tarball}"
  "${KIND}" load image-archive --name "${KIND_CLUSTER_NAME}" "${tarball}"
done

# 4. The charts. The image values are spelled out so that a non-default
# REGISTRY/IMAGE_TAG is what runs. The webhook swaps the demo images in
# (mtls.demo/app), so its --frontend-image/--backend-image matter most.
# A rerun after an image rebuild keeps the same tag, so the webhook pods get a
# changed annotation (a rollout) and the demo release is installed afresh:
# either way the pods run the images just loaded.
RUN_ID=$(date +%s)
log "installing mtls-webhook"
"${HELM}" upgrade --install mtls-webhook ./helm/mtls-webhook \
  --namespace "${WEBHOOK_NAMESPACE}" --create-namespace \
  --set image.repository="${REGISTRY}/mtls-webhook" --set image.tag="${IMAGE_TAG}" \
  --set config.frontendImage="${FRONTEND_IMAGE}" --set config.backendImage="${BACKEND_IMAGE}" \
  --set-string podAnnotations.e2e-run="${RUN_ID}" \
  --wait --timeout 5m
# The chart's own `helm test`: a canary pod created with --dry-run=server
# must come back injected.
"${HELM}" test mtls-webhook --namespace "${WEBHOOK_NAMESPACE}" --timeout 5m

log "installing mtls-demo"
"${HELM}" uninstall mtls-demo --namespace "${DEMO_NAMESPACE}" --ignore-not-found --wait --timeout 5m
"${HELM}" upgrade --install mtls-demo ./helm/mtls-demo \
  --namespace "${DEMO_NAMESPACE}" --create-namespace \
  --set frontend.image.repository="${REGISTRY}/demo-frontend" --set frontend.image.tag="${IMAGE_TAG}" \
  --set backend.image.repository="${REGISTRY}/demo-backend" --set backend.image.tag="${IMAGE_TAG}" \
  --wait --timeout 5m

# 5. The suite. It installs further mtls-demo releases of its own (Case 2,
# USE_MTLS toggling) with the same helm and image settings. -parallel 8: its
# parallel tests mostly wait for renewals, and go test would run only
# GOMAXPROCS of them at once (as hack/e2e-local does).
log "running test/e2e"
E2E_HELM="${HELM}" \
  E2E_WEBHOOK_NAMESPACE="${WEBHOOK_NAMESPACE}" E2E_DEMO_NAMESPACE="${DEMO_NAMESPACE}" \
  E2E_REGISTRY="${REGISTRY}" E2E_IMAGE_TAG="${IMAGE_TAG}" \
  "${GO}" test -tags e2e -count=1 -v -parallel 8 -timeout "${E2E_TIMEOUT:-40m}" \
  -run "${E2E_RUN:-.}" ./test/e2e/...
