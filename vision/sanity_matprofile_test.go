//go:build matprofile

package vision

import (
	"image"
	"image/color"
	"testing"

	"gocv.io/x/gocv"
)

// TestSanityLeaksNoMats counts live gocv Mats (gocv's matprofile build tag;
// `make fields-leaks` runs it) around FrameOf and SegmentAndCheck on a
// smear crop, a cell cut out onto black, a black crop and a grey Mat.
func TestSanityLeaksNoMats(t *testing.T) {
	smear, _ := synthCell(t, 120, 120, 60, 60, 3)
	defer smear.Close()
	cut := gocv.NewMatWithSize(100, 100, gocv.MatTypeCV8UC3)
	defer cut.Close()
	gocv.Circle(&cut, image.Pt(50, 50), 40, color.RGBA{R: 190, G: 150, B: 200, A: 255}, -1)
	gocv.Circle(&cut, image.Pt(50, 50), 25, color.RGBA{R: 90, G: 40, B: 120, A: 255}, -1)
	black, _ := NewMatCopy(50, 50, gocv.MatTypeCV8UC3, make([]byte, 3*50*50))
	defer black.Close()
	grey := gocv.NewMatWithSize(40, 40, gocv.MatTypeCV8U)
	defer grey.Close()

	before := gocv.MatProfile.Count()
	for _, m := range []gocv.Mat{smear, cut, black, grey} {
		FrameOf(m)
		SegmentAndCheck(m) // errors expected for the last two
	}
	if after := gocv.MatProfile.Count(); after != before {
		t.Errorf("%d Mats leaked", after-before)
	}
}
