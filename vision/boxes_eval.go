package vision

import (
	"crypto/sha256"
	"encoding/csv"
	"errors"
	"fmt"
	"image"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"

	"gocv.io/x/gocv"
)

// Measuring FindCells on any field set that comes with a boxes.csv
// (file,class,x0,y0,x1,y1, pixel corners, as bccd/ and olympus/fields/ in
// the data folder). Only WBC boxes are white cells; RBC and Platelets
// boxes are read to tell a person what a false detection landed on.
//
// Matching is one to one, as the issue that asked for it defines it: a
// detection matches a truth box when its centre lies in the box or its box
// covers the truth box's centre. Pairs are taken greedily by the distance
// between centres, so two cells merged into one detection count one found
// and one missed. Boxes are incomplete (some white cells are not boxed,
// some are boxed as red cells), so precision here is a lower bound.

// Split halves of a box set: the tuning half may be looked at and tuned
// on; the untouched half is only ever measured. A field's half is set by
// the SHA-256 of its file's bytes (first byte even: tuning), fixed before
// any tuning and independent of file names.
const (
	SplitUntouched FieldSplit = "untouched"
)

// BoxSplit returns the half of a box set the file with these bytes is in.
func BoxSplit(content []byte) FieldSplit {
	if sha256.Sum256(content)[0]%2 == 0 {
		return SplitTune
	}
	return SplitUntouched
}

// BoxField is one field of a box set with its truth.
type BoxField struct {
	File  string // path of the image
	Name  string // file name as in boxes.csv
	Split FieldSplit
	WBC   []image.Rectangle
	Other []LabelledBox // RBC and platelet boxes
}

// LabelledBox is a truth box of another class.
type LabelledBox struct {
	Class string
	Box   image.Rectangle
}

// maxBoxRows bounds boxes.csv: the real sets have at most some 10,000 rows.
const maxBoxRows = 1 << 20

// ReadBoxes parses a boxes.csv. Rows are file,class,x0,y0,x1,y1; the
// header is required. Boxes with corners given in either order are
// normalised; empty boxes and negative coordinates are refused.
func ReadBoxes(r io.Reader) (map[string][]LabelledBox, error) {
	cr := csv.NewReader(r)
	cr.FieldsPerRecord = 6
	cr.ReuseRecord = true
	head, err := cr.Read()
	if err != nil {
		return nil, fmt.Errorf("boxes.csv header: %w", err)
	}
	if strings.Join(head, ",") != "file,class,x0,y0,x1,y1" {
		return nil, fmt.Errorf("boxes.csv header is %q, want file,class,x0,y0,x1,y1", strings.Join(head, ","))
	}
	out := map[string][]LabelledBox{}
	for line := 2; ; line++ {
		rec, err := cr.Read()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return nil, fmt.Errorf("boxes.csv: %w", err)
		}
		if line > maxBoxRows {
			return nil, fmt.Errorf("boxes.csv: more than %d rows", maxBoxRows)
		}
		var v [4]int
		for i := range v {
			n, err := strconv.Atoi(strings.TrimSpace(rec[2+i]))
			if err != nil || n < 0 || n > 1<<20 {
				return nil, fmt.Errorf("boxes.csv line %d: coordinate %q is not a pixel position", line, rec[2+i])
			}
			v[i] = n
		}
		b := image.Rect(v[0], v[1], v[2], v[3]) // image.Rect orders the corners
		if b.Empty() {
			return nil, fmt.Errorf("boxes.csv line %d: empty box %v", line, b)
		}
		name := rec[0]
		if name == "" || filepath.Base(name) != name {
			return nil, fmt.Errorf("boxes.csv line %d: file %q is not a plain file name", line, name)
		}
		out[name] = append(out[name], LabelledBox{Class: strings.TrimSpace(rec[1]), Box: b})
	}
	return out, nil
}

// isWhiteCellClass says whether a boxes.csv class is a white cell.
func isWhiteCellClass(c string) bool { return strings.EqualFold(c, "WBC") }

// LoadBoxFields reads dir/boxes.csv and lists its fields in file-name order,
// each with its half (from its bytes, read with LoadImage's checks). A field
// listed with no WBC box is kept: every detection in it is unmatched.
func LoadBoxFields(dir string) ([]BoxField, error) {
	f, err := os.Open(filepath.Join(dir, "boxes.csv"))
	if err != nil {
		return nil, fmt.Errorf("box set: %w (want a folder holding boxes.csv: file,class,x0,y0,x1,y1)", err)
	}
	defer f.Close()
	boxes, err := ReadBoxes(f)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", dir, err)
	}
	names := make([]string, 0, len(boxes))
	for n := range boxes {
		names = append(names, n)
	}
	slices.Sort(names)
	out := make([]BoxField, 0, len(names))
	for _, n := range names {
		path := filepath.Join(dir, n)
		content, err := readImageFile(path)
		if err != nil {
			return nil, fmt.Errorf("box set %s: %w", dir, err)
		}
		bf := BoxField{File: path, Name: n, Split: BoxSplit(content)}
		for _, b := range boxes[n] {
			if isWhiteCellClass(b.Class) {
				bf.WBC = append(bf.WBC, b.Box)
			} else {
				bf.Other = append(bf.Other, b)
			}
		}
		out = append(out, bf)
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("%s/boxes.csv lists no field", dir)
	}
	return out, nil
}

// BoxResult is FindCells measured on one boxed field.
type BoxResult struct {
	Name          string      `json:"name"`
	Split         FieldSplit  `json:"split"`
	Width         int         `json:"width"`
	Height        int         `json:"height"`
	RedCellRadius float64     `json:"red_cell_radius"` // field pixels, 0 when assumed
	Truth         int         `json:"truth"`           // WBC boxes
	Found         int         `json:"found"`           // WBC boxes matched
	Detections    int         `json:"detections"`      // of which Found are matched
	Missed        []MissedBox `json:"missed,omitempty"`
	// False are unmatched detections, each with what truth box (if any)
	// its centre lies in: a person looks at these before calling them
	// false.
	False   []FalseDetection  `json:"false,omitempty"`
	Cells   []image.Rectangle `json:"cells,omitempty"` // every detection's box
	Quality string            `json:"quality"`
}

// MissedBox is a WBC box no detection matched, with what became of the
// stained object at its centre.
type MissedBox struct {
	Box image.Rectangle `json:"box"`
	Why string          `json:"why"`
}

// FalseDetection is a detection no WBC box matched.
type FalseDetection struct {
	Box image.Rectangle `json:"box"`
	// On is where its centre lies: inside another detection (SplitCell:
	// one cell found as two), in an RBC or Platelets box, or "" (no box).
	On string `json:"on"`
}

// SplitCell is FalseDetection.On for a detection whose centre lies inside
// another detection: one cell split in two.
const SplitCell = "another detection"

// MatchBoxes pairs detections (by their boxes) with truth boxes one to one
// and returns, for each truth box, the index of its detection or -1.
func MatchBoxes(truth, det []image.Rectangle) []int {
	type pair struct{ t, d, dist int }
	var pairs []pair
	for ti, t := range truth {
		tc := boxCentre(t)
		for di, d := range det {
			dc := boxCentre(d)
			if dc.In(t) || tc.In(d) {
				dx, dy := tc.X-dc.X, tc.Y-dc.Y
				pairs = append(pairs, pair{ti, di, dx*dx + dy*dy})
			}
		}
	}
	slices.SortStableFunc(pairs, func(a, b pair) int { return a.dist - b.dist })
	match := make([]int, len(truth))
	for i := range match {
		match[i] = -1
	}
	used := make([]bool, len(det))
	for _, p := range pairs {
		if match[p.t] < 0 && !used[p.d] {
			match[p.t], used[p.d] = p.d, true
		}
	}
	return match
}

// EvaluateBoxField gates a boxed field (loaded from bf.File by the caller)
// and finds its cells.
func EvaluateBoxField(bf BoxField, field gocv.Mat, opt FindOptions) (BoxResult, error) {
	r := BoxResult{Name: bf.Name, Split: bf.Split, Width: field.Cols(), Height: field.Rows(), Truth: len(bf.WBC)}
	r.Quality = CheckQuality(field).Issue.String()
	opt = opt.withDefaults()
	res, err := analyzeField(field, opt.WorkSide)
	if err != nil {
		return r, fmt.Errorf("%s: %w", bf.Name, err)
	}
	if res.measured {
		r.RedCellRadius = res.radius * res.scale
	}
	det := cellBoxes(res.cells(field.Cols(), field.Rows(), opt.CropScale))
	r.Cells = det
	r.Detections = len(det)
	match := MatchBoxes(bf.WBC, det)
	used := make([]bool, len(det))
	for ti, di := range match {
		if di < 0 {
			r.Missed = append(r.Missed, MissedBox{bf.WBC[ti], res.missReason(boxCentre(bf.WBC[ti]), false)})
			continue
		}
		used[di] = true
		r.Found++
	}
	for di, d := range det {
		if !used[di] {
			r.False = append(r.False, FalseDetection{Box: d, On: falseOn(di, det, bf.Other)})
		}
	}
	return r, nil
}

// cellBoxes are the cells' boxes, the detections matched against truth.
func cellBoxes(cells []Cell) []image.Rectangle {
	det := make([]image.Rectangle, len(cells))
	for i, c := range cells {
		det[i] = c.Box
	}
	return det
}

// falseOn says where the centre of detection di lies (FalseDetection.On).
func falseOn(di int, det []image.Rectangle, other []LabelledBox) string {
	c := boxCentre(det[di])
	for i, d := range det {
		if i != di && c.In(d) {
			return SplitCell
		}
	}
	for _, o := range other {
		if c.In(o.Box) {
			return o.Class
		}
	}
	return ""
}

// BoxGroup sums the results of one half of a box set.
type BoxGroup struct {
	Name      string     `json:"name"`
	Split     FieldSplit `json:"split"`
	Fields    int        `json:"fields"`
	Recall    Rate       `json:"recall"`
	Precision Rate       `json:"precision"` // a lower bound: boxes are incomplete
	Rejected  int        `json:"rejected"`  // fields the quality gate would refuse
}

// SumBoxes sums results; split "" sums every field.
func SumBoxes(name string, split FieldSplit, rs []BoxResult) BoxGroup {
	g := BoxGroup{Name: name, Split: split}
	found, truth, det := 0, 0, 0
	for _, r := range rs {
		if split != "" && r.Split != split {
			continue
		}
		g.Fields++
		found += r.Found
		truth += r.Truth
		det += r.Detections
		if r.Quality != QualityGood.String() {
			g.Rejected++
		}
	}
	g.Recall, g.Precision = Wilson(found, truth), Wilson(found, det)
	return g
}
