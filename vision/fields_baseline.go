package vision

import (
	"fmt"
	"image"
	"slices"

	"gocv.io/x/gocv"
)

// BaselineResult scores the plain baseline on a masked field, for
// comparison with FindCells under the same evaluation: k=3 k-means on the
// field downscaled 4x (after the paper's blur), the lowest-green cluster,
// an opening, a dilation to merge lobes, and components above a fifth of
// the median component.
type BaselineResult struct {
	Field           string  `json:"field"`
	Detections      int     `json:"detections"`
	TruePositives   int     `json:"true_positives"` // at least half inside the white-cell mask
	MaskComponents  int     `json:"mask_components"`
	ComponentsFound int     `json:"components_found"`
	WhiteCells      int     `json:"white_cells"` // after splitting touching cells
	Found           int     `json:"found"`       // one to one, as for FindCells
	Dice            float64 `json:"dice"`
	// DiceCounts are the pixels in both masks, in ours, in the truth.
	DiceCounts [3]int `json:"dice_counts"`
}

// EvaluateBaseline runs the baseline on a field with a white-cell mask.
func EvaluateBaseline(t FieldTruth, seed uint64) (BaselineResult, error) {
	res := BaselineResult{Field: t.Name}
	if t.Mask == "" {
		return res, fmt.Errorf("%s has no white-cell mask", t.Name)
	}
	field, err := LoadImage(t.Image)
	if err != nil {
		return res, err
	}
	defer field.Close()
	gt, err := readMask(t.Mask)
	if err != nil {
		return res, err
	}
	W, H := field.Cols(), field.Rows()
	small := gocv.NewMat()
	defer small.Close()
	gocv.Resize(field, &small, image.Pt(W/4, H/4), 0, 0, gocv.InterpolationArea)
	blurred := Blur(small)
	defer blurred.Close()
	cl, err := Cluster(blurred, KMeansOptions{K: 3, Space: SpaceBGR, Seed: seed})
	if err != nil {
		return res, err
	}
	nuc := &Mask{W: cl.W, H: cl.H, Pix: cl.Mask(NucleusCluster(cl))}
	side := max(cl.W, cl.H)
	if nuc, err = nuc.morph(gocv.MorphOpen, max(3, side/200)); err != nil {
		return res, err
	}
	if nuc, err = nuc.morph(gocv.MorphDilate, max(3, side/100)); err != nil {
		return res, err
	}
	labels, regions := labelRegions(nuc.Pix, cl.W, cl.H)
	areas := make([]int, len(regions))
	for i, r := range regions {
		areas[i] = r.area
	}
	slices.Sort(areas)
	keep := make([]bool, len(regions)+1)
	if len(areas) > 0 {
		for _, r := range regions {
			keep[r.label] = r.area >= areas[len(areas)/2]/5
		}
	}
	sx, sy := float64(W)/float64(cl.W), float64(H)/float64(cl.H)
	at := func(x, y int) (int, int) {
		return min(W-1, int((float64(x)+0.5)*sx)), min(H-1, int((float64(y)+0.5)*sy))
	}

	compLabels, comps := labelRegions(gt.Pix, W, H)
	res.MaskComponents = len(comps)
	inside, total := map[int32]int{}, map[int32]int{}
	covered := map[int32]map[int32]bool{}
	for y := range cl.H {
		for x := range cl.W {
			l := labels[y*cl.W+x]
			if !keep[l] {
				continue
			}
			total[l]++
			fx, fy := at(x, y)
			if c := compLabels[fy*W+fx]; c != 0 {
				inside[l]++
				if covered[l] == nil {
					covered[l] = map[int32]bool{}
				}
				covered[l][c] = true
			}
		}
	}
	hit := map[int32]bool{}
	for l := range total {
		res.Detections++
		if 2*inside[l] >= total[l] {
			res.TruePositives++
			for c := range covered[l] {
				hit[c] = true
			}
		}
	}
	res.ComponentsFound = len(hit)

	// Cell level, one to one, as EvaluateField does.
	rbc := 0.0
	if maps, err := measureField(field, DefaultFindOptions.WorkSide); err == nil {
		rbc = maps.radius * maps.scale
	}
	centres, _ := truthCells(gt, rbc)
	res.WhiteCells = len(centres)
	claimed := map[int32]bool{}
	for _, c := range centres {
		x, y := min(cl.W-1, int(float64(c.X)/sx)), min(cl.H-1, int(float64(c.Y)/sy))
		if l := labels[y*cl.W+x]; keep[l] && !claimed[l] {
			claimed[l] = true
			res.Found++
		}
	}

	// Dice at full resolution (nearest-neighbour upscaling, as a mask of
	// components would be).
	inter, a, b := 0, 0, 0
	for y := range H {
		for x := range W {
			l := labels[min(cl.H-1, int(float64(y)/sy))*cl.W+min(cl.W-1, int(float64(x)/sx))]
			p, g := keep[l], gt.Pix[y*W+x] != 0
			if p {
				a++
			}
			if g {
				b++
			}
			if p && g {
				inter++
			}
		}
	}
	if a+b > 0 {
		res.Dice = 2 * float64(inter) / float64(a+b)
	}
	res.DiceCounts = [3]int{inter, a, b}
	return res, nil
}
