package vision

import (
	"encoding/hex"
	"encoding/json"
	"image"
	"math"
	"math/rand/v2"
	"os"
	"testing"
)

func rectMask(w, h int, r image.Rectangle) *Mask {
	m := NewMask(w, h)
	for y := r.Min.Y; y < r.Max.Y; y++ {
		for x := r.Min.X; x < r.Max.X; x++ {
			m.Pix[y*w+x] = 255
		}
	}
	return m
}

func grey(w, h int, pix []uint8) *image.Gray {
	return &image.Gray{Pix: pix, Stride: w, Rect: image.Rect(0, 0, w, h)}
}

func near(a, b, tol float64) bool { return math.Abs(a-b) <= tol }

// Cases whose values follow from the definitions by hand.
func TestScoresHandComputed(t *testing.T) {
	c1 := math.Pow(0.01*255, 2)
	tests := []struct {
		name            string
		pred, truth     *Mask
		ssim, dice, iou float64
	}{
		{"identical", rectMask(20, 16, image.Rect(3, 4, 12, 10)), rectMask(20, 16, image.Rect(3, 4, 12, 10)), 1, 1, 1},
		// Every window is constant: means 255 and 0, no variance, so SSIM
		// is C1/(255²+C1) at every pixel.
		{"full vs empty", rectMask(12, 12, image.Rect(0, 0, 12, 12)), NewMask(12, 12), c1 / (255*255 + c1), 0, 0},
		{"both empty", NewMask(11, 11), NewMask(11, 11), 1, 1, 1},
		// 4x4 squares overlapping in 2x4: Dice 2*8/32, IoU 8/24.
		{"half overlap", rectMask(20, 20, image.Rect(2, 2, 6, 6)), rectMask(20, 20, image.Rect(4, 2, 8, 6)), math.NaN(), 0.5, 1.0 / 3},
		// A 3x3 square inside a 6x6: Dice 2*9/45, IoU 9/36.
		{"nested", rectMask(16, 16, image.Rect(5, 5, 8, 8)), rectMask(16, 16, image.Rect(4, 4, 10, 10)), math.NaN(), 0.4, 0.25},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			s, err := Score(tc.pred, tc.truth)
			if err != nil {
				t.Fatal(err)
			}
			if !math.IsNaN(tc.ssim) && !near(s.SSIM, tc.ssim, 1e-12) {
				t.Errorf("SSIM = %.15g, want %.15g", s.SSIM, tc.ssim)
			}
			if !near(s.Dice, tc.dice, 1e-12) || !near(s.IoU, tc.iou, 1e-12) {
				t.Errorf("Dice, IoU = %g, %g; want %g, %g", s.Dice, s.IoU, tc.dice, tc.iou)
			}
			d, _ := Dice(tc.pred, tc.truth)
			j, _ := IoU(tc.pred, tc.truth)
			if d != s.Dice || j != s.IoU {
				t.Errorf("Dice/IoU functions give %g, %g; Score gave %g, %g", d, j, s.Dice, s.IoU)
			}
			if s.SSIM > 1+1e-12 || s.SSIM < -1 {
				t.Errorf("SSIM %g outside [-1, 1]", s.SSIM)
			}
		})
	}
}

func TestSSIMConstantImages(t *testing.T) {
	// Constant images c and d: SSIM = (2cd+C1)/(c²+d²+C1) everywhere.
	c1 := math.Pow(0.01*255, 2)
	for _, cd := range [][2]uint8{{100, 100}, {100, 140}, {0, 255}, {30, 200}} {
		a, b := make([]uint8, 13*14), make([]uint8, 13*14)
		for i := range a {
			a[i], b[i] = cd[0], cd[1]
		}
		got, err := SSIM(grey(13, 14, a), grey(13, 14, b))
		if err != nil {
			t.Fatal(err)
		}
		c, d := float64(cd[0]), float64(cd[1])
		if want := (2*c*d + c1) / (c*c + d*d + c1); !near(got, want, 1e-12) {
			t.Errorf("SSIM(%v) = %.15g, want %.15g", cd, got, want)
		}
	}
}

func TestScoresMean(t *testing.T) {
	if got := (Scores{SSIM: 0.3, Dice: 0.6, IoU: 0.9}).Mean(); !near(got, 0.6, 1e-15) {
		t.Errorf("Mean = %g, want 0.6", got)
	}
}

func TestScoreErrors(t *testing.T) {
	for name, pair := range map[string][2]*Mask{
		"size mismatch":      {NewMask(20, 20), NewMask(20, 21)},
		"smaller than 11":    {NewMask(10, 30), NewMask(10, 30)},
		"pixels do not fit":  {{W: 20, H: 20, Pix: make([]uint8, 10)}, NewMask(20, 20)},
		"nil mask":           {nil, NewMask(20, 20)},
		"truth missing size": {NewMask(20, 20), {W: 0, H: 0}},
	} {
		if _, err := Score(pair[0], pair[1]); err == nil {
			t.Errorf("%s: no error", name)
		}
	}
	if _, err := SSIM(grey(11, 11, make([]uint8, 121)), grey(12, 11, make([]uint8, 132))); err == nil {
		t.Error("SSIM of different sizes: no error")
	}
}

type ssimVector struct {
	Name      string   `json:"name"`
	W         int      `json:"w"`
	H         int      `json:"h"`
	A         string   `json:"a"`
	B         string   `json:"b"`
	SSIM      float64  `json:"ssim"`
	Dice, IoU *float64 // set for binary pairs only
}

// TestScoresAgainstSkimage checks SSIM against scikit-image's
// structural_similarity and Dice/IoU against numpy, on the synthetic pairs
// written once by testdata/ssim_vectors.py.
func TestScoresAgainstSkimage(t *testing.T) {
	raw, err := os.ReadFile("testdata/ssim_vectors.json")
	if err != nil {
		t.Fatal(err)
	}
	var doc struct{ Cases []ssimVector }
	if err := json.Unmarshal(raw, &doc); err != nil {
		t.Fatal(err)
	}
	if len(doc.Cases) < 10 {
		t.Fatalf("only %d vectors", len(doc.Cases))
	}
	for _, c := range doc.Cases {
		a, errA := hex.DecodeString(c.A)
		b, errB := hex.DecodeString(c.B)
		if errA != nil || errB != nil || len(a) != c.W*c.H || len(b) != c.W*c.H {
			t.Fatalf("%s: bad vector", c.Name)
		}
		got, err := SSIM(grey(c.W, c.H, a), grey(c.W, c.H, b))
		if err != nil {
			t.Fatalf("%s: %v", c.Name, err)
		}
		if !near(got, c.SSIM, 1e-9) {
			t.Errorf("%s: SSIM = %.12g, skimage %.12g", c.Name, got, c.SSIM)
		}
		if c.Dice == nil {
			continue
		}
		// The binary fast path must agree with the general one and skimage.
		s, err := Score(&Mask{W: c.W, H: c.H, Pix: a}, &Mask{W: c.W, H: c.H, Pix: b})
		if err != nil {
			t.Fatalf("%s: %v", c.Name, err)
		}
		if !near(s.SSIM, c.SSIM, 1e-9) || !near(s.Dice, *c.Dice, 1e-12) || !near(s.IoU, *c.IoU, 1e-12) {
			t.Errorf("%s: Score = %+v, want SSIM %.12g Dice %g IoU %g", c.Name, s, c.SSIM, *c.Dice, *c.IoU)
		}
	}
}

// The binary fast path skips the windows whose variances vanish; it must
// give the general formula's value on masks with blobs, edges at the
// border, thin lines and noise.
func TestScoreFastPathMatchesGeneral(t *testing.T) {
	rng := rand.New(rand.NewPCG(7, 7))
	for trial := range 40 {
		w, h := 11+rng.IntN(60), 11+rng.IntN(60)
		gen := func() *Mask {
			m := NewMask(w, h)
			for range 1 + rng.IntN(4) {
				cx, cy, r := rng.IntN(w), rng.IntN(h), 1+rng.IntN(w)
				for y := range h {
					for x := range w {
						if (x-cx)*(x-cx)+(y-cy)*(y-cy) <= r*r {
							m.Pix[y*w+x] = 255
						}
					}
				}
			}
			if trial%3 == 0 {
				for i := range m.Pix {
					if rng.IntN(20) == 0 {
						m.Pix[i] ^= 255
					}
				}
			}
			if trial%5 == 0 {
				y := rng.IntN(h)
				for x := range w {
					m.Pix[y*w+x] = 255
				}
			}
			return m
		}
		a, b := gen(), gen()
		s, err := Score(a, b)
		if err != nil {
			t.Fatal(err)
		}
		want, err := SSIM(grey(w, h, a.Pix), grey(w, h, b.Pix))
		if err != nil {
			t.Fatal(err)
		}
		if !near(s.SSIM, want, 1e-10) {
			t.Errorf("trial %d (%dx%d): fast SSIM %.15g, general %.15g", trial, w, h, s.SSIM, want)
		}
	}
}
