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
// field with its truth boxes (green: WBC, blue: others) and detections (red:
// unmatched, yellow: matched) into draw/<set>/.
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
			r, err := vision.EvaluateBoxField(bf, opt)
			if err != nil {
				return nil, err
			}
			set.Fields = append(set.Fields, r)
			if draw != "" {
				if err := drawBoxField(filepath.Join(draw, name), bf, r); err != nil {
					return nil, err
				}
			}
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

// boxSetName names a box set by its folder below the data folder
// ("bccd", "olympus/fields").
func boxSetName(dir string) string {
	clean := filepath.Clean(dir)
	parent := filepath.Base(filepath.Dir(clean))
	if base := filepath.Base(clean); base == "fields" || base == "images" {
		return parent + "-" + base
	}
	return filepath.Base(clean)
}

var (
	colTruth   = color.RGBA{0, 200, 0, 0}
	colOther   = color.RGBA{255, 120, 0, 0} // blue in BGR order
	colFound   = color.RGBA{0, 220, 255, 0}
	colFalse   = color.RGBA{0, 0, 255, 0}
	colMissed  = color.RGBA{255, 0, 255, 0}
	drawStroke = 2
)

func drawBoxField(dir string, bf vision.BoxField, r vision.BoxResult) error {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	img, err := vision.LoadImage(bf.File)
	if err != nil {
		return err
	}
	defer img.Close()
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
