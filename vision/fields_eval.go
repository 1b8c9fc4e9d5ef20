package vision

import (
	"bufio"
	"encoding/csv"
	"fmt"
	"image"
	"image/png"
	"io"
	"math"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"

	"gocv.io/x/gocv"
)

// Measuring FindCells against the ALL-IDB1 truth (allidb1/ in the data
// folder). Three kinds of truth exist, and each field gets what it has:
//
//   - wbc-masks (5 blast fields here): every intact white cell outlined.
//     Cells that touch are one mask component; they are split into cells
//     with the same watershed FindCells uses (a mask has no stain to
//     confuse it). Recall, precision and the mask Dice are scored.
//   - other-wbc-centroids, normal fields: the centre of every stained
//     object that is not a blast: white cells and platelets. Centroids are
//     sorted by the size rule below; recall and precision are scored.
//   - other-wbc-centroids, blast fields without a mask: blasts are NOT
//     marked, so only the recall of the non-blast white cells is scored.
//
// Platelet or white cell: the stained object under a centroid (stain
// index above 0.15) is a white cell when its nucleus-stained part (stain
// above 0.5) covers at least MinNucleusArea red-cell areas (0.3 when the field's edge
// cuts it). This is the same size rule FindCells applies, so it cannot show
// whether that rule is right; docs/fields.md says how it was checked by eye.
//
// Matching is one to one: a centroid is found when it falls inside a kept
// cell that no other centroid has claimed, so two cells merged into one
// detection count one found and one missed.

// FieldSplit names which fields tuned the method.
type FieldSplit string

const (
	SplitTune    FieldSplit = "tune"
	SplitHeldOut FieldSplit = "held-out"
)

// tuningFields were looked at closely while choosing the method and its
// numbers, and the smudge model is fitted on them: the five fields with
// white-cell masks and the first twenty normal fields. The rest are
// reported apart. (Im009_1, Im010_1 and Im011_1 overlap: Im011_1, held
// out, shows some of the same cells.)
func fieldSplit(name string) FieldSplit {
	switch name {
	case "Im001_1", "Im003_1", "Im004_1", "Im009_1", "Im010_1":
		return SplitTune
	}
	if n, err := strconv.Atoi(strings.TrimSuffix(strings.TrimPrefix(name, "Im"), "_0")); err == nil && strings.HasSuffix(name, "_0") && n >= 64 && n <= 83 {
		return SplitTune
	}
	return SplitHeldOut
}

// FieldTruth is what is known about one ALL-IDB1 field.
type FieldTruth struct {
	Name      string
	Label     string // blast-slide or normal-slide
	Image     string
	Mask      string // white-cell mask, "" if none
	Centroids []image.Point
}

// LoadFieldTruth lists the fields of allidb1/ under dataDir with their
// truth files.
func LoadFieldTruth(dataDir string) ([]FieldTruth, error) {
	root := filepath.Join(dataDir, "allidb1")
	f, err := os.Open(filepath.Join(root, "labels.csv"))
	if err != nil {
		return nil, fmt.Errorf("ALL-IDB1 labels: %w", err)
	}
	defer f.Close()
	rows, err := csv.NewReader(f).ReadAll()
	if err != nil {
		return nil, fmt.Errorf("ALL-IDB1 labels: %w", err)
	}
	var out []FieldTruth
	for i, row := range rows {
		if i == 0 || len(row) < 2 {
			continue
		}
		name := strings.TrimSuffix(row[0], filepath.Ext(row[0]))
		t := FieldTruth{Name: name, Label: row[1], Image: filepath.Join(root, "fields", row[0])}
		if m := filepath.Join(root, "wbc-masks", name+".png"); fileExists(m) {
			t.Mask = m
		}
		pts, err := readCentroids(filepath.Join(root, "other-wbc-centroids", name+".xyc"))
		if err != nil {
			return nil, err
		}
		t.Centroids = pts
		out = append(out, t)
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("no fields listed in %s", filepath.Join(root, "labels.csv"))
	}
	return out, nil
}

func fileExists(p string) bool {
	st, err := os.Stat(p)
	return err == nil && st.Mode().IsRegular()
}

// readCentroids reads an .xyc file: one "x y" pair per line.
func readCentroids(path string) ([]image.Point, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("centroids: %w", err)
	}
	defer f.Close()
	var pts []image.Point
	sc := bufio.NewScanner(f)
	for n := 1; sc.Scan(); n++ {
		fs := strings.Fields(sc.Text())
		if len(fs) == 0 {
			continue
		}
		if len(fs) != 2 {
			return nil, fmt.Errorf("%s:%d: want \"x y\", got %q", path, n, sc.Text())
		}
		x, err1 := strconv.ParseFloat(fs[0], 64)
		y, err2 := strconv.ParseFloat(fs[1], 64)
		if err1 != nil || err2 != nil {
			return nil, fmt.Errorf("%s:%d: want \"x y\", got %q", path, n, sc.Text())
		}
		pts = append(pts, image.Pt(int(math.Round(x)), int(math.Round(y))))
	}
	return pts, sc.Err()
}

// readMask reads a 0/255 grey PNG mask at full resolution.
func readMask(path string) (*Mask, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	img, err := png.Decode(f)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	b := img.Bounds()
	m := NewMask(b.Dx(), b.Dy())
	for y := range b.Dy() {
		for x := range b.Dx() {
			if r, _, _, _ := img.At(b.Min.X+x, b.Min.Y+y).RGBA(); r > 0x7fff {
				m.Pix[y*m.W+x] = 255
			}
		}
	}
	return m, nil
}

// FieldResult is the score of FindCells on one field.
type FieldResult struct {
	Field string     `json:"field"`
	Label string     `json:"label"`
	Split FieldSplit `json:"split"`
	Truth string     `json:"truth"` // "mask", "centroids (all white cells)", "centroids (non-blast white cells only)"

	RedCellRadius float64 `json:"red_cell_radius"` // field pixels; 0 = not measurable
	Kept          int     `json:"kept"`            // cells FindCells returned
	Smudges       int     `json:"smudges"`         // candidates dropped as smudge cells

	WhiteCells int `json:"white_cells"` // truth white cells
	Found      int `json:"found"`
	// Precision is scored where the truth names every white cell.
	PrecisionScored bool `json:"precision_scored"`
	TruePositives   int  `json:"true_positives"`

	Platelets int            `json:"platelets"` // centroids the size rule calls platelets
	Centroids []CentroidCall `json:"centroids,omitempty"`
	// TruthCells are the centroids of the mask's cells after splitting.
	TruthCells []image.Point `json:"truth_cells,omitempty"`

	MaskComponents  int     `json:"mask_components,omitempty"` // mask truth only
	ComponentsFound int     `json:"components_found,omitempty"`
	Dice            float64 `json:"dice,omitempty"`
	DiceCounts      [3]int  `json:"dice_counts,omitempty"` // pixels in both masks, in ours, in the truth

	Missed         []image.Point     `json:"missed,omitempty"`          // truth cells not found (field pixels)
	MissedWhy      []string          `json:"missed_why,omitempty"`      // for each, what became of it
	FalsePositives []image.Rectangle `json:"false_positives,omitempty"` // kept cells with no truth cell
	NucleusCluster float64           `json:"kmeans_nucleus_stain"`      // mean stain of the k=3 lowest-green cluster
	Quality        Quality           `json:"quality"`                   // the quality gate on the field

	// Dropped lists the candidates FindCells left out, and why.
	Dropped []DroppedCandidate `json:"dropped,omitempty"`

	// Samples are the candidates big enough to be white cells, with what
	// the truth says they are, for fitting the smudge model.
	Samples []SmudgeSample `json:"-"`
}

// DroppedCandidate is a stained region FindCells did not return.
type DroppedCandidate struct {
	Box     image.Rectangle `json:"box"`     // field pixels
	Nucleus float64         `json:"nucleus"` // nucleus area, red-cell areas
	Smudge  float64         `json:"smudge"`  // P(smudge cell)
	Why     string          `json:"why"`
}

// SmudgeSample is one candidate's smudge-model features and its truth.
type SmudgeSample struct {
	Field  string
	X      [3]float64 // nucleus stain, hue, circularity
	Smudge bool
}

// EvaluateField runs FindCells on one field and scores it.
func EvaluateField(t FieldTruth, opt FindOptions) (FieldResult, error) {
	res := FieldResult{Field: t.Name, Label: t.Label, Split: fieldSplit(t.Name)}
	field, err := LoadImage(t.Image)
	if err != nil {
		return res, err
	}
	defer field.Close()
	fc, err := analyzeField(field, opt.WorkSide)
	if err != nil {
		return res, fmt.Errorf("%s: %w", t.Name, err)
	}
	if fc.measured {
		res.RedCellRadius = fc.radius * fc.scale
	}
	res.NucleusCluster = kmeansNucleusStain(field, fc.fieldMaps, opt.Seed)
	res.Quality = CheckQuality(field)
	W, H := field.Cols(), field.Rows()
	kept := map[int32]bool{}
	for _, c := range fc.candidates {
		if c.keep {
			kept[int32(c.label)] = true
			res.Kept++
			continue
		}
		if c.why == "smudge cell" {
			res.Smudges++
		}
		if nuc := float64(c.nucleus) / fc.area(); nuc >= 0.3 {
			res.Dropped = append(res.Dropped, DroppedCandidate{Box: fc.fieldBox(c.box), Nucleus: nuc, Smudge: c.smudge, Why: c.why})
		}
	}
	// labelAt is the kept cell under a field pixel, 0 if none.
	labelAt := func(p image.Point) int32 {
		x, y := int(float64(p.X)/fc.scale), int(float64(p.Y)/fc.scale)
		if x < 0 || y < 0 || x >= fc.w || y >= fc.h {
			return 0
		}
		if l := fc.labels[y*fc.w+x]; kept[l] {
			return l
		}
		return 0
	}
	claimed := map[int32]bool{}
	match := func(p image.Point) bool {
		l := labelAt(p)
		if l == 0 || claimed[l] {
			res.MissedWhy = append(res.MissedWhy, fc.missReason(p, l != 0))
			return false
		}
		claimed[l] = true
		return true
	}

	if t.Mask != "" {
		res.Truth = "mask"
		res.PrecisionScored = true
		gt, err := readMask(t.Mask)
		if err != nil {
			return res, err
		}
		if gt.W != W || gt.H != H {
			return res, fmt.Errorf("%s: mask is %dx%d, field %dx%d", t.Name, gt.W, gt.H, W, H)
		}
		centres, comps := truthCells(gt, fc.radius*fc.scale)
		res.MaskComponents = comps
		res.WhiteCells = len(centres)
		res.TruthCells = centres
		for _, c := range centres {
			if match(c) {
				res.Found++
			} else {
				res.Missed = append(res.Missed, c)
			}
		}
		// Precision: a kept cell is right when most of it is white cell.
		inside, total := map[int32]int{}, map[int32]int{}
		for y := range fc.h {
			for x := range fc.w {
				l := fc.labels[y*fc.w+x]
				if l == 0 {
					continue
				}
				total[l]++
				fx, fy := min(W-1, int((float64(x)+0.5)*fc.scale)), min(H-1, int((float64(y)+0.5)*fc.scale))
				if gt.Pix[fy*W+fx] != 0 {
					inside[l]++
				}
			}
		}
		hitComp := map[int32]bool{}
		compLabels, _ := labelRegions(gt.Pix, W, H)
		for _, c := range fc.candidates {
			l := int32(c.label)
			if c.bigEnough(fc) && fc.smudgeJudged {
				res.Samples = append(res.Samples, SmudgeSample{Field: t.Name, X: c.features(), Smudge: 2*inside[l] < total[l]})
			}
			if !kept[l] {
				continue
			}
			if 2*inside[l] >= total[l] {
				res.TruePositives++
				for _, p := range c.outlineInterior(fc, compLabels, W, H) {
					hitComp[p] = true
				}
			} else {
				res.FalsePositives = append(res.FalsePositives, fc.fieldBox(c.box))
			}
		}
		res.ComponentsFound = len(hitComp)
		res.Dice, res.DiceCounts, err = fc.maskDice(kept, gt)
		if err != nil {
			return res, err
		}
		return res, nil
	}

	// Centroid truth.
	if t.Label == "normal-slide" {
		res.Truth = "centroids (all white cells)"
		res.PrecisionScored = true
	} else {
		res.Truth = "centroids (non-blast white cells only)"
	}
	for _, p := range t.Centroids {
		nuc, white := fc.centroidNucleus(p)
		res.Centroids = append(res.Centroids, CentroidCall{At: p, Nucleus: nuc, WhiteCell: white})
		if !white {
			res.Platelets++
			continue
		}
		res.WhiteCells++
		if match(p) {
			res.Found++
		} else {
			res.Missed = append(res.Missed, p)
		}
	}
	// Smudge-model samples: a big-enough candidate under a white-cell
	// centroid is intact; the others are not labelled (blasts are not
	// marked in blast fields).
	for _, c := range fc.candidates {
		if !c.bigEnough(fc) || !fc.smudgeJudged {
			continue
		}
		for _, p := range t.Centroids {
			x, y := int(float64(p.X)/fc.scale), int(float64(p.Y)/fc.scale)
			if x >= 0 && y >= 0 && x < fc.w && y < fc.h && fc.labels[y*fc.w+x] == int32(c.label) && fc.isWhiteCellAt(p) {
				res.Samples = append(res.Samples, SmudgeSample{Field: t.Name, X: c.features()})
				break
			}
		}
	}
	if res.PrecisionScored {
		res.TruePositives = len(claimed)
		for _, c := range fc.candidates {
			if c.keep && !claimed[int32(c.label)] {
				res.FalsePositives = append(res.FalsePositives, fc.fieldBox(c.box))
			}
		}
	}
	return res, nil
}

// missReason says what became of a truth cell at p that was not found.
func (f *fieldCells) missReason(p image.Point, merged bool) string {
	if merged {
		return "merged into a cell another truth cell claimed"
	}
	x, y := int(float64(p.X)/f.scale), int(float64(p.Y)/f.scale)
	if x < 0 || y < 0 || x >= f.w || y >= f.h {
		return "outside the field"
	}
	l := f.labels[y*f.w+x]
	if l == 0 {
		return "not segmented"
	}
	for _, c := range f.candidates {
		if int32(c.label) == l {
			if c.why == "smudge cell" {
				return fmt.Sprintf("dropped as a smudge cell (P=%.2f; stain %.2f, hue %.2f, circularity %.2f)", c.smudge, c.stain, c.hue, c.circularity)
			}
			return fmt.Sprintf("dropped: %s (nucleus %.2f red-cell areas)", c.why, float64(c.nucleus)/f.area())
		}
	}
	return "not segmented"
}

// CentroidCall is the size rule's verdict on one centroid.
type CentroidCall struct {
	At        image.Point `json:"at"`
	Nucleus   float64     `json:"nucleus"` // nucleus-stained area of the object, red-cell areas
	WhiteCell bool        `json:"white_cell"`
}

// fieldBox maps a working-resolution box to field pixels.
func (f *fieldMaps) fieldBox(b image.Rectangle) image.Rectangle {
	s := f.scale
	return image.Rect(int(float64(b.Min.X)*s), int(float64(b.Min.Y)*s), int(math.Ceil(float64(b.Max.X)*s)), int(math.Ceil(float64(b.Max.Y)*s)))
}

// outlineInterior returns the truth-mask components the candidate covers.
func (c candidate) outlineInterior(f *fieldCells, comps []int32, W, H int) []int32 {
	var out []int32
	for y := c.box.Min.Y; y < c.box.Max.Y; y++ {
		for x := c.box.Min.X; x < c.box.Max.X; x++ {
			if f.labels[y*f.w+x] != int32(c.label) {
				continue
			}
			fx, fy := min(W-1, int((float64(x)+0.5)*f.scale)), min(H-1, int((float64(y)+0.5)*f.scale))
			if l := comps[fy*W+fx]; l != 0 && !slices.Contains(out, l) {
				out = append(out, l)
			}
		}
	}
	return out
}

// truthCells splits a white-cell mask into cells and returns each cell's
// centroid (field pixels) and the number of mask components. Fragments
// smaller than a quarter of a red cell (slivers at a split) are dropped.
func truthCells(gt *Mask, rbcRadius float64) ([]image.Point, int) {
	_, comps := labelRegions(gt.Pix, gt.W, gt.H)
	dist := distanceToBackground(gt.Pix, gt.W, gt.H, true)
	// Every peak of the truth splits (no least peak): the truth's cells do
	// not move with the method's lobe rule.
	labels, n := splitByDynamics(dist, gt.W, gt.H, float32(splitDynamic*rbcRadius), 0)
	area := make([]int, n+1)
	sx, sy := make([]float64, n+1), make([]float64, n+1)
	for p, l := range labels {
		if l != 0 {
			area[l]++
			sx[l] += float64(p % gt.W)
			sy[l] += float64(p / gt.W)
		}
	}
	var out []image.Point
	minArea := 0.25 * math.Pi * rbcRadius * rbcRadius
	for l := 1; l <= n; l++ {
		if float64(area[l]) >= minArea {
			out = append(out, image.Pt(int(sx[l]/float64(area[l])), int(sy[l]/float64(area[l]))))
		}
	}
	return out, len(comps)
}

// isWhiteCellAt applies the platelet-or-white-cell size rule to the
// stained object under a field pixel.
func (f *fieldCells) isWhiteCellAt(p image.Point) bool {
	_, white := f.centroidNucleus(p)
	return white
}

// centroidNucleus measures the nucleus-stained area (red-cell areas) of
// the stained object under a field pixel and applies the size rule.
func (f *fieldCells) centroidNucleus(p image.Point) (float64, bool) {
	x0, y0 := int(float64(p.X)/f.scale), int(float64(p.Y)/f.scale)
	// The stained object: stain above 0.15, grown from the most stained
	// pixel within 3 working pixels of the centroid.
	seed, best := -1, float32(unstainedStain)
	for y := max(0, y0-3); y <= min(f.h-1, y0+3); y++ {
		for x := max(0, x0-3); x <= min(f.w-1, x0+3); x++ {
			if s := f.stain[y*f.w+x]; s > best {
				seed, best = y*f.w+x, s
			}
		}
	}
	if seed < 0 {
		return 0, false
	}
	seen := map[int]bool{seed: true}
	stack := []int{seed}
	nucleus, edge := 0, false
	for len(stack) > 0 {
		q := stack[len(stack)-1]
		stack = stack[:len(stack)-1]
		if f.stain[q] > nucleusStain {
			nucleus++
		}
		x, y := q%f.w, q/f.w
		if x == 0 || y == 0 || x == f.w-1 || y == f.h-1 {
			edge = true
		}
		for dy := -1; dy <= 1; dy++ {
			for dx := -1; dx <= 1; dx++ {
				xx, yy := x+dx, y+dy
				if xx < 0 || yy < 0 || xx >= f.w || yy >= f.h {
					continue
				}
				n := yy*f.w + xx
				if !seen[n] && f.stain[n] > unstainedStain {
					seen[n] = true
					stack = append(stack, n)
				}
			}
		}
	}
	need := minNucleusArea
	if edge {
		need = minEdgeNucleus
	}
	a := float64(nucleus) / f.area()
	return a, a >= need
}

// maskDice is the Dice coefficient of the kept cells' mask, brought to
// full resolution by linear interpolation, against the truth mask.
func (f *fieldCells) maskDice(kept map[int32]bool, gt *Mask) (float64, [3]int, error) {
	small := make([]uint8, f.w*f.h)
	for p, l := range f.labels {
		if kept[l] {
			small[p] = 255
		}
	}
	m, err := NewMatCopy(f.h, f.w, gocv.MatTypeCV8U, small)
	if err != nil {
		return 0, [3]int{}, err
	}
	defer m.Close()
	big := gocv.NewMat()
	defer big.Close()
	gocv.Resize(m, &big, image.Pt(gt.W, gt.H), 0, 0, gocv.InterpolationLinear)
	pred := big.ToBytes()
	if len(pred) != len(gt.Pix) {
		return 0, [3]int{}, fmt.Errorf("resized mask has %d pixels, want %d", len(pred), len(gt.Pix))
	}
	inter, a, b := 0, 0, 0
	for p := range pred {
		pp, gg := pred[p] >= 128, gt.Pix[p] != 0
		if pp {
			a++
		}
		if gg {
			b++
		}
		if pp && gg {
			inter++
		}
	}
	counts := [3]int{inter, a, b}
	if a+b == 0 {
		return 1, counts, nil
	}
	return 2 * float64(inter) / float64(a+b), counts, nil
}

// kmeansNucleusStain is the mean stain index of the pixels the paper's
// plain k=3 clustering (lowest green) would call nucleus in this field:
// near 0 means the cluster is red cells, not nuclei.
func kmeansNucleusStain(field gocv.Mat, f *fieldMaps, seed uint64) float64 {
	small := downscaleTo(field, max(f.w, f.h))
	defer small.Close()
	b := Blur(small)
	defer b.Close()
	cl, err := Cluster(b, KMeansOptions{K: 3, Space: SpaceBGR, Seed: seed})
	if err != nil || cl.W != f.w || cl.H != f.h {
		return math.NaN()
	}
	nuc := NucleusCluster(cl)
	sum, n := 0.0, 0
	for p, l := range cl.Labels {
		if int(l) == nuc {
			sum += float64(f.stain[p])
			n++
		}
	}
	if n == 0 {
		return math.NaN()
	}
	return sum / float64(n)
}

// Rate is a proportion with its Wilson 95% interval.
type Rate struct {
	K     int     `json:"k"`
	N     int     `json:"n"`
	Value float64 `json:"value"`
	Lo    float64 `json:"lo"`
	Hi    float64 `json:"hi"`
}

// Wilson returns k/n with the Wilson score 95% confidence interval.
func Wilson(k, n int) Rate {
	r := Rate{K: k, N: n}
	if n == 0 {
		return r
	}
	const z = 1.959963984540054
	p, nf := float64(k)/float64(n), float64(n)
	d := 1 + z*z/nf
	c := (p + z*z/(2*nf)) / d
	h := z * math.Sqrt(p*(1-p)/nf+z*z/(4*nf*nf)) / d
	r.Value, r.Lo, r.Hi = p, max(0, c-h), min(1, c+h)
	return r
}

func (r Rate) String() string {
	if r.N == 0 {
		return "n/a"
	}
	return fmt.Sprintf("%.3f (%d/%d, 95%% CI %.3f-%.3f)", r.Value, r.K, r.N, r.Lo, r.Hi)
}

// FieldGroup sums the results of a set of fields.
type FieldGroup struct {
	Name       string  `json:"name"`
	Fields     int     `json:"fields"`
	Recall     Rate    `json:"recall"`
	Precision  Rate    `json:"precision"`
	Components Rate    `json:"components_found,omitempty"` // mask truth: components hit (the baseline's count)
	Dice       float64 `json:"mean_dice,omitempty"`        // mask truth
	DicePooled float64 `json:"dice_pooled,omitempty"`
	Platelets  int     `json:"platelets"`
	Smudges    int     `json:"smudges"`
}

// SumFields groups results.
func SumFields(name string, rs []FieldResult) FieldGroup {
	g := FieldGroup{Name: name, Fields: len(rs)}
	found, truth, tp, det, cf, cn := 0, 0, 0, 0, 0, 0
	dice, nd := 0.0, 0
	var dc [3]int
	for _, r := range rs {
		found += r.Found
		truth += r.WhiteCells
		if r.PrecisionScored {
			tp += r.TruePositives
			det += r.Kept
		}
		if r.Truth == "mask" {
			cf += r.ComponentsFound
			cn += r.MaskComponents
			dice += r.Dice
			nd++
			for i := range dc {
				dc[i] += r.DiceCounts[i]
			}
		}
		g.Platelets += r.Platelets
		g.Smudges += r.Smudges
	}
	g.Recall, g.Precision, g.Components = Wilson(found, truth), Wilson(tp, det), Wilson(cf, cn)
	if nd > 0 {
		g.Dice = dice / float64(nd)
	}
	if dc[1]+dc[2] > 0 {
		g.DicePooled = 2 * float64(dc[0]) / float64(dc[1]+dc[2])
	}
	return g
}

// WriteFieldTable writes a plain-text table of per-field results.
func WriteFieldTable(w io.Writer, rs []FieldResult) {
	fmt.Fprintf(w, "%-8s %-8s %-8s %6s %5s %5s %5s %5s %5s %6s  %s\n", "field", "label", "split", "R(px)", "truth", "found", "kept", "TP", "plt", "dice", "truth kind")
	for _, r := range rs {
		tp, dice := "-", "-"
		if r.PrecisionScored {
			tp = strconv.Itoa(r.TruePositives)
		}
		if r.Truth == "mask" {
			dice = fmt.Sprintf("%.3f", r.Dice)
		}
		fmt.Fprintf(w, "%-8s %-8s %-8s %6.1f %5d %5d %5d %5s %5d %6s  %s\n", r.Field, strings.TrimSuffix(r.Label, "-slide"), r.Split,
			r.RedCellRadius, r.WhiteCells, r.Found, r.Kept, tp, r.Platelets, dice, r.Truth)
	}
}

// FitSmudgeModel fits the smudge model to samples: a logistic regression
// on standardised features, classes weighted equally, with a small L2
// penalty, by deterministic gradient descent.
func FitSmudgeModel(samples []SmudgeSample) (logisticModel, error) {
	var m logisticModel
	n := len(samples)
	pos := 0
	for _, s := range samples {
		if s.Smudge {
			pos++
		}
	}
	if pos == 0 || pos == n {
		return m, fmt.Errorf("smudge fit: %d smudge and %d intact samples, need both", pos, n-pos)
	}
	for i := range 3 {
		sum, sum2 := 0.0, 0.0
		for _, s := range samples {
			sum += s.X[i]
			sum2 += s.X[i] * s.X[i]
		}
		mean := sum / float64(n)
		m.Mean[i] = mean
		m.Scale[i] = math.Sqrt(max(1e-12, sum2/float64(n)-mean*mean))
	}
	wPos, wNeg := 0.5/(float64(pos)/float64(n)), 0.5/(float64(n-pos)/float64(n))
	const steps, rate, lambda = 5000, 0.1, 1.0
	for range steps {
		var g [3]float64
		gb := 0.0
		for _, s := range samples {
			y, w := 0.0, wNeg
			if s.Smudge {
				y, w = 1, wPos
			}
			d := (m.prob(s.X) - y) * w
			for i := range 3 {
				g[i] += d * (s.X[i] - m.Mean[i]) / m.Scale[i]
			}
			gb += d
		}
		for i := range 3 {
			m.Weight[i] -= rate * (g[i]/float64(n) + lambda*m.Weight[i]/float64(n))
		}
		m.Bias -= rate * gb / float64(n)
	}
	return m, nil
}

// SmudgeCrossValidation refits the smudge model leaving each field out in
// turn and counts, on the left-out fields, the smudge cells kept and the
// intact cells dropped at the shipped threshold.
func SmudgeCrossValidation(samples []SmudgeSample) (smudgesKept, smudges, intactDropped, intact int, err error) {
	fields := map[string]bool{}
	for _, s := range samples {
		fields[s.Field] = true
	}
	for f := range fields {
		var train, test []SmudgeSample
		for _, s := range samples {
			if s.Field == f {
				test = append(test, s)
			} else {
				train = append(train, s)
			}
		}
		m, err := FitSmudgeModel(train)
		if err != nil {
			return 0, 0, 0, 0, err
		}
		for _, s := range test {
			drop := m.prob(s.X) >= smudgeThreshold
			if s.Smudge {
				smudges++
				if !drop {
					smudgesKept++
				}
			} else {
				intact++
				if drop {
					intactDropped++
				}
			}
		}
	}
	return smudgesKept, smudges, intactDropped, intact, nil
}

// GoString prints the model as the Go literal of smudgeModel.
func (m logisticModel) GoString() string {
	return fmt.Sprintf("logisticModel{\n\tMean:   [3]float64{%.4f, %.4f, %.4f},\n\tScale:  [3]float64{%.4f, %.4f, %.4f},\n\tWeight: [3]float64{%.4f, %.4f, %.4f},\n\tBias:   %.4f,\n}",
		m.Mean[0], m.Mean[1], m.Mean[2], m.Scale[0], m.Scale[1], m.Scale[2], m.Weight[0], m.Weight[1], m.Weight[2], m.Bias)
}

// ShippedSmudgeModel is the model FindCells uses.
func ShippedSmudgeModel() logisticModel { return smudgeModel }
