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
	// SubtypeUncertain is set when the subtype's probability is below the
	// subtype model's min_confidence: show it as a guess, or not at all.
	SubtypeUncertain bool
	// Uncertain marks an answer the model should not be trusted on (low
	// confidence, or an input unlike its training data); Reason says which,
	// in words for a person.
	Uncertain bool
	Reason    string
	// OODDistance is the cell's feature distance to the training data (see
	// OODCheck); 0 when the model has no such check.
	OODDistance float32
	// OutOfDistribution marks an input unlike the model's training data
	// (implies Uncertain). The verdict rule gives only "review" when too
	// many cells of a sample are out of distribution.
	OutOfDistribution bool
	// NoOutline: the cell's outline was not found, so the whole crop was
	// classified (implies Uncertain).
	NoOutline bool
}

// Classifier classifies white-cell crops (8-bit BGR, any size: the
// classifier prepares them as its manifest says).
type Classifier interface {
	Classify(crops []gocv.Mat) ([]Prediction, error)
}
