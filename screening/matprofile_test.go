//go:build matprofile

package screening

import (
	"context"
	"errors"
	"testing"

	"gocv.io/x/gocv"
)

// TestFieldPathLeaksNoMats counts live gocv Mats (the matprofile build tag)
// around every way through the field path: accepted, rejected, a bad
// frame, a classifier failure, a cancelled analysis.
func TestFieldPathLeaksNoMats(t *testing.T) {
	ctx := context.Background()
	store := openTestStore(t, t.TempDir())
	field := synthField(1296, 972, 10, 1)
	defer field.Close()
	tiny := gocv.NewMatWithSize(10, 10, gocv.MatTypeCV8UC3)
	defer tiny.Close()
	clf := &fakeClassifier{blast: everyThird}
	sc := newTestScreener(t, store, clf, nil)
	real := &Analyzer{Classifier: clf, Rule: testRule} // the real vision.FindCells

	before := gocv.MatProfile.Count()
	if _, err := sc.AddField(ctx, field, captured); err != nil {
		t.Fatal(err)
	}
	if _, err := real.Analyze(ctx, field); err != nil {
		t.Fatal(err)
	}
	sc.analyzer.Gate = func(gocv.Mat) (string, error) { return "Refocus", nil }
	if _, err := sc.AddField(ctx, field, captured); err != nil {
		t.Fatal(err)
	}
	sc.analyzer.Gate = nil
	if _, err := sc.AddField(ctx, tiny, captured); !errors.Is(err, ErrBadFrame) {
		t.Fatal(err)
	}
	clf.err = errors.New("broken")
	if _, err := sc.AddField(ctx, field, captured); err == nil {
		t.Fatal("no error from a broken classifier")
	}
	clf.err = nil
	cctx, cancel := context.WithCancel(ctx)
	clf.hook = cancel
	if _, err := sc.AddField(cctx, field, captured); !errors.Is(err, context.Canceled) {
		t.Fatal(err)
	}
	if after := gocv.MatProfile.Count(); after != before {
		t.Errorf("%d gocv Mats leaked", after-before)
	}
}
