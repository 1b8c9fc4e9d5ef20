package vision

import (
	"fmt"
	"image"
	"math"

	"gocv.io/x/gocv"
)

// Cell is one white cell found in a field.
type Cell struct {
	Box    image.Rectangle // bounding box of the whole cell (nucleus and cytoplasm), field pixels
	Center image.Point
	Area   int             // pixels of the whole cell, field pixels
	Crop   image.Rectangle // square around the cell at CropScale times its size; may reach past the field edge
	// Outline is the cell's outer contour, field pixels (traced at the
	// working resolution, so steps of about Scale pixels).
	Outline []image.Point
	// AtEdge: the field's edge cuts the cell, so its crop is partly
	// replicated border and it may be a poor input for the classifier.
	AtEdge bool
	// Smudge is the smudge-cell model's probability that this is a
	// broken cell (see smudgeModel); kept cells are below smudgeThreshold.
	Smudge float64
	// RedCellRadius is the red-cell radius measured in this field (field
	// pixels), the unit every size was judged in; 0 when the field had too
	// few red cells to measure and a default scale was assumed.
	RedCellRadius float64
}

// FindOptions configures FindCells.
type FindOptions struct {
	// WorkSide is the long side, in pixels, of the downscaled copy on which
	// cells are found. It sets the cost, not the sizes: every size is
	// judged relative to the red cells measured in the field.
	WorkSide int
	// CropScale is the crop side as a multiple of the cell's larger box side.
	CropScale float64
	// Seed is kept for callers of the k-means baseline; the field finder
	// is deterministic without it.
	Seed uint64
}

// DefaultFindOptions are the settings the appliance uses.
var DefaultFindOptions = FindOptions{WorkSide: 640, CropScale: 1.5, Seed: 1}

// withDefaults fills unset options from DefaultFindOptions.
func (o FindOptions) withDefaults() FindOptions {
	if o.WorkSide <= 0 {
		o.WorkSide = DefaultFindOptions.WorkSide
	}
	if o.CropScale <= 0 {
		o.CropScale = DefaultFindOptions.CropScale
	}
	return o
}

// FindCells finds the white cells in an 8-bit BGR field: intact white
// cells with a nucleus at least the size of a red cell; platelets and
// smudge cells are left out. See field.go for the method.
func FindCells(field gocv.Mat, opt FindOptions) ([]Cell, error) {
	if err := checkBGR(field); err != nil {
		return nil, fmt.Errorf("find cells: %w", err)
	}
	opt = opt.withDefaults()
	res, err := analyzeField(field, opt.WorkSide)
	if err != nil {
		return nil, fmt.Errorf("find cells: %w", err)
	}
	return res.cells(field.Cols(), field.Rows(), opt.CropScale), nil
}

// cells converts the kept candidates to field coordinates.
func (f *fieldCells) cells(w, h int, cropScale float64) []Cell {
	bounds := image.Rect(0, 0, w, h)
	s := f.scale
	rbc := 0.0
	if f.measured {
		rbc = f.radius * s
	}
	var out []Cell
	for _, c := range f.candidates {
		if !c.keep {
			continue
		}
		box := image.Rect(int(float64(c.box.Min.X)*s), int(float64(c.box.Min.Y)*s),
			int(math.Ceil(float64(c.box.Max.X)*s)), int(math.Ceil(float64(c.box.Max.Y)*s))).Intersect(bounds)
		cell := newCell(box, int(float64(c.area)*s*s), cropScale)
		cx, cy := c.center()
		cell.Center = image.Pt(int((cx+0.5)*s), int((cy+0.5)*s))
		cell.AtEdge = c.atEdge
		cell.Smudge = c.smudge
		cell.RedCellRadius = rbc
		cell.Outline = make([]image.Point, len(c.outline))
		for i, p := range c.outline {
			cell.Outline[i] = image.Pt(int((float64(p.X)+0.5)*s), int((float64(p.Y)+0.5)*s))
		}
		out = append(out, cell)
	}
	return out
}

func newCell(box image.Rectangle, area int, cropScale float64) Cell {
	c := boxCentre(box)
	half := int(math.Ceil(float64(max(box.Dx(), box.Dy())) * cropScale / 2))
	return Cell{Box: box, Center: c, Area: area,
		Crop: image.Rect(c.X-half, c.Y-half, c.X+half, c.Y+half)}
}

// boxCentre is the centre pixel of a box.
func boxCentre(r image.Rectangle) image.Point {
	return image.Pt((r.Min.X+r.Max.X)/2, (r.Min.Y+r.Max.Y)/2)
}

// CropCell returns the square r of the field as a new Mat; parts of r outside
// the field are filled by replicating the border.
func CropCell(field gocv.Mat, r image.Rectangle) (gocv.Mat, error) {
	if err := checkBGR(field); err != nil {
		return gocv.Mat{}, fmt.Errorf("crop: %w", err)
	}
	if r.Empty() {
		return gocv.Mat{}, fmt.Errorf("crop: empty rectangle %v", r)
	}
	bounds := image.Rect(0, 0, field.Cols(), field.Rows())
	in := r.Intersect(bounds)
	if in.Empty() {
		return gocv.Mat{}, fmt.Errorf("crop: %v lies outside the %dx%d field", r, field.Cols(), field.Rows())
	}
	roi := field.Region(in)
	defer roi.Close()
	if in == r {
		return roi.Clone(), nil
	}
	out := gocv.NewMat()
	gocv.CopyMakeBorder(roi, &out, in.Min.Y-r.Min.Y, r.Max.Y-in.Max.Y, in.Min.X-r.Min.X, r.Max.X-in.Max.X, gocv.BorderReplicate, colorBlack)
	return out, nil
}
