package model

import (
	"fmt"
	"os"
	"path/filepath"
	"testing"
)

// TestShipInstallOrder runs Ship with stand-in trainers: one that fails
// half-way must leave the model already shipped untouched, and one that
// succeeds must install a model that loads and passes its checksum.
func TestShipInstallOrder(t *testing.T) {
	dir := t.TempDir()
	data := filepath.Join(dir, "data")
	writeSyntheticCV(t, filepath.Join(data, "cv"), 12, 1)
	tiny, _ := filepath.Abs("testdata")
	// A trainer writes NAME.onnx, NAME.json, NAME-curves.png and NAME.log
	// into its run folder (work/ship/NAME); the failing one stops after
	// writing the model but before its manifest.
	trainer := func(fail bool) string {
		tail := fmt.Sprintf(`sed 's/"tiny.onnx"/"'$name'.onnx"/' %s/tiny.json > "$out/$name.json"`, tiny)
		if fail {
			tail = "echo 'out of memory' >&2; exit 1"
		}
		p := filepath.Join(dir, fmt.Sprintf("train-%v.sh", fail))
		os.WriteFile(p, []byte(fmt.Sprintf(`#!/bin/sh
out=$(dirname "$2")
name=$(basename "$out")
cp %s/tiny.onnx "$out/$name.onnx"
echo png > "$out/$name-curves.png"
echo log > "$out/$name.log"
%s
`, tiny, tail)), 0o755)
		return p
	}
	repo := fakeRepo(t, dir)
	e := tinyExperiment("ship", 1)
	shipped := filepath.Join(dir, "shipped")
	os.MkdirAll(shipped, 0o755)
	old := map[string]string{"detect.onnx": "old model", "detect.json": "old manifest", "detect.log": "old log"}
	for f, c := range old {
		os.WriteFile(filepath.Join(shipped, f), []byte(c), 0o644)
	}
	opt := ShipOptions{Out: shipped, Name: "detect", Seed: 1}

	r := &Runner{DataDir: data, RepoDir: repo, Work: filepath.Join(dir, "work"), Python: trainer(true)}
	if _, err := r.Ship(e, opt); err == nil {
		t.Fatal("Ship with a failing trainer returned no error")
	}
	for f, c := range old {
		if b, _ := os.ReadFile(filepath.Join(shipped, f)); string(b) != c {
			t.Errorf("a failed run changed the shipped %s to %q", f, b)
		}
	}

	r.Python = trainer(false)
	m, err := r.Ship(e, opt)
	if err != nil {
		t.Fatal(err)
	}
	if m != filepath.Join(shipped, "detect.json") {
		t.Errorf("Ship returned %s", m)
	}
	n, err := Load(m)
	if err != nil {
		t.Fatalf("the installed model does not load: %v", err)
	}
	n.Close()
	for _, f := range []string{"detect-curves.png", "detect.log"} {
		if b, _ := os.ReadFile(filepath.Join(shipped, f)); string(b) == old[f] || len(b) == 0 {
			t.Errorf("%s not installed: %q", f, b)
		}
	}
	if _, err := os.Stat(filepath.Join(dir, "work", "ship", "detect", "detect.onnx")); !os.IsNotExist(err) {
		t.Errorf("the run folder still holds the model: %v", err)
	}
}
