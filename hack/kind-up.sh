#!/usr/bin/env bash
# Create (or reuse) the kind cluster for the e2e suite and install
# cert-manager and cert-manager-csi-driver from the Jetstack charts, at pinned
# versions, waiting until both are ready. Idempotent: an existing cluster is
# reused and `helm upgrade --install` converges the charts.
#
# Environment (the Makefile's kind-up / kind-e2e targets set the tools):
#   KIND, HELM           tool binaries (default: bin/kind, bin/helm)
#   KIND_CLUSTER_NAME    cluster name (default mtls-webhook-e2e)
#   KIND_NODE_IMAGE      node image (default below)
#   KUBECONFIG_FILE      kubeconfig written for the cluster
#                        (default bin/kind-e2e/<cluster>.kubeconfig; ~/.kube/config is left alone;
#                        bin/kind itself is the kind binary)
set -euo pipefail

REPO_ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
KIND=${KIND:-${REPO_ROOT}/bin/kind}
HELM=${HELM:-${REPO_ROOT}/bin/helm}
KIND_CLUSTER_NAME=${KIND_CLUSTER_NAME:-mtls-webhook-e2e}
# The node image of kind v0.33.0's own release, by digest
# (sigs.k8s.io/kind@v0.33.0 pkg/apis/config/defaults/image.go): Kubernetes
# v1.37.0, the minor the local cluster runs (v1.37.2). The charts need >= 1.30.
KIND_NODE_IMAGE=${KIND_NODE_IMAGE:-kindest/node:v1.37.0@sha256:a1ed56cfb0e7b93589bdf97c8cd566405a265939e3620fc4f5de89adff580ae5}
KUBECONFIG_FILE=${KUBECONFIG_FILE:-${REPO_ROOT}/bin/kind-e2e/${KIND_CLUSTER_NAME}.kubeconfig}
JETSTACK_REPO=https://charts.jetstack.io
CERT_MANAGER_VERSION=v1.19.2
CSI_DRIVER_VERSION=v0.12.0
CERT_MANAGER_NAMESPACE=cert-manager

log() { printf '[kind-up] %s\n' "$*" >&2; }

for tool in "${KIND}" "${HELM}"; do
  [[ -x "${tool}" ]] || { log "missing ${tool}: run through 'make kind-up'"; exit 1; }
done
command -v docker >/dev/null || { log "docker is required"; exit 1; }
docker info >/dev/null 2>&1 || { log "the Docker engine is not reachable (docker info failed)"; exit 1; }

mkdir -p "$(dirname "${KUBECONFIG_FILE}")"
if "${KIND}" get clusters 2>/dev/null | grep -qx -- "${KIND_CLUSTER_NAME}"; then
  log "reusing cluster ${KIND_CLUSTER_NAME}"
  "${KIND}" export kubeconfig --name "${KIND_CLUSTER_NAME}" --kubeconfig "${KUBECONFIG_FILE}"
else
  log "creating cluster ${KIND_CLUSTER_NAME} (${KIND_NODE_IMAGE})"
  "${KIND}" create cluster --name "${KIND_CLUSTER_NAME}" --image "${KIND_NODE_IMAGE}" \
    --config "${REPO_ROOT}/hack/kind/cluster.yaml" --kubeconfig "${KUBECONFIG_FILE}" --wait 180s
fi
export KUBECONFIG="${KUBECONFIG_FILE}"

# cert-manager with its CRDs. --wait also waits for the chart's
# startupapicheck hook, which only succeeds once cert-manager's webhook
# answers, so Certificates can be created right after this.
log "installing cert-manager ${CERT_MANAGER_VERSION}"
"${HELM}" upgrade --install cert-manager cert-manager \
  --repo "${JETSTACK_REPO}" --version "${CERT_MANAGER_VERSION}" \
  --namespace "${CERT_MANAGER_NAMESPACE}" --create-namespace \
  --set crds.enabled=true \
  --wait --timeout 10m

# The CSI driver (a DaemonSet registering csi.cert-manager.io); --wait waits
# until it runs on every node.
log "installing cert-manager-csi-driver ${CSI_DRIVER_VERSION}"
"${HELM}" upgrade --install cert-manager-csi-driver cert-manager-csi-driver \
  --repo "${JETSTACK_REPO}" --version "${CSI_DRIVER_VERSION}" \
  --namespace "${CERT_MANAGER_NAMESPACE}" \
  --wait --timeout 10m

log "ready: export KUBECONFIG=${KUBECONFIG_FILE}"
