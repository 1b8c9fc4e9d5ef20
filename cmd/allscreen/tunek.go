package main

import (
	"encoding/csv"
	"encoding/json"
	"errors"
	"fmt"
	"image"
	"image/color"
	"io"
	"math"
	"os"
	"strconv"
	"strings"

	"allscreen/vision"

	"gocv.io/x/gocv"
)

func init() {
	register(command{name: "tune-k", summary: "the paper's Algorithm 1: score every k-means cluster against ground truth, per k and class", run: runTuneK})
}

// scoreDefinition says in words what every number tune-k prints is.
const scoreDefinition = "per image and k, the k-means cluster whose mask has the highest mean of SSIM, Dice and IoU " +
	"against the ground truth (the paper's average score); that mean, averaged over the class's images " +
	"(SSIM: Gaussian window 11, sigma 1.5, K1 0.01, K2 0.03, population covariance, 0/255 masks, as skimage)"

type tuneKJSON struct {
	K            []int                                    `json:"k"`
	Classes      map[string]map[string]float64            `json:"classes"`
	BestK        map[string]int                           `json:"best_k"`
	Score        string                                   `json:"score"`
	Method       string                                   `json:"method"`
	Target       string                                   `json:"target"`
	Space        string                                   `json:"space"`
	Seed         uint64                                   `json:"seed"`
	N            map[string]int                           `json:"n"`
	Detail       map[string]map[string]map[string]float64 `json:"detail"`
	Overall      map[string]float64                       `json:"overall"`
	OverallBestK int                                      `json:"overall_best_k"`
	Failed       []failedJSON                             `json:"failed"`
}

type failedJSON struct {
	File  string `json:"file"`
	Error string `json:"error"`
}

func runTuneK(argv []string) error {
	fs := newFlags("tune-k", "")
	images := fs.String("images", "", "folder of the images (`DIR`)")
	masks := fs.String("masks", "", "folder of the ground-truth masks, same file names (`DIR`; 0 background, 128 cytoplasm, 255 nucleus)")
	labels := fs.String("labels", "", "labels `CSV` with a header: a file column and a label column")
	labelCol := fs.String("label-column", "", "label column of the CSV (default: the first of label, celltype, class, cell_type, type)")
	targetName := fs.String("target", "nucleus", "what the masks are read as: nucleus (255) or cell (128 or 255)")
	kRange := fs.String("k", "2-6", "k values: a range 2-6 or a list 2,3,4")
	spaceName := fs.String("space", "rgb", "colour space k-means runs in: rgb (the paper), lab, hsv or od")
	seed := fs.Uint64("seed", 1, "k-means seed")
	asJSON := fs.Bool("json", false, "print one JSON object instead of the tables")
	csvOut := fs.String("csv", "", "also write every image's best scores per k to `FILE`")
	plotOut := fs.String("plot", "", "also draw mean score against k, one line per class (the paper's Figure 5), into `FILE.png`")
	workers := fs.Int("workers", 0, "images processed at once (default: one per CPU)")
	if _, err := parseFlags(fs, argv); err != nil {
		return err
	}
	if *images == "" || *masks == "" || *labels == "" {
		fmt.Fprintln(fs.Output(), "tune-k needs --images, --masks and --labels")
		fs.Usage()
		return errUsage
	}
	target, err := vision.ParseTarget(*targetName)
	if err != nil {
		return err
	}
	space, err := vision.ParseSpace(*spaceName)
	if err != nil {
		return err
	}
	ks, err := parseKs(*kRange)
	if err != nil {
		return err
	}
	set, err := vision.ReadLabels(*labels, *labelCol, *images, *masks)
	if err != nil {
		return err
	}
	bar := newProgress(os.Stderr, "tune-k")
	res, err := vision.TuneK(set, vision.TuneOptions{Ks: ks, Target: target, Space: space, Seed: *seed, Workers: *workers, Progress: bar.update})
	bar.finish()
	if err != nil {
		return err
	}
	for _, it := range res.Images {
		if it.Err != nil {
			fmt.Fprintf(os.Stderr, "allscreen tune-k: %v\n", it.Err)
		}
	}
	if res.Overall.N == 0 {
		return fmt.Errorf("none of the %d images could be scored", len(set))
	}
	if *csvOut != "" {
		if err := writeTuneCSV(*csvOut, res); err != nil {
			return err
		}
	}
	if *plotOut != "" {
		var series []plotSeries
		for _, c := range res.Classes {
			ct := res.PerClass[c]
			if ct.N == 0 {
				continue
			}
			s := plotSeries{Name: fmt.Sprintf("%s (n=%d)", c, ct.N)}
			for j, k := range res.Ks {
				s.X = append(s.X, float64(k))
				s.Y = append(s.Y, ct.Mean[j].Mean())
			}
			series = append(series, s)
		}
		title := fmt.Sprintf("Algorithm 1: best-cluster score against k (%s, k-means in %s)", target, space)
		if err := drawLinePlot(*plotOut, title, "k (clusters)", "mean score (SSIM+Dice+IoU)/3", series, true); err != nil {
			return err
		}
	}
	if *asJSON {
		if err := json.NewEncoder(os.Stdout).Encode(tuneJSON(res, *seed)); err != nil {
			return err
		}
	} else {
		printTuneTables(os.Stdout, res, *seed)
	}
	if res.Failed > 0 {
		fmt.Fprintf(os.Stderr, "allscreen tune-k: %d of %d images could not be scored (listed above); the means leave them out\n", res.Failed, len(set))
		return errSomeFailed
	}
	return nil
}

// parseKs reads "2-6" or "2,3,5".
func parseKs(s string) ([]int, error) {
	var ks []int
	if lo, hi, ok := strings.Cut(s, "-"); ok {
		a, err1 := strconv.Atoi(strings.TrimSpace(lo))
		b, err2 := strconv.Atoi(strings.TrimSpace(hi))
		if err1 != nil || err2 != nil || a > b {
			return nil, fmt.Errorf("--k %q: want a range like 2-6 or a list like 2,3,4", s)
		}
		for k := a; k <= b; k++ {
			ks = append(ks, k)
		}
	} else {
		for _, f := range strings.Split(s, ",") {
			k, err := strconv.Atoi(strings.TrimSpace(f))
			if err != nil {
				return nil, fmt.Errorf("--k %q: want a range like 2-6 or a list like 2,3,4", s)
			}
			ks = append(ks, k)
		}
	}
	for _, k := range ks {
		if k < 2 || k > 16 {
			return nil, fmt.Errorf("--k %q: each k must be 2..16", s)
		}
	}
	return ks, nil
}

func tuneJSON(res *vision.TuneResult, seed uint64) tuneKJSON {
	out := tuneKJSON{
		K: res.Ks, Classes: map[string]map[string]float64{}, BestK: map[string]int{},
		Score: scoreDefinition,
		Method: "Gaussian blur 5x5 sigma 0; k-means (k-means++ seeded, Lloyd to convergence) on the colours of every pixel in " +
			res.Space.String() + "; every cluster a candidate mask",
		Target: res.Target.String(), Space: res.Space.String(), Seed: seed,
		N: map[string]int{}, Detail: map[string]map[string]map[string]float64{},
		Overall: map[string]float64{}, Failed: []failedJSON{},
	}
	for _, c := range res.Classes {
		ct := res.PerClass[c]
		out.N[c] = ct.N
		if ct.N == 0 {
			continue
		}
		out.Classes[c] = map[string]float64{}
		out.Detail[c] = map[string]map[string]float64{}
		for j, k := range res.Ks {
			m := ct.Mean[j]
			out.Classes[c][strconv.Itoa(k)] = m.Mean()
			out.Detail[c][strconv.Itoa(k)] = map[string]float64{"ssim": m.SSIM, "dice": m.Dice, "iou": m.IoU, "score": m.Mean()}
		}
		out.BestK[c] = res.Ks[ct.BestK()]
	}
	for j, k := range res.Ks {
		out.Overall[strconv.Itoa(k)] = res.Overall.Mean[j].Mean()
	}
	out.OverallBestK = res.Ks[res.Overall.BestK()]
	for _, it := range res.Images {
		if it.Err != nil {
			out.Failed = append(out.Failed, failedJSON{File: it.Name, Error: it.Err.Error()})
		}
	}
	return out
}

// printTuneTables prints one table per class, laid out like the paper's
// Tables 1-3 (k against SSIM, DSC, IoU and average score).
func printTuneTables(w io.Writer, res *vision.TuneResult, seed uint64) {
	fmt.Fprintf(w, "Algorithm 1 (k tuning): %d images, target %s, k-means in %s, seed %d\n", res.Overall.N, res.Target, res.Space, seed)
	fmt.Fprintf(w, "score: %s\n", scoreDefinition)
	table := func(name string, ct *vision.ClassTune) {
		fmt.Fprintf(w, "\n%s (%d images)\n", name, ct.N)
		fmt.Fprintf(w, "  %2s  %6s  %6s  %6s  %6s\n", "k", "SSIM", "DSC", "IoU", "score")
		best := ct.BestK()
		for j, k := range res.Ks {
			m := ct.Mean[j]
			mark := ""
			if j == best {
				mark = "  <- best k"
			}
			fmt.Fprintf(w, "  %2d  %6.4f  %6.4f  %6.4f  %6.4f%s\n", k, m.SSIM, m.Dice, m.IoU, m.Mean(), mark)
		}
	}
	var best []string
	for _, c := range res.Classes {
		if ct := res.PerClass[c]; ct.N > 0 {
			table(c, ct)
			best = append(best, fmt.Sprintf("%s %d", c, res.Ks[ct.BestK()]))
		}
	}
	if len(res.Classes) > 1 {
		table("all classes", res.Overall)
	}
	fmt.Fprintf(w, "\nbest k: %s; all classes %d\n", strings.Join(best, ", "), res.Ks[res.Overall.BestK()])
}

func writeTuneCSV(path string, res *vision.TuneResult) (err error) {
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	defer func() {
		if cerr := f.Close(); err == nil {
			err = cerr
		}
	}()
	cw := csv.NewWriter(f)
	cw.Write([]string{"file", "label", "k", "cluster", "ssim", "dice", "iou", "score"})
	for _, it := range res.Images {
		if it.Err != nil {
			continue
		}
		for j, k := range res.Ks {
			s := it.Best[j]
			cw.Write([]string{it.Name, it.Label, strconv.Itoa(k), strconv.Itoa(it.Cluster[j]),
				ff(s.SSIM), ff(s.Dice), ff(s.IoU), ff(s.Mean())})
		}
	}
	cw.Flush()
	return cw.Error()
}

func ff(v float64) string { return strconv.FormatFloat(v, 'f', 6, 64) }

// progress draws a one-line bar on a terminal; elsewhere (a pipe, a log
// file, CI) it stays silent so the output stays clean.
type progress struct {
	w    io.Writer
	name string
	on   bool
	last int
}

func newProgress(f *os.File, name string) *progress {
	st, err := f.Stat()
	return &progress{w: f, name: name, on: err == nil && st.Mode()&os.ModeCharDevice != 0, last: -1}
}

func (p *progress) update(done, total int) {
	if !p.on || total == 0 {
		return
	}
	pct := 100 * done / total
	if pct == p.last && done != total {
		return
	}
	p.last = pct
	const width = 30
	fill := width * done / total
	fmt.Fprintf(p.w, "\r%s [%s%s] %3d%% %d/%d", p.name, strings.Repeat("#", fill), strings.Repeat(".", width-fill), pct, done, total)
}

func (p *progress) finish() {
	if p.on && p.last >= 0 {
		fmt.Fprint(p.w, "\r\033[K")
	}
}

// plotSeries is one line of a plot.
type plotSeries struct {
	Name string
	X, Y []float64
}

// plotColours are told apart in colour and in grey (Okabe-Ito palette).
var plotColours = []color.RGBA{
	{R: 0, G: 114, B: 178, A: 255}, {R: 213, G: 94, B: 0, A: 255}, {R: 0, G: 158, B: 115, A: 255},
	{R: 204, G: 121, B: 167, A: 255}, {R: 230, G: 159, B: 0, A: 255}, {R: 86, G: 180, B: 233, A: 255},
	{R: 0, G: 0, B: 0, A: 255},
}

// drawLinePlot draws series as lines with markers into a PNG. It draws at
// twice the size and shrinks, which smooths the lines. integerX puts a tick
// at every whole x.
func drawLinePlot(path, title, xLabel, yLabel string, series []plotSeries, integerX bool) error {
	if len(series) == 0 {
		return errors.New("plot: nothing to draw")
	}
	const s = 2 // supersampling
	W, H := 900*s, 560*s
	left, right, top, bottom := 95*s, 200*s, 80*s, 70*s
	img := gocv.NewMatWithSizeFromScalar(gocv.NewScalar(255, 255, 255, 0), H, W, gocv.MatTypeCV8UC3)
	defer img.Close()
	xmin, xmax, ymin, ymax := math.Inf(1), math.Inf(-1), math.Inf(1), math.Inf(-1)
	for _, sr := range series {
		for i := range sr.X {
			xmin, xmax = min(xmin, sr.X[i]), max(xmax, sr.X[i])
			ymin, ymax = min(ymin, sr.Y[i]), max(ymax, sr.Y[i])
		}
	}
	if xmax == xmin {
		xmin, xmax = xmin-1, xmax+1
	}
	step := niceStep((ymax - ymin) / 5)
	ymin, ymax = math.Floor(ymin/step)*step, math.Ceil(ymax/step)*step
	if ymax == ymin {
		ymin, ymax = ymin-step, ymax+step
	}
	pw, ph := W-left-right, H-top-bottom
	px := func(x float64) int { return left + int(math.Round((x-xmin)/(xmax-xmin)*float64(pw))) }
	py := func(y float64) int { return top + ph - int(math.Round((y-ymin)/(ymax-ymin)*float64(ph))) }
	black, grey := color.RGBA{A: 255}, color.RGBA{R: 225, G: 225, B: 225, A: 255}
	text := func(t string, p image.Point, scale float64) {
		gocv.PutTextWithParams(&img, t, p, gocv.FontHersheySimplex, scale*s, black, s, gocv.LineAA, false)
	}
	for y := ymin; y <= ymax+step/2; y += step {
		gocv.Line(&img, image.Pt(left, py(y)), image.Pt(left+pw, py(y)), grey, s)
		lbl := strconv.FormatFloat(y, 'f', decimals(step), 64)
		sz := gocv.GetTextSize(lbl, gocv.FontHersheySimplex, 0.5*s, s)
		text(lbl, image.Pt(left-sz.X-8*s, py(y)+sz.Y/2), 0.5)
	}
	xticks := []float64{}
	if integerX {
		for x := math.Ceil(xmin); x <= xmax; x++ {
			xticks = append(xticks, x)
		}
	} else {
		xs := niceStep((xmax - xmin) / 6)
		for x := math.Ceil(xmin/xs) * xs; x <= xmax+xs/2; x += xs {
			xticks = append(xticks, x)
		}
	}
	for _, x := range xticks {
		gocv.Line(&img, image.Pt(px(x), top+ph), image.Pt(px(x), top+ph+6*s), black, s)
		lbl := strconv.FormatFloat(x, 'f', -1, 64)
		sz := gocv.GetTextSize(lbl, gocv.FontHersheySimplex, 0.5*s, s)
		text(lbl, image.Pt(px(x)-sz.X/2, top+ph+12*s+sz.Y), 0.5)
	}
	gocv.Rectangle(&img, image.Rect(left, top, left+pw, top+ph), black, s)
	sz := gocv.GetTextSize(title, gocv.FontHersheySimplex, 0.6*s, s)
	text(title, image.Pt((W-sz.X)/2, 30*s), 0.6)
	sz = gocv.GetTextSize(xLabel, gocv.FontHersheySimplex, 0.55*s, s)
	text(xLabel, image.Pt(left+(pw-sz.X)/2, H-18*s), 0.55)
	text(yLabel, image.Pt(12*s, top-18*s), 0.5)
	for i, sr := range series {
		c := plotColours[i%len(plotColours)]
		for j := 1; j < len(sr.X); j++ {
			gocv.Line(&img, image.Pt(px(sr.X[j-1]), py(sr.Y[j-1])), image.Pt(px(sr.X[j]), py(sr.Y[j])), c, 3*s)
		}
		for j := range sr.X {
			gocv.Circle(&img, image.Pt(px(sr.X[j]), py(sr.Y[j])), 6*s, c, -1)
		}
		ly := top + 20*s + i*28*s
		gocv.Line(&img, image.Pt(left+pw+15*s, ly), image.Pt(left+pw+45*s, ly), c, 3*s)
		gocv.Circle(&img, image.Pt(left+pw+30*s, ly), 6*s, c, -1)
		text(sr.Name, image.Pt(left+pw+52*s, ly+6*s), 0.45)
	}
	small := gocv.NewMat()
	defer small.Close()
	gocv.Resize(img, &small, image.Pt(W/s, H/s), 0, 0, gocv.InterpolationArea)
	if !gocv.IMWrite(path, small) {
		return fmt.Errorf("plot: could not write %s (does its folder exist?)", path)
	}
	return nil
}

// niceStep rounds a step up to 1, 2 or 5 times a power of ten.
func niceStep(raw float64) float64 {
	if raw <= 0 || math.IsNaN(raw) {
		return 0.01
	}
	p := math.Pow(10, math.Floor(math.Log10(raw)))
	for _, m := range []float64{1, 2, 5, 10} {
		if m*p >= raw {
			return m * p
		}
	}
	return 10 * p
}

func decimals(step float64) int {
	d := 0
	for step < 1 && d < 6 {
		step *= 10
		d++
	}
	return d
}
