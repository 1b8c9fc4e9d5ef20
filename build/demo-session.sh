#!/usr/bin/env bash
# A scripted session on the simulated appliance: two samples of a few fields
# each, button presses sent as signals (SIGUSR1 short, SIGUSR2 long), the
# panel printed as it changes. The camera is a folder of images.
#   build/demo-session.sh ALLSCREEND STATE_DIR MODEL_MANIFEST IMAGE_DIR
set -euo pipefail
daemon=${1:?} state=${2:?} model=${3:?} images=${4:?}
mkdir -p "$state"
panel=$(mktemp)
trap 'kill "$pid" 2>/dev/null || true; rm -f "$panel"' EXIT
"$daemon" --sim --config /nonexistent.toml --state-dir "$state" --model "$model" \
  --camera-folder "$images" </dev/null >"$panel" 2>"$state/allscreend.log" &
pid=$!
tail -f --pid="$pid" "$panel" &

# wait_for N PATTERN: until PATTERN has appeared N times on the panel.
wait_for() {
  for _ in $(seq 600); do
    [[ $(grep -c -- "$2" "$panel" || true) -ge $1 ]] && return 0
    kill -0 "$pid" 2>/dev/null || { echo "allscreend stopped; see $state/allscreend.log" >&2; exit 1; }
    sleep 0.1
  done
  echo "demo-session: timed out waiting for $2" >&2; exit 1
}
wait_for 1 'lights: ready'
fields=0 verdicts=0
for sample in 4 3; do
  for _ in $(seq "$sample"); do
    kill -USR1 "$pid"; fields=$((fields + 1))
    wait_for "$fields" '"Field [0-9]*'
  done
  kill -USR2 "$pid"; verdicts=$((verdicts + 1))
  wait_for "$verdicts" 'lights: \(refer\|no-blasts\|review\)'
  sleep 0.2
done
kill -TERM "$pid"
wait "$pid"
echo "demo-session: $fields fields in 2 samples, stored in $state"
