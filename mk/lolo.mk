# Leave one laboratory out (issue 12): every recipe of model/experiments/lolo/
# trained once per laboratory and seed without that laboratory, and judged on
# it. Hours on 2 cores; every trained model is cached in $(MODEL_WORK)/lolo,
# so an interrupted `make lolo` resumes where it stopped. Never part of
# `make test` (its unit tests are).
.PHONY: lolo report-lolo lolo-shortcuts lolo-sheets
REPORT_TARGETS += report-lolo

LOLO_RECIPES ?= $(sort $(wildcard model/experiments/lolo/*.json))
LOLO_JOBS ?= 2
comma := ,
space := $(eval) $(eval)

lolo: build ## train and judge every leave-one-laboratory-out recipe (model/results/lolo-*.json; resumable)
	@mkdir -p model/results
	set -e; for e in $(LOLO_RECIPES); do n=$$(basename $$e .json); \
	  $(BIN)/allscreen lolo --experiment $$e --jobs $(LOLO_JOBS) --data $(ALLSCREEN_DATA) --work $(MODEL_WORK) --python $(PYTHON) \
	    --out model/results/$$n.json --cells $(MODEL_WORK)/lolo/$$n-cells.csv; done

report-lolo: build ## docs/lolo.md and the README's headline from model/results/lolo-*.json (recipes not yet measured are named)
	$(BIN)/allscreen lolo-report --doc docs/lolo.md --readme README.md --shortcut model/results/shortcut-sources-cnmc.json \
	  --pending "$(subst $(space),$(comma),$(strip $(foreach e,$(LOLO_RECIPES),$(if $(wildcard model/results/$(basename $(notdir $(e))).json),,$(basename $(notdir $(e)))))))" \
	  $(foreach e,$(LOLO_RECIPES),$(wildcard model/results/$(basename $(notdir $(e))).json))

# the newest prepared 64x64 masked inputs of every source with the colours as the camera saw them (recipe A's
# input: a colour-standardised preparation says "colour" in its spec.json), as NAME=DIR,...
LOLO_PREP = $$(for s in allidb2 bll-stages cnmc pbc-lymphocytes pbc-types wbcseg bccd olympus-typed olympus-fields; do \
	  printf '%s=%s,' $$s $$($(call asis_prep,$$s)); done | sed 's/,$$//')
lolo-shortcuts: build ## can a prepared input's colour alone tell C-NMC from the other sources? (model/results/shortcut-sources-cnmc.json; run make lolo first)
	$(BIN)/allscreen shortcut --json --sources "$(LOLO_PREP)" --positive cnmc --features rim-rgb,cell-rgb > model/results/shortcut-sources-cnmc.json

lolo-sheets: ## contact sheets of each left-out laboratory's worst cells, per recipe (out/lolo-sheets; C-NMC and PBC ones also in docs/figures)
	set -e; for e in $(LOLO_RECIPES); do n=$$(basename $$e .json); [ -f $(MODEL_WORK)/lolo/$$n-cells.csv ] || continue; \
	  $(PYTHON) model/train/lolo_sheets.py $(MODEL_WORK)/lolo/$$n-cells.csv out/lolo-sheets --public docs/figures --name $$n; done
