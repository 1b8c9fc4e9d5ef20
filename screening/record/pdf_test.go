package record

import (
	"bytes"
	"context"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"allscreen/screening"
	"allscreen/screening/screeningtest"
)

var prov = screening.Provenance{ModelSHA256: "0f3c9a1e77d2", ConfigSHA256: "c", SoftwareVersion: "test", DeviceID: "10000000a3b2c1d0"}

// blasts: the four C-NMC blast images of screeningtest.Cells are called blast.
func blastP(i int) float32 {
	switch screeningtest.Cells[i][:5] {
	case "blast":
		return 0.9
	}
	return 0.1
}

func openStore(t *testing.T) (*screening.Store, string) {
	dir := t.TempDir()
	s, err := screening.Open(context.Background(), dir, screening.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s, dir
}

// poppler reads a PDF as a person's viewer would: its text, and its
// images' count.
func poppler(t *testing.T, pdf []byte) (text string, images int) {
	if _, err := exec.LookPath("pdftotext"); err != nil {
		if os.Getenv("ALLSCREEN_REQUIRE_BROWSER") != "" {
			t.Fatal("pdftotext (poppler-utils) is required")
		}
		t.Skip("poppler-utils not installed")
	}
	path := filepath.Join(t.TempDir(), "r.pdf")
	os.WriteFile(path, pdf, 0o644)
	out, err := exec.Command("pdftotext", "-layout", path, "-").Output()
	if err != nil {
		t.Fatalf("pdftotext: %v", err)
	}
	list, err := exec.Command("pdfimages", "-list", path).Output()
	if err != nil {
		t.Fatalf("pdfimages: %v", err)
	}
	lines := strings.Split(strings.TrimSpace(string(list)), "\n")
	return string(out), len(lines) - 2 // two header lines
}

// TestReportOfAReferredSampleShowsItsBlasts: an unsigned report says DRAFT,
// names specimen, device and model, and shows every cell called blast.
func TestReportOfAReferredSampleShowsItsBlasts(t *testing.T) {
	ctx := context.Background()
	s, _ := openStore(t)
	if err := s.EnterNextSpecimen(ctx, "LAB-0042", "Tech A", "tech"); err != nil {
		t.Fatal(err)
	}
	d := screeningtest.ImageSample(t, s, prov, blastP)
	if d.Outcome != screening.Refer || d.Tally.Blasts != 4 {
		t.Fatalf("fixture: %s with %d blasts", d.Outcome, d.Tally.Blasts)
	}
	var b bytes.Buffer
	if err := WritePDF(&b, d, s.ReadImage, Options{Now: time.Date(2026, 3, 2, 10, 0, 0, 0, time.UTC)}); err != nil {
		t.Fatal(err)
	}
	text, images := poppler(t, b.Bytes())
	for _, want := range []string{"DRAFT, NOT SIGNED", "LAB-0042", "Tech A", "10000000a3b2c1d0", "0f3c9a1e77d2",
		"ALL SUSPECTED - REFER", "Not reviewed", "Cells called blast (4)", "device: blast", "Intended use"} {
		if !strings.Contains(text, want) {
			t.Errorf("report lacks %q:\n%s", want, text)
		}
	}
	if images != 4 {
		t.Errorf("%d images in the report, want the 4 blast cells", images)
	}
}

func TestReportOfAnOpenSampleIsRefused(t *testing.T) {
	ctx := context.Background()
	s, _ := openStore(t)
	smp, _ := s.CreateSample(ctx, prov)
	d, _ := s.SampleDetail(ctx, smp.Code)
	if err := WritePDF(&bytes.Buffer{}, d, s.ReadImage, Options{}); !errors.Is(err, screening.ErrSampleOpen) {
		t.Errorf("open sample: %v", err)
	}
}

// TestReportSaysWhenAnImageIsMissing: a crop lost from the card leaves a
// marked gap, not a failed report.
func TestReportSaysWhenAnImageIsMissing(t *testing.T) {
	s, dir := openStore(t)
	d := screeningtest.ImageSample(t, s, prov, blastP)
	var blast screening.CellDetail
	for _, c := range d.Cells() {
		if c.CalledBlast {
			blast = c
		}
	}
	os.Remove(filepath.Join(dir, "images", blast.Crop.SHA256[:2], blast.Crop.SHA256+"."+blast.Crop.Format))
	var b bytes.Buffer
	if err := WritePDF(&b, d, s.ReadImage, Options{}); err != nil {
		t.Fatal(err)
	}
	if text, images := poppler(t, b.Bytes()); !strings.Contains(text, "image missing") || images != 3 {
		t.Errorf("%d images, text:\n%s", images, text)
	}
}
