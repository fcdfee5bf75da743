#!/usr/bin/env bash
# install-deb.sh DEST PKG=VERSION... : download the pinned Debian packages
# with `apt-get download` (no system-wide install) and unpack each with
# `dpkg-deb -x` into DEST, for make/node.mk, make/checks.mk (shellcheck),
# make/tls.mk (openssl) and hack/netpol/install-tools.sh to pick the files
# they need.
# Refreshes the package lists once if a download fails.
set -euo pipefail

dest=$1
shift
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

sudo=""
if [ "$(id -u)" != 0 ] && command -v sudo >/dev/null; then sudo=sudo; fi

if ! (cd "$tmp" && apt-get download "$@"); then
  echo "apt-get download failed; refreshing the package lists"
  $sudo apt-get update
  (cd "$tmp" && apt-get download "$@")
fi
mkdir -p "$dest"
for deb in "$tmp"/*.deb; do
  dpkg-deb -x "$deb" "$dest"
done
