# allscreen. `make help` lists the targets; README.md explains them.
SHELL := /bin/bash
export PATH := /usr/local/go/bin:$(PATH)
GO ?= go
# The real data (never copied into the repository).
ALLSCREEN_DATA ?= $(abspath ../shared/data)
export ALLSCREEN_DATA
BIN := bin

# Each mk/*.mk adds its own targets and appends to TEST_TARGETS (run by
# `make test`) and REPORT_TARGETS (figures regenerated from the real data).
TEST_TARGETS :=
REPORT_TARGETS :=
include $(sort $(wildcard mk/*.mk))

.PHONY: help deps test-deps build demo test go-test vet report
help: ## list targets
	@grep -hE '^[a-zA-Z0-9_-]+:.*## ' $(MAKEFILE_LIST) | sed 's/:.*## /\t/' | sort

deps: ## install missing Debian packages and Go (as root)
	build/deps.sh

test-deps: ## install what the tests need besides: PyTorch, systemd tools, the arm64 cross tools (as root; nothing when all are there)
	build/deps.sh test cross

build: ## build the binaries into bin/
	$(GO) build -o $(BIN)/ ./cmd/...

demo: deps build ## the simulated appliance on the bundled sample images: a scripted session, then its stored results
	$(MAKE) --no-print-directory demo-session

vet: ## go vet, and gofmt must have nothing to say
	$(GO) vet ./...
	@unformatted=$$(gofmt -l $$(git ls-files '*.go')); \
	if [ -n "$$unformatted" ]; then echo "gofmt -l:"; echo "$$unformatted"; exit 1; fi

go-test: vet ## Go unit and real-data tests, with the race detector
	ALLSCREEN_REQUIRE_BROWSER=1 $(GO) test -race -count=1 -timeout 30m ./...

test: test-deps go-test $(TEST_TARGETS) ## everything CI runs (installs what is missing first)

report: $(REPORT_TARGETS) ## regenerate every figure in README.md and docs/ from the real data
