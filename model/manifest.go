package model

import (
	"bytes"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"path/filepath"
	"slices"
	"strings"
)

// ManifestFormat is the format tag every manifest carries.
const ManifestFormat = "allscreen-model/1"

// Tasks a model may perform.
const (
	TaskDetection = "detection" // blast or not
	TaskSubtype   = "subtype"   // which kind of blast
)

// MaxManifestBytes bounds a manifest read from disk.
const MaxManifestBytes = 4 << 20

// Manifest makes a model file self-describing: what it expects, what it
// answers, how it was trained and measured. The training code writes it
// beside the ONNX file; Load refuses a model whose manifest fails Check.
// docs/classifier.md documents every field.
type Manifest struct {
	Format        string         `json:"format"`
	Task          string         `json:"task"`
	Provisional   bool           `json:"provisional"`
	Description   string         `json:"description,omitempty"`
	Architecture  string         `json:"architecture"`
	Parameters    int64          `json:"parameters,omitempty"`
	ONNX          string         `json:"onnx"` // file name, beside the manifest
	ONNXSHA256    string         `json:"onnx_sha256"`
	ONNXBytes     int64          `json:"onnx_bytes,omitempty"`
	Opset         int            `json:"opset"`
	InputName     string         `json:"input_name"`
	OutputName    string         `json:"output_name"`
	FeatureName   string         `json:"feature_name,omitempty"`
	Labels        []string       `json:"labels"`
	PositiveLabel string         `json:"positive_label,omitempty"`
	Input         InputSpec      `json:"input"`
	SegmentationV string         `json:"segmentation_version"`
	Operating     OperatingPoint `json:"operating_point"`
	// Training, Metrics: how the model was made and measured; kept as
	// written for people and reports, not interpreted here.
	Training           json.RawMessage `json:"training,omitempty"`
	Metrics            json.RawMessage `json:"metrics,omitempty"`
	ValidationAccuracy *float64        `json:"validation_accuracy,omitempty"`
	Created            string          `json:"created"`
	CodeVersion        string          `json:"code_version"`
}

// OperatingPoint is how the appliance turns probabilities into calls. It is
// chosen on validation data when the model is trained, never on test data.
type OperatingPoint struct {
	// Detection: a cell counts as a blast when P(blast) >= BlastThreshold;
	// it is uncertain when UncertainLow <= P(blast) <= UncertainHigh.
	BlastThreshold *float64 `json:"blast_threshold,omitempty"`
	UncertainLow   *float64 `json:"uncertain_low,omitempty"`
	UncertainHigh  *float64 `json:"uncertain_high,omitempty"`
	// Subtype: a subtype whose probability is below MinConfidence is
	// reported as uncertain.
	MinConfidence *float64 `json:"min_confidence,omitempty"`
	ChosenOn      string   `json:"chosen_on,omitempty"`
	// OOD, when present, flags inputs unlike the training data.
	OOD *OODCheck `json:"ood,omitempty"`
	// CellFalsePositiveRate: the share of validation normal cells called
	// blast (confident calls only) at BlastThreshold; CellSensitivity the
	// share of validation blasts called blast. The verdict rule reads the
	// first to know how many blast calls a normal sample would produce.
	CellFalsePositiveRate *float64 `json:"cell_false_positive_rate,omitempty"`
	// CellFalsePositiveRateCI is its Wilson 95% interval over
	// ValidationNormalCells cells: with few cells a measured 0 is not 0,
	// so a cautious rule reads the upper end.
	CellFalsePositiveRateCI *[2]float64 `json:"cell_false_positive_rate_ci95,omitempty"`
	ValidationNormalCells   *int        `json:"validation_normal_cells,omitempty"`
	CellSensitivity         *float64    `json:"cell_sensitivity,omitempty"`
	// Notes the training code adds (validation shares and errors).
	UncertainTargetError     *float64 `json:"uncertain_target_error,omitempty"`
	ValidationUncertainShare *float64 `json:"validation_uncertain_share,omitempty"`
	ValidationErrorOutside   *float64 `json:"validation_error_outside_band,omitempty"`
}

// OODCheck is the feature-distance out-of-distribution check: the distance
// of an input's feature vector to the nearest centre of the training cells
// (one per class and site), each dimension scaled by the training spread
// (root mean square of the scaled differences). Above Threshold the input is
// unlike the training data.
type OODCheck struct {
	Kind   string `json:"kind"`   // "feature-distance"
	Output string `json:"output"` // the ONNX output holding the features
	// ClassMeans are the centres: one per class and training set (site).
	ClassMeans   [][]float64 `json:"class_means"`
	CentreLabels []int       `json:"centre_labels,omitempty"`
	Variance     []float64   `json:"variance"`
	Threshold    float64     `json:"threshold"`
	Quantile     float64     `json:"quantile,omitempty"`
	ChosenOn     string      `json:"chosen_on,omitempty"`
}

// Distance is the OOD distance of one feature vector.
func (o *OODCheck) Distance(f []float32) float64 {
	best := math.Inf(1)
	for _, m := range o.ClassMeans {
		s := 0.0
		for i, v := range f {
			d := float64(v) - m[i]
			s += d * d / o.Variance[i]
		}
		best = min(best, math.Sqrt(s/float64(len(f))))
	}
	return best
}

// ParseManifest decodes and checks a manifest. It never panics on any input.
func ParseManifest(data []byte) (*Manifest, error) {
	if len(data) > MaxManifestBytes {
		return nil, fmt.Errorf("manifest is %d bytes, more than %d", len(data), MaxManifestBytes)
	}
	dec := json.NewDecoder(bytes.NewReader(data))
	var m Manifest
	if err := dec.Decode(&m); err != nil {
		return nil, fmt.Errorf("manifest is not valid JSON: %w", err)
	}
	if dec.More() {
		return nil, errors.New("manifest has data after its JSON object")
	}
	if err := m.Check(); err != nil {
		return nil, err
	}
	return &m, nil
}

const (
	maxLabels     = 64
	maxLabelBytes = 64
	maxFeatureDim = 4096
	maxCentres    = 256
)

// Check reports the first thing wrong with a manifest, in words a person
// installing a model can act on.
func (m *Manifest) Check() error {
	bad := func(format string, a ...any) error {
		return fmt.Errorf("manifest: "+format, a...)
	}
	if m.Format != ManifestFormat {
		return bad("format %q, want %q (a model from another program or version)", m.Format, ManifestFormat)
	}
	if m.Task != TaskDetection && m.Task != TaskSubtype {
		return bad("task %q, want %q or %q", m.Task, TaskDetection, TaskSubtype)
	}
	if m.ONNX == "" || m.ONNX != filepath.Base(m.ONNX) || m.ONNX == "." || m.ONNX == ".." || strings.ContainsAny(m.ONNX, `/\`) {
		return bad("onnx %q must be a plain file name beside the manifest", m.ONNX)
	}
	if len(m.ONNXSHA256) != 64 {
		return bad("onnx_sha256 must be 64 hex digits, got %d characters", len(m.ONNXSHA256))
	}
	if _, err := hex.DecodeString(m.ONNXSHA256); err != nil {
		return bad("onnx_sha256 is not hexadecimal")
	}
	if m.Opset < 7 || m.Opset > 13 {
		return bad("opset %d; OpenCV 4.6 reads opsets 7 to 13", m.Opset)
	}
	if m.InputName == "" || m.OutputName == "" {
		return bad("input_name and output_name must be set")
	}
	if n := len(m.Labels); n < 2 || n > maxLabels {
		return bad("%d labels, want 2 to %d", n, maxLabels)
	}
	for i, l := range m.Labels {
		if l == "" || len(l) > maxLabelBytes || strings.TrimSpace(l) != l {
			return bad("label %d %q must be 1 to %d characters without surrounding spaces", i, l, maxLabelBytes)
		}
		if slices.Index(m.Labels, l) != i {
			return bad("label %q appears twice", l)
		}
	}
	if err := m.Input.Check(); err != nil {
		return bad("input: %v", err)
	}
	if m.SegmentationV == "" && m.Input.needsSegmentation() {
		return bad("segmentation_version is empty; the model cannot say which cell segmentation it was trained on")
	}
	op := m.Operating
	switch m.Task {
	case TaskDetection:
		if !slices.Contains(m.Labels, m.PositiveLabel) {
			return bad("positive_label %q is not one of the labels %q", m.PositiveLabel, m.Labels)
		}
		if op.BlastThreshold == nil || op.UncertainLow == nil || op.UncertainHigh == nil {
			return bad("operating_point needs blast_threshold, uncertain_low and uncertain_high")
		}
		t, lo, hi := *op.BlastThreshold, *op.UncertainLow, *op.UncertainHigh
		if !(t > 0 && t < 1) || !(lo >= 0 && lo <= t) || !(hi >= t && hi <= 1) {
			return bad("operating_point wants 0 <= uncertain_low <= blast_threshold <= uncertain_high <= 1 and 0 < blast_threshold < 1; got %v, %v, %v", lo, t, hi)
		}
	case TaskSubtype:
		if op.MinConfidence == nil || !(*op.MinConfidence >= 0 && *op.MinConfidence <= 1) {
			return bad("operating_point needs min_confidence between 0 and 1")
		}
	}
	if o := op.OOD; o != nil {
		if o.Kind != "feature-distance" {
			return bad("ood kind %q, want \"feature-distance\"", o.Kind)
		}
		if o.Output == "" {
			return bad("ood output is empty")
		}
		d := len(o.Variance)
		if d < 1 || d > maxFeatureDim {
			return bad("ood has %d feature dimensions, want 1 to %d", d, maxFeatureDim)
		}
		if len(o.ClassMeans) < 1 || len(o.ClassMeans) > maxCentres {
			return bad("ood has %d centres, want 1 to %d", len(o.ClassMeans), maxCentres)
		}
		for _, v := range o.Variance {
			if !(v > 0) || math.IsInf(v, 0) {
				return bad("ood variance must be positive and finite")
			}
		}
		for _, cm := range o.ClassMeans {
			if len(cm) != d {
				return bad("ood class mean of %d values for %d dimensions", len(cm), d)
			}
			for _, v := range cm {
				if math.IsNaN(v) || math.IsInf(v, 0) {
					return bad("ood class mean is not finite")
				}
			}
		}
		if !(o.Threshold > 0) || math.IsInf(o.Threshold, 0) {
			return bad("ood threshold must be positive and finite")
		}
	}
	return nil
}

// PositiveIndex is the index of the positive (blast) label, or -1.
func (m *Manifest) PositiveIndex() int { return slices.Index(m.Labels, m.PositiveLabel) }
