# vision/, whole fields (issue 2, items 6-8): white cells in fields, the
# quality gate, bad input. `make go-test` already runs their unit tests,
# the real-field floors, the analyze end-to-end tests and FuzzDecodeImage's
# seed corpus; these targets add the Mat-leak proof, a fuzzing session,
# the benchmarks and the report.
.PHONY: fields-leaks fields-boxes fields-fuzz fields-bench report-fields report-camera
TEST_TARGETS += fields-leaks fields-boxes
REPORT_TARGETS += report-fields report-camera
CAMERA_JOBS ?= 2

FIELDS_BENCH ?= out/fields-bench.txt
FUZZTIME ?= 5m

fields-leaks: ## prove the field path (load, gate, FindCells, CropCell) leaks no gocv Mat (matprofile build tag)
	$(GO) test -tags matprofile -count=1 -run LeaksNoMats ./vision/

fields-boxes: ## the floors on other laboratories' boxed fields (bccd, olympus/fields) and the quality gate there and on degraded copies, without the race detector (too slow under it)
	$(GO) test -count=1 -run 'TestFindCellsBoxSets|TestEvaluateCamera' -v ./vision/

fields-fuzz: ## fuzz the image-loading path for $(FUZZTIME) (new crashers land in vision/testdata/fuzz)
	nice -n 10 $(GO) test -run '^$$' -fuzz FuzzDecodeImage -fuzztime $(FUZZTIME) -parallel 1 ./vision/

fields-bench: ## field benchmarks: a real 2592x1944 field found, gated and cropped (5 runs)
	@mkdir -p $(dir $(FIELDS_BENCH))
	$(GO) test -run '^$$' -bench 'FindCells|FieldPath|CheckQuality' -benchtime 20x -count 5 ./vision/ | tee $(FIELDS_BENCH)

report-fields: build fields-bench ## regenerate docs/fields.md and the README's fields section from ../shared/data
	$(BIN)/allscreen find-eval --data $(ALLSCREEN_DATA) --boxes $(ALLSCREEN_DATA)/bccd --boxes $(ALLSCREEN_DATA)/olympus/fields --labelled $(ALLSCREEN_DATA)/bll-stages --report docs/fields.md --readme README.md --bench $(FIELDS_BENCH)

report-camera: build ## docs/camera.md: finding and the quality gate on every set's fields and their degraded copies (about 20 min on 2 cores)
	@mkdir -p out
	$(BIN)/allscreen camera-eval --jobs $(CAMERA_JOBS) --data $(ALLSCREEN_DATA) --boxes $(ALLSCREEN_DATA)/bccd --boxes $(ALLSCREEN_DATA)/olympus/fields \
	  --json out/camera-eval.json --report docs/camera.md
