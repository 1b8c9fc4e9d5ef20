package main

import (
	"bytes"
	"fmt"
	"image"
	"image/color"
	"io"
	"math"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strings"

	"allscreen/vision"

	"gocv.io/x/gocv"
)

// The contact sheets: tiles of sheetTile pixels with a two-line label
// (class, verdict) under each, sheetCols to a row.
const (
	sheetTile   = 96
	sheetCols   = 12
	sheetPad    = 4
	sheetLabelH = 26
)

var (
	cellColour    = color.RGBA{G: 255, A: 255}         // the cell's outline
	nucleusColour = color.RGBA{R: 255, G: 230, A: 255} // the nucleus's outline (as allscreen segment --overlay)
)

// sheetCredit is the attribution printed on each sheet itself, so the
// image keeps it when it travels without the page.
var sheetCredit = map[string]string{
	"cnmc":      "C-NMC 2019: A. Gupta, R. Gupta, ALL Challenge dataset of ISBI 2019, TCIA, doi:10.7937/tcia.2019.dc64i46r. CC BY 3.0. Cropped, halved, downscaled, outlines drawn.",
	"pbc-types": "PBC: A. Acevedo et al., Data in Brief 30 (2020) 105474, doi:10.17632/snkd93bnjr.1. CC BY 4.0. Downscaled, outlines drawn.",
}

// drawSanityTile shrinks the crop into a sheetTile square (grey around
// it) and outlines the cell and nucleus on it, one pixel wide whatever the
// crop's size: the masks' contours, found at full size, are scaled to the
// tile.
func drawSanityTile(img gocv.Mat, m *vision.CellMasks) ([]byte, error) {
	w, h := img.Cols(), img.Rows()
	scale := float64(sheetTile) / float64(max(w, h))
	tw, th := max(1, int(math.Round(float64(w)*scale))), max(1, int(math.Round(float64(h)*scale)))
	small := gocv.NewMat()
	defer small.Close()
	interp := gocv.InterpolationArea
	if scale > 1 {
		interp = gocv.InterpolationLinear
	}
	gocv.Resize(img, &small, image.Pt(tw, th), 0, 0, interp)
	if m != nil {
		for _, part := range []struct {
			mask *vision.Mask
			c    color.RGBA
		}{{m.Cell, cellColour}, {m.Nucleus, nucleusColour}} {
			mat, err := part.mask.Mat()
			if err != nil {
				return nil, err
			}
			contours := gocv.FindContours(mat, gocv.RetrievalExternal, gocv.ChainApproxNone)
			mat.Close()
			for _, c := range contours {
				for i, p := range c {
					c[i] = image.Pt(min(tw-1, int((float64(p.X)+0.5)*scale)), min(th-1, int((float64(p.Y)+0.5)*scale)))
				}
			}
			if len(contours) > 0 {
				gocv.DrawContours(&small, contours, -1, part.c, 1)
			}
		}
	}
	pix := small.ToBytes()
	if len(pix) != 3*tw*th {
		return nil, fmt.Errorf("tile: %d bytes for %dx%d", len(pix), tw, th)
	}
	tile := bytes.Repeat([]byte{90}, 3*sheetTile*sheetTile)
	x0, y0 := (sheetTile-tw)/2, (sheetTile-th)/2
	for y := range th {
		copy(tile[3*((y0+y)*sheetTile+x0):], pix[3*y*tw:3*(y+1)*tw])
	}
	return tile, nil
}

// byHash orders images by the hash of their file name (a fixed
// pseudo-random order), then by name.
func byHash(a, b *sanityImage) int {
	if a.hash != b.hash {
		if a.hash < b.hash {
			return -1
		}
		return 1
	}
	return strings.Compare(a.File, b.File)
}

// roundRobin takes up to n items, one from each group in turn (groups in
// the given order, each already ordered).
func roundRobin(groups [][]*sanityImage, n int) []*sanityImage {
	var out []*sanityImage
	for i := 0; len(out) < n; i++ {
		took := false
		for _, g := range groups {
			if i < len(g) && len(out) < n {
				out = append(out, g[i])
				took = true
			}
		}
		if !took {
			break
		}
	}
	return out
}

// spreadSample is a fixed sample of n images spread evenly over the
// classes, shown grouped by class.
func spreadSample(imgs []*sanityImage, n int) []*sanityImage {
	by := map[string][]*sanityImage{}
	for _, im := range imgs {
		by[im.Label] = append(by[im.Label], im)
	}
	var groups [][]*sanityImage
	for _, c := range sortedKeys(by) {
		g := slices.Clone(by[c])
		slices.SortFunc(g, byHash)
		groups = append(groups, g)
	}
	out := roundRobin(groups, n)
	slices.SortStableFunc(out, func(a, b *sanityImage) int { return strings.Compare(a.Label, b.Label) })
	return out
}

// failureSample is up to n of the images not judged sane, spread over the
// reasons (most frequent first) and, within a reason, over the classes;
// shown grouped by reason.
func failureSample(imgs []*sanityImage, n int) []*sanityImage {
	by := map[string][]*sanityImage{}
	for _, im := range imgs {
		if !im.Sanity.Sane() {
			by[im.Sanity.Verdict] = append(by[im.Sanity.Verdict], im)
		}
	}
	reasons := sortedKeys(by)
	sort.SliceStable(reasons, func(i, j int) bool { return len(by[reasons[i]]) > len(by[reasons[j]]) })
	var groups [][]*sanityImage
	for _, r := range reasons {
		// Within a reason, the classes take turns too, so one large class
		// does not fill the row.
		byClass := map[string][]*sanityImage{}
		for _, im := range by[r] {
			byClass[im.Label] = append(byClass[im.Label], im)
		}
		var cls [][]*sanityImage
		for _, c := range sortedKeys(byClass) {
			g := byClass[c]
			slices.SortFunc(g, byHash)
			cls = append(cls, g)
		}
		groups = append(groups, roundRobin(cls, len(by[r])))
	}
	out := roundRobin(groups, n)
	rank := map[string]int{}
	for i, r := range reasons {
		rank[r] = i
	}
	slices.SortStableFunc(out, func(a, b *sanityImage) int { return rank[a.Sanity.Verdict] - rank[b.Sanity.Verdict] })
	return out
}

// shortVerdict fits a verdict under a tile.
func shortVerdict(v string) string {
	switch v {
	case vision.ReasonNucleusOutside:
		return "nuc. outside"
	case vision.ReasonSmallNucleus:
		return "nuc. too small"
	case verdictError:
		return "error"
	}
	return v
}

// putFitted writes text at (x, y) (baseline), shrunk to fit width.
func putFitted(m *gocv.Mat, text string, x, y, width int, scale float64, c color.RGBA) {
	for scale > 0.5 && gocv.GetTextSize(text, gocv.FontHersheyPlain, scale, 1).X > width {
		scale -= 0.05
	}
	gocv.PutText(m, text, image.Pt(x, y), gocv.FontHersheyPlain, scale, c, 1)
}

// writeSanitySheet draws one CC BY source's contact sheet: its failures
// (up to half of perSource, spread over reasons), then a fixed sample of
// perSource images spread over classes. It returns the files drawn, in
// order. Sets that may not be redistributed are refused.
func writeSanitySheet(path string, src sanitySource, all []*sanityImage, perSource int) (sheetJSON, error) {
	if !src.Public || sheetCredit[src.Name] == "" {
		return sheetJSON{}, fmt.Errorf("contact sheet of %s refused: only CC BY sets may be drawn", src.Name)
	}
	var imgs []*sanityImage
	for _, im := range all {
		if im.Source == src.Name && im.tile != nil {
			imgs = append(imgs, im)
		}
	}
	fails := failureSample(imgs, max(1, perSource/2))
	sample := spreadSample(imgs, perSource)
	rows := func(n int) int { return (n + sheetCols - 1) / sheetCols }
	cellW, cellH := sheetTile+sheetPad, sheetTile+sheetLabelH
	const titleH, sectionH, footH = 40, 20, 22
	W := sheetCols*cellW + sheetPad
	H := titleH + sectionH + max(1, rows(len(fails)))*cellH + sectionH + rows(len(sample))*cellH + footH
	buf := bytes.Repeat([]byte{255}, 3*W*H)
	type placed struct {
		im   *sanityImage
		x, y int
	}
	var tiles []placed
	y := titleH + sectionH
	place := func(list []*sanityImage) {
		for i, im := range list {
			x, yy := sheetPad+(i%sheetCols)*cellW, y+(i/sheetCols)*cellH
			for r := range sheetTile {
				copy(buf[3*((yy+r)*W+x):], im.tile[3*r*sheetTile:3*(r+1)*sheetTile])
			}
			tiles = append(tiles, placed{im, x, yy})
		}
	}
	place(fails)
	failY := y
	y += max(1, rows(len(fails)))*cellH + sectionH
	sampleY := y
	place(sample)
	sheet, err := vision.NewMatCopy(H, W, gocv.MatTypeCV8UC3, buf)
	if err != nil {
		return sheetJSON{}, err
	}
	defer sheet.Close()
	black, green, red := color.RGBA{A: 255}, color.RGBA{G: 120, A: 255}, color.RGBA{R: 200, A: 255}
	sane := 0
	for _, im := range imgs {
		if im.Sanity.Sane() {
			sane++
		}
	}
	putFitted(&sheet, fmt.Sprintf("%s: SegmentCell %s, cell outline green, nucleus outline yellow; %d of %d judged one central cell of plausible size",
		src.Name, vision.CellSegmentationVersion, sane, len(imgs)), sheetPad, 16, W-2*sheetPad, 1.1, black)
	putFitted(&sheet, "under each tile: the class, then the verdict (the first rule failed, or sane)", sheetPad, 34, W-2*sheetPad, 0.9, black)
	failTitle := fmt.Sprintf("not sane: %d of %d shown, spread over the reasons", len(fails), len(imgs)-sane)
	if len(fails) == 0 {
		failTitle = "not sane: none"
	}
	putFitted(&sheet, failTitle, sheetPad, failY-5, W-2*sheetPad, 1.0, red)
	putFitted(&sheet, fmt.Sprintf("a fixed sample of %d spread over the classes (by a hash of the file name), grouped by class", len(sample)),
		sheetPad, sampleY-5, W-2*sheetPad, 1.0, black)
	for _, t := range tiles {
		putFitted(&sheet, t.im.Label, t.x, t.y+sheetTile+11, sheetTile, 0.85, black)
		c := red
		if t.im.Sanity.Sane() {
			c = green
		}
		putFitted(&sheet, shortVerdict(t.im.Sanity.Verdict), t.x, t.y+sheetTile+23, sheetTile, 0.85, c)
	}
	putFitted(&sheet, sheetCredit[src.Name], sheetPad, H-7, W-2*sheetPad, 0.9, black)
	if !gocv.IMWriteWithParams(path, sheet, []int{gocv.IMWritePngCompression, 9}) {
		return sheetJSON{}, fmt.Errorf("write %s failed", path)
	}
	var out sheetJSON
	for _, im := range fails {
		out.Failures = append(out.Failures, im.File)
	}
	for _, im := range sample {
		out.Sample = append(out.Sample, im.File)
	}
	return out, nil
}

// sanityGroup sums the verdicts of one source's class (or all of it).
type sanityGroup struct {
	Source, Class string
	Sane          vision.Rate
	// SaneApartFromSize: every rule held but perhaps the size rule, whose
	// bounds depend on the kind of crop; comparable across kinds.
	SaneApartFromSize vision.Rate
	Reasons           map[string]int // by verdict (the first rule failed)
	Any               map[string]int // by every rule failed
	Shares            []float64      `json:"-"` // cell share of the segmented images
	NucShares         []float64      `json:"-"` // nucleus share of the cell, segmented images
	TruthNucShares    []float64      `json:"-"` // ... of the ground-truth masks (ALL-IDB2)
	MedianShare       float64        `json:"median_cell_share"`
	Kinds             map[string]int `json:"kinds"`
}

func newSanityGroup(source, class string, imgs []*sanityImage) sanityGroup {
	g := sanityGroup{Source: source, Class: class, Reasons: map[string]int{}, Any: map[string]int{}, Kinds: map[string]int{}}
	k, ks := 0, 0
	for _, im := range imgs {
		s := im.Sanity
		g.Kinds[s.Kind.String()]++
		if s.Sane() {
			k++
		} else {
			g.Reasons[s.Verdict]++
		}
		sizeOnly := true
		for _, r := range s.Reasons {
			g.Any[r]++
			if r != vision.ReasonTooSmall && r != vision.ReasonTooLarge {
				sizeOnly = false
			}
		}
		if sizeOnly {
			ks++
		}
		if s.Components > 0 {
			g.Shares = append(g.Shares, s.CellShare)
			g.NucShares = append(g.NucShares, s.NucleusShare)
		}
		if im.Truth != nil && im.Truth.Components > 0 {
			g.TruthNucShares = append(g.TruthNucShares, im.Truth.NucleusShare)
		}
	}
	g.Sane, g.SaneApartFromSize = vision.Wilson(k, len(imgs)), vision.Wilson(ks, len(imgs))
	if len(g.Shares) > 0 {
		g.MedianShare = vision.Percentile(g.Shares, 0.5)
	}
	return g
}

// pbcNotWhite is PBC's class that is no white cell (no nucleus at all).
const pbcNotWhite = "platelet"

// sanityGroups: per source, "all", then each class; for pbc-types also
// every class but platelets.
func sanityGroups(imgs []*sanityImage) []sanityGroup {
	var out []sanityGroup
	for _, src := range sanitySources {
		var mine []*sanityImage
		by := map[string][]*sanityImage{}
		for _, im := range imgs {
			if im.Source == src.Name {
				mine = append(mine, im)
				by[im.Label] = append(by[im.Label], im)
			}
		}
		if len(mine) == 0 {
			continue
		}
		out = append(out, newSanityGroup(src.Name, "all", mine))
		if _, ok := by[pbcNotWhite]; ok && src.Name == "pbc-types" {
			var white []*sanityImage
			for _, im := range mine {
				if im.Label != pbcNotWhite {
					white = append(white, im)
				}
			}
			out = append(out, newSanityGroup(src.Name, "all but "+pbcNotWhite, white))
		}
		for _, c := range sortedKeys(by) {
			out = append(out, newSanityGroup(src.Name, c, by[c]))
		}
	}
	return out
}

// countsList lists counts by name, most frequent first (ties by name),
// or none when there are none.
func countsList(m map[string]int, none string) string {
	if len(m) == 0 {
		return none
	}
	ks := sortedKeys(m)
	sort.SliceStable(ks, func(i, j int) bool { return m[ks[i]] > m[ks[j]] })
	var parts []string
	for _, k := range ks {
		parts = append(parts, fmt.Sprintf("%s %d", k, m[k]))
	}
	return strings.Join(parts, ", ")
}

func spreadText(v []float64) string {
	if len(v) == 0 {
		return "-"
	}
	return fmt.Sprintf("%.3f (%.3f-%.3f)", vision.Percentile(v, 0.5), vision.Percentile(v, 0.05), vision.Percentile(v, 0.95))
}

func meanOf(v []float64) float64 {
	var s float64
	for _, x := range v {
		s += x
	}
	return s / float64(len(v))
}

// diceRow is one row of the ALL-IDB2 agreement table.
func diceRow(w io.Writer, name string, imgs []*sanityImage) {
	var cell, nuc []float64
	low := 0
	for _, im := range imgs {
		if im.CellDice != nil {
			cell = append(cell, *im.CellDice)
			nuc = append(nuc, *im.NucleusDice)
			if *im.CellDice < 0.8 {
				low++
			}
		}
	}
	if len(cell) == 0 {
		fmt.Fprintf(w, "| %s | %d | - | - | - |\n", name, len(imgs))
		return
	}
	ci := "-"
	if c := bootstrapCI(cell); c != nil {
		ci = fmt.Sprintf("%.3f-%.3f", c[0], c[1])
	}
	fmt.Fprintf(w, "| %s | %d | %.3f (%s) | %.3f | %s |\n", name, len(cell), meanOf(cell), ci, meanOf(nuc), pct(vision.Wilson(low, len(cell))))
}

// writeSanityReport writes docs/single-cells.md.
func writeSanityReport(path, sheetDir string, out cellSanityJSON) error {
	var b bytes.Buffer
	w := &b
	groups := sanityGroups(out.Images)
	find := func(source, class string) sanityGroup {
		for _, g := range groups {
			if g.Source == source && g.Class == class {
				return g
			}
		}
		return sanityGroup{}
	}
	fmt.Fprintf(w, "# Single-cell sources: does the segmentation find one central cell?\n\n")
	fmt.Fprintf(w, "Generated by `make report-single-cells` (`allscreen cell-sanity`) from the data folder; do not edit by hand.\n")
	fmt.Fprintf(w, "Every number below is printed by that run. No ALL-IDB image is drawn here or anywhere in the repository: ALL-IDB2 is\n")
	fmt.Fprintf(w, "reported in numbers only; the contact sheets show C-NMC (CC BY 3.0) and PBC (CC BY 4.0) cells, credited under each.\n\n")
	if out.Every > 1 {
		fmt.Fprintf(w, "**This run took only every %d-th image of each set (`--every %d`); the full run is `make report-single-cells`.**\n\n", out.Every, out.Every)
	}
	fmt.Fprintf(w, "Segmentation: `vision.SegmentCell`, version `%s` (unchanged by this report). ", out.Version)
	var secs []string
	for _, s := range sanitySources {
		if t, ok := out.Seconds[s.Name]; ok {
			secs = append(secs, fmt.Sprintf("%s %.0f s", s.Name, t))
		}
	}
	fmt.Fprintf(w, "Time to segment and judge every image, on this machine: %s.\n\n", strings.Join(secs, ", "))

	fmt.Fprintf(w, "C-NMC (`cnmc`) and PBC (`pbc-types`) come without masks, so their segmentations cannot be scored with Dice. What can be\n")
	fmt.Fprintf(w, "asked of every crop is that its masks show **one central cell of plausible size with its nucleus inside it**:\n")
	fmt.Fprintf(w, "`vision.CheckCellMasks` asks that (the rule is below). ALL-IDB2, which has masks, is the reference: its share judged sane is\n")
	fmt.Fprintf(w, "what \"as sanely as ALL-IDB2\" means, and its masks show whether the check's verdict tracks the real error (Dice below).\n\n")

	fmt.Fprintf(w, "## In short\n\n")
	a2all := find("allidb2", "all")
	fmt.Fprintf(w, "- ALL-IDB2 (the reference): %s of SegmentCell's masks judged sane.\n", pct(a2all.Sane))
	for _, c := range []struct{ source, class, note string }{
		{"cnmc", "all", ""},
		{"pbc-types", "all but " + pbcNotWhite, " (platelets are no white cells; with them: " + pct(find("pbc-types", "all").Sane) + ")"},
	} {
		g := find(c.source, c.class)
		if g.Sane.N == 0 || a2all.Sane.N == 0 {
			continue
		}
		cmp := "its interval overlaps ALL-IDB2's: as sane as ALL-IDB2 as far as these counts can tell"
		switch {
		case g.Sane.Hi < a2all.Sane.Lo:
			cmp = "**less sane than ALL-IDB2** (the intervals do not overlap)"
		case g.Sane.Lo > a2all.Sane.Hi:
			cmp = "saner than ALL-IDB2 (the intervals do not overlap)"
		}
		fmt.Fprintf(w, "- %s, %s: %s%s; %s. Most frequent reason: %s.\n", c.source, c.class, pct(g.Sane), c.note, cmp, countsList(g.Reasons, "-"))
	}
	if cb, ab := find("cnmc", "blast"), find("allidb2", "blast"); len(cb.NucShares) > 0 && len(ab.TruthNucShares) > 0 {
		fmt.Fprintf(w, "- Beyond the verdicts: on C-NMC's blasts SegmentCell's nucleus is a median %.2f of the cell (5th-95th percentile\n", vision.Percentile(cb.NucShares, 0.5))
		fmt.Fprintf(w, "  %.2f-%.2f), against %.2f in ALL-IDB2's expert masks of blasts and %.2f in SegmentCell's masks of them. Lymphoblasts\n",
			vision.Percentile(cb.NucShares, 0.05), vision.Percentile(cb.NucShares, 0.95), vision.Percentile(ab.TruthNucShares, 0.5), vision.Percentile(ab.NucShares, 0.5))
		fmt.Fprintf(w, "  are mostly nucleus, so on these stain-normalised cut-outs the nucleus is taken too small far more often than the\n")
		fmt.Fprintf(w, "  *nucleus too small* verdict (under %.2f) counts; the whole-cell outline follows the owners' cut-out.\n", vision.MinNucleusShare)
	}
	fmt.Fprintf(w, "\nSegmentCell was not changed for this report (it is versioned and the shipped model depends on it).\n\n")
	fmt.Fprintf(w, "## Share judged sane, per source and class\n\n")
	fmt.Fprintf(w, "Sane: every rule holds. *Apart from size*: every rule but the size bounds, which depend on the kind of crop (see\n")
	fmt.Fprintf(w, "[comparable](#which-figures-are-comparable)). Reasons: the first rule each image fails, in the order of the rule list.\n")
	fmt.Fprintf(w, "Cell share: the cell's area over the crop's (smear crops) or over the owners' cut-out (cut-outs), median (5th-95th\n")
	fmt.Fprintf(w, "percentile) of the segmented images. Nucleus share: the nucleus's area over the cell's, likewise (for ALL-IDB2, its\n")
	fmt.Fprintf(w, "expert masks' in brackets). 95%% Wilson intervals.\n\n")
	fmt.Fprintf(w, "| source | class | kind | sane (95%% CI) | sane apart from size | reasons | cell share | nucleus share |\n|---|---|---|---|---|---|---|---|\n")
	for _, g := range groups {
		name := g.Class
		if strings.HasPrefix(g.Class, "all") {
			name = "**" + g.Class + "**"
		}
		nuc := spreadText(g.NucShares)
		if len(g.TruthNucShares) > 0 {
			nuc += " [truth " + spreadText(g.TruthNucShares) + "]"
		}
		fmt.Fprintf(w, "| %s | %s | %s | %s | %s | %s | %s | %s |\n", g.Source, name, countsList(g.Kinds, "-"), pct(g.Sane), pct(g.SaneApartFromSize), countsList(g.Reasons, "-"), spreadText(g.Shares), nuc)
	}
	fmt.Fprintln(w)

	// The ALL-IDB2 agreement.
	var sane, notSane, failed []*sanityImage
	var byReason = map[string][]*sanityImage{}
	for _, im := range out.Images {
		if im.Source != "allidb2" {
			continue
		}
		switch {
		case im.Sanity.Sane():
			sane = append(sane, im)
		case im.CellDice == nil:
			failed = append(failed, im)
		default:
			notSane = append(notSane, im)
			byReason[im.Sanity.Verdict] = append(byReason[im.Sanity.Verdict], im)
		}
	}
	fmt.Fprintf(w, "## Does the check mean something? ALL-IDB2 against its masks\n\n")
	fmt.Fprintf(w, "SegmentCell's masks of the ALL-IDB2 crops, grouped by the check's verdict, scored against the expert masks. If the check\n")
	fmt.Fprintf(w, "tracks real errors, the crops it calls not sane have the lower Dice. Cell Dice: whole cell (nucleus and cytoplasm);\n")
	fmt.Fprintf(w, "95%% percentile-bootstrap interval of the mean (2000 resamples).\n\n")
	fmt.Fprintf(w, "| verdict | n | mean cell Dice (95%% CI) | mean nucleus Dice | cell Dice under 0.8 (95%% CI) |\n|---|---|---|---|---|\n")
	diceRow(w, "sane", sane)
	diceRow(w, "not sane (segmented)", notSane)
	for _, r := range sortedKeys(byReason) {
		diceRow(w, "&nbsp;&nbsp;"+r, byReason[r])
	}
	if len(failed) > 0 {
		fmt.Fprintf(w, "| no masks (%s) | %d | - | - | - |\n", countsList(countVerdicts(failed), "-"), len(failed))
	}
	fmt.Fprintln(w)
	bad, caught := 0, 0
	for _, im := range out.Images {
		if im.Source == "allidb2" && im.CellDice != nil && *im.CellDice < 0.8 {
			bad++
			if !im.Sanity.Sane() {
				caught++
			}
		}
	}
	fmt.Fprintf(w, "The other way round: of the %d ALL-IDB2 crops whose cell Dice is under 0.8, the check flags %s. It catches gross\n", bad, pct(vision.Wilson(caught, bad)))
	fmt.Fprintf(w, "failures (a neighbour taken, the cell missed or cut), not a cytoplasm traced a little wide or narrow, so the share\n")
	fmt.Fprintf(w, "judged sane is not the share segmented well: it says how often the segmentation fails grossly.\n\n")
	fmt.Fprintf(w, "The check applied to ground-truth masks themselves (a true mask should pass; the share that fails is the check's false\n")
	fmt.Fprintf(w, "alarm rate on real cells). On ALL-IDB2 the bounds come from these very masks, so about 98%% passing is by construction;\n")
	fmt.Fprintf(w, "wbcseg (another laboratory, 120x120 crops, mostly neutrophils) was not used to set anything.\n\n")
	fmt.Fprintf(w, "| truth masks | sane (95%% CI) | per class | reasons |\n|---|---|---|---|\n")
	for _, t := range out.Truth {
		var per []string
		for _, c := range sortedKeys(t.Classes) {
			per = append(per, fmt.Sprintf("%s %d/%d", c, t.Classes[c].K, t.Classes[c].N))
		}
		fmt.Fprintf(w, "| %s | %s | %s | %s |\n", t.Lab, pct(t.Sane), strings.Join(per, ", "), countsList(t.Reasons, "-"))
	}
	fmt.Fprintln(w)

	fmt.Fprintf(w, "## The rule\n\n")
	fmt.Fprintf(w, "`vision.CheckCellMasks(masks, frame)` measures, on the cell mask's largest 8-connected piece (the main piece): its share\n")
	fmt.Fprintf(w, "of the whole cell mask, its centroid's distance from the crop's centre over the crop's short side, its area over the\n")
	fmt.Fprintf(w, "frame's area, the share of the nucleus inside it and the nucleus's share of it. The rules, tried in this order (the\n")
	fmt.Fprintf(w, "first that fails is the verdict):\n\n")
	lo, hi := vision.SmearFrame(1, 1).ShareBounds()
	clo, chi := vision.CropFrame{Kind: vision.CutOutCrop}.ShareBounds()
	rules := []string{
		"**no nucleus**: SegmentCell returned ErrNoNucleus, or an empty nucleus; **no cell**: an empty cell mask (**bad masks**: masks of another size than the crop, a programming error);",
		fmt.Sprintf("**several cells**: the main piece holds under %.2f of the cell mask;", vision.MinMainShare),
		fmt.Sprintf("**off centre**: the main piece's centroid is more than %.2f of the short side from the centre (on a cut-out this also happens when the owners' cut-out carries a piece of a neighbour or debris, which widens the tight crop on one side);", vision.MaxCentreOffset),
		fmt.Sprintf("**too small** / **too large**: the main piece's area is outside %.3f-%.2f of the crop (smear crop) or %.3f-%.2f of the owners' cut-out (cut-out);", lo, hi, clo, chi),
		fmt.Sprintf("**nucleus outside cell**: under %.2f of the nucleus lies in the main piece;", vision.MinMainShare),
		fmt.Sprintf("**nucleus too small**: the nucleus inside the main piece is under %.2f of its area.", vision.MinNucleusShare),
	}
	for i, r := range rules {
		fmt.Fprintf(w, "%d. %s\n", i+1, r)
	}
	fmt.Fprintln(w)
	fmt.Fprintf(w, "**How the constants were fixed.** Before the check was first run on C-NMC or PBC, each bound was taken from the 260\n")
	fmt.Fprintf(w, "ground-truth masks of ALL-IDB2 (measured with the same code, `vision.DeriveSanityRule`): the 1st or 99th percentile\n")
	fmt.Fprintf(w, "(linear interpolation), moved outwards by a margin of x%.1f (1.5 in area is about 22%% in diameter: room for other\n", vision.SanityMargin)
	fmt.Fprintf(w, "laboratories' cells and framing beyond the 260 ALL-IDB2 cells), and rounded to two significant digits. They live in\n")
	fmt.Fprintf(w, "`vision/sanity.go` and are not tuned on C-NMC or PBC. This run recomputes the rule on the %d ALL-IDB2 truth masks it read:\n\n", out.Rule.N)
	fmt.Fprintf(w, "| constant | in the code | the rule on this truth (unrounded) | from |\n|---|---|---|---|\n")
	for _, c := range out.Constants {
		state := "agrees"
		if c.Derived != c.Value {
			state = fmt.Sprintf("**differs: %g**", c.Derived)
		}
		fmt.Fprintf(w, "| `%s` | %g | %s (%.4f) | %s |\n", c.Name, c.Value, state, c.Raw, c.From)
	}
	fmt.Fprintf(w, "| `MinMainShare` | %g | not a percentile | every ALL-IDB2 and wbcseg truth cell is one piece holding its whole nucleus; the tenth left over tolerates specks |\n", vision.MinMainShare)
	fmt.Fprintf(w, "| cut-out bounds | %.3f-%.2f | 1/%.1f-%.1f | the cut-out is the owners' outline of the cell: the same margin around a share of 1 |\n\n", clo, chi, vision.SanityMargin, vision.SanityMargin)
	fmt.Fprintf(w, "**Size relative to what.** A crop's cell size only means something against the crop's framing. ALL-IDB2's crops (and\n")
	fmt.Fprintf(w, "PBC's images) are *smear crops*: a cell centred among its neighbours, so the cell's share of the crop is bounded by the\n")
	fmt.Fprintf(w, "ALL-IDB2 truth. C-NMC's cells were cut out onto black by the data owners and cropped to the cell plus a 6 px margin\n")
	fmt.Fprintf(w, "(then halved), so the cell fills most of its crop whatever its size: there the crop-relative bounds say nothing, and the\n")
	fmt.Fprintf(w, "cell is judged against the one outline that is known, the owners' cut-out (the non-black pixels, holes filled): it must\n")
	fmt.Fprintf(w, "cover %.3f-%.2f of it. A crop is a *cut-out* when at least a twentieth of its pixels are black (every channel at most\n", clo, chi)
	fmt.Fprintf(w, "10), the test SegmentCell itself uses to switch to its cut-out path; the other rules are the same for both kinds.\n\n")

	fmt.Fprintf(w, "## Which figures are comparable\n\n")
	a2, cn, pb := find("allidb2", "all"), find("cnmc", "all"), find("pbc-types", "all")
	fmt.Fprintf(w, "- **ALL-IDB2 and PBC** are both smear crops judged by every rule with the same bounds: their shares are comparable,\n")
	fmt.Fprintf(w, "  as far as PBC's framing is like ALL-IDB2's. Median cell share of the crop: ALL-IDB2 %s, PBC %s (median, 5th-95th\n", spreadText(a2.Shares), spreadText(pb.Shares))
	fmt.Fprintf(w, "  percentile, SegmentCell's masks).")
	if ma, mp := vision.Percentile(a2.Shares, 0.5), vision.Percentile(pb.Shares, 0.5); ma > 0 && mp > 0 {
		r := mp / ma
		within := "within"
		if r < 1/vision.SanityMargin || r > vision.SanityMargin {
			within = "**beyond**"
		}
		fmt.Fprintf(w, " PBC's cells fill %.2f times the share of their crop that ALL-IDB2's do (%.2f in\n", r, math.Sqrt(r))
		fmt.Fprintf(w, "  diameter), %s the margin's factor %.1f. The lower size bound therefore sits nearer PBC's small cells than\n", within, vision.SanityMargin)
		fmt.Fprintf(w, "  ALL-IDB2's: a *too small* verdict on PBC's smallest classes (erythroblasts, platelets) can come from framing as\n")
		fmt.Fprintf(w, "  well as from segmentation (the contact sheet shows which); *sane apart from size* leaves size out.")
	}
	fmt.Fprintln(w)
	fmt.Fprintf(w, "- **C-NMC** is judged by the cut-out size rule, which only asks that the cell cover its owners' outline; SegmentCell's\n")
	fmt.Fprintf(w, "  cut-out path takes that outline as the cell, so this rule is nearly met by construction (median share of the cut-out\n")
	fmt.Fprintf(w, "  %s). C-NMC's share sane is therefore not comparable with the others' on size; the column *sane apart from size* is\n", spreadText(cn.Shares))
	fmt.Fprintf(w, "  comparable across all three (one piece, centred, nucleus inside and not too small).\n")
	fmt.Fprintf(w, "- PBC's `%s` class is not a white cell (a platelet has no nucleus); SegmentCell is not meant for it, and the row\n", pbcNotWhite)
	fmt.Fprintf(w, "  *all but %s* is the one to set beside ALL-IDB2.\n", pbcNotWhite)
	fmt.Fprintf(w, "- Sane is not correct: a mask can be one central cell of plausible size and still miss cytoplasm. The check catches\n")
	fmt.Fprintf(w, "  gross failures only; the Dice table above says how much that is worth on ALL-IDB2.\n\n")

	fmt.Fprintf(w, "## Failures by reason\n\n")
	fmt.Fprintf(w, "First rule failed (every rule failed, an image counting under each), and up to six examples (a fixed pseudo-random\n")
	fmt.Fprintf(w, "choice by a hash of the file name).\n\n")
	fmt.Fprintf(w, "| source | reason | first rule failed | any rule failed | examples |\n|---|---|---|---|---|\n")
	for _, src := range sanitySources {
		g := find(src.Name, "all")
		if g.Sane.N == 0 {
			continue
		}
		for _, r := range append(slices.Clone(vision.SanityReasons), verdictError) {
			if g.Reasons[r] == 0 && g.Any[r] == 0 {
				continue
			}
			var ex []*sanityImage
			for _, im := range out.Images {
				if im.Source == src.Name && im.Sanity.Verdict == r {
					ex = append(ex, im)
				}
			}
			slices.SortFunc(ex, byHash)
			var names []string
			for _, im := range ex[:min(6, len(ex))] {
				names = append(names, fmt.Sprintf("`%s` (%s)", im.File, im.Label))
			}
			if len(names) == 0 {
				names = []string{"-"}
			}
			fmt.Fprintf(w, "| %s | %s | %d | %d | %s |\n", src.Name, r, g.Reasons[r], g.Any[r], strings.Join(names, ", "))
		}
		if len(g.Reasons) == 0 {
			fmt.Fprintf(w, "| %s | (none) | 0 | 0 | |\n", src.Name)
		}
	}
	var errs []string
	for _, im := range out.Images {
		if im.Sanity.Verdict == verdictError {
			errs = append(errs, fmt.Sprintf("`%s/%s`: %s", im.Source, im.File, im.Error))
		}
	}
	if len(errs) > 0 {
		fmt.Fprintf(w, "\nSegmentation errors other than no nucleus:\n\n- %s\n", strings.Join(errs[:min(10, len(errs))], "\n- "))
	}
	fmt.Fprintln(w)

	fmt.Fprintf(w, "## Classes short of ALL-IDB2\n\n")
	fmt.Fprintf(w, "Classes whose 95%% interval lies wholly below ALL-IDB2's share sane (%.3f), with their most frequent reason:\n\n", a2.Sane.Value)
	short := 0
	for _, g := range groups {
		if g.Source == "allidb2" || strings.HasPrefix(g.Class, "all") || g.Sane.N == 0 || g.Sane.Hi >= a2.Sane.Value {
			continue
		}
		short++
		top, topN := "", 0
		for _, r := range sortedKeys(g.Reasons) {
			if g.Reasons[r] > topN {
				top, topN = r, g.Reasons[r]
			}
		}
		fmt.Fprintf(w, "- %s `%s`: sane %s; most often **%s** (%d of %d).\n", g.Source, g.Class, pct(g.Sane), top, topN, g.Sane.N)
	}
	if short == 0 {
		fmt.Fprintf(w, "- none.\n")
	}
	fmt.Fprintln(w)

	fmt.Fprintf(w, "## Contact sheets\n\n")
	fmt.Fprintf(w, "Each tile is a crop with SegmentCell's cell outline (green) and nucleus outline (yellow), shrunk to %d px, with its\n", sheetTile)
	fmt.Fprintf(w, "class and verdict under it. First the images judged not sane (up to half as many as the sample, spread over the\n")
	fmt.Fprintf(w, "reasons), then a fixed sample spread over the classes (a hash of the file name picks it; the same files every run).\n\n")
	rel, err := filepath.Rel(filepath.Dir(path), sheetDir)
	if err != nil {
		rel = sheetDir
	}
	for _, src := range sanitySources {
		files, ok := out.Sheets[src.Name]
		if !ok {
			continue
		}
		fmt.Fprintf(w, "### %s (%s)\n\n", src.Name, src.Lab)
		fmt.Fprintf(w, "![SegmentCell's masks on %s](%s)\n\n", src.Name, filepath.ToSlash(filepath.Join(rel, "single-cells-"+src.Name+".png")))
		if len(files.Failures) > 0 {
			var names []string
			for _, f := range files.Failures {
				names = append(names, "`"+f+"`")
			}
			fmt.Fprintf(w, "Not sane, left to right, row by row: %s.\n\n", strings.Join(names, ", "))
		}
		fmt.Fprintf(w, "*Credit:* %s\n\n", src.Credit)
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return err
	}
	return os.WriteFile(path, b.Bytes(), 0o644)
}

func countVerdicts(imgs []*sanityImage) map[string]int {
	m := map[string]int{}
	for _, im := range imgs {
		m[im.Sanity.Verdict]++
	}
	return m
}
