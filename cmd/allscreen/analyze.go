package main

import (
	"context"
	"encoding/json"
	"fmt"
	"image"
	"image/color"
	"io"
	"os"
	"path/filepath"
	"strings"

	"allscreen/model"
	"allscreen/screening"
	"allscreen/vision"

	"gocv.io/x/gocv"
)

func init() {
	register(command{name: "analyze", summary: "check image quality, find the white cells and print them (--model: and classify them)",
		run: func(args []string) error { return runAnalyze(args, os.Stdout, os.Stderr) }})
}

type cellJSON struct {
	X      int     `json:"x"`
	Y      int     `json:"y"`
	W      int     `json:"w"`
	H      int     `json:"h"`
	AtEdge bool    `json:"at_edge,omitempty"`
	Smudge float64 `json:"smudge"`
	// With --model: P(blast) and the call the verdict rule makes of it
	// (blast, not-blast, uncertain, unlike-training-data).
	PBlast *float64 `json:"p_blast,omitempty"`
	Call   string   `json:"call,omitempty"`
	Reason string   `json:"reason,omitempty"`
}

type qualityJSON struct {
	OK         bool    `json:"ok"`
	Issue      string  `json:"issue"`
	Advice     string  `json:"advice,omitempty"`
	Background float64 `json:"background"`
	Clipped    float64 `json:"clipped"`
	Stained    float64 `json:"stained"`
	Focus      float64 `json:"focus"`
}

type analyzeJSON struct {
	File    string       `json:"file"`
	Width   int          `json:"width,omitempty"`
	Height  int          `json:"height,omitempty"`
	Quality *qualityJSON `json:"quality,omitempty"`
	// RedCellRadius is the scale every size was judged in (field pixels);
	// 0 when the image had too few red cells to measure it.
	RedCellRadius float64    `json:"red_cell_radius"`
	Cells         []cellJSON `json:"cells"`
	Overlay       string     `json:"overlay,omitempty"`
	Error         string     `json:"error,omitempty"`
}

// runAnalyze analyses every file named, printing results to stdout and
// problems to stderr; a file that fails does not stop the others.
func runAnalyze(argv []string, stdout, stderr io.Writer) error {
	fs := newFlags("analyze", "IMAGE...")
	fs.SetOutput(stderr)
	asJSON := fs.Bool("json", false, "print one JSON object per image")
	overlay := fs.String("overlay", "", "write each image with the cells outlined into `DIR` (with --model: coloured by call)")
	modelPath := fs.String("model", "", "classify each cell with this model manifest `JSON` (the verdict rule's defaults call it)")
	files, err := parseFlags(fs, argv)
	if err != nil {
		return err
	}
	if len(files) == 0 {
		fs.Usage()
		return errUsage
	}
	if *overlay != "" {
		if err := os.MkdirAll(*overlay, 0o755); err != nil {
			return fmt.Errorf("overlay folder: %w", err)
		}
	}
	var cls *cellClassifier
	if *modelPath != "" {
		if cls, err = newCellClassifier(*modelPath); err != nil {
			return err
		}
		defer cls.net.Close()
	}
	failed := 0
	enc := json.NewEncoder(stdout)
	for _, f := range files {
		res, err := analyzeFile(f, *overlay, cls)
		if err != nil {
			failed++
			fmt.Fprintf(stderr, "allscreen analyze: %v\n", err)
			if *asJSON {
				enc.Encode(analyzeJSON{File: f, Cells: []cellJSON{}, Error: err.Error()})
			}
			continue
		}
		if *asJSON {
			enc.Encode(res)
			continue
		}
		q := "quality good"
		if !res.Quality.OK {
			q = "quality: " + res.Quality.Advice
		}
		fmt.Fprintf(stdout, "%s: %dx%d, %s, %d white cells\n", res.File, res.Width, res.Height, q, len(res.Cells))
		for i, c := range res.Cells {
			edge := ""
			if c.AtEdge {
				edge = " (cut by the image edge)"
			}
			call := ""
			if c.PBlast != nil {
				call = fmt.Sprintf(": %s, P(blast) %.2f", c.Call, *c.PBlast)
				if c.Reason != "" {
					call += " (" + c.Reason + ")"
				}
			}
			fmt.Fprintf(stdout, "  cell %d at x=%d y=%d, %dx%d%s%s\n", i+1, c.X, c.Y, c.W, c.H, edge, call)
		}
		if res.Overlay != "" {
			fmt.Fprintf(stdout, "  overlay: %s\n", res.Overlay)
		}
	}
	if failed > 0 {
		fmt.Fprintf(stderr, "allscreen analyze: %d of %d files failed\n", failed, len(files))
		return errSomeFailed
	}
	return nil
}

// analyzeFile loads one image, checks its quality and finds its white
// cells. The cells are looked for even when the quality gate would refuse
// the field: on the command line the person sees both and judges.
func analyzeFile(path, overlayDir string, cls *cellClassifier) (analyzeJSON, error) {
	img, err := vision.LoadImage(path)
	if err != nil {
		return analyzeJSON{}, err
	}
	defer img.Close()
	q := vision.CheckQuality(img)
	cells, err := vision.FindCells(img, vision.DefaultFindOptions)
	if err != nil {
		return analyzeJSON{}, fmt.Errorf("%s: %w", path, err)
	}
	res := analyzeJSON{File: path, Width: img.Cols(), Height: img.Rows(), Cells: []cellJSON{},
		Quality: &qualityJSON{OK: q.OK(), Issue: q.Issue.String(), Advice: q.Advice(),
			Background: q.Background, Clipped: q.Clipped, Stained: q.Stained, Focus: q.Focus}}
	for _, c := range cells {
		res.Cells = append(res.Cells, cellJSON{X: c.Box.Min.X, Y: c.Box.Min.Y, W: c.Box.Dx(), H: c.Box.Dy(), AtEdge: c.AtEdge, Smudge: c.Smudge})
		res.RedCellRadius = c.RedCellRadius
	}
	var calls []string
	if cls != nil && len(cells) > 0 {
		if calls, err = cls.classify(img, cells, res.Cells); err != nil {
			return analyzeJSON{}, fmt.Errorf("%s: %w", path, err)
		}
	}
	if overlayDir != "" {
		out := filepath.Join(overlayDir, strings.TrimSuffix(filepath.Base(path), filepath.Ext(path))+".overlay.png")
		if err := writeOverlay(img, cells, calls, q, out); err != nil {
			return analyzeJSON{}, fmt.Errorf("%s: %w", path, err)
		}
		res.Overlay = out
	}
	return res, nil
}

// writeOverlay draws each cell's outline (green), its crop square (orange)
// and number, and the quality advice when the field fails the gate. With
// calls, each cell's outline and number take its call's colour: red blast,
// green not blast, orange uncertain or unlike the training data.
func writeOverlay(img gocv.Mat, cells []vision.Cell, calls []string, q vision.Quality, out string) error {
	o := img.Clone()
	defer o.Close()
	thick := max(1, max(img.Cols(), img.Rows())/500)
	green, orange, red := color.RGBA{G: 220, A: 255}, color.RGBA{R: 255, G: 150, A: 255}, color.RGBA{R: 230, A: 255}
	for i, c := range cells {
		col := green
		if i < len(calls) {
			switch calls[i] {
			case callBlast:
				col = red
			case callUncertain, callUnfamiliar:
				col = orange
			}
		}
		if len(c.Outline) >= 3 {
			gocv.Polylines(&o, [][]image.Point{c.Outline}, true, col, thick)
		} else {
			gocv.Rectangle(&o, c.Box, col, thick)
		}
		if calls == nil {
			gocv.Rectangle(&o, c.Crop, orange, max(1, thick/2))
		}
		gocv.PutText(&o, fmt.Sprint(i+1), image.Pt(c.Box.Min.X, max(12, c.Box.Min.Y-4)), gocv.FontHersheySimplex,
			float64(thick)/2+0.4, col, thick)
	}
	if !q.OK() {
		gocv.PutText(&o, q.Advice(), image.Pt(8, 12+12*thick), gocv.FontHersheySimplex, float64(thick)/2+0.4, red, thick)
	}
	if !gocv.IMWrite(out, o) {
		return fmt.Errorf("could not write overlay %s (is the folder writable?)", out)
	}
	return nil
}

// The calls analyze --model prints, as the verdict rule makes them.
const (
	callBlast      = "blast"
	callNotBlast   = "not-blast"
	callUncertain  = "uncertain"
	callUnfamiliar = "unlike-training-data"
)

// cellClassifier classifies found cells as the appliance does: the same
// crops, one batch, the verdict rule's threshold (its defaults).
type cellClassifier struct {
	net  *model.Net
	rule screening.Rule
}

func newCellClassifier(manifest string) (*cellClassifier, error) {
	n, err := model.Load(manifest)
	if err != nil {
		return nil, err
	}
	rule, err := screening.RuleFor(n.Manifest().Operating, screening.DefaultRuleConfig)
	if err != nil {
		n.Close()
		return nil, err
	}
	return &cellClassifier{net: n, rule: rule}, nil
}

// classify fills out[i]'s P(blast) and call for cells[i] and returns the calls.
func (c *cellClassifier) classify(img gocv.Mat, cells []vision.Cell, out []cellJSON) ([]string, error) {
	a := screening.Analyzer{Classifier: c.net, Rule: c.rule,
		FindCells: func(gocv.Mat) ([]vision.Cell, error) { return cells, nil }}
	fa, err := a.Analyze(context.Background(), img)
	if err != nil {
		return nil, err
	}
	if len(fa.Cells) != len(cells) {
		return nil, fmt.Errorf("classified %d of %d cells", len(fa.Cells), len(cells))
	}
	calls := make([]string, len(cells))
	for i, r := range fa.Cells {
		p := float64(r.Prediction.Blast)
		switch {
		case r.Call.OutOfDistribution:
			calls[i] = callUnfamiliar
		case r.Call.Uncertain:
			calls[i] = callUncertain
		case r.Call.Blast:
			calls[i] = callBlast
		default:
			calls[i] = callNotBlast
		}
		out[i].PBlast, out[i].Call, out[i].Reason = &p, calls[i], r.Prediction.Reason
	}
	return calls, nil
}
