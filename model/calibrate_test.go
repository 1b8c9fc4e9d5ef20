package model

import (
	"math"
	"slices"
	"strings"
	"testing"
)

func calOp(oodThreshold float64) OperatingPoint {
	th, lo, hi := 0.5, 0.45, 0.55
	return OperatingPoint{BlastThreshold: &th, UncertainLow: &lo, UncertainHigh: &hi,
		OOD: &OODCheck{Kind: "feature-distance", Threshold: oodThreshold}}
}

func TestCalibrate(t *testing.T) {
	// 1000 normal cells at OOD distances 1.000..1.999 (the model's own
	// threshold 0.5 would flag them all), every tenth called blast
	var cells []CalibrationCell
	for i := 0; i < 1000; i++ {
		p := float32(0.1)
		if i%10 == 0 {
			p = 0.9
		}
		cells = append(cells, CalibrationCell{PBlast: p, Distance: 1 + float32(i)/1000})
	}
	far := slices.Clone(cells)
	c, err := Calibrate(calOp(0.5), strings.Repeat("ab", 32), "lab", cells)
	if err != nil {
		t.Fatal(err)
	}
	// the 99th percentile of the distances: the 990th of 1000, 1.989
	if math.Abs(c.OODThreshold-1.989) > 1e-6 {
		t.Errorf("OOD threshold %v, want 1.989", c.OODThreshold)
	}
	// cells above the new threshold (1.990..1.999: 10) are uncertain; of the
	// 990 others 99 score 0.9, more than the 2% a threshold may let
	// through: the threshold goes just above 0.9 and lets none through
	if c.ConfidentCells != 990 || c.CellFalsePositiveRate != 0 || !(c.BlastThreshold > float64(float32(0.9)) && c.BlastThreshold < 0.9001) || c.ModelBlastThreshold != 0.5 {
		t.Errorf("confident %d, threshold %v (model %v), false-positive rate %v; want 990, just above 0.9, 0.5, 0",
			c.ConfidentCells, c.BlastThreshold, c.ModelBlastThreshold, c.CellFalsePositiveRate)
	}
	// distinct scores 0.000..0.999: the threshold lets 2% through
	for i := range cells {
		cells[i].PBlast = float32(i) / 1000
		cells[i].Distance = 0.1
	}
	c, err = Calibrate(calOp(0.5), strings.Repeat("ab", 32), "lab", cells)
	if err != nil {
		t.Fatal(err)
	}
	// the band 0.45..0.55 is uncertain (101 cells); 899 confident, floor(0.02*899) = 17 at or above
	if c.ConfidentCells != 899 || math.Abs(c.CellFalsePositiveRate-17.0/899) > 1e-12 || !(c.BlastThreshold > float64(float32(0.982)) && c.BlastThreshold < 0.9821) {
		t.Errorf("distinct scores: confident %d, threshold %v, rate %v; want 899, just above 0.982, 17/899", c.ConfidentCells, c.BlastThreshold, c.CellFalsePositiveRate)
	}
	c, err = Calibrate(calOp(0.5), strings.Repeat("ab", 32), "lab", far)
	if err != nil {
		t.Fatal(err)
	}
	unc, ood := c.Rejudge(calOp(0.5), CalibrationCell{PBlast: 0.1, Distance: 1.5})
	if unc || ood {
		t.Errorf("a cell at distance 1.5 is flagged after calibration (uncertain %v, ood %v)", unc, ood)
	}
	unc, ood = c.Rejudge(calOp(0.5), CalibrationCell{PBlast: 0.1, Distance: 2.5})
	if !unc || !ood {
		t.Errorf("a cell at distance 2.5 is not flagged after calibration")
	}
	if unc, _ := c.Rejudge(calOp(0.5), CalibrationCell{PBlast: 0.5, Distance: 1}); !unc {
		t.Errorf("a cell in the model's uncertain band is not uncertain after calibration")
	}

	// a laboratory closer to the training data than the model's own
	// threshold: calibration never tightens the model's threshold
	for i := range cells {
		cells[i].Distance = 0.1
	}
	c, err = Calibrate(calOp(0.5), strings.Repeat("ab", 32), "lab", cells)
	if err != nil {
		t.Fatal(err)
	}
	if c.OODThreshold != 0.5 {
		t.Errorf("OOD threshold %v, want the model's 0.5", c.OODThreshold)
	}
	if _, err := Calibrate(calOp(0.5), "", "lab", nil); err == nil {
		t.Error("no cells: no error")
	}
	if _, err := Calibrate(OperatingPoint{}, "", "lab", cells); err == nil {
		t.Error("no operating point: no error")
	}
}

func TestCalibrationCheck(t *testing.T) {
	m := &Manifest{ONNXSHA256: strings.Repeat("ab", 32), Operating: calOp(0.5)}
	good := Calibration{Format: CalibrationFormat, ModelSHA256: m.ONNXSHA256, NormalCells: MinCalibrationCells, OODThreshold: 0.7, CellFalsePositiveRate: 0.02, BlastThreshold: 0.3}
	if err := good.Check(m); err != nil {
		t.Fatalf("a good calibration fails: %v", err)
	}
	for name, mod := range map[string]func(*Calibration){
		"other model":   func(c *Calibration) { c.ModelSHA256 = strings.Repeat("cd", 32) },
		"format":        func(c *Calibration) { c.Format = "x" },
		"few cells":     func(c *Calibration) { c.NormalCells = MinCalibrationCells - 1 },
		"rate NaN":      func(c *Calibration) { c.CellFalsePositiveRate = math.NaN() },
		"rate 1":        func(c *Calibration) { c.CellFalsePositiveRate = 1 },
		"OOD below":     func(c *Calibration) { c.OODThreshold = 0.4 },
		"OOD NaN":       func(c *Calibration) { c.OODThreshold = math.NaN() },
		"OOD infinite":  func(c *Calibration) { c.OODThreshold = math.Inf(1) },
		"rate negative": func(c *Calibration) { c.CellFalsePositiveRate = -0.1 },
	} {
		c := good
		mod(&c)
		if err := c.Check(m); err == nil {
			t.Errorf("%s: Check passes", name)
		}
	}
}

// FuzzParseCalibration: a calibration file is read from the operator's
// disk; whatever its bytes, parsing and checking never panic, and a file
// that passes Check gives a usable rate and threshold.
func FuzzParseCalibration(f *testing.F) {
	f.Add([]byte(`{"format":"allscreen-calibration/1","laboratory":"x","model_onnx_sha256":"` + strings.Repeat("ab", 32) +
		`","normal_cells":400,"blast_threshold":0.3,"model_blast_threshold":0.5,"ood_threshold":0.7,"ood_quantile":0.99,"cell_false_positive_rate":0.02,"cell_false_positive_rate_ci95":[0.01,0.04],"confident_cells":390,"uncertain_share":0.02}`))
	f.Add([]byte(`{}`))
	f.Add([]byte(`{"format":"allscreen-calibration/1","ood_threshold":1e400}`))
	f.Add([]byte(`{"unknown":1}`))
	f.Add([]byte(`{} {}`))
	m := &Manifest{ONNXSHA256: strings.Repeat("ab", 32), Operating: calOp(0.5)}
	f.Fuzz(func(t *testing.T, data []byte) {
		c, err := ParseCalibration(data)
		if err != nil {
			if c != nil {
				t.Fatal("calibration and error")
			}
			return
		}
		if c.Check(m) == nil && (math.IsNaN(c.OODThreshold) || c.OODThreshold < 0.5 || !(c.CellFalsePositiveRate >= 0 && c.CellFalsePositiveRate < 1) || !(c.BlastThreshold > 0 && c.BlastThreshold < 1)) {
			t.Fatalf("checked calibration with threshold %v rate %v", c.OODThreshold, c.CellFalsePositiveRate)
		}
	})
}

func TestParseCalibrationRefuses(t *testing.T) {
	for _, in := range []string{`{"unknown":1}`, `{} {}`, `[`, strings.Repeat(" ", maxCalibrationBytes+1)} {
		if _, err := ParseCalibration([]byte(in)); err == nil {
			t.Errorf("%.20q parses", in)
		}
	}
}
