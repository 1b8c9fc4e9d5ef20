package vision

import (
	"image"
	"math"
	"math/rand/v2"
	"path/filepath"
	"runtime"
	"testing"

	"allscreen/internal/realdata"

	"gocv.io/x/gocv"
)

// TestMaxFlowMatchesBruteForce: on small random graphs the flow equals the
// minimum over every cut, and the side each node is given is such a cut.
func TestMaxFlowMatchesBruteForce(t *testing.T) {
	rng := rand.New(rand.NewPCG(3, 9))
	for trial := range 400 {
		n := 1 + rng.IntN(9)
		type edge struct {
			i, j   int32
			w, rev float64
		}
		var edges []edge
		for i := range n {
			for j := i + 1; j < n; j++ {
				if rng.IntN(3) == 0 {
					continue
				}
				w, rev := float64(rng.IntN(6)), float64(rng.IntN(6))
				if rng.IntN(2) == 0 {
					rev = w
				}
				edges = append(edges, edge{int32(i), int32(j), w, rev})
			}
		}
		src, snk := make([]float64, n), make([]float64, n)
		for i := range n {
			src[i], snk[i] = float64(rng.IntN(8)), float64(rng.IntN(8))
		}
		g := newFlowGraph(n, len(edges))
		for _, e := range edges {
			g.addEdge(e.i, e.j, e.w, e.rev)
		}
		for i := range n {
			g.setTerminal(int32(i), src[i], snk[i])
		}
		flow := g.maxFlow()
		cut := func(inS func(int) bool) float64 {
			c := 0.0
			for i := range n {
				if inS(i) {
					c += snk[i]
				} else {
					c += src[i]
				}
			}
			for _, e := range edges {
				switch {
				case inS(int(e.i)) && !inS(int(e.j)):
					c += e.w
				case inS(int(e.j)) && !inS(int(e.i)):
					c += e.rev
				}
			}
			return c
		}
		best := math.Inf(1)
		for set := range 1 << n {
			best = min(best, cut(func(i int) bool { return set&(1<<i) != 0 }))
		}
		if math.Abs(flow-best) > 1e-9 {
			t.Fatalf("trial %d (%d nodes): flow %v, minimum cut %v", trial, n, flow, best)
		}
		if got := cut(func(i int) bool { return g.inSource(int32(i)) }); math.Abs(got-best) > 1e-9 {
			t.Fatalf("trial %d (%d nodes): the sides given cut %v, minimum %v", trial, n, got, best)
		}
	}
}

// grabCutCase is a crop's GrabCut input as SegmentCell prepares it.
func grabCutCase(t *testing.T, crop gocv.Mat) *grabCutInput {
	t.Helper()
	opt := DefaultSegmentOptions
	opt.CellGrabCut = false
	m, err := segmentCell(crop, opt, 1)
	if err != nil {
		t.Fatal(err)
	}
	blurred := Blur(crop)
	defer blurred.Close()
	ps, err := newPixelSet(blurred, opt.Space, DefaultSamplePixels, nil)
	if err != nil {
		t.Fatal(err)
	}
	cl, err := ps.cluster(opt.K, opt.Seed, opt.Attempts, false)
	if err != nil {
		t.Fatal(err)
	}
	bg := backgroundCluster(cl)
	stained := NewMask(crop.Cols(), crop.Rows())
	for p, l := range cl.Labels {
		if int(l) != bg {
			stained.Pix[p] = 255
		}
	}
	in, _, err := grabCutSeeds(blurred, m.Nucleus, stained, opt.Seed)
	if err != nil || in == nil {
		t.Fatalf("no GrabCut input: %v", err)
	}
	return in
}

// openCVGrabCut is OpenCV's grabCut, one GC_EVAL iteration, on the same
// input: the reference the Go implementation reproduces at gamma 50.
func openCVGrabCut(t *testing.T, in *grabCutInput) []uint8 {
	t.Helper()
	img, err := NewMatCopy(in.h, in.w, gocv.MatTypeCV8UC3, in.bgr)
	if err != nil {
		t.Fatal(err)
	}
	defer img.Close()
	mask, err := NewMatCopy(in.h, in.w, gocv.MatTypeCV8U, in.gm)
	if err != nil {
		t.Fatal(err)
	}
	defer mask.Close()
	fgd, err := NewMatCopy(1, len(in.fg), gocv.MatTypeCV64F, float64Bytes(in.fg))
	if err != nil {
		t.Fatal(err)
	}
	defer fgd.Close()
	bgd, err := NewMatCopy(1, len(in.bg), gocv.MatTypeCV64F, float64Bytes(in.bg))
	if err != nil {
		t.Fatal(err)
	}
	defer bgd.Close()
	runtime.LockOSThread()
	gocv.GrabCut(img, &mask, image.Rect(0, 0, in.w, in.h), &bgd, &fgd, 1, gocv.GCEval)
	runtime.UnlockOSThread()
	return mask.ToBytes()
}

func compareGrabCut(t *testing.T, name string, crop gocv.Mat) {
	t.Helper()
	in := grabCutCase(t, crop)
	want := openCVGrabCut(t, in)
	got := append([]uint8(nil), in.gm...)
	grabCut(in.bgr, in.w, in.h, got, in.fg, in.bg, grabCutGamma)
	differ, probable := 0, 0
	for p := range got {
		if in.gm[p] == gcPRBG || in.gm[p] == gcPRFG {
			probable++
		}
		if got[p] != want[p] {
			differ++
		}
	}
	if differ > 0 {
		t.Errorf("%s: %d of %d pixels differ from OpenCV's grabCut (%d probable)", name, differ, len(got), probable)
	}
	if probable == 0 {
		t.Errorf("%s: no probable pixels: the case tests nothing", name)
	}
}

// TestGrabCutMatchesOpenCV: at OpenCV's gamma the Go GrabCut gives OpenCV's
// mask pixel for pixel, on drawn cells and (with the data) real crops.
func TestGrabCutMatchesOpenCV(t *testing.T) {
	for seed := range uint64(3) {
		img, _ := synthCell(t, 120+40*int(seed), 120+40*int(seed), 60+20*float64(seed), 60+20*float64(seed), seed+1)
		compareGrabCut(t, "synthetic", img)
		img.Close()
	}
	d := realdata.Dir(t, "allidb2")
	for _, name := range []string{"Im001_1.png", "Im131_0.png", "Im222_0.png"} {
		img, err := LoadImage(filepath.Join(d, "images", name))
		if err != nil {
			t.Fatal(err)
		}
		compareGrabCut(t, name, img)
		img.Close()
	}
}

// TestGrabCutGammaSmooths: a weaker smoothness weight never gives a
// shorter outline than a stronger one on the same input, and the outline
// changes with it at all.
func TestGrabCutGammaSmooths(t *testing.T) {
	img, _ := synthCell(t, 160, 160, 80, 80, 5)
	defer img.Close()
	in := grabCutCase(t, img)
	boundary := func(gm []uint8) int {
		n := 0
		fg := func(p int) bool { return gm[p] == gcFG || gm[p] == gcPRFG }
		for y := range in.h {
			for x := range in.w - 1 {
				if fg(y*in.w+x) != fg(y*in.w+x+1) {
					n++
				}
			}
		}
		return n
	}
	weak := append([]uint8(nil), in.gm...)
	grabCut(in.bgr, in.w, in.h, weak, in.fg, in.bg, 1)
	strong := append([]uint8(nil), in.gm...)
	grabCut(in.bgr, in.w, in.h, strong, in.fg, in.bg, 5000)
	bw, bs := boundary(weak), boundary(strong)
	if bw < bs {
		t.Errorf("outline %d pixels at gamma 1, %d at gamma 5000: smoothing lengthened it", bw, bs)
	}
	if bw == bs {
		t.Errorf("outline %d pixels at both gamma 1 and 5000: gamma has no effect", bw)
	}
}
