package vision

import (
	"image"
	"math"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"allscreen/internal/realdata"

	"gocv.io/x/gocv"
)

func TestCheckQualitySynthetic(t *testing.T) {
	field := syntheticSmear(t, smearSpec{W: 900, H: 700, RBCRadius: 16,
		WBCs: []image.Point{{200, 200}, {600, 450}}, Platelets: []image.Point{{400, 100}}, Seed: 3})
	defer field.Close()
	blank := uniformField(t, 900, 700, smearBackground, 4)
	defer blank.Close()
	cases := []struct {
		name        string
		gain, sigma float64
		src         gocv.Mat
		want        QualityIssue
	}{
		{"good", 1, 0, field, QualityGood},
		{"darkened", 0.35, 0, field, QualityTooDark},
		{"overexposed", 2.2, 0, field, QualityTooBright},
		{"defocused", 1, 5, field, QualityBlurred},
		{"blank", 1, 0, blank, QualityNoStain},
		{"black", 0, 0, field, QualityTooDark},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			m := degrade(c.src, c.gain, c.sigma)
			defer m.Close()
			q := CheckQuality(m)
			if q.Issue != c.want {
				t.Errorf("issue %v, want %v (%+v)", q.Issue, c.want, q)
			}
			if (q.Advice() == "") != (c.want == QualityGood) {
				t.Errorf("advice %q for %v", q.Advice(), q.Issue)
			}
		})
	}
}

func TestCheckQualityUnreadable(t *testing.T) {
	empty := gocv.NewMat()
	defer empty.Close()
	grey := gocv.NewMatWithSize(100, 100, gocv.MatTypeCV8U)
	defer grey.Close()
	for _, m := range []gocv.Mat{empty, grey} {
		if q := CheckQuality(m); q.Issue != QualityUnreadable || !strings.Contains(q.Advice(), "camera") {
			t.Errorf("got %v %q, want unreadable with camera advice", q.Issue, q.Advice())
		}
	}
	tiny := uniformField(t, 1, 1, smearRBC, 1) // smaller than any blur kernel
	defer tiny.Close()
	_ = CheckQuality(tiny) // must not crash; any verdict will do
}

// TestCheckQualityRealFields: every real ALL-IDB1 field passes the gate,
// and copies of them that the test darkens, overexposes, defocuses (by a
// blur relative to the red cells, so both magnifications lose the same
// detail) or blanks are refused with the right advice.
func TestCheckQualityRealFields(t *testing.T) {
	dir := realdata.Dir(t, "allidb1", "fields")
	files, err := filepath.Glob(filepath.Join(dir, "*.jpg"))
	if err != nil || len(files) == 0 {
		t.Fatalf("no fields in %s: %v", dir, err)
	}
	for i, f := range files {
		field, err := LoadImage(f)
		if err != nil {
			t.Fatal(err)
		}
		name := filepath.Base(f)
		if q := CheckQuality(field); !q.OK() {
			t.Errorf("%s: real field refused: %v (%+v)", name, q.Issue, q)
		}
		// The degraded copies of every third field: blurring 5 MP is slow
		// under the race detector, and the real fields above cover the range.
		if i%3 == 0 {
			// A blur of 0.3 red-cell radii, the least of camera-eval's
			// blurs under which finding fails on every set (docs/camera.md).
			sigma := 0.3 * CheckQuality(field).RedCellRadius
			if sigma <= 0 {
				t.Fatalf("%s: red-cell radius not measured", name)
			}
			for _, c := range []struct {
				what        string
				gain, sigma float64
				want        QualityIssue
			}{
				{"darkened to 40%", 0.4, 0, QualityTooDark},
				// Most pixels then fall below voidLevel: the frame must not
				// pass for a cell cut out onto black.
				{"darkened to 15%", 0.15, 0, QualityTooDark},
				{"darkened to 8%", 0.08, 0, QualityTooDark},
				{"overexposed x2.2", 2.2, 0, QualityTooBright},
				{"defocused", 1, sigma, QualityBlurred},
			} {
				m := degrade(field, c.gain, c.sigma)
				if q := CheckQuality(m); q.Issue != c.want {
					t.Errorf("%s %s: got %v, want %v (%+v)", name, c.what, q.Issue, c.want, q)
				}
				m.Close()
			}
			bg := CheckQuality(field).Background
			blank := uniformField(t, field.Cols()/4, field.Rows()/4, [3]float64{bg, bg, bg}, uint64(i))
			if q := CheckQuality(blank); q.Issue != QualityNoStain {
				t.Errorf("%s blank at its background level: got %v (%+v)", name, q.Issue, q)
			}
			blank.Close()
		}
		field.Close()
	}
}

func BenchmarkCheckQuality(b *testing.B) {
	field := benchField(b)
	defer field.Close()
	b.ResetTimer()
	for b.Loop() {
		CheckQuality(field)
	}
}

// benchField is a 2592x1944 field: the largest real ALL-IDB1 normal field
// when the data is present, else a synthetic one of the same size.
func benchField(b *testing.B) gocv.Mat {
	if d, err := realdata.Find(); err == nil {
		p := filepath.Join(d, "allidb1", "fields", "Im065_0.jpg")
		if _, err := os.Stat(p); err == nil {
			m, err := LoadImage(p)
			if err != nil {
				b.Fatal(err)
			}
			return m
		}
	}
	return syntheticSmear(b, smearSpec{W: 2592, H: 1944, RBCRadius: 40,
		WBCs: []image.Point{{600, 500}, {1800, 1200}}, Seed: 1})
}

// TestCheckQualityCutOutCells: cells cut out onto black (C-NMC) are not
// refused as dark frames, and the same cell darkened to 15% is.
func TestCheckQualityCutOutCells(t *testing.T) {
	files, err := filepath.Glob(filepath.Join(realdata.Dir(t, "cnmc"), "*.png"))
	if err != nil || len(files) == 0 {
		t.Fatalf("no cnmc cells: %v", err)
	}
	for _, f := range files[:min(len(files), 40)] {
		cell, err := LoadImage(f)
		if err != nil {
			t.Fatal(err)
		}
		if q := CheckQuality(cell); !q.OK() {
			t.Errorf("%s: refused %v (%+v)", filepath.Base(f), q.Issue, q)
		}
		dark := degrade(cell, 0.15, 0)
		if q := CheckQuality(dark); q.Issue != QualityTooDark {
			t.Errorf("%s at 15%%: got %v, want too-dark (%+v)", filepath.Base(f), q.Issue, q)
		}
		dark.Close()
		cell.Close()
	}
}

func TestQualityIssueText(t *testing.T) {
	for i := QualityGood; i <= QualityMagnification; i++ {
		b, _ := i.MarshalText()
		var back QualityIssue
		if err := back.UnmarshalText(b); err != nil || back != i {
			t.Errorf("%v: read back %v, %v", i, back, err)
		}
	}
	var q QualityIssue
	if err := q.UnmarshalText([]byte("QualityIssue(99)")); err == nil {
		t.Error("an unknown issue was read without error")
	}
}

// TestWorkRadiusNeverEnlarges: FindCells downscales a field to its working
// side and never enlarges one, so a field smaller than that side has its
// red cells on the working copy at their own size (a 224-pixel field's
// 7-pixel red cells are not 20 pixels to cell finding).
func TestWorkRadiusNeverEnlarges(t *testing.T) {
	field, err := LoadImage(filepath.Join(realdata.Dir(t, "allidb1", "fields"), "Im001_1.jpg"))
	if err != nil {
		t.Fatal(err)
	}
	defer field.Close()
	side := DefaultFindOptions.WorkSide
	for _, long := range []int{side / 2, 2 * side} {
		small := gocv.NewMat()
		f := float64(long) / float64(field.Cols())
		gocv.Resize(field, &small, image.Pt(long, int(float64(field.Rows())*f)), 0, 0, gocv.InterpolationArea)
		q := CheckQuality(small)
		small.Close()
		want := q.RedCellRadius * min(1, float64(side)/float64(long))
		if q.RedCellRadius == 0 || math.Abs(q.WorkRadius-want) > 1e-9 {
			t.Errorf("%d px wide: red-cell radius %.2f, working radius %.2f, want %.2f", long, q.RedCellRadius, q.WorkRadius, want)
		}
	}
}
