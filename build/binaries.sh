#!/usr/bin/env bash
# Builds allscreend, allscreen and allscreen-review for ARCH (amd64 or arm64) into
# build/out/ARCH/ with the release flags the packages use.
#   build/binaries.sh amd64|arm64
set -euo pipefail
cd "$(dirname "$0")/.."
arch=${1:?usage: build/binaries.sh amd64|arm64}
out=build/out/$arch
mkdir -p "$out"
version=$(git describe --always --dirty 2>/dev/null || echo dev)
if [[ $arch == arm64 ]]; then
  build/sysroot.sh
  . build/env-arm64.sh
elif [[ $arch != "$(go env GOARCH)" ]]; then
  echo "binaries.sh: cannot build $arch here" >&2; exit 2
fi
# -s -w: no symbol tables (a third of the size); the version names the commit.
# No -trimpath: it would compile gocv (minutes) a second time, apart from
# the cache the tests share.
built=$(git log -1 --format=%cI 2>/dev/null || true)
flags=(-ldflags "-s -w -X main.version=$version -X main.buildDate=$built")
go build "${flags[@]}" -o "$out/allscreend" ./cmd/allscreend
go build "${flags[@]}" -o "$out/allscreen" ./cmd/allscreen
go build "${flags[@]}" -o "$out/allscreen-review" ./cmd/allscreen-review
ls -l "$out"
