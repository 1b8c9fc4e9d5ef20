package main

import (
	"encoding/json"
	"fmt"
	"image"
	"image/color"
	"image/png"
	"maps"
	"math"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"allscreen/vision"
)

func writeFile(t *testing.T, path, text string) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, []byte(text), 0o644); err != nil {
		t.Fatal(err)
	}
}

func TestReadSanityLabels(t *testing.T) {
	dir := t.TempDir()
	src := sanitySource{Name: "pbc-types", LabelCol: "celltype"}
	writeFile(t, filepath.Join(dir, "labels.csv"), "file,celltype\nbasophil/BA_2.jpg,basophil\nBA_1.jpg,basophil\n")
	set, err := readSanityLabels(dir, src)
	if err != nil {
		t.Fatal(err)
	}
	if len(set) != 2 || set[0].Name != "BA_1.jpg" || set[1].Image != filepath.Join(dir, "basophil", "BA_2.jpg") || set[1].Mask != "" {
		t.Errorf("read %+v", set)
	}
	for _, bad := range []string{
		"file,celltype\n../x.jpg,a\n",        // leaves the folder
		"file,celltype\n/etc/x.jpg,a\n",      // absolute
		"file,label\na.jpg,a\n",              // no celltype column
		"file,celltype\na.jpg,a\na.jpg,b\n",  // twice
		"file,celltype\n",                    // no rows
		"file,celltype\na.jpg,\n",            // empty label
		"file,celltype\n\"a.jpg,basophil\n",  // bad CSV
		"file,celltype\nsub/../../x.jpg,a\n", // leaves the folder after cleaning
	} {
		writeFile(t, filepath.Join(dir, "labels.csv"), bad)
		if _, err := readSanityLabels(dir, src); err == nil {
			t.Errorf("accepted %q", bad)
		}
	}
}

func sanityImages(spec map[string][]string) []*sanityImage {
	var out []*sanityImage
	for class, verdicts := range spec {
		for i, v := range verdicts {
			name := fmt.Sprintf("%s_%03d.png", class, i)
			out = append(out, &sanityImage{Source: "cnmc", File: name, Label: class, hash: nameHash(name),
				Sanity: vision.CellSanity{Verdict: v}})
		}
	}
	return out
}

func TestSheetSamples(t *testing.T) {
	many := make([]string, 40)
	for i := range many {
		many[i] = vision.VerdictSane
	}
	imgs := sanityImages(map[string][]string{
		"a": many,
		"b": {vision.VerdictSane, vision.ReasonTooSmall, vision.ReasonTooSmall},
		"c": {vision.ReasonTooSmall, vision.ReasonOffCentre, vision.VerdictSane},
	})
	// The classes take turns; once b and c run out, a fills the rest.
	for n, want := range map[int]map[string]int{7: {"a": 3, "b": 2, "c": 2}, 12: {"a": 6, "b": 3, "c": 3}} {
		classes := map[string]int{}
		for _, im := range spreadSample(imgs, n) {
			classes[im.Label]++
		}
		if !maps.Equal(classes, want) {
			t.Errorf("spread sample of %d over a (40), b (3), c (3): %v, want %v", n, classes, want)
		}
	}
	s := spreadSample(imgs, 7)
	if !slices.IsSortedFunc(s, func(x, y *sanityImage) int { return strings.Compare(x.Label, y.Label) }) {
		t.Error("sample not grouped by class")
	}
	again := spreadSample(slices.Clone(imgs), 7)
	for i := range s {
		if s[i] != again[i] {
			t.Fatal("the sample changes between runs")
		}
	}
	f := failureSample(imgs, 3)
	// too small (3, in b and c) comes first; off centre gets a turn.
	if len(f) != 3 || f[0].Sanity.Verdict != vision.ReasonTooSmall || f[2].Sanity.Verdict != vision.ReasonOffCentre ||
		f[0].Label == f[1].Label {
		var got []string
		for _, im := range f {
			got = append(got, im.Label+":"+im.Sanity.Verdict)
		}
		t.Errorf("failures %v: want too small from b and c, then off centre", got)
	}
}

func TestSheetRefusesRestrictedSets(t *testing.T) {
	for _, src := range append(slices.Clone(sanitySources), truthOnlySets...) {
		_, err := writeSanitySheet(filepath.Join(t.TempDir(), "x.png"), src, nil, 4)
		if src.Public != (err == nil) {
			t.Errorf("%s (public %v): sheet error %v", src.Name, src.Public, err)
		}
	}
	for _, name := range []string{"allidb2", "allidb1", "bll-stages", "olympus"} {
		if s := sourceByName(name); s.Public {
			t.Errorf("%s may be drawn", name)
		}
	}
}

func sourceByName(name string) sanitySource {
	for _, s := range sanitySources {
		if s.Name == name {
			return s
		}
	}
	return sanitySource{Name: name}
}

// cellPNG writes a w x h crop: a nucleus (radius nr) inside a cell (radius
// cr) at the centre, on a pale background or, cut out, on black; and, when
// mask is set, its ground-truth mask (0, 128, 255).
func cellPNG(t *testing.T, path string, w, h int, cr, nr float64, cutOut bool, mask string) {
	t.Helper()
	img := image.NewNRGBA(image.Rect(0, 0, w, h))
	gt := image.NewGray(img.Rect)
	for y := range h {
		for x := range w {
			d := math.Hypot(float64(x)-float64(w)/2, float64(y)-float64(h)/2)
			c, g := color.NRGBA{R: 232, G: 214, B: 220, A: 255}, uint8(0)
			if cutOut {
				c = color.NRGBA{A: 255}
			}
			if d <= cr {
				c, g = color.NRGBA{R: 190, G: 175, B: 215, A: 255}, 128
			}
			if d <= nr {
				c, g = color.NRGBA{R: 95, G: 40, B: 140, A: 255}, 255
			}
			c.R += uint8((x*7 + y*3) % 5) // a little texture
			img.SetNRGBA(x, y, c)
			gt.SetGray(x, y, color.Gray{Y: g})
		}
	}
	for p, im := range map[string]image.Image{path: img, mask: gt} {
		if p == "" {
			continue
		}
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		f, err := os.Create(p)
		if err != nil {
			t.Fatal(err)
		}
		if err := png.Encode(f, im); err != nil {
			t.Fatal(err)
		}
		f.Close()
	}
}

// A whole run on a made-up data folder: labels read (sub-folders too),
// every image judged, the report and both sheets written, nothing drawn of
// ALL-IDB2.
func TestCellSanityCommand(t *testing.T) {
	data := t.TempDir()
	writeFile(t, filepath.Join(data, "allidb2", "labels.csv"), "file,label,group\nA_1.png,blast,A_1\nB_0.png,normal,B_0\n")
	cellPNG(t, filepath.Join(data, "allidb2", "images", "A_1.png"), 120, 120, 34, 26, false, filepath.Join(data, "allidb2", "masks", "A_1.png"))
	cellPNG(t, filepath.Join(data, "allidb2", "images", "B_0.png"), 120, 120, 30, 18, false, filepath.Join(data, "allidb2", "masks", "B_0.png"))
	writeFile(t, filepath.Join(data, "cnmc", "labels.csv"), "file,label,subject\nC_all.png,blast,1\nD_hem.png,normal,H1\n")
	cellPNG(t, filepath.Join(data, "cnmc", "C_all.png"), 100, 100, 44, 36, true, "")
	cellPNG(t, filepath.Join(data, "cnmc", "D_hem.png"), 100, 100, 44, 30, true, "")
	writeFile(t, filepath.Join(data, "pbc-types", "labels.csv"), "file,celltype\nmonocyte/MO_1.png,monocyte\nplatelet/PL_1.png,platelet\n")
	cellPNG(t, filepath.Join(data, "pbc-types", "monocyte", "MO_1.png"), 160, 160, 45, 30, false, "")
	cellPNG(t, filepath.Join(data, "pbc-types", "platelet", "PL_1.png"), 160, 160, 9, 6, false, "")
	writeFile(t, filepath.Join(data, "wbcseg", "labels.csv"), "file,celltype\nW.png,lymphocyte\n")
	cellPNG(t, filepath.Join(data, "wbcseg", "images", "W.png"), 120, 120, 36, 26, false, filepath.Join(data, "wbcseg", "masks", "W.png"))

	out := t.TempDir()
	doc, sheets, js := filepath.Join(out, "docs", "single-cells.md"), filepath.Join(out, "docs", "figures"), filepath.Join(out, "o.json")
	if err := runCellSanity([]string{"--data", data, "--report", doc}); err != errUsage {
		t.Fatalf("--report without --sheet-dir: %v, want a usage error", err)
	}
	if err := runCellSanity([]string{"--data", data, "--sheet-dir", sheets, "--report", doc, "--json", js, "--per-source", "4", "--workers", "2"}); err != nil {
		t.Fatal(err)
	}
	var got cellSanityJSON
	b, err := os.ReadFile(js)
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(b, &got); err != nil {
		t.Fatal(err)
	}
	verdicts := map[string]string{}
	for _, im := range got.Images {
		verdicts[im.Source+"/"+im.File] = im.Sanity.Verdict
		if im.Source == "allidb2" && (im.CellDice == nil || im.Truth == nil || !im.Truth.Sane()) {
			t.Errorf("%s: no Dice or truth check (%+v)", im.File, im)
		}
	}
	want := map[string]string{
		"allidb2/A_1.png": vision.VerdictSane, "allidb2/B_0.png": vision.VerdictSane,
		"cnmc/C_all.png": vision.VerdictSane, "cnmc/D_hem.png": vision.VerdictSane,
		"pbc-types/monocyte/MO_1.png": vision.VerdictSane, "pbc-types/platelet/PL_1.png": vision.ReasonTooSmall,
	}
	for k, v := range want {
		if verdicts[k] != v {
			t.Errorf("%s: verdict %q, want %q", k, verdicts[k], v)
		}
	}
	if len(got.Truth) != 2 || got.Truth[1].Set != "wbcseg" || got.Truth[1].Sane.K != 1 {
		t.Errorf("truth checks %+v", got.Truth)
	}
	entries, err := os.ReadDir(sheets)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, e := range entries {
		names = append(names, e.Name())
	}
	if !slices.Equal(names, []string{"single-cells-cnmc.png", "single-cells-pbc-types.png"}) {
		t.Errorf("sheets %v, want cnmc and pbc-types only", names)
	}
	text, err := os.ReadFile(doc)
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range []string{"Generated by `make report-single-cells`", "(figures/single-cells-cnmc.png)", "CC BY 4.0",
		"doi:10.7937/tcia.2019.dc64i46r", "platelet/PL_1.png", "| `MinNucleusShare` |"} {
		if !strings.Contains(string(text), s) {
			t.Errorf("report lacks %q", s)
		}
	}
}
