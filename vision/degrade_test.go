package vision

import (
	"image"
	"math"
	"testing"

	"gocv.io/x/gocv"
)

// TestDegradations checks each degraded copy does what its name says on a
// synthetic field, and that the coordinate map sends a white cell of the
// original onto the same cell in the copy.
func TestDegradations(t *testing.T) {
	field := syntheticSmear(t, smearSpec{W: 800, H: 600, RBCRadius: 16,
		WBCs: []image.Point{{200, 200}, {600, 400}}, Seed: 5})
	defer field.Close()
	orig := meanBGR(field, image.Rect(0, 0, 800, 600))
	corner := meanBGR(field, image.Rect(0, 0, 40, 40))
	seen := map[string]bool{}
	for _, d := range Degradations() {
		if seen[d.Name] || d.Name == "" || d.What == "" {
			t.Errorf("degradation %q: duplicate or unnamed", d.Name)
		}
		seen[d.Name] = true
		m, sx, sy, err := d.Apply(field, 16)
		if err != nil {
			t.Fatalf("%s: %v", d.Name, err)
		}
		mean := meanBGR(m, image.Rect(0, 0, m.Cols(), m.Rows()))
		switch d.Name {
		case "vignetting":
			if c := meanBGR(m, image.Rect(0, 0, 40, 40)); c[1] > 0.5*corner[1] {
				t.Errorf("vignetting: corner green %.0f of %.0f, want under half", c[1], corner[1])
			}
		case "dark-15":
			if math.Abs(mean[1]-0.15*orig[1]) > 2 {
				t.Errorf("dark-15: mean green %.1f, want %.1f", mean[1], 0.15*orig[1])
			}
		case "gamma-0.6":
			if mean[1] <= orig[1] {
				t.Errorf("gamma 0.6 should lighten: %.1f <= %.1f", mean[1], orig[1])
			}
		case "gamma-1.6":
			if mean[1] >= orig[1] {
				t.Errorf("gamma 1.6 should darken: %.1f >= %.1f", mean[1], orig[1])
			}
		case "wb-warm":
			if mean[2]/mean[0] <= orig[2]/orig[0] {
				t.Errorf("warm balance should raise red over blue")
			}
		case "up-2x", "half-magnification", "down-640":
			want := image.Pt(int(math.Round(800*sx)), int(math.Round(600*sy)))
			if d.Name == "half-magnification" {
				want = image.Pt(800, 600) // same frame, half the scale
			}
			if m.Cols() != want.X || m.Rows() != want.Y {
				t.Errorf("%s: %dx%d, want %v", d.Name, m.Cols(), m.Rows(), want)
			}
		}
		// The white cell at (200, 200) is dark violet in every copy where
		// it is still in view and not burnt out.
		if d.Name != "bright-2.2" && d.Name != "dark-15" && d.Name != "dark-30" {
			p := image.Pt(int(200*sx), int(200*sy))
			if c := meanBGR(m, image.Rect(p.X-2, p.Y-2, p.X+3, p.Y+3)); c[1] > 0.8*mean[1] {
				t.Errorf("%s: no dark cell at %v (green %.0f, field %.0f)", d.Name, p, c[1], mean[1])
			}
		}
		m.Close()
	}
	bad := gocv.NewMat()
	defer bad.Close()
	if m, _, _, err := Degradations()[0].Apply(bad, 10); err == nil {
		t.Error("an empty frame was degraded without error")
	} else {
		m.Close()
	}
}

func TestScaleRect(t *testing.T) {
	for _, c := range []struct {
		in     image.Rectangle
		sx, sy float64
		want   image.Rectangle
	}{
		{image.Rect(10, 20, 11, 21), 1, 1, image.Rect(10, 20, 11, 21)},
		{image.Rect(10, 20, 11, 21), 0.5, 0.5, image.Rect(5, 10, 6, 11)},
		{image.Rect(10, 20, 30, 41), 2, 2, image.Rect(20, 40, 60, 82)},
		{image.Rect(3, 3, 4, 4), 0.25, 0.25, image.Rect(0, 0, 1, 1)},
	} {
		if got := scaleRect(c.in, c.sx, c.sy); got != c.want {
			t.Errorf("scaleRect(%v, %g, %g) = %v, want %v", c.in, c.sx, c.sy, got, c.want)
		}
	}
}

// meanBGR is the mean of each channel over r.
func meanBGR(m gocv.Mat, r image.Rectangle) [3]float64 {
	b := m.ToBytes()
	w := m.Cols()
	var sum [3]float64
	n := 0
	for y := max(0, r.Min.Y); y < min(m.Rows(), r.Max.Y); y++ {
		for x := max(0, r.Min.X); x < min(w, r.Max.X); x++ {
			for c := range 3 {
				sum[c] += float64(b[3*(y*w+x)+c])
			}
			n++
		}
	}
	for c := range sum {
		sum[c] /= float64(max(1, n))
	}
	return sum
}
