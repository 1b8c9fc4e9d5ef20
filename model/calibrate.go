package model

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"slices"
)

// Site calibration: a laboratory measures the model on its own normal
// smears before trusting it. The model's out-of-distribution threshold and
// per-cell false-positive rate were measured on the laboratories it trained
// on; a new microscope, stain or camera moves both. Calibration keeps the
// network and its blast threshold, and replaces the two with the
// laboratory's own measurement:
//   - the OOD threshold becomes the distance under which CalibrationQuantile
//     of the laboratory's normal cells fall (never below the model's own);
//   - the blast threshold becomes the P(blast) that CalibrationFalsePositives
//     of the laboratory's confidently judged normal cells reach: a model
//     that scores a new laboratory's cells all lower (or higher) than its
//     own keeps the false-positive rate it was meant to have;
//   - the per-cell false-positive rate becomes the share of those cells
//     called blast at that threshold.
// Only normal cells are needed: no laboratory has to label a blast.

// CalibrationFormat names the calibration file's format.
const CalibrationFormat = "allscreen-calibration/1"

// CalibrationQuantile is the share of a laboratory's normal cells that the
// calibrated OOD threshold keeps in distribution.
const CalibrationQuantile = 0.99

// CalibrationFalsePositives is the share of a laboratory's normal cells
// the calibrated threshold lets through: about the 1-2% a model has on the
// validation cells of the laboratories it trained on.
const CalibrationFalsePositives = 0.02

// MinCalibrationCells is the fewest normal cells a calibration accepts: a
// false-positive rate measured on fewer cannot be told from 1% (the rule
// of three: no error in 300 cells still allows 1%).
const MinCalibrationCells = 300

// CalibrationCell is one normal cell's judgement by the uncalibrated model.
type CalibrationCell struct {
	PBlast   float32
	Distance float32 // OOD distance
	Fallback bool    // no cell outline found
}

// Calibration is a laboratory's measurement of one model on its normal
// cells (the calibration file, JSON).
type Calibration struct {
	Format     string `json:"format"`
	Laboratory string `json:"laboratory"`
	// ModelSHA256 is the ONNX file's hash: a calibration is valid for the
	// model it measured only.
	ModelSHA256 string `json:"model_onnx_sha256"`
	Created     string `json:"created,omitempty"`
	NormalCells int    `json:"normal_cells"`
	// OODThreshold replaces the manifest's operating_point.ood.threshold.
	OODThreshold float64 `json:"ood_threshold"`
	OODQuantile  float64 `json:"ood_quantile"`
	// BlastThreshold replaces the manifest's operating_point.blast_threshold
	// (ModelBlastThreshold is the one it replaced).
	BlastThreshold      float64 `json:"blast_threshold"`
	ModelBlastThreshold float64 `json:"model_blast_threshold"`
	// CellFalsePositiveRate is the share of confidently judged normal cells
	// called blast; the verdict rule uses it instead of the manifest's.
	CellFalsePositiveRate   float64    `json:"cell_false_positive_rate"`
	CellFalsePositiveRateCI [2]float64 `json:"cell_false_positive_rate_ci95"`
	ConfidentCells          int        `json:"confident_cells"`
	UncertainShare          float64    `json:"uncertain_share"`
}

// Calibrate measures a model (its operating point and ONNX hash) on a
// laboratory's normal cells. It takes any number of cells (the
// leave-one-laboratory-out measurement calibrates on what a laboratory has);
// a calibration file with fewer than MinCalibrationCells fails Check.
func Calibrate(op OperatingPoint, onnxSHA256, lab string, cells []CalibrationCell) (*Calibration, error) {
	if op.BlastThreshold == nil || op.UncertainLow == nil || op.UncertainHigh == nil {
		return nil, errors.New("calibrate: the model's operating point has no blast threshold and uncertain band")
	}
	if len(cells) == 0 {
		return nil, errors.New("calibrate: no normal cells")
	}
	c := &Calibration{Format: CalibrationFormat, Laboratory: lab, ModelSHA256: onnxSHA256, NormalCells: len(cells), OODQuantile: CalibrationQuantile}
	if op.OOD != nil {
		d := make([]float64, len(cells))
		for i, x := range cells {
			d[i] = float64(x.Distance)
		}
		slices.Sort(d)
		q := d[min(len(d)-1, int(math.Ceil(CalibrationQuantile*float64(len(d))))-1)]
		c.OODThreshold = math.Max(op.OOD.Threshold, q)
	}
	c.ModelBlastThreshold = *op.BlastThreshold
	var ps []float64
	for _, x := range cells {
		if unc, _ := c.Rejudge(op, x); !unc {
			ps = append(ps, float64(x.PBlast))
		}
	}
	conf := len(ps)
	c.ConfidentCells = conf
	c.UncertainShare = 1 - float64(conf)/float64(len(cells))
	if conf == 0 {
		return nil, errors.New("calibrate: the model is unsure of every cell, even with the laboratory's own OOD threshold: check the stain, focus and magnification of these smears")
	}
	// the threshold: just above the P(blast) of the confident normal cell
	// ranked at CalibrationFalsePositives from the top, inside (0, 1)
	slices.Sort(ps)
	k := int(math.Floor(CalibrationFalsePositives * float64(conf))) // cells allowed at or above it (0: too few cells for 2%)
	c.BlastThreshold = min(max(math.Nextafter(ps[conf-1-k], 2), 1e-6), 1-1e-6)
	called := 0
	for _, p := range ps {
		if p >= c.BlastThreshold {
			called++
		}
	}
	c.CellFalsePositiveRate = float64(called) / float64(conf)
	c.CellFalsePositiveRateCI = Wilson(called, conf)
	return c, nil
}

// Rejudge applies the calibration to one cell the uncalibrated model (op)
// judged: its uncertain and out-of-distribution flags under the model's
// uncertain band and the calibration's OOD threshold.
func (c *Calibration) Rejudge(op OperatingPoint, x CalibrationCell) (uncertain, ood bool) {
	p := x.PBlast
	inBand := op.UncertainLow != nil && op.UncertainHigh != nil && p >= float32(*op.UncertainLow) && p <= float32(*op.UncertainHigh)
	ood = op.OOD != nil && float64(x.Distance) > c.OODThreshold
	return inBand || ood || x.Fallback, ood
}

// Apply returns the model's operating point as the calibration changes it:
// its blast and OOD thresholds, and the validation error rate the verdict
// rule reads as the per-cell false-positive rate (screening.RuleFor, which
// floors it as it floors the model's own).
func (c *Calibration) Apply(op OperatingPoint) OperatingPoint {
	th, rate := c.BlastThreshold, c.CellFalsePositiveRate
	op.BlastThreshold, op.ValidationErrorOutside, op.CellFalsePositiveRate = &th, &rate, &rate
	op.ChosenOn = fmt.Sprintf("site calibration of %s: at most %.0f%% of its %d normal cells at or above the threshold", c.Laboratory, 100*CalibrationFalsePositives, c.NormalCells)
	if op.OOD != nil {
		ood := *op.OOD
		ood.Threshold = c.OODThreshold
		ood.ChosenOn = fmt.Sprintf("site calibration of %s on %d normal cells (quantile %.2f)", c.Laboratory, c.NormalCells, c.OODQuantile)
		op.OOD = &ood
	}
	return op
}

// Check reports a calibration that cannot be used with a model.
func (c *Calibration) Check(m *Manifest) error {
	switch {
	case c.Format != CalibrationFormat:
		return fmt.Errorf("calibration: format %q, want %q", c.Format, CalibrationFormat)
	case c.ModelSHA256 != m.ONNXSHA256:
		return fmt.Errorf("calibration: made for model %.12s, not the loaded model %.12s: calibrate again", c.ModelSHA256, m.ONNXSHA256)
	case !(c.BlastThreshold > 0 && c.BlastThreshold < 1):
		return fmt.Errorf("calibration: blast_threshold %v outside (0, 1): calibrate again", c.BlastThreshold)
	case !(c.CellFalsePositiveRate >= 0 && c.CellFalsePositiveRate < 1):
		return fmt.Errorf("calibration: cell_false_positive_rate %v outside 0..1", c.CellFalsePositiveRate)
	case c.NormalCells < MinCalibrationCells:
		return fmt.Errorf("calibration: %d normal cells, fewer than %d", c.NormalCells, MinCalibrationCells)
	case math.IsInf(c.OODThreshold, 0) || math.IsNaN(c.OODThreshold):
		return fmt.Errorf("calibration: OOD threshold %v", c.OODThreshold)
	case m.Operating.OOD != nil && c.OODThreshold < m.Operating.OOD.Threshold:
		return fmt.Errorf("calibration: OOD threshold %v below the model's own %v", c.OODThreshold, m.Operating.OOD.Threshold)
	}
	return nil
}

// maxCalibrationBytes bounds a calibration file read from disk.
const maxCalibrationBytes = 1 << 16

// ParseCalibration decodes a calibration file strictly (unknown fields are
// an error: a misspelt field must not be silently ignored). It never panics.
func ParseCalibration(raw []byte) (*Calibration, error) {
	if len(raw) > maxCalibrationBytes {
		return nil, fmt.Errorf("calibration: %d bytes, more than %d", len(raw), maxCalibrationBytes)
	}
	var c Calibration
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&c); err != nil {
		return nil, fmt.Errorf("calibration: %w", err)
	}
	if dec.More() {
		return nil, errors.New("calibration: trailing data after the JSON object")
	}
	return &c, nil
}

// ReadCalibration reads and parses a calibration file.
func ReadCalibration(path string) (*Calibration, error) {
	raw, err := readLimited(path, maxCalibrationBytes)
	if err != nil {
		return nil, fmt.Errorf("calibration: %w", err)
	}
	c, err := ParseCalibration(raw)
	if err != nil {
		return nil, fmt.Errorf("%s: %w (write it again with allscreen calibrate)", path, err)
	}
	return c, nil
}

// ApplyCalibration makes the model judge cells with a laboratory's
// calibration (Apply): a verdict rule built from the calibrated manifest
// (screening.RuleFor) takes the laboratory's threshold and rate.
func (n *Net) ApplyCalibration(c *Calibration) error {
	if err := c.Check(n.m); err != nil {
		return err
	}
	n.m.Operating = c.Apply(n.m.Operating)
	return nil
}
