package vision

import (
	"fmt"
	"image"
	"math"
	"sync"
)

// Scores compares a candidate segment with a ground-truth mask, as the
// paper does (its Algorithm 1).
type Scores struct {
	SSIM float64 // structural similarity of the two masks as 0/255 images
	Dice float64 // 2|A∩B| / (|A|+|B|)
	IoU  float64 // |A∩B| / |A∪B|
}

// Mean is the paper's "average score": the plain mean of SSIM, Dice and IoU.
func (s Scores) Mean() float64 { return (s.SSIM + s.Dice + s.IoU) / 3 }

// SSIM parameters of Wang et al. 2004, as scikit-image applies them with
// gaussian_weights=True, sigma=1.5, use_sample_covariance=False,
// data_range=255: an 11-tap Gaussian window (scipy's radius
// int(3.5*sigma+0.5) = 5), population covariances, constants
// C1=(0.01*255)^2 and C2=(0.03*255)^2, and the mean of the SSIM map over the
// pixels at least 5 from every edge (skimage crops the filter radius). Only
// those pixels are averaged and their windows lie inside the image, so the
// border mode never matters.
const (
	ssimRadius = 5
	ssimSigma  = 1.5
	ssimRange  = 255.0
	ssimC1     = (0.01 * ssimRange) * (0.01 * ssimRange)
	ssimC2     = (0.03 * ssimRange) * (0.03 * ssimRange)
	ssimTaps   = 2*ssimRadius + 1
)

// MinSSIMSide is the smallest side SSIM accepts: one full window.
const MinSSIMSide = ssimTaps

// ssimWeights is the normalised 11-tap Gaussian, computed as scipy does.
var ssimWeights = func() [ssimTaps]float64 {
	var w [ssimTaps]float64
	var sum float64
	for i := range w {
		x := float64(i - ssimRadius)
		w[i] = math.Exp(-0.5 / (ssimSigma * ssimSigma) * x * x)
		sum += w[i]
	}
	for i := range w {
		w[i] /= sum
	}
	return w
}()

// ssimBitSums[v] is the horizontal window sum for a binary 0/255 row whose
// 11 pixels are the bits of v. The Gaussian is symmetric, so bit order does
// not matter; one lookup replaces 11 multiply-adds.
var ssimBitSums = func() []float64 {
	t := make([]float64, 1<<ssimTaps)
	for v := range t {
		for i := range ssimTaps {
			if v&(1<<i) != 0 {
				t[v] += ssimWeights[i] * ssimRange
			}
		}
	}
	return t
}()

// SSIM is the mean structural similarity of two 8-bit grey images of equal
// size, each side at least MinSSIMSide, with the conventions above.
func SSIM(a, b *image.Gray) (float64, error) {
	w, h := a.Rect.Dx(), a.Rect.Dy()
	if b.Rect.Dx() != w || b.Rect.Dy() != h {
		return 0, fmt.Errorf("ssim: images are %dx%d and %dx%d", w, h, b.Rect.Dx(), b.Rect.Dy())
	}
	if w < MinSSIMSide || h < MinSSIMSide {
		return 0, fmt.Errorf("ssim: image is %dx%d, want at least %dx%d", w, h, MinSSIMSide, MinSSIMSide)
	}
	x := make([]float64, w*h)
	y := make([]float64, w*h)
	for r := range h {
		ra := a.Pix[a.PixOffset(a.Rect.Min.X, a.Rect.Min.Y+r):][:w]
		rb := b.Pix[b.PixOffset(b.Rect.Min.X, b.Rect.Min.Y+r):][:w]
		for c := range w {
			x[r*w+c] = float64(ra[c])
			y[r*w+c] = float64(rb[c])
		}
	}
	prod := func(p, q []float64) []float64 {
		o := make([]float64, len(p))
		for i := range p {
			o[i] = p[i] * q[i]
		}
		return o
	}
	f := newSSIMFilter(w, h)
	ux, uy := f.float(x), f.float(y)
	uxx, uyy, uxy := f.float(prod(x, x)), f.float(prod(y, y)), f.float(prod(x, y))
	return ssimMean(ux, uy, uxx, uyy, uxy), nil
}

// ssimFilter applies the Gaussian window to an image and keeps only the
// valid part: (w-10) x (h-10) values.
type ssimFilter struct {
	w, h int
	tmp  []float64 // horizontal pass: h rows of w-10
}

func newSSIMFilter(w, h int) *ssimFilter {
	return &ssimFilter{w: w, h: h, tmp: make([]float64, h*(w-2*ssimRadius))}
}

func (f *ssimFilter) float(src []float64) []float64 {
	ow := f.w - 2*ssimRadius
	for r := range f.h {
		row := src[r*f.w : (r+1)*f.w]
		out := f.tmp[r*ow : (r+1)*ow]
		for c := range out {
			var s float64
			for t, g := range ssimWeights {
				s += g * row[c+t]
			}
			out[c] = s
		}
	}
	return f.vertical()
}

// horizontalBinary runs the horizontal pass over a mask (any non-zero pixel
// counts as 255) or, with and set, over the intersection of two masks,
// into out: h rows of w-10 window sums.
func horizontalBinary(m, and []uint8, w, h int, out []float64, bits []uint) []float64 {
	ow := w - 2*ssimRadius
	bits = bits[:w]
	for r := range h {
		row := m[r*w : (r+1)*w]
		if and != nil {
			andRow := and[r*w : (r+1)*w]
			for c, v := range row {
				bits[c] = b2u(v != 0 && andRow[c] != 0)
			}
		} else {
			for c, v := range row {
				bits[c] = b2u(v != 0)
			}
		}
		var v uint
		for c := range ssimTaps - 1 {
			v = v<<1 | bits[c]
		}
		o := out[r*ow : (r+1)*ow]
		in := bits[ssimTaps-1:]
		in = in[:len(o)]
		for c := range o {
			v = (v<<1 | in[c]) & (1<<ssimTaps - 1)
			o[c] = ssimBitSums[v]
		}
	}
	return out[:h*ow]
}

func b2u(b bool) uint {
	if b {
		return 1
	}
	return 0
}

// binary filters a mask completely (see horizontalBinary).
func (f *ssimFilter) binary(m, and []uint8) []float64 {
	horizontalBinary(m, and, f.w, f.h, f.tmp, make([]uint, f.w))
	return f.vertical()
}

func (f *ssimFilter) vertical() []float64 {
	ow, oh := f.w-2*ssimRadius, f.h-2*ssimRadius
	out := make([]float64, ow*oh)
	for r := range oh {
		verticalRow(out[r*ow:(r+1)*ow], f.tmp[r*ow:], ow)
	}
	return out
}

// verticalRow sums 11 rows of width ow, starting at in, into o. The window
// is symmetric, so mirrored rows are added before multiplying.
func verticalRow(o, in []float64, ow int) {
	g := &ssimWeights
	r0, r1, r2, r3, r4 := in[:ow], in[ow:2*ow], in[2*ow:3*ow], in[3*ow:4*ow], in[4*ow:5*ow]
	r5 := in[5*ow : 6*ow]
	r6, r7, r8, r9, r10 := in[6*ow:7*ow], in[7*ow:8*ow], in[8*ow:9*ow], in[9*ow:10*ow], in[10*ow:11*ow]
	o = o[:ow]
	for c := range o {
		o[c] = g[0]*(r0[c]+r10[c]) + g[1]*(r1[c]+r9[c]) + g[2]*(r2[c]+r8[c]) +
			g[3]*(r3[c]+r7[c]) + g[4]*(r4[c]+r6[c]) + g[5]*r5[c]
	}
}

// ssimMean combines filtered moments into the mean SSIM.
func ssimMean(ux, uy, uxx, uyy, uxy []float64) float64 {
	var sum float64
	for i := range ux {
		mx, my := ux[i], uy[i]
		vx, vy, vxy := uxx[i]-mx*mx, uyy[i]-my*my, uxy[i]-mx*my
		sum += (2*mx*my + ssimC1) * (2*vxy + ssimC2) / ((mx*mx + my*my + ssimC1) * (vx + vy + ssimC2))
	}
	return sum / float64(len(ux))
}

// Truth is a ground-truth mask prepared for scoring many candidates against
// it (Algorithm 1 scores every cluster at every k against one mask). It is
// safe for concurrent use.
type Truth struct {
	mask *Mask
	area int
	uy   []float64 // the filtered truth, (w-10) x (h-10)
	kind []uint8   // per SSIM window of the truth: windowEmpty, windowFull or windowMixed
}

// The SSIM of two 0/255 masks needs the full computation only where both
// windows hold both values; elsewhere a variance or covariance is zero and
// the formula shortens. Most windows of a cell mask are all one value.
const (
	windowEmpty uint8 = iota
	windowFull
	windowMixed
)

// NewTruth prepares a ground-truth mask (any non-zero pixel is foreground).
func NewTruth(m *Mask) (*Truth, error) {
	if err := m.check(); err != nil {
		return nil, fmt.Errorf("ground truth: %w", err)
	}
	if m.W < MinSSIMSide || m.H < MinSSIMSide {
		return nil, fmt.Errorf("ground truth is %dx%d: SSIM needs at least %dx%d", m.W, m.H, MinSSIMSide, MinSSIMSide)
	}
	t := &Truth{mask: m, area: m.Area()}
	t.uy = newSSIMFilter(m.W, m.H).binary(m.Pix, nil)
	ii := make([]int32, (m.W+1)*(m.H+1))
	integral(m.Pix, m.W, m.H, ii)
	ow, oh := m.W-2*ssimRadius, m.H-2*ssimRadius
	t.kind = make([]uint8, ow*oh)
	for r := range oh {
		for c := range ow {
			t.kind[r*ow+c] = windowKind(ii, m.W+1, r, c)
		}
	}
	return t, nil
}

// integral writes the summed-area table of a mask's set pixels: ii has
// (w+1) x (h+1) entries, ii[y][x] counting the pixels above and left of
// (x, y).
func integral(pix []uint8, w, h int, ii []int32) {
	stride := w + 1
	clear(ii[:stride])
	for y := range h {
		row := pix[y*w : (y+1)*w]
		prev, cur := ii[y*stride:(y+1)*stride], ii[(y+1)*stride:(y+2)*stride]
		cur[0] = 0
		var run int32
		for x, v := range row {
			if v != 0 {
				run++
			}
			cur[x+1] = prev[x+1] + run
		}
	}
}

// windowKind classifies the SSIM window whose top-left pixel is (c, r).
func windowKind(ii []int32, stride, r, c int) uint8 {
	n := ii[(r+ssimTaps)*stride+c+ssimTaps] - ii[r*stride+c+ssimTaps] - ii[(r+ssimTaps)*stride+c] + ii[r*stride+c]
	switch n {
	case 0:
		return windowEmpty
	case ssimTaps * ssimTaps:
		return windowFull
	}
	return windowMixed
}

// ssimScratch holds one Score call's buffers; they are pooled because
// Algorithm 1 scores thousands of candidates of one size.
type ssimScratch struct {
	tx, txy []float64
	ii      []int32
	bits    []uint
}

var ssimScratchPool sync.Pool

func getSSIMScratch(w, h int) *ssimScratch {
	sc, _ := ssimScratchPool.Get().(*ssimScratch)
	if sc == nil {
		sc = &ssimScratch{}
	}
	n := h * (w - 2*ssimRadius)
	sc.tx, sc.txy = grow(sc.tx, n), grow(sc.txy, n)
	sc.ii = grow(sc.ii, (w+1)*(h+1))
	sc.bits = grow(sc.bits, w)
	return sc
}

func grow[T any](s []T, n int) []T {
	if cap(s) < n {
		return make([]T, n)
	}
	return s[:n]
}

// Score compares a candidate mask with the truth.
func (t *Truth) Score(pred *Mask) (Scores, error) {
	if err := pred.check(); err != nil {
		return Scores{}, fmt.Errorf("score: %w", err)
	}
	if pred.W != t.mask.W || pred.H != t.mask.H {
		return Scores{}, fmt.Errorf("score: mask is %dx%d, ground truth %dx%d", pred.W, pred.H, t.mask.W, t.mask.H)
	}
	inter, area := 0, 0
	for i, v := range pred.Pix {
		if v != 0 {
			area++
			if t.mask.Pix[i] != 0 {
				inter++
			}
		}
	}
	s := diceIoU(inter, area, t.area)
	s.SSIM = t.ssim(pred)
	return s, nil
}

// ssim is the binary fast path. With both images 0/255, a filtered square
// is 255 times the filtered image and the filtered product 255 times the
// filtered intersection; where either window is all one value its variance
// and the covariance vanish. So the vertical pass runs only for the windows
// that need it.
func (t *Truth) ssim(pred *Mask) float64 {
	w, h := pred.W, pred.H
	ow, oh := w-2*ssimRadius, h-2*ssimRadius
	sc := getSSIMScratch(w, h)
	defer ssimScratchPool.Put(sc)
	integral(pred.Pix, w, h, sc.ii)
	tx := horizontalBinary(pred.Pix, nil, w, h, sc.tx, sc.bits)
	var txy []float64 // the intersection, filtered horizontally on first need
	full := ssimRange * ssimWeightSum * ssimWeightSum
	const c1c2 = ssimC1 * ssimC2
	var sum float64
	for r := range oh {
		for c := range ow {
			i := r*ow + c
			my := t.uy[i]
			switch windowKind(sc.ii, w+1, r, c) {
			case windowEmpty: // mx = vx = vxy = 0
				sum += c1c2 / ((my*my + ssimC1) * (ssimRange*my - my*my + ssimC2))
				continue
			case windowFull: // mx = 255, vx = vxy = 0
				sum += (2*full*my + ssimC1) * ssimC2 / ((full*full + my*my + ssimC1) * (ssimRange*my - my*my + ssimC2))
				continue
			}
			mx := verticalAt(tx, i, ow)
			vx := ssimRange*mx - mx*mx
			switch t.kind[i] {
			case windowEmpty: // my = vy = vxy = 0
				sum += c1c2 / ((mx*mx + ssimC1) * (vx + ssimC2))
			case windowFull: // my = 255, vy = vxy = 0
				sum += (2*mx*full + ssimC1) * ssimC2 / ((mx*mx + full*full + ssimC1) * (vx + ssimC2))
			default:
				if txy == nil {
					txy = horizontalBinary(pred.Pix, t.mask.Pix, w, h, sc.txy, sc.bits)
				}
				vy := ssimRange*my - my*my
				vxy := ssimRange*verticalAt(txy, i, ow) - mx*my
				sum += (2*mx*my + ssimC1) * (2*vxy + ssimC2) / ((mx*mx + my*my + ssimC1) * (vx + vy + ssimC2))
			}
		}
	}
	return sum / float64(ow*oh)
}

// ssimWeightSum is the sum of the normalised window, 1 up to rounding.
var ssimWeightSum = func() float64 {
	var s float64
	for _, g := range ssimWeights {
		s += g
	}
	return s
}()

// verticalAt is the vertical pass at one output pixel i of a horizontally
// filtered image of width ow (the window is symmetric).
func verticalAt(t []float64, i, ow int) float64 {
	g := &ssimWeights
	return g[0]*(t[i]+t[i+10*ow]) + g[1]*(t[i+ow]+t[i+9*ow]) + g[2]*(t[i+2*ow]+t[i+8*ow]) +
		g[3]*(t[i+3*ow]+t[i+7*ow]) + g[4]*(t[i+4*ow]+t[i+6*ow]) + g[5]*t[i+5*ow]
}

// Score compares a candidate mask with a ground-truth mask of the same size.
func Score(pred, truth *Mask) (Scores, error) {
	t, err := NewTruth(truth)
	if err != nil {
		return Scores{}, err
	}
	return t.Score(pred)
}

// diceIoU computes Dice and IoU from pixel counts. Two empty masks agree
// perfectly: both are 1.
func diceIoU(inter, a, b int) Scores {
	if a+b == 0 {
		return Scores{Dice: 1, IoU: 1}
	}
	return Scores{
		Dice: 2 * float64(inter) / float64(a+b),
		IoU:  float64(inter) / float64(a+b-inter),
	}
}

// Dice is the Dice similarity coefficient of two masks of equal size.
func Dice(a, b *Mask) (float64, error) {
	inter, na, nb, err := overlap(a, b)
	return diceIoU(inter, na, nb).Dice, err
}

// IoU is the intersection over union (Jaccard index) of two masks.
func IoU(a, b *Mask) (float64, error) {
	inter, na, nb, err := overlap(a, b)
	return diceIoU(inter, na, nb).IoU, err
}

func overlap(a, b *Mask) (inter, na, nb int, err error) {
	if err := a.check(); err != nil {
		return 0, 0, 0, err
	}
	if err := b.check(); err != nil {
		return 0, 0, 0, err
	}
	if a.W != b.W || a.H != b.H {
		return 0, 0, 0, fmt.Errorf("masks are %dx%d and %dx%d", a.W, a.H, b.W, b.H)
	}
	for i, v := range a.Pix {
		if v != 0 {
			na++
			if b.Pix[i] != 0 {
				inter++
			}
		}
		if b.Pix[i] != 0 {
			nb++
		}
	}
	return inter, na, nb, nil
}
