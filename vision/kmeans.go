package vision

import (
	"fmt"
	"image"
	"math"
	"math/rand/v2"
	"runtime"
	"sync"

	"gocv.io/x/gocv"
)

// Space is the colour space in which pixels are clustered.
type Space int

const (
	SpaceBGR Space = iota // the camera's own channels, as the paper
	SpaceLab              // CIE L*a*b* (OpenCV's 8-bit encoding)
	SpaceHSV              // OpenCV's 8-bit HSV (hue 0..179)
	// SpaceOD is optical density, the stain-separation space of colour
	// deconvolution (Ruifrok and Johnston 2001): per channel
	// -log((I+1)/256), scaled to 0..255. Stains absorb light, so in OD the
	// amounts of dye add linearly and brightness does not dominate.
	SpaceOD
)

func (s Space) String() string {
	switch s {
	case SpaceBGR:
		return "rgb"
	case SpaceLab:
		return "lab"
	case SpaceHSV:
		return "hsv"
	case SpaceOD:
		return "od"
	}
	return fmt.Sprintf("Space(%d)", int(s))
}

// ParseSpace reads a colour space name as printed by Space.String.
func ParseSpace(s string) (Space, error) {
	for _, sp := range Spaces {
		if s == sp.String() {
			return sp, nil
		}
	}
	return 0, fmt.Errorf("unknown colour space %q (want rgb, lab, hsv or od)", s)
}

// Spaces lists every colour space Cluster supports.
var Spaces = []Space{SpaceBGR, SpaceLab, SpaceHSV, SpaceOD}

// KMeansOptions configures Cluster.
type KMeansOptions struct {
	K     int   // number of clusters, 2..16
	Space Space // colour space clustered in
	Seed  uint64
	// SamplePixels bounds the pixels k-means itself sees: a larger image is
	// clustered on an area-downscaled copy, then every full-resolution pixel
	// takes its nearest centre. 0 means DefaultSamplePixels.
	SamplePixels int
	// Attempts is how many k-means++ starts are tried; the one that ends
	// with the lowest within-cluster sum of squares wins. k-means has local
	// optima (on ALL-IDB2 at k=4 about half the crops end in different ones
	// from different seeds); more starts find the best one more often. The
	// starts run on the colours coarsened to 64 levels a channel, then the
	// winner is refined on the real colours. 0 means 1: a single start on
	// the real colours.
	Attempts int
	// Converge continues Lloyd's iterations on every full-resolution pixel,
	// from the sample's centres, until no pixel changes cluster: k-means on
	// all the pixels, as the paper runs it, at a fraction of the cost.
	Converge bool
}

// DefaultSamplePixels is enough to place 2..6 colour centres stably while
// keeping a 5 MP field cheap.
const DefaultSamplePixels = 1 << 16

// maxLloydIterations bounds Lloyd's iterations; on these images they stop
// far sooner, when no pixel changes cluster.
const maxLloydIterations = 100

// Clusters is the result of colour k-means on one image.
type Clusters struct {
	K       int
	W, H    int
	Space   Space
	Centers [][3]float32 // centres in Space, 0..255 per channel
	BGR     [][3]float32 // the same centres as mean BGR colours
	Labels  []uint8      // cluster index per pixel, row-major, len W*H; Excluded for pixels left out
	Counts  []int        // pixels per cluster
}

// Excluded labels a pixel that was left out of the clustering (the black
// surround of a cell already segmented onto black).
const Excluded uint8 = 255

// Mask returns cluster i as a 0/255 mask, row-major.
func (c *Clusters) Mask(i int) []uint8 {
	m := make([]uint8, len(c.Labels))
	for p, l := range c.Labels {
		if int(l) == i {
			m[p] = 255
		}
	}
	return m
}

// Blur is the paper's preprocessing: a 5x5 Gaussian blur with sigma derived
// from the kernel size (sigma 0).
func Blur(img gocv.Mat) gocv.Mat {
	out := gocv.NewMat()
	gocv.GaussianBlur(img, &out, image.Pt(5, 5), 0, 0, gocv.BorderDefault)
	return out
}

// Cluster runs colour k-means on an 8-bit BGR image (blur it first, as the
// paper does). It is deterministic for a given seed: initial centres are
// chosen by k-means++ from a seeded generator on the sample, then Lloyd's
// iterations run until no sample changes cluster; every full-resolution
// pixel then takes its nearest centre (or, with Converge, the iterations go
// on over every pixel).
func Cluster(img gocv.Mat, opt KMeansOptions) (*Clusters, error) {
	ps, err := newPixelSet(img, opt.Space, opt.SamplePixels, nil)
	if err != nil {
		return nil, err
	}
	return ps.cluster(opt.K, opt.Seed, opt.Attempts, opt.Converge)
}

// pixelSet is an image prepared for k-means in one colour space: callers
// that cluster one image at several k (Algorithm 1) prepare it once.
type pixelSet struct {
	w, h    int
	space   Space
	bgr     []byte  // the image's own pixels
	full    []byte  // every pixel in space
	colours []byte  // distinct colours of the sample k-means sees
	weights []int32 // pixels of each distinct colour
	sampled bool    // the sample is a downscaled copy, not the image
	valid   []bool  // when set, only these pixels are clustered

	coarseColours []byte // the sample's colours on a 64-level grid, for many starts
	coarseWeights []int32
}

// newPixelSet prepares img for k-means. With valid set (one entry per
// pixel), only those pixels are clustered; the others get the label
// Excluded.
func newPixelSet(img gocv.Mat, space Space, samplePixels int, valid []bool) (*pixelSet, error) {
	if err := checkBGR(img); err != nil {
		return nil, err
	}
	if valid != nil && len(valid) != img.Cols()*img.Rows() {
		return nil, fmt.Errorf("k-means: %d validity flags for %dx%d pixels", len(valid), img.Cols(), img.Rows())
	}
	if samplePixels <= 0 {
		samplePixels = DefaultSamplePixels
	}
	w, h := img.Cols(), img.Rows()
	full, err := toSpace(img, space)
	if err != nil {
		return nil, err
	}
	defer full.Close()
	ps := &pixelSet{w: w, h: h, space: space, full: full.ToBytes(), valid: valid}
	ps.bgr = ps.full
	if space != SpaceBGR {
		ps.bgr = img.ToBytes()
	}

	// The copy k-means sees.
	pix := ps.full
	if valid != nil {
		// A regular subsample of the valid pixels (a downscaled copy would
		// blend them with the excluded ones).
		n := 0
		for _, v := range valid {
			if v {
				n++
			}
		}
		step := max(1, (n+samplePixels-1)/samplePixels)
		pix = make([]byte, 0, 3*(n/step+1))
		i := 0
		for p, v := range valid {
			if v {
				if i%step == 0 {
					pix = append(pix, ps.full[3*p:3*p+3]...)
				}
				i++
			}
		}
		ps.sampled = step > 1
	} else if w*h > samplePixels {
		f := math.Sqrt(float64(samplePixels) / float64(w*h))
		sw, sh := max(1, int(float64(w)*f)), max(1, int(float64(h)*f))
		small := gocv.NewMat()
		gocv.Resize(full, &small, image.Pt(sw, sh), 0, 0, gocv.InterpolationArea)
		pix = small.ToBytes()
		small.Close()
		ps.sampled = true
	}
	// k-means runs on the distinct colours, each weighted by its pixel
	// count: the same result as on every pixel, at a third of the cost
	// after the blur (about 20 000 colours in a 257x257 crop).
	ps.colours, ps.weights = distinctColours(pix)
	return ps, nil
}

// maxK is the most clusters a k-means run may ask for.
const maxK = 16

func (ps *pixelSet) cluster(k int, seed uint64, attempts int, converge bool) (*Clusters, error) {
	if k < 2 || k > maxK {
		return nil, fmt.Errorf("k-means: k=%d, want 2..%d", k, maxK)
	}
	if len(ps.weights) < k {
		return nil, fmt.Errorf("k-means: the image has %d distinct colours, too few for k=%d", len(ps.weights), k)
	}
	var centers [][3]float64
	if attempts <= 1 || len(ps.weights) < 4*k {
		centers = kmeansPP(ps.colours, ps.weights, k, seed, 0)
	} else {
		if ps.coarseColours == nil {
			ps.coarseColours, ps.coarseWeights = coarseColours(ps.colours, ps.weights)
		}
		best := math.Inf(1)
		for a := range attempts {
			c := kmeansPP(ps.coarseColours, ps.coarseWeights, k, seed, uint64(a))
			if len(ps.coarseWeights) >= k {
				lloyd(ps.coarseColours, ps.coarseWeights, c, maxLloydIterations)
			}
			if in := inertia(ps.coarseColours, ps.coarseWeights, c); in < best {
				best, centers = in, c
			}
		}
	}
	lloyd(ps.colours, ps.weights, centers, maxLloydIterations)
	if ps.sampled && converge && ps.valid == nil {
		colours, weights := distinctColours(ps.full)
		lloyd(colours, weights, centers, maxLloydIterations)
	}
	c := &Clusters{K: k, W: ps.w, H: ps.h, Space: ps.space,
		Centers: make([][3]float32, k), Counts: make([]int, k)}
	for i, ctr := range centers {
		c.Centers[i] = [3]float32{float32(ctr[0]), float32(ctr[1]), float32(ctr[2])}
	}
	sortCenters(c.Centers)
	c.Labels, c.BGR = assignNearest(ps.full, ps.bgr, c.Centers, c.Counts, ps.valid)
	return c, nil
}

// coarseColours maps weighted colours onto a grid of 64 levels a channel
// (each to the middle of its cell) and merges those that fall together.
func coarseColours(colours []byte, weights []int32) ([]byte, []int32) {
	pix := make([]byte, len(colours))
	for i, v := range colours {
		pix[i] = v&^3 | 2
	}
	// distinctColours counts pixels; here each entry stands for weight of
	// them, so expand by weight through a second merge pass.
	idx := make(map[[3]byte]int, len(weights)/4)
	var outC []byte
	var outW []int32
	for p, w := range weights {
		key := [3]byte{pix[3*p], pix[3*p+1], pix[3*p+2]}
		j, ok := idx[key]
		if !ok {
			j = len(outW)
			idx[key] = j
			outC = append(outC, key[:]...)
			outW = append(outW, 0)
		}
		outW[j] += w
	}
	return outC, outW
}

// inertia is the weighted sum of squared distances of colours to their
// nearest centre: what k-means minimises.
func inertia(colours []byte, weights []int32, centers [][3]float64) float64 {
	var sum float64
	for p, w := range weights {
		x0, x1, x2 := float64(colours[3*p]), float64(colours[3*p+1]), float64(colours[3*p+2])
		best := math.MaxFloat64
		for _, c := range centers {
			e0, e1, e2 := x0-c[0], x1-c[1], x2-c[2]
			best = min(best, e0*e0+e1*e1+e2*e2)
		}
		sum += float64(w) * best
	}
	return sum
}

// distinctColours returns the distinct 3-byte pixels of pix, sorted, and
// how many times each occurs. A radix sort on the 24-bit colour keeps it
// linear.
func distinctColours(pix []byte) ([]byte, []int32) {
	n := len(pix) / 3
	keys := make([]uint32, n)
	for p := range n {
		keys[p] = uint32(pix[3*p])<<16 | uint32(pix[3*p+1])<<8 | uint32(pix[3*p+2])
	}
	tmp := make([]uint32, n)
	for shift := 0; shift < 24; shift += 8 {
		var count [257]int
		for _, k := range keys {
			count[(k>>shift)&0xff+1]++
		}
		for i := 1; i < 257; i++ {
			count[i] += count[i-1]
		}
		for _, k := range keys {
			b := (k >> shift) & 0xff
			tmp[count[b]] = k
			count[b]++
		}
		keys, tmp = tmp, keys
	}
	colours := make([]byte, 0, 3*n/2)
	weights := make([]int32, 0, n/2)
	for i, k := range keys {
		if i > 0 && k == keys[i-1] {
			weights[len(weights)-1]++
			continue
		}
		colours = append(colours, byte(k>>16), byte(k>>8), byte(k))
		weights = append(weights, 1)
	}
	return colours, weights
}

// kmeansScratch holds the per-colour buffers of one k-means run; pooled
// because Algorithm 1 runs thousands of them on images of one size.
type kmeansScratch struct {
	labels       []uint8
	upper, lower []float64
}

var kmeansScratchPool sync.Pool

func getKMeansScratch(n int) *kmeansScratch {
	sc, _ := kmeansScratchPool.Get().(*kmeansScratch)
	if sc == nil {
		sc = &kmeansScratch{}
	}
	sc.labels, sc.upper, sc.lower = grow(sc.labels, n), grow(sc.upper, n), grow(sc.lower, n)
	return sc
}

// lloyd runs Lloyd's k-means iterations on weighted 3-byte colours from the
// given centres until no colour changes cluster or maxIter passes, leaving
// the centres at the weighted means of their colours. A cluster that loses
// every colour keeps its centre.
//
// It is Hamerly's exact acceleration (SIAM SDM 2010): each colour keeps an
// upper bound on the distance to its centre and a lower bound on the
// distance to any other; when centres move little, most colours are proved
// to stay without computing a distance. The assignments are Lloyd's.
func lloyd(colours []byte, weights []int32, centers [][3]float64, maxIter int) {
	n, k := len(weights), len(centers)
	sc := getKMeansScratch(n)
	defer kmeansScratchPool.Put(sc)
	labels, upper, lower := sc.labels, sc.upper, sc.lower
	sums := make([][3]int64, k)
	counts := make([]int64, k)
	moved := make([]float64, k)
	half := make([]float64, k) // half the distance to the nearest other centre

	// nearest returns the nearest centre and the distances to it and to the
	// second nearest.
	nearest := func(x0, x1, x2 float64) (int, float64, float64) {
		best, d1, d2 := 0, math.MaxFloat64, math.MaxFloat64
		for i := range k {
			c := &centers[i]
			e0, e1, e2 := x0-c[0], x1-c[1], x2-c[2]
			d := e0*e0 + e1*e1 + e2*e2
			if d < d1 {
				best, d1, d2 = i, d, d1
			} else if d < d2 {
				d2 = d
			}
		}
		return best, math.Sqrt(d1), math.Sqrt(d2)
	}
	for p, wt := range weights {
		x0, x1, x2 := colours[3*p], colours[3*p+1], colours[3*p+2]
		best, d1, d2 := nearest(float64(x0), float64(x1), float64(x2))
		labels[p], upper[p], lower[p] = uint8(best), d1, d2
		w := int64(wt)
		sums[best][0] += w * int64(x0)
		sums[best][1] += w * int64(x1)
		sums[best][2] += w * int64(x2)
		counts[best] += w
	}
	for it := 1; it < maxIter; it++ {
		var maxMove float64
		for i := range k {
			moved[i] = 0
			if counts[i] == 0 {
				continue
			}
			cnt := float64(counts[i])
			c := [3]float64{float64(sums[i][0]) / cnt, float64(sums[i][1]) / cnt, float64(sums[i][2]) / cnt}
			e0, e1, e2 := c[0]-centers[i][0], c[1]-centers[i][1], c[2]-centers[i][2]
			moved[i] = math.Sqrt(e0*e0 + e1*e1 + e2*e2)
			maxMove = max(maxMove, moved[i])
			centers[i] = c
		}
		for i := range k {
			half[i] = math.MaxFloat64
			for j := range k {
				if j != i {
					e0, e1, e2 := centers[i][0]-centers[j][0], centers[i][1]-centers[j][1], centers[i][2]-centers[j][2]
					half[i] = min(half[i], 0.5*math.Sqrt(e0*e0+e1*e1+e2*e2))
				}
			}
		}
		changed := 0
		for p := range weights {
			a := labels[p]
			upper[p] += moved[a]
			lower[p] -= maxMove
			z := max(lower[p], half[a])
			if upper[p] <= z {
				continue
			}
			x0, x1, x2 := float64(colours[3*p]), float64(colours[3*p+1]), float64(colours[3*p+2])
			c := &centers[a]
			e0, e1, e2 := x0-c[0], x1-c[1], x2-c[2]
			upper[p] = math.Sqrt(e0*e0 + e1*e1 + e2*e2)
			if upper[p] <= z {
				continue
			}
			best, d1, d2 := nearest(x0, x1, x2)
			upper[p], lower[p] = d1, d2
			if uint8(best) == a {
				continue
			}
			changed++
			labels[p] = uint8(best)
			w := int64(weights[p])
			for ch, v := range [3]int64{int64(x0), int64(x1), int64(x2)} {
				sums[a][ch] -= w * v
				sums[best][ch] += w * v
			}
			counts[a] -= w
			counts[best] += w
		}
		if changed == 0 {
			break
		}
	}
	// Leave the centres at the means of the final clusters.
	for i := range k {
		if counts[i] > 0 {
			cnt := float64(counts[i])
			centers[i] = [3]float64{float64(sums[i][0]) / cnt, float64(sums[i][1]) / cnt, float64(sums[i][2]) / cnt}
		}
	}
}

// sortCenters orders centres by their first channel then the rest, so that a
// cluster's index does not depend on the initialisation.
func sortCenters(cs [][3]float32) {
	for i := 1; i < len(cs); i++ {
		for j := i; j > 0 && less3(cs[j], cs[j-1]); j-- {
			cs[j], cs[j-1] = cs[j-1], cs[j]
		}
	}
}

func less3(a, b [3]float32) bool {
	for i := range 3 {
		if a[i] != b[i] {
			return a[i] < b[i]
		}
	}
	return false
}

// assignNearest gives every pixel (3 bytes in pix) the index of its nearest
// centre, counts the pixels of each cluster and returns each cluster's mean
// colour in BGR (from bgr, the same pixels in the image's own colours).
// Pixels not valid (when valid is set) get Excluded. A large image is split
// between goroutines.
func assignNearest(pix, bgr []byte, centers [][3]float32, counts []int, valid []bool) ([]uint8, [][3]float32) {
	n := len(pix) / 3
	labels := make([]uint8, n)
	k := len(centers)
	parts := 1
	if n >= 1<<20 {
		parts = min(runtime.GOMAXPROCS(0), 8)
	}
	type tally struct {
		counts [maxK]int
		sums   [maxK][3]int64
	}
	tallies := make([]tally, parts)
	var wg sync.WaitGroup
	for part := range parts {
		wg.Go(func() {
			t := &tallies[part]
			for p := part * n / parts; p < (part+1)*n/parts; p++ {
				if valid != nil && !valid[p] {
					labels[p] = Excluded
					continue
				}
				b, g, r := float32(pix[3*p]), float32(pix[3*p+1]), float32(pix[3*p+2])
				best, bestD := 0, float32(math.MaxFloat32)
				for i := range k {
					c := &centers[i]
					d0, d1, d2 := b-c[0], g-c[1], r-c[2]
					if d := d0*d0 + d1*d1 + d2*d2; d < bestD {
						best, bestD = i, d
					}
				}
				labels[p] = uint8(best)
				t.counts[best]++
				s := &t.sums[best]
				s[0] += int64(bgr[3*p])
				s[1] += int64(bgr[3*p+1])
				s[2] += int64(bgr[3*p+2])
			}
		})
	}
	wg.Wait()
	means := make([][3]float32, k)
	for i := range k {
		var sum [3]int64
		for _, t := range tallies {
			counts[i] += t.counts[i]
			for ch := range 3 {
				sum[ch] += t.sums[i][ch]
			}
		}
		if counts[i] > 0 {
			c := float64(counts[i])
			means[i] = [3]float32{float32(float64(sum[0]) / c), float32(float64(sum[1]) / c), float32(float64(sum[2]) / c)}
		}
	}
	return labels, means
}

// kmeansPP picks k initial centres among weighted 3-byte colours by
// k-means++ (Arthur and Vassilvitskii 2007) with a seeded generator: as if
// choosing among the pixels, each colour is drawn in proportion to its
// weight times its squared distance to the nearest centre chosen so far.
func kmeansPP(colours []byte, weights []int32, k int, seed, attempt uint64) [][3]float64 {
	n := len(weights)
	rng := rand.New(rand.NewPCG(seed, 0x616c6c7363726565+attempt)) // "allscree"
	at := func(i int) [3]float64 {
		return [3]float64{float64(colours[3*i]), float64(colours[3*i+1]), float64(colours[3*i+2])}
	}
	pick := func(score func(i int) float64, total float64) int {
		r := rng.Float64() * total
		for i := range n {
			r -= score(i)
			if r <= 0 {
				return i
			}
		}
		return n - 1 // rounding left r a hair above zero
	}
	var pixels float64
	for _, w := range weights {
		pixels += float64(w)
	}
	centers := make([][3]float64, 0, k)
	centers = append(centers, at(pick(func(i int) float64 { return float64(weights[i]) }, pixels)))
	sc := getKMeansScratch(n)
	defer kmeansScratchPool.Put(sc)
	d2 := sc.upper
	for i := range d2 {
		d2[i] = math.Inf(1)
	}
	for len(centers) < k {
		c := centers[len(centers)-1]
		var total float64
		for i := range n {
			d0, d1, d2i := float64(colours[3*i])-c[0], float64(colours[3*i+1])-c[1], float64(colours[3*i+2])-c[2]
			if d := d0*d0 + d1*d1 + d2i*d2i; d < d2[i] {
				d2[i] = d
			}
			total += float64(weights[i]) * d2[i]
		}
		if total == 0 { // fewer distinct colours than k: repeat one
			centers = append(centers, c)
			continue
		}
		centers = append(centers, at(pick(func(i int) float64 { return float64(weights[i]) * d2[i] }, total)))
	}
	return centers
}

func toSpace(img gocv.Mat, s Space) (gocv.Mat, error) {
	switch s {
	case SpaceBGR:
		return img.Clone(), nil
	case SpaceLab:
		out := gocv.NewMat()
		gocv.CvtColor(img, &out, gocv.ColorBGRToLab)
		return out, nil
	case SpaceHSV:
		out := gocv.NewMat()
		gocv.CvtColor(img, &out, gocv.ColorBGRToHSV)
		return out, nil
	case SpaceOD:
		pix := img.ToBytes()
		for i, v := range pix {
			pix[i] = odLevels[v]
		}
		return NewMatCopy(img.Rows(), img.Cols(), gocv.MatTypeCV8UC3, pix)
	}
	return gocv.Mat{}, fmt.Errorf("unknown colour space %d", int(s))
}

// odLevels maps an 8-bit intensity to its optical density, 0 (white) to 255
// (black): -log((v+1)/256) / log(256) * 255.
var odLevels = func() [256]uint8 {
	var t [256]uint8
	for v := range t {
		t[v] = uint8(math.Round(-math.Log((float64(v)+1)/256) / math.Log(256) * 255))
	}
	return t
}()

// checkBGR guards OpenCV calls that abort the process on a wrong Mat.
func checkBGR(img gocv.Mat) error {
	if img.Empty() {
		return fmt.Errorf("empty image")
	}
	if img.Type() != gocv.MatTypeCV8UC3 {
		return fmt.Errorf("image type %d, want 8-bit BGR", img.Type())
	}
	if img.Cols() < 1 || img.Rows() < 1 {
		return fmt.Errorf("image is %dx%d", img.Cols(), img.Rows())
	}
	return nil
}
