package main

import (
	"context"
	"math/rand/v2"
	"os"
	"regexp"
	"strconv"
	"syscall"
	"testing"
	"time"

	"allscreen/screening"
)

// What the panel printed that claims a stored result: a field screen
// ("Sample CODE" then "Field N: ..." or "Field N rejected:") and a verdict
// screen ("CODE REFER:", "CODE REVIEW:", "CODE NO BLASTS" on the OLED the simulator draws).
var (
	shownField   = regexp.MustCompile(`^display: "Sample ([2-9A-Z]+)" \| "Field (\d+)[: ]`)
	shownVerdict = regexp.MustCompile(`^display: "([2-9A-Z]{5,}) (REFER:|REVIEW:|NO BLASTS)`)
)

// TestKillAtRandomPoints is the daemon-level crash test: the real binary in
// --sim mode, a folder camera and presses by signal, SIGKILLed at random
// moments (mid-analysis, mid-commit, idle), restarted, many times. Every
// result the panel showed must be in the store afterwards, and the store
// must pass SQLite's integrity check. Bounded: ALLSCREEN_KILLS rounds
// (default 12) and two minutes.
func TestKillAtRandomPoints(t *testing.T) {
	if testing.Short() {
		t.Skip("kill test skipped in -short mode")
	}
	rounds := 12
	if s := os.Getenv("ALLSCREEN_KILLS"); s != "" {
		rounds, _ = strconv.Atoi(s)
	}
	seed := uint64(time.Now().UnixNano())
	t.Logf("seed %d (set by time; failures print it)", seed)
	rng := rand.New(rand.NewPCG(seed, 7))
	state := t.TempDir()
	args := simArgs(t, state)
	deadline := time.Now().Add(2 * time.Minute)

	shownFields := map[string]int{}      // sample code -> highest field number shown
	shownVerdicts := map[string]string{} // sample code -> verdict word shown
	presses, killed := 0, 0
	for round := 0; round < rounds && time.Now().Before(deadline); round++ {
		d := startDaemon(t, nil, args...)
		// Signals before the handlers are installed would kill the
		// daemon by their default action: wait for the first screen
		// after the self-test.
		if !d.wait(t, `lights: ready`) {
			t.Fatalf("round %d: daemon ended before READY; stderr:\n%s", round, d.err.String())
		}
		killAt := time.Now().Add(time.Duration(rng.IntN(2500)) * time.Millisecond)
		for time.Now().Before(killAt) {
			sig := syscall.SIGUSR1
			if rng.IntN(5) == 0 {
				sig = syscall.SIGUSR2
			}
			d.cmd.Process.Signal(sig)
			presses++
			time.Sleep(time.Duration(rng.IntN(300)) * time.Millisecond)
		}
		d.cmd.Process.Kill()
		<-d.done
		killed++
		for _, l := range d.output() {
			if m := shownField.FindStringSubmatch(l); m != nil {
				n, _ := strconv.Atoi(m[2])
				shownFields[m[1]] = max(shownFields[m[1]], n)
			}
			if m := shownVerdict.FindStringSubmatch(l); m != nil {
				shownVerdicts[m[1]] = m[2]
			}
		}
	}
	t.Logf("%d kills, %d presses sent, %d samples with fields shown, %d verdicts shown",
		killed, presses, len(shownFields), len(shownVerdicts))
	if len(shownFields) == 0 || len(shownVerdicts) == 0 {
		t.Fatalf("the session showed no field or no verdict: the test proved nothing")
	}

	ctx := context.Background()
	store, err := screening.Open(ctx, state, screening.Options{})
	if err != nil {
		t.Fatalf("open the store after %d kills: %v", killed, err)
	}
	defer store.Close()
	if r := store.Recovery(); r != nil {
		t.Fatalf("the store was damaged by a kill: %s", r.Message())
	}
	if err := store.Verify(ctx); err != nil {
		t.Fatalf("store verification (PRAGMA integrity_check, keys, images): %v", err)
	}
	samples, err := store.Samples(ctx)
	if err != nil {
		t.Fatal(err)
	}
	byCode := map[string]screening.SampleSummary{}
	for _, s := range samples {
		byCode[s.Code] = s
	}
	for code, n := range shownFields {
		s, ok := byCode[code]
		if !ok {
			t.Errorf("sample %s was shown with field %d but is not stored", code, n)
			continue
		}
		if s.Fields < n {
			t.Errorf("sample %s: field %d was shown, only %d stored", code, n, s.Fields)
		}
	}
	want := map[string]screening.Outcome{"REFER:": screening.Refer, "REVIEW:": screening.Inconclusive, "NO BLASTS": screening.NoBlastsSeen}
	for code, word := range shownVerdicts {
		s, ok := byCode[code]
		switch {
		case !ok:
			t.Errorf("verdict %s of sample %s was shown but the sample is not stored", word, code)
		case s.Outcome != want[word]:
			t.Errorf("sample %s: shown %q, stored outcome %q", code, word, s.Outcome)
		}
	}
	if t.Failed() {
		t.Logf("seed was %d", seed)
	}
}
