package screening

import (
	"context"
	"path/filepath"
	"testing"

	"allscreen/internal/realdata"
	"allscreen/model"
	"allscreen/vision"

	"gocv.io/x/gocv"
)

// The capture-to-field-result benchmarks run the whole field path the
// daemon runs on a button press: quality gate (when set), white cells,
// crops, one classification call, JPEG and PNG encoding, then (in
// "commit") the images written and fsynced and the rows committed. The
// classifier is the test fake, which costs nothing: the model's own time
// is measured by model's benchmarks and adds to these.

func benchField(b *testing.B, field gocv.Mat) {
	ctx := context.Background()
	b.Run("analyze", func(b *testing.B) {
		an := &Analyzer{Classifier: &fakeClassifier{blast: everyThird}, Find: vision.DefaultFindOptions, Rule: testRule}
		cells := 0
		for b.Loop() {
			res, err := an.Analyze(ctx, field)
			if err != nil {
				b.Fatal(err)
			}
			cells = len(res.Cells)
		}
		b.ReportMetric(float64(cells), "cells")
	})
	b.Run("commit", func(b *testing.B) {
		store, err := Open(ctx, b.TempDir(), Options{})
		if err != nil {
			b.Fatal(err)
		}
		defer store.Close()
		sc, err := NewScreener(ctx, store, ScreenerConfig{
			Analyzer: &Analyzer{Classifier: &fakeClassifier{blast: everyThird}, Find: vision.DefaultFindOptions},
			Rule:     testRule, Provenance: testProvenance,
		})
		if err != nil {
			b.Fatal(err)
		}
		cells := 0
		for b.Loop() {
			r, err := sc.AddField(ctx, field, captured)
			if err != nil {
				b.Fatal(err)
			}
			cells = r.Field.WhiteCells
		}
		b.ReportMetric(float64(cells), "cells")
	})
}

// benchShipped is the whole path with the provisional shipped detection
// model (model.Load: ONNX through OpenCV's dnn) instead of the fake.
func benchShipped(b *testing.B, field gocv.Mat) {
	ctx := context.Background()
	net, err := model.Load("../model/shipped/detect.json")
	if err != nil {
		b.Fatal(err)
	}
	defer net.Close()
	rule, err := RuleFor(net.Manifest().Operating, DefaultRuleConfig)
	if err != nil {
		b.Fatal(err)
	}
	store, err := Open(ctx, b.TempDir(), Options{})
	if err != nil {
		b.Fatal(err)
	}
	defer store.Close()
	sc, err := NewScreener(ctx, store, ScreenerConfig{
		Analyzer: &Analyzer{Classifier: net, Find: vision.DefaultFindOptions},
		Rule:     rule, Provenance: testProvenance,
	})
	if err != nil {
		b.Fatal(err)
	}
	cells := 0
	for b.Loop() {
		r, err := sc.AddField(ctx, field, captured)
		if err != nil {
			b.Fatal(err)
		}
		cells = r.Field.WhiteCells
	}
	b.ReportMetric(float64(cells), "cells")
}

// BenchmarkFieldSynthetic: a drawn 2592x1944 field with 10 white cells.
func BenchmarkFieldSynthetic(b *testing.B) {
	field := synthField(2592, 1944, 10, 1)
	defer field.Close()
	benchField(b, field)
	b.Run("commit-shipped-model", func(b *testing.B) { benchShipped(b, field) })
}

// BenchmarkFieldALLIDB1Normal: a real 2592x1944 ALL-IDB1 normal field.
func BenchmarkFieldALLIDB1Normal(b *testing.B) {
	dir := realdata.Dir(b, "allidb1", "fields")
	field, err := vision.LoadImage(filepath.Join(dir, "Im064_0.jpg"))
	if err != nil {
		b.Fatal(err)
	}
	defer field.Close()
	if field.Cols() != 2592 || field.Rows() != 1944 {
		b.Fatalf("Im064_0 is %dx%d", field.Cols(), field.Rows())
	}
	benchField(b, field)
	b.Run("commit-shipped-model", func(b *testing.B) { benchShipped(b, field) })
}
