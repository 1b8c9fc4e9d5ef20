#!/usr/bin/env bash
# Installs the amd64 .deb on this machine (as root), starts the installed
# daemon as the service would (its user, its config, a fake NOTIFY_SOCKET
# standing in for systemd, which is not PID 1 here), checks READY, then
# purges the package and checks nothing of it is left but the results.
set -euo pipefail
cd "$(dirname "$0")/.."
[[ $(id -u) -eq 0 ]] || { echo "deb-install-test.sh: run as root (it installs a package)" >&2; exit 1; }
deb=$(ls -t build/out/allscreen_*_amd64.deb 2>/dev/null | head -1 || true)
if [[ -z $deb ]]; then build/deb.sh amd64 >/dev/null; deb=$(ls -t build/out/allscreen_*_amd64.deb | head -1); fi
if dpkg-query -W allscreen >/dev/null 2>&1; then
  echo "deb-install-test.sh: allscreen is already installed here; not touching it" >&2; exit 1
fi
work=$(mktemp -d)
cleanup() {
  [[ -n ${pid:-} ]] && kill "$pid" 2>/dev/null || true
  dpkg --purge allscreen >/dev/null 2>&1 || true
  rm -rf "$work" /var/lib/allscreen
}
trap cleanup EXIT

dpkg -i "$deb"
for f in /usr/bin/allscreend /usr/bin/allscreen /usr/bin/allscreen-review /lib/systemd/system/allscreend.service \
         /lib/systemd/system/allscreen-review.service /lib/systemd/system/allscreen-clock.service \
         /lib/systemd/system/allscreen-clock.path \
         /usr/lib/sysusers.d/allscreen.conf /lib/udev/rules.d/60-allscreen.rules /etc/allscreen/allscreen.toml /etc/allscreen/trusted-keys; do
  [[ -e $f ]] || { echo "deb-install-test.sh: $f not installed" >&2; exit 1; }
done
id allscreen >/dev/null
for g in video gpio i2c; do id -nG allscreen | grep -qw "$g" || { echo "allscreen is not in group $g" >&2; exit 1; }; done
[[ $(stat -c %U /var/lib/allscreen) == allscreen ]]

# The packaged configuration asks for a USB camera and real GPIO; here there
# is neither, so the daemon must come up (on its simulated panel) and report
# READY=1 with a status saying what is missing, as under systemd.
python3 - "$work/notify.sock" > "$work/notify.log" <<'PY' &
import socket, sys
s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
s.bind(sys.argv[1])
while True:
    msg = s.recv(4096).decode()
    print(msg.replace("\n", " "), flush=True)
PY
listener=$!
for _ in $(seq 50); do [[ -S $work/notify.sock ]] && break; sleep 0.1; done
chmod 0777 "$work" && chmod 0666 "$work/notify.sock"
setpriv --reuid=allscreen --regid=allscreen --init-groups env NOTIFY_SOCKET="$work/notify.sock" \
  /usr/bin/allscreend --config /etc/allscreen/allscreen.toml </dev/null >"$work/out.log" 2>"$work/err.log" &
pid=$!
for _ in $(seq 300); do grep -q 'READY=1' "$work/notify.log" && break; sleep 0.1; done
if ! grep -q 'READY=1' "$work/notify.log"; then
  echo "deb-install-test.sh: no READY=1 from the installed daemon" >&2; cat "$work/err.log" >&2; exit 1
fi
grep -m1 'STATUS=' "$work/notify.log"
kill -TERM "$pid"; wait "$pid"; pid=""
kill "$listener" 2>/dev/null || true
grep -q 'STOPPING=1' "$work/notify.log"
[[ -d /var/lib/allscreen ]] # it wrote its results database there
ls /var/lib/allscreen

# The review station, as its unit runs it, on the database the daemon made:
# an account, the health page, and a page refused without a login.
printf 'reviewer password\n2468\n' | setpriv --reuid=allscreen --regid=allscreen --init-groups \
  /usr/bin/allscreen user add "Install Test" --role reviewer --state /var/lib/allscreen
setpriv --reuid=allscreen --regid=allscreen --init-groups \
  /usr/bin/allscreen-review --config /etc/allscreen/allscreen.toml --listen 127.0.0.1:18480 </dev/null >"$work/review.log" 2>&1 &
pid=$!
for _ in $(seq 100); do curl -fsS http://127.0.0.1:18480/health >/dev/null 2>&1 && break; sleep 0.1; done
[[ $(curl -fsS http://127.0.0.1:18480/health) == ok ]] || { echo "deb-install-test.sh: review station not healthy" >&2; cat "$work/review.log" >&2; exit 1; }
[[ $(curl -s -o /dev/null -w '%{http_code}' http://127.0.0.1:18480/) == 303 ]] || { echo "deb-install-test.sh: the sample list answered without a login" >&2; exit 1; }
kill -TERM "$pid"; wait "$pid"; pid=""

dpkg --purge allscreen
for f in /usr/bin/allscreend /usr/bin/allscreen-review /lib/systemd/system/allscreend.service /lib/systemd/system/allscreen-review.service /etc/allscreen/allscreen.toml; do
  [[ ! -e $f ]] || { echo "deb-install-test.sh: $f left after purge" >&2; exit 1; }
done
echo "deb-install-test.sh: installed, started (READY), stopped and purged $deb"
