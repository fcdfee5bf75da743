#!/usr/bin/env bash
# Builds a release of mtls-webhook: the project's images (the same builder as
# `make images`, no Docker) and both Helm charts, versioned together, into
# bin/release/<version>/. With --push it then pushes the images and the charts
# to the registry and signs every pushed digest keylessly with cosign (the
# signing identity is the CI job's OIDC token; see .github/workflows/release.yaml).
#
#   hack/release.sh 0.2.0            # build and package only (dry run)
#   hack/release.sh 0.2.0 --push     # also push and sign (needs a registry login)
#
# REGISTRY (default ghcr.io/mtls-demo) is where the images go; the charts go
# to oci://$REGISTRY/charts. The packaged charts default to exactly these
# images, so `helm install` of a release pulls what was pushed.
set -euo pipefail

root="$(cd "$(dirname "$0")/.." && pwd)"
cd "$root"

version="${1:-}"
push="${2:-}"
if [[ ! "$version" =~ ^[0-9]+\.[0-9]+\.[0-9]+(-[0-9A-Za-z.-]+)?$ ]]; then
  echo "usage: hack/release.sh <version> [--push]   (version: semver without a leading v, e.g. 0.2.0; got '${version}')" >&2
  exit 2
fi
if [[ -n "$push" && "$push" != "--push" ]]; then
  echo "hack/release.sh: second argument must be --push or nothing, got '${push}'" >&2
  exit 2
fi

registry="${REGISTRY:-ghcr.io/mtls-demo}"
bin="${BIN:-$root/bin}"
helm="${HELM:-$bin/helm}"
crane="${CRANE:-$bin/crane}"
cosign="${COSIGN:-$bin/cosign}"
out="$bin/release/$version"
images=(mtls-webhook demo-backend demo-frontend demo-client)

rm -rf "$out"
mkdir -p "$out/images" "$out/charts"

echo "release $version: images for $registry"
go run ./hack/images -out "$out/images" -registry "$registry" -tag "$version" -version "v$version" \
  -only "$(IFS=,; echo "${images[*]}")"

echo "release $version: charts"
for chart in mtls-webhook mtls-demo; do
  work="$out/charts/src/$chart"
  mkdir -p "$work"
  cp -R "helm/$chart/." "$work/"
  # The chart's defaults name the images of this release, in this registry.
  sed -i -E \
    -e "s#ghcr\.io/mtls-demo/#${registry}/#g" \
    -e "s#(${registry//./\\.}/demo-(frontend|backend)):[0-9A-Za-z.+-]+#\\1:${version}#g" \
    "$work/values.yaml"
  "$helm" lint --strict --kube-version 1.37.0 "$work"
  "$helm" package "$work" --version "$version" --app-version "$version" --destination "$out/charts"
done
rm -rf "$out/charts/src"

if [[ -z "$push" ]]; then
  echo "release $version: built into $out (not pushed; add --push)"
  exit 0
fi

digests="$out/digests.txt"
: > "$digests"
for name in "${images[@]}"; do
  ref="$registry/$name:$version"
  tarball="$(go run ./hack/images -out "$out/images" -only "$name" -tarballs)"
  echo "push $tarball -> $ref"
  digest="$("$crane" push "$tarball" "$ref")" # prints <repo>@sha256:...
  echo "$digest" >> "$digests"
  "$cosign" sign --yes "$digest"
done
for pkg in "$out"/charts/*.tgz; do
  echo "push $pkg -> oci://$registry/charts"
  pushed="$("$helm" push "$pkg" "oci://$registry/charts" 2>&1)"
  echo "$pushed"
  chart_digest="$(sed -n -E 's/^Digest: (sha256:[0-9a-f]+)$/\1/p' <<<"$pushed")"
  chart_name="$(basename "$pkg" "-$version.tgz")"
  if [[ -z "$chart_digest" ]]; then
    echo "hack/release.sh: helm push printed no digest for $pkg" >&2
    exit 1
  fi
  echo "$registry/charts/$chart_name@$chart_digest" >> "$digests"
  "$cosign" sign --yes "$registry/charts/$chart_name@$chart_digest"
done
echo "release $version: pushed and signed:"
cat "$digests"
