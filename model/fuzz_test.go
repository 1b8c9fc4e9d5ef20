package model

import (
	"bytes"
	"fmt"
	"image"
	"math"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// FuzzParseManifest: any bytes give a manifest that passes Check or an
// error, never a panic.
func FuzzParseManifest(f *testing.F) {
	for _, p := range []string{"testdata/tiny.json", "shipped/detect.json"} {
		if b, err := os.ReadFile(p); err == nil {
			f.Add(b)
		}
	}
	f.Add([]byte(`{}`))
	f.Add([]byte(`{"format":"allscreen-model/1","task":"detection","labels":["a","b"],"operating_point":{"ood":{"kind":"feature-distance","variance":[0],"class_means":[[1],[2]]}}}`))
	f.Add([]byte(`[1,2,3]`))
	f.Fuzz(func(t *testing.T, data []byte) {
		m, err := ParseManifest(data)
		if err != nil {
			if m != nil {
				t.Fatal("manifest and error")
			}
			return
		}
		if err := m.Check(); err != nil {
			t.Fatalf("parsed manifest fails Check: %v", err)
		}
		if m.Task == TaskDetection && m.PositiveIndex() < 0 {
			t.Fatal("detection manifest without positive label")
		}
		if o := m.Operating.OOD; o != nil {
			f := make([]float32, len(o.Variance))
			if d := o.Distance(f); math.IsNaN(d) {
				t.Fatal("OOD distance NaN")
			}
		}
	})
}

// FuzzParseONNX: the pre-OpenCV check never panics, whatever the bytes.
func FuzzParseONNX(f *testing.F) {
	if b, err := os.ReadFile("testdata/tiny.onnx"); err == nil {
		f.Add(b)
		f.Add(b[:len(b)/3])
	}
	f.Add([]byte{0x08, 0x07, 0x3a, 0x02, 0x0a, 0x00})
	f.Add([]byte{0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01})
	m, _ := readManifestFile("testdata/tiny.json")
	f.Fuzz(func(t *testing.T, data []byte) {
		g, err := parseONNX(data)
		if err != nil {
			return
		}
		if m != nil {
			_ = checkONNX(g, m)
		}
	})
}

// FuzzParseLabels: a labels CSV from outside gives items or an error, and
// never a path outside the images folder.
func FuzzParseLabels(f *testing.F) {
	f.Add("file,label,group\nIm001_1.png,blast,Im001_1\n", "label")
	f.Add("file,celltype\n001.png,lymphocyte\n", "celltype")
	f.Add("\ufefffile,label\n../../etc/passwd,x\n", "label")
	f.Add("file,label\na.png,x\na.png,y\n", "label")
	f.Fuzz(func(t *testing.T, csvText, col string) {
		items, err := parseLabels(strings.NewReader(csvText), col, "group")
		if err != nil {
			return
		}
		for _, it := range items {
			if it.File == "" || it.Label == "" || it.Group == "" || strings.HasPrefix(it.File, "../") || it.File == ".." || strings.HasPrefix(it.File, "/") {
				t.Fatalf("bad item %+v", it)
			}
		}
	})
}

func TestParseLabels(t *testing.T) {
	items, err := parseLabels(bytes.NewBufferString("file,label,group\nb/x.png, blast ,g1\ny.png,normal,\n"), "label", "group")
	if err != nil || len(items) != 2 || items[0].Label != "blast" || items[0].Group != "g1" || items[1].Group != "y.png" {
		t.Fatalf("%+v %v", items, err)
	}
	for _, bad := range []string{"", "name,label\nx,y\n", "file,label\n", "file,label\n../x.png,a\n", "file,label\n/abs.png,a\n", "file,label\nx.png,\n", "file,label\nx.png,a\nx.png,b\n"} {
		if _, err := parseLabels(strings.NewReader(bad), "label", "group"); err == nil {
			t.Errorf("accepted %q", bad)
		}
	}
}

func TestScore(t *testing.T) {
	outs := []Outcome{{1, 1, "a"}, {1, 1, "a"}, {1, 0, "b"}, {0, 0, "c"}, {0, 0, "c"}, {0, 1, "d"}, {0, 0, "e"}}
	r := Score([]string{"normal", "blast"}, outs, "blast")
	if r.N != 7 || math.Abs(r.Accuracy-5.0/7) > 1e-12 || r.Confusion[1][0] != 1 || r.Confusion[0][1] != 1 {
		t.Fatalf("%+v", r)
	}
	if math.Abs(*r.Sensitivity-2.0/3) > 1e-12 || math.Abs(*r.Specificity-3.0/4) > 1e-12 {
		t.Fatalf("sens %v spec %v", *r.Sensitivity, *r.Specificity)
	}
	b := r.PerClass["blast"]
	if math.Abs(b.Precision-2.0/3) > 1e-12 || math.Abs(b.F1-2.0/3) > 1e-12 || b.Support != 3 {
		t.Fatalf("%+v", b)
	}
	if r.GroupBootstrapCI == nil || r.Groups != 5 || r.GroupBootstrapCI[0] > r.Accuracy || r.GroupBootstrapCI[1] < r.Accuracy {
		t.Fatalf("bootstrap %+v", r.GroupBootstrapCI)
	}
	// Wilson: known values (k=0, n=10: 0-0.2775; k=5, n=10: 0.2366-0.7634).
	if w := Wilson(0, 10); w[0] != 0 || math.Abs(w[1]-0.2775) > 1e-3 {
		t.Fatal(w)
	}
	if w := Wilson(5, 10); math.Abs(w[0]-0.2366) > 1e-3 || math.Abs(w[1]-0.7634) > 1e-3 {
		t.Fatal(w)
	}
}

func TestAssignFolds(t *testing.T) {
	var rows []IndexRow
	for g := 0; g < 40; g++ {
		for c := 0; c <= g%3; c++ {
			rows = append(rows, IndexRow{Group: string(rune('A' + g)), Class: g % 2})
		}
	}
	f1 := AssignFolds(rows, 5, 1)
	f2 := AssignFolds(rows, 5, 1)
	count := make([][2]int, 5)
	for _, r := range rows {
		if f1[r.Group] != f2[r.Group] {
			t.Fatal("fold assignment not deterministic")
		}
		count[f1[r.Group]][r.Class]++
	}
	for i, c := range count {
		if c[0] < 4 || c[1] < 4 {
			t.Fatalf("fold %d unbalanced: %v", i, c)
		}
	}
}

func TestSplitTrainingKeepsGroups(t *testing.T) {
	var rows []IndexRow
	for g := 0; g < 60; g++ {
		for c := 0; c < 1+g%4; c++ {
			rows = append(rows, IndexRow{Input: fmt.Sprintf("g%d-c%d.png", g, c), Group: fmt.Sprintf("field%d", g), Class: g % 2, Label: []string{"normal", "blast"}[g%2]})
		}
	}
	cv := &Prepared{Dir: "cv", Rows: rows, Source: DataSource{Name: "cv"}}
	extra := &Prepared{Dir: "x", Rows: rows[:20], Source: DataSource{Name: "x"}}
	labels := []string{"normal", "blast"}
	folds := AssignFolds(rows, 5, 3)
	r := &Runner{}
	for f := 0; f < 5; f++ {
		usable := func(p *Prepared, row IndexRow) bool { return p != cv || folds[row.Group] != f }
		train, val := r.splitTraining([]*Prepared{cv, extra}, labels, usable, 0.2, 7)
		if err := checkDisjoint([]*Prepared{cv, extra}, train, val, folds, f); err != nil {
			t.Fatal(err)
		}
		n := 0
		for _, p := range append(train, val...) {
			if p.Dir == "cv" {
				n += len(p.Inputs)
			}
		}
		test := 0
		for _, row := range rows {
			if folds[row.Group] == f {
				test++
			}
		}
		if n+test != len(rows) || len(val) != 2 {
			t.Fatalf("fold %d: %d training+validation and %d test inputs of %d; %d validation parts", f, n, test, len(rows), len(val))
		}
	}
	// The guard itself must catch a leak.
	train := []trainPart{{Dir: "cv", Inputs: []string{rows[0].Input}}}
	if err := checkDisjoint([]*Prepared{cv}, train, nil, map[string]int{rows[0].Group: 0}, 0); err == nil {
		t.Fatal("a test input in training was not caught")
	}
}

// A set whose groups are the CV set's (cells of the same ALL-IDB1 fields)
// must leave a fold's test groups out and be validated on the same groups.
func TestSplitTrainingCVGroups(t *testing.T) {
	var rows, other []IndexRow
	for g := 0; g < 60; g++ {
		group := fmt.Sprintf("field%d", g)
		rows = append(rows, IndexRow{Input: fmt.Sprintf("g%d.png", g), Group: group, Class: g % 2, Label: []string{"normal", "blast"}[g%2]})
		if g%3 != 0 { // other cells of some fields, and of fields the CV set lacks
			other = append(other, IndexRow{Input: fmt.Sprintf("o%d.png", g), Group: group, Class: 0, Label: "other-wbc"})
		}
		other = append(other, IndexRow{Input: fmt.Sprintf("n%d.png", g), Group: fmt.Sprintf("new%d", g), Class: 0, Label: "other-wbc"})
	}
	cv := &Prepared{Dir: "cv", Rows: rows, Source: DataSource{Name: "cv"}}
	labels := []string{"normal", "blast"}
	folds := AssignFolds(rows, 5, 3)
	r := &Runner{}
	for _, bound := range []bool{true, false} {
		extra := &Prepared{Dir: "x", Rows: other, Source: DataSource{Name: "x", CVGroups: bound}}
		sets := []*Prepared{cv, extra}
		var leaks int
		for f := 0; f < 5; f++ {
			usable := func(p *Prepared, row IndexRow) bool { return !(foldBound(p, cv) && isTest(folds, row.Group, f)) }
			train, val := r.splitTraining(sets, labels, usable, 0.2, 7)
			err := checkDisjoint(sets, train, val, folds, f)
			if bound && err != nil {
				t.Fatalf("fold %d: %v", f, err)
			}
			heldCV := map[string]bool{}
			for _, p := range val {
				if p.Dir == "cv" {
					for _, in := range p.Inputs {
						heldCV["field"+strings.TrimSuffix(strings.TrimPrefix(in, "g"), ".png")] = true
					}
				}
			}
			for _, p := range append(train, val...) {
				if p.Dir != "x" {
					continue
				}
				isVal := strings.HasSuffix(p.Name, "-val")
				for _, in := range p.Inputs {
					if !strings.HasPrefix(in, "o") {
						continue
					}
					g := "field" + strings.TrimSuffix(strings.TrimPrefix(in, "o"), ".png")
					if folds[g] == f || heldCV[g] != isVal {
						leaks++
					}
				}
			}
		}
		if bound && leaks != 0 {
			t.Fatalf("%d inputs of a bound set trained on a test field or crossed the validation split", leaks)
		}
		if !bound && leaks == 0 {
			t.Fatal("an unbound set never crossed the split: the test cannot tell the two apart")
		}
	}
}

func TestMarkedCell(t *testing.T) {
	pts, err := ParseCentroids([]byte("100 100\n\n 300.6\t40 \n"))
	if err != nil || len(pts) != 2 || pts[1] != image.Pt(301, 40) {
		t.Fatalf("%v %v", pts, err)
	}
	for _, c := range []struct {
		box  image.Rectangle
		want bool
	}{
		{image.Rect(60, 60, 140, 140), true},    // centred
		{image.Rect(75, 75, 155, 155), true},    // off centre, inside the ellipse
		{image.Rect(95, 95, 175, 175), false},   // the mark at the box's corner
		{image.Rect(200, 200, 260, 260), false}, // elsewhere
		{image.Rect(100, 100, 100, 100), false}, // empty box
	} {
		if got := MarkedCell(c.box, pts); got != c.want {
			t.Errorf("MarkedCell(%v) = %v, want %v", c.box, got, c.want)
		}
	}
	for _, bad := range []string{"1 2 3", "x 4", "-1 5", "1e9 2", "NaN 1"} {
		if _, err := ParseCentroids([]byte(bad)); err == nil {
			t.Errorf("ParseCentroids(%q) accepted", bad)
		}
	}
}

func FuzzParseCentroids(f *testing.F) {
	f.Add([]byte("799 769\n1414 33\n"))
	f.Add([]byte("1 2\r\n3 4"))
	f.Add([]byte("\x00 \xff"))
	f.Fuzz(func(t *testing.T, raw []byte) {
		pts, err := ParseCentroids(raw)
		if err != nil {
			return
		}
		for _, p := range pts {
			if p.X < 0 || p.Y < 0 || p.X > 1e6 || p.Y > 1e6 {
				t.Fatalf("accepted %v", p)
			}
		}
		MarkedCell(image.Rect(0, 0, 10, 10), pts)
	})
}

// A marked cell's label lives only in Go (index.csv keeps its field's): the
// trainer must be told it, or the cell silently drops out of training.
func TestPartRelabelsMarkedCells(t *testing.T) {
	p := &Prepared{Dir: "x", Source: DataSource{Name: "x", Fields: true, Centroids: "c", CentroidLabel: "other-wbc"},
		Rows: []IndexRow{{Input: "a.png", Label: "other-wbc", Class: 0}, {Input: "b.png", Label: "blast-slide", Class: -1}}}
	tp := (&Runner{}).part(p, []string{"normal", "blast"}, nil)
	if len(tp.Inputs) != 1 || tp.Relabel["a.png"] != "other-wbc" || tp.Map["other-wbc"] != "normal" {
		t.Fatalf("%+v", tp)
	}
}

// Every committed experiment reads; a marked-cell source without fields or
// a label is refused when the experiment is read, before any preparation.
func TestReadExperiments(t *testing.T) {
	paths, _ := filepath.Glob("experiments/*.json")
	more, _ := filepath.Glob("experiments/seeds/*.json")
	for _, p := range append(paths, more...) {
		if _, err := ReadExperiment(p); err != nil {
			t.Error(err)
		}
	}
	raw, err := os.ReadFile("experiments/allidb2-compact-multisite-idb1.json")
	if err != nil {
		t.Fatal(err)
	}
	bad := filepath.Join(t.TempDir(), "bad.json")
	if err := os.WriteFile(bad, bytes.Replace(raw, []byte(`"centroid_label": "other-wbc"`), []byte(`"centroid_label": ""`), 1), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := ReadExperiment(bad); err == nil || !strings.Contains(err.Error(), "centroids need") {
		t.Fatalf("a centroids source without a label: %v", err)
	}
	// drop_edge_cells needs whole fields.
	if err := os.WriteFile(bad, bytes.Replace(raw, []byte(`"per_epoch": 100`), []byte(`"per_epoch": 100, "drop_edge_cells": true`), 1), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := ReadExperiment(bad); err == nil || !strings.Contains(err.Error(), "drop_edge_cells needs") {
		t.Fatalf("drop_edge_cells on crops: %v", err)
	}
	// An augmentation train.py does not know is refused here, not after the
	// inputs are prepared.
	if err := os.WriteFile(bad, bytes.Replace(raw, []byte(`"augment": "light"`), []byte(`"augment": "lite"`), 1), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := ReadExperiment(bad); err == nil || !strings.Contains(err.Error(), `augment "lite"`) {
		t.Fatalf("an unknown augmentation: %v", err)
	}
}
