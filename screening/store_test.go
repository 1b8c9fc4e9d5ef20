package screening

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"image"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"allscreen/model"
)

var testRule = Rule{BlastThreshold: 0.5, CellFalsePositiveRate: 0.01, ReferAlpha: 0.01, ReferBlasts: 2, MinWhiteCells: 10,
	MaxUncertainFraction: 0.2, MaxOutOfDistributionFraction: 0.1}

// testField makes a field record whose images are distinct byte strings
// (the store treats images as opaque bytes). blasts of its cells get
// P(blast) 0.9, the rest 0.1.
func testField(sampleID int64, cells, blasts int, tag string) *FieldRecord {
	f := &FieldRecord{SampleID: sampleID, Width: 640, Height: 480, Image: []byte("frame " + tag),
		ImageFormat: "jpg", Accepted: true, Provenance: testProvenance}
	for i := range cells {
		p := model.Prediction{Blast: 0.1, Probs: []float32{0.9, 0.1}}
		if i < blasts {
			p = model.Prediction{Blast: 0.9, Probs: []float32{0.1, 0.9}, Subtype: "L2", SubtypeProb: 0.7}
		}
		f.Cells = append(f.Cells, CellRecord{Box: image.Rect(10*i, 0, 10*i+8, 8), Crop: image.Rect(10*i-2, -2, 10*i+10, 10),
			Area: 50, CropImage: []byte(fmt.Sprintf("crop %s %d", tag, i)), CropFormat: "png",
			Prediction: p, Call: testRule.CallCell(p)})
	}
	return f
}

func TestOpenSetsDurablePragmas(t *testing.T) {
	s := openTestStore(t, t.TempDir())
	ctx := context.Background()
	var mode string
	var sync, fk int
	if err := s.db.QueryRowContext(ctx, `PRAGMA journal_mode`).Scan(&mode); err != nil {
		t.Fatal(err)
	}
	if err := s.db.QueryRowContext(ctx, `PRAGMA synchronous`).Scan(&sync); err != nil {
		t.Fatal(err)
	}
	if err := s.db.QueryRowContext(ctx, `PRAGMA foreign_keys`).Scan(&fk); err != nil {
		t.Fatal(err)
	}
	if mode != "wal" || sync != 2 || fk != 1 {
		t.Errorf("journal_mode=%s synchronous=%d foreign_keys=%d, want wal 2 (FULL) 1", mode, sync, fk)
	}
	v, err := schemaVersion(ctx, s.db)
	if err != nil || v != SchemaVersion {
		t.Errorf("schema version %d (%v), want %d", v, err, SchemaVersion)
	}
}

func TestUpgradeFromVersion1KeepsResults(t *testing.T) {
	dir := t.TempDir()
	ctx := context.Background()
	// A database as version 1 of the software left it, with a result in it.
	db, err := openChecked(ctx, filepath.Join(dir, DBName), Options{}.withDefaults())
	if err != nil {
		t.Fatal(err)
	}
	clock := newFakeClock()
	if err := migrate(ctx, db, 1, clock.Now); err != nil {
		t.Fatal(err)
	}
	// Rows written with version 1's own statements (today's add columns).
	smp := Sample{ID: 1, Code: SampleCode(1)}
	if _, err := db.ExecContext(ctx, `INSERT INTO samples (id, code, opened_at, model_sha256, config_sha256, software_version)
		VALUES (1, ?, ?, 'm', 'c', 'v1')`, smp.Code, formatTime(clock.Now())); err != nil {
		t.Fatal(err)
	}
	frame, err := writeImage(osFileSystem{}, dir, []byte("a field"), "jpg")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := db.ExecContext(ctx, `INSERT INTO fields (sample_id, number, captured_at, stored_at, width, height,
		image_sha256, image_format, accepted, reject_reason, white_cells, blasts, uncertain, out_of_distribution,
		model_sha256, config_sha256, software_version)
		VALUES (1, 1, ?, ?, 640, 480, ?, 'jpg', 1, NULL, 3, 1, 0, 0, 'm', 'c', 'v1')`, formatTime(clock.Now()), formatTime(clock.Now()), frame.SHA256); err != nil {
		t.Fatal(err)
	}
	if _, err := db.ExecContext(ctx, `SELECT count(*) FROM events`); err == nil {
		t.Fatal("version 1 already has the events table; the upgrade test tests nothing")
	}
	db.Close()

	s := openTestStore(t, dir)
	if v, _ := schemaVersion(ctx, s.db); v != SchemaVersion {
		t.Fatalf("after upgrade: version %d, want %d", v, SchemaVersion)
	}
	var applied []int
	rows, err := s.db.QueryContext(ctx, `SELECT version FROM schema_migrations ORDER BY version`)
	if err != nil {
		t.Fatal(err)
	}
	for rows.Next() {
		var v int
		rows.Scan(&v)
		applied = append(applied, v)
	}
	rows.Close()
	if want := fmt.Sprint(allVersions()); fmt.Sprint(applied) != want {
		t.Errorf("applied versions %v, want %s", applied, want)
	}
	list, err := s.Samples(ctx)
	if err != nil || len(list) != 1 || list[0].Code != smp.Code || list[0].Tally.WhiteCells != 3 || list[0].Tally.Blasts != 1 || list[0].Research {
		t.Fatalf("after upgrade: %+v, %v", list, err)
	}
	if ev, err := s.Events(ctx); err != nil || len(ev) != 0 {
		t.Errorf("events after upgrade: %v, %v", ev, err)
	}
	if err := s.Verify(ctx); err != nil {
		t.Error(err)
	}
}

func TestNewerSchemaIsRefused(t *testing.T) {
	dir := t.TempDir()
	ctx := context.Background()
	s := openTestStore(t, dir)
	if _, err := s.db.ExecContext(ctx, `INSERT INTO schema_migrations VALUES (99, 'future', 'x')`); err != nil {
		t.Fatal(err)
	}
	s.Close()
	if _, err := Open(ctx, dir, Options{}); !errors.Is(err, ErrSchemaTooNew) {
		t.Errorf("Open: %v, want ErrSchemaTooNew", err)
	}
	if _, err := OpenReadOnly(ctx, dir, Options{}); !errors.Is(err, ErrSchemaTooNew) {
		t.Errorf("OpenReadOnly: %v, want ErrSchemaTooNew", err)
	}
	if _, err := os.Stat(filepath.Join(dir, DBName)); err != nil {
		t.Errorf("a newer database must be left in place: %v", err)
	}
}

func TestSampleLifecycle(t *testing.T) {
	s := openTestStore(t, t.TempDir())
	ctx := context.Background()
	smp, err := s.CreateSample(ctx, testProvenance)
	if err != nil {
		t.Fatal(err)
	}
	if smp.ID != 1 || smp.Code != SampleCode(1) {
		t.Errorf("first sample %+v", smp)
	}
	f1, err := s.SaveField(ctx, testField(smp.ID, 7, 2, "1"))
	if err != nil {
		t.Fatal(err)
	}
	rej := testField(smp.ID, 0, 0, "2")
	rej.Accepted, rej.Reject = false, "Refocus"
	f2, err := s.SaveField(ctx, rej)
	if err != nil {
		t.Fatal(err)
	}
	f3, err := s.SaveField(ctx, testField(smp.ID, 5, 0, "3"))
	if err != nil {
		t.Fatal(err)
	}
	if f1.Number != 1 || f2.Number != 2 || f3.Number != 3 {
		t.Errorf("field numbers %d %d %d", f1.Number, f2.Number, f3.Number)
	}
	if f1.Tally != (Tally{WhiteCells: 7, Blasts: 2}) {
		t.Errorf("field 1 tally %+v", f1.Tally)
	}
	open, tally, last, ok, err := s.OpenSample(ctx)
	if err != nil || !ok || open.ID != smp.ID || last != 3 || tally != (Tally{Fields: 2, WhiteCells: 12, Blasts: 2}) {
		t.Fatalf("open sample %+v %+v last=%d ok=%v err=%v", open, tally, last, ok, err)
	}
	closed, err := s.CloseSample(ctx, smp.ID, testRule)
	if err != nil {
		t.Fatal(err)
	}
	if closed.Verdict.Outcome != Refer || closed.Verdict.Tally.WhiteCells != 12 {
		t.Errorf("verdict %+v", closed.Verdict)
	}
	if _, err := s.SaveField(ctx, testField(smp.ID, 1, 0, "4")); !errors.Is(err, ErrNoOpenSample) {
		t.Errorf("field on a closed sample: %v", err)
	}
	if _, err := s.CloseSample(ctx, smp.ID, testRule); !errors.Is(err, ErrNoOpenSample) {
		t.Errorf("closing twice: %v", err)
	}
	if _, _, _, ok, _ := s.OpenSample(ctx); ok {
		t.Error("a sample is still open after closing")
	}
	list, err := s.Samples(ctx)
	if err != nil || len(list) != 1 {
		t.Fatal(list, err)
	}
	got := list[0]
	if got.Fields != 3 || got.AcceptedFields != 2 || got.Verdict != "ALL SUSPECTED - REFER" || got.ClosedAt == nil || len(got.Reasons) == 0 {
		t.Errorf("summary %+v", got)
	}
	var cells int
	s.db.QueryRow(`SELECT count(*) FROM cells`).Scan(&cells)
	if cells != 12 {
		t.Errorf("%d cell rows, want 12", cells)
	}
	if err := s.Verify(ctx); err != nil {
		t.Error(err)
	}
}

func TestSampleCodesContinueAcrossReopen(t *testing.T) {
	dir := t.TempDir()
	ctx := context.Background()
	seen := map[string]bool{}
	for range 3 {
		s, err := Open(ctx, dir, Options{})
		if err != nil {
			t.Fatal(err)
		}
		for range 4 {
			smp, err := s.CreateSample(ctx, testProvenance)
			if err != nil {
				t.Fatal(err)
			}
			if seen[smp.Code] {
				t.Fatalf("code %s issued twice", smp.Code)
			}
			seen[smp.Code] = true
			if _, err := s.CloseSample(ctx, smp.ID, testRule); err != nil {
				t.Fatal(err)
			}
		}
		s.Close()
	}
	// Deleting the newest sample must not free its number (AUTOINCREMENT).
	s := openTestStore(t, dir)
	if _, err := s.db.Exec(`DELETE FROM samples WHERE id = 12`); err != nil {
		t.Fatal(err)
	}
	smp, err := s.CreateSample(ctx, testProvenance)
	if err != nil || smp.ID != 13 || seen[smp.Code] {
		t.Errorf("after deleting sample 12: %+v %v", smp, err)
	}
}

func TestVerifyFindsMissingAndAlteredImages(t *testing.T) {
	dir := t.TempDir()
	s := openTestStore(t, dir)
	ctx := context.Background()
	smp, _ := s.CreateSample(ctx, testProvenance)
	if _, err := s.SaveField(ctx, testField(smp.ID, 2, 0, "v")); err != nil {
		t.Fatal(err)
	}
	if err := s.Verify(ctx); err != nil {
		t.Fatal(err)
	}
	var frame, crop ImageRef
	s.db.QueryRow(`SELECT image_sha256, image_format FROM fields`).Scan(&frame.SHA256, &frame.Format)
	s.db.QueryRow(`SELECT crop_sha256, crop_format FROM cells LIMIT 1`).Scan(&crop.SHA256, &crop.Format)
	os.Remove(filepath.Join(dir, frame.relPath()))
	os.WriteFile(filepath.Join(dir, crop.relPath()), []byte("tampered"), 0o644)
	err := s.Verify(ctx)
	if err == nil || !strings.Contains(err.Error(), frame.SHA256) || !strings.Contains(err.Error(), crop.SHA256[:12]) {
		t.Errorf("Verify: %v", err)
	}
}

func TestReadOnlyStoreWhileWriterIsOpen(t *testing.T) {
	dir := t.TempDir()
	ctx := context.Background()
	w := openTestStore(t, dir)
	smp, _ := w.CreateSample(ctx, testProvenance)
	if _, err := w.SaveField(ctx, testField(smp.ID, 4, 1, "r")); err != nil {
		t.Fatal(err)
	}
	r, err := OpenReadOnly(ctx, dir, Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	list, err := r.Samples(ctx)
	if err != nil || len(list) != 1 || list[0].Tally.WhiteCells != 4 || list[0].Verdict != "open" {
		t.Fatalf("read-only list: %+v %v", list, err)
	}
	if _, err := r.CreateSample(ctx, testProvenance); err == nil {
		t.Error("a read-only store accepted a write")
	}
	if _, err := r.db.ExecContext(ctx, `DELETE FROM cells`); err == nil {
		t.Error("a read-only connection executed a DELETE")
	}
	// The writer goes on while the reader is open.
	if _, err := w.CloseSample(ctx, smp.ID, testRule); err != nil {
		t.Fatal(err)
	}
	if list, _ := r.Samples(ctx); list[0].Verdict == "open" {
		t.Error("reader does not see the committed verdict")
	}
}

func TestOpenReadOnlyWithoutStore(t *testing.T) {
	_, err := OpenReadOnly(context.Background(), t.TempDir(), Options{})
	if !errors.Is(err, ErrNoStore) {
		t.Errorf("got %v, want ErrNoStore", err)
	}
}

func TestLeftoverTempImagesAreRemoved(t *testing.T) {
	dir := t.TempDir()
	s := openTestStore(t, dir)
	s.Close()
	sub := filepath.Join(dir, "images", "ab")
	os.MkdirAll(sub, 0o755)
	tmp := filepath.Join(sub, tempPrefix+"123")
	os.WriteFile(tmp, []byte("half"), 0o644)
	openTestStore(t, dir)
	if _, err := os.Stat(tmp); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("temp image left after open: %v", err)
	}
}

// countRows returns the number of rows in each table.
func countRows(t *testing.T, db *sql.DB) string {
	t.Helper()
	var s, f, c int
	db.QueryRow(`SELECT count(*) FROM samples`).Scan(&s)
	db.QueryRow(`SELECT count(*) FROM fields`).Scan(&f)
	db.QueryRow(`SELECT count(*) FROM cells`).Scan(&c)
	return fmt.Sprintf("samples=%d fields=%d cells=%d", s, f, c)
}

// TestMalformedImageReference: a row whose image hash was damaged or
// edited (too short, or a path) makes Verify say so and export list it as
// missing; neither panics nor reaches outside images/ (a short hash once
// panicked Verify with a slice out of range).
func TestMalformedImageReference(t *testing.T) {
	dir := t.TempDir()
	ctx := context.Background()
	s := openTestStore(t, dir)
	smp, err := s.CreateSample(ctx, testProvenance)
	if err != nil {
		t.Fatal(err)
	}
	for i, h := range []string{"x", "../../../../etc/passwd-0000000000000000000000000000000000000000000"} {
		if _, err := s.db.ExecContext(ctx, `INSERT INTO fields (sample_id, number, captured_at, stored_at, width, height,
			image_sha256, image_format, accepted, reject_reason, white_cells, blasts, uncertain, out_of_distribution,
			model_sha256, config_sha256, software_version)
			VALUES (?, ?, '2026-01-01T00:00:00Z', '2026-01-01T00:00:00Z', 640, 480, ?, 'jpg', 1, NULL, 0, 0, 0, 0, 'm', 'c', 'v')`,
			smp.ID, i+1, h); err != nil {
			t.Fatal(err)
		}
	}
	if err := s.Verify(ctx); err == nil || !strings.Contains(err.Error(), "is not a stored image's SHA-256") {
		t.Errorf("Verify: %v, want it to name the malformed reference", err)
	}
	sum, err := s.Export(ctx, t.TempDir(), true)
	if err != nil {
		t.Fatal(err)
	}
	if len(sum.MissingImages) != 2 || !strings.Contains(sum.MissingImages[0]+sum.MissingImages[1], "invalid reference") {
		t.Errorf("export's missing images: %q, want both invalid references", sum.MissingImages)
	}
}

// TestCloseIncompleteIsStored: the incomplete verdict and its reason are
// what the store keeps and lists.
func TestCloseIncompleteIsStored(t *testing.T) {
	ctx := context.Background()
	s := openTestStore(t, t.TempDir())
	smp, err := s.CreateSample(ctx, testProvenance)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.SaveField(ctx, testField(smp.ID, 12, 0, "a")); err != nil {
		t.Fatal(err)
	}
	if _, err := s.CloseIncomplete(ctx, smp.ID, testRule, ""); err == nil {
		t.Error("closed incomplete without a reason")
	}
	c, err := s.CloseIncomplete(ctx, smp.ID, testRule, "closed by the technician at power-on")
	if err != nil || c.Verdict.Outcome != Inconclusive || !c.Verdict.Incomplete {
		t.Fatalf("close incomplete: %+v %v", c.Verdict, err)
	}
	list, err := s.Samples(ctx)
	if err != nil || len(list) != 1 || list[0].Verdict != "INCOMPLETE - REVIEW" || list[0].Outcome != Inconclusive ||
		!strings.Contains(strings.Join(list[0].Reasons, ";"), "incomplete: closed by the technician at power-on") {
		t.Fatalf("stored: %+v %v", list, err)
	}
}

// TestReusedImageIsChecked (issue 15 item 5): an image file already in the
// store under the hash of a new image is reused only when it holds that
// content; one altered on disk (same size) is replaced, so the new row
// references the right pixels.
func TestReusedImageIsChecked(t *testing.T) {
	dir := t.TempDir()
	data := []byte("the same crop")
	ref, err := writeImage(osFileSystem{}, dir, data, "png")
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(dir, ref.relPath())
	if err := os.WriteFile(path, []byte("altered crop!"), 0o640); err != nil { // same length
		t.Fatal(err)
	}
	if _, err := writeImage(osFileSystem{}, dir, data, "png"); err != nil {
		t.Fatal(err)
	}
	if err := checkImage(dir, ref); err != nil {
		t.Errorf("after storing the image again: %v", err)
	}
}

// TestCodesNeverReissuedAfterDatabaseLoss (issue 15 item 1): the database
// deleted while the daemon is stopped does not start the codes again at
// the first one: a code already written on a slide is never issued twice.
func TestCodesNeverReissuedAfterDatabaseLoss(t *testing.T) {
	dir := t.TempDir()
	ctx := context.Background()
	s := openTestStore(t, dir)
	var last Sample
	for range 3 {
		smp, err := s.CreateSample(ctx, testProvenance)
		if err != nil {
			t.Fatal(err)
		}
		last = smp
	}
	s.Close()
	for _, f := range []string{DBName, DBName + "-wal", DBName + "-shm"} {
		os.Remove(filepath.Join(dir, f))
	}
	s2 := openTestStore(t, dir)
	smp, err := s2.CreateSample(ctx, testProvenance)
	if err != nil {
		t.Fatal(err)
	}
	if smp.ID != last.ID+1 || smp.Code != SampleCode(last.ID+1) {
		t.Errorf("after the database was lost: sample %d %s, want %d %s", smp.ID, smp.Code, last.ID+1, SampleCode(last.ID+1))
	}
}

func allVersions() []int {
	var v []int
	for _, m := range migrations {
		v = append(v, m.version)
	}
	return v
}
