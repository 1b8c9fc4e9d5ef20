package model

import "gocv.io/x/gocv"

// Prediction is the classifier's answer for one white-cell crop.
type Prediction struct {
	// Probs holds one probability per label of the detection model's
	// manifest, in its order.
	Probs []float32
	// Blast is the probability that the cell is a blast.
	Blast float32
	// Subtype is set only for a cell called a blast, when a subtype model
	// is loaded: its most probable label and that label's probability.
	Subtype     string
	SubtypeProb float32
	// Uncertain marks an answer the model should not be trusted on (low
	// confidence, or an input unlike its training data).
	Uncertain bool
}

// Classifier classifies white-cell crops (8-bit BGR, any size: the
// classifier prepares them as its manifest says).
type Classifier interface {
	Classify(crops []gocv.Mat) ([]Prediction, error)
}
