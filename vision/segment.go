package vision

import (
	"errors"
	"fmt"
	"image"
	"math"

	"gocv.io/x/gocv"
)

// The nucleus and the whole white cell, found in a single-cell crop without
// ground truth. The paper picks its segment by comparing every k-means
// cluster with a ground-truth mask; a device has none. Each step below was
// kept because it raised the mean nucleus Dice on ALL-IDB2 and wbcseg (see
// docs/vision.md for the ablation, and the caveat that those are the sets it
// was tuned on). Every size is relative to the crop or to the nucleus, so
// crops of any size and magnification work.

// SegmentOptions switches and sizes the steps of SegmentCellWith.
type SegmentOptions struct {
	// Space and K: the colour k-means after the paper's blur.
	Space Space
	K     int
	// OpenFrac opens the nucleus cluster with a disc of radius OpenFrac x
	// sqrt(nucleus area): it removes granules and speckle (eosinophil
	// granules fall in the nucleus cluster) but keeps lobes. 0 skips it.
	OpenFrac float64
	// Central keeps only the nucleus of the cell at the centre of the crop:
	// the main component (large and near the centre) and the lobes within
	// LinkFrac x the crop side of it that lie in the same stained region.
	// Crops often hold parts of other white cells.
	Central  bool
	LinkFrac float64
	// LocalFrac re-clusters (k=2) the pixels around the nucleus found so
	// far, within LocalFrac x sqrt(nucleus area) and outside the background,
	// so the nucleus boundary is set by the cell's own colours rather than
	// by the red cells and background that dominate the crop. 0 skips it.
	LocalFrac float64
	// CellGrabCut finds the whole cell (nucleus and cytoplasm) by GrabCut
	// seeded from the nucleus; otherwise the cell is the nucleus dilated.
	CellGrabCut bool
	Seed        uint64
	Attempts    int // k-means starts (see KMeansOptions)
	// WorkPixels bounds the pixels segmented: a larger crop is segmented on
	// an area-downscaled copy and the masks scaled back up (smoothly), which
	// bounds the time a crop takes (GrabCut grows with the pixels); GrabCut's
	// smoothness follows the scale, so the outline keeps the balance it has
	// at full size. 0 segments at full size. The default, 128x128, is
	// about twice the model input's resolution (64 pixels across 1.2 cell
	// sides): on ALL-IDB2 (257x257 crops) it keeps the mean nucleus and
	// whole-cell Dice within 0.005 of full size at a quarter of the time.
	WorkPixels int
}

// DefaultSegmentOptions is what SegmentCell uses.
var DefaultSegmentOptions = SegmentOptions{
	Space: SpaceLab, K: 3, OpenFrac: 0.05, Central: true, LinkFrac: 0.15, LocalFrac: 0.2,
	CellGrabCut: true, Seed: 1, Attempts: 4, WorkPixels: 128 * 128,
}

// AblationStep is one row of the ablation: the method up to that step.
type AblationStep struct {
	Name string
	Opt  SegmentOptions
}

// SegmentAblation lists the method step by step, each row adding one step
// to the one before; the first is the plain rule the issue starts from and
// the last is DefaultSegmentOptions.
func SegmentAblation() []AblationStep {
	o := SegmentOptions{Space: SpaceBGR, K: 3, Seed: 1, Attempts: 4, WorkPixels: DefaultSegmentOptions.WorkPixels}
	var steps []AblationStep
	add := func(name string) { steps = append(steps, AblationStep{name, o}) }
	add("k=3 in RGB, lowest-green cluster (the plain rule)")
	o.Space = SpaceLab
	add("+ k-means in CIE Lab")
	o.OpenFrac = DefaultSegmentOptions.OpenFrac
	add("+ opening (radius 0.05 sqrt(area))")
	o.Central, o.LinkFrac = true, DefaultSegmentOptions.LinkFrac
	add("+ central cell's nucleus only, lobes linked")
	o.LocalFrac = DefaultSegmentOptions.LocalFrac
	add("+ local re-clustering around the nucleus (k=2)")
	o.CellGrabCut = true
	add("+ whole cell by GrabCut (nucleus unchanged)")
	return steps
}

// ErrNoNucleus is wrapped when a crop shows no stained nucleus.
var ErrNoNucleus = errors.New("no stained nucleus found")

// MinCellCropSide is the smallest crop SegmentCell accepts.
const MinCellCropSide = 8

// minWorkPixels: smaller crops are enlarged to this many pixels first.
const minWorkPixels = 96 * 96

// minStainContrast is how much lower in green (0..255) the nucleus cluster
// must be than the background cluster for the crop to show a stained cell.
// On ALL-IDB2 and wbcseg the smallest difference is 67 (median 105 and
// 211); a blank or unstained crop differs by its noise.
const minStainContrast = 25

// blackLevel: pixels with every channel at or below it are the black
// surround of a cell already segmented onto black (C-NMC style), not stain.
const blackLevel = 10

// SegmentCellWith segments the cell at the centre of a crop with the given
// steps; SegmentCell is SegmentCellWith(crop, DefaultSegmentOptions).
func SegmentCellWith(crop gocv.Mat, opt SegmentOptions) (*CellMasks, error) {
	return segmentCell(crop, opt, 0)
}

// segmentCell segments crop; scale is 0 for the crop as given (which may be
// rescaled first), else the linear scale of this working copy to it.
func segmentCell(crop gocv.Mat, opt SegmentOptions, scale float64) (*CellMasks, error) {
	if err := checkBGR(crop); err != nil {
		return nil, fmt.Errorf("segment cell: %w", err)
	}
	w, h := crop.Cols(), crop.Rows()
	if w < MinCellCropSide || h < MinCellCropSide {
		return nil, fmt.Errorf("segment cell: crop is %dx%d, want at least %dx%d", w, h, MinCellCropSide, MinCellCropSide)
	}
	// Below about 96x96 pixels the blur and GrabCut's smoothness swallow
	// a thin cytoplasm: small crops are segmented on an enlarged copy.
	work := 0
	switch {
	case scale != 0:
	case opt.WorkPixels > 0 && w*h > opt.WorkPixels:
		work = opt.WorkPixels
	case w*h < minWorkPixels:
		work = minWorkPixels
	}
	if work > 0 {
		f := math.Sqrt(float64(work) / float64(w*h))
		sw, sh := max(MinCellCropSide, int(math.Round(float64(w)*f))), max(MinCellCropSide, int(math.Round(float64(h)*f)))
		interp := gocv.InterpolationArea
		if f > 1 {
			interp = gocv.InterpolationCubic
		}
		scaled := gocv.NewMat()
		defer scaled.Close()
		gocv.Resize(crop, &scaled, image.Pt(sw, sh), 0, 0, interp)
		m, err := segmentCell(scaled, opt, f)
		if err != nil {
			return nil, err
		}
		nuc, err := m.Nucleus.resize(w, h)
		if err != nil {
			return nil, err
		}
		cell, err := m.Cell.resize(w, h)
		if err != nil {
			return nil, err
		}
		return &CellMasks{Nucleus: nuc, Cell: union(cell, nuc)}, nil
	}
	if opt.K == 0 {
		opt.K = 3
	}
	blurred := Blur(crop)
	defer blurred.Close()
	valid, err := stainedPixels(crop)
	if err != nil {
		return nil, fmt.Errorf("segment cell: %w", err)
	}
	ps, err := newPixelSet(blurred, opt.Space, DefaultSamplePixels, valid)
	if err != nil {
		return nil, fmt.Errorf("segment cell: %w", err)
	}
	k := opt.K
	if valid != nil {
		// Cut out onto black: the background is gone, so one cluster fewer.
		k = max(2, k-1)
	}
	if len(ps.weights) < k {
		return nil, fmt.Errorf("segment cell: the crop has %d colours: %w", len(ps.weights), ErrNoNucleus)
	}
	cl, err := ps.cluster(k, opt.Seed, opt.Attempts, false)
	if err != nil {
		return nil, fmt.Errorf("segment cell: %w", err)
	}
	nucIdx, bgIdx := NucleusCluster(cl), backgroundCluster(cl)
	if valid == nil && cl.BGR[bgIdx][1]-cl.BGR[nucIdx][1] < minStainContrast {
		return nil, fmt.Errorf("segment cell: nothing in the crop is stained darker than its background: %w", ErrNoNucleus)
	}
	nuc := &Mask{W: w, H: h, Pix: cl.Mask(nucIdx)}
	// The stained region: every pixel not in the background cluster.
	stained := NewMask(w, h)
	for p, l := range cl.Labels {
		if l != Excluded && (int(l) != bgIdx || bgIdx == nucIdx) {
			stained.Pix[p] = 255
		}
	}

	if opt.OpenFrac > 0 {
		nuc = nuc.openDisc(relRadius(opt.OpenFrac, nuc.Area()))
	}
	if opt.Central {
		if nuc, err = centralNucleus(nuc, stained, opt.LinkFrac); err != nil {
			return nil, err
		}
	}
	if opt.LocalFrac > 0 && nuc.Area() > 0 {
		if nuc, err = reclusterNucleus(blurred, nuc, stained, valid, opt); err != nil {
			return nil, err
		}
	}
	if nuc.Area() == 0 {
		return nil, fmt.Errorf("segment cell: %w", ErrNoNucleus)
	}
	var cell *Mask
	switch {
	case valid != nil:
		// Already segmented: the cell is the stained region the nucleus is
		// in. Such cut-outs (C-NMC) are mostly nucleus with faint
		// chromatin contrast, which k-means splits into patches: close the
		// patches into one nucleus, relative to the cell's size.
		if cell, err = keepTouching(fillHoles(maskOf(valid, w, h)), nuc); err == nil {
			r := relRadius(0.1, cell.Area())
			nuc = intersect(fillHoles(nuc.dilateDisc(r).erodeDisc(r)), cell)
		}
	case opt.CellGrabCut:
		// Smoothness in proportion to the downscale; an enlarged small
		// crop keeps the full weight (as it was measured).
		gamma := grabCutGamma
		if scale > 0 && scale < 1 {
			gamma *= scale
		}
		cell, err = grabCutCell(blurred, nuc, stained, opt.Seed, gamma)
	default:
		cell, err = nuc.morph(gocv.MorphDilate, max(3, min(w, h)/16))
	}
	if err != nil {
		return nil, fmt.Errorf("segment cell: %w", err)
	}
	return &CellMasks{Nucleus: nuc, Cell: union(cell, nuc)}, nil
}

// stainedPixels returns nil for an ordinary crop, or which pixels to use
// when the crop is a cell already cut out onto black: those not black,
// shrunk by the blur's reach so blurred edge pixels stay out of k-means.
func stainedPixels(crop gocv.Mat) ([]bool, error) {
	pix := crop.ToBytes()
	w, h := crop.Cols(), crop.Rows()
	black := NewMask(w, h)
	n := 0
	for p := range w * h {
		if pix[3*p] <= blackLevel && pix[3*p+1] <= blackLevel && pix[3*p+2] <= blackLevel {
			black.Pix[p] = 255
			n++
		}
	}
	// A few black pixels are dirt or clipping; a black surround is a
	// large share of the crop.
	if n < w*h/20 {
		return nil, nil
	}
	grown, err := black.morph(gocv.MorphDilate, 5)
	if err != nil {
		return nil, err
	}
	valid := make([]bool, w*h)
	left := 0
	for p, v := range grown.Pix {
		if v == 0 {
			valid[p] = true
			left++
		}
	}
	if left < 64 {
		return nil, fmt.Errorf("%w: the crop is black", ErrNoNucleus)
	}
	return valid, nil
}

// backgroundCluster is the cluster of highest green: the pale background
// (and in ALL-IDB, pale red cells).
func backgroundCluster(c *Clusters) int {
	best := -1
	for i := range c.BGR {
		if c.Counts[i] > 0 && (best < 0 || c.BGR[i][1] > c.BGR[best][1]) {
			best = i
		}
	}
	return max(best, 0)
}

// relRadius is frac x sqrt(area), at least one pixel: a size relative to
// the nucleus.
func relRadius(frac float64, area int) float64 {
	return max(1, frac*math.Sqrt(float64(area)))
}

// centralNucleus keeps the nucleus of the cell at the centre of the crop.
// The main component scores its size against its distance from the centre
// (both relative to the crop side); other components join it when they are
// within link x side of it and mostly inside the same stained region, as
// the lobes of a neutrophil are and a neighbouring cell's nucleus is not.
func centralNucleus(nuc, stained *Mask, link float64) (*Mask, error) {
	labels, n, err := labelComponents(nuc)
	if err != nil || n == 0 {
		return nuc, err
	}
	w, h := nuc.W, nuc.H
	side := float64(min(w, h))
	cx, cy := float64(w)/2, float64(h)/2
	area := make([]int, n+1)
	near := make([]float64, n+1)
	for i := range near {
		near[i] = math.Inf(1)
	}
	for p, l := range labels {
		if l == 0 {
			continue
		}
		area[l]++
		x, y := float64(p%w)+0.5, float64(p/w)+0.5
		near[l] = min(near[l], math.Hypot(x-cx, y-cy))
	}
	main, bestScore := 0, math.Inf(-1)
	for i := 1; i <= n; i++ {
		s := math.Sqrt(float64(area[i]))/side - 2*near[i]/side
		if s > bestScore {
			main, bestScore = i, s
		}
	}
	keep := NewMask(w, h)
	for p, l := range labels {
		if l == int32(main) {
			keep.Pix[p] = 255
		}
	}
	if n == 1 || link <= 0 {
		return keep, nil
	}
	// The stained region the main component lies in.
	region, err := keepTouching(stained, keep)
	if err != nil {
		return nil, err
	}
	reach := keep.dilateDisc(link * side)
	touches := make([]bool, n+1)
	inside := make([]int, n+1)
	for p, l := range labels {
		if l == 0 || l == int32(main) {
			continue
		}
		if reach.Pix[p] != 0 {
			touches[l] = true
		}
		if region.Pix[p] != 0 {
			inside[l]++
		}
	}
	for p, l := range labels {
		if l != 0 && touches[l] && 2*inside[l] > area[l] {
			keep.Pix[p] = 255
		}
	}
	return keep, nil
}

// reclusterNucleus re-runs k-means with k=2 on the pixels around the nucleus
// (within LocalFrac x sqrt(area), not background) and takes the
// lower-green cluster, opened, where it overlaps the nucleus found so far.
func reclusterNucleus(blurred gocv.Mat, nuc, stained *Mask, valid []bool, opt SegmentOptions) (*Mask, error) {
	roi := nuc.dilateDisc(relRadius(opt.LocalFrac, nuc.Area()))
	use := make([]bool, len(roi.Pix))
	n := 0
	for p, v := range roi.Pix {
		if v != 0 && (stained.Pix[p] != 0 || nuc.Pix[p] != 0) && (valid == nil || valid[p]) {
			use[p] = true
			n++
		}
	}
	ps, err := newPixelSet(blurred, opt.Space, DefaultSamplePixels, use)
	if err != nil {
		return nil, err
	}
	if len(ps.weights) < 2 {
		return nuc, nil // one colour: nothing to split
	}
	cl, err := ps.cluster(2, opt.Seed, opt.Attempts, false)
	if err != nil {
		return nil, err
	}
	local := &Mask{W: nuc.W, H: nuc.H, Pix: cl.Mask(NucleusCluster(cl))}
	if opt.OpenFrac > 0 {
		local = local.openDisc(relRadius(opt.OpenFrac, local.Area()))
	}
	return keepTouching(local, nuc)
}

// keepTouching returns the connected components of m that share a pixel
// with seed.
func keepTouching(m, seed *Mask) (*Mask, error) {
	labels, n, err := labelComponents(m)
	if err != nil {
		return nil, err
	}
	hit := make([]bool, n+1)
	for p, l := range labels {
		if l != 0 && seed.Pix[p] != 0 {
			hit[l] = true
		}
	}
	out := NewMask(m.W, m.H)
	for p, l := range labels {
		if hit[l] && l != 0 {
			out.Pix[p] = 255
		}
	}
	return out, nil
}

func union(a, b *Mask) *Mask {
	out := NewMask(a.W, a.H)
	for p := range out.Pix {
		if a.Pix[p] != 0 || b.Pix[p] != 0 {
			out.Pix[p] = 255
		}
	}
	return out
}

func intersect(a, b *Mask) *Mask {
	out := NewMask(a.W, a.H)
	for p := range out.Pix {
		if a.Pix[p] != 0 && b.Pix[p] != 0 {
			out.Pix[p] = 255
		}
	}
	return out
}

func maskOf(set []bool, w, h int) *Mask {
	m := NewMask(w, h)
	for p, v := range set {
		if v {
			m.Pix[p] = 255
		}
	}
	return m
}
