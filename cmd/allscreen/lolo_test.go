package main

import (
	"fmt"
	"math"
	"testing"

	"allscreen/model"
)

func TestRocAUC(t *testing.T) {
	for _, c := range []struct {
		pos, neg []float64
		want     float64
	}{
		{[]float64{0.9, 0.8}, []float64{0.1, 0.2}, 1},
		{[]float64{0.1, 0.2}, []float64{0.9, 0.8}, 0},
		{[]float64{0.5, 0.5}, []float64{0.5}, 0.5},
		// pairs: (0.3>0.2) (0.3<0.4) (0.6>0.2) (0.6>0.4): 3 of 4
		{[]float64{0.3, 0.6}, []float64{0.2, 0.4}, 0.75},
		// a tie counts half: (0.4=0.4) 0.5, (0.4>0.1) 1: 1.5 of 2
		{[]float64{0.4}, []float64{0.4, 0.1}, 0.75},
	} {
		if got := rocAUC(c.pos, c.neg); math.Abs(got-c.want) > 1e-12 {
			t.Errorf("rocAUC(%v, %v) = %v, want %v", c.pos, c.neg, got, c.want)
		}
	}
}

// syntheticFold is a laboratory's held-out cells: nNormal normal cells at
// P(blast) pNormal and nBlast blasts at pBlast, ten cells per group.
func syntheticFold(seed, nNormal, nBlast int, pNormal, pBlast float32) *model.LabFold {
	th, fpr := 0.5, 0.01
	f := &model.LabFold{Lab: "x", Seed: seed, Op: model.OperatingPoint{BlastThreshold: &th, ValidationErrorOutside: &fpr}}
	for i := 0; i < nNormal; i++ {
		f.Cells = append(f.Cells, model.LabCell{Lab: "x", Source: "s", Type: "normal", Group: fmt.Sprintf("n%d", i/10), PBlast: pNormal})
	}
	for i := 0; i < nBlast; i++ {
		f.Cells = append(f.Cells, model.LabCell{Lab: "x", Source: "s", Type: "blast", Group: fmt.Sprintf("b%d", i/10), Blast: true, PBlast: pBlast})
	}
	return f
}

func TestSummariseLabSeparable(t *testing.T) {
	lr, err := summariseLab("x", []*model.LabFold{syntheticFold(1, 300, 100, 0.1, 0.9), syntheticFold(2, 300, 100, 0.1, 0.9)}, 200)
	if err != nil {
		t.Fatal(err)
	}
	if lr.Sensitivity == nil || lr.Sensitivity.Min != 1 || lr.Specificity == nil || lr.Specificity.Min != 1 || lr.AUC.Min != 1 {
		t.Fatalf("separable cells: sensitivity %+v specificity %+v AUC %+v, want all 1", lr.Sensitivity, lr.Specificity, lr.AUC)
	}
	want := map[string][3]float64{"normal": {0, 1, 0}, "all-5": {1, 0, 0}, "all-20": {1, 0, 0}}
	if len(lr.Samples) != 3 {
		t.Fatalf("%d sample kinds, want 3", len(lr.Samples))
	}
	for _, s := range lr.Samples {
		w := want[s.Kind]
		if s.Refer.Mean != w[0] || s.NoBlastsSeen.Mean != w[1] || s.Inconclusive.Mean != w[2] {
			t.Errorf("%s samples: refer %.3f no blasts %.3f inconclusive %.3f, want %v", s.Kind, s.Refer.Mean, s.NoBlastsSeen.Mean, s.Inconclusive.Mean, w)
		}
	}
	if len(lr.Types) != 2 || lr.Types[0].N != 300 || lr.Types[1].N != 100 {
		t.Errorf("types %+v", lr.Types)
	}
}

func TestSummariseLabMissedBlasts(t *testing.T) {
	// blasts the model calls normal: no sample is referred, and an ALL
	// sample passes as "no blasts seen" (the failure the figures must show)
	lr, err := summariseLab("x", []*model.LabFold{syntheticFold(1, 300, 100, 0.1, 0.2)}, 100)
	if err != nil {
		t.Fatal(err)
	}
	if lr.Sensitivity.Max != 0 {
		t.Errorf("sensitivity %v, want 0", lr.Sensitivity.Values)
	}
	for _, s := range lr.Samples {
		if s.Refer.Max != 0 || s.NoBlastsSeen.Min != 1 {
			t.Errorf("%s: refer %v no blasts %v, want 0 and 1", s.Kind, s.Refer.Values, s.NoBlastsSeen.Values)
		}
	}
	// a normal-only laboratory gets normal samples only
	lr, err = summariseLab("x", []*model.LabFold{syntheticFold(1, 300, 0, 0.1, 0)}, 50)
	if err != nil {
		t.Fatal(err)
	}
	if lr.Sensitivity != nil || len(lr.Samples) != 1 || lr.Samples[0].Kind != "normal" || lr.AUC != nil {
		t.Errorf("normal-only laboratory: sensitivity %v, samples %+v, AUC %v", lr.Sensitivity, lr.Samples, lr.AUC)
	}
}

func TestSummariseLabUncertainBlastsAreMissed(t *testing.T) {
	f := syntheticFold(1, 100, 100, 0.1, 0.9)
	for i := range f.Cells {
		if f.Cells[i].Blast && i%2 == 0 {
			f.Cells[i].Uncertain = true
		}
	}
	lr, err := summariseLab("x", []*model.LabFold{f}, 10)
	if err != nil {
		t.Fatal(err)
	}
	if lr.Sensitivity.Mean != 0.5 || math.Abs(lr.Uncertain.Mean-0.25) > 1e-12 {
		t.Errorf("half the blasts uncertain: sensitivity %v uncertain share %v, want 0.5 and 0.25", lr.Sensitivity.Mean, lr.Uncertain.Mean)
	}
	if lr.SensitivityByThreshold.Mean != 1 {
		t.Errorf("by the threshold alone every blast is above it: %v", lr.SensitivityByThreshold.Mean)
	}
}

func TestSummariseLabOutOfDistribution(t *testing.T) {
	// every normal cell out of distribution, a third above the threshold:
	// the rule calls none a blast, the threshold alone a third, and every
	// normal sample is inconclusive, never "no blasts seen"
	f := syntheticFold(1, 300, 0, 0.1, 0)
	for i := range f.Cells {
		f.Cells[i].OOD = true
		if i%3 == 0 {
			f.Cells[i].PBlast = 0.9
		}
	}
	lr, err := summariseLab("x", []*model.LabFold{f}, 20)
	if err != nil {
		t.Fatal(err)
	}
	if lr.Specificity.Mean != 1 || math.Abs(lr.SpecificityByThreshold.Mean-2.0/3) > 1e-12 || lr.OOD.Mean != 1 {
		t.Errorf("specificity %v by threshold %v OOD share %v, want 1, 2/3, 1", lr.Specificity.Mean, lr.SpecificityByThreshold.Mean, lr.OOD.Mean)
	}
	if s := lr.Samples[0]; s.Inconclusive.Mean != 1 {
		t.Errorf("normal samples all out of distribution: inconclusive %v, want 1", s.Inconclusive.Mean)
	}
}

func TestCalibrateFoldClearsANewLaboratorysFlags(t *testing.T) {
	// a laboratory whose cells all lie beyond the model's OOD threshold:
	// before calibration every sample is inconclusive; calibrated on half
	// its normal cells, the other half's samples get a verdict, and its
	// blasts are called again
	f := syntheticFold(1, 600, 200, 0.1, 0.9)
	lo, hi := 0.45, 0.55
	f.Op.UncertainLow, f.Op.UncertainHigh = &lo, &hi
	f.Op.OOD = &model.OODCheck{Kind: "feature-distance", Threshold: 1}
	for i := range f.Cells {
		f.Cells[i].Distance = 2 + float32(i%50)/100
		f.Cells[i].OOD, f.Cells[i].Uncertain = true, true
	}
	lr, err := summariseLab("x", []*model.LabFold{f}, 200)
	if err != nil {
		t.Fatal(err)
	}
	c := lr.Calibration
	if c == nil {
		t.Fatal("no calibration measured")
	}
	if c.CalibrationCells+c.TestCells != 600 || c.CalibrationCells < 100 || c.TestCells < 100 {
		t.Errorf("halves %d + %d, want about 300 each", c.CalibrationCells, c.TestCells)
	}
	if c.Before.Uncertain.Mean != 1 || c.After.Uncertain.Mean > 0.05 {
		t.Errorf("uncertain share before %v after %v, want 1 and under 0.05", c.Before.Uncertain.Mean, c.After.Uncertain.Mean)
	}
	if c.Before.Inconclusive[0].Mean != 1 || c.After.Referred[0].Mean != 0 || c.After.Inconclusive[0].Mean != 0 {
		t.Errorf("normal samples: inconclusive before %v; after referred %v inconclusive %v", c.Before.Inconclusive[0].Mean,
			c.After.Referred[0].Mean, c.After.Inconclusive[0].Mean)
	}
	if c.Before.Sensitivity.Mean != 0 || c.After.Sensitivity.Mean < 0.9 || c.After.Referred[2].Mean != 1 {
		t.Errorf("blasts: sensitivity before %v after %v, ALL-20 referred after %v", c.Before.Sensitivity.Mean, c.After.Sensitivity.Mean, c.After.Referred[2].Mean)
	}
}
