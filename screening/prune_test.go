package screening

import (
	"context"
	"os"
	"path/filepath"
	"reflect"
	"testing"
	"time"
)

// TestPrune (issue 15 item 8): only signed samples whose every image is in
// an export, byte for byte, lose their images, unless forced; rows, review
// and audit stay; what was removed is no longer missing to Verify or Export.
func TestPrune(t *testing.T) {
	ctx := context.Background()
	clk := newFakeClock()
	dir := t.TempDir()
	s, err := Open(ctx, dir, Options{Clock: clk})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	closed := func(tag string, sign bool) Sample {
		smp, _ := s.CreateSample(ctx, testProvenance)
		if _, err := s.SaveField(ctx, testField(smp.ID, 3, 1, tag)); err != nil {
			t.Fatal(err)
		}
		if _, err := s.CloseSample(ctx, smp.ID, testRule); err != nil {
			t.Fatal(err)
		}
		if sign {
			if _, err := s.Sign(ctx, smp.Code, "dr"); err != nil {
				t.Fatal(err)
			}
		}
		return smp
	}
	a := closed("a", true)  // signed, exported: pruned
	c := closed("c", false) // exported, not signed: kept
	stick := t.TempDir()
	if _, err := s.Export(ctx, stick, true); err != nil {
		t.Fatal(err)
	}
	b := closed("b", true) // signed after the export, never exported: kept
	cutoff := clk.Now().Add(time.Minute)
	clk.mu.Lock()
	clk.t = cutoff.Add(time.Hour)
	clk.mu.Unlock()
	closed("d", true) // closed after the date: kept
	open, _ := s.CreateSample(ctx, testProvenance)
	s.SaveField(ctx, testField(open.ID, 2, 0, "open"))

	imagesOf := func(code string) []string {
		d, _ := s.SampleDetail(ctx, code)
		var out []string
		for _, f := range d.Fields {
			out = append(out, filepath.Join(dir, f.Image.relPath()))
			for _, cl := range f.Cells {
				out = append(out, filepath.Join(dir, cl.Crop.relPath()))
			}
		}
		return out
	}
	opt := PruneOptions{Before: cutoff, ExportedIn: stick, By: "admin", DryRun: true}
	dry, err := s.Prune(ctx, opt)
	if err != nil || !reflect.DeepEqual(dry.Samples, []string{a.Code}) || dry.Images != 4 {
		t.Fatalf("dry run: %+v %v", dry, err)
	}
	for _, p := range imagesOf(a.Code) {
		if _, err := os.Stat(p); err != nil {
			t.Fatalf("a dry run removed %s", p)
		}
	}
	opt.DryRun = false
	sum, err := s.Prune(ctx, opt)
	want := map[string]int{"open": 1, "closed on or after the date": 1, "not signed (--force prunes it)": 1,
		"not every image in an export (--force prunes it)": 1}
	if err != nil || !reflect.DeepEqual(sum.Samples, []string{a.Code}) || !reflect.DeepEqual(sum.Kept, want) {
		t.Fatalf("prune: %+v %v", sum, err)
	}
	for _, p := range imagesOf(a.Code) {
		if _, err := os.Stat(p); err == nil {
			t.Errorf("%s still there", p)
		}
	}
	for _, p := range append(imagesOf(b.Code), imagesOf(c.Code)...) {
		if _, err := os.Stat(p); err != nil {
			t.Errorf("an image of a kept sample went: %s", p)
		}
	}
	d, _ := s.SampleDetail(ctx, a.Code)
	if d.PrunedAt == nil || !d.Current().Signed() || d.Tally.WhiteCells != 3 || d.Audit[len(d.Audit)-1].Action != "prune" {
		t.Errorf("after pruning: %+v, audit %+v", d.SampleSummary, d.Audit)
	}
	if err := s.Verify(ctx); err != nil {
		t.Errorf("Verify after prune: %v", err)
	}
	if sum, err := s.Export(ctx, t.TempDir(), true); err != nil || len(sum.MissingImages) != 0 {
		t.Errorf("export after prune: %+v %v", sum, err)
	}
	// A tampered copy on the stick is not an export.
	ex, _ := filepath.Glob(filepath.Join(stick, "allscreen-export-*"))
	cd, _ := s.SampleDetail(ctx, c.Code)
	os.WriteFile(filepath.Join(ex[0], cd.Fields[0].Image.relPath()), []byte("not the frame"), 0o644)
	if _, err := s.Sign(ctx, c.Code, "dr"); err != nil {
		t.Fatal(err)
	}
	if sum, _ := s.Prune(ctx, PruneOptions{Before: cutoff, ExportedIn: stick, By: "admin"}); len(sum.Samples) != 0 {
		t.Errorf("pruned against a tampered export: %+v", sum)
	}
	forced, err := s.Prune(ctx, PruneOptions{Before: cutoff, Force: true, By: "admin"})
	if err != nil || !reflect.DeepEqual(forced.Samples, []string{c.Code, b.Code}) {
		t.Errorf("forced: %+v %v", forced, err)
	}
	if _, err := s.Prune(ctx, PruneOptions{Before: cutoff}); err == nil {
		t.Error("pruned without saying who")
	}
}
