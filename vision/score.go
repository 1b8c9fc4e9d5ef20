package vision

import (
	"fmt"
	"image"
	"math"
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

// binaryRows runs the horizontal pass over a mask (any non-zero pixel counts
// as 255) or, with and set, over the intersection of two masks. It returns h
// rows of w-10 window sums.
func (f *ssimFilter) binaryRows(m, and []uint8) []float64 {
	ow := f.w - 2*ssimRadius
	bits := make([]uint, f.w)
	for r := range f.h {
		row := m[r*f.w : (r+1)*f.w]
		if and != nil {
			andRow := and[r*f.w : (r+1)*f.w]
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
		out := f.tmp[r*ow : (r+1)*ow]
		in := bits[ssimTaps-1:]
		in = in[:len(out)]
		for c := range out {
			v = (v<<1 | in[c]) & (1<<ssimTaps - 1)
			out[c] = ssimBitSums[v]
		}
	}
	return f.tmp
}

func b2u(b bool) uint {
	if b {
		return 1
	}
	return 0
}

// binary filters a mask completely (see binaryRows).
func (f *ssimFilter) binary(m, and []uint8) []float64 {
	f.binaryRows(m, and)
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
// it (Algorithm 1 scores every cluster at every k against one mask).
type Truth struct {
	mask    *Mask
	area    int
	uy, uyy []float64 // filtered truth and its square (nil below MinSSIMSide)
}

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
	// A 0/255 image squared is 255 times itself, so its filtered square is
	// 255 times its filtered self.
	t.uyy = make([]float64, len(t.uy))
	for i, v := range t.uy {
		t.uyy[i] = ssimRange * v
	}
	return t, nil
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

// ssim is the binary fast path, fused: the horizontal passes of the
// candidate and of its intersection with the truth, then per output row the
// vertical pass and the SSIM sum, without storing the filtered images.
func (t *Truth) ssim(pred *Mask) float64 {
	w, h := pred.W, pred.H
	ow, oh := w-2*ssimRadius, h-2*ssimRadius
	fx, fxy := newSSIMFilter(w, h), newSSIMFilter(w, h)
	tx := fx.binaryRows(pred.Pix, nil)
	txy := fxy.binaryRows(pred.Pix, t.mask.Pix)
	ux, uxy := make([]float64, ow), make([]float64, ow)
	var sum float64
	for r := range oh {
		verticalRow(ux, tx[r*ow:], ow)
		verticalRow(uxy, txy[r*ow:], ow)
		uy, uyy := t.uy[r*ow:(r+1)*ow], t.uyy[r*ow:(r+1)*ow]
		uxy := uxy[:len(uy)]
		for c, mx := range ux[:len(uy)] {
			my := uy[c]
			// The candidate is 0/255, so its filtered square is 255 mx;
			// the filtered product is 255 times the filtered intersection.
			vx, vy, vxy := ssimRange*mx-mx*mx, uyy[c]-my*my, ssimRange*uxy[c]-mx*my
			sum += (2*mx*my + ssimC1) * (2*vxy + ssimC2) / ((mx*mx + my*my + ssimC1) * (vx + vy + ssimC2))
		}
	}
	return sum / float64(ow*oh)
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
