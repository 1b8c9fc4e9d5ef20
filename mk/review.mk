# The review station (issue 13): allscreen-review, internal/station, screening/record.
.PHONY: review review-screenshots

review: build ## the review station on the demo's results (run make demo first): http://127.0.0.1:8480, account demo / demo-review, PIN 2468
	@test -f $(DEMO_STATE)/results.db || { echo "no $(DEMO_STATE)/results.db: run make demo first"; exit 1; }
	@printf 'demo-review\n2468\n' | $(BIN)/allscreen user add demo --role reviewer --state $(DEMO_STATE) 2>/dev/null || true
	$(BIN)/allscreen-review --config /nonexistent.toml --state-dir $(DEMO_STATE) --listen 127.0.0.1:8480

review-screenshots: ## docs/figures/review-*.png from the browser test (headless chromium)
	ALLSCREEN_REQUIRE_BROWSER=1 ALLSCREEN_SCREENSHOTS=$(abspath docs/figures) $(GO) test -count=1 -run TestBrowserReviewFlow ./internal/station/

.PHONY: review-fuzz
TEST_TARGETS += review-fuzz
review-fuzz: ## fuzz parsers of outside input briefly: the review station's (image names, calls, redirects) and model bundles
	$(GO) test -run '^$$' -fuzz FuzzParseImageRef -fuzztime 10s ./screening/
	$(GO) test -run '^$$' -fuzz FuzzParseCall -fuzztime 5s ./screening/
	$(GO) test -run '^$$' -fuzz FuzzSafeNext -fuzztime 10s ./internal/station/
	$(GO) test -run '^$$' -fuzz FuzzReadBundle -fuzztime 10s ./model/
