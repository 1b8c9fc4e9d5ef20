package model

import (
	"fmt"
	"math"
	"os"
	"path/filepath"
	"slices"
	"sort"

	"allscreen/vision"

	"gocv.io/x/gocv"
)

// A shortcut is something other than the cell that predicts a label: image
// size (magnification, camera), file size (compression), the slide's
// background colour (stain batch). ShortcutBaseline measures how well one
// such feature alone predicts the labels, under the same grouped folds as
// the CNN, so a reader can tell what a classifier's accuracy may rest on.

// Shortcut features.
const (
	FeatureSize       = "size"         // width x height, as a category
	FeatureAspect     = "aspect"       // width / height
	FeatureFileBytes  = "bytes"        // file size
	FeatureBorderB    = "border-bstar" // mean CIE b* (yellow-blue) of the image's outer ring: the slide background
	FeatureBorderMean = "border-rgb"   // mean R, G, B of the outer ring
	// FeatureCellMean is the mean R, G, B of the segmented cell in a
	// prepared input (alpha = cell): stain colour with the background gone.
	FeatureCellMean = "cell-rgb"
	// FeatureRimMean is the mean R, G, B of the outer 2 pixels of the
	// segmented cell in a prepared input: where a source's own background
	// (C-NMC's black) would survive the masking.
	FeatureRimMean = "rim-rgb"
)

// ShortcutFeatures lists the features ShortcutBaseline knows.
var ShortcutFeatures = []string{FeatureSize, FeatureAspect, FeatureFileBytes, FeatureBorderB, FeatureBorderMean, FeatureCellMean, FeatureRimMean}

// shortcutValue is one image's feature: a category or a vector.
type shortcutValue struct {
	cat string
	vec []float64
}

func measureShortcut(it Labelled, feature string) (shortcutValue, error) {
	switch feature {
	case FeatureFileBytes:
		st, err := os.Stat(it.Path)
		if err != nil {
			return shortcutValue{}, err
		}
		return shortcutValue{vec: []float64{float64(st.Size())}}, nil
	case FeatureCellMean:
		return cellMean(it.Path, 0)
	case FeatureRimMean:
		return cellMean(it.Path, 2)
	case FeatureSize, FeatureAspect, FeatureBorderB, FeatureBorderMean:
	default:
		return shortcutValue{}, fmt.Errorf("unknown shortcut feature %q (want one of %q)", feature, ShortcutFeatures)
	}
	img, err := vision.LoadImage(it.Path)
	if err != nil {
		return shortcutValue{}, err
	}
	defer img.Close()
	w, h := img.Cols(), img.Rows()
	switch feature {
	case FeatureSize:
		return shortcutValue{cat: fmt.Sprintf("%dx%d", w, h)}, nil
	case FeatureAspect:
		return shortcutValue{vec: []float64{float64(w) / float64(h)}}, nil
	}
	src := img
	if feature == FeatureBorderB {
		lab := gocv.NewMat()
		defer lab.Close()
		gocv.CvtColor(img, &lab, gocv.ColorBGRToLab)
		src = lab
	}
	pix := src.ToBytes()
	ring := max(1, min(w, h)/10)
	var sum [3]float64
	n := 0
	for y := 0; y < h; y++ {
		for x := 0; x < w; x++ {
			if x >= ring && x < w-ring && y >= ring && y < h-ring {
				continue
			}
			if x >= w*86/100 && y >= h*87/100 {
				continue // where bll-stages prints its scale bar: measure the slide, not the bar
			}
			for c := 0; c < 3; c++ {
				sum[c] += float64(pix[3*(y*w+x)+c])
			}
			n++
		}
	}
	if feature == FeatureBorderB {
		return shortcutValue{vec: []float64{sum[2]/float64(n) - 128}}, nil // OpenCV's 8-bit b* is offset by 128
	}
	return shortcutValue{vec: []float64{sum[2] / float64(n), sum[1] / float64(n), sum[0] / float64(n)}}, nil
}

// ShortcutResult is one feature's baseline.
type ShortcutResult struct {
	Report
	Feature    string `json:"feature"`
	Classifier string `json:"classifier"`
	MeasuredOn string `json:"measured_on"`
}

// ShortcutBaseline predicts each image's label from one feature alone with
// grouped k-fold cross-validation (the folds of AssignFolds): a category
// takes its training folds' majority label; a single number a threshold
// (two labels) chosen for training accuracy; a vector its nearest training
// class mean.
func ShortcutBaseline(items []Labelled, labels []string, feature string, folds int, seed uint64) (*ShortcutResult, error) {
	vals := make([]shortcutValue, len(items))
	rows := make([]IndexRow, len(items))
	for i, it := range items {
		v, err := measureShortcut(it, feature)
		if err != nil {
			return nil, err
		}
		vals[i] = v
		rows[i] = IndexRow{Source: it.File, Label: it.Label, Group: it.Group, Class: slices.Index(labels, it.Label)}
	}
	assign := AssignFolds(rows, folds, seed)
	var outs []Outcome
	kind := ""
	for f := 0; f < folds; f++ {
		var tr, te []int
		for i, r := range rows {
			if r.Class < 0 {
				continue
			}
			if assign[r.Group] == f {
				te = append(te, i)
			} else {
				tr = append(tr, i)
			}
		}
		var predict func(shortcutValue) int
		predict, kind = fitShortcut(vals, rows, tr, len(labels))
		for _, i := range te {
			outs = append(outs, Outcome{True: rows[i].Class, Pred: predict(vals[i]), Group: rows[i].Group})
		}
	}
	return &ShortcutResult{Report: Score(labels, outs, ""), Feature: feature, Classifier: kind}, nil
}

func fitShortcut(vals []shortcutValue, rows []IndexRow, train []int, k int) (func(shortcutValue) int, string) {
	counts := make([]int, k)
	for _, i := range train {
		counts[rows[i].Class]++
	}
	majority := 0
	for c := range counts {
		if counts[c] > counts[majority] {
			majority = c
		}
	}
	if len(train) == 0 {
		return func(shortcutValue) int { return majority }, "majority"
	}
	if vals[train[0]].vec == nil {
		byCat := map[string][]int{}
		for _, i := range train {
			c := byCat[vals[i].cat]
			if c == nil {
				c = make([]int, k)
				byCat[vals[i].cat] = c
			}
			c[rows[i].Class]++
		}
		return func(v shortcutValue) int {
			c, ok := byCat[v.cat]
			if !ok {
				return majority
			}
			best := 0
			for j := range c {
				if c[j] > c[best] {
					best = j
				}
			}
			return best
		}, "the majority label of each value in the training folds"
	}
	if len(vals[train[0]].vec) == 1 && k == 2 {
		// best single threshold, either direction
		idx := slices.Clone(train)
		sort.Slice(idx, func(a, b int) bool { return vals[idx[a]].vec[0] < vals[idx[b]].vec[0] })
		bestAcc, bestT, above := -1, math.Inf(-1), 1
		for cut := 0; cut <= len(idx); cut++ {
			t := math.Inf(-1)
			if cut > 0 {
				t = vals[idx[cut-1]].vec[0]
			}
			for _, dir := range []int{0, 1} {
				acc := 0
				for j, i := range idx {
					pred := dir
					if j < cut {
						pred = 1 - dir
					}
					if pred == rows[i].Class {
						acc++
					}
				}
				if acc > bestAcc {
					bestAcc, bestT, above = acc, t, dir
				}
			}
		}
		return func(v shortcutValue) int {
			if v.vec[0] > bestT {
				return above
			}
			return 1 - above
		}, "one threshold chosen on the training folds"
	}
	dim := len(vals[train[0]].vec)
	means := make([][]float64, k)
	n := make([]int, k)
	for c := range means {
		means[c] = make([]float64, dim)
	}
	for _, i := range train {
		c := rows[i].Class
		n[c]++
		for d, x := range vals[i].vec {
			means[c][d] += x
		}
	}
	for c := range means {
		for d := range means[c] {
			means[c][d] /= math.Max(1, float64(n[c]))
		}
	}
	return func(v shortcutValue) int {
		best, bd := majority, math.Inf(1)
		for c := range means {
			if n[c] == 0 {
				continue
			}
			s := 0.0
			for d, x := range v.vec {
				s += (x - means[c][d]) * (x - means[c][d])
			}
			if s < bd {
				best, bd = c, s
			}
		}
		return best
	}, "the nearest class mean of the training folds"
}

// cellMean is the mean colour of a prepared input's cell (its alpha), or,
// with rim > 0, of its pixels within rim pixels of the background.
func cellMean(path string, rim int) (shortcutValue, error) {
	m := gocv.IMRead(path, gocv.IMReadUnchanged)
	defer m.Close()
	if m.Empty() || m.Type() != gocv.MatTypeCV8UC4 {
		return shortcutValue{}, fmt.Errorf("%s: not a prepared input with a cell mask (8-bit BGRA PNG)", path)
	}
	pix := m.ToBytes()
	w, h := m.Cols(), m.Rows()
	inCell := func(x, y int) bool { return x >= 0 && y >= 0 && x < w && y < h && pix[4*(y*w+x)+3] >= 128 }
	onRim := func(x, y int) bool {
		for dy := -rim; dy <= rim; dy++ {
			for dx := -rim; dx <= rim; dx++ {
				if !inCell(x+dx, y+dy) {
					return true
				}
			}
		}
		return false
	}
	var sum [3]float64
	n := 0
	for i := 0; i+3 < len(pix); i += 4 {
		if pix[i+3] < 128 || (rim > 0 && !onRim((i/4)%w, (i/4)/w)) {
			continue
		}
		for c := 0; c < 3; c++ {
			sum[c] += float64(pix[i+c])
		}
		n++
	}
	if n == 0 {
		return shortcutValue{vec: []float64{0, 0, 0}}, nil
	}
	return shortcutValue{vec: []float64{sum[2] / float64(n), sum[1] / float64(n), sum[0] / float64(n)}}, nil
}

// ReadPreparedLabelled lists a prepared folder's inputs (index.csv) as
// labelled images, each in its source image's group.
func ReadPreparedLabelled(dir string) ([]Labelled, error) {
	rows, err := readIndex(dir)
	if err != nil {
		return nil, err
	}
	items := make([]Labelled, len(rows))
	for i, r := range rows {
		items[i] = Labelled{Path: filepath.Join(dir, r.Input), File: r.Source, Label: r.Label, Group: r.Group}
	}
	return items, nil
}
