# model/: the classifier (issue 3). `make go-test` already runs the Go unit,
# fuzz-seed, corrupt-model and tiny-fixture parity tests; these targets add
# the training smoke test (Python, about a minute) and the shipped models'
# parity. Heavy training is never part of `make test`.
.PHONY: model-smoke model-parity model model-detect model-subtype model-fixtures model-eval model-shortcuts report-model model-bench model-seeds
TEST_TARGETS += model-smoke model-parity
REPORT_TARGETS += report-model

PYTHON ?= /usr/bin/python3
MODEL_WORK ?= out/model
# Every experiment of docs/classifier.md; `make model-eval` reruns them all
# (hours on a 2-core machine; fold models are cached in $(MODEL_WORK), so an
# interrupted run resumes where it stopped).
MODEL_EXPERIMENTS ?= $(sort $(wildcard model/experiments/*.json))
# seeds of one experiment trained at once (each trainer runs on one thread)
EVAL_JOBS ?= 2

model-smoke: ## training smoke test: prepare samples/, train 1 epoch of both architectures, export, load in Go, parity
	ALLSCREEN_TRAIN_SMOKE=1 ALLSCREEN_PYTHON=$(PYTHON) $(GO) test -count=1 -run 'TestTrainingSmoke|TestAugmentChecks' -timeout 15m ./model/

model-parity: ## Go vs PyTorch on the committed fixtures (tiny model and shipped models) within 1e-4
	set -o pipefail; $(GO) test -count=1 -run 'Parity' -v ./model/ | grep -E '^(---|ok|FAIL|\s+net_test)'

# The detection model ships the leave-one-laboratory-out recipe chosen by its rule (docs/lolo.md), trained on
# every laboratory.
DETECT_RECIPE ?= model/experiments/lolo/lolo-c.json
model: model-detect model-subtype ## retrain the shipped models (model/shipped/) from ../shared/data, reproducibly
model-detect: build ## retrain the shipped detection model from $(DETECT_RECIPE), every laboratory
	nice -n 10 $(BIN)/allscreen train --experiment $(DETECT_RECIPE) --name detect --work $(MODEL_WORK) --python $(PYTHON)
model-subtype: build ## retrain the shipped subtype model
	nice -n 10 $(BIN)/allscreen train --experiment model/experiments/subtype-bll-stages.json --name subtype --work $(MODEL_WORK) --python $(PYTHON)

# Recipes trained on all their data once per seed (no fold held out), each model judged on a site it
# never trained on: EXPERIMENT:SITE. The "nopbc" recipes hold PBC out to choose a recipe on it
# (input colour mode, ALL-IDB1's other cells, weight averaging, ...), so that wbcseg stays a test; each
# is judged on wbcseg too, as a second unseen site (reported, never chosen on). A second site only
# evaluates the models the first one trained.
NOPBC_RECIPES ?= nopbc nopbc-labstd nopbc-idb1 nopbc-ema nopbc-idb1-ema nopbc-ema-long nopbc-ema-wide nopbc-ema-noedge
SEED_RUNS ?= $(foreach r,allidb2-compact-multisite allidb2-compact-multisite-labstd allidb2-compact-multisite-idb1 \
	  allidb2-compact-multisite-ema allidb2-compact-multisite-ema-long allidb2-compact-multisite-ema-wide \
	  allidb2-compact-multisite-ema-noedge,model/experiments/$(r).json:wbcseg) \
	model/experiments/seeds/multisite-idb1-ema.json:wbcseg \
	$(foreach r,$(NOPBC_RECIPES),model/experiments/seeds/$(r).json:pbc-lymphocytes model/experiments/seeds/$(r).json:wbcseg)
model-seeds: build ## recipes trained on all their data with seeds 1-5, judged on a site never trained on (model/results/seeds-*.json; models cached in $(MODEL_WORK)/seeds)
	set -e; for r in $(SEED_RUNS); do \
	  BIN=$(BIN) MODEL_WORK=$(MODEL_WORK) PYTHON=$(PYTHON) ALLSCREEN_DATA=$(D) model/train/seeds.sh $${r%%:*} $${r##*:}; done

model-fixtures: ## rewrite the tiny test model and its parity fixture (synthetic)
	$(PYTHON) model/train/fixtures.py model/testdata

model-eval: build model-shortcuts ## rerun every evaluation experiment into model/results/ (long)
	@mkdir -p model/results
	set -e; for e in $(MODEL_EXPERIMENTS); do n=$$(basename $$e .json); \
	  nice -n 10 $(BIN)/allscreen eval --experiment $$e --jobs $(EVAL_JOBS) --work $(MODEL_WORK) --python $(PYTHON) --json \
	    --out model/results/$$n.json --predictions model/results/$$n-predictions.csv >/dev/null; done

report-model: ## regenerate docs/classifier.md's figures and tables and the README section from model/results/
	$(PYTHON) model/train/report.py

model-bench: ## Go inference per crop at batch 1 and 16, both architectures, with PyTorch eager on the same inputs (model/results/bench.txt)
	set -o pipefail; $(GO) test -run '^$$' -bench 'Classify|Forward' -benchtime 20x -count 3 ./model/ | tee model/results/bench.txt

D := $(ALLSCREEN_DATA)
# asis_prep NAME: the newest prepared 64x64 masked inputs of NAME with the colours as the camera saw them
# (a colour-standardised preparation says "colour" in its spec.json)
asis_prep = for p in $$(ls -td $(MODEL_WORK)/prep/$(1)-64-cell-*); do grep -q '"colour"' $$p/spec.json || { echo $$p; break; }; done
model-shortcuts: build ## what image size, file size or background colour alone predicts (model/results/shortcut-*.json)
	@mkdir -p model/results
	$(BIN)/allscreen shortcut --json --data $(D)/allidb2/images --labels $(D)/allidb2/labels.csv --features border-bstar,border-rgb,bytes,size > model/results/shortcut-allidb2.json
	$(BIN)/allscreen shortcut --json --data $(D)/allidb1/fields --labels $(D)/allidb1/labels.csv --features size,aspect,border-rgb > model/results/shortcut-allidb1.json
	$(BIN)/allscreen shortcut --json --data $(D)/paper-l1l2l3 --labels $(D)/paper-l1l2l3/manifest.csv --group-column original_sha256_16 > model/results/shortcut-l1l2l3.json
	$(BIN)/allscreen shortcut --json --data $(D)/bll-stages --group-blocks 20 --features border-rgb,border-bstar,bytes > model/results/shortcut-bll-stages.json
	$(BIN)/allscreen shortcut --json --data $(D)/bll-stages --group-blocks 20 --features border-rgb,border-bstar --only early-pre-b,pre-b,pro-b > model/results/shortcut-bll-stages-blasts.json
	@# the segmented cell's own mean colour, on the inputs the experiments prepared (run model-eval first)
	p=$$($(call asis_prep,bll-stages)) && $(BIN)/allscreen shortcut --json --prepared --data $$p --group-blocks 20 --features cell-rgb --only early-pre-b,pre-b,pro-b > model/results/shortcut-bll-stages-cells.json
	p=$$($(call asis_prep,allidb2)) && $(BIN)/allscreen shortcut --json --prepared --data $$p --features cell-rgb > model/results/shortcut-allidb2-cells.json
