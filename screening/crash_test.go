package screening

import (
	"bufio"
	"context"
	"fmt"
	"image"
	"image/color"
	"io"
	"math/rand/v2"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"gocv.io/x/gocv"
)

// runCrashWriter is the child of TestKillWriterLosesNothing: it stores
// fields and verdicts as fast as it can through the same Screener the daemon
// uses, and prints each one only after it was committed, as the daemon
// shows a result only after it was committed. It runs until killed.
func runCrashWriter(dir string) int {
	ctx := context.Background()
	store, err := Open(ctx, dir, Options{})
	if err != nil {
		fmt.Fprintln(os.Stderr, "writer: open:", err)
		return 1
	}
	sc, err := NewScreener(ctx, store, ScreenerConfig{
		Analyzer:   &Analyzer{Classifier: &fakeClassifier{blast: everyThird}, FindCells: gridCells(3)},
		Rule:       testRule,
		Provenance: testProvenance,
	})
	if err != nil {
		fmt.Fprintln(os.Stderr, "writer:", err)
		return 1
	}
	frame := gocv.NewMatWithSizeFromScalar(gocv.NewScalar(200, 190, 220, 0), 240, 480, gocv.MatTypeCV8UC3)
	defer frame.Close()
	for i := 0; ; i++ {
		// A different frame each time, so every field writes new images.
		gocv.PutText(&frame, strconv.Itoa(i), image.Pt(10+i%300, 200), gocv.FontHersheySimplex, 1,
			color.RGBA{R: uint8(i), G: uint8(i >> 8), B: 90, A: 255}, 2)
		r, err := sc.AddField(ctx, frame, time.Now())
		if err != nil {
			fmt.Fprintln(os.Stderr, "writer: field:", err)
			return 1
		}
		fmt.Printf("field %d %s %d\n", r.FieldID, r.Sample.Code, r.Field.WhiteCells)
		if r.Number == 4 {
			c, err := sc.CloseSample(ctx)
			if err != nil {
				fmt.Fprintln(os.Stderr, "writer: close:", err)
				return 1
			}
			fmt.Printf("verdict %s %s\n", c.Code, c.Verdict.Outcome)
		}
	}
}

// TestKillWriterLosesNothing kills a writing process with SIGKILL at random
// moments, again and again, and checks after each kill that every result
// the writer had reported is stored, whole, with its images, and that the
// database passes SQLite's integrity check. Kills land during process
// start, schema creation, image writes, commits and verdicts alike.
func TestKillWriterLosesNothing(t *testing.T) {
	const maxKills, maxTime = 30, 30 * time.Second
	if testing.Short() {
		t.Skip("kill test skipped in -short mode")
	}
	dir := t.TempDir()
	rng := rand.New(rand.NewPCG(uint64(time.Now().UnixNano()), 1))
	fields := map[int64]string{} // field id -> "code cells"
	verdicts := map[string]string{}
	start := time.Now()
	kills := 0
	for kills < maxKills && time.Since(start) < maxTime {
		cmd := exec.Command(os.Args[0], "-test.run=^$")
		cmd.Env = append(os.Environ(), childEnv+"=writer", "SCREENING_TEST_DIR="+dir)
		var stderr strings.Builder
		cmd.Stderr = &stderr
		out, err := cmd.StdoutPipe()
		if err != nil {
			t.Fatal(err)
		}
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		// Kill after a random number of reported results (0 to 6), then a
		// random delay of up to 15 ms, so the kill falls anywhere in the
		// next write.
		waitFor := rng.IntN(7)
		var lines []string
		var mu sync.Mutex
		reached := make(chan struct{})
		done := make(chan struct{})
		go func() {
			defer close(done)
			sc := bufio.NewScanner(out)
			n := 0
			for sc.Scan() {
				mu.Lock()
				lines = append(lines, sc.Text())
				mu.Unlock()
				if n++; n == waitFor {
					close(reached)
				}
			}
			io.Copy(io.Discard, out)
		}()
		if waitFor > 0 {
			select {
			case <-reached:
			case <-done:
				t.Fatalf("writer exited early: %s", stderr.String())
			case <-time.After(20 * time.Second):
				cmd.Process.Kill()
				t.Fatalf("writer reported nothing for 20 s: %s", stderr.String())
			}
		}
		time.Sleep(time.Duration(rng.IntN(15_000)) * time.Microsecond)
		if err := cmd.Process.Kill(); err != nil {
			t.Fatal(err)
		}
		<-done
		cmd.Wait()
		kills++
		if strings.Contains(stderr.String(), "writer:") {
			t.Fatalf("writer failed before it was killed: %s", stderr.String())
		}
		mu.Lock()
		for _, l := range lines {
			f := strings.Fields(l)
			switch {
			case len(f) == 4 && f[0] == "field":
				id, _ := strconv.ParseInt(f[1], 10, 64)
				fields[id] = f[2] + " " + f[3]
			case len(f) == 3 && f[0] == "verdict":
				verdicts[f[1]] = f[2]
			default:
				t.Fatalf("writer printed %q", l)
			}
		}
		mu.Unlock()
		checkReported(t, dir, fields, verdicts)
	}
	t.Logf("%d kills in %v; %d fields and %d verdicts reported, all found intact",
		kills, time.Since(start).Round(time.Millisecond), len(fields), len(verdicts))
	if len(fields) < 10 {
		t.Errorf("only %d fields reported in %d runs: the kills hit too early to test much", len(fields), kills)
	}
}

// checkReported reopens the store as the restarted daemon would and checks
// every reported result.
func checkReported(t *testing.T, dir string, fields map[int64]string, verdicts map[string]string) {
	t.Helper()
	ctx := context.Background()
	s, err := Open(ctx, dir, Options{})
	if err != nil {
		t.Fatalf("reopen after kill: %v", err)
	}
	defer s.Close()
	if s.Recovery() != nil {
		t.Fatalf("a kill damaged the database: %s", s.Recovery().Message())
	}
	if err := s.Verify(ctx); err != nil {
		t.Fatalf("after kill: %v", err)
	}
	for id, want := range fields {
		var code string
		var white, cells int
		err := s.db.QueryRowContext(ctx, `SELECT s.code, f.white_cells, (SELECT count(*) FROM cells c WHERE c.field_id = f.id)
			FROM fields f JOIN samples s ON s.id = f.sample_id WHERE f.id = ?`, id).Scan(&code, &white, &cells)
		if err != nil {
			t.Fatalf("reported field %d: %v", id, err)
		}
		if got := fmt.Sprintf("%s %d", code, white); got != want || cells != white {
			t.Fatalf("reported field %d: stored %s with %d cell rows, reported %s", id, got, cells, want)
		}
	}
	for code, want := range verdicts {
		var got string
		if err := s.db.QueryRowContext(ctx, `SELECT verdict FROM samples WHERE code = ?`, code).Scan(&got); err != nil || got != want {
			t.Fatalf("reported verdict %s %s: stored %q, %v", code, want, got, err)
		}
	}
}
