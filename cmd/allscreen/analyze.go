package main

import (
	"encoding/json"
	"fmt"
	"image"
	"image/color"
	"os"
	"path/filepath"
	"strings"

	"allscreen/vision"

	"gocv.io/x/gocv"
)

func init() {
	register(command{name: "analyze", summary: "find the white cells in images and print them", run: runAnalyze})
}

type cellJSON struct {
	X int `json:"x"`
	Y int `json:"y"`
	W int `json:"w"`
	H int `json:"h"`
}

type analyzeJSON struct {
	File   string     `json:"file"`
	Width  int        `json:"width"`
	Height int        `json:"height"`
	Cells  []cellJSON `json:"cells"`
	Error  string     `json:"error,omitempty"`
}

func runAnalyze(argv []string) error {
	fs := newFlags("analyze", "IMAGE...")
	asJSON := fs.Bool("json", false, "print one JSON object per image")
	overlay := fs.String("overlay", "", "write each image with the cells outlined into `DIR`")
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
			return err
		}
	}
	failed := 0
	enc := json.NewEncoder(os.Stdout)
	for _, f := range files {
		res, err := analyzeFile(f, *overlay)
		if err != nil {
			failed++
			fmt.Fprintf(os.Stderr, "allscreen analyze: %v\n", err)
			if *asJSON {
				enc.Encode(analyzeJSON{File: f, Cells: []cellJSON{}, Error: err.Error()})
			}
			continue
		}
		if *asJSON {
			enc.Encode(res)
			continue
		}
		fmt.Printf("%s: %dx%d, %d white cells\n", res.File, res.Width, res.Height, len(res.Cells))
		for i, c := range res.Cells {
			fmt.Printf("  cell %d at x=%d y=%d, %dx%d\n", i+1, c.X, c.Y, c.W, c.H)
		}
	}
	if failed > 0 {
		fmt.Fprintf(os.Stderr, "allscreen analyze: %d of %d files failed\n", failed, len(files))
		return errSomeFailed
	}
	return nil
}

func analyzeFile(path, overlayDir string) (analyzeJSON, error) {
	img, err := vision.LoadImage(path)
	if err != nil {
		return analyzeJSON{}, err
	}
	defer img.Close()
	cells, err := vision.FindCells(img, vision.DefaultFindOptions)
	if err != nil {
		return analyzeJSON{}, fmt.Errorf("%s: %w", path, err)
	}
	res := analyzeJSON{File: path, Width: img.Cols(), Height: img.Rows(), Cells: []cellJSON{}}
	for _, c := range cells {
		res.Cells = append(res.Cells, cellJSON{X: c.Box.Min.X, Y: c.Box.Min.Y, W: c.Box.Dx(), H: c.Box.Dy()})
	}
	if overlayDir != "" {
		out := filepath.Join(overlayDir, strings.TrimSuffix(filepath.Base(path), filepath.Ext(path))+".overlay.png")
		if err := writeOverlay(img, cells, out); err != nil {
			return analyzeJSON{}, err
		}
	}
	return res, nil
}

func writeOverlay(img gocv.Mat, cells []vision.Cell, out string) error {
	o := img.Clone()
	defer o.Close()
	thick := max(2, max(img.Cols(), img.Rows())/400)
	for i, c := range cells {
		gocv.Rectangle(&o, c.Box, color.RGBA{G: 220, A: 255}, thick)
		gocv.Rectangle(&o, c.Crop, color.RGBA{B: 255, G: 160, A: 255}, max(1, thick/2))
		gocv.PutText(&o, fmt.Sprint(i+1), image.Pt(c.Box.Min.X, max(12, c.Box.Min.Y-4)), gocv.FontHersheySimplex,
			float64(thick)/3, color.RGBA{G: 120, A: 255}, thick)
	}
	if !gocv.IMWrite(out, o) {
		return fmt.Errorf("write overlay %s failed", out)
	}
	return nil
}
