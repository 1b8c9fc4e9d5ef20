package vision

import (
	"image"
	"math"
	"math/rand/v2"
	"testing"

	"gocv.io/x/gocv"
)

// Colours (BGR) measured on ALL-IDB1 fields: plasma background, red cell,
// its paler centre, white-cell cytoplasm and nucleus, platelet.
var (
	smearBackground = [3]float64{158, 154, 157}
	smearRBC        = [3]float64{130, 124, 144}
	smearPallor     = [3]float64{144, 139, 152}
	smearCytoplasm  = [3]float64{150, 116, 126}
	smearNucleus    = [3]float64{120, 36, 84}
	smearPlatelet   = [3]float64{135, 70, 112}
)

// smearSpec describes a synthetic blood smear field.
type smearSpec struct {
	W, H      int
	RBCRadius float64       // red cell radius in pixels
	WBCs      []image.Point // round white cells (nucleus 0.95 R, cytoplasm 1.25 R)
	Lobed     []image.Point // neutrophil-like cells: four separate nucleus lobes in one cytoplasm
	Platelets []image.Point
	Seed      uint64
	Nucleus   [3]float64 // the nuclei's colour (BGR); zero: smearNucleus
}

// syntheticSmear draws a field like a stained smear: red cells covering
// about a third of it, the white cells and platelets asked for, sensor
// noise and the slight blur of optics. No real image is needed, so unit
// tests run anywhere.
func syntheticSmear(t testing.TB, s smearSpec) gocv.Mat {
	t.Helper()
	rng := rand.New(rand.NewPCG(s.Seed, 7))
	pix := make([]float64, 3*s.W*s.H)
	for p := 0; p < s.W*s.H; p++ {
		copy(pix[3*p:], smearBackground[:])
	}
	disc := func(cx, cy, r float64, col [3]float64) {
		for y := max(0, int(cy-r-1)); y <= min(s.H-1, int(cy+r+1)); y++ {
			for x := max(0, int(cx-r-1)); x <= min(s.W-1, int(cx+r+1)); x++ {
				if (float64(x)-cx)*(float64(x)-cx)+(float64(y)-cy)*(float64(y)-cy) <= r*r {
					copy(pix[3*(y*s.W+x):], col[:])
				}
			}
		}
	}
	r := s.RBCRadius
	keepOut := func(x, y float64) bool {
		for _, c := range append(append(append([]image.Point{}, s.WBCs...), s.Lobed...), s.Platelets...) {
			if math.Hypot(x-float64(c.X), y-float64(c.Y)) < 2.6*r {
				return true
			}
		}
		return false
	}
	n := int(0.33 * float64(s.W*s.H) / (math.Pi * r * r))
	for range n {
		x, y := rng.Float64()*float64(s.W), rng.Float64()*float64(s.H)
		if keepOut(x, y) {
			continue
		}
		rr := r * (0.9 + 0.2*rng.Float64())
		disc(x, y, rr, smearRBC)
		disc(x, y, 0.4*rr, smearPallor)
	}
	nucleus := s.Nucleus
	if nucleus == [3]float64{} {
		nucleus = smearNucleus
	}
	for _, c := range s.WBCs {
		disc(float64(c.X), float64(c.Y), 1.25*r, smearCytoplasm)
		disc(float64(c.X), float64(c.Y), 0.95*r, nucleus)
	}
	for _, c := range s.Lobed {
		x, y := float64(c.X), float64(c.Y)
		disc(x, y, 1.55*r, smearCytoplasm)
		for k := range 4 { // four lobes 0.2 R apart, together a red cell's area
			a := 2 * math.Pi * float64(k) / 4
			disc(x+0.85*r*math.Cos(a), y+0.85*r*math.Sin(a), 0.5*r, nucleus)
		}
	}
	for _, c := range s.Platelets {
		disc(float64(c.X), float64(c.Y), 0.22*r, smearPlatelet)
	}
	buf := make([]byte, len(pix))
	for i, v := range pix {
		buf[i] = uint8(max(0, min(255, math.Round(v+rng.NormFloat64()*2.5))))
	}
	m, err := NewMatCopy(s.H, s.W, gocv.MatTypeCV8UC3, buf)
	if err != nil {
		t.Fatal(err)
	}
	out := gocv.NewMat()
	gocv.GaussianBlur(m, &out, image.Pt(0, 0), 0.8, 0.8, gocv.BorderReflect101)
	m.Close()
	return out
}

// degrade returns a copy of m transformed: each channel scaled by gain,
// then blurred with a Gaussian of sigma pixels (0: none).
func degrade(m gocv.Mat, gain, sigma float64) gocv.Mat {
	out := gocv.NewMat()
	m.ConvertToWithParams(&out, gocv.MatTypeCV8UC3, float32(gain), 0)
	if sigma > 0 {
		b := gocv.NewMat()
		gocv.GaussianBlur(out, &b, image.Pt(0, 0), sigma, sigma, gocv.BorderReflect101)
		out.Close()
		return b
	}
	return out
}

// uniformField is a blank frame: one colour plus sensor noise.
func uniformField(t testing.TB, w, h int, col [3]float64, seed uint64) gocv.Mat {
	t.Helper()
	rng := rand.New(rand.NewPCG(seed, 9))
	buf := make([]byte, 3*w*h)
	for p := range w * h {
		for c := range 3 {
			buf[3*p+c] = uint8(max(0, min(255, math.Round(col[c]+rng.NormFloat64()*2.5))))
		}
	}
	m, err := NewMatCopy(h, w, gocv.MatTypeCV8UC3, buf)
	if err != nil {
		t.Fatal(err)
	}
	return m
}
