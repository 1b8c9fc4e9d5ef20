package screening

import (
	"context"
	"strings"
	"testing"

	"allscreen/vision"

	"gocv.io/x/gocv"
)

func TestVisionGateRejectsADarkField(t *testing.T) {
	store := openTestStore(t, t.TempDir())
	clf := &fakeClassifier{blast: everyThird}
	sc := newTestScreener(t, store, clf, VisionGate(vision.DefaultQualityThresholds))
	dark := gocv.NewMatWithSizeFromScalar(gocv.NewScalar(12, 10, 14, 0), 480, 640, gocv.MatTypeCV8UC3)
	defer dark.Close()
	r, err := sc.AddField(context.Background(), dark, captured)
	if err != nil {
		t.Fatal(err)
	}
	if r.Accepted || !strings.HasPrefix(r.Reject, "Too dark") || len(clf.batches) != 0 {
		t.Errorf("dark field: %q, classifier calls %v", r.Summary(), clf.batches)
	}
	field := synthField(1296, 972, 10, 1)
	defer field.Close()
	if r, err := sc.AddField(context.Background(), field, captured); err != nil || !r.Accepted {
		t.Errorf("a good synthetic field: %q, %v", r.Summary(), err)
	}
}
