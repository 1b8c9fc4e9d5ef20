# Leave one laboratory out (issue 12): every recipe of model/experiments/lolo/
# trained once per laboratory and seed without that laboratory, and judged on
# it. Hours on 2 cores; every trained model is cached in $(MODEL_WORK)/lolo,
# so an interrupted `make lolo` resumes where it stopped. Never part of
# `make test` (its unit tests are).
.PHONY: lolo report-lolo
REPORT_TARGETS += report-lolo

LOLO_RECIPES ?= $(sort $(wildcard model/experiments/lolo/*.json))
LOLO_JOBS ?= 2

lolo: build ## train and judge every leave-one-laboratory-out recipe (model/results/lolo-*.json; resumable)
	@mkdir -p model/results
	set -e; for e in $(LOLO_RECIPES); do n=$$(basename $$e .json); \
	  $(BIN)/allscreen lolo --experiment $$e --jobs $(LOLO_JOBS) --data $(ALLSCREEN_DATA) --work $(MODEL_WORK) --python $(PYTHON) \
	    --out model/results/$$n.json --cells $(MODEL_WORK)/lolo/$$n-cells.csv; done

report-lolo: build ## docs/lolo.md and the README's headline from model/results/lolo-*.json
	$(BIN)/allscreen lolo-report --doc docs/lolo.md --readme README.md $(foreach e,$(LOLO_RECIPES),model/results/$(basename $(notdir $(e))).json)
