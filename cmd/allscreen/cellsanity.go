package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"hash/fnv"
	"io"
	"os"
	"path/filepath"
	"runtime"
	"time"

	"allscreen/internal/par"
	"allscreen/internal/realdata"
	"allscreen/vision"
)

func init() {
	register(command{name: "cell-sanity", summary: "judge SegmentCell's masks without ground truth on the single-cell sets (allidb2, cnmc, pbc-types): one central cell of plausible size; report and contact sheets", run: runCellSanity})
}

// sanitySource is one single-cell set of the data folder.
type sanitySource struct {
	Name     string // folder under the data folder
	Lab      string
	Images   string // sub-folder of the images ("" : the set's folder; file names may hold a sub-folder)
	Masks    string // sub-folder of ground-truth masks, or ""
	LabelCol string
	// Public: the images are under a CC BY licence and may be drawn into
	// docs/. Every other set (ALL-IDB above all) gets numbers only.
	Public bool
	Credit string // the attribution under its contact sheet
}

// sanitySources are the single-cell sets the check runs on. ALL-IDB2 is
// the reference (it has ground truth); its images are never drawn.
var sanitySources = []sanitySource{
	{Name: "allidb2", Lab: "Milan (ALL-IDB2)", Images: "images", Masks: "masks", LabelCol: "label"},
	{Name: "cnmc", Lab: "New Delhi (C-NMC 2019)", LabelCol: "label", Public: true,
		Credit: `C-NMC 2019, CC BY 3.0 (The Cancer Imaging Archive): A. Gupta, R. Gupta, "ALL Challenge dataset of ISBI 2019", ` +
			`The Cancer Imaging Archive (2019), doi:10.7937/tcia.2019.dc64i46r; A. Gupta et al., "C-NMC: B-lineage acute lymphoblastic ` +
			`leukaemia: a blood cancer dataset", Medical Engineering & Physics 103 (2022) 103793. Changed: cropped to the cell plus a ` +
			`6 px margin and halved (PNG) for the data folder; here downscaled into tiles and the masks' outlines drawn on them.`},
	{Name: "pbc-types", Lab: "Barcelona (PBC)", LabelCol: "celltype", Public: true,
		Credit: `PBC, CC BY 4.0: A. Acevedo et al., "A dataset of microscopic peripheral blood cell images for development of ` +
			`automatic recognition systems", Data in Brief 30 (2020) 105474, Mendeley Data doi:10.17632/snkd93bnjr.1. ` +
			`Changed: downscaled into tiles and the masks' outlines drawn on them.`},
}

// truthOnlySets are ground-truth mask sets the rule is checked on (the
// share of TRUE masks it calls sane), besides ALL-IDB2's.
var truthOnlySets = []sanitySource{
	{Name: "wbcseg", Lab: "Jiangxi Tecom (wbcseg)", Images: "images", Masks: "masks", LabelCol: "celltype"},
}

// verdictError marks an image SegmentCell failed on for a reason other
// than ErrNoNucleus (or that could not be read).
const verdictError = "segmentation error"

type sanityImage struct {
	Source string            `json:"source"`
	File   string            `json:"file"`
	Label  string            `json:"label"`
	Sanity vision.CellSanity `json:"sanity"`
	Error  string            `json:"error,omitempty"`
	// ALL-IDB2 only: SegmentCell's masks against the truth, and the
	// check applied to the truth itself.
	CellDice    *float64           `json:"cell_dice,omitempty"`
	NucleusDice *float64           `json:"nucleus_dice,omitempty"`
	Truth       *vision.CellSanity `json:"truth_sanity,omitempty"`

	truthMasks *vision.CellMasks
	tile       []byte // sheetTile x sheetTile BGR, public sets only
	hash       uint32
}

type sanityConstant struct {
	Name    string  `json:"name"`
	Value   float64 `json:"value"`
	Derived float64 `json:"derived"` // the rule's value from the ALL-IDB2 truth, rounded to two significant digits
	Raw     float64 `json:"raw"`     // ... unrounded
	From    string  `json:"from"`
}

type truthCheckJSON struct {
	Set     string         `json:"set"`
	Lab     string         `json:"lab"`
	Sane    vision.Rate    `json:"sane"`
	Reasons map[string]int `json:"reasons"`
	Classes map[string]vision.Rate
}

type cellSanityJSON struct {
	Version   string               `json:"segmentation_version"`
	Data      string               `json:"data"`
	Every     int                  `json:"every"`
	Rule      vision.SanityRule    `json:"rule_from_allidb2_truth"`
	Constants []sanityConstant     `json:"constants"`
	Truth     []truthCheckJSON     `json:"truth_checks"`
	Seconds   map[string]float64   `json:"seconds"`
	Groups    []sanityGroup        `json:"groups"`
	Images    []*sanityImage       `json:"images"`
	Sheets    map[string]sheetJSON `json:"sheets"`
}

// sheetJSON lists the files drawn on a contact sheet, in order.
type sheetJSON struct {
	Failures []string `json:"failures"`
	Sample   []string `json:"sample"`
}

func runCellSanity(argv []string) error {
	fs := newFlags("cell-sanity", "")
	data := fs.String("data", "", "data folder holding allidb2/, cnmc/ and pbc-types/ (default: $"+realdata.EnvVar+" or ../shared/data)")
	sheetDir := fs.String("sheet-dir", "", "write the contact sheets single-cells-<source>.png (CC BY sources only) into `DIR`")
	jsonOut := fs.String("json", "", "write every image's verdict and measures to `FILE`")
	report := fs.String("report", "", "write the markdown report (docs/single-cells.md) to `FILE`; needs --sheet-dir")
	perSource := fs.Int("per-source", 48, "tiles of the spread sample per contact sheet (failures get up to half as many more)")
	every := fs.Int("every", 1, "take every `N`th image of each set (a quick look; the report says so)")
	workers := fs.Int("workers", 0, "images processed at once (default: one per CPU)")
	args, err := parseFlags(fs, argv)
	if err != nil {
		return err
	}
	if len(args) > 0 || *every < 1 || *perSource < 1 || (*report != "" && *sheetDir == "") {
		fmt.Fprintln(fs.Output(), "cell-sanity takes no arguments; --every and --per-source are at least 1; --report needs --sheet-dir")
		fs.Usage()
		return errUsage
	}
	dir, err := realdata.Or(*data)
	if err != nil {
		return err
	}
	if *workers <= 0 {
		*workers = runtime.GOMAXPROCS(0)
	}
	out := cellSanityJSON{Version: vision.CellSegmentationVersion, Data: dir, Every: *every,
		Seconds: map[string]float64{}, Sheets: map[string]sheetJSON{}}
	var allidb2Truth []*vision.CellMasks
	for _, src := range sanitySources {
		set, err := readSanityLabels(filepath.Join(dir, src.Name), src)
		if err != nil {
			return err
		}
		set = everyNth(set, *every)
		start := time.Now()
		imgs := checkSanitySet(src, set, *workers)
		out.Seconds[src.Name] = time.Since(start).Seconds()
		sane := 0
		for _, im := range imgs {
			if im.Sanity.Sane() {
				sane++
			}
			if im.truthMasks != nil {
				allidb2Truth = append(allidb2Truth, im.truthMasks)
			}
		}
		fmt.Fprintf(os.Stderr, "cell-sanity %s: %d images in %.0f s, sane %v\n", src.Name, len(imgs), out.Seconds[src.Name], vision.Wilson(sane, len(imgs)))
		out.Images = append(out.Images, imgs...)
	}
	out.Rule = vision.DeriveSanityRule(allidb2Truth)
	out.Constants = sanityConstants(out.Rule)
	for _, c := range out.Constants {
		if c.Derived != c.Value {
			fmt.Fprintf(os.Stderr, "cell-sanity: the rule gives %s = %g on this ALL-IDB2 truth, the code has %g\n", c.Name, c.Derived, c.Value)
		}
	}
	out.Truth = append(out.Truth, truthCheck("allidb2", sanitySources[0].Lab, out.Images))
	for _, src := range truthOnlySets {
		set, err := readSanityLabels(filepath.Join(dir, src.Name), src)
		if err != nil {
			return err
		}
		var imgs []*sanityImage
		for _, li := range everyNth(set, *every) {
			im := &sanityImage{Source: src.Name, File: li.Name, Label: li.Label}
			m, err := loadTruthMasks(li.Mask)
			if err != nil {
				return err
			}
			s := vision.CheckCellMasks(m, vision.SmearFrame(m.Cell.W, m.Cell.H))
			im.Truth = &s
			imgs = append(imgs, im)
		}
		out.Truth = append(out.Truth, truthCheck(src.Name, src.Lab, imgs))
	}
	if *sheetDir != "" {
		if err := os.MkdirAll(*sheetDir, 0o755); err != nil {
			return err
		}
		for _, src := range sanitySources {
			if !src.Public {
				continue
			}
			path := filepath.Join(*sheetDir, "single-cells-"+src.Name+".png")
			files, err := writeSanitySheet(path, src, out.Images, *perSource)
			if err != nil {
				return err
			}
			out.Sheets[src.Name] = files
			fmt.Fprintf(os.Stderr, "cell-sanity: wrote %s (%d failures, %d sample tiles)\n", path, len(files.Failures), len(files.Sample))
		}
	}
	out.Groups = sanityGroups(out.Images)
	if *jsonOut != "" {
		if err := writeJSONFile(*jsonOut, out); err != nil {
			return err
		}
	}
	if *report != "" {
		if err := writeSanityReport(*report, *sheetDir, out); err != nil {
			return err
		}
		fmt.Fprintf(os.Stderr, "cell-sanity: wrote %s\n", *report)
	}
	printSanitySummary(os.Stdout, out)
	return nil
}

func writeJSONFile(path string, v any) error {
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return err
	}
	b, err := json.MarshalIndent(v, "", " ")
	if err != nil {
		return err
	}
	return os.WriteFile(path, append(b, '\n'), 0o644)
}

// readSanityLabels reads a set's labels.csv (a "file" column, which may
// name a sub-folder, and the set's label column).
func readSanityLabels(dir string, src sanitySource) ([]vision.LabeledImage, error) {
	masks := ""
	if src.Masks != "" {
		masks = filepath.Join(dir, src.Masks)
	}
	return vision.ReadNestedLabels(filepath.Join(dir, "labels.csv"), src.LabelCol, filepath.Join(dir, src.Images), masks)
}

func everyNth(set []vision.LabeledImage, n int) []vision.LabeledImage {
	if n <= 1 {
		return set
	}
	var out []vision.LabeledImage
	for i := 0; i < len(set); i += n {
		out = append(out, set[i])
	}
	return out
}

func nameHash(s string) uint32 {
	h := fnv.New32a()
	h.Write([]byte(s))
	return h.Sum32()
}

// checkSanitySet segments and judges every image of one set, in parallel.
func checkSanitySet(src sanitySource, set []vision.LabeledImage, workers int) []*sanityImage {
	out := make([]*sanityImage, len(set))
	bar := newProgress(os.Stderr, "cell-sanity "+src.Name)
	par.Each(len(set), workers, func(i int) { out[i] = checkSanityImage(src, set[i]) }, bar.update)
	bar.finish()
	return out
}

func checkSanityImage(src sanitySource, li vision.LabeledImage) *sanityImage {
	im := &sanityImage{Source: src.Name, File: li.Name, Label: li.Label, hash: nameHash(li.Name)}
	fail := func(err error) *sanityImage {
		im.Sanity = vision.CellSanity{Verdict: verdictError, Reasons: []string{verdictError}}
		im.Error = err.Error()
		return im
	}
	img, err := vision.LoadImage(li.Image)
	if err != nil {
		return fail(err)
	}
	defer img.Close()
	masks, sanity, err := vision.SegmentAndCheck(img)
	if err != nil {
		return fail(err)
	}
	im.Sanity = sanity
	if src.Public {
		if im.tile, err = drawSanityTile(img, masks); err != nil {
			return fail(err)
		}
	}
	if li.Mask != "" {
		truth, err := loadTruthMasks(li.Mask)
		if err != nil {
			return fail(err)
		}
		if truth.Cell.W != img.Cols() || truth.Cell.H != img.Rows() {
			return fail(fmt.Errorf("%s: mask is %dx%d, image %dx%d", li.Mask, truth.Cell.W, truth.Cell.H, img.Cols(), img.Rows()))
		}
		im.truthMasks = truth
		s := vision.CheckCellMasks(truth, vision.SmearFrame(truth.Cell.W, truth.Cell.H))
		im.Truth = &s
		if masks != nil {
			cd, err1 := vision.Dice(masks.Cell, truth.Cell)
			nd, err2 := vision.Dice(masks.Nucleus, truth.Nucleus)
			if err := errors.Join(err1, err2); err != nil {
				return fail(err)
			}
			im.CellDice, im.NucleusDice = &cd, &nd
		}
	}
	return im
}

func loadTruthMasks(path string) (*vision.CellMasks, error) {
	g, err := vision.LoadTruth(path)
	if err != nil {
		return nil, err
	}
	return &vision.CellMasks{Nucleus: vision.TruthMask(g, vision.TargetNucleus), Cell: vision.TruthMask(g, vision.TargetCell)}, nil
}

// sanityConstants sets the code's constants beside what the rule gives on
// this run's ALL-IDB2 truth.
func sanityConstants(r vision.SanityRule) []sanityConstant {
	return []sanityConstant{
		{"SmearCellShareMin", vision.SmearCellShareMin, vision.TwoSignificant(r.ShareMin), r.ShareMin,
			fmt.Sprintf("1st percentile of the truth cell's share of the crop (%.4f) / %.1f", r.ShareP1, vision.SanityMargin)},
		{"SmearCellShareMax", vision.SmearCellShareMax, vision.TwoSignificant(r.ShareMax), r.ShareMax,
			fmt.Sprintf("99th percentile of the truth cell's share of the crop (%.4f) x %.1f", r.ShareP99, vision.SanityMargin)},
		{"MaxCentreOffset", vision.MaxCentreOffset, vision.TwoSignificant(r.MaxOffset), r.MaxOffset,
			fmt.Sprintf("99th percentile of the truth cell's centroid offset / short side (%.4f) x %.1f", r.OffsetP99, vision.SanityMargin)},
		{"MinNucleusShare", vision.MinNucleusShare, vision.TwoSignificant(r.MinNucleus), r.MinNucleus,
			fmt.Sprintf("1st percentile of the truth nucleus's share of the cell (%.4f) / %.1f", r.NucleusP1, vision.SanityMargin)},
	}
}

// truthCheck sums the check applied to ground-truth masks.
func truthCheck(set, lab string, imgs []*sanityImage) truthCheckJSON {
	t := truthCheckJSON{Set: set, Lab: lab, Reasons: map[string]int{}, Classes: map[string]vision.Rate{}}
	k, n := 0, 0
	ck, cn := map[string]int{}, map[string]int{}
	for _, im := range imgs {
		if im.Truth == nil || im.Source != set {
			continue
		}
		n++
		cn[im.Label]++
		if im.Truth.Sane() {
			k++
			ck[im.Label]++
		} else {
			t.Reasons[im.Truth.Verdict]++
		}
	}
	t.Sane = vision.Wilson(k, n)
	for c := range cn {
		t.Classes[c] = vision.Wilson(ck[c], cn[c])
	}
	return t
}

func printSanitySummary(w io.Writer, out cellSanityJSON) {
	fmt.Fprintf(w, "segmentation %s; one central cell of plausible size, per source and class:\n", out.Version)
	for _, g := range sanityGroups(out.Images) {
		fmt.Fprintf(w, "  %-10s %-22s %v  %s\n", g.Source, g.Class, g.Sane, countsList(g.Reasons, "-"))
	}
	for _, t := range out.Truth {
		fmt.Fprintf(w, "the check on %s's ground-truth masks: sane %v\n", t.Set, t.Sane)
	}
}
