package model

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"testing"
)

// TestLeaveLabOut runs the leave-one-laboratory-out runner with a stand-in
// trainer (it installs the tiny test model): the model for a left-out
// laboratory must train on the other laboratories only, every cell of the
// left-out one must be judged, and a rerun must reuse the trained model.
func TestLeaveLabOut(t *testing.T) {
	dir := t.TempDir()
	data := filepath.Join(dir, "data")
	writeSyntheticCV(t, filepath.Join(data, "a"), 12, 1)
	writeSyntheticCV(t, filepath.Join(data, "b"), 10, 1)
	writeSyntheticCV(t, filepath.Join(data, "c"), 8, 1)
	tiny, _ := filepath.Abs("testdata")
	trainer := filepath.Join(dir, "train.sh")
	os.WriteFile(trainer, []byte(fmt.Sprintf(`#!/bin/sh
out=$(dirname "$2")
name=$(sed -n 's/.*"name": "\([^"]*\)".*/\1/p' "$2" | tail -1)
echo run >> %s/runs
cp %s/tiny.onnx "$out/$name.onnx"
sed 's/"tiny.onnx"/"'$name'.onnx"/' %s/tiny.json > "$out/$name.json"
`, dir, tiny, tiny)), 0o755)
	e := tinyExperiment("lolo", 1)
	e.CV = DataSource{}
	for _, s := range []struct{ name, lab string }{{"a", "milan"}, {"b", "delhi"}, {"c", "milan"}} {
		e.Sources = append(e.Sources, DataSource{Name: s.name, Lab: s.lab, Images: s.name, Labels: s.name + "/labels.csv"})
	}
	if got := e.Labs(); !slices.Equal(got, []string{"milan", "delhi"}) {
		t.Fatalf("Labs() = %v", got)
	}
	r := &Runner{DataDir: data, RepoDir: fakeRepo(t, dir), Work: filepath.Join(dir, "work"), Python: trainer}
	fold, err := r.LeaveLabOut(e, "milan", 1)
	if err != nil {
		t.Fatal(err)
	}
	if len(fold.Cells) != 12+8 {
		t.Errorf("%d cells judged, want milan's 20 (sources a and c)", len(fold.Cells))
	}
	for _, c := range fold.Cells {
		if c.Lab != "milan" || (c.Source != "a" && c.Source != "c") || c.Blast != (c.Type == "blast") {
			t.Fatalf("cell %+v", c)
		}
	}
	raw, err := os.ReadFile(filepath.Join(dir, "work", "lolo", "lolo", "milan", "s1", "config.json"))
	if err != nil {
		t.Fatal(err)
	}
	var cfg trainConfig
	if err := json.Unmarshal(raw, &cfg); err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, p := range append(cfg.Train, cfg.Val...) {
		names = append(names, p.Name)
	}
	for _, n := range names {
		if n != "b" && n != "b-val" {
			t.Errorf("the model without milan trained or validated on %s", n)
		}
	}
	if _, err := r.LeaveLabOut(e, "milan", 1); err != nil {
		t.Fatal(err)
	}
	if runs, _ := os.ReadFile(filepath.Join(dir, "runs")); string(runs) != "run\n" {
		t.Errorf("the rerun trained again (trainer runs: %q)", runs)
	}
	if _, err := r.LeaveLabOut(e, "tokyo", 1); err == nil {
		t.Error("an unknown laboratory gave no error")
	}
}

// TestLOLOExperiments: the committed leave-one-laboratory-out recipes read,
// name the data README's seven laboratories, and a source without its
// laboratory is refused.
func TestLOLOExperiments(t *testing.T) {
	paths, _ := filepath.Glob("experiments/lolo/*.json")
	if len(paths) == 0 {
		t.Fatal("no experiments/lolo/*.json")
	}
	for _, p := range paths {
		e, err := ReadExperiment(p)
		if err != nil {
			t.Fatal(err)
		}
		want := []string{"milan", "tehran", "delhi", "barcelona", "jiangxi", "bccd", "lahore"}
		if got := e.Labs(); !slices.Equal(got, want) {
			t.Errorf("%s: laboratories %v, want %v", p, got, want)
		}
	}
	raw := []byte(`{"labels":["normal","blast"],"positive":"blast","input":{"size":16,"channel_order":"RGB","scale":0.0039,"masking":"none","framing":"crop","margin":1.2},
		"sources":[{"name":"a","images":"a"}]}`)
	p := filepath.Join(t.TempDir(), "x.json")
	os.WriteFile(p, raw, 0o644)
	if _, err := ReadExperiment(p); err == nil {
		t.Error("a source without a laboratory is accepted")
	}
}
