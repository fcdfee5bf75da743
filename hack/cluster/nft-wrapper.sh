#!/bin/sh
# bin/nft: runs the nft of the pinned Debian packages that make/node.mk
# unpacked into bin/nft-root, with their libnftables and libnftnl.
root="$(dirname "$(readlink -f "$0")")/nft-root"
LD_LIBRARY_PATH="$root/usr/lib/x86_64-linux-gnu${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}" exec "$root/usr/sbin/nft" "$@"
