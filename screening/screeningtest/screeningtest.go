// Package screeningtest builds stored samples for other packages' tests
// from the bundled, redistributable sample images (samples/, CC BY; credited
// in samples/CREDITS.txt), so pages and reports show real cells.
package screeningtest

import (
	"context"
	"image"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"allscreen/model"
	"allscreen/screening"
)

// Rule is a verdict rule for tests: 10 confident cells for NO BLASTS SEEN,
// 2 blasts to refer.
var Rule = screening.Rule{BlastThreshold: 0.5, CellFalsePositiveRate: 0.01, ReferAlpha: 0.01, ReferBlasts: 2,
	MinWhiteCells: 10, MaxUncertainFraction: 0.2, MaxOutOfDistributionFraction: 0.1}

// Cells are the bundled images used as crops, in order.
var Cells = []string{
	"normal_pbc_LY_381928.jpg",
	"blast_cnmc_UID_1_2_2_all.png", "blast_cnmc_UID_1_3_1_all.png", "normal_pbc_LY_6217.jpg",
	"normal_pbc_LY_762572.jpg", "normal_pbc_LY_789698.jpg", "normal_pbc_SNE_247632.jpg",
	"normal_cnmc_UID_H10_47_2_hem.png", "normal_cnmc_UID_h3_4_1_hem.png", "blast_cnmc_UID_3_4_2_all.png",
	"blast_cnmc_UID_53_4_8_all.png", "normal_pbc_LY_381928.jpg",
}

// SamplesDir finds the repository's samples/ folder from a package's
// test directory.
func SamplesDir(t testing.TB) string {
	for dir := "."; ; dir = filepath.Join(dir, "..") {
		if _, err := os.Stat(filepath.Join(dir, "samples", "CREDITS.txt")); err == nil {
			return filepath.Join(dir, "samples")
		}
		if abs, _ := filepath.Abs(dir); abs == "/" {
			t.Fatal("screeningtest: no samples/ folder above the test")
		}
	}
}

// ImageSample stores and closes one sample of one field holding the
// bundled images as its 12 cells. P(blast) of each cell is given by pBlast
// (its index); uncertain cells are those in uncertain.
func ImageSample(t testing.TB, s *screening.Store, prov screening.Provenance, pBlast func(i int) float32, uncertain ...int) screening.SampleDetail {
	t.Helper()
	ctx := context.Background()
	dir := SamplesDir(t)
	read := func(name string) []byte {
		b, err := os.ReadFile(filepath.Join(dir, name))
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	smp, err := s.CreateSample(ctx, prov)
	if err != nil {
		t.Fatal(err)
	}
	field := &screening.FieldRecord{SampleID: smp.ID, Width: 360, Height: 363, Image: read("normal_pbc_SNE_247632.jpg"),
		ImageFormat: "jpg", Accepted: true, Provenance: prov}
	for i, name := range Cells {
		p := model.Prediction{Blast: pBlast(i), Probs: []float32{1 - pBlast(i), pBlast(i)}}
		for _, u := range uncertain {
			p.Uncertain = p.Uncertain || u == i
		}
		format := strings.TrimPrefix(filepath.Ext(name), ".")
		x, y := 30+(i%4)*80, 40+(i/4)*100
		field.Cells = append(field.Cells, screening.CellRecord{Box: image.Rect(x, y, x+60, y+60), Crop: image.Rect(x-10, y-10, x+70, y+70),
			Area: 2800, CropImage: read(name), CropFormat: format, Prediction: p, Call: Rule.CallCell(p)})
	}
	if _, err := s.SaveField(ctx, field); err != nil {
		t.Fatal(err)
	}
	if _, err := s.CloseSample(ctx, smp.ID, Rule); err != nil {
		t.Fatal(err)
	}
	d, err := s.SampleDetail(ctx, smp.Code)
	if err != nil {
		t.Fatal(err)
	}
	return d
}
