#!/usr/bin/env bash
# Builds (once) a Debian 12 arm64 sysroot with OpenCV's headers and libraries
# for cross-compiling gocv: build/sysroot.sh [DIR] (default build/sysroot-arm64).
# The mirror is this machine's own apt mirror, so it works wherever apt does.
# A finished sysroot is marked with .complete; a half-made one is rebuilt.
set -euo pipefail
cd "$(dirname "$0")/.."
root=${1:-build/sysroot-arm64}
if [[ -f $root/.complete ]]; then exit 0; fi

mirror=${MIRROR:-}
if [[ -z $mirror ]]; then
  # deb822 sources first (bookworm's default), then the one-line format.
  mirror=$(awk '/^URIs:/ {print $2; exit}' /etc/apt/sources.list.d/debian.sources 2>/dev/null || true)
fi
if [[ -z $mirror && -f /etc/apt/sources.list ]]; then
  mirror=$(awk '$1=="deb" && $2 !~ /^\[/ && $3 ~ /^bookworm$/ {print $2; exit}' /etc/apt/sources.list)
fi
mirror=${mirror:-http://deb.debian.org/debian}
for tool in mmdebstrap aarch64-linux-gnu-gcc; do
  command -v "$tool" >/dev/null || { echo "sysroot.sh: $tool missing; run build/deps.sh cross as root" >&2; exit 1; }
done

echo "sysroot.sh: building $root from $mirror"
rm -rf "$root"
mkdir -p "$(dirname "$root")"
mmdebstrap --quiet --variant=extract --architectures=arm64 \
  --include=libopencv-dev,libc6-dev bookworm "$root" "$mirror"
# Extract mode skips update-alternatives, which would make these links.
lib=$root/usr/lib/aarch64-linux-gnu
ln -sf blas/libblas.so.3 "$lib/libblas.so.3"
ln -sf lapack/liblapack.so.3 "$lib/liblapack.so.3"
touch "$root/.complete"
echo "sysroot.sh: done ($(du -sh "$root" | cut -f1))"
