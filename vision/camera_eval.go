package vision

import (
	"fmt"
	"image"
	"math"
)

// Cell finding and the quality gate on degraded copies of real fields
// (`allscreen camera-eval`, issue 11 item 3): every field with white-cell
// truth, every Degradation, the same matching as the box sets (MatchBoxes:
// a truth box is found when a detection's centre lies in it or the
// detection covers its centre; one to one).

// CameraField is a field with its white cells' truth boxes; a truth that
// is a point (ALL-IDB1's centroids and mask cells) is a one-pixel box.
type CameraField struct {
	Set   string            `json:"set"`
	Name  string            `json:"name"`
	Split FieldSplit        `json:"split"`
	File  string            `json:"-"`
	WBC   []image.Rectangle `json:"-"`
}

// CameraResult is one field, original or degraded.
type CameraResult struct {
	Set         string     `json:"set"`
	Field       string     `json:"field"`
	Split       FieldSplit `json:"split"`
	Degradation string     `json:"degradation"` // "original" for the field as it came
	Truth       int        `json:"truth"`
	Found       int        `json:"found"`
	Detections  int        `json:"detections"`
	Quality     Quality    `json:"quality"`
}

// Original is CameraResult.Degradation for the unchanged field.
const Original = "original"

// CameraFieldsFromBoxes lists a box set's fields (LoadBoxFields).
func CameraFieldsFromBoxes(set string, fields []BoxField) []CameraField {
	out := make([]CameraField, len(fields))
	for i, bf := range fields {
		out[i] = CameraField{Set: set, Name: bf.Name, Split: bf.Split, File: bf.File, WBC: bf.WBC}
	}
	return out
}

// CameraFieldsFromTruth lists ALL-IDB1's fields with the white cells
// EvaluateField counts as truth: the mask's cells, or the centroids its
// size rule calls white cells (r is that field's evaluation).
func CameraFieldFromTruth(t FieldTruth, r FieldResult) CameraField {
	cf := CameraField{Set: "allidb1", Name: t.Name, Split: r.Split, File: t.Image}
	pts := r.TruthCells
	if t.Mask == "" {
		pts = nil
		for _, c := range r.Centroids {
			if c.WhiteCell {
				pts = append(pts, c.At)
			}
		}
	}
	for _, p := range pts {
		cf.WBC = append(cf.WBC, image.Rect(p.X, p.Y, p.X+1, p.Y+1))
	}
	return cf
}

// EvaluateCamera finds the cells of the field and of each degraded copy
// and gates each. The blur of a copy is set by the red-cell radius
// measured on the original (or assumed, as FindCells assumes it).
func EvaluateCamera(cf CameraField, opt FindOptions, degs []Degradation) ([]CameraResult, error) {
	field, err := LoadImage(cf.File)
	if err != nil {
		return nil, err
	}
	defer field.Close()
	opt = opt.withDefaults()
	res, err := analyzeField(field, opt.WorkSide)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", cf.Name, err)
	}
	radius := res.radius * res.scale
	one := func(name string, res *fieldCells, w, h int, q Quality, sx, sy float64) CameraResult {
		truth := make([]image.Rectangle, len(cf.WBC))
		for i, b := range cf.WBC {
			truth[i] = scaleRect(b, sx, sy)
		}
		det := cellBoxes(res.cells(w, h, opt.CropScale))
		found := 0
		for _, d := range MatchBoxes(truth, det) {
			if d >= 0 {
				found++
			}
		}
		return CameraResult{Set: cf.Set, Field: cf.Name, Split: cf.Split, Degradation: name,
			Truth: len(truth), Found: found, Detections: len(det), Quality: q}
	}
	out := []CameraResult{one(Original, res, field.Cols(), field.Rows(), CheckQuality(field), 1, 1)}
	for _, d := range degs {
		m, sx, sy, err := d.Apply(field, radius)
		if err != nil {
			m.Close()
			return nil, fmt.Errorf("%s: %w", cf.Name, err)
		}
		r, err := analyzeField(m, opt.WorkSide)
		if err != nil {
			m.Close()
			return nil, fmt.Errorf("%s %s: %w", cf.Name, d.Name, err)
		}
		out = append(out, one(d.Name, r, m.Cols(), m.Rows(), CheckQuality(m), sx, sy))
		m.Close()
	}
	return out, nil
}

// scaleRect maps a box of the original to a copy scaled by sx, sy,
// keeping it at least one pixel.
func scaleRect(b image.Rectangle, sx, sy float64) image.Rectangle {
	if sx == 1 && sy == 1 {
		return b
	}
	x0, y0 := int(math.Floor(float64(b.Min.X)*sx)), int(math.Floor(float64(b.Min.Y)*sy))
	x1, y1 := int(math.Ceil(float64(b.Max.X)*sx)), int(math.Ceil(float64(b.Max.Y)*sy))
	return image.Rect(x0, y0, max(x1, x0+1), max(y1, y0+1))
}
