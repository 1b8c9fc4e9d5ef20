# The appliance (issue 4, part B): devices, allscreend, systemd files.
# `make go-test` already runs the device, config, appliance and daemon tests
# (the daemon-level kill test included); these targets add the systemd lint
# and a short fuzz of the config parser.
.PHONY: demo-session sim appliance-lint config-fuzz appliance-bench
TEST_TARGETS += appliance-lint config-fuzz

DEMO_STATE ?= out/demo-state
DEMO_MODEL ?= model/shipped/detect.json

demo-session: build ## the simulated appliance on samples/: a scripted session (signals), then the stored results
	rm -rf $(DEMO_STATE)
	build/demo-session.sh $(BIN)/allscreend $(DEMO_STATE) $(DEMO_MODEL) samples
	$(BIN)/allscreen results --state $(DEMO_STATE)

sim: build ## the simulated appliance for a person: Enter = capture a field, l + Enter = close the sample
	@mkdir -p out/sim-state
	$(BIN)/allscreend --sim --config /nonexistent.toml --state-dir out/sim-state --model $(DEMO_MODEL) --camera-folder samples

appliance-lint: build ## systemd-analyze verify of every unit (any output fails) and security (exposure <= 1.0 each), sysusers dry run
	@tmp=$$(mktemp -d); trap 'rm -rf $$tmp' EXIT; \
	sed "s|^ExecStart=/usr/bin/allscreend|ExecStart=$(abspath $(BIN))/allscreend|" systemd/allscreend.service > $$tmp/allscreend.service; \
	out=$$(systemd-analyze verify --man=no $$tmp/allscreend.service 2>&1); \
	if [ -n "$$out" ]; then echo "systemd-analyze verify:"; echo "$$out"; exit 1; fi; \
	systemd-analyze security --offline=yes --threshold=10 $$tmp/allscreend.service | tail -1; \
	systemd-analyze security --offline=yes --threshold=10 $$tmp/allscreend.service >/dev/null; \
	sed "s|^ExecStart=/usr/bin/allscreen-review|ExecStart=$(abspath $(BIN))/allscreen-review|" systemd/allscreen-review.service > $$tmp/allscreen-review.service; \
	out=$$(systemd-analyze verify --man=no $$tmp/allscreen-review.service 2>&1); \
	if [ -n "$$out" ]; then echo "systemd-analyze verify (review):"; echo "$$out"; exit 1; fi; \
	systemd-analyze security --offline=yes --threshold=10 $$tmp/allscreen-review.service | tail -1; \
	systemd-analyze security --offline=yes --threshold=10 $$tmp/allscreen-review.service >/dev/null; \
	sed "s|/usr/bin/allscreen |$(abspath $(BIN))/allscreen |" systemd/allscreen-clock.service > $$tmp/allscreen-clock.service; \
	cp systemd/allscreen-clock.path $$tmp/; \
	out=$$(systemd-analyze verify --man=no $$tmp/allscreen-clock.service $$tmp/allscreen-clock.path 2>&1); \
	if [ -n "$$out" ]; then echo "systemd-analyze verify (clock):"; echo "$$out"; exit 1; fi; \
	systemd-analyze security --offline=yes --threshold=10 $$tmp/allscreen-clock.service | tail -1; \
	systemd-analyze security --offline=yes --threshold=10 $$tmp/allscreen-clock.service >/dev/null; \
	systemd-sysusers --dry-run $(abspath systemd/allscreen.sysusers) >/dev/null; \
	echo "appliance-lint: units verified, exposure within 1.0 for each, sysusers valid"

config-fuzz: ## fuzz the config TOML parser and the HD44780 emulator briefly
	$(GO) test -run '^$$' -fuzz FuzzParse -fuzztime 20s ./internal/config/
	$(GO) test -run '^$$' -fuzz FuzzFit -fuzztime 10s ./device/

.PHONY: power-cuts
power-cuts: build ## 200 simulated power cuts under the running daemon (FUSE; root): docs/power-cuts.md (about 15 minutes, outside CI, which runs 5)
	ALLSCREEN_POWERCUTS=200 ALLSCREEN_POWERCUT_OUT=$(abspath docs/power-cuts.md) \
	  $(GO) test -count=1 -timeout 1h -run 'TestPowerCuts|TestCutFSLosesWhatIsNotDurable' -v ./cmd/allscreend/ | grep -v '^=== RUN'

.PHONY: soak
soak: build ## 1000 SIGKILLs of the running daemon at random moments, strict checks after each (docs/soak.md; about an hour, outside CI)
	ALLSCREEN_KILLS=1000 ALLSCREEN_KILL_MINUTES=150 ALLSCREEN_SOAK_OUT=$(abspath docs/soak.md) \
	  $(GO) test -count=1 -timeout 3h -run TestKillAtRandomPoints -v ./cmd/allscreend/ | grep -v '^=== RUN'

appliance-bench: build ## start to READY, daemon RSS over a session
	$(GO) test -run '^$$' -bench . -benchtime 5x ./cmd/allscreend/

.PHONY: report-appliance
REPORT_TARGETS += report-appliance
report-appliance: build deb-arm64 ## measure start time, memory, field speed, package size, kill test, hardening into README.md
	build/report-appliance.sh
