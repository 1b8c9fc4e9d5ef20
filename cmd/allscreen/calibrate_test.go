package main

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"allscreen/model"
)

// calibrationFolder writes n copies of a bundled normal cell (CC BY 3.0,
// samples/CREDITS.txt) and, if corrupt, one truncated image.
func calibrationFolder(t *testing.T, n int, corrupt bool) string {
	t.Helper()
	raw, err := os.ReadFile("../../samples/normal_cnmc_UID_H10_47_2_hem.png")
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	for i := 0; i < n; i++ {
		if err := os.WriteFile(filepath.Join(dir, fmt.Sprintf("cell%03d.png", i)), raw, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	if corrupt {
		if err := os.WriteFile(filepath.Join(dir, "truncated.png"), raw[:len(raw)/3], 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

func TestCalibrateCommand(t *testing.T) {
	const manifest = "../../model/testdata/tiny.json"
	dir := calibrationFolder(t, model.MinCalibrationCells, true)
	out := filepath.Join(t.TempDir(), "site.json")
	if err := runCalibrate([]string{"--model", manifest, "--lab", "test lab", "--out", out, dir}); err != nil {
		t.Fatalf("calibrate: %v", err)
	}
	c, err := model.ReadCalibration(out)
	if err != nil {
		t.Fatal(err)
	}
	n, err := model.Load(manifest)
	if err != nil {
		t.Fatal(err)
	}
	defer n.Close()
	if c.NormalCells != model.MinCalibrationCells || c.Laboratory != "test lab" {
		t.Errorf("calibration of %d cells of %q, want %d of \"test lab\" (the truncated image left out)", c.NormalCells, c.Laboratory, model.MinCalibrationCells)
	}
	if err := n.ApplyCalibration(c); err != nil {
		t.Fatalf("the calibration does not fit the model it measured: %v", err)
	}
	if got := n.Manifest().Operating.OOD.Threshold; got != c.OODThreshold {
		t.Errorf("after ApplyCalibration the model's OOD threshold is %v, want %v", got, c.OODThreshold)
	}
	// every cell is the same cell: all within the calibrated threshold
	preds, err := judgeImage(n, filepath.Join(dir, "cell000.png"), false)
	if err != nil || len(preds) != 1 || preds[0].OutOfDistribution {
		t.Errorf("a calibration cell is out of distribution after calibration: %+v, %v", preds, err)
	}

	// checking it on more normal cells (here the same cell again) passes
	if err := runCalibrate([]string{"--model", manifest, "--check", out, calibrationFolder(t, 3, false)}); err != nil {
		t.Errorf("calibrate --check: %v", err)
	}

	// another model refuses it
	c.ModelSHA256 = strings.Repeat("0", 64)
	if err := n.ApplyCalibration(c); err == nil {
		t.Error("a calibration made for another model is applied")
	}
	// too few cells: an error that says how many are needed, no file
	few := filepath.Join(t.TempDir(), "few.json")
	err = runCalibrate([]string{"--model", manifest, "--lab", "x", "--out", few, calibrationFolder(t, 5, false)})
	if err == nil || !strings.Contains(err.Error(), fmt.Sprint(model.MinCalibrationCells)) {
		t.Errorf("5 cells: %v, want an error naming %d", err, model.MinCalibrationCells)
	}
	if _, err := os.Stat(few); !os.IsNotExist(err) {
		t.Errorf("a failed calibration left a file: %v", err)
	}
}
