package main

import (
	"hash/fnv"

	"allscreen/model"
	"allscreen/screening"
)

// Site calibration measured under leave-one-laboratory-out: the left-out
// laboratory's normal cells are split in halves by group; the model is
// calibrated on one half (model.Calibrate, what `allscreen calibrate` does)
// and judged on the other half and on all the laboratory's blasts, before
// and after.

// minLOLOCalibrationCells: a laboratory with fewer normal cells in its
// calibration half is not measured (the figure would be noise).
const minLOLOCalibrationCells = 100

type calibrationSide struct {
	Specificity  float64   `json:"specificity"`
	Uncertain    float64   `json:"uncertain_share"`
	Sensitivity  *float64  `json:"sensitivity,omitempty"`
	CellFPR      float64   `json:"rule_cell_false_positive_rate"`
	Referred     []float64 `json:"referred"`     // per sample kind
	Inconclusive []float64 `json:"inconclusive"` // per sample kind
}

type calibrationSeed struct {
	Seed           int             `json:"seed"`
	BlastThreshold float64         `json:"blast_threshold"`
	CalibrationSet int             `json:"calibration_cells"`
	TestSet        int             `json:"test_cells"`
	OODThreshold   float64         `json:"ood_threshold"`
	ModelOOD       float64         `json:"model_ood_threshold"`
	Before         calibrationSide `json:"before"`
	After          calibrationSide `json:"after"`
}

type calibrationSummary struct {
	Specificity  model.Spread   `json:"specificity"`
	Uncertain    model.Spread   `json:"uncertain_share"`
	Sensitivity  *model.Spread  `json:"sensitivity,omitempty"`
	CellFPR      model.Spread   `json:"rule_cell_false_positive_rate"`
	Referred     []model.Spread `json:"referred"`
	Inconclusive []model.Spread `json:"inconclusive"`
}

type calibrationResult struct {
	CalibrationCells int                `json:"calibration_cells"`
	TestCells        int                `json:"test_cells"`
	Kinds            []string           `json:"sample_kinds"`
	Before           calibrationSummary `json:"before"`
	After            calibrationSummary `json:"after"`
	Seeds            []calibrationSeed  `json:"per_seed"`
}

// calibrationHalf puts a normal cell's group in the calibration half (true)
// or the test half.
func calibrationHalf(c model.LabCell) bool {
	h := fnv.New32a()
	h.Write([]byte(c.Source + "\x00" + c.Group))
	return h.Sum32()&1 == 0
}

func calCell(c model.LabCell) model.CalibrationCell {
	return model.CalibrationCell{PBlast: c.PBlast, Distance: c.Distance, Fallback: c.Fallback}
}

// calibrateFold measures site calibration on one fold; before holds the
// uncalibrated rule's call of every cell of f.
func calibrateFold(lab string, f *model.LabFold, rule screening.Rule, before []screening.CellCall, samples int) (calibrationSeed, bool) {
	cs := calibrationSeed{Seed: f.Seed}
	var calCells []model.CalibrationCell
	for _, c := range f.Cells {
		if c.Blast {
			continue
		}
		if calibrationHalf(c) {
			calCells = append(calCells, calCell(c))
		} else {
			cs.TestSet++
		}
	}
	cs.CalibrationSet = len(calCells)
	if len(calCells) < minLOLOCalibrationCells || cs.TestSet == 0 {
		return cs, false
	}
	cal, err := model.Calibrate(f.Op, "", lab, calCells)
	if err != nil {
		return cs, false
	}
	cs.OODThreshold = cal.OODThreshold
	cs.BlastThreshold = cal.BlastThreshold
	if f.Op.OOD != nil {
		cs.ModelOOD = f.Op.OOD.Threshold
	}
	calRule, err := screening.RuleFor(cal.Apply(f.Op), screening.DefaultRuleConfig)
	if err != nil {
		return cs, false
	}
	after := make([]screening.CellCall, len(f.Cells))
	for i, c := range f.Cells {
		unc, ood := cal.Rejudge(f.Op, calCell(c))
		after[i] = calRule.CallCell(model.Prediction{Blast: c.PBlast, Uncertain: unc, OutOfDistribution: ood})
	}
	test := func(c model.LabCell) bool { return c.Blast || !calibrationHalf(c) }
	side := func(calls []screening.CellCall, r screening.Rule, variant uint64) calibrationSide {
		s := calibrationSide{CellFPR: r.CellFalsePositiveRate}
		var nNormal, okNormal, unc, nBlast, called int
		for i, c := range f.Cells {
			if !test(c) {
				continue
			}
			if c.Blast {
				nBlast++
				if calls[i].Blast {
					called++
				}
				continue
			}
			nNormal++
			if !calls[i].Blast {
				okNormal++
			}
			if calls[i].Uncertain {
				unc++
			}
		}
		s.Specificity = float64(okNormal) / float64(nNormal)
		s.Uncertain = float64(unc) / float64(nNormal)
		if nBlast > 0 {
			v := float64(called) / float64(nBlast)
			s.Sensitivity = &v
		}
		normal, blast := poolByGroup(f.Cells, calls, false, test), poolByGroup(f.Cells, calls, true, test)
		for _, counts := range simulate(normal, blast, r, samples, sampleRNG(lab, f.Seed, variant)) {
			if counts == nil {
				s.Referred = append(s.Referred, -1)
				s.Inconclusive = append(s.Inconclusive, -1)
				continue
			}
			s.Referred = append(s.Referred, float64(counts[0])/float64(samples))
			s.Inconclusive = append(s.Inconclusive, float64(counts[2])/float64(samples))
		}
		return s
	}
	cs.Before = side(before, rule, 1)
	cs.After = side(after, calRule, 1)
	return cs, true
}

func summariseCalibration(seeds []calibrationSeed) *calibrationResult {
	if len(seeds) == 0 {
		return nil
	}
	r := &calibrationResult{CalibrationCells: seeds[0].CalibrationSet, TestCells: seeds[0].TestSet, Seeds: seeds}
	for _, k := range sampleKinds {
		r.Kinds = append(r.Kinds, k.Name)
	}
	sum := func(get func(calibrationSeed) calibrationSide) calibrationSummary {
		var spec, unc, sens, fpr []float64
		ref := make([][]float64, len(sampleKinds))
		inc := make([][]float64, len(sampleKinds))
		for _, s := range seeds {
			x := get(s)
			spec = append(spec, x.Specificity)
			unc = append(unc, x.Uncertain)
			fpr = append(fpr, x.CellFPR)
			if x.Sensitivity != nil {
				sens = append(sens, *x.Sensitivity)
			}
			for k := range sampleKinds {
				if k < len(x.Referred) && x.Referred[k] >= 0 {
					ref[k] = append(ref[k], x.Referred[k])
					inc[k] = append(inc[k], x.Inconclusive[k])
				}
			}
		}
		out := calibrationSummary{Specificity: model.SpreadOf(spec), Uncertain: model.SpreadOf(unc), CellFPR: model.SpreadOf(fpr), Sensitivity: spreadOrNil(sens)}
		for k := range sampleKinds {
			out.Referred = append(out.Referred, model.SpreadOf(ref[k]))
			out.Inconclusive = append(out.Inconclusive, model.SpreadOf(inc[k]))
		}
		return out
	}
	r.Before = sum(func(s calibrationSeed) calibrationSide { return s.Before })
	r.After = sum(func(s calibrationSeed) calibrationSide { return s.After })
	return r
}
