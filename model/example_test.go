package model_test

import (
	"fmt"
	"image"
	"image/color"

	"allscreen/model"

	"gocv.io/x/gocv"
)

// Load a model by its manifest (verified before OpenCV sees it) and
// classify a field's crops in one call.
func Example() {
	net, err := model.Load("testdata/tiny.json")
	if err != nil {
		fmt.Println("refuse to screen:", err)
		return
	}
	defer net.Close()
	crop := gocv.NewMatWithSizeFromScalar(gocv.NewScalar(225, 215, 235, 0), 48, 48, gocv.MatTypeCV8UC3)
	defer crop.Close()
	gocv.Circle(&crop, image.Pt(24, 24), 12, color.RGBA{R: 95, G: 40, B: 140}, -1)
	preds, err := net.Classify([]gocv.Mat{crop})
	if err != nil {
		fmt.Println(err)
		return
	}
	m := net.Manifest()
	fmt.Println(m.Labels, len(preds[0].Probs), preds[0].Blast == preds[0].Probs[m.PositiveIndex()])
	// Output: [normal blast] 2 true
}

// A damaged model is refused with a reason a person can act on.
func ExampleLoad_missing() {
	_, err := model.Load("testdata/no-such-model.json")
	fmt.Println(err)
	// Output: model testdata/no-such-model.json: cannot read the manifest (stat testdata/no-such-model.json: no such file or directory); reinstall the model: model unusable
}
