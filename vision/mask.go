package vision

import (
	"fmt"

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
