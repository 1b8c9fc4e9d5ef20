package model

import (
	"encoding/json"
	"fmt"
	"math"
	"path/filepath"

	"gocv.io/x/gocv"
)

// KnownAnswers is a model's known-answer test: prepared inputs (PNG, as the
// device would feed the network) and the probabilities PyTorch gave for
// them when the model was trained (the parity fixture). Run through the
// device's real inference path, a working model reproduces them; a model
// file altered, truncated or run by a broken OpenCV does not.
type KnownAnswers struct {
	Manifest    string      `json:"manifest"`
	Inputs      []string    `json:"inputs"`
	Probs       [][]float64 `json:"probs"`
	Features    [][]float64 `json:"features,omitempty"`
	OODDistance []float64   `json:"ood_distance,omitempty"`
}

// KnownAnswerTolerance is the largest difference in any probability
// between the device and PyTorch that passes.
const KnownAnswerTolerance = 1e-4

// ReadKnownAnswers reads a fixture (MODELDIR/parity/NAME.json; its paths
// are relative to MODELDIR).
func ReadKnownAnswers(path string) (*KnownAnswers, error) {
	raw, err := readLimited(path, MaxManifestBytes)
	if err != nil {
		return nil, err
	}
	var k KnownAnswers
	if err := json.Unmarshal(raw, &k); err != nil {
		return nil, fmt.Errorf("known answers %s: %w", path, err)
	}
	if len(k.Inputs) == 0 || len(k.Inputs) != len(k.Probs) {
		return nil, fmt.Errorf("known answers %s: %d inputs and %d answers", path, len(k.Inputs), len(k.Probs))
	}
	return &k, nil
}

// CheckKnownAnswers loads the fixture's model from the fixture's model
// folder and runs every input through it. It returns the largest
// probability difference, and an error when it exceeds
// KnownAnswerTolerance or an OOD distance differs.
func CheckKnownAnswers(fixturePath string) (worst float64, err error) {
	k, err := ReadKnownAnswers(fixturePath)
	if err != nil {
		return 0, err
	}
	dir := filepath.Dir(filepath.Dir(fixturePath))
	n, err := Load(filepath.Join(dir, filepath.Clean(k.Manifest)))
	if err != nil {
		return 0, err
	}
	defer n.Close()
	imgs := make([]gocv.Mat, 0, len(k.Inputs))
	defer func() {
		for _, m := range imgs {
			m.Close()
		}
	}()
	for _, in := range k.Inputs {
		m := gocv.IMRead(filepath.Join(dir, filepath.Clean(in)), gocv.IMReadColor)
		if m.Empty() {
			m.Close()
			return 0, fmt.Errorf("known answers: cannot read %s", in)
		}
		imgs = append(imgs, m)
	}
	probs, feats, err := n.RunPrepared(imgs)
	if err != nil {
		return 0, err
	}
	for i := range probs {
		if len(probs[i]) != len(k.Probs[i]) {
			return 0, fmt.Errorf("known answers: input %d: %d outputs, want %d", i, len(probs[i]), len(k.Probs[i]))
		}
		for j, p := range probs[i] {
			worst = math.Max(worst, math.Abs(float64(p)-k.Probs[i][j]))
		}
		if o := n.m.Operating.OOD; o != nil && i < len(k.OODDistance) {
			if d := o.Distance(feats[i]); math.Abs(d-k.OODDistance[i]) > 1e-3*math.Max(1, d) {
				return worst, fmt.Errorf("known answers: input %d: OOD distance %v, want %v", i, d, k.OODDistance[i])
			}
		}
	}
	if worst > KnownAnswerTolerance {
		return worst, fmt.Errorf("known answers: the model's outputs differ from its recorded ones by %.3g (> %g): %w",
			worst, KnownAnswerTolerance, ErrBadModel)
	}
	return worst, nil
}
