# vision/, the single-cell half (issue 2, items 2-5): segment scores, k-means,
# Algorithm 1 (tune-k) and the ground-truth-free nucleus and cell. `make
# go-test` already runs their unit tests, the SSIM test vectors and the
# real-data floors; these targets add the Mat-leak proof, the benchmarks, the
# reference comparison and the report.
.PHONY: vision-leaks vision-bench vision-reference vision-testdata vision-fuzz report-vision
TEST_TARGETS += vision-leaks
REPORT_TARGETS += report-vision

VISION_BENCH ?= out/vision-bench.txt

vision-leaks: ## prove SegmentCell, k-means and tune-k scoring leak no gocv Mat (matprofile build tag)
	$(GO) test -tags matprofile -count=1 -run SegmentLeaksNoMats ./vision/

vision-bench: ## segmentation benchmarks (real data): 5 MP field k=3, a 257 crop, tune-k over 260 ALL-IDB2 pairs
	@mkdir -p $(dir $(VISION_BENCH))
	@echo "load average before: $$(cut -d' ' -f1-3 /proc/loadavg)" > $(VISION_BENCH)
	$(GO) test -run '^$$' -bench 'SegmentField|SegmentCrop257|ClusterCrop257|Score257|TuneKAllIDB2' -benchtime 3x ./vision/ | tee -a $(VISION_BENCH)
	@echo "load average after: $$(cut -d' ' -f1-3 /proc/loadavg)" | tee -a $(VISION_BENCH)

vision-reference: build ## the straightforward Algorithm 1 (Python, cv2.kmeans, skimage) against allscreen tune-k: speed ratio, agreement
	nice -n 10 /usr/bin/python3 vision/reference/tunek_reference.py --allscreen $(BIN)/allscreen --data $(ALLSCREEN_DATA)/allidb2

vision-testdata: ## regenerate the SSIM test vectors with scikit-image (they are committed; this re-checks them)
	cd vision/testdata && /usr/bin/python3 ssim_vectors.py > ssim_vectors.json
	git diff --stat -- vision/testdata/ssim_vectors.json

report-vision: build vision-bench ## docs/vision.md, docs/figures/vision-*.png and the README segmentation section, from the real data
	nice -n 10 /usr/bin/python3 vision/reference/vision_report.py --allscreen $(BIN)/allscreen --data $(ALLSCREEN_DATA) --bench $(VISION_BENCH)

VISION_FUZZTIME ?= 1m

vision-fuzz: ## fuzz the labels CSV and ground-truth mask readers for $(VISION_FUZZTIME) each
	nice -n 10 $(GO) test -run '^$$' -fuzz FuzzReadLabels -fuzztime $(VISION_FUZZTIME) -parallel 1 ./vision/
	nice -n 10 $(GO) test -run '^$$' -fuzz FuzzLoadTruth -fuzztime $(VISION_FUZZTIME) -parallel 1 ./vision/

# Single-cell sources without masks (issue 11, item 5): is SegmentCell's
# mask one central cell of plausible size on C-NMC and PBC, as on ALL-IDB2?
# The contact sheets draw CC BY images only (never ALL-IDB).
.PHONY: report-single-cells
REPORT_TARGETS += report-single-cells

report-single-cells: build ## docs/single-cells.md and docs/figures/single-cells-{cnmc,pbc-types}.png from the data folder (about 30 s on 2 cores)
	@mkdir -p out
	nice -n 10 $(BIN)/allscreen cell-sanity --data $(ALLSCREEN_DATA) --sheet-dir docs/figures --report docs/single-cells.md --json out/single-cells.json
