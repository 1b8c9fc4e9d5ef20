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
# Two screening tests start their own test binary as a second process: the
# kernel here has no binfmt entry for arm64, so that child cannot start.
skip='TestLockedDatabaseGivesClearErrorThenRetrySucceeds|TestWriteWaitsForAShortLock'
go test -count=1 -short -skip "$skip" -exec "qemu-aarch64 -L $SYSROOT" "${pkgs[@]}"

build/binaries.sh arm64 >/dev/null # incremental: the binary matches the tree
file build/out/arm64/allscreen | grep -q 'ARM aarch64' || { echo "qemu-test.sh: not an arm64 binary" >&2; exit 1; }
img=samples/blast_cnmc_UID_1_2_2_all.png
out=$(qemu-aarch64 -L "$SYSROOT" build/out/arm64/allscreen analyze --json "$img")
echo "arm64 smoke: $out"
want=$(env -u GOOS -u GOARCH -u CC -u CXX -u PKG_CONFIG_SYSROOT_DIR -u PKG_CONFIG_LIBDIR go run ./cmd/allscreen analyze --json "$img")
# The cells found must be the same; measured floats may differ in the last
# bits (arm64 fuses multiply-adds), so only the boxes are compared.
if ! python3 - "$out" "$want" <<'PY'
import json, sys
a, b = (json.loads(x) for x in sys.argv[1:3])
box = lambda r: [(c["x"], c["y"], c["w"], c["h"]) for c in r["cells"]]
sys.exit(0 if a["width"] == b["width"] and box(a) == box(b) and box(a) else 1)
PY
then
  echo "qemu-test.sh: arm64 and amd64 disagree on $img (or found no cell):" >&2
  echo "  amd64: $want" >&2
  exit 1
fi
qemu-aarch64 -L "$SYSROOT" build/out/arm64/allscreend --version
echo "qemu-test.sh: arm64 tests and smoke run passed"
