#!/usr/bin/env bash
# seeds.sh EXPERIMENT SITE [SEED...]: train EXPERIMENT's recipe on all of its
# training data once per seed (allscreen train; no fold held out) and judge
# every model with `allscreen eval --model` on SITE, a labelled folder of
# normal white cells it never trained on (wbcseg: also per cell type).
# Models and reports go to $MODEL_WORK/seeds/<experiment>/; a model already
# there is reused (delete it to retrain). Then seeds.py writes
# model/results/seeds-<experiment>-<site>.json.
set -euo pipefail
exp=$1 site=$2
shift 2
seeds=("$@")
[ $# -eq 0 ] && seeds=(1 2 3 4 5)
: "${BIN:=bin}" "${MODEL_WORK:=out/model}" "${PYTHON:=/usr/bin/python3}" "${ALLSCREEN_DATA:=../shared/data}"
name=$(basename "$exp" .json)
dir=$MODEL_WORK/seeds/$name
mkdir -p "$dir" model/results
case $site in
wbcseg) data=(--data "$ALLSCREEN_DATA/wbcseg/images" --labels "$ALLSCREEN_DATA/wbcseg/labels.csv" --label-column celltype)
	types=(neutrophil lymphocyte monocyte eosinophil basophil) ;;
pbc-lymphocytes) data=(--data "$ALLSCREEN_DATA/pbc-lymphocytes" --labels "$ALLSCREEN_DATA/pbc-lymphocytes/labels.csv")
	types=() ;;
*) echo "seeds.sh: unknown site $site (wbcseg or pbc-lymphocytes)" >&2; exit 2 ;;
esac
# logged LOG CMD...: run CMD with its output in LOG; on failure show the log's end.
logged() {
	local log=$1
	shift
	if ! "$@" >"$log" 2>&1; then
		echo "seeds.sh: failed: $*" >&2
		tail -n 20 "$log" >&2
		exit 1
	fi
}
for s in "${seeds[@]}"; do
	m=$dir/s$s/$name-s$s.json
	if [ ! -f "$m" ]; then
		echo "seeds.sh: training $name seed $s" >&2
		logged "$dir/s$s.log" nice -n 10 "$BIN/allscreen" train --experiment "$exp" --name "$name-s$s" --seed "$s" \
			--work "$MODEL_WORK" --out "$dir/s$s" --samples "" --python "$PYTHON"
	fi
	logged "$dir/s$s-$site.log" "$BIN/allscreen" eval --model "$m" "${data[@]}" --map '*=normal' --json --out "$dir/s$s-$site.json"
	for t in "${types[@]}"; do
		logged "$dir/s$s-$site-$t.log" "$BIN/allscreen" eval --model "$m" "${data[@]}" --map "$t=normal,*=" --json --out "$dir/s$s-$site-$t.json"
	done
done
"$PYTHON" model/train/seeds.py "$dir" "$name" "$site" model/shipped/detect.json "model/results/seeds-$name-$site.json"
