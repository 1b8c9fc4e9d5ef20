package vision

import (
	"fmt"
	"image"
	"math"
	"math/rand/v2"

	"gocv.io/x/gocv"
)

// OpenCV's own flag values. gocv v0.25.0 names them wrongly (its
// KMeansPPCenters is OpenCV's KMEANS_USE_INITIAL_LABELS).
const (
	cvKMeansUseInitialLabels gocv.KMeansFlags = 1
)

// Space is the colour space in which pixels are clustered.
type Space int

const (
	SpaceBGR Space = iota // the camera's own channels, as the paper
	SpaceLab              // CIE L*a*b* (OpenCV's 8-bit encoding)
	SpaceHSV              // OpenCV's 8-bit HSV (hue 0..179)
)

func (s Space) String() string {
	switch s {
	case SpaceBGR:
		return "rgb"
	case SpaceLab:
		return "lab"
	case SpaceHSV:
		return "hsv"
	}
	return fmt.Sprintf("Space(%d)", int(s))
}

// ParseSpace reads a colour space name as printed by Space.String.
func ParseSpace(s string) (Space, error) {
	for _, sp := range []Space{SpaceBGR, SpaceLab, SpaceHSV} {
		if s == sp.String() {
			return sp, nil
		}
	}
	return 0, fmt.Errorf("unknown colour space %q (want rgb, lab or hsv)", s)
}

// KMeansOptions configures Cluster.
type KMeansOptions struct {
	K     int   // number of clusters, 2..16
	Space Space // colour space clustered in
	Seed  uint64
	// SamplePixels bounds the pixels k-means itself sees: a larger image is
	// clustered on an area-downscaled copy, then every full-resolution pixel
	// takes its nearest centre. 0 means DefaultSamplePixels.
	SamplePixels int
}

// DefaultSamplePixels is enough to place 2..6 colour centres stably (a
// 257x257 crop is clustered whole) while keeping a 5 MP field cheap.
const DefaultSamplePixels = 1 << 16

// Clusters is the result of colour k-means on one image.
type Clusters struct {
	K       int
	W, H    int
	Space   Space
	Centers [][3]float32 // centres in Space, 0..255 per channel
	BGR     [][3]float32 // the same centres as mean BGR colours
	Labels  []uint8      // cluster index per pixel, row-major, len W*H
	Counts  []int        // pixels per cluster
}

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
// chosen by k-means++ from a seeded generator, then OpenCV refines them.
func Cluster(img gocv.Mat, opt KMeansOptions) (*Clusters, error) {
	if err := checkBGR(img); err != nil {
		return nil, err
	}
	if opt.K < 2 || opt.K > 16 {
		return nil, fmt.Errorf("k-means: k=%d, want 2..16", opt.K)
	}
	if opt.SamplePixels <= 0 {
		opt.SamplePixels = DefaultSamplePixels
	}
	w, h := img.Cols(), img.Rows()

	full, err := toSpace(img, opt.Space)
	if err != nil {
		return nil, err
	}
	defer full.Close()

	// The copy k-means sees.
	small := full
	if w*h > opt.SamplePixels {
		f := math.Sqrt(float64(opt.SamplePixels) / float64(w*h))
		sw, sh := max(1, int(float64(w)*f)), max(1, int(float64(h)*f))
		small = gocv.NewMat()
		defer small.Close()
		gocv.Resize(full, &small, image.Pt(sw, sh), 0, 0, gocv.InterpolationArea)
	}
	pix := small.ToBytes()
	n := len(pix) / 3
	if n < opt.K {
		return nil, fmt.Errorf("k-means: %d pixels for k=%d", n, opt.K)
	}

	samples := make([]float32, 3*n)
	for i, v := range pix {
		samples[i] = float32(v)
	}
	init := kmeansPPLabels(samples, opt.K, opt.Seed)

	data, err := NewMatCopy(n, 3, gocv.MatTypeCV32F, float32Bytes(samples))
	if err != nil {
		return nil, fmt.Errorf("k-means: %w", err)
	}
	defer data.Close()
	labels, err := NewMatCopy(n, 1, gocv.MatTypeCV32S, int32Bytes(init))
	if err != nil {
		return nil, fmt.Errorf("k-means: %w", err)
	}
	defer labels.Close()
	centers := gocv.NewMat()
	defer centers.Close()
	crit := gocv.NewTermCriteria(gocv.Count|gocv.EPS, 20, 0.5)
	gocv.KMeans(data, opt.K, &labels, crit, 1, cvKMeansUseInitialLabels, &centers)
	cf, err := centers.DataPtrFloat32()
	if err != nil || len(cf) != 3*opt.K {
		return nil, fmt.Errorf("k-means returned %d centre values, want %d", len(cf), 3*opt.K)
	}

	c := &Clusters{K: opt.K, W: w, H: h, Space: opt.Space,
		Centers: make([][3]float32, opt.K), Counts: make([]int, opt.K)}
	for i := range c.Centers {
		c.Centers[i] = [3]float32{cf[3*i], cf[3*i+1], cf[3*i+2]}
	}
	sortCenters(c.Centers)
	c.Labels = assignNearest(full.ToBytes(), c.Centers, c.Counts)
	c.BGR = meanBGR(img, c)
	return c, nil
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

// assignNearest gives every pixel (3 bytes) the index of its nearest centre.
func assignNearest(pix []byte, centers [][3]float32, counts []int) []uint8 {
	n := len(pix) / 3
	labels := make([]uint8, n)
	k := len(centers)
	for p := range n {
		b, g, r := float32(pix[3*p]), float32(pix[3*p+1]), float32(pix[3*p+2])
		best, bestD := 0, float32(math.MaxFloat32)
		for i := range k {
			c := &centers[i]
			d0, d1, d2 := b-c[0], g-c[1], r-c[2]
			d := d0*d0 + d1*d1 + d2*d2
			if d < bestD {
				best, bestD = i, d
			}
		}
		labels[p] = uint8(best)
		counts[best]++
	}
	return labels
}

// meanBGR computes each cluster's mean colour in BGR, whatever Space was.
func meanBGR(img gocv.Mat, c *Clusters) [][3]float32 {
	pix := img.ToBytes()
	sums := make([][3]float64, c.K)
	for p, l := range c.Labels {
		sums[l][0] += float64(pix[3*p])
		sums[l][1] += float64(pix[3*p+1])
		sums[l][2] += float64(pix[3*p+2])
	}
	out := make([][3]float32, c.K)
	for i := range out {
		if c.Counts[i] == 0 {
			continue
		}
		n := float64(c.Counts[i])
		out[i] = [3]float32{float32(sums[i][0] / n), float32(sums[i][1] / n), float32(sums[i][2] / n)}
	}
	return out
}

// kmeansPPLabels picks k initial centres by k-means++ (Arthur and
// Vassilvitskii 2007) with a seeded generator, and returns the initial label
// of every sample (its nearest chosen centre).
func kmeansPPLabels(samples []float32, k int, seed uint64) []int32 {
	n := len(samples) / 3
	rng := rand.New(rand.NewPCG(seed, 0x616c6c7363726565)) // "allscree"
	centers := make([][3]float32, 0, k)
	first := rng.IntN(n)
	centers = append(centers, [3]float32{samples[3*first], samples[3*first+1], samples[3*first+2]})
	d2 := make([]float64, n)
	for i := range d2 {
		d2[i] = math.Inf(1)
	}
	for len(centers) < k {
		c := centers[len(centers)-1]
		var total float64
		for i := range n {
			d := sq(samples[3*i]-c[0]) + sq(samples[3*i+1]-c[1]) + sq(samples[3*i+2]-c[2])
			if d < d2[i] {
				d2[i] = d
			}
			total += d2[i]
		}
		next := 0
		if total > 0 {
			r := rng.Float64() * total
			for i := range n {
				r -= d2[i]
				if r <= 0 {
					next = i
					break
				}
			}
		} else {
			next = rng.IntN(n) // all samples equal: any choice is as good
		}
		centers = append(centers, [3]float32{samples[3*next], samples[3*next+1], samples[3*next+2]})
	}
	labels := make([]int32, n)
	for i := range n {
		best, bestD := 0, math.Inf(1)
		for j, c := range centers {
			d := sq(samples[3*i]-c[0]) + sq(samples[3*i+1]-c[1]) + sq(samples[3*i+2]-c[2])
			if d < bestD {
				best, bestD = j, d
			}
		}
		labels[i] = int32(best)
	}
	return labels
}

func sq(v float32) float64 { return float64(v) * float64(v) }

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
	}
	return gocv.Mat{}, fmt.Errorf("unknown colour space %d", int(s))
}

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
