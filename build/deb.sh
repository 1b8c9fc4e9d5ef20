#!/usr/bin/env bash
# Builds the allscreen .deb for ARCH from build/out/ARCH (build/binaries.sh):
# binaries, systemd unit, sysusers, tmpfiles, udev rules, the default
# configuration (a conffile) and the shipped models.
#   build/deb.sh amd64|arm64 [--no-models]
# Depends are derived from the binaries' NEEDED entries: each library is
# mapped to its Debian package with dpkg -S on the amd64 build (Debian's
# multiarch library packages have the same names on arm64; the arm64
# binaries' NEEDED entries are checked to be among the amd64 ones).
set -euo pipefail
cd "$(dirname "$0")/.."
arch=${1:?usage: build/deb.sh amd64|arm64 [--no-models]}
models=yes
[[ ${2:-} == --no-models ]] && models=no
[[ -x build/out/$arch/allscreen-review ]] || build/binaries.sh "$arch"
[[ -x build/out/amd64/allscreen-review ]] || build/binaries.sh amd64

needed() { objdump -p "$1" | awk '$1=="NEEDED"{print $2}' | sort -u; }
host_needed=$( (needed build/out/amd64/allscreend; needed build/out/amd64/allscreen; needed build/out/amd64/allscreen-review) | sort -u)
if [[ $arch != amd64 ]]; then
  arch_needed=$( (needed "build/out/$arch/allscreend"; needed "build/out/$arch/allscreen"; needed "build/out/$arch/allscreen-review") | sort -u)
  extra=$(comm -13 <(echo "$host_needed") <(echo "$arch_needed"))
  if [[ -n $extra ]]; then
    echo "deb.sh: the $arch binaries need libraries the amd64 ones do not: $extra" >&2
    exit 1
  fi
fi
depends=()
cache=$(ldconfig -p)
for so in $host_needed; do
  path=$(awk -v so="$so" '$1==so && /x86-64/ && !p {print $NF; p=1}' <<<"$cache")
  [[ -n $path ]] || { echo "deb.sh: cannot find $so on this machine" >&2; exit 1; }
  # The package owning the file (through the /lib -> /usr/lib link too).
  owner=$(dpkg -S "$path" 2>/dev/null || dpkg -S "$(readlink -f "$path")" 2>/dev/null || true)
  [[ -n $owner ]] || { echo "deb.sh: no package owns $path" >&2; exit 1; }
  pkg=$(awk -F: 'NR==1 {print $1}' <<<"$owner")
  ver=$(dpkg-query -W -f='${Version}' "$pkg:amd64" 2>/dev/null || dpkg-query -W -f='${Version}' "$pkg")
  # The upstream part only: the board's Debian revision may differ.
  depends+=("$pkg (>= ${ver%%-*})")
done
depends_line=$(printf '%s\n' "${depends[@]}" | sort -u | paste -sd, | sed 's/,/, /g')

version=$(git describe --always --dirty 2>/dev/null | sed 's/^v//; s/^\([0-9a-f]\{7,\}\)/0.1~git\1/')
version=${version:-0.1}
name=allscreen
suffix=""
[[ $models == no ]] && suffix="-nomodels"
root=$(mktemp -d)
chmod 0755 "$root" # dpkg-deb copies the mode of the package root
trap 'rm -rf "$root"' EXIT
install -d -m 0755 "$root/DEBIAN" "$root/usr/bin" "$root/lib/systemd/system" "$root/usr/lib/sysusers.d" \
  "$root/usr/lib/tmpfiles.d" "$root/lib/udev/rules.d" "$root/etc/allscreen" "$root/usr/share/doc/$name" \
  "$root/usr/share/allscreen/model"
install -m 0755 "build/out/$arch/allscreend" "build/out/$arch/allscreen" "build/out/$arch/allscreen-review" "$root/usr/bin/"
install -m 0644 systemd/allscreend.service systemd/allscreen-review.service systemd/allscreen-clock.service \
  systemd/allscreen-clock.path "$root/lib/systemd/system/"
install -m 0644 systemd/allscreen.sysusers "$root/usr/lib/sysusers.d/allscreen.conf"
install -m 0644 systemd/allscreen.tmpfiles "$root/usr/lib/tmpfiles.d/allscreen.conf"
install -m 0644 systemd/60-allscreen.rules "$root/lib/udev/rules.d/"
install -m 0644 systemd/allscreen.toml systemd/trusted-keys "$root/etc/allscreen/"
install -m 0644 README.md "$root/usr/share/doc/$name/"
if [[ $models == yes ]]; then
  for f in model/shipped/*.json model/shipped/*.onnx; do
    [[ -e $f ]] && install -m 0644 "$f" "$root/usr/share/allscreen/model/"
  done
fi
printf '%s\n' /etc/allscreen/allscreen.toml /etc/allscreen/trusted-keys > "$root/DEBIAN/conffiles"
cat > "$root/DEBIAN/control" <<CONTROL
Package: $name
Version: $version
Architecture: $arch
Maintainer: allscreen maintainers <maintainers@allscreen.invalid>
Section: science
Priority: optional
Depends: $depends_line, systemd
Installed-Size: $(du -sk "$root" | cut -f1)
Description: offline blood smear screening appliance for acute lymphoblastic leukaemia
 allscreend drives a USB microscope, a capture button, three LEDs and a small
 display; it finds white cells, classifies them and gives a per-sample
 verdict, stored durably. A screening aid for trained staff, not a diagnosis.
CONTROL
cat > "$root/DEBIAN/postinst" <<'SCRIPT'
#!/bin/sh
set -e
if [ "$1" = configure ]; then
  systemd-sysusers allscreen.conf
  systemd-tmpfiles --create allscreen.conf || true
  if [ -d /run/udev ]; then udevadm control --reload-rules || true; udevadm trigger || true; fi
  if [ -d /run/systemd/system ]; then
    systemctl daemon-reload
    systemctl enable allscreend.service allscreen-review.service allscreen-clock.path
    systemctl restart allscreend.service || true
    systemctl restart allscreen-review.service || true
    systemctl start allscreen-clock.path || true
  fi
fi
SCRIPT
cat > "$root/DEBIAN/prerm" <<'SCRIPT'
#!/bin/sh
set -e
if [ -d /run/systemd/system ]; then
  systemctl stop allscreen-clock.path allscreen-review.service allscreend.service || true
  [ "$1" = remove ] && systemctl disable allscreen-clock.path allscreen-review.service allscreend.service || true
fi
SCRIPT
cat > "$root/DEBIAN/postrm" <<'SCRIPT'
#!/bin/sh
set -e
[ -d /run/systemd/system ] && systemctl daemon-reload || true
if [ "$1" = purge ]; then
  # Results are medical records: purging the software never deletes them.
  if [ -d /var/lib/allscreen ]; then
    echo "allscreen: results kept in /var/lib/allscreen; export them, then delete the folder by hand" >&2
  fi
fi
SCRIPT
chmod 0755 "$root/DEBIAN/postinst" "$root/DEBIAN/prerm" "$root/DEBIAN/postrm"
mkdir -p build/out
deb=build/out/${name}_${version}_${arch}${suffix}.deb
dpkg-deb --root-owner-group -Zxz --build "$root" "$deb" >/dev/null
echo "$deb $(stat -c %s "$deb") bytes"
echo "Depends: $depends_line, systemd"
