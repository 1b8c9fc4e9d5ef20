package main

import (
	"encoding/json"
	"fmt"
	"hash/fnv"
	"image/color"
	"io"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strings"

	"allscreen/vision"

	"gocv.io/x/gocv"
)

func init() {
	register(command{name: "segment", summary: "segment the nucleus and whole cell of single-cell crops without ground truth; score them when masks are given", run: runSegment})
}

type segClassJSON struct {
	N          int         `json:"n"`
	Dice       float64     `json:"dice"`
	IoU        float64     `json:"iou"`
	SSIM       float64     `json:"ssim"`
	DiceCI95   *[2]float64 `json:"dice_ci95"` // null below 2 images
	OracleDice float64     `json:"oracle_dice"`
	OracleIoU  float64     `json:"oracle_iou"`
	CellDice   float64     `json:"cell_dice"`
	CellIoU    float64     `json:"cell_iou"`
}

type segmentJSON struct {
	Version     string                  `json:"version"`
	Method      string                  `json:"method"`
	Oracle      string                  `json:"oracle"`
	Split       string                  `json:"split"`
	Classes     map[string]segClassJSON `json:"classes"`
	All         segClassJSON            `json:"all"`
	Failed      []failedJSON            `json:"failed"`
	Segmented   int                     `json:"segmented"`
	Ablation    []ablationJSON          `json:"ablation,omitempty"`
	TunedOnHalf *tunedJSON              `json:"tuned_on_half,omitempty"`
}

type ablationJSON struct {
	Step    string                  `json:"step"`
	Classes map[string]segClassJSON `json:"classes"`
	All     segClassJSON            `json:"all"`
}

type tunedJSON struct {
	Grid      int                     `json:"grid_size"`
	OpenFrac  float64                 `json:"open_frac"`
	LinkFrac  float64                 `json:"link_frac"`
	LocalFrac float64                 `json:"local_frac"`
	TuneDice  float64                 `json:"tune_half_mean_class_dice"`
	Held      map[string]segClassJSON `json:"held_out_classes"`
	HeldAll   segClassJSON            `json:"held_out_all"`
	Default   map[string]segClassJSON `json:"default_on_held_out_classes"`
	DefAll    segClassJSON            `json:"default_on_held_out_all"`
}

const oracleDefinition = "the paper's ground-truth choice: of the k=3 RGB k-means clusters, the one with the best mean of SSIM, Dice and IoU against the ground-truth nucleus"

func runSegment(argv []string) error {
	fs := newFlags("segment", "")
	images := fs.String("images", "", "folder of single-cell crops (`DIR`)")
	masks := fs.String("masks", "", "folder of ground-truth masks, same file names (`DIR`; needs --labels)")
	labels := fs.String("labels", "", "labels `CSV` (file and label columns); without it every image in --images is done, as one class")
	labelCol := fs.String("label-column", "", "label column of the CSV (default: the first of label, celltype, class, cell_type, type)")
	asJSON := fs.Bool("json", false, "print one JSON object")
	overlay := fs.String("overlay", "", "write each crop with the nucleus (yellow) and cell (green) outlined into `DIR`")
	ablation := fs.Bool("ablation", false, "also score the method step by step (needs --masks)")
	split := fs.String("split", "all", "which images: all, or half a or b (split by the labels' group column, else by file, so duplicates stay together)")
	tuneHalf := fs.Bool("tune-half", false, "choose the step sizes on half a by grid search and report them on half b (needs --masks)")
	workers := fs.Int("workers", 0, "images processed at once (default: one per CPU)")
	workPixels := fs.Int("work-pixels", -1, "segment crops larger than this many pixels on a downscaled copy (default: SegmentCell's own)")
	spaceName := fs.String("space", "", "colour space of the k-means steps (default: SegmentCell's own, lab); for the colour-space study")
	if _, err := parseFlags(fs, argv); err != nil {
		return err
	}
	if *spaceName != "" {
		sp, err := vision.ParseSpace(*spaceName)
		if err != nil {
			return err
		}
		vision.DefaultSegmentOptions.Space = sp
	}
	if *workPixels >= 0 {
		vision.DefaultSegmentOptions.WorkPixels = *workPixels
	}
	if *images == "" || (*masks != "" && *labels == "") {
		fmt.Fprintln(fs.Output(), "segment needs --images, and --labels with --masks")
		fs.Usage()
		return errUsage
	}
	if (*ablation || *tuneHalf) && *masks == "" {
		return fmt.Errorf("--ablation and --tune-half score against ground truth: give --masks and --labels")
	}
	set, err := segmentSet(*images, *masks, *labels, *labelCol)
	if err != nil {
		return err
	}
	full := set
	if set, err = splitHalf(set, *split); err != nil {
		return err
	}
	if *overlay != "" {
		if err := os.MkdirAll(*overlay, 0o755); err != nil {
			return err
		}
	}
	hasTruth := *masks != ""
	bar := newProgress(os.Stderr, "segment")
	opt := vision.EvaluateOptions{Segment: vision.DefaultSegmentOptions, Oracle: hasTruth, Workers: *workers, Progress: bar.update}
	var overlayErr error
	if *overlay != "" {
		opt.Keep = func(img gocv.Mat, r *vision.SegmentResult) {
			if err := writeSegmentOverlay(img, r, *overlay); err != nil && overlayErr == nil {
				overlayErr = err
			}
		}
	}
	results := vision.EvaluateSegmentation(set, opt)
	bar.finish()
	if overlayErr != nil {
		return overlayErr
	}
	out := segmentJSON{Version: vision.CellSegmentationVersion, Method: methodText(vision.DefaultSegmentOptions),
		Split: *split, Failed: []failedJSON{}}
	if hasTruth {
		out.Oracle = oracleDefinition
	}
	out.Classes, out.All = summariseSegments(results)
	for _, r := range results {
		if r.Err != nil {
			fmt.Fprintf(os.Stderr, "allscreen segment: %v\n", r.Err)
			out.Failed = append(out.Failed, failedJSON{File: r.Name, Error: r.Err.Error()})
		} else {
			out.Segmented++
		}
	}
	if *ablation {
		for _, st := range vision.SegmentAblation() {
			bar := newProgress(os.Stderr, "ablation")
			rs := vision.EvaluateSegmentation(set, vision.EvaluateOptions{Segment: st.Opt, Workers: *workers, Progress: bar.update})
			bar.finish()
			a := ablationJSON{Step: st.Name}
			a.Classes, a.All = summariseSegments(rs)
			out.Ablation = append(out.Ablation, a)
		}
	}
	if *tuneHalf {
		t, err := tuneOnHalf(full, *workers)
		if err != nil {
			return err
		}
		out.TunedOnHalf = t
	}
	if *asJSON {
		if err := json.NewEncoder(os.Stdout).Encode(out); err != nil {
			return err
		}
	} else {
		printSegment(os.Stdout, out, hasTruth)
	}
	if len(out.Failed) > 0 {
		fmt.Fprintf(os.Stderr, "allscreen segment: %d of %d images failed (listed above)\n", len(out.Failed), len(set))
		return errSomeFailed
	}
	return nil
}

// segmentSet lists the images: from a labels CSV, or every image file in
// the folder as one class.
func segmentSet(images, masks, labels, labelCol string) ([]vision.LabeledImage, error) {
	if labels != "" {
		return vision.ReadLabels(labels, labelCol, images, masks)
	}
	entries, err := os.ReadDir(images)
	if err != nil {
		return nil, err
	}
	var set []vision.LabeledImage
	for _, e := range entries {
		switch strings.ToLower(filepath.Ext(e.Name())) {
		case ".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff":
			set = append(set, vision.LabeledImage{Name: e.Name(), Label: "all", Image: filepath.Join(images, e.Name())})
		}
	}
	if len(set) == 0 {
		return nil, fmt.Errorf("no PNG, JPEG, BMP or TIFF images in %s", images)
	}
	return set, nil
}

// splitHalf keeps half a or b: by a hash of the group (the labels' group
// column, which keeps duplicate cells together), else of the file name.
func splitHalf(set []vision.LabeledImage, which string) ([]vision.LabeledImage, error) {
	if which == "all" {
		return set, nil
	}
	if which != "a" && which != "b" {
		return nil, fmt.Errorf("--split %q: want all, a or b", which)
	}
	var out []vision.LabeledImage
	for _, li := range set {
		if halfOf(li) == which {
			out = append(out, li)
		}
	}
	return out, nil
}

func halfOf(li vision.LabeledImage) string {
	key := li.Group
	if key == "" {
		key = li.Name
	}
	h := fnv.New32a()
	h.Write([]byte(key))
	if h.Sum32()%2 == 0 {
		return "a"
	}
	return "b"
}

func methodText(o vision.SegmentOptions) string {
	work := "at the crop's size"
	if o.WorkPixels > 0 {
		work = fmt.Sprintf("on an area-downscaled copy of at most %d pixels (GrabCut's smoothness scaled with it), masks scaled back", o.WorkPixels)
	}
	return fmt.Sprintf("segmented %s; Gaussian blur 5x5; k-means k=%d in %s; lowest-green cluster; opened (radius %.2f sqrt(area)); "+
		"central cell's nucleus kept (lobes within %.2f side in the same stained region); re-clustered k=2 within %.2f sqrt(area); "+
		"whole cell by GrabCut seeded from the nucleus", work, o.K, o.Space, o.OpenFrac, o.LinkFrac, o.LocalFrac)
}

func summariseSegments(rs []vision.SegmentResult) (map[string]segClassJSON, segClassJSON) {
	by := map[string][]vision.SegmentResult{}
	var all []vision.SegmentResult
	for _, r := range rs {
		if r.Err == nil && r.HasTruth {
			by[r.Label] = append(by[r.Label], r)
			all = append(all, r)
		}
	}
	classes := map[string]segClassJSON{}
	for c, v := range by {
		classes[c] = summarise(v)
	}
	return classes, summarise(all)
}

func summarise(rs []vision.SegmentResult) segClassJSON {
	s := segClassJSON{N: len(rs)}
	if len(rs) == 0 {
		return s
	}
	dice := make([]float64, len(rs))
	for i, r := range rs {
		dice[i] = r.Nucleus.Dice
		s.Dice += r.Nucleus.Dice
		s.IoU += r.Nucleus.IoU
		s.SSIM += r.Nucleus.SSIM
		s.OracleDice += r.Oracle.Dice
		s.OracleIoU += r.Oracle.IoU
		s.CellDice += r.Cell.Dice
		s.CellIoU += r.Cell.IoU
	}
	n := float64(len(rs))
	s.Dice, s.IoU, s.SSIM = s.Dice/n, s.IoU/n, s.SSIM/n
	s.OracleDice, s.OracleIoU, s.CellDice, s.CellIoU = s.OracleDice/n, s.OracleIoU/n, s.CellDice/n, s.CellIoU/n
	s.DiceCI95 = bootstrapCI(dice)
	return s
}

// bootstrapCI is the 95% percentile bootstrap interval of the mean (2000
// resamples, fixed seed so reports are reproducible); nil below 2 values.
func bootstrapCI(v []float64) *[2]float64 {
	if len(v) < 2 {
		return nil
	}
	rng := rand.New(rand.NewPCG(1, 2))
	means := make([]float64, 2000)
	for i := range means {
		var s float64
		for range v {
			s += v[rng.IntN(len(v))]
		}
		means[i] = s / float64(len(v))
	}
	sort.Float64s(means)
	return &[2]float64{means[int(0.025*float64(len(means)))], means[int(0.975*float64(len(means)))-1]}
}

// tuneOnHalf picks OpenFrac, LinkFrac and LocalFrac on half a (the mean
// over classes of the nucleus Dice) from a small grid around the defaults,
// then scores that choice, and the defaults, on half b.
func tuneOnHalf(set []vision.LabeledImage, workers int) (*tunedJSON, error) {
	a, _ := splitHalf(set, "a")
	b, _ := splitHalf(set, "b")
	if len(a) == 0 || len(b) == 0 {
		return nil, fmt.Errorf("--tune-half: a half is empty")
	}
	classMean := func(m map[string]segClassJSON) float64 {
		var s float64
		for _, c := range m {
			s += c.Dice
		}
		return s / float64(len(m))
	}
	best, bestDice := vision.DefaultSegmentOptions, -1.0
	grid := 0
	bar := newProgress(os.Stderr, "tune on half a")
	total := 27 * len(a)
	for _, of := range []float64{0.03, 0.05, 0.08} {
		for _, lf := range []float64{0.1, 0.15, 0.25} {
			for _, cf := range []float64{0.15, 0.2, 0.35} {
				o := vision.DefaultSegmentOptions
				o.OpenFrac, o.LinkFrac, o.LocalFrac = of, lf, cf
				o.CellGrabCut = false // the grid scores the nucleus only
				base := grid * len(a)
				rs := vision.EvaluateSegmentation(a, vision.EvaluateOptions{Segment: o, Workers: workers,
					Progress: func(done, _ int) { bar.update(base+done, total) }})
				grid++
				classes, _ := summariseSegments(rs)
				if d := classMean(classes); d > bestDice {
					best, bestDice = o, d
				}
			}
		}
	}
	bar.finish()
	best.CellGrabCut = true
	t := &tunedJSON{Grid: grid, OpenFrac: best.OpenFrac, LinkFrac: best.LinkFrac, LocalFrac: best.LocalFrac, TuneDice: bestDice}
	t.Held, t.HeldAll = summariseSegments(vision.EvaluateSegmentation(b, vision.EvaluateOptions{Segment: best, Workers: workers}))
	t.Default, t.DefAll = summariseSegments(vision.EvaluateSegmentation(b, vision.EvaluateOptions{Segment: vision.DefaultSegmentOptions, Workers: workers}))
	return t, nil
}

func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return keys
}

func printSegment(w io.Writer, out segmentJSON, hasTruth bool) {
	fmt.Fprintf(w, "segmentation %s: %d images segmented, %d failed (split %s)\n", out.Version, out.Segmented, len(out.Failed), out.Split)
	fmt.Fprintf(w, "method: %s\n", out.Method)
	if !hasTruth {
		return
	}
	fmt.Fprintf(w, "oracle: %s\n\n", out.Oracle)
	fmt.Fprintf(w, "  %-14s %4s  %-22s %6s %6s  %11s  %9s %8s\n", "class", "n", "nucleus Dice (95% CI)", "IoU", "SSIM", "oracle Dice", "cell Dice", "cell IoU")
	row := func(name string, c segClassJSON) {
		ci := "             "
		if c.DiceCI95 != nil {
			ci = fmt.Sprintf("(%.3f-%.3f)", c.DiceCI95[0], c.DiceCI95[1])
		}
		fmt.Fprintf(w, "  %-14s %4d  %.4f %s   %.4f %.4f  %11.4f  %9.4f %8.4f\n", name, c.N, c.Dice, ci, c.IoU, c.SSIM, c.OracleDice, c.CellDice, c.CellIoU)
	}
	for _, c := range sortedKeys(out.Classes) {
		row(c, out.Classes[c])
	}
	row("all", out.All)
	if len(out.Ablation) > 0 {
		classes := sortedKeys(out.Ablation[0].Classes)
		fmt.Fprintf(w, "\nablation: mean nucleus Dice (whole-cell Dice in the last row), each step added to the one above\n  %-50s", "step")
		for _, c := range classes {
			fmt.Fprintf(w, " %11s", c)
		}
		fmt.Fprintf(w, " %8s\n", "all")
		for i, a := range out.Ablation {
			fmt.Fprintf(w, "  %-50s", a.Step)
			for _, c := range classes {
				v := a.Classes[c].Dice
				if i == len(out.Ablation)-1 {
					v = a.Classes[c].CellDice
				}
				fmt.Fprintf(w, " %11.4f", v)
			}
			v := a.All.Dice
			if i == len(out.Ablation)-1 {
				v = a.All.CellDice
			}
			fmt.Fprintf(w, " %8.4f\n", v)
		}
	}
	if t := out.TunedOnHalf; t != nil {
		fmt.Fprintf(w, "\nstep sizes chosen on half a (grid of %d): open %.2f, link %.2f, local %.2f (half-a mean class Dice %.4f)\n", t.Grid, t.OpenFrac, t.LinkFrac, t.LocalFrac, t.TuneDice)
		fmt.Fprintf(w, "  %-14s %4s %12s %16s\n", "half b", "n", "chosen Dice", "defaults Dice")
		for _, c := range sortedKeys(t.Held) {
			fmt.Fprintf(w, "  %-14s %4d %12.4f %16.4f\n", c, t.Held[c].N, t.Held[c].Dice, t.Default[c].Dice)
		}
	}
}

func writeSegmentOverlay(img gocv.Mat, r *vision.SegmentResult, dir string) error {
	o := img.Clone()
	defer o.Close()
	thick := max(1, min(img.Cols(), img.Rows())/150)
	for _, m := range []struct {
		mask *vision.Mask
		c    color.RGBA
	}{{r.Masks.Cell, color.RGBA{G: 200, A: 255}}, {r.Masks.Nucleus, color.RGBA{R: 255, G: 230, A: 255}}} {
		mat, err := m.mask.Mat()
		if err != nil {
			return err
		}
		contours := gocv.FindContours(mat, gocv.RetrievalExternal, gocv.ChainApproxSimple)
		mat.Close()
		if len(contours) > 0 {
			gocv.DrawContours(&o, contours, -1, m.c, thick)
		}
	}
	path := filepath.Join(dir, strings.TrimSuffix(r.Name, filepath.Ext(r.Name))+".segment.png")
	if !gocv.IMWrite(path, o) {
		return fmt.Errorf("write overlay %s failed", path)
	}
	return nil
}
