package main

import (
	"math"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"allscreen/vision"
)

func TestCameraVerdict(t *testing.T) {
	orig := cameraCell{fields: 10, truth: 100, found: 95}
	for _, c := range []struct {
		name string
		cell cameraCell
		want string
	}{
		{"recall within 0.03", cameraCell{fields: 10, truth: 100, found: 93}, "holds"},
		{"recall lost, gate refuses all for the right reason", cameraCell{fields: 10, truth: 100, found: 50, refused: 10, right: 10}, "refused"},
		{"recall lost, gate refuses for the wrong reason", cameraCell{fields: 10, truth: 100, found: 50, refused: 10, right: 0}, "**fails**"},
		{"recall lost, gate refuses 9 of 10", cameraCell{fields: 10, truth: 100, found: 50, refused: 9, right: 9}, "**fails**"},
	} {
		if got := cameraVerdict(orig, c.cell); got != c.want {
			t.Errorf("%s: %q, want %q", c.name, got, c.want)
		}
	}
}

func TestWriteCameraReport(t *testing.T) {
	good := vision.Quality{Issue: vision.QualityGood, Focus: 5, WorkRadius: 10, RedCellRadius: 40}
	dark := vision.Quality{Issue: vision.QualityTooDark}
	m := cameraEvalJSON{
		Degradations: []degradationJSON{{Name: "dark-15", What: "light at 15%", Want: []string{"too-dark"}}},
		Results: []vision.CameraResult{
			{Set: "a", Field: "f1", Split: vision.SplitTune, Degradation: vision.Original, Truth: 4, Found: 4, Quality: good},
			{Set: "a", Field: "f1", Split: vision.SplitTune, Degradation: "dark-15", Truth: 4, Found: 0, Quality: dark},
		},
	}
	out := filepath.Join(t.TempDir(), "camera.md")
	if err := writeCameraReport(out, m); err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(out)
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"| dark-15 | 0.000 (-1.000); refused 1/1 (too-dark 1); refused |", "| `a` | tune | 1 |"} {
		if !strings.Contains(string(b), want) {
			t.Errorf("report lacks %q:\n%s", want, b)
		}
	}
}

func TestGateRule(t *testing.T) {
	var rs []vision.CameraResult
	add := func(set string, split vision.FieldSplit, deg string, focus, edge float64) {
		rs = append(rs, vision.CameraResult{Set: set, Split: split, Degradation: deg,
			Quality: vision.Quality{Focus: focus, EdgeWidth: edge}})
	}
	// Set a: 100 tuning fields, so one may be refused; its worst focus
	// 1.0 may go, the next (3.08) decides. Set b: 50 fields, none may be
	// refused; its widest edge (12.2) decides.
	for i := 0; i < 98; i++ {
		add("a", vision.SplitTune, vision.Original, 6, 5)
	}
	add("a", vision.SplitTune, vision.Original, 1.0, 30)
	add("a", vision.SplitTune, vision.Original, 3.08, 9)
	for i := 0; i < 49; i++ {
		add("b", vision.SplitTune, vision.Original, 4, 8)
	}
	add("b", vision.SplitTune, vision.Original, 3.5, 12.2)
	// Neither the untouched half nor degraded copies count.
	add("b", vision.SplitUntouched, vision.Original, 0.5, 50)
	add("b", vision.SplitTune, "blur-0.6R", 0.5, 50)

	f, e, ok := gateRule(rs)
	if !ok || math.Abs(f-3.05) > 1e-9 || math.Abs(e-12.5) > 1e-9 {
		t.Fatalf("gateRule = %v, %v, %v; want 3.05, 12.5, true", f, e, ok)
	}
	if _, _, ok := gateRule(rs[len(rs)-2:]); ok {
		t.Error("gateRule with no tuning originals: ok")
	}
}
