//go:build matprofile

package vision

import (
	"testing"

	"gocv.io/x/gocv"
)

// TestSegmentLeaksNoMats counts live gocv Mats (gocv's matprofile build
// tag) around SegmentCell on every kind of crop, k-means, tune-k scoring and
// the refusals.
func TestSegmentLeaksNoMats(t *testing.T) {
	crops := []gocv.Mat{}
	for _, s := range [][4]float64{{257, 257, 128, 128}, {40, 40, 20, 20}, {400, 300, 60, 150}} {
		img, _ := synthCell(t, int(s[0]), int(s[1]), s[2], s[3], 1)
		crops = append(crops, img)
	}
	black, _ := NewMatCopy(50, 50, gocv.MatTypeCV8UC3, make([]byte, 3*50*50))
	grey := gocv.NewMatWithSize(40, 40, gocv.MatTypeCV8U)
	crops = append(crops, black, grey)
	defer func() {
		for _, m := range crops {
			m.Close()
		}
	}()
	img, g := synthCell(t, 90, 90, 45, 45, 2)
	defer img.Close()
	truth, err := NewTruth(TruthMask(g, TargetNucleus))
	if err != nil {
		t.Fatal(err)
	}

	before := gocv.MatProfile.Count()
	for _, c := range crops {
		for _, s := range SegmentAblation() {
			SegmentCellWith(c, s.Opt) // errors expected for the last two
		}
	}
	if _, _, err := TuneImage(img, truth, TuneOptions{Ks: DefaultKs, Seed: 1, Attempts: 2}); err != nil {
		t.Fatal(err)
	}
	for _, sp := range Spaces {
		if _, err := Cluster(img, KMeansOptions{K: 3, Space: sp, Seed: 1, SamplePixels: 1000, Converge: true}); err != nil {
			t.Fatal(err)
		}
	}
	if after := gocv.MatProfile.Count(); after != before {
		t.Errorf("%d Mats leaked", after-before)
	}
}
