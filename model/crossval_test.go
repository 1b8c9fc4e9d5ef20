package model

import (
	"encoding/json"
	"fmt"
	"image"
	"image/color"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"gocv.io/x/gocv"
)

// TestRunCVPlumbing runs the cross-validation runner end to end on
// synthetic crops with a stand-in trainer that installs the tiny fixture
// model, so folds, splits, the Go evaluation, cross-site scoring and the
// result's JSON shape are tested without Python or real data.
func TestRunCVPlumbing(t *testing.T) {
	dir := t.TempDir()
	data := filepath.Join(dir, "data")
	writeSyntheticCV(t, filepath.Join(data, "cv"), 24, 2) // 12 cells seen twice, half blast
	for i := 0; i < 6; i++ {
		writeSyntheticCrop(t, filepath.Join(data, "other", "lymphocyte", fmt.Sprintf("o%d.png", i)), 50, 10)
	}
	// The stand-in trainer: copies the tiny model into the run folder and
	// records which inputs it was told to train on.
	fake := filepath.Join(dir, "fake-train.sh")
	tiny, _ := filepath.Abs("testdata")
	script := fmt.Sprintf(`#!/bin/sh
cfg="$2"
out=$(dirname "$cfg")
cp %s/tiny.onnx "$out/model.onnx"
sed 's/"tiny.onnx"/"model.onnx"/' %s/tiny.json > "$out/model.json"
`, tiny, tiny)
	os.WriteFile(fake, []byte(script), 0o755)
	e := tinyExperiment("plumbing", 1, 2)
	e.CrossSite = []DataSource{{Name: "other", Images: "other", Map: map[string]string{"*": "normal"}}}
	r := &Runner{DataDir: data, RepoDir: fakeRepo(t, dir), Work: filepath.Join(dir, "work"), Python: fake}
	res, err := r.RunCV(e, filepath.Join(dir, "pred.csv"))
	if err != nil {
		t.Fatal(err)
	}
	if res.N != 24 || len(res.Seeds) != 2 || len(res.Seeds[0].Folds) != 3 || res.AcrossSeeds["accuracy"].Values == nil {
		t.Fatalf("result: n %d, %d seeds, %d folds", res.N, len(res.Seeds), len(res.Seeds[0].Folds))
	}
	cs, ok := res.Seeds[0].CrossSite["other"]
	if !ok || cs.Pooled.N != 6*3 || cs.Pooled.Specificity == nil {
		t.Fatalf("cross-site: %+v", cs)
	}
	// Every training config: no test input among training or validation,
	// and the two views of a cell on one side.
	cfgs, _ := filepath.Glob(filepath.Join(r.Work, "runs", "plumbing", "*", "config.json"))
	if len(cfgs) != 6 {
		t.Fatalf("%d training runs, want 6", len(cfgs))
	}
	for _, p := range cfgs {
		raw, _ := os.ReadFile(p)
		var c trainConfig
		if err := json.Unmarshal(raw, &c); err != nil {
			t.Fatal(err)
		}
		used := map[string]bool{}
		for _, part := range append(c.Train, c.Val...) {
			for _, in := range part.Inputs {
				used[in] = true
			}
		}
		if len(used) == 24 || len(used) < 12 {
			t.Fatalf("%s: %d inputs train or validate", p, len(used))
		}
		for i := 0; i < 24; i += 2 {
			a, b := fmt.Sprintf("inputs/c%02d.png", i), fmt.Sprintf("inputs/c%02d.png", i+1)
			if used[a] != used[b] {
				t.Fatalf("%s: the two views of cell %d are split", p, i/2)
			}
		}
	}
	var out map[string]any
	raw, _ := json.Marshal(res)
	json.Unmarshal(raw, &out)
	for _, k := range []string{"labels", "accuracy", "accuracy_ci", "per_class", "confusion", "across_seeds", "seeds"} {
		if _, ok := out[k]; !ok {
			t.Errorf("result JSON lacks %q", k)
		}
	}
	pred, _ := os.ReadFile(filepath.Join(dir, "pred.csv"))
	if n := strings.Count(string(pred), "\n"); n != 1+2*(24+3*6) {
		t.Errorf("predictions file has %d lines", n)
	}
	if !slices.Equal(res.Labels, e.Labels) {
		t.Errorf("labels %v", res.Labels)
	}

	// Seeds run at once (--jobs 2) give the same result, in the same order.
	r2 := &Runner{DataDir: data, RepoDir: r.RepoDir, Work: filepath.Join(dir, "work2"), Python: fake, Jobs: 2, Log: io.Discard}
	res2, err := r2.RunCV(e, filepath.Join(dir, "pred2.csv"))
	if err != nil {
		t.Fatal(err)
	}
	pred2, _ := os.ReadFile(filepath.Join(dir, "pred2.csv"))
	if string(pred2) != string(pred) {
		t.Errorf("predictions with 2 jobs differ from 1 job")
	}
	if res2.Seed != res.Seed || res2.Accuracy != res.Accuracy || len(res2.Seeds) != 2 || res2.Seeds[1].Seed != 2 ||
		!slices.Equal(res2.AcrossSeeds["accuracy"].Values, res.AcrossSeeds["accuracy"].Values) {
		t.Errorf("2 jobs: seed %d accuracy %v across %v; 1 job: seed %d accuracy %v across %v", res2.Seed, res2.Accuracy,
			res2.AcrossSeeds["accuracy"].Values, res.Seed, res.Accuracy, res.AcrossSeeds["accuracy"].Values)
	}
}

// writeSyntheticCV writes n synthetic crops into dir with a labels.csv
// (file, label, group): each cell is seen views times in a row (one group),
// and the cells alternate normal and blast.
func writeSyntheticCV(t *testing.T, dir string, n, views int) {
	t.Helper()
	rows := "file,label,group\n"
	for i := 0; i < n; i++ {
		name := fmt.Sprintf("c%02d.png", i)
		writeSyntheticCrop(t, filepath.Join(dir, name), 40+i, 8+i%5)
		rows += fmt.Sprintf("%s,%s,g%d\n", name, []string{"normal", "blast"}[(i/views)%2], i/views)
	}
	if err := os.WriteFile(filepath.Join(dir, "labels.csv"), []byte(rows), 0o644); err != nil {
		t.Fatal(err)
	}
}

// tinyExperiment is a detection experiment on writeSyntheticCV's set in
// the data folder's "cv", with the tiny test model's 16x16 raw-crop input.
func tinyExperiment(name string, seeds ...int) *Experiment {
	return &Experiment{Name: name, Task: TaskDetection, Arch: "tiny", Labels: []string{"normal", "blast"}, Positive: "blast",
		Input:    InputSpec{Size: 16, ChannelOrder: "RGB", Scale: 1.0 / 255, Masking: MaskNone, Framing: FrameCrop, Margin: 1.2, Background: [3]uint8{128, 128, 128}},
		Protocol: SplitThenAugment, Augment: "none", Folds: 3, Seeds: seeds, ValFraction: 0.2, Threads: 1,
		CV: DataSource{Name: "cv", Images: "cv", Labels: "cv/labels.csv"}}
}

// fakeRepo makes a repository folder under dir with the model/train the
// runner expects, and returns it.
func fakeRepo(t *testing.T, dir string) string {
	t.Helper()
	repo := filepath.Join(dir, "repo")
	if err := os.MkdirAll(filepath.Join(repo, "model", "train"), 0o755); err != nil {
		t.Fatal(err)
	}
	return repo
}

func writeSyntheticCrop(t *testing.T, path string, side, radius int) {
	t.Helper()
	os.MkdirAll(filepath.Dir(path), 0o755)
	m := gocv.NewMatWithSizeFromScalar(gocv.NewScalar(225, 215, 235, 0), side, side, gocv.MatTypeCV8UC3)
	defer m.Close()
	gocv.Circle(&m, image.Pt(side/2, side/2), radius, color.RGBA{R: 95, G: 40, B: 140}, -1)
	if !gocv.IMWrite(path, m) {
		t.Fatalf("write %s", path)
	}
}
