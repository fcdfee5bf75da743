#!/usr/bin/env bash
# Delete the e2e kind cluster and its kubeconfig. Deleting a cluster that does
# not exist is not an error.
set -euo pipefail

REPO_ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
KIND=${KIND:-${REPO_ROOT}/bin/kind}
KIND_CLUSTER_NAME=${KIND_CLUSTER_NAME:-mtls-webhook-e2e}
KUBECONFIG_FILE=${KUBECONFIG_FILE:-${REPO_ROOT}/bin/kind-e2e/${KIND_CLUSTER_NAME}.kubeconfig}

if "${KIND}" get clusters 2>/dev/null | grep -qx -- "${KIND_CLUSTER_NAME}"; then
  "${KIND}" delete cluster --name "${KIND_CLUSTER_NAME}"
else
  echo "[kind-down] no cluster ${KIND_CLUSTER_NAME}" >&2
fi
rm -f "${KUBECONFIG_FILE}"
