package screening

import (
	"image"
	"image/color"
	"math/rand/v2"

	"gocv.io/x/gocv"
)

// synthField draws a stained smear field: a pale background, red cells as
// pink discs, and n white cells, each a dark violet nucleus in a pale blue
// cytoplasm, spaced so none touch. The caller closes it.
func synthField(w, h, n int, seed uint64) gocv.Mat {
	rng := rand.New(rand.NewPCG(seed, 7))
	m := gocv.NewMatWithSizeFromScalar(gocv.NewScalar(225, 220, 235, 0), h, w, gocv.MatTypeCV8UC3)
	side := min(w, h)
	rbc := max(3, side/40)
	for range w * h / (rbc * rbc * 6) {
		c := image.Pt(rng.IntN(w), rng.IntN(h))
		gocv.Circle(&m, c, rbc, color.RGBA{R: 220, G: 160, B: 175, A: 255}, -1)
	}
	wbc := max(4, side/30)
	// A grid of slots keeps the white cells apart.
	cols := 5
	rows := (n + cols - 1) / cols
	for i := range n {
		cx := (i%cols)*w/cols + w/(2*cols) + rng.IntN(max(1, w/(4*cols))) - w/(8*cols)
		cy := (i/cols)*h/max(1, rows) + h/(2*max(1, rows)) + rng.IntN(max(1, h/(4*max(1, rows)))) - h/(8*max(1, rows))
		gocv.Circle(&m, image.Pt(cx, cy), wbc*3/2, color.RGBA{R: 190, G: 190, B: 225, A: 255}, -1)
		gocv.Circle(&m, image.Pt(cx, cy), wbc, color.RGBA{R: 90, G: 40, B: 130, A: 255}, -1)
	}
	blurred := gocv.NewMat()
	gocv.GaussianBlur(m, &blurred, image.Pt(5, 5), 0, 0, gocv.BorderDefault)
	m.Close()
	return blurred
}
