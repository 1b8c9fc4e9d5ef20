package vision

import (
	"math"
	"math/rand/v2"
	"slices"
	"testing"

	"gocv.io/x/gocv"
)

func TestClusterDeterministicPerSeed(t *testing.T) {
	img, _ := synthCell(t, 90, 80, 45, 40, 3)
	defer img.Close()
	for _, opt := range []KMeansOptions{
		{K: 3, Space: SpaceBGR, Seed: 5},
		{K: 4, Space: SpaceLab, Seed: 9, Attempts: 4},
		{K: 3, Space: SpaceOD, Seed: 2, SamplePixels: 1000},
		{K: 5, Space: SpaceHSV, Seed: 1, SamplePixels: 1000, Converge: true},
	} {
		a, err := Cluster(img, opt)
		if err != nil {
			t.Fatal(err)
		}
		b, err := Cluster(img, opt)
		if err != nil {
			t.Fatal(err)
		}
		if !slices.Equal(a.Labels, b.Labels) || !slices.Equal(a.Centers, b.Centers) {
			t.Errorf("%+v: two runs with one seed differ", opt)
		}
		if len(a.Labels) != 90*80 || len(a.Centers) != opt.K {
			t.Errorf("%+v: %d labels, %d centres", opt, len(a.Labels), len(a.Centers))
		}
		total := 0
		for _, n := range a.Counts {
			total += n
		}
		if total != 90*80 {
			t.Errorf("%+v: counts sum to %d", opt, total)
		}
	}
}

// Three well-separated colours must come out as three clusters, whatever
// the seed, with the nucleus the lowest-green one.
func TestClusterSeparatesColours(t *testing.T) {
	w, h := 60, 40
	pix := make([]byte, 3*w*h)
	want := make([]int, w*h)
	colours := [][3]byte{{200, 200, 210}, {210, 160, 160}, {140, 50, 110}}
	for p := range w * h {
		c := (p % w) * 3 / w
		want[p] = c
		copy(pix[3*p:], colours[c][:])
	}
	img, err := NewMatCopy(h, w, gocv.MatTypeCV8UC3, pix)
	if err != nil {
		t.Fatal(err)
	}
	defer img.Close()
	for seed := range uint64(6) {
		cl, err := Cluster(img, KMeansOptions{K: 3, Seed: seed})
		if err != nil {
			t.Fatal(err)
		}
		// Same partition as want, up to renaming.
		rename := map[int]uint8{}
		for p, l := range cl.Labels {
			if r, ok := rename[want[p]]; ok && r != l {
				t.Fatalf("seed %d: pixel %d in cluster %d, its colour's others in %d", seed, p, l, r)
			}
			rename[want[p]] = l
		}
		if nuc := NucleusCluster(cl); cl.BGR[nuc] != [3]float32{140, 50, 110} {
			t.Errorf("seed %d: nucleus cluster has colour %v", seed, cl.BGR[nuc])
		}
	}
}

// naiveLloyd is the textbook algorithm on every pixel, for comparison.
func naiveLloyd(pix []byte, centers [][3]float64) {
	n := len(pix) / 3
	labels := make([]int, n)
	for it := 0; it < 1000; it++ {
		changed := false
		sums := make([][3]float64, len(centers))
		counts := make([]float64, len(centers))
		for p := range n {
			best, bestD := 0, math.Inf(1)
			for i, c := range centers {
				d := 0.0
				for ch := range 3 {
					e := float64(pix[3*p+ch]) - c[ch]
					d += e * e
				}
				if d < bestD {
					best, bestD = i, d
				}
			}
			if it == 0 || labels[p] != best {
				changed = true
				labels[p] = best
			}
			for ch := range 3 {
				sums[best][ch] += float64(pix[3*p+ch])
			}
			counts[best]++
		}
		for i := range centers {
			if counts[i] > 0 {
				for ch := range 3 {
					centers[i][ch] = sums[i][ch] / counts[i]
				}
			}
		}
		if !changed {
			return
		}
	}
}

// Lloyd on weighted distinct colours with Hamerly's bounds must end where
// the textbook algorithm on every pixel ends, from the same start.
func TestLloydMatchesTextbook(t *testing.T) {
	rng := rand.New(rand.NewPCG(11, 11))
	for trial := range 20 {
		n := 200 + rng.IntN(2000)
		pix := make([]byte, 3*n)
		for p := range n {
			// a few blobs of colour, with repeats
			base := [][3]int{{40, 60, 200}, {200, 190, 180}, {120, 40, 90}, {90, 200, 60}}[rng.IntN(4)]
			for ch := range 3 {
				pix[3*p+ch] = byte(max(0, min(255, base[ch]+int(rng.NormFloat64()*25))))
			}
		}
		k := 2 + rng.IntN(5)
		colours, weights := distinctColours(pix)
		start := kmeansPP(colours, weights, k, uint64(trial), 0)
		fast := slices.Clone(start)
		lloyd(colours, weights, fast, maxLloydIterations)
		slow := slices.Clone(start)
		naiveLloyd(pix, slow)
		for i := range fast {
			for ch := range 3 {
				if math.Abs(fast[i][ch]-slow[i][ch]) > 1e-9 {
					t.Fatalf("trial %d k=%d: centre %d is %v, textbook %v", trial, k, i, fast[i], slow[i])
				}
			}
		}
	}
}

func TestDistinctColours(t *testing.T) {
	pix := []byte{1, 2, 3, 9, 9, 9, 1, 2, 3, 0, 0, 0, 1, 2, 3, 9, 9, 9}
	c, w := distinctColours(pix)
	if !slices.Equal(c, []byte{0, 0, 0, 1, 2, 3, 9, 9, 9}) || !slices.Equal(w, []int32{1, 3, 2}) {
		t.Errorf("got colours %v weights %v", c, w)
	}
}

func TestClusterRefuses(t *testing.T) {
	img, _ := synthCell(t, 40, 40, 20, 20, 1)
	defer img.Close()
	grey := gocv.NewMatWithSize(20, 20, gocv.MatTypeCV8U)
	defer grey.Close()
	flat, _ := NewMatCopy(20, 20, gocv.MatTypeCV8UC3, make([]byte, 1200))
	defer flat.Close()
	empty := gocv.NewMat()
	defer empty.Close()
	for name, tc := range map[string]struct {
		img gocv.Mat
		k   int
	}{
		"k=1": {img, 1}, "k=17": {img, 17}, "grey image": {grey, 3}, "empty": {empty, 3},
		"one colour, k=2": {flat, 2},
	} {
		if _, err := Cluster(tc.img, KMeansOptions{K: tc.k}); err == nil {
			t.Errorf("%s: no error", name)
		}
	}
}

func TestParseSpace(t *testing.T) {
	for _, s := range Spaces {
		got, err := ParseSpace(s.String())
		if err != nil || got != s {
			t.Errorf("ParseSpace(%q) = %v, %v", s.String(), got, err)
		}
	}
	if _, err := ParseSpace("cmyk"); err == nil {
		t.Error("cmyk: no error")
	}
}
