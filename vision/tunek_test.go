package vision

import (
	"path/filepath"
	"testing"

	"allscreen/internal/realdata"
)

func allidb2(tb testing.TB) []LabeledImage {
	tb.Helper()
	d := realdata.Dir(tb, "allidb2")
	set, err := ReadLabels(filepath.Join(d, "labels.csv"), "", filepath.Join(d, "images"), filepath.Join(d, "masks"))
	if err != nil {
		tb.Fatal(err)
	}
	return set
}

// BenchmarkTuneKAllIDB2 is Algorithm 1 over all 260 ALL-IDB2 pairs, k=2..6,
// nucleus target (target: under 10 s on the 2-core development machine).
func BenchmarkTuneKAllIDB2(b *testing.B) {
	set := allidb2(b)
	for b.Loop() {
		res, err := TuneK(set, TuneOptions{Ks: DefaultKs, Target: TargetNucleus, Space: SpaceBGR, Seed: 1})
		if err != nil {
			b.Fatal(err)
		}
		if res.Failed > 0 {
			b.Fatalf("%d images failed", res.Failed)
		}
	}
}
