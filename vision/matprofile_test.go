//go:build matprofile

package vision

import (
	"image"
	"testing"

	"gocv.io/x/gocv"
)

// TestFieldPathLeaksNoMats counts live gocv Mats (gocv's matprofile build
// tag: `go test -tags matprofile`) around every way through the field path:
// loading, the quality gate, FindCells and CropCell on a field with cells,
// on one without, on a cut-out cell on black, on a tiny and on a bad frame.
func TestFieldPathLeaksNoMats(t *testing.T) {
	smear := syntheticSmear(t, smearSpec{W: 1296, H: 972, RBCRadius: 20, Seed: 2,
		WBCs: []image.Point{{300, 300}, {900, 600}}, Lobed: []image.Point{{600, 200}},
		Platelets: []image.Point{{100, 800}}})
	defer smear.Close()
	blank := uniformField(t, 640, 480, smearBackground, 3)
	defer blank.Close()
	black := uniformField(t, 300, 300, [3]float64{0, 0, 0}, 4)
	defer black.Close()
	tiny := uniformField(t, 3, 2, smearNucleus, 5)
	defer tiny.Close()
	empty := gocv.NewMat()
	defer empty.Close()
	grey := gocv.NewMatWithSize(40, 40, gocv.MatTypeCV8U)
	defer grey.Close()
	png := encodePNG(t, testPattern(64, 48))

	before := gocv.MatProfile.Count()
	if n := fieldPath(t, smear); n != 3 {
		t.Errorf("%d cells in the smear, want 3", n)
	}
	for _, m := range []gocv.Mat{blank, black, tiny} {
		fieldPath(t, m)
	}
	for _, m := range []gocv.Mat{empty, grey} {
		CheckQuality(m)
		if _, err := FindCells(m, DefaultFindOptions); err == nil {
			t.Error("bad frame accepted")
		}
		if _, err := CropCell(m, image.Rect(0, 0, 10, 10)); err == nil {
			t.Error("crop of a bad frame accepted")
		}
	}
	if m, err := DecodeImage(png); err != nil {
		t.Fatal(err)
	} else {
		fieldPath(t, m)
		m.Close()
	}
	for _, bad := range [][]byte{png[:len(png)/2], []byte("not an image at all, no")} {
		if _, err := DecodeImage(bad); err == nil {
			t.Error("bad file accepted")
		}
	}
	if after := gocv.MatProfile.Count(); after != before {
		t.Errorf("%d gocv Mats leaked", after-before)
	}
}
