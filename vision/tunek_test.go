package vision

import (
	"image"
	"math"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"allscreen/internal/realdata"
)

func allidb2(tb testing.TB) []LabeledImage {
	tb.Helper()
	d := realdata.Dir(tb, "allidb2")
	set, err := ReadLabels(filepath.Join(d, "labels.csv"), "", filepath.Join(d, "images"), filepath.Join(d, "masks"))
	if err != nil {
		tb.Fatal(err)
	}
	return set
}

func TestTuneKSynthetic(t *testing.T) {
	dir := writeSynthSet(t, 6, "label")
	set, err := ReadLabels(filepath.Join(dir, "labels.csv"), "", filepath.Join(dir, "images"), filepath.Join(dir, "masks"))
	if err != nil {
		t.Fatal(err)
	}
	var calls int
	res, err := TuneK(set, TuneOptions{Ks: []int{2, 3, 4}, Target: TargetNucleus, Seed: 1, Progress: func(done, total int) {
		calls++
		if total != 6 || done != calls {
			t.Errorf("progress %d/%d at call %d", done, total, calls)
		}
	}})
	if err != nil {
		t.Fatal(err)
	}
	if res.Failed != 0 || calls != 6 {
		t.Fatalf("failed %d, progress calls %d", res.Failed, calls)
	}
	if !slices.Equal(res.Classes, []string{"blast", "normal"}) || res.PerClass["blast"].N != 3 || res.Overall.N != 6 {
		t.Fatalf("classes %v, blast n=%d, all n=%d", res.Classes, res.PerClass["blast"].N, res.Overall.N)
	}
	// The synthetic nucleus is one flat colour: at k=3 (background and
	// red cells, cytoplasm, nucleus) some cluster is nearly exactly it.
	for _, c := range res.Classes {
		m := res.PerClass[c].Mean[1]
		if m.Dice < 0.95 || m.IoU < 0.9 || m.SSIM < 0.9 {
			t.Errorf("%s at k=3: %+v, want the nucleus found", c, m)
		}
	}
	// Each class mean is the mean of its images' best scores.
	var sum float64
	for _, it := range res.Images {
		if it.Label == "normal" {
			sum += it.Best[1].Dice
		}
	}
	if got := res.PerClass["normal"].Mean[1].Dice; math.Abs(got-sum/3) > 1e-12 {
		t.Errorf("normal mean Dice %g, images give %g", got, sum/3)
	}
	// The whole cell (nucleus and cytoplasm) is two colours, so no single
	// cluster matches it as well as one matches the nucleus: the target
	// must change the answer.
	cell, err := TuneK(set, TuneOptions{Ks: []int{2, 3}, Target: TargetCell, Seed: 1})
	if err != nil {
		t.Fatal(err)
	}
	if cell.Overall.Mean[0].Dice > res.Overall.Mean[1].Dice {
		t.Errorf("cell target scored %g, above the nucleus %g: target ignored?", cell.Overall.Mean[0].Dice, res.Overall.Mean[1].Dice)
	}
}

// A missing or broken image is reported and left out; the rest count.
func TestTuneKKeepsGoing(t *testing.T) {
	dir := writeSynthSet(t, 4, "celltype")
	set, err := ReadLabels(filepath.Join(dir, "labels.csv"), "", filepath.Join(dir, "images"), filepath.Join(dir, "masks"))
	if err != nil {
		t.Fatal(err)
	}
	os.WriteFile(set[0].Image, []byte("not an image"), 0o644)
	os.Remove(set[1].Mask)
	res, err := TuneK(set, TuneOptions{Ks: []int{3}, Seed: 1})
	if err != nil {
		t.Fatal(err)
	}
	if res.Failed != 2 || res.Overall.N != 2 {
		t.Fatalf("failed %d, scored %d; want 2 and 2", res.Failed, res.Overall.N)
	}
	for _, i := range []int{0, 1} {
		if e := res.Images[i].Err; e == nil || !strings.Contains(e.Error(), set[i].Name) {
			t.Errorf("image %d: error %v does not name the file", i, e)
		}
	}
	if _, err := TuneK(set, TuneOptions{Ks: []int{1}}); err == nil {
		t.Error("k=1: no error")
	}
}

func TestReadLabels(t *testing.T) {
	dir := t.TempDir()
	write := func(s string) string {
		p := filepath.Join(dir, "l.csv")
		os.WriteFile(p, []byte(s), 0o644)
		return p
	}
	set, err := ReadLabels(write("file,celltype\nb.png,eosinophil\na.png,neutrophil\n"), "", "I", "M")
	if err != nil {
		t.Fatal(err)
	}
	if len(set) != 2 || set[0].Name != "a.png" || set[0].Label != "neutrophil" || set[0].Image != filepath.Join("I", "a.png") || set[0].Mask != filepath.Join("M", "a.png") {
		t.Errorf("got %+v", set)
	}
	set, err = ReadLabels(write("file,label,group\nx.png,blast,g\n"), "group", "I", "")
	if err != nil || set[0].Label != "g" || set[0].Mask != "" {
		t.Errorf("named column: %+v, %v", set, err)
	}
	for name, body := range map[string]string{
		"no label column": "file,width\na.png,3\n",
		"no file column":  "name,label\na.png,blast\n",
		"no rows":         "file,label\n",
		"path in name":    "file,label\n../a.png,blast\n",
		"listed twice":    "file,label\na.png,blast\na.png,normal\n",
		"empty label":     "file,label\na.png,\n",
	} {
		if _, err := ReadLabels(write(body), "", "I", "M"); err == nil {
			t.Errorf("%s: no error", name)
		}
	}
	if _, err := ReadLabels(filepath.Join(dir, "missing.csv"), "", "I", "M"); err == nil {
		t.Error("missing file: no error")
	}
}

func TestTruthMaskLevels(t *testing.T) {
	g := &image.Gray{Pix: []uint8{0, 60, 70, 128, 190, 200, 255}, Stride: 7, Rect: image.Rect(0, 0, 7, 1)}
	if got := TruthMask(g, TargetNucleus).Pix; !slices.Equal(got, []uint8{0, 0, 0, 0, 0, 255, 255}) {
		t.Errorf("nucleus: %v", got)
	}
	if got := TruthMask(g, TargetCell).Pix; !slices.Equal(got, []uint8{0, 0, 255, 255, 255, 255, 255}) {
		t.Errorf("cell: %v", got)
	}
}

// TuneImage skips the SSIM of clusters that cannot win; its answer must be
// that of scoring every cluster fully.
func TestTuneImageMatchesBruteForce(t *testing.T) {
	for seed := range uint64(6) {
		img, g := synthCell(t, 70+int(seed)*9, 64, 36, 31, seed)
		for _, target := range []Target{TargetNucleus, TargetCell} {
			tm := TruthMask(g, target)
			truth, err := NewTruth(tm)
			if err != nil {
				t.Fatal(err)
			}
			opt := TuneOptions{Ks: DefaultKs, Seed: seed, Attempts: 3}
			best, which, err := TuneImage(img, truth, opt)
			if err != nil {
				t.Fatal(err)
			}
			blurred := Blur(img)
			for j, k := range opt.Ks {
				cl, err := Cluster(blurred, KMeansOptions{K: k, Seed: seed, Attempts: 3, SamplePixels: img.Cols() * img.Rows()})
				if err != nil {
					t.Fatal(err)
				}
				want, wantI := Scores{}, -1
				for i := range k {
					if cl.Counts[i] == 0 {
						continue
					}
					s, err := Score(&Mask{W: cl.W, H: cl.H, Pix: cl.Mask(i)}, tm)
					if err != nil {
						t.Fatal(err)
					}
					if wantI < 0 || s.Mean() > want.Mean() {
						want, wantI = s, i
					}
				}
				if which[j] != wantI || math.Abs(best[j].Mean()-want.Mean()) > 1e-12 {
					t.Errorf("seed %d %v k=%d: cluster %d %+v, brute force %d %+v", seed, target, k, which[j], best[j], wantI, want)
				}
			}
			blurred.Close()
		}
		img.Close()
	}
}
