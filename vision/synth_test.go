package vision

import (
	"image"
	"math"
	"math/rand/v2"
	"os"
	"path/filepath"
	"testing"

	"gocv.io/x/gocv"
)

// synthCell draws a stained-smear-like crop: a pale background, a few red
// cells, and one white cell (light blue cytoplasm around a purple nucleus)
// centred at (cx, cy), with a little noise. It returns the BGR image and its
// ground truth (0 background, 128 cytoplasm, 255 nucleus). Sizes are
// relative to the crop so any size works.
func synthCell(tb testing.TB, w, h int, cx, cy float64, seed uint64) (gocv.Mat, *image.Gray) {
	tb.Helper()
	rng := rand.New(rand.NewPCG(seed, 1))
	side := float64(min(w, h))
	cellR, nucR := 0.30*side, 0.21*side
	nx, ny := cx+0.04*side, cy-0.03*side
	type disk struct{ x, y, r float64 }
	var rbcs []disk
	for range 5 {
		rbcs = append(rbcs, disk{rng.Float64() * float64(w), rng.Float64() * float64(h), 0.18 * side})
	}
	pix := make([]byte, 3*w*h)
	truth := image.NewGray(image.Rect(0, 0, w, h))
	in := func(x, y float64, d disk) bool { return (x-d.x)*(x-d.x)+(y-d.y)*(y-d.y) <= d.r*d.r }
	for y := range h {
		for x := range w {
			fx, fy := float64(x)+0.5, float64(y)+0.5
			bgr := [3]float64{205, 200, 215} // background
			for _, d := range rbcs {
				if in(fx, fy, d) {
					bgr = [3]float64{165, 150, 210}
				}
			}
			switch {
			case in(fx, fy, disk{nx, ny, nucR}):
				bgr = [3]float64{150, 60, 115}
				truth.Pix[y*w+x] = 255
			case in(fx, fy, disk{cx, cy, cellR}):
				bgr = [3]float64{210, 165, 165}
				truth.Pix[y*w+x] = 128
			}
			for c := range 3 {
				pix[3*(y*w+x)+c] = uint8(math.Max(0, math.Min(255, bgr[c]+rng.NormFloat64()*4)))
			}
		}
	}
	m, err := NewMatCopy(h, w, gocv.MatTypeCV8UC3, pix)
	if err != nil {
		tb.Fatal(err)
	}
	return m, truth
}

// writeSynthSet writes n synthetic crops, their masks and a labels CSV with
// the given label column into a temporary folder.
func writeSynthSet(tb testing.TB, n int, labelColumn string) (dir string) {
	tb.Helper()
	dir = tb.TempDir()
	for _, sub := range []string{"images", "masks"} {
		if err := os.Mkdir(filepath.Join(dir, sub), 0o755); err != nil {
			tb.Fatal(err)
		}
	}
	csv := "file," + labelColumn + "\n"
	for i := range n {
		name := []string{"a", "b", "c", "d", "e", "f", "g", "h"}[i%8] + string(rune('0'+i/8)) + ".png"
		size := 48 + 16*(i%3)
		img, truth := synthCell(tb, size, size+8*(i%2), float64(size)/2, float64(size+8*(i%2))/2, uint64(i))
		gocv.IMWrite(filepath.Join(dir, "images", name), img)
		img.Close()
		tm, err := NewMatCopy(truth.Rect.Dy(), truth.Rect.Dx(), gocv.MatTypeCV8U, truth.Pix)
		if err != nil {
			tb.Fatal(err)
		}
		gocv.IMWrite(filepath.Join(dir, "masks", name), tm)
		tm.Close()
		label := "blast"
		if i%2 == 1 {
			label = "normal"
		}
		csv += name + "," + label + "\n"
	}
	if err := os.WriteFile(filepath.Join(dir, "labels.csv"), []byte(csv), 0o644); err != nil {
		tb.Fatal(err)
	}
	return dir
}
