package vision

import (
	"errors"
	"fmt"
	"math"
	"slices"

	"gocv.io/x/gocv"
)

// Judging a segmentation without ground truth (issue 11, item 5). Sources
// without masks (C-NMC, PBC) cannot be scored with Dice; what can be asked
// of every crop is that its masks show ONE central cell of plausible size
// with its nucleus inside it. CheckCellMasks asks that.
//
// The rule's constants were fixed from the 260 ground-truth masks of
// ALL-IDB2 (measured with the same code, see DeriveSanityRule) BEFORE the
// check was run on C-NMC or PBC, and are not to be tuned on them. Each bound
// is the 1st or 99th percentile of the truth (linear interpolation), moved
// outwards by the factor SanityMargin and rounded to two significant
// digits; `allscreen cell-sanity` recomputes them and says when they differ.
const (
	// SanityMargin widens every bound taken from the ALL-IDB2 truth by this
	// factor away from the truth's 1st-99th percentile range: 1.5 in area is
	// about 22% in diameter, room for cells and framings of other
	// laboratories beyond the 260 ALL-IDB2 cells.
	SanityMargin = 1.5
	// SmearCellShareMin and SmearCellShareMax bound the cell's area over
	// the crop's area, for a crop of a smear (a cell centred among its
	// neighbours, as ALL-IDB2's crops are). ALL-IDB2 truth: 1st percentile
	// 0.0421, 99th 0.4669; divided and multiplied by SanityMargin.
	SmearCellShareMin = 0.028
	SmearCellShareMax = 0.70
	// MaxCentreOffset bounds the distance of the cell's centroid from the
	// crop's centre, over the crop's short side. ALL-IDB2 truth: 99th
	// percentile 0.112 (its crops clipped at the slide border reach 0.14),
	// times SanityMargin.
	MaxCentreOffset = 0.17
	// MinNucleusShare bounds the nucleus's area over the cell's from below.
	// ALL-IDB2 truth: 1st percentile 0.314 (normal cells; blasts start at
	// 0.68), divided by SanityMargin. There is no upper bound: a blast's
	// nucleus may fill nearly all of its cell (truth up to 0.95).
	MinNucleusShare = 0.21
	// MinMainShare: the largest 8-connected piece of the cell mask must hold
	// at least this share of the mask (more in other pieces is another cell
	// or a broken outline), and at least this share of the nucleus. Not a
	// percentile: every ALL-IDB2 (and wbcseg) truth cell is a single piece
	// holding its whole nucleus; the tenth left over tolerates specks.
	MinMainShare = 0.9
)

// A cell cut out onto black by a data set's owners (C-NMC) and cropped
// tightly fills its crop whatever its size, so the crop-relative bounds
// above mean nothing there. Its truth outline is known, though: the cut-out
// (the non-black pixels, holes filled). Its cell must cover that cut-out
// within the same margin: from 1/SanityMargin to SanityMargin of its area.
const (
	CutOutCellShareMin = 1 / SanityMargin
	CutOutCellShareMax = SanityMargin
)

// The verdicts, in the order the rules are tried; a CellSanity's Verdict is
// the first rule that fails, or VerdictSane.
const (
	VerdictSane          = "sane"
	ReasonNoNucleus      = "no nucleus"           // no nucleus mask, or an empty one (ErrNoNucleus)
	ReasonNoCell         = "no cell"              // an empty cell mask
	ReasonBadMasks       = "bad masks"            // masks whose size differs from the crop's
	ReasonSeveralCells   = "several cells"        // the main piece holds under MinMainShare of the cell mask
	ReasonOffCentre      = "off centre"           // the main piece's centroid beyond MaxCentreOffset
	ReasonTooSmall       = "too small"            // cell area under the kind's lower bound
	ReasonTooLarge       = "too large"            // cell area over the kind's upper bound
	ReasonNucleusOutside = "nucleus outside cell" // under MinMainShare of the nucleus in the main piece
	ReasonSmallNucleus   = "nucleus too small"    // nucleus under MinNucleusShare of the cell
)

// SanityReasons lists the reasons a segmentation can fail, in the order
// they are tried.
var SanityReasons = []string{ReasonNoNucleus, ReasonNoCell, ReasonBadMasks, ReasonSeveralCells, ReasonOffCentre,
	ReasonTooSmall, ReasonTooLarge, ReasonNucleusOutside, ReasonSmallNucleus}

// CropKind says what a crop's cell size is judged against.
type CropKind int

const (
	SmearCrop  CropKind = iota // a cell among its neighbours: size over the crop's area
	CutOutCrop                 // a cell cut out onto black: size over the cut-out's area
)

func (k CropKind) String() string {
	if k == CutOutCrop {
		return "cut-out"
	}
	return "smear"
}

// MarshalText writes the kind's name.
func (k CropKind) MarshalText() ([]byte, error) { return []byte(k.String()), nil }

// UnmarshalText reads a kind's name.
func (k *CropKind) UnmarshalText(b []byte) error {
	switch string(b) {
	case "smear":
		*k = SmearCrop
	case "cut-out":
		*k = CutOutCrop
	default:
		return fmt.Errorf("unknown crop kind %q (want smear or cut-out)", b)
	}
	return nil
}

// CropFrame is the crop a segmentation is judged in: its size, its kind and
// the area the cell's size is relative to.
type CropFrame struct {
	Kind CropKind
	W, H int
	Area int // W*H for a smear crop; the cut-out's pixels for a cut-out
}

// SmearFrame is the frame of a w x h smear crop.
func SmearFrame(w, h int) CropFrame { return CropFrame{Kind: SmearCrop, W: w, H: h, Area: w * h} }

// FrameOf tells a cut-out from a smear crop the way SegmentCell does (at
// least a twentieth of the pixels black, every channel at most blackLevel)
// and, for a cut-out, measures the cut-out: its non-black pixels with the
// holes filled.
func FrameOf(crop gocv.Mat) (CropFrame, error) {
	if err := checkBGR(crop); err != nil {
		return CropFrame{}, fmt.Errorf("crop frame: %w", err)
	}
	w, h := crop.Cols(), crop.Rows()
	pix := crop.ToBytes()
	if len(pix) != 3*w*h {
		return CropFrame{}, fmt.Errorf("crop frame: %d bytes for %dx%d BGR", len(pix), w, h)
	}
	cut := NewMask(w, h)
	black := 0
	for p := range w * h {
		if pix[3*p] <= blackLevel && pix[3*p+1] <= blackLevel && pix[3*p+2] <= blackLevel {
			black++
		} else {
			cut.Pix[p] = 255
		}
	}
	if black < w*h/20 {
		return SmearFrame(w, h), nil
	}
	return CropFrame{Kind: CutOutCrop, W: w, H: h, Area: fillHoles(cut).Area()}, nil
}

// ShareBounds are the cell-area bounds (over Area) for the frame's kind.
func (f CropFrame) ShareBounds() (lo, hi float64) {
	if f.Kind == CutOutCrop {
		return CutOutCellShareMin, CutOutCellShareMax
	}
	return SmearCellShareMin, SmearCellShareMax
}

// CellSanity is the judgement of one segmentation and the measures behind
// it. Shares are 0 when there is nothing to measure.
type CellSanity struct {
	Verdict string   `json:"verdict"`           // VerdictSane or the first failed rule
	Reasons []string `json:"reasons,omitempty"` // every failed rule, in SanityReasons order
	Kind    CropKind `json:"kind"`
	// CellShare is the main piece's area over the frame's Area.
	CellShare float64 `json:"cell_share"`
	// Components counts the 8-connected pieces of the cell mask; MainShare
	// is the largest one's share of the mask.
	Components int     `json:"components"`
	MainShare  float64 `json:"main_share"`
	// CentreOffset is the main piece's centroid's distance from the crop's
	// centre over the crop's short side.
	CentreOffset float64 `json:"centre_offset"`
	// NucleusShare is the nucleus inside the main piece over the main
	// piece's area; NucleusInside is the share of the nucleus in it.
	NucleusShare  float64 `json:"nucleus_share"`
	NucleusInside float64 `json:"nucleus_inside"`
}

// Sane reports whether every rule held.
func (s CellSanity) Sane() bool { return s.Verdict == VerdictSane }

func (s *CellSanity) fail(reason string) {
	s.Reasons = append(s.Reasons, reason)
	if s.Verdict == VerdictSane {
		s.Verdict = reason
	}
}

// CheckCellMasks judges a segmentation of a crop without ground truth: is
// it one central cell of plausible size (for the frame's kind) with its
// nucleus inside it? Nil masks count as no nucleus (or no cell).
func CheckCellMasks(m *CellMasks, f CropFrame) CellSanity {
	s := CellSanity{Verdict: VerdictSane, Kind: f.Kind}
	switch {
	case m == nil || m.Nucleus == nil || m.Nucleus.Area() == 0:
		s.fail(ReasonNoNucleus)
		return s
	case m.Cell == nil || m.Cell.Area() == 0:
		s.fail(ReasonNoCell)
		return s
	case m.Nucleus.check() != nil || m.Cell.check() != nil || m.Cell.W != f.W || m.Cell.H != f.H ||
		m.Nucleus.W != f.W || m.Nucleus.H != f.H || f.Area <= 0:
		s.fail(ReasonBadMasks)
		return s
	}
	ms := measureCellMasks(m, f)
	ms.Verdict, ms.Kind = VerdictSane, f.Kind
	if ms.MainShare < MinMainShare {
		ms.fail(ReasonSeveralCells)
	}
	if ms.CentreOffset > MaxCentreOffset {
		ms.fail(ReasonOffCentre)
	}
	lo, hi := f.ShareBounds()
	if ms.CellShare < lo {
		ms.fail(ReasonTooSmall)
	}
	if ms.CellShare > hi {
		ms.fail(ReasonTooLarge)
	}
	if ms.NucleusInside < MinMainShare {
		ms.fail(ReasonNucleusOutside)
	}
	if ms.NucleusShare < MinNucleusShare {
		ms.fail(ReasonSmallNucleus)
	}
	return ms
}

// measureCellMasks measures well-formed, non-empty masks of f's size.
func measureCellMasks(m *CellMasks, f CropFrame) CellSanity {
	w, h := f.W, f.H
	labels, regions := labelRegions(m.Cell.Pix, w, h)
	var s CellSanity
	s.Components = len(regions)
	main, total := regions[0], 0
	for _, r := range regions {
		total += r.area
		if r.area > main.area {
			main = r
		}
	}
	s.MainShare = float64(main.area) / float64(total)
	s.CellShare = float64(main.area) / float64(f.Area)
	cx, cy := main.center()
	s.CentreOffset = math.Hypot(cx-float64(w-1)/2, cy-float64(h-1)/2) / float64(min(w, h))
	nuc, in := 0, 0
	for p, v := range m.Nucleus.Pix {
		if v != 0 {
			nuc++
			if labels[p] == int32(main.label) {
				in++
			}
		}
	}
	s.NucleusInside = float64(in) / float64(nuc)
	s.NucleusShare = float64(in) / float64(main.area)
	return s
}

// SanityRule is the rule recomputed from ground-truth masks of smear crops:
// the percentiles it starts from and the bounds they give.
type SanityRule struct {
	N                 int     `json:"n"`
	ShareP1, ShareP99 float64 `json:"-"`
	OffsetP99         float64 `json:"-"`
	NucleusP1         float64 `json:"-"`
	ShareMin          float64 `json:"share_min"`
	ShareMax          float64 `json:"share_max"`
	MaxOffset         float64 `json:"max_offset"`
	MinNucleus        float64 `json:"min_nucleus"`
}

// DeriveSanityRule applies the rule to ground-truth masks of smear crops
// (ALL-IDB2's): the 1st and 99th percentiles of the cell's share of the
// crop, the 99th of the centre offset and the 1st of the nucleus share,
// each moved outwards by SanityMargin (not rounded). Masks that are empty
// or malformed are skipped.
func DeriveSanityRule(truth []*CellMasks) SanityRule {
	var share, off, nuc []float64
	for _, m := range truth {
		if m == nil || m.Cell == nil || m.Nucleus == nil || m.Cell.check() != nil || m.Nucleus.check() != nil ||
			m.Cell.Area() == 0 || m.Nucleus.Area() == 0 || m.Cell.W != m.Nucleus.W || m.Cell.H != m.Nucleus.H {
			continue
		}
		s := measureCellMasks(m, SmearFrame(m.Cell.W, m.Cell.H))
		share, off, nuc = append(share, s.CellShare), append(off, s.CentreOffset), append(nuc, s.NucleusShare)
	}
	r := SanityRule{N: len(share)}
	if r.N == 0 {
		return r
	}
	r.ShareP1, r.ShareP99 = Percentile(share, 0.01), Percentile(share, 0.99)
	r.OffsetP99, r.NucleusP1 = Percentile(off, 0.99), Percentile(nuc, 0.01)
	r.ShareMin, r.ShareMax = r.ShareP1/SanityMargin, r.ShareP99*SanityMargin
	r.MaxOffset, r.MinNucleus = r.OffsetP99*SanityMargin, r.NucleusP1/SanityMargin
	return r
}

// Percentile is the q-quantile (0..1) of v with linear interpolation
// between the order statistics (numpy's default); NaN when v is empty.
func Percentile(v []float64, q float64) float64 {
	if len(v) == 0 {
		return math.NaN()
	}
	s := slices.Clone(v)
	slices.Sort(s)
	pos := min(max(q, 0), 1) * float64(len(s)-1)
	i := int(pos)
	if i >= len(s)-1 {
		return s[len(s)-1]
	}
	return s[i] + (pos-float64(i))*(s[i+1]-s[i])
}

// TwoSignificant rounds x to two significant digits, as the rule's
// constants are.
func TwoSignificant(x float64) float64 {
	if x == 0 || math.IsNaN(x) || math.IsInf(x, 0) {
		return x
	}
	p := math.Pow(10, 1-math.Floor(math.Log10(math.Abs(x))))
	return math.Round(x*p) / p
}

// SegmentAndCheck segments a crop with SegmentCell and judges the masks in
// the crop's frame. A crop without a stained nucleus (ErrNoNucleus) is
// judged ReasonNoNucleus, with nil masks and no error; other errors are
// returned.
func SegmentAndCheck(crop gocv.Mat) (*CellMasks, CellSanity, error) {
	f, err := FrameOf(crop)
	if err != nil {
		return nil, CellSanity{}, err
	}
	m, err := SegmentCell(crop)
	if errors.Is(err, ErrNoNucleus) {
		return nil, CheckCellMasks(nil, f), nil
	}
	if err != nil {
		return nil, CellSanity{}, err
	}
	return m, CheckCellMasks(m, f), nil
}
