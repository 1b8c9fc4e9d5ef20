package screening

import (
	"context"
	"errors"
	"image"
	"strings"
	"sync"
	"testing"
	"time"

	"allscreen/model"
	"allscreen/vision"

	"gocv.io/x/gocv"
)

// fakeClassifier answers P(blast) from a script by cell index within each
// call, and records its calls.
type fakeClassifier struct {
	mu      sync.Mutex
	blast   func(i int) model.Prediction
	batches []int
	err     error
	hook    func() // runs inside Classify
}

func (f *fakeClassifier) Classify(crops []gocv.Mat) ([]model.Prediction, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.batches = append(f.batches, len(crops))
	if f.hook != nil {
		f.hook()
	}
	if f.err != nil {
		return nil, f.err
	}
	out := make([]model.Prediction, len(crops))
	for i, c := range crops {
		if c.Empty() || c.Type() != gocv.MatTypeCV8UC3 {
			return nil, errors.New("fake classifier: bad crop")
		}
		out[i] = f.blast(i)
	}
	return out, nil
}

// everyThird calls cells 0, 3, 6, ... blasts.
func everyThird(i int) model.Prediction {
	if i%3 == 0 {
		return model.Prediction{Blast: 0.95, Probs: []float32{0.05, 0.95}}
	}
	return model.Prediction{Blast: 0.05, Probs: []float32{0.95, 0.05}}
}

// gridCells finds n white cells in a 5-wide grid, whatever the field
// shows: the tests of the session pin what vision finds.
func gridCells(n int) func(gocv.Mat) ([]vision.Cell, error) {
	return func(f gocv.Mat) ([]vision.Cell, error) {
		cells := make([]vision.Cell, n)
		for i := range cells {
			x, y := 20+(i%5)*110, 20+(i/5)*110
			cells[i] = vision.Cell{Box: image.Rect(x, y, x+40, y+40), Center: image.Pt(x+20, y+20), Area: 1200,
				Crop: image.Rect(x-10, y-10, x+50, y+50)}
		}
		return cells, nil
	}
}

func newTestScreener(t *testing.T, store *Store, clf model.Classifier, gate QualityGate) *Screener {
	t.Helper()
	return newTestScreenerFinding(t, store, clf, gate, 6)
}

func newTestScreenerFinding(t *testing.T, store *Store, clf model.Classifier, gate QualityGate, cells int) *Screener {
	t.Helper()
	sc, err := NewScreener(context.Background(), store, ScreenerConfig{
		Analyzer:   &Analyzer{Gate: gate, Classifier: clf, FindCells: gridCells(cells)},
		Rule:       testRule,
		Provenance: testProvenance,
		Clock:      newFakeClock(),
	})
	if err != nil {
		t.Fatal(err)
	}
	return sc
}

var captured = time.Date(2025, 6, 1, 9, 0, 0, 0, time.UTC)

func TestFieldsToVerdict(t *testing.T) {
	store := openTestStore(t, t.TempDir())
	clf := &fakeClassifier{blast: everyThird}
	sc := newTestScreenerFinding(t, store, clf, nil, 10)
	ctx := context.Background()
	smp, err := sc.StartSample(ctx)
	if err != nil {
		t.Fatal(err)
	}
	field := synthField(640, 480, 10, 1)
	defer field.Close()
	r1, err := sc.AddField(ctx, field, captured)
	if err != nil {
		t.Fatal(err)
	}
	if r1.Sample.Code != smp.Code || r1.Number != 1 || !r1.Accepted || len(r1.Cells) != 10 {
		t.Fatalf("field 1: sample %s number %d accepted %v, %d cells", r1.Sample.Code, r1.Number, r1.Accepted, len(r1.Cells))
	}
	if len(clf.batches) != 1 || clf.batches[0] != 10 {
		t.Errorf("classifier calls %v, want one batch of 10", clf.batches)
	}
	if got := r1.Summary(); got != "Field 1: 10 WBC, 4 suspicious" {
		t.Errorf("summary %q", got)
	}
	sc.analyzer.FindCells = gridCells(7)
	r2, err := sc.AddField(ctx, field, captured)
	if err != nil {
		t.Fatal(err)
	}
	if r2.Running != (Tally{Fields: 2, WhiteCells: 17, Blasts: 7}) || r2.Running.Summary() != "17 WBC, 7 suspicious" {
		t.Errorf("running tally %+v", r2.Running)
	}
	closed, err := sc.CloseSample(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if closed.Code != smp.Code || closed.Verdict.Outcome != Refer || closed.Verdict.Tally != r2.Running {
		t.Errorf("verdict %+v", closed)
	}
	if _, _, ok := sc.Current(); ok {
		t.Error("a sample is open after closing")
	}
	// The next field opens a new sample.
	r3, err := sc.AddField(ctx, field, captured)
	if err != nil || r3.Sample.Code == smp.Code || r3.Number != 1 {
		t.Errorf("after close: sample %s field %d, %v", r3.Sample.Code, r3.Number, err)
	}
	if err := store.Verify(ctx); err != nil {
		t.Error(err)
	}
}

func TestRejectedFieldIsStoredWithItsReason(t *testing.T) {
	store := openTestStore(t, t.TempDir())
	clf := &fakeClassifier{blast: everyThird}
	sc := newTestScreener(t, store, clf, func(gocv.Mat) (string, error) { return "Refocus", nil })
	field := synthField(640, 480, 10, 1)
	defer field.Close()
	r, err := sc.AddField(context.Background(), field, captured)
	if err != nil {
		t.Fatal(err)
	}
	if r.Accepted || r.Reject != "Refocus" || r.Summary() != "Field 1: Refocus" || len(clf.batches) != 0 {
		t.Errorf("rejected field %q, classifier calls %v", r.Summary(), clf.batches)
	}
	if r.Running != (Tally{}) {
		t.Errorf("a rejected field counted: %+v", r.Running)
	}
	list, _ := store.Samples(context.Background())
	if len(list) != 1 || list[0].Fields != 1 || list[0].AcceptedFields != 0 {
		t.Errorf("stored %+v", list)
	}
}

func TestUnusableFramesStoreNothing(t *testing.T) {
	store := openTestStore(t, t.TempDir())
	sc := newTestScreener(t, store, &fakeClassifier{blast: everyThird}, nil)
	gray := gocv.NewMatWithSize(480, 640, gocv.MatTypeCV8UC1)
	defer gray.Close()
	tiny := gocv.NewMatWithSize(20, 30, gocv.MatTypeCV8UC3)
	defer tiny.Close()
	empty := gocv.NewMat()
	defer empty.Close()
	huge := gocv.NewMatWithSize(5000, 6401, gocv.MatTypeCV8UC3) // 32.005 MP
	defer huge.Close()
	for name, m := range map[string]gocv.Mat{"gray": gray, "tiny": tiny, "empty": empty, "zero": {}, "huge": huge} {
		if _, err := sc.AddField(context.Background(), m, captured); !errors.Is(err, ErrBadFrame) {
			t.Errorf("%s frame: %v, want ErrBadFrame", name, err)
		}
	}
	if _, err := sc.AddField(context.Background(), huge, captured); !errors.Is(err, ErrFrameTooLarge) ||
		!strings.Contains(err.Error(), "set the camera to at most 32 megapixels") {
		t.Errorf("a 32.005 MP frame: %v, want ErrFrameTooLarge in words", err)
	}
	if got := countRows(t, store.db); got != "samples=0 fields=0 cells=0" {
		t.Errorf("after bad frames: %s", got)
	}
}

func TestClassifierFailureStoresNothing(t *testing.T) {
	store := openTestStore(t, t.TempDir())
	sc := newTestScreener(t, store, &fakeClassifier{err: errors.New("model file vanished")}, nil)
	field := synthField(640, 480, 6, 1)
	defer field.Close()
	_, err := sc.AddField(context.Background(), field, captured)
	if err == nil || !strings.Contains(err.Error(), "model file vanished") {
		t.Errorf("got %v", err)
	}
	if got := countRows(t, store.db); got != "samples=0 fields=0 cells=0" {
		t.Errorf("after a classifier failure: %s", got)
	}
}

func TestCancelDuringAnalysisStoresNothing(t *testing.T) {
	store := openTestStore(t, t.TempDir())
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	sc := newTestScreener(t, store, &fakeClassifier{blast: everyThird, hook: cancel}, nil)
	if _, err := sc.StartSample(context.Background()); err != nil {
		t.Fatal(err)
	}
	field := synthField(640, 480, 6, 1)
	defer field.Close()
	if _, err := sc.AddField(ctx, field, captured); !errors.Is(err, context.Canceled) {
		t.Fatalf("got %v, want context.Canceled", err)
	}
	if got := countRows(t, store.db); got != "samples=1 fields=0 cells=0" {
		t.Errorf("after cancelling mid-analysis: %s", got)
	}
}

// cancelOnWrite cancels a context when the store starts writing images,
// i.e. after the analysis, during the commit.
type cancelOnWrite struct {
	osFileSystem
	cancel func()
}

func (c cancelOnWrite) CreateTemp(dir, pattern string) (writableFile, error) {
	c.cancel()
	return c.osFileSystem.CreateTemp(dir, pattern)
}

func TestCancelDuringCommitFinishesTheCommit(t *testing.T) {
	store := openTestStore(t, t.TempDir())
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	store.files = cancelOnWrite{cancel: cancel}
	sc := newTestScreener(t, store, &fakeClassifier{blast: everyThird}, nil)
	field := synthField(640, 480, 6, 1)
	defer field.Close()
	r, err := sc.AddField(ctx, field, captured)
	if err != nil {
		t.Fatalf("commit abandoned after cancel: %v", err)
	}
	if ctx.Err() == nil {
		t.Fatal("the context was never cancelled: the test tests nothing")
	}
	if got := countRows(t, store.db); got != "samples=1 fields=1 cells=6" || r.Field.WhiteCells != 6 {
		t.Errorf("after cancelling mid-commit: %s, result %+v", got, r.Field)
	}
	if err := store.Verify(context.Background()); err != nil {
		t.Error(err)
	}
}

func TestOpenSampleIsResumedAfterRestart(t *testing.T) {
	dir := t.TempDir()
	ctx := context.Background()
	store, err := Open(ctx, dir, Options{})
	if err != nil {
		t.Fatal(err)
	}
	sc := newTestScreener(t, store, &fakeClassifier{blast: everyThird}, nil)
	field := synthField(640, 480, 6, 1)
	defer field.Close()
	r1, err := sc.AddField(ctx, field, captured)
	if err != nil {
		t.Fatal(err)
	}
	store.Close() // the daemon stops with the sample open

	store2 := openTestStore(t, dir)
	sc2 := newTestScreener(t, store2, &fakeClassifier{blast: everyThird}, nil)
	smp, tally, ok := sc2.Current()
	if !ok || !sc2.Resumed() || smp.Code != r1.Sample.Code || tally != r1.Running {
		t.Fatalf("resumed %+v %+v ok=%v", smp, tally, ok)
	}
	r2, err := sc2.AddField(ctx, field, captured)
	if err != nil || r2.Number != 2 || r2.Running.WhiteCells != 12 {
		t.Errorf("field after resume: number %d running %+v, %v", r2.Number, r2.Running, err)
	}
}

func TestCloseWithoutSample(t *testing.T) {
	sc := newTestScreener(t, openTestStore(t, t.TempDir()), &fakeClassifier{blast: everyThird}, nil)
	if _, err := sc.CloseSample(context.Background()); !errors.Is(err, ErrNoOpenSample) {
		t.Errorf("got %v", err)
	}
}

// The real cell finder on a synthetic field: whatever it finds is
// classified in one batch, and stored cell for cell.
func TestRealCellFinderOnSyntheticField(t *testing.T) {
	store := openTestStore(t, t.TempDir())
	clf := &fakeClassifier{blast: everyThird}
	sc, err := NewScreener(context.Background(), store, ScreenerConfig{
		Analyzer: &Analyzer{Classifier: clf, Find: vision.DefaultFindOptions},
		Rule:     testRule, Provenance: testProvenance,
	})
	if err != nil {
		t.Fatal(err)
	}
	field := synthField(1296, 972, 10, 3)
	defer field.Close()
	r, err := sc.AddField(context.Background(), field, captured)
	if err != nil {
		t.Fatal(err)
	}
	if len(r.Cells) == 0 || len(clf.batches) != 1 || clf.batches[0] != len(r.Cells) {
		t.Fatalf("%d cells, classifier batches %v", len(r.Cells), clf.batches)
	}
	var rows int
	store.db.QueryRow(`SELECT count(*) FROM cells WHERE field_id = ?`, r.FieldID).Scan(&rows)
	if rows != len(r.Cells) || r.Field.WhiteCells != len(r.Cells) {
		t.Errorf("%d cells returned, %d stored, tally %+v", len(r.Cells), rows, r.Field)
	}
	t.Logf("vision.FindCells found %d of the 10 drawn white cells", len(r.Cells))
}
