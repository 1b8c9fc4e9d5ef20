package vision

import (
	"math"
	"path/filepath"
	"testing"

	"allscreen/internal/realdata"
)

// TestEvaluateCamera runs camera-eval's measurement on two real olympus
// fields: the original first, every copy scored against the same truth,
// and the light's degradations refused for the right reason.
func TestEvaluateCamera(t *testing.T) {
	if raceEnabled {
		t.Skip("34 real-field analyses are slow under -race; make fields-boxes runs this test without it")
	}
	fields, err := LoadBoxFields(realdata.Dir(t, "olympus/fields"))
	if err != nil {
		t.Fatal(err)
	}
	degs := Degradations()
	for _, cf := range CameraFieldsFromBoxes("olympus/fields", fields[:2]) {
		rs, err := EvaluateCamera(cf, DefaultFindOptions, degs)
		if err != nil {
			t.Fatal(err)
		}
		if len(rs) != len(degs)+1 || rs[0].Degradation != Original {
			t.Fatalf("%s: %d results, first %q", cf.Name, len(rs), rs[0].Degradation)
		}
		if !rs[0].Quality.OK() || rs[0].Found != rs[0].Truth || rs[0].Truth == 0 {
			t.Errorf("%s original: %+v", cf.Name, rs[0])
		}
		for i, r := range rs[1:] {
			if r.Truth != rs[0].Truth || r.Found > r.Truth || r.Degradation != degs[i].Name {
				t.Errorf("%s %s: %+v", cf.Name, degs[i].Name, r)
			}
			switch r.Degradation {
			case "dark-15", "dark-30":
				if r.Quality.Issue != QualityTooDark {
					t.Errorf("%s %s: %v", cf.Name, r.Degradation, r.Quality.Issue)
				}
			case "bright-2.2":
				if r.Quality.Issue != QualityTooBright {
					t.Errorf("%s %s: %v", cf.Name, r.Degradation, r.Quality.Issue)
				}
			case "blur-0.6R":
				if r.Quality.Issue != QualityBlurred {
					t.Errorf("%s %s: %v", cf.Name, r.Degradation, r.Quality.Issue)
				}
			}
		}
	}
}

// A camera's gamma must not move the red-cell scale: on ALL-IDB1's
// crowded Im010_1 a gamma of 0.6 once read it 1.7 times too large (rings
// of touching red cells filled into blobs; see redCellRadius), and 11 of
// its 14 white cells were lost under the size rule.
func TestRedCellRadiusUnderGamma(t *testing.T) {
	field, err := LoadImage(filepath.Join(realdata.Dir(t, "allidb1", "fields"), "Im010_1.jpg"))
	if err != nil {
		t.Fatal(err)
	}
	defer field.Close()
	orig, err := measureField(field, DefaultFindOptions.WorkSide)
	if err != nil {
		t.Fatal(err)
	}
	for _, g := range []float64{0.6, 1.6} {
		c, err := gammaCopy(field, g)
		if err != nil {
			t.Fatal(err)
		}
		f, err := measureField(c, DefaultFindOptions.WorkSide)
		c.Close()
		if err != nil {
			t.Fatal(err)
		}
		if math.Abs(f.radius/orig.radius-1) > 0.15 {
			t.Errorf("gamma %.1f: red-cell radius %.1f, original %.1f (working pixels): more than 15%% apart", g, f.radius, orig.radius)
		}
	}
}
