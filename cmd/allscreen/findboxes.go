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

// boxSetJSON is one box set's measurement.
type boxSetJSON struct {
	Dir    string             `json:"dir"`
	Groups []vision.BoxGroup  `json:"groups"`
	Fields []vision.BoxResult `json:"fields"`
}

// evalBoxSets measures FindCells on every folder holding a boxes.csv and
// prints one summary line per half (or JSON); with draw set, it writes every
// field with its truth boxes (green: WBC, magenta: WBC missed, blue: platelets)
// and detections (red: unmatched, yellow: matched) into draw/<set>/.
func evalBoxSets(dirs []string, asJSON bool, draw string, opt vision.FindOptions) ([]boxSetJSON, error) {
	var sets []boxSetJSON
	for _, dir := range dirs {
		fields, err := vision.LoadBoxFields(dir)
		if err != nil {
			return nil, err
		}
		name := boxSetName(dir)
		set := boxSetJSON{Dir: dir}
		for i, bf := range fields {
			if !asJSON {
				fmt.Fprintf(os.Stderr, "\r%s %d/%d %s   ", name, i+1, len(fields), bf.Name)
			}
			r, err := evalBoxField(bf, opt, draw, name)
			if err != nil {
				return nil, err
			}
			set.Fields = append(set.Fields, r)
		}
		if !asJSON {
			fmt.Fprintln(os.Stderr)
		}
		set.Groups = []vision.BoxGroup{
			vision.SumBoxes(name+", tuning half", vision.SplitTune, set.Fields),
			vision.SumBoxes(name+", untouched half", vision.SplitUntouched, set.Fields),
			vision.SumBoxes(name+", all", "", set.Fields),
		}
		sets = append(sets, set)
	}
	if asJSON {
		enc := json.NewEncoder(os.Stdout)
		enc.SetIndent("", "  ")
		return sets, enc.Encode(sets)
	}
	for _, s := range sets {
		for _, g := range s.Groups {
			fmt.Printf("%s (%d fields, %d rejected by the gate): recall %v, precision >= %v\n", g.Name, g.Fields, g.Rejected, g.Recall, g.Precision)
		}
	}
	return sets, nil
}

// evalBoxField loads one field once, measures it and, with draw set,
// draws on it.
func evalBoxField(bf vision.BoxField, opt vision.FindOptions, draw, name string) (vision.BoxResult, error) {
	field, err := vision.LoadImage(bf.File)
	if err != nil {
		return vision.BoxResult{}, err
	}
	defer field.Close()
	r, err := vision.EvaluateBoxField(bf, field, opt)
	if err != nil || draw == "" {
		return r, err
	}
	return r, drawBoxField(filepath.Join(draw, name), bf, r, field)
}

// boxSetName names a box set by its folder and the folder's parent when
// the folder alone says little ("bccd", "olympus/fields").
func boxSetName(dir string) string {
	clean := filepath.Clean(dir)
	if base := filepath.Base(clean); base == "fields" || base == "images" {
		return filepath.Base(filepath.Dir(clean)) + "/" + base
	}
	return filepath.Base(clean)
}

// Drawing colours, as RGB (gocv writes them in the Mat's BGR order).
var (
	colTruth  = color.RGBA{0, 200, 0, 0}
	colOther  = color.RGBA{0, 120, 255, 0}
	colFound  = color.RGBA{255, 220, 0, 0}
	colFalse  = color.RGBA{255, 0, 0, 0}
	colMissed = color.RGBA{255, 0, 255, 0}
)

const drawStroke = 2

// drawBoxField draws truth and detections on img (the field, which it
// changes) and writes it into dir.
func drawBoxField(dir string, bf vision.BoxField, r vision.BoxResult, img gocv.Mat) error {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	for _, o := range bf.Other {
		if o.Class != "RBC" {
			gocv.Rectangle(&img, o.Box, colOther, 1)
		}
	}
	for _, b := range bf.WBC {
		gocv.Rectangle(&img, b, colTruth, drawStroke)
	}
	for _, b := range r.Missed {
		gocv.Rectangle(&img, b.Box.Inset(-3), colMissed, drawStroke)
	}
	falseAt := map[image.Rectangle]bool{}
	for _, f := range r.False {
		falseAt[f.Box] = true
	}
	for _, c := range r.Cells {
		col := colFound
		if falseAt[c] {
			col = colFalse
		}
		gocv.Rectangle(&img, c.Inset(2), col, drawStroke)
	}
	label := fmt.Sprintf("%s %s R=%.0f found %d/%d det %d %s", bf.Name, r.Split, r.RedCellRadius, r.Found, r.Truth, r.Detections, r.Quality)
	gocv.PutText(&img, label, image.Pt(5, 15), gocv.FontHersheySimplex, 0.45, color.RGBA{0, 0, 0, 0}, 1)
	out := filepath.Join(dir, strings.TrimSuffix(bf.Name, filepath.Ext(bf.Name))+".png")
	if !gocv.IMWrite(out, img) {
		return fmt.Errorf("write %s", out)
	}
	return nil
}
