package main

import (
	"fmt"
	"io"
	"os"
	"path/filepath"

	"allscreen/vision"
)

// labelledGroup is what can be checked on fields that each hold at least
// one white cell but have no boxes (bll-stages: folder = label): how many
// the gate refuses and why, and how many FindCells finds any cell in.
type labelledGroup struct {
	Label  string         `json:"label"`
	Fields int            `json:"fields"`
	Failed int            `json:"failed"` // could not be read or analysed
	Refuse map[string]int `json:"refused"`
	// AnyFound: fields with at least one white cell found, the gate's
	// verdict set aside; AnyFoundAccepted: the same among the fields the
	// gate lets through.
	AnyFound         vision.Rate `json:"any_found"`
	AnyFoundAccepted vision.Rate `json:"any_found_accepted"`
	MedianCells      int         `json:"median_cells"`
	// WorkRadius: the red-cell radius on FindCells' working copy, median.
	WorkRadius float64 `json:"work_radius"`
	// Background, Clipped: the gate's exposure measures, medians.
	Background float64 `json:"background"`
	Clipped    float64 `json:"clipped"`
}

// labelledSetJSON is one such set, by label and over all.
type labelledSetJSON struct {
	Dir    string          `json:"dir"`
	Groups []labelledGroup `json:"groups"`
}

// readFieldLabels reads DIR/labels.csv (file,label; file relative to DIR,
// sub-folders allowed).
func readFieldLabels(dir string) (files, labels []string, err error) {
	set, err := vision.ReadNestedLabels(filepath.Join(dir, "labels.csv"), "label", dir, "")
	if err != nil {
		return nil, nil, err
	}
	for _, li := range set {
		files, labels = append(files, li.Image), append(labels, li.Label)
	}
	return files, labels, nil
}

// labelledTally sums one label's fields.
type labelledTally struct {
	fields, failed, any, accepted, anyAccepted int
	refuse                                     map[string]int
	cells, radius, background, clipped         []float64
}

func (t *labelledTally) add(q vision.Quality, cells int) {
	t.fields++
	if t.refuse == nil {
		t.refuse = map[string]int{}
	}
	if !q.OK() {
		t.refuse[q.Issue.String()]++
	} else {
		t.accepted++
		if cells > 0 {
			t.anyAccepted++
		}
	}
	if cells > 0 {
		t.any++
	}
	t.cells = append(t.cells, float64(cells))
	t.background = append(t.background, q.Background)
	t.clipped = append(t.clipped, q.Clipped)
	if q.WorkRadius > 0 {
		t.radius = append(t.radius, q.WorkRadius)
	}
}

// median is vision.Percentile's median, 0 for no values (JSON has no NaN).
func median(v []float64) float64 {
	if len(v) == 0 {
		return 0
	}
	return vision.Percentile(v, 0.5)
}

func (t *labelledTally) group(label string) labelledGroup {
	return labelledGroup{Label: label, Fields: t.fields, Failed: t.failed, Refuse: t.refuse,
		AnyFound: vision.Wilson(t.any, t.fields), AnyFoundAccepted: vision.Wilson(t.anyAccepted, t.accepted),
		MedianCells: int(median(t.cells)), WorkRadius: median(t.radius),
		Background: median(t.background), Clipped: median(t.clipped)}
}

// evalLabelledSets runs the gate and FindCells on every field of each
// folder (labels.csv: file,label), every field taken of white cells.
func evalLabelledSets(dirs []string, quiet bool, opt vision.FindOptions) ([]labelledSetJSON, error) {
	var out []labelledSetJSON
	for _, dir := range dirs {
		files, labels, err := readFieldLabels(dir)
		if err != nil {
			return nil, err
		}
		tallies := map[string]*labelledTally{}
		all := &labelledTally{}
		var order []string
		for i, file := range files {
			if !quiet {
				fmt.Fprintf(os.Stderr, "\r%s %d/%d   ", boxSetName(dir), i+1, len(files))
			}
			t := tallies[labels[i]]
			if t == nil {
				t = &labelledTally{}
				tallies[labels[i]] = t
				order = append(order, labels[i])
			}
			q, n, err := gateAndFind(file, opt)
			if err != nil {
				fmt.Fprintf(os.Stderr, "\nallscreen find-eval: %s: %v\n", file, err)
				t.failed++
				all.failed++
				continue
			}
			t.add(q, n)
			all.add(q, n)
		}
		if !quiet {
			fmt.Fprintln(os.Stderr)
		}
		set := labelledSetJSON{Dir: dir}
		for _, l := range order {
			set.Groups = append(set.Groups, tallies[l].group(l))
		}
		set.Groups = append(set.Groups, all.group("all"))
		out = append(out, set)
	}
	return out, nil
}

// gateAndFind loads a field, judges it and finds its cells whatever the
// verdict.
func gateAndFind(file string, opt vision.FindOptions) (vision.Quality, int, error) {
	field, err := vision.LoadImage(file)
	if err != nil {
		return vision.Quality{}, 0, err
	}
	defer field.Close()
	q := vision.CheckQuality(field)
	cells, err := vision.FindCells(field, opt)
	if err != nil {
		return q, 0, err
	}
	return q, len(cells), nil
}

// printLabelledSets prints one line per label.
func printLabelledSets(w io.Writer, sets []labelledSetJSON) {
	for _, s := range sets {
		for _, g := range s.Groups {
			fmt.Fprintf(w, "%s %s (%d fields): any white cell found %v; gate refuses %s; accepted with a cell found %v; median cells %d, red-cell radius %.1f px, background %.0f, clipped %.2f\n",
				boxSetName(s.Dir), g.Label, g.Fields, g.AnyFound, countsList(g.Refuse, "none"), g.AnyFoundAccepted, g.MedianCells, g.WorkRadius, g.Background, g.Clipped)
		}
	}
}
