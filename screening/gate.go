package screening

import (
	"allscreen/vision"

	"gocv.io/x/gocv"
)

// VisionGate is the appliance's quality gate: vision's exposure, stain and
// focus checks with the given thresholds, rejecting a field with vision's
// advice to the technician ("Refocus: the image is blurred", ...).
func VisionGate(th vision.QualityThresholds) QualityGate {
	return func(field gocv.Mat) (string, error) {
		q := vision.CheckQualityWith(field, th)
		if q.OK() {
			return "", nil
		}
		return q.Advice(), nil
	}
}
