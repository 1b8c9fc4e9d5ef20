package main

import (
	"bytes"
	"context"
	"encoding/json"
	"image"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"allscreen/model"
	"allscreen/screening"
)

// storeWithResults makes a state directory holding one closed and one open
// sample.
func storeWithResults(t *testing.T) string {
	t.Helper()
	ctx := context.Background()
	dir := t.TempDir()
	s, err := screening.Open(ctx, dir, screening.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	rule := screening.Rule{BlastThreshold: 0.5, CellFalsePositiveRate: 0.01, ReferAlpha: 0.01, ReferBlasts: 2,
		MinWhiteCells: 3, MaxUncertainFraction: 0.25, MaxOutOfDistributionFraction: 0.1}
	prov := screening.Provenance{ModelSHA256: "m", ConfigSHA256: "c", SoftwareVersion: "test"}
	field := func(id int64, tag string, cells int) *screening.FieldRecord {
		f := &screening.FieldRecord{SampleID: id, Width: 100, Height: 100, Image: []byte("frame" + tag), ImageFormat: "jpg",
			Accepted: true, Provenance: prov}
		for i := range cells {
			p := model.Prediction{Blast: 0.1, Probs: []float32{0.9, 0.1}}
			f.Cells = append(f.Cells, screening.CellRecord{Box: image.Rect(i, i, i+5, i+5), Crop: image.Rect(i, i, i+8, i+8),
				CropImage: []byte(tag + string(rune('a'+i))), CropFormat: "png", Prediction: p, Call: rule.CallCell(p)})
		}
		return f
	}
	a, _ := s.CreateSample(ctx, prov)
	if _, err := s.SaveField(ctx, field(a.ID, "a", 4)); err != nil {
		t.Fatal(err)
	}
	if _, err := s.CloseSample(ctx, a.ID, rule); err != nil {
		t.Fatal(err)
	}
	b, _ := s.CreateSample(ctx, prov)
	if _, err := s.SaveField(ctx, field(b.ID, "b", 2)); err != nil {
		t.Fatal(err)
	}
	return dir
}

func TestResultsTable(t *testing.T) {
	dir := storeWithResults(t)
	s, err := screening.OpenExisting(context.Background(), dir, screening.Options{})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.Sign(context.Background(), screening.SampleCode(1), "dr"); err != nil {
		t.Fatal(err)
	}
	s.Close()
	var out, notes bytes.Buffer
	if err := listResults(context.Background(), &out, &notes, dir, false); err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimSpace(out.String()), "\n")
	if len(lines) != 3 || !strings.HasPrefix(lines[0], "SAMPLE") ||
		!strings.Contains(lines[1], screening.SampleCode(1)) || !strings.Contains(lines[1], "NO BLASTS SEEN in 4 white cells") ||
		!strings.HasSuffix(lines[1], "signed: NO BLASTS SEEN in 4 white cells") ||
		!strings.Contains(lines[2], screening.SampleCode(2)) || !strings.HasSuffix(strings.Join(strings.Fields(lines[2]), " "), "open -") {
		t.Errorf("table:\n%s", out.String())
	}
}

func TestResultsJSON(t *testing.T) {
	dir := storeWithResults(t)
	var out, notes bytes.Buffer
	if err := listResults(context.Background(), &out, &notes, dir, true); err != nil {
		t.Fatal(err)
	}
	var got []screening.SampleSummary
	if err := json.Unmarshal(out.Bytes(), &got); err != nil {
		t.Fatalf("%v: %s", err, out.String())
	}
	if len(got) != 2 || got[0].Outcome != screening.NoBlastsSeen || got[0].Tally.WhiteCells != 4 || got[1].ClosedAt != nil {
		t.Errorf("%+v", got)
	}
}

func TestResultsWithoutStore(t *testing.T) {
	if code := run([]string{"results", "--state", t.TempDir()}); code != 1 {
		t.Errorf("exit %d, want 1", code)
	}
}

func TestExportCommand(t *testing.T) {
	dir := storeWithResults(t)
	usb := t.TempDir()
	// A folder on the results' own disk is not a USB stick (issue 13); a
	// missing stick is not a folder to create.
	for _, target := range []string{usb, filepath.Join(usb, "not-mounted")} {
		if code := run([]string{"export", "--state", dir, "--out", target}); code != 1 {
			t.Errorf("export to %s on the same disk: exit %d, want 1", target, code)
		}
	}
	if _, err := os.Stat(filepath.Join(usb, "not-mounted")); err == nil {
		t.Error("export created the missing target")
	}
	if code := run([]string{"export", "--state", dir, "--out", usb, "--same-disk"}); code != 0 {
		t.Fatalf("exit %d", code)
	}
	got, _ := filepath.Glob(filepath.Join(usb, "allscreen-export-*", "samples.csv"))
	if len(got) != 1 {
		t.Fatalf("export folders: %v", got)
	}
	data, _ := os.ReadFile(got[0])
	if !strings.Contains(string(data), screening.SampleCode(2)) {
		t.Errorf("samples.csv: %s", data)
	}
	if code := run([]string{"export", "--state", dir}); code != 2 {
		t.Errorf("export without --out: exit %d, want 2 (usage)", code)
	}
}

// --jobs belongs to --experiment: with --model it is refused rather than
// silently ignored. The same command without it succeeds.
func TestEvalJobsOnlyWithExperiment(t *testing.T) {
	dir := t.TempDir()
	for _, label := range []string{"blast", "normal"} {
		src, _ := filepath.Glob(filepath.Join("..", "..", "samples", label+"_*"))
		if len(src) == 0 {
			t.Fatalf("no %s sample", label)
		}
		raw, err := os.ReadFile(src[0])
		if err != nil {
			t.Fatal(err)
		}
		if err := os.MkdirAll(filepath.Join(dir, label), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir, label, filepath.Base(src[0])), raw, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	args := []string{"eval", "--model", "../../model/shipped/detect.json", "--data", dir, "--json"}
	if code, out := runCaptured(t, args...); code != 0 {
		t.Fatalf("eval --model: exit %d\n%s", code, out)
	}
	if code, _ := runCaptured(t, append(args, "--jobs", "2")...); code != 1 {
		t.Fatalf("eval --model --jobs 2: exit %d, want 1", code)
	}
	// An unreadable image is named and makes the exit status 1, in text
	// and in JSON mode; the readable ones are still measured.
	bad := filepath.Join(dir, "normal", "cut-short.png")
	if err := os.WriteFile(bad, []byte("\x89PNG\r\n\x1a\n not really"), 0o644); err != nil {
		t.Fatal(err)
	}
	for _, mode := range [][]string{nil, {"--json"}} {
		a := append([]string{"eval", "--model", "../../model/shipped/detect.json", "--data", dir}, mode...)
		code, _, out := runCapturedAll(t, a...)
		if code != 1 || !bytes.Contains(out, []byte("cut-short.png")) || !bytes.Contains(out, []byte("1 image(s) could not be read")) {
			t.Errorf("eval %v with an unreadable image: exit %d, want 1 and the file named on stderr\n%s", mode, code, out)
		}
	}
}

func TestPruneCommand(t *testing.T) {
	dir := storeWithResults(t)
	for _, bad := range [][]string{{"prune", "--state", dir}, {"prune", "--state", dir, "--before", "yesterday"}} {
		if code := run(bad); code != 2 {
			t.Errorf("%q: exit %d, want 2 (usage)", bad, code)
		}
	}
	// Nothing is signed: nothing goes, even with a date in the future.
	if code := run([]string{"prune", "--state", dir, "--before", "2999-01-01", "--by", "test"}); code != 0 {
		t.Fatalf("exit %d", code)
	}
	list, _ := os.ReadDir(filepath.Join(dir, "images"))
	if len(list) == 0 {
		t.Error("prune removed images of unsigned samples")
	}
}

// TestModelCommand: keygen, bundle, install (refused without a trusted
// key), status and rollback as a person runs them.
func TestModelCommand(t *testing.T) {
	dir := t.TempDir()
	prefix := filepath.Join(dir, "lab")
	bundle := filepath.Join(dir, "detect.bundle")
	models := filepath.Join(dir, "models")
	empty := filepath.Join(dir, "no-keys")
	os.WriteFile(empty, []byte("# no keys yet\n"), 0o644)
	steps := []struct {
		args []string
		code int
	}{
		{[]string{"model", "keygen", prefix}, 0},
		{[]string{"model", "bundle", "--key", prefix + ".key", "--manifest", "../../model/shipped/detect.json", "--out", bundle}, 0},
		{[]string{"model", "install", bundle, "--trusted", empty, "--models", models}, 1},
		{[]string{"model", "install", bundle, "--trusted", prefix + ".pub", "--models", models}, 0},
		{[]string{"model", "status", "--models", models}, 0},
		{[]string{"model", "rollback", "--models", models}, 1}, // nothing before it
		{[]string{"model", "install"}, 2},
	}
	for _, s := range steps {
		if code := run(s.args); code != s.code {
			t.Fatalf("%q: exit %d, want %d", s.args, code, s.code)
		}
	}
	if _, err := os.Stat(filepath.Join(models, "current", "detect.json")); err != nil {
		t.Errorf("no current model: %v", err)
	}
}
