package vision

import (
	"math"
	"math/rand/v2"
	"testing"
)

// drawDiscs returns a w x h mask with the given discs (x, y, r) set.
func drawDiscs(w, h int, discs ...[3]float64) []uint8 {
	m := make([]uint8, w*h)
	for y := range h {
		for x := range w {
			for _, d := range discs {
				if (float64(x)-d[0])*(float64(x)-d[0])+(float64(y)-d[1])*(float64(y)-d[1]) <= d[2]*d[2] {
					m[y*w+x] = 255
				}
			}
		}
	}
	return m
}

func TestLabelRegions(t *testing.T) {
	const w, h = 12, 6
	m := make([]uint8, w*h)
	set := func(x, y int) { m[y*w+x] = 255 }
	set(0, 0)
	set(1, 1) // diagonal: 8-connected to (0,0)
	set(5, 2)
	set(5, 3)
	set(6, 3)
	set(11, 5)
	labels, regions := labelRegions(m, w, h)
	if len(regions) != 3 {
		t.Fatalf("%d regions, want 3", len(regions))
	}
	if labels[0] != labels[1*w+1] || labels[0] == 0 {
		t.Errorf("diagonal neighbours not joined")
	}
	want := []int{2, 3, 1}
	for i, r := range regions {
		if r.area != want[i] {
			t.Errorf("region %d area %d, want %d", i, r.area, want[i])
		}
	}
	if b := regions[1].box; b.Min.X != 5 || b.Min.Y != 2 || b.Max.X != 7 || b.Max.Y != 4 {
		t.Errorf("box %v", b)
	}
}

func TestFillEnclosedHoles(t *testing.T) {
	const w, h = 9, 7
	// A ring (hole in the middle) and a C open to the border.
	m := make([]uint8, w*h)
	for y := 1; y <= 5; y++ {
		for x := 1; x <= 5; x++ {
			if x == 1 || x == 5 || y == 1 || y == 5 {
				m[y*w+x] = 255
			}
		}
	}
	m[3*w+7], m[2*w+7] = 255, 255
	fillEnclosedHoles(m, w, h)
	if m[3*w+3] == 0 {
		t.Error("hole in ring not filled")
	}
	if m[0] != 0 || m[3*w+8] != 0 || m[3*w+6] != 0 {
		t.Error("background reachable from the border was filled")
	}
}

func TestDistanceToBackground(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	const w, h = 23, 17
	for trial := range 20 {
		m := make([]uint8, w*h)
		for p := range m {
			if rng.Float64() < 0.8 {
				m[p] = 255
			}
		}
		for _, outside := range []bool{false, true} {
			got := distanceToBackground(m, w, h, outside)
			for y := range h {
				for x := range w {
					want := 0.0
					if m[y*w+x] != 0 {
						// Brute force over unset pixels, and the border ring when
						// the outside counts as unset.
						best := math.Inf(1)
						for yy := -1; yy <= h; yy++ {
							for xx := -1; xx <= w; xx++ {
								in := xx >= 0 && yy >= 0 && xx < w && yy < h
								if (in && m[yy*w+xx] == 0) || (!in && !outside) {
									best = min(best, math.Hypot(float64(x-xx), float64(y-yy)))
								}
							}
						}
						want = best
					}
					g := float64(got[y*w+x])
					if math.IsInf(want, 1) {
						if g < 100 {
							t.Fatalf("trial %d (%d,%d): %v, want huge", trial, x, y, g)
						}
						continue
					}
					if math.Abs(g-want) > 1e-4 {
						t.Fatalf("trial %d outside=%v (%d,%d): %v, want %v", trial, outside, x, y, g, want)
					}
				}
			}
		}
	}
}

func TestSplitByDynamics(t *testing.T) {
	const w, h = 80, 40
	// Two overlapping discs of radius 12, centres 20 apart: the neck is
	// 2*sqrt(144-100) = 13 wide, so the saddle is about 6.6 below peaks of 12.
	m := drawDiscs(w, h, [3]float64{25, 20, 12}, [3]float64{45, 20, 12})
	dist := distanceToBackground(m, w, h, false)
	if _, n := splitByDynamics(dist, w, h, 3, 0); n != 2 {
		t.Errorf("dynamic 3: %d regions, want 2", n)
	}
	if _, n := splitByDynamics(dist, w, h, 8, 0); n != 1 {
		t.Errorf("dynamic 8: %d regions, want 1 (the neck is shallower than that)", n)
	}
	// Each disc's centre lies in its own region.
	labels, _ := splitByDynamics(dist, w, h, 3, 0)
	if a, b := labels[20*w+25], labels[20*w+45]; a == b || a == 0 || b == 0 {
		t.Errorf("centres labelled %d and %d", a, b)
	}
	// A peak lower than minPeak is no region of its own, however deep its
	// saddle: a thin lobe (radius 5) beside a round nucleus (radius 12).
	lobe := drawDiscs(w, h, [3]float64{25, 20, 12}, [3]float64{43, 20, 5})
	ld := distanceToBackground(lobe, w, h, false)
	if _, n := splitByDynamics(ld, w, h, 1, 0); n != 2 {
		t.Errorf("lobe, no least peak: %d regions, want 2", n)
	}
	if _, n := splitByDynamics(ld, w, h, 1, 8); n != 1 {
		t.Errorf("lobe, least peak 8: %d regions, want 1", n)
	}
	if _, n := splitByDynamics(dist, w, h, 3, 8); n != 2 {
		t.Errorf("two discs of radius 12, least peak 8: %d regions, want 2", n)
	}
	// Every set pixel is labelled.
	for p := range m {
		if (m[p] != 0) != (labels[p] != 0) {
			t.Fatalf("pixel %d: mask %d label %d", p, m[p], labels[p])
		}
	}
}

func TestGrowAndMergeRegions(t *testing.T) {
	const w, h = 60, 30
	// One cell body with three small "lobe" seeds, and a separate big cell.
	body := drawDiscs(w, h, [3]float64{15, 15, 12}, [3]float64{45, 15, 10})
	seeds := make([]int32, w*h)
	for p, v := range drawDiscs(w, h, [3]float64{10, 15, 3}) {
		if v != 0 {
			seeds[p] = 1
		}
	}
	for p, v := range drawDiscs(w, h, [3]float64{20, 11, 3}) {
		if v != 0 {
			seeds[p] = 2
		}
	}
	for p, v := range drawDiscs(w, h, [3]float64{20, 19, 3}) {
		if v != 0 {
			seeds[p] = 3
		}
	}
	big := drawDiscs(w, h, [3]float64{45, 15, 7})
	for p, v := range big {
		if v != 0 {
			seeds[p] = 4
		}
	}
	grown := growLabels(seeds, body, w, h)
	for p := range body {
		if (body[p] != 0) != (grown[p] != 0) {
			t.Fatalf("pixel %d: body %d grown label %d", p, body[p], grown[p])
		}
	}
	nucleus := func(p int) bool { return seeds[p] != 0 }
	lobe := 29 // pixels in a radius-3 disc
	merged := mergeSmallRegions(grown, nucleus, w, h, 2*lobe, lobe/2)
	if merged[15*w+10] != merged[11*w+20] || merged[11*w+20] != merged[19*w+20] {
		t.Error("the three lobes were not merged into one cell")
	}
	if merged[15*w+10] == merged[15*w+45] {
		t.Error("the separate cell was merged too")
	}
}

func TestCentralComponent(t *testing.T) {
	m := NewMask(20, 20)
	set := func(x0, y0, x1, y1 int) {
		for y := y0; y < y1; y++ {
			for x := x0; x < x1; x++ {
				m.Pix[y*20+x] = 255
			}
		}
	}
	set(0, 0, 4, 4)   // a neighbour's corner
	set(7, 7, 13, 13) // the cell at the centre
	c := m.CentralComponent()
	if c == nil || c.Area() != 36 || c.Pix[0] != 0 {
		t.Fatalf("central component wrong: %+v", c)
	}
	// the centre unset: the component with most pixels in the central quarter
	m.Pix[10*20+10] = 0
	if c := m.CentralComponent(); c == nil || c.Area() != 35 {
		t.Fatalf("off-centre cell not kept: %+v", c)
	}
	var nilMask *Mask
	if nilMask.CentralComponent() != nil || (&Mask{W: 3, H: 3}).CentralComponent() != nil {
		t.Fatal("nil or malformed mask gave a component")
	}
	if NewMask(20, 20).CentralComponent() != nil {
		t.Fatal("empty mask gave a component")
	}
}

func TestEnclosedHoles(t *testing.T) {
	const w, h = 12, 7
	// Two rings: a 3x3 hole and a 1x1 hole; a gap open to the border.
	m := make([]uint8, w*h)
	ring := func(x0, y0, x1, y1 int) {
		for y := y0; y <= y1; y++ {
			for x := x0; x <= x1; x++ {
				if x == x0 || x == x1 || y == y0 || y == y1 {
					m[y*w+x] = 255
				}
			}
		}
	}
	ring(1, 1, 5, 5)
	ring(7, 2, 9, 4)
	labels, areas := enclosedHoles(m, w, h)
	if len(areas) != 2 || areas[0] != 9 || areas[1] != 1 {
		t.Fatalf("hole areas %v, want [9 1]", areas)
	}
	if labels[3*w+3] != 1 || labels[3*w+8] != 2 {
		t.Errorf("hole labels %d and %d, want 1 and 2", labels[3*w+3], labels[3*w+8])
	}
	for _, p := range []int{0, 3*w + 6, 6*w + 11} {
		if labels[p] != 0 {
			t.Errorf("background the border reaches (pixel %d) labelled %d", p, labels[p])
		}
	}
	for p, l := range labels {
		if m[p] != 0 && l != 0 {
			t.Fatalf("set pixel %d labelled %d", p, l)
		}
	}
}
