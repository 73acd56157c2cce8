#!/usr/bin/env bash
# Copies Debian's iptables (the nf_tables variant), the libraries it loads
# and its extension modules into a directory laid out as a root file
# system, for the proxy image: `strait-proxy init` (the injected init
# container) runs `iptables`. Used by the Dockerfile's build stage and by
# tests/cluster/images.sh, on Debian 12 (bookworm) or newer.
#
#   scripts/iptables-rootfs.sh OUT_DIR
set -euo pipefail
OUT=${1:?usage: $0 OUT_DIR}
MULTI=$(command -v xtables-nft-multi || echo /usr/sbin/xtables-nft-multi)
[[ -x $MULTI ]] || { echo "iptables-rootfs: no xtables-nft-multi (apt-get install iptables)" >&2; exit 1; }
mkdir -p "$OUT/usr/sbin"
cp -L "$MULTI" "$OUT/usr/sbin/xtables-nft-multi"
for n in iptables iptables-save iptables-restore ip6tables ip6tables-save ip6tables-restore; do
  ln -sf xtables-nft-multi "$OUT/usr/sbin/$n"
done
# The shared libraries, the dynamic loader, and the extensions iptables
# loads at run time (their own libraries are a subset of these).
for lib in $(ldd "$MULTI" | awk '/=> \// { print $3 } /^\t\/lib/ { print $1 }'); do
  mkdir -p "$OUT$(dirname "$lib")"
  cp -L "$lib" "$OUT$lib"
done
XT=$(dirname "$(ldd "$MULTI" | awk '/libxtables/ { print $3 }')")
for d in /usr/lib/x86_64-linux-gnu/xtables /usr/lib/xtables "$XT/xtables"; do
  if [[ -d $d ]]; then mkdir -p "$OUT$d"; cp -L "$d"/*.so "$OUT$d/"; break; fi
done
