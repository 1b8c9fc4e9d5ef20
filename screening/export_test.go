package screening

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/csv"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"
)

// fillStore makes two samples: one closed (3 fields, one rejected), one
// open (1 field).
func fillStore(t *testing.T, s *Store) {
	t.Helper()
	ctx := context.Background()
	a, _ := s.CreateSample(ctx, testProvenance)
	for i, n := range []int{4, 0, 3} {
		f := testField(a.ID, n, 1, fmt.Sprint("a", i))
		if n == 0 {
			f.Accepted, f.Reject = false, "Too dark"
		}
		if _, err := s.SaveField(ctx, f); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := s.CloseSample(ctx, a.ID, testRule); err != nil {
		t.Fatal(err)
	}
	b, _ := s.CreateSample(ctx, testProvenance)
	if _, err := s.SaveField(ctx, testField(b.ID, 2, 0, "b")); err != nil {
		t.Fatal(err)
	}
}

func fileHash(t *testing.T, p string) string {
	t.Helper()
	data, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	h := sha256.Sum256(data)
	return hex.EncodeToString(h[:])
}

func TestExport(t *testing.T) {
	ctx := context.Background()
	state := t.TempDir()
	w := openTestStore(t, state)
	fillStore(t, w)
	w.Close() // daemon stopped: the database is checkpointed into one file
	dbBefore := fileHash(t, filepath.Join(state, DBName))

	r, err := OpenReadOnly(ctx, state, Options{Clock: newFakeClock()})
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	usb := t.TempDir()
	sum, err := r.Export(ctx, usb, true)
	if err != nil {
		t.Fatal(err)
	}
	if sum.Samples != 2 || sum.Fields != 4 || sum.Cells != 9 || sum.Images != 4+9 || len(sum.MissingImages) != 0 {
		t.Errorf("summary %+v", sum)
	}
	if filepath.Base(sum.Dir) != "allscreen-export-20250601T093001Z" {
		t.Errorf("export folder %s", sum.Dir)
	}
	entries, _ := os.ReadDir(usb)
	if len(entries) != 1 {
		t.Errorf("USB holds %d entries, want only the export", len(entries))
	}
	if got := fileHash(t, filepath.Join(state, DBName)); got != dbBefore {
		t.Error("export modified the results database")
	}

	// Every file is listed in SHA256SUMS with its right hash.
	sums, err := os.ReadFile(filepath.Join(sum.Dir, "SHA256SUMS"))
	if err != nil {
		t.Fatal(err)
	}
	listed := 0
	for _, line := range strings.Split(strings.TrimSpace(string(sums)), "\n") {
		h, name, _ := strings.Cut(line, "  ")
		if got := fileHash(t, filepath.Join(sum.Dir, name)); got != h {
			t.Errorf("%s: hash %s, listed %s", name, got, h)
		}
		listed++
	}
	if listed != 13+5 { // images + 3 CSV + results.json + README.txt
		t.Errorf("%d files listed in SHA256SUMS", listed)
	}
	// Images are named by their content, as in the store.
	imgs, _ := filepath.Glob(filepath.Join(sum.Dir, "images", "*", "*"))
	for _, p := range imgs {
		if name := strings.TrimSuffix(filepath.Base(p), filepath.Ext(p)); fileHash(t, p) != name {
			t.Errorf("%s does not hold what its name says", p)
		}
	}

	readCSV := func(name string) [][]string {
		f, err := os.Open(filepath.Join(sum.Dir, name))
		if err != nil {
			t.Fatal(err)
		}
		defer f.Close()
		rows, err := csv.NewReader(f).ReadAll()
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		return rows
	}
	samples, fields, cells := readCSV("samples.csv"), readCSV("fields.csv"), readCSV("cells.csv")
	if len(samples) != 3 || len(fields) != 5 || len(cells) != 10 {
		t.Errorf("CSV rows (with header): samples %d, fields %d, cells %d", len(samples), len(fields), len(cells))
	}
	if samples[1][0] != SampleCode(1) || samples[1][6] != "7" || samples[1][11] != "ALL SUSPECTED - REFER" || samples[2][11] != "open" {
		t.Errorf("samples.csv: %q", samples)
	}
	// Each probability says which output it is (the labels of the model
	// that made it).
	if cells[0][12] != "probs (label=P)" || !strings.HasPrefix(cells[1][12], "normal=") || !strings.Contains(cells[1][12], ";blast=") {
		t.Errorf("cells.csv probs: %q %q", cells[0][12], cells[1][12])
	}
	if fields[2][7] != "0" || fields[2][8] != "Too dark" {
		t.Errorf("rejected field row %q", fields[2])
	}

	var js struct {
		Samples []struct {
			Code     string          `json:"code"`
			Fields   int             `json:"fields"`
			Verdict  string          `json:"verdict"`
			Rule     json.RawMessage `json:"rule"`
			Captures []struct {
				Cells []struct {
					PBlast float64   `json:"p_blast"`
					Probs  []float64 `json:"probs"`
					Image  string    `json:"image"`
				} `json:"cells"`
			} `json:"captures"`
		} `json:"samples"`
	}
	data, _ := os.ReadFile(filepath.Join(sum.Dir, "results.json"))
	if err := json.Unmarshal(data, &js); err != nil {
		t.Fatal(err)
	}
	if len(js.Samples) != 2 || js.Samples[0].Fields != 3 || len(js.Samples[0].Captures) != 3 || js.Samples[0].Rule == nil ||
		len(js.Samples[0].Captures[0].Cells) != 4 || js.Samples[0].Captures[0].Cells[0].PBlast != float64(float32(0.9)) {
		t.Errorf("results.json: %s", data[:min(len(data), 600)])
	}

	// A second export never overwrites the first.
	sum2, err := r.Export(ctx, usb, false)
	if err != nil || sum2.Dir == sum.Dir || sum2.Images != 0 {
		t.Errorf("second export: %+v %v", sum2, err)
	}
}

func TestExportWhileDaemonWrites(t *testing.T) {
	ctx := context.Background()
	state := t.TempDir()
	w := openTestStore(t, state)
	fillStore(t, w)
	r, err := OpenReadOnly(ctx, state, Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	sum, err := r.Export(ctx, t.TempDir(), true)
	if err != nil || sum.Fields != 4 {
		t.Fatalf("export beside an open writer: %+v %v", sum, err)
	}
	smp, _, _, _, _ := w.OpenSample(ctx)
	if _, err := w.SaveField(ctx, testField(smp.ID, 1, 0, "later")); err != nil {
		t.Fatalf("writer after export: %v", err)
	}
}

func TestExportListsMissingImages(t *testing.T) {
	ctx := context.Background()
	state := t.TempDir()
	w := openTestStore(t, state)
	fillStore(t, w)
	var ref ImageRef
	w.db.QueryRow(`SELECT crop_sha256, crop_format FROM cells LIMIT 1`).Scan(&ref.SHA256, &ref.Format)
	os.Remove(filepath.Join(state, ref.relPath()))
	sum, err := w.Export(ctx, t.TempDir(), true)
	if err != nil {
		t.Fatal(err)
	}
	if len(sum.MissingImages) != 1 || sum.Images != 12 {
		t.Errorf("summary %+v", sum)
	}
	readme, _ := os.ReadFile(filepath.Join(sum.Dir, "README.txt"))
	if !bytes.Contains(readme, []byte("1 images referenced by results were missing")) {
		t.Errorf("README: %s", readme)
	}
}

// TestExportToFullStick exports to a 2 MB tmpfs too small for the images:
// a clear error and nothing left on the stick.
func TestExportToFullStick(t *testing.T) {
	ctx := context.Background()
	state := t.TempDir()
	w := openTestStore(t, state)
	smp, _ := w.CreateSample(ctx, testProvenance)
	for i := range 10 {
		f := testField(smp.ID, 1, 0, fmt.Sprint(i))
		f.Image = bytes.Repeat([]byte(fmt.Sprint(i)), 300<<10)
		if _, err := w.SaveField(ctx, f); err != nil {
			t.Fatal(err)
		}
	}
	usb := filepath.Join(t.TempDir(), "usb")
	os.Mkdir(usb, 0o755)
	if out, err := exec.Command("mount", "-t", "tmpfs", "-o", "size=2m", "tmpfs", usb).CombinedOutput(); err != nil {
		t.Skipf("cannot mount a small tmpfs here (%v: %s)", err, out)
	}
	t.Cleanup(func() { exec.Command("umount", usb).Run() })
	_, err := w.Export(ctx, usb, true)
	if !errors.Is(err, ErrStorageFull) {
		t.Fatalf("export to a full stick: %v, want ErrStorageFull", err)
	}
	if entries, _ := os.ReadDir(usb); len(entries) != 0 {
		t.Errorf("a failed export left %d entries on the stick", len(entries))
	}
	sum, err := w.Export(ctx, usb, false)
	if err != nil || sum.Fields != 10 {
		t.Errorf("export without images: %+v %v", sum, err)
	}
}

// TestResearchModeInEveryRecord (issue 15 item 3): a sample made in
// research mode says so in the store, in samples.csv and fields.csv, in
// results.json and in the export's README; one made outside it does not.
func TestResearchModeInEveryRecord(t *testing.T) {
	ctx := context.Background()
	state := t.TempDir()
	s := openTestStore(t, state)
	for _, research := range []bool{false, true} {
		prov := testProvenance
		prov.Research = research
		smp, err := s.CreateSample(ctx, prov)
		if err != nil {
			t.Fatal(err)
		}
		f := testField(smp.ID, 2, 0, fmt.Sprint(research))
		f.Provenance = prov
		if _, err := s.SaveField(ctx, f); err != nil {
			t.Fatal(err)
		}
		if c, err := s.CloseSample(ctx, smp.ID, testRule); err != nil || c.Research != research {
			t.Fatalf("closed sample: research %v (%v), want %v", c.Research, err, research)
		}
	}
	list, err := s.Samples(ctx)
	if err != nil || len(list) != 2 || list[0].Research || !list[1].Research {
		t.Fatalf("samples: %+v %v", list, err)
	}
	sum, err := s.Export(ctx, t.TempDir(), false)
	if err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{"samples.csv", "fields.csv"} {
		f, err := os.Open(filepath.Join(sum.Dir, name))
		if err != nil {
			t.Fatal(err)
		}
		rows, err := csv.NewReader(f).ReadAll()
		f.Close()
		if err != nil || len(rows) != 3 {
			t.Fatalf("%s: %d rows, %v", name, len(rows), err)
		}
		col := slices.Index(rows[0], "research")
		if col < 0 || rows[1][col] != "0" || rows[2][col] != "1" {
			t.Errorf("%s: research column %d in %q", name, col, rows)
		}
	}
	js, err := os.ReadFile(filepath.Join(sum.Dir, "results.json"))
	if err != nil || !strings.Contains(string(js), `"research": true`) {
		t.Errorf("results.json does not mark the research sample (%v)", err)
	}
	readme, err := os.ReadFile(filepath.Join(sum.Dir, "README.txt"))
	if err != nil || !strings.Contains(string(readme), "RESEARCH: 1 sample(s)") {
		t.Errorf("README: %s (%v)", readme, err)
	}
}

// TestExportRefusesAlteredImages (issue 15 item 8): a stored image whose
// content no longer matches its name, one replaced by a symbolic link and
// one replaced by a FIFO are not exported (and the FIFO does not hang the
// export); each is listed with the reason. A partial folder a killed
// export left on the stick is cleaned by the next export.
func TestExportRefusesAlteredImages(t *testing.T) {
	ctx := context.Background()
	state := t.TempDir()
	s := openTestStore(t, state)
	fillStore(t, s)
	imgs, _ := filepath.Glob(filepath.Join(state, "images", "*", "*"))
	if len(imgs) < 3 {
		t.Fatalf("%d images stored", len(imgs))
	}
	slices.Sort(imgs)
	if err := os.WriteFile(imgs[0], []byte("altered"), 0o640); err != nil {
		t.Fatal(err)
	}
	secret := filepath.Join(t.TempDir(), "secret")
	os.WriteFile(secret, []byte("not an image"), 0o600)
	os.Remove(imgs[1])
	if err := os.Symlink(secret, imgs[1]); err != nil {
		t.Fatal(err)
	}
	os.Remove(imgs[2])
	if err := syscall.Mkfifo(imgs[2], 0o600); err != nil {
		t.Fatal(err)
	}
	usb := t.TempDir()
	stale := filepath.Join(usb, ".allscreen-export-20260101T000000Z.partial-123")
	os.MkdirAll(filepath.Join(stale, "images"), 0o755)

	done := make(chan struct{})
	var sum ExportSummary
	var err error
	go func() { sum, err = s.Export(ctx, usb, true); close(done) }()
	select {
	case <-done:
	case <-time.After(30 * time.Second):
		t.Fatal("export still running after 30 s (blocked on the FIFO?)")
	}
	if err != nil {
		t.Fatal(err)
	}
	reasons := strings.Join(sum.MissingImages, "\n")
	for _, want := range []string{"altered, not exported", "a symbolic link", "not a regular file"} {
		if !strings.Contains(reasons, want) {
			t.Errorf("missing images %q do not say %q", sum.MissingImages, want)
		}
	}
	for _, p := range imgs[:3] {
		rel, _ := filepath.Rel(state, p)
		if _, err := os.Lstat(filepath.Join(sum.Dir, rel)); err == nil {
			t.Errorf("%s was exported", rel)
		}
	}
	if b, _ := os.ReadFile(filepath.Join(sum.Dir, "SHA256SUMS")); bytes.Contains(b, []byte(filepath.Base(imgs[0]))) {
		t.Error("SHA256SUMS lists the altered image")
	}
	if _, err := os.Stat(stale); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("the stale partial folder is still there: %v", err)
	}
}
