package model

import (
	"fmt"
	"image"
	"slices"
	"sort"

	"allscreen/vision"

	"gocv.io/x/gocv"
)

// Every ALL-IDB2 crop was cut from an ALL-IDB1 field, and some ALL-IDB1
// fields overlap. A split that puts two crops of one field (or of two
// overlapping fields) on both sides leaks slide, stain and neighbouring
// cells. FieldGroups finds each crop's field by template matching, links
// overlapping fields, and gives every crop the group of its field family.

// matchScale is the downscale factor for matching: cells stay recognisable
// and a whole search takes minutes, not hours.
const matchScale = 4

// CropSource is where one crop was found.
type CropSource struct {
	Crop       string  // crop file name
	Field      string  // field file name, "" when no field matched
	X, Y       int     // crop's top-left corner in the field, field pixels
	Score      float64 // normalised correlation of the best match
	FieldGroup string  // the field family (overlapping fields), or the crop's own group when unmatched
}

// MatchThreshold is the correlation above which a crop is taken to come from
// a field. On ALL-IDB the scores fall in two clusters: true matches 0.95 to
// 1.0, the best wrong field 0.6 to 0.85, nothing between (model/data/
// allidb2-sources.csv keeps every crop's best score).
const MatchThreshold = 0.9

// fieldImage is a field downscaled for matching.
type fieldImage struct {
	name string
	img  gocv.Mat
}

func loadSmall(path string) (gocv.Mat, error) {
	m, err := vision.LoadImage(path)
	if err != nil {
		return gocv.Mat{}, err
	}
	defer m.Close()
	small := gocv.NewMat()
	gocv.Resize(m, &small, image.Pt(max(1, m.Cols()/matchScale), max(1, m.Rows()/matchScale)), 0, 0, gocv.InterpolationArea)
	return small, nil
}

// bestMatch finds the template in the image: normalised correlation and the
// top-left corner, in the image's pixels.
func bestMatch(img, tmpl gocv.Mat) (float64, image.Point) {
	if tmpl.Cols() > img.Cols() || tmpl.Rows() > img.Rows() || tmpl.Empty() || img.Empty() {
		return -1, image.Point{}
	}
	res := gocv.NewMat()
	defer res.Close()
	mask := gocv.NewMat()
	defer mask.Close()
	gocv.MatchTemplate(img, tmpl, &res, gocv.TmCcoeffNormed, mask)
	_, maxV, _, maxLoc := gocv.MinMaxLoc(res)
	return float64(maxV), maxLoc
}

// FieldGroups matches every crop to the fields (a crop only to fields whose
// label is compatible, as sameSource says) and groups overlapping fields.
// cropGroups gives the crops' own groups (duplicates), which are merged too.
func FieldGroups(crops, fields []Labelled, sameSource func(cropLabel, fieldLabel string) bool, progress func(string)) ([]CropSource, map[string]string, error) {
	fs := make([]fieldImage, 0, len(fields))
	defer func() {
		for _, f := range fs {
			f.img.Close()
		}
	}()
	for _, f := range fields {
		m, err := loadSmall(f.Path)
		if err != nil {
			return nil, nil, err
		}
		fs = append(fs, fieldImage{name: f.File, img: m})
	}
	uf := newUnionFind()
	for _, f := range fs {
		uf.find("field:" + f.name)
	}
	// Overlapping fields: any of nine patches (a quarter of the field's
	// side each) of one found in another. Shifted fields share some patches
	// even when their centres differ.
	// Overlaps are searched at a further 2x downscale: whole-field patches
	// hold many cells, so the coarse copy still identifies them.
	coarse := make([]gocv.Mat, len(fs))
	for i, f := range fs {
		coarse[i] = gocv.NewMat()
		gocv.Resize(f.img, &coarse[i], image.Pt(max(1, f.img.Cols()/2), max(1, f.img.Rows()/2)), 0, 0, gocv.InterpolationArea)
		defer coarse[i].Close()
	}
	for i := range fs {
		a := coarse[i]
		w, h := a.Cols(), a.Rows()
		for j := range fs {
			if i == j || fields[i].Label != fields[j].Label {
				continue
			}
			for py := 0; py < 3; py++ {
				for px := 0; px < 3; px++ {
					r := image.Rect(w/16+px*w*5/16, h/16+py*h*5/16, w/16+px*w*5/16+w/4, h/16+py*h*5/16+h/4)
					patch := a.Region(r)
					s, _ := bestMatch(coarse[j], patch)
					patch.Close()
					if s >= MatchThreshold {
						uf.union("field:"+fs[i].name, "field:"+fs[j].name)
						if progress != nil {
							progress(fmt.Sprintf("fields %s and %s overlap (correlation %.3f)", fs[i].name, fs[j].name, s))
						}
						px, py = 3, 3
					}
				}
			}
		}
	}
	out := make([]CropSource, len(crops))
	for ci, c := range crops {
		t, err := loadSmall(c.Path)
		if err != nil {
			return nil, nil, err
		}
		best := CropSource{Crop: c.File, Score: -1}
		for fi, f := range fs {
			if !sameSource(c.Label, fields[fi].Label) {
				continue
			}
			s, at := bestMatch(f.img, t)
			if s > best.Score {
				best.Score, best.Field, best.X, best.Y = s, f.name, at.X*matchScale, at.Y*matchScale
			}
		}
		t.Close()
		if best.Score < MatchThreshold {
			best.Field, best.X, best.Y = "", 0, 0
		} else {
			uf.union("crop:"+c.File, "field:"+best.Field)
		}
		uf.union("crop:"+c.File, "group:"+c.Group)
		out[ci] = best
		if progress != nil {
			progress(fmt.Sprintf("crop %s: field %q at (%d,%d), correlation %.3f", c.File, best.Field, best.X, best.Y, best.Score))
		}
	}
	// Name each family by its smallest member, preferring fields.
	members := map[string][]string{}
	for _, k := range uf.keys() {
		r := uf.find(k)
		members[r] = append(members[r], k)
	}
	name := map[string]string{}
	for r, ms := range members {
		sort.Strings(ms)
		n := ms[0]
		for _, m := range ms {
			if len(m) > 6 && m[:6] == "field:" {
				n = m
				break
			}
		}
		name[r] = n
	}
	fieldGroup := map[string]string{}
	for _, f := range fs {
		fieldGroup[f.name] = name[uf.find("field:"+f.name)]
	}
	for i := range out {
		out[i].FieldGroup = name[uf.find("crop:"+out[i].Crop)]
	}
	return out, fieldGroup, nil
}

type unionFind struct{ parent map[string]string }

func newUnionFind() *unionFind { return &unionFind{parent: map[string]string{}} }

func (u *unionFind) find(x string) string {
	if _, ok := u.parent[x]; !ok {
		u.parent[x] = x
	}
	for u.parent[x] != x {
		u.parent[x] = u.parent[u.parent[x]]
		x = u.parent[x]
	}
	return x
}

func (u *unionFind) union(a, b string) {
	ra, rb := u.find(a), u.find(b)
	if ra != rb {
		if rb < ra {
			ra, rb = rb, ra
		}
		u.parent[rb] = ra
	}
}

func (u *unionFind) keys() []string {
	ks := make([]string, 0, len(u.parent))
	for k := range u.parent {
		ks = append(ks, k)
	}
	slices.Sort(ks)
	return ks
}
