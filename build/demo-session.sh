#!/usr/bin/env bash
# A scripted session on the simulated appliance, button presses sent as
# signals (SIGUSR1 short, SIGUSR2 long), the panel printed as it changes.
# The camera is a folder of images, taken in name order:
#   1. IMAGE_DIR's 4 C-NMC blasts (subjects the model never trained on);
#   2. its next 3 images, normal cells: too few for a verdict (review);
#   3. IMAGE_DIR/smear-normal's 120 PBC normal cells: enough for
#      "no blasts seen", if the model calls none of them a blast.
# The three samples go into one results store.
#   build/demo-session.sh ALLSCREEND STATE_DIR MODEL_MANIFEST IMAGE_DIR
set -euo pipefail
daemon=${1:?} state=${2:?} model=${3:?} images=${4:?}
mkdir -p "$state"
panel=$(mktemp)
pid=
trap 'kill "$pid" 2>/dev/null || true; rm -f "$panel"' EXIT
fields=0 verdicts=0 samples=0

# wait_for N PATTERN: until PATTERN has appeared N times on the panel.
wait_for() {
  for _ in $(seq 600); do
    [[ $(grep -c -- "$2" "$panel" || true) -ge $1 ]] && return 0
    kill -0 "$pid" 2>/dev/null || { echo "allscreend stopped; see $state/allscreend.log" >&2; exit 1; }
    sleep 0.1
  done
  echo "demo-session: timed out waiting for $2" >&2; exit 1
}

# session SHOW CAMERA_DIR FIELDS...: start the appliance on CAMERA_DIR,
# take one sample of each given number of fields, stop it. SHOW=fields
# prints every panel change, SHOW=verdicts leaves out the field lines.
session() {
  local show=$1 camera=$2
  shift 2
  : >"$panel"
  fields=0 verdicts=0
  "$daemon" --sim --config /nonexistent.toml --state-dir "$state" --model "$model" \
    --camera-folder "$camera" </dev/null >"$panel" 2>>"$state/allscreend.log" &
  pid=$!
  if [[ $show == fields ]]; then
    tail -f --pid="$pid" "$panel" &
  else
    tail -f --pid="$pid" "$panel" | grep --line-buffered -v -e 'Analysing\.\.\.' -e '"Field [0-9]*: ' -e '^lights: \(ready\|working\)$' &
  fi
  wait_for 1 'lights: ready'
  local nexts=0
  for sample in "$@"; do
    if ((nexts < verdicts)); then
      # After a verdict the first press asks for the next slide.
      kill -USR1 "$pid"; nexts=$((nexts + 1))
      wait_for "$nexts" 'next slide'
    fi
    for _ in $(seq "$sample"); do
      kill -USR1 "$pid"; fields=$((fields + 1))
      wait_for "$fields" '"Field [0-9]*'
    done
    kill -USR2 "$pid"; verdicts=$((verdicts + 1)); samples=$((samples + 1))
    wait_for "$verdicts" 'lights: \(refer\|no-blasts\|review\)'
    sleep 0.2
  done
  kill -TERM "$pid"
  wait "$pid"
}
session fields "$images" 4 3
session verdicts "$images/smear-normal" 120
echo "demo-session: $samples samples stored in $state"
