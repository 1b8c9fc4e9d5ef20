package model

import (
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// TestTrainingSmoke runs the whole training pipeline on the CC-BY images in
// samples/ so it cannot rot: Go prepares the inputs, model/train/train.py
// trains one short epoch of each architecture and exports ONNX plus
// manifest plus parity fixture, and Go loads the result and must reproduce
// PyTorch's probabilities within 1e-4. It needs /usr/bin/python3 with torch
// and takes about a minute, so it runs only when ALLSCREEN_TRAIN_SMOKE=1
// (`make model-smoke`, part of `make test`).
func TestTrainingSmoke(t *testing.T) {
	python := trainingPython(t)
	items, err := sampleItems("../samples")
	if err != nil {
		t.Fatal(err)
	}
	for i := range items {
		items[i].Label = "normal"
		if strings.HasPrefix(items[i].File, "blast") {
			items[i].Label = "blast"
		}
	}
	for _, arch := range []struct {
		name    string
		size    int
		augment string
	}{{"compact", 64, "wide"}, {"paper", 256, "full"}} {
		t.Run(arch.name, func(t *testing.T) {
			dir := t.TempDir()
			spec := DefaultInputSpec
			spec.Size = arch.size
			prep := filepath.Join(dir, "prep")
			res, err := PrepareSet(items, prep, PrepareOptions{Spec: spec}, nil)
			if err != nil || res.Inputs != len(items) {
				t.Fatalf("prepare: %v (%d of %d)", err, res.Inputs, len(items))
			}
			rows, err := readIndex(prep)
			if err != nil {
				t.Fatal(err)
			}
			all := trainPart{Dir: prep, Name: "samples", Map: map[string]string{"blast": "blast", "normal": "normal"}}
			for _, r := range rows {
				all.Inputs = append(all.Inputs, r.Input)
			}
			val := all
			val.Inputs = []string{rows[0].Input, rows[len(rows)-1].Input}
			cfg := trainConfig{Arch: arch.name, Seed: 1, Epochs: 1, Threads: 2, Classes: []string{"normal", "blast"},
				Positive: "blast", Task: TaskDetection, Train: []trainPart{all}, Val: []trainPart{val}, Test: []trainPart{all},
				Augment: arch.augment, Protocol: SplitThenAugment, Out: filepath.Join(dir, "out"), Name: "smoke", Provisional: true,
				Parity: &parityConfig{Dir: prep, Out: filepath.Join(dir, "out", "parity", "smoke.json")}}
			raw, _ := json.Marshal(cfg)
			cfgPath := filepath.Join(dir, "config.json")
			if err := os.WriteFile(cfgPath, raw, 0o644); err != nil {
				t.Fatal(err)
			}
			cmd := exec.Command(python, "train/train.py", cfgPath)
			out, err := cmd.CombinedOutput()
			if err != nil {
				t.Fatalf("train.py: %v\n%s", err, out)
			}
			for _, f := range []string{"smoke.onnx", "smoke.json", "smoke-curves.png", "parity/smoke.json", "smoke-predictions.csv"} {
				if _, err := os.Stat(filepath.Join(dir, "out", f)); err != nil {
					t.Fatalf("training wrote no %s: %v\n%s", f, err, out)
				}
			}
			m, err := readManifestFile(filepath.Join(dir, "out", "smoke.json"))
			if err != nil {
				t.Fatal(err)
			}
			if !m.Provisional || m.Architecture != arch.name || m.Input.Size != arch.size || m.Opset != 13 {
				t.Fatalf("manifest: %+v", m)
			}
			checkParity(t, filepath.Join(dir, "out", "parity", "smoke.json"))
			if arch.name != "compact" {
				return
			}
			// Deterministic for a seed: a second run gives the same bytes.
			cfg.Out = filepath.Join(dir, "again")
			cfg.Parity = nil
			raw, _ = json.Marshal(cfg)
			if err := os.WriteFile(cfgPath, raw, 0o644); err != nil {
				t.Fatal(err)
			}
			if out, err := exec.Command(python, "train/train.py", cfgPath).CombinedOutput(); err != nil {
				t.Fatalf("train.py again: %v\n%s", err, out)
			}
			m2, err := readManifestFile(filepath.Join(dir, "again", "smoke.json"))
			if err != nil {
				t.Fatal(err)
			}
			if m2.ONNXSHA256 != m.ONNXSHA256 {
				t.Fatalf("two runs with seed 1 gave different models (%s, %s)", m.ONNXSHA256[:12], m2.ONNXSHA256[:12])
			}
		})
	}
}

// TestAugmentChecks runs model/train/check_augment.py: the colour
// conversions round-trip, "wide" restyles cells within its stated bounds
// and BGR inputs like RGB ones, every augmentation keeps the neutral
// background, and an unknown one is refused. Gated like TestTrainingSmoke.
func TestAugmentChecks(t *testing.T) {
	out, err := exec.Command(trainingPython(t), "train/check_augment.py").CombinedOutput()
	if err != nil {
		t.Fatalf("check_augment.py: %v\n%s", err, out)
	}
}

// trainingPython skips the test unless ALLSCREEN_TRAIN_SMOKE=1 and returns
// the Python with torch (ALLSCREEN_PYTHON, default /usr/bin/python3).
func trainingPython(t *testing.T) string {
	t.Helper()
	if os.Getenv("ALLSCREEN_TRAIN_SMOKE") != "1" {
		t.Skip("set ALLSCREEN_TRAIN_SMOKE=1 (make model-smoke) to run the tests that call Python")
	}
	if p := os.Getenv("ALLSCREEN_PYTHON"); p != "" {
		return p
	}
	return "/usr/bin/python3"
}
