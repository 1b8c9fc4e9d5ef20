package model

import (
	"image"
	"image/color"
	"image/png"
	"os"
	"path/filepath"
	"testing"
)

// TestCellAndRimMean: a prepared input whose cell is white with a black
// outer ring (a background the masking kept): rim-rgb sees the ring,
// cell-rgb the whole cell, and the background outside the mask neither.
func TestCellAndRimMean(t *testing.T) {
	const size, radius = 32, 10
	im := image.NewNRGBA(image.Rect(0, 0, size, size))
	inCell := func(x, y int) bool { return (x-16)*(x-16)+(y-16)*(y-16) <= radius*radius }
	for y := 0; y < size; y++ {
		for x := 0; x < size; x++ {
			switch {
			case !inCell(x, y):
				im.Set(x, y, color.NRGBA{0, 255, 0, 0}) // outside the mask: green, must not count
			case !inCell(x-3, y) || !inCell(x+3, y) || !inCell(x, y-3) || !inCell(x, y+3):
				im.Set(x, y, color.NRGBA{0, 0, 0, 255}) // within 3 pixels of the edge: black
			default:
				im.Set(x, y, color.NRGBA{255, 255, 255, 255})
			}
		}
	}
	path := filepath.Join(t.TempDir(), "in.png")
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	if err := png.Encode(f, im); err != nil {
		t.Fatal(err)
	}
	f.Close()
	rim, err := measureShortcut(Labelled{Path: path}, FeatureRimMean)
	if err != nil {
		t.Fatal(err)
	}
	cell, err := measureShortcut(Labelled{Path: path}, FeatureCellMean)
	if err != nil {
		t.Fatal(err)
	}
	if rim.vec[0] > 1 || rim.vec[1] > 1 || rim.vec[2] > 1 {
		t.Errorf("rim-rgb %v, want black (the outer 2 pixels lie in the black ring)", rim.vec)
	}
	if cell.vec[0] < 100 || cell.vec[0] > 200 || cell.vec[1] != cell.vec[0] {
		t.Errorf("cell-rgb %v, want grey between white interior and black ring, no green", cell.vec)
	}
}
