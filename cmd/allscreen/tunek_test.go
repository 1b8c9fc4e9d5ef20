package main

import (
	"encoding/csv"
	"encoding/json"
	"fmt"
	"image"
	"image/color"
	"image/png"
	"math"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// cellSet writes n synthetic single-cell crops (pale background, pink red
// cell, blue cytoplasm around a purple nucleus) with their 0/128/255 masks
// and a labels CSV whose label column is labelCol.
func cellSet(t *testing.T, n int, labelCol string) string {
	t.Helper()
	dir := t.TempDir()
	for _, sub := range []string{"images", "masks"} {
		if err := os.Mkdir(filepath.Join(dir, sub), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	labels := "file," + labelCol + "\n"
	for i := range n {
		size := 64 + 24*(i%3)
		img := image.NewNRGBA(image.Rect(0, 0, size, size))
		mask := image.NewGray(img.Rect)
		c := float64(size) / 2
		for y := range size {
			for x := range size {
				dx, dy := float64(x)+0.5-c, float64(y)+0.5-c
				d := math.Hypot(dx, dy)
				col := color.NRGBA{R: 215, G: 200, B: 205, A: 255}
				if math.Hypot(dx-0.3*c, dy+0.7*c) < 0.35*c {
					col = color.NRGBA{R: 210, G: 150, B: 165, A: 255} // a red cell
				}
				switch {
				case d < 0.38*c:
					col = color.NRGBA{R: 115, G: 60, B: 150, A: 255}
					mask.Pix[y*size+x] = 255
				case d < 0.55*c:
					col = color.NRGBA{R: 165, G: 165, B: 210, A: 255}
					mask.Pix[y*size+x] = 128
				}
				// A little texture, so k-means has several colours to sort.
				col.G += uint8((x*7 + y*13 + i) % 5)
				img.SetNRGBA(x, y, col)
			}
		}
		name := fmt.Sprintf("c%02d.png", i)
		for _, w := range []struct {
			sub string
			im  image.Image
		}{{"images", img}, {"masks", mask}} {
			f, err := os.Create(filepath.Join(dir, w.sub, name))
			if err != nil {
				t.Fatal(err)
			}
			if err := png.Encode(f, w.im); err != nil {
				t.Fatal(err)
			}
			f.Close()
		}
		labels += name + "," + []string{"lymphocyte", "monocyte"}[i%2] + "\n"
	}
	if err := os.WriteFile(filepath.Join(dir, "labels.csv"), []byte(labels), 0o644); err != nil {
		t.Fatal(err)
	}
	return dir
}

// runCaptured runs the command line with stdout in a file and stderr
// discarded, and returns the exit code and what was printed.
func runCaptured(t *testing.T, args ...string) (int, []byte) {
	t.Helper()
	code, out, _ := runCapturedAll(t, args...)
	return code, out
}

// runCapturedAll runs the command line and returns its exit status, stdout
// and stderr.
func runCapturedAll(t *testing.T, args ...string) (int, []byte, []byte) {
	t.Helper()
	dir := t.TempDir()
	out, err := os.Create(filepath.Join(dir, "stdout"))
	if err != nil {
		t.Fatal(err)
	}
	errf, err := os.Create(filepath.Join(dir, "stderr"))
	if err != nil {
		t.Fatal(err)
	}
	stdout, stderr := os.Stdout, os.Stderr
	os.Stdout, os.Stderr = out, errf
	code := run(args)
	os.Stdout, os.Stderr = stdout, stderr
	out.Close()
	errf.Close()
	b, err := os.ReadFile(out.Name())
	if err != nil {
		t.Fatal(err)
	}
	e, err := os.ReadFile(errf.Name())
	if err != nil {
		t.Fatal(err)
	}
	return code, b, e
}

func setArgs(dir string) []string {
	return []string{"--images", filepath.Join(dir, "images"), "--masks", filepath.Join(dir, "masks"), "--labels", filepath.Join(dir, "labels.csv")}
}

func TestTuneKCommand(t *testing.T) {
	dir := cellSet(t, 6, "celltype")
	plot, table := filepath.Join(dir, "fig5.png"), filepath.Join(dir, "scores.csv")
	code, out := runCaptured(t, append([]string{"tune-k", "--k", "2-4", "--json", "--plot", plot, "--csv", table}, setArgs(dir)...)...)
	if code != 0 {
		t.Fatalf("exit %d", code)
	}
	var res struct {
		K       []int
		Classes map[string]map[string]float64
		BestK   map[string]int `json:"best_k"`
		Score   string
		N       map[string]int
	}
	if err := json.Unmarshal(out, &res); err != nil {
		t.Fatalf("%v in %s", err, out)
	}
	if fmt.Sprint(res.K) != "[2 3 4]" || len(res.Classes) != 2 || res.N["lymphocyte"] != 3 || res.Score == "" {
		t.Fatalf("JSON %s", out)
	}
	for c, byK := range res.Classes {
		if len(byK) != 3 || res.BestK[c] < 2 || res.BestK[c] > 4 {
			t.Errorf("%s: scores %v, best k %d", c, byK, res.BestK[c])
		}
		// The nucleus is one flat colour: some cluster matches it closely
		// once k is large enough to separate it.
		if s := byK[fmt.Sprint(res.BestK[c])]; s < 0.9 {
			t.Errorf("%s: best score %.3f", c, s)
		}
	}
	f, err := os.Open(plot)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if cfg, err := png.DecodeConfig(f); err != nil || cfg.Width < 400 {
		t.Errorf("plot: %v, %+v", err, cfg)
	}
	cf, err := os.Open(table)
	if err != nil {
		t.Fatal(err)
	}
	defer cf.Close()
	rows, err := csv.NewReader(cf).ReadAll()
	if err != nil || len(rows) != 1+6*3 {
		t.Errorf("CSV: %d rows (%v), want a header and 18", len(rows), err)
	}
}

func TestTuneKTableAndErrors(t *testing.T) {
	dir := cellSet(t, 4, "label")
	code, out := runCaptured(t, append([]string{"tune-k", "--k", "3"}, setArgs(dir)...)...)
	if code != 0 || !contains(out, "best k:") || !contains(out, "lymphocyte (2 images)") {
		t.Errorf("exit %d, table:\n%s", code, out)
	}
	if err := os.WriteFile(filepath.Join(dir, "images", "c00.png"), []byte("broken"), 0o644); err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		args []string
		want int
	}{
		{append([]string{"tune-k", "--k", "3"}, setArgs(dir)...), 1}, // one broken image: the rest scored, exit 1
		{[]string{"tune-k", "--images", dir}, 2},
		{append([]string{"tune-k", "--target", "cytoplasm"}, setArgs(dir)...), 1},
		{append([]string{"tune-k", "--k", "1-3"}, setArgs(dir)...), 1},
		{append([]string{"tune-k", "--space", "cmyk"}, setArgs(dir)...), 1},
	} {
		if got, _ := runCaptured(t, c.args...); got != c.want {
			t.Errorf("allscreen %v: exit %d, want %d", c.args, got, c.want)
		}
	}
}

func TestSegmentCommand(t *testing.T) {
	dir := cellSet(t, 4, "celltype")
	ov := filepath.Join(dir, "overlays")
	code, out := runCaptured(t, append([]string{"segment", "--json", "--overlay", ov}, setArgs(dir)...)...)
	if code != 0 {
		t.Fatalf("exit %d: %s", code, out)
	}
	var res segmentJSON
	if err := json.Unmarshal(out, &res); err != nil {
		t.Fatal(err)
	}
	if res.Segmented != 4 || res.All.N != 4 || res.Version == "" {
		t.Fatalf("JSON %s", out)
	}
	for c, s := range res.Classes {
		if s.Dice < 0.9 || s.CellDice < 0.8 || s.OracleDice < 0.9 {
			t.Errorf("%s: %+v", c, s)
		}
	}
	if ents, err := os.ReadDir(ov); err != nil || len(ents) != 4 {
		t.Errorf("overlays: %d files (%v)", len(ents), err)
	}
	// Without masks: segments, prints no scores, exits 0.
	code, out = runCaptured(t, "segment", "--images", filepath.Join(dir, "images"))
	if code != 0 || !contains(out, "4 images segmented") {
		t.Errorf("without masks: exit %d\n%s", code, out)
	}
	if code, _ := runCaptured(t, "segment", "--images", filepath.Join(dir, "images"), "--masks", filepath.Join(dir, "masks")); code != 2 {
		t.Errorf("--masks without --labels: exit %d, want 2", code)
	}
}

func contains(b []byte, s string) bool { return strings.Contains(string(b), s) }
