package vision

import (
	"fmt"
	"math"
	"slices"

	"gocv.io/x/gocv"
)

// Mask is a binary image, row-major, 0 or 255 per pixel.
type Mask struct {
	W, H int
	Pix  []uint8
}

// NewMask returns an empty (all 0) mask.
func NewMask(w, h int) *Mask { return &Mask{W: w, H: h, Pix: make([]uint8, w*h)} }

// Area is the number of set pixels.
func (m *Mask) Area() int {
	n := 0
	for _, v := range m.Pix {
		if v != 0 {
			n++
		}
	}
	return n
}

// Mat returns the mask as a CV_8U Mat owned by the caller.
func (m *Mask) Mat() (gocv.Mat, error) {
	return NewMatCopy(m.H, m.W, gocv.MatTypeCV8U, m.Pix)
}

// MaskFromMat copies a CV_8U Mat into a mask, any non-zero pixel set.
func MaskFromMat(mat gocv.Mat) (*Mask, error) {
	if mat.Empty() || mat.Type() != gocv.MatTypeCV8U {
		return nil, fmt.Errorf("mask mat: want non-empty CV_8U, got type %d", mat.Type())
	}
	m := &Mask{W: mat.Cols(), H: mat.Rows(), Pix: mat.ToBytes()}
	for i, v := range m.Pix {
		if v != 0 {
			m.Pix[i] = 255
		}
	}
	return m, nil
}

// morph applies a morphological operation with an elliptical kernel of the
// given diameter (odd, at least 1) and returns a new mask.
func (m *Mask) morph(op gocv.MorphType, diameter int) (*Mask, error) {
	if diameter < 1 {
		return m, nil
	}
	if diameter%2 == 0 {
		diameter++
	}
	src, err := m.Mat()
	if err != nil {
		return nil, err
	}
	defer src.Close()
	k := gocv.GetStructuringElement(gocv.MorphEllipse, pt(diameter, diameter))
	defer k.Close()
	dst := gocv.NewMat()
	defer dst.Close()
	gocv.MorphologyEx(src, &dst, op, k)
	return MaskFromMat(dst)
}

// check reports a mask whose pixels do not match its size.
func (m *Mask) check() error {
	if m == nil {
		return fmt.Errorf("no mask")
	}
	if m.W <= 0 || m.H <= 0 || len(m.Pix) != m.W*m.H {
		return fmt.Errorf("mask of %dx%d holds %d pixels", m.W, m.H, len(m.Pix))
	}
	return nil
}

// CentralComponent keeps, of a crop's mask, the 8-connected component that
// is the crop's own cell: the one holding the centre, else the one with most
// pixels in the central quarter (the middle quarter of each side). Neighbours
// cut by the crop's edge are dropped. It returns nil for a nil or malformed
// mask, and when no component reaches the centre.
func (m *Mask) CentralComponent() *Mask {
	if m.check() != nil {
		return nil
	}
	w, h := m.W, m.H
	labels, regions := labelRegions(m.Pix, w, h)
	best := labels[(h/2)*w+w/2]
	if best == 0 {
		central := make([]int, len(regions)+1)
		for y := h * 3 / 8; y < h*5/8; y++ {
			for _, l := range labels[y*w+w*3/8 : y*w+w*5/8] {
				central[l]++
			}
		}
		most := 0
		for l := 1; l < len(central); l++ {
			if central[l] > most {
				best, most = int32(l), central[l]
			}
		}
	}
	if best == 0 {
		return nil
	}
	out := NewMask(w, h)
	for i, l := range labels {
		if l == best {
			out.Pix[i] = 255
		}
	}
	return out
}

// labelComponents labels the 8-connected components of a mask 1..n (0 is
// unset), row-major.
func labelComponents(m *Mask) ([]int32, int, error) {
	if err := m.check(); err != nil {
		return nil, 0, err
	}
	labels, regions := labelRegions(m.Pix, m.W, m.H)
	return labels, len(regions), nil
}

// fillHoles sets every unset pixel that the unset pixels on the border
// cannot reach (4-connected): the holes.
func fillHoles(m *Mask) *Mask {
	out := &Mask{W: m.W, H: m.H, Pix: slices.Clone(m.Pix)}
	for p, v := range out.Pix {
		if v != 0 {
			out.Pix[p] = 255
		}
	}
	fillEnclosedHoles(out.Pix, out.W, out.H)
	return out
}

// resize scales a mask to w x h with bilinear interpolation and a cut at
// half, which keeps outlines smooth instead of blocky.
func (m *Mask) resize(w, h int) (*Mask, error) {
	src, err := m.Mat()
	if err != nil {
		return nil, err
	}
	defer src.Close()
	dst := gocv.NewMat()
	defer dst.Close()
	gocv.Resize(src, &dst, pt(w, h), 0, 0, gocv.InterpolationLinear)
	out := &Mask{W: w, H: h, Pix: dst.ToBytes()}
	if len(out.Pix) != w*h {
		return nil, fmt.Errorf("resize mask: got %d pixels, want %d", len(out.Pix), w*h)
	}
	for i, v := range out.Pix {
		if v >= 128 {
			out.Pix[i] = 255
		} else {
			out.Pix[i] = 0
		}
	}
	return out, nil
}

// distanceSq returns, per pixel, the squared Euclidean distance to the
// nearest set pixel (0 on set pixels; +Inf when the mask is empty). It is
// the exact linear-time transform of Felzenszwalb and Huttenlocher (2012),
// so dilating or eroding by a disc of any radius costs the same.
func distanceSq(m *Mask) []float64 {
	w, h := m.W, m.H
	d := make([]float64, w*h)
	for i, v := range m.Pix {
		if v == 0 {
			d[i] = math.Inf(1)
		}
	}
	n := max(w, h)
	f, out := make([]float64, n), make([]float64, n)
	v, z := make([]int, n), make([]float64, n+1)
	for x := range w { // columns
		for y := range h {
			f[y] = d[y*w+x]
		}
		edt1(f[:h], out[:h], v, z)
		for y := range h {
			d[y*w+x] = out[y]
		}
	}
	for y := range h { // rows
		edt1(d[y*w:(y+1)*w], out[:w], v, z)
		copy(d[y*w:(y+1)*w], out[:w])
	}
	return d
}

// edt1 is the one-dimensional squared distance transform of f (lower
// envelope of parabolas).
func edt1(f, out []float64, v []int, z []float64) {
	n := len(f)
	k := -1
	for q := range n {
		if math.IsInf(f[q], 1) {
			continue
		}
		for k >= 0 {
			p := v[k]
			s := ((f[q] + float64(q*q)) - (f[p] + float64(p*p))) / float64(2*(q-p))
			if s > z[k] {
				break
			}
			k--
		}
		k++
		v[k] = q
		if k == 0 {
			z[k] = math.Inf(-1)
		} else {
			p := v[k-1]
			z[k] = ((f[q] + float64(q*q)) - (f[p] + float64(p*p))) / float64(2*(q-p))
		}
		z[k+1] = math.Inf(1)
	}
	if k < 0 {
		for q := range out {
			out[q] = math.Inf(1)
		}
		return
	}
	j := 0
	for q := range n {
		for z[j+1] < float64(q) {
			j++
		}
		dq := float64(q - v[j])
		out[q] = dq*dq + f[v[j]]
	}
}

// dilateDisc sets every pixel within radius r of a set pixel.
func (m *Mask) dilateDisc(r float64) *Mask {
	d := distanceSq(m)
	out := NewMask(m.W, m.H)
	for i, v := range d {
		if v <= r*r {
			out.Pix[i] = 255
		}
	}
	return out
}

// erodeDisc keeps the set pixels farther than r from every unset pixel.
// Outside the image is not counted as unset (as with OpenCV's default
// border), so a cell cut by the crop's edge is not eaten from that side.
func (m *Mask) erodeDisc(r float64) *Mask {
	inv := NewMask(m.W, m.H)
	for i, v := range m.Pix {
		if v == 0 {
			inv.Pix[i] = 255
		}
	}
	d := distanceSq(inv)
	out := NewMask(m.W, m.H)
	for i, v := range d {
		if v > r*r {
			out.Pix[i] = 255
		}
	}
	return out
}

// openDisc is erosion then dilation by a disc of radius r: it removes
// specks and thin bridges narrower than the disc.
func (m *Mask) openDisc(r float64) *Mask { return m.erodeDisc(r).dilateDisc(r) }
