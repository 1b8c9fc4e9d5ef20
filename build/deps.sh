#!/usr/bin/env bash
# Installs what allscreen needs on Debian 12 / Raspberry Pi OS bookworm, as
# root. Only missing packages are installed; run it as often as you like.
#   build/deps.sh           build and run (OpenCV, Go)
#   build/deps.sh test      + what the tests need (PyTorch, ONNX, systemd tools, chromium, pdftoppm)
#   build/deps.sh cross     + the arm64 cross toolchain and emulator
set -euo pipefail

GO_VERSION=1.26.8
want=(pkg-config gcc g++ libopencv-dev ca-certificates curl unzip)
for set in "$@"; do
  case "$set" in
    test) want+=(python3 python3-torch python3-onnx python3-torchvision python3-numpy python3-skimage python3-opencv python3-matplotlib systemd dpkg-dev sqlite3 fakeroot chromium poppler-utils) ;;
    cross) want+=(crossbuild-essential-arm64 qemu-user qemu-user-static binfmt-support mmdebstrap) ;;
    *) echo "deps.sh: unknown set '$set' (want test or cross)" >&2; exit 2 ;;
  esac
done

missing=()
for p in "${want[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
done
if ((${#missing[@]})); then
  if [[ $(id -u) -ne 0 ]]; then
    echo "deps.sh: missing packages: ${missing[*]}; run as root (sudo) to install them" >&2
    exit 1
  fi
  echo "deps.sh: installing ${missing[*]}"
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

# Go: Debian 12's own is too old. Take the official toolchain from the Go
# module proxy (the same source `go` itself uses for GOTOOLCHAIN).
have_go() {
  command -v go >/dev/null && go version | awk '{print $3}' | sed 's/^go//' |
    awk -F. -v want="$GO_VERSION" 'BEGIN{split(want,w,".")} {exit !($1>w[1] || ($1==w[1] && $2>=w[2]))}'
}
if ! have_go && [[ -x /usr/local/go/bin/go ]]; then export PATH=/usr/local/go/bin:$PATH; fi
if ! have_go; then
  arch=$(dpkg --print-architecture)
  proxy=${GOPROXY:-https://proxy.golang.org}; proxy=${proxy%%,*}
  url="$proxy/golang.org/toolchain/@v/v0.0.1-go$GO_VERSION.linux-$arch.zip"
  echo "deps.sh: Go $GO_VERSION not found; fetching $url"
  tmp=$(mktemp -d); trap 'rm -rf "$tmp"' EXIT
  curl -fsSL -o "$tmp/go.zip" "$url"
  unzip -q "$tmp/go.zip" -d "$tmp"
  rm -rf /usr/local/go && mv "$tmp/golang.org/toolchain@v0.0.1-go$GO_VERSION.linux-$arch" /usr/local/go
  chmod -R a+rX /usr/local/go; chmod a+x /usr/local/go/bin/* /usr/local/go/pkg/tool/*/*
  echo "deps.sh: installed Go in /usr/local/go (add /usr/local/go/bin to PATH)"
fi
