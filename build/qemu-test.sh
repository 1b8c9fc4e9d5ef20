#!/usr/bin/env bash
# Runs, under qemu-aarch64, the tests of the packages that need no
# hardware, and a smoke run of the arm64 allscreen on a sample image.
# (No -race: it does not work under qemu. Timings there mean nothing.)
set -euo pipefail
cd "$(dirname "$0")/.."
build/sysroot.sh
. build/env-arm64.sh
command -v qemu-aarch64 >/dev/null || { echo "qemu-test.sh: qemu-aarch64 missing; run build/deps.sh cross" >&2; exit 1; }
pkgs=(./device/... ./internal/config ./internal/appliance ./screening)
go test -count=1 -short -exec "qemu-aarch64 -L $SYSROOT" "${pkgs[@]}"

[[ -x build/out/arm64/allscreen ]] || build/binaries.sh arm64
file build/out/arm64/allscreen | grep -q 'ARM aarch64' || { echo "qemu-test.sh: not an arm64 binary" >&2; exit 1; }
img=samples/blast_cnmc_UID_1_2_2_all.png
out=$(qemu-aarch64 -L "$SYSROOT" build/out/arm64/allscreen analyze --json "$img")
echo "arm64 smoke: $out"
want=$(go run ./cmd/allscreen analyze --json "$img")
if [[ "$out" != "$want" ]]; then
  echo "qemu-test.sh: arm64 and amd64 disagree on $img:" >&2
  echo "  amd64: $want" >&2
  exit 1
fi
qemu-aarch64 -L "$SYSROOT" build/out/arm64/allscreend --version
echo "qemu-test.sh: arm64 tests and smoke run passed"
