package vision

import (
	"fmt"
	"image"
	"math"
	"slices"

	"gocv.io/x/gocv"
)

// Cell is one white cell found in a field.
type Cell struct {
	Box    image.Rectangle // bounding box of the cell's stained region, field pixels
	Center image.Point
	Area   int             // stained pixels, field pixels
	Crop   image.Rectangle // square around the cell at CropScale times its size; may reach past the field edge
}

// FindOptions configures FindCells.
type FindOptions struct {
	// WorkSide is the long side, in pixels, of the downscaled copy on which
	// cells are found; sizes are relative to it, not to camera pixels.
	WorkSide int
	// CropScale is the crop side as a multiple of the cell's larger box side.
	CropScale float64
	Seed      uint64
}

// DefaultFindOptions are the settings the appliance uses.
var DefaultFindOptions = FindOptions{WorkSide: 640, CropScale: 1.5, Seed: 1}

// FindCells finds the white cells in a blurred-or-not 8-bit BGR field.
func FindCells(field gocv.Mat, opt FindOptions) ([]Cell, error) {
	if err := checkBGR(field); err != nil {
		return nil, fmt.Errorf("find cells: %w", err)
	}
	if opt.WorkSide <= 0 {
		opt.WorkSide = DefaultFindOptions.WorkSide
	}
	if opt.CropScale <= 0 {
		opt.CropScale = DefaultFindOptions.CropScale
	}
	w, h := field.Cols(), field.Rows()
	scale := float64(max(w, h)) / float64(opt.WorkSide)
	if scale < 1 {
		scale = 1
	}
	small := gocv.NewMat()
	defer small.Close()
	gocv.Resize(field, &small, image.Pt(max(1, int(float64(w)/scale)), max(1, int(float64(h)/scale))), 0, 0, gocv.InterpolationArea)
	blurred := Blur(small)
	defer blurred.Close()

	cl, err := Cluster(blurred, KMeansOptions{K: 3, Space: SpaceBGR, Seed: opt.Seed})
	if err != nil {
		return nil, fmt.Errorf("find cells: %w", err)
	}
	nuc := &Mask{W: cl.W, H: cl.H, Pix: cl.Mask(NucleusCluster(cl))}
	side := max(cl.W, cl.H)
	if nuc, err = nuc.morph(gocv.MorphOpen, max(3, side/200)); err != nil {
		return nil, err
	}
	if nuc, err = nuc.morph(gocv.MorphDilate, max(3, side/100)); err != nil {
		return nil, err
	}
	comps, err := components(nuc)
	if err != nil {
		return nil, err
	}
	if len(comps) == 0 {
		return nil, nil
	}
	areas := make([]int, len(comps))
	for i, c := range comps {
		areas[i] = c.area
	}
	slices.Sort(areas)
	minArea := areas[len(areas)/2] / 5

	var cells []Cell
	for _, c := range comps {
		if c.area < minArea {
			continue
		}
		box := image.Rect(int(float64(c.box.Min.X)*scale), int(float64(c.box.Min.Y)*scale),
			int(math.Ceil(float64(c.box.Max.X)*scale)), int(math.Ceil(float64(c.box.Max.Y)*scale))).Intersect(image.Rect(0, 0, w, h))
		cells = append(cells, newCell(box, int(float64(c.area)*scale*scale), opt.CropScale))
	}
	return cells, nil
}

func newCell(box image.Rectangle, area int, cropScale float64) Cell {
	cx, cy := (box.Min.X+box.Max.X)/2, (box.Min.Y+box.Max.Y)/2
	half := int(math.Ceil(float64(max(box.Dx(), box.Dy())) * cropScale / 2))
	return Cell{Box: box, Center: image.Pt(cx, cy), Area: area,
		Crop: image.Rect(cx-half, cy-half, cx+half, cy+half)}
}

type component struct {
	box  image.Rectangle
	area int
}

// components returns the 8-connected components of a mask.
func components(m *Mask) ([]component, error) {
	src, err := m.Mat()
	if err != nil {
		return nil, err
	}
	defer src.Close()
	labels, stats, cents := gocv.NewMat(), gocv.NewMat(), gocv.NewMat()
	defer labels.Close()
	defer stats.Close()
	defer cents.Close()
	n := gocv.ConnectedComponentsWithStats(src, &labels, &stats, &cents)
	out := make([]component, 0, max(0, n-1))
	for i := 1; i < n; i++ { // 0 is the background
		x, y := int(stats.GetIntAt(i, 0)), int(stats.GetIntAt(i, 1))
		cw, ch := int(stats.GetIntAt(i, 2)), int(stats.GetIntAt(i, 3))
		out = append(out, component{box: image.Rect(x, y, x+cw, y+ch), area: int(stats.GetIntAt(i, 4))})
	}
	return out, nil
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
