# screening/: the screening session, the verdict rule, the result store and
# export (issue 4, part A). `make go-test` already runs its unit, fault and
# SIGKILL tests with the race detector; these targets add the rest.
.PHONY: screening-test screening-leaks screening-bench
TEST_TARGETS += screening-leaks

screening-test: ## screening and results/export command tests, race detector on
	$(GO) test -race -count=1 ./screening/ ./cmd/allscreen/

screening-leaks: ## prove the field path leaks no gocv Mat (gocv's matprofile build tag)
	$(GO) test -tags matprofile -count=1 -run LeaksNoMats ./screening/

screening-bench: ## capture-to-field-result benchmarks: synthetic and a real ALL-IDB1 field
	$(GO) test -run '^$$' -bench Field -benchtime 20x -count 5 ./screening/
