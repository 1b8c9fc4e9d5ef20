package record

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"allscreen/screening"
	"allscreen/screening/screeningtest"
)

func TestCheckTarget(t *testing.T) {
	_, state := openStore(t)
	file := filepath.Join(t.TempDir(), "f")
	os.WriteFile(file, nil, 0o644)
	for _, target := range []string{t.TempDir(), filepath.Join(t.TempDir(), "missing"), file} {
		if err := CheckTarget(target, state); !errors.Is(err, screening.ErrNoStick) {
			t.Errorf("%s: %v", target, err)
		}
	}
	// Another filesystem (a tmpfs standing in for the stick) is accepted.
	other := otherFilesystem(t, state)
	if err := CheckTarget(other, state); err != nil {
		t.Errorf("another filesystem: %v", err)
	}
}

// otherFilesystem is a folder on a filesystem other than dir's, or skips.
func otherFilesystem(t *testing.T, dir string) string {
	var a, b syscall.Stat_t
	if syscall.Stat("/dev/shm", &a) != nil || syscall.Stat(dir, &b) != nil || a.Dev == b.Dev {
		t.Skip("no second filesystem (/dev/shm) to stand in for a USB stick")
	}
	d, err := os.MkdirTemp("/dev/shm", "allscreen-stick-")
	if err != nil {
		t.Skip(err)
	}
	t.Cleanup(func() { os.RemoveAll(d) })
	return d
}

// TestExportSigned: only signed samples are exported, each as a PDF and a
// FHIR bundle, with checksums that verify, and no partial folder is left.
func TestExportSigned(t *testing.T) {
	ctx := context.Background()
	s, _ := openStore(t)
	signed := screeningtest.ImageSample(t, s, prov, blastP)
	unsigned := screeningtest.ImageSample(t, s, prov, blastP)
	if _, err := s.Sign(ctx, signed.Code, "dr"); err != nil {
		t.Fatal(err)
	}
	target := t.TempDir()
	sum, err := ExportSigned(ctx, s, target, Options{Now: time.Date(2026, 3, 2, 10, 0, 0, 0, time.UTC)})
	if err != nil || sum.Reports != 1 {
		t.Fatalf("export: %+v %v", sum, err)
	}
	entries, _ := os.ReadDir(target)
	if len(entries) != 1 || entries[0].Name() != "allscreen-reports-20260302T100000Z" {
		t.Fatalf("target holds %v", entries)
	}
	sums, err := os.ReadFile(filepath.Join(sum.Dir, "SHA256SUMS"))
	if err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimSpace(string(sums)), "\n")
	if len(lines) != 2 || !strings.Contains(string(sums), signed.Code+"-v1.pdf") || !strings.Contains(string(sums), signed.Code+"-v1.fhir.json") ||
		strings.Contains(string(sums), unsigned.Code) {
		t.Fatalf("SHA256SUMS:\n%s", sums)
	}
	for _, l := range lines {
		want, name, _ := strings.Cut(l, "  ")
		b, err := os.ReadFile(filepath.Join(sum.Dir, name))
		h := sha256.Sum256(b)
		if err != nil || hex.EncodeToString(h[:]) != want {
			t.Errorf("%s does not match its checksum (%v)", name, err)
		}
	}
	b, _ := os.ReadFile(filepath.Join(sum.Dir, signed.Code+"-v1.fhir.json"))
	if err := validateFHIR(t, b); err != nil {
		t.Errorf("exported bundle: %v", err)
	}
}

// TestExportSignedLockAndStalePartial: a report export waits for no other
// export on its target (it is refused while one holds the lock), and
// removes the hidden partial folder a killed export left there.
func TestExportSignedLockAndStalePartial(t *testing.T) {
	ctx := context.Background()
	s, _ := openStore(t)
	signed := screeningtest.ImageSample(t, s, prov, blastP)
	if _, err := s.Sign(ctx, signed.Code, "dr"); err != nil {
		t.Fatal(err)
	}
	target := t.TempDir()
	stale := filepath.Join(target, ".allscreen-reports-20260101T000000Z.partial-42")
	if err := os.MkdirAll(stale, 0o755); err != nil {
		t.Fatal(err)
	}
	os.WriteFile(filepath.Join(stale, "X-v1.pdf"), []byte("half"), 0o644)
	opt := Options{Now: time.Date(2026, 3, 2, 10, 0, 0, 0, time.UTC)}

	unlock, err := screening.LockExportTarget(target)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := ExportSigned(ctx, s, target, opt); err == nil || !strings.Contains(err.Error(), "another export") {
		t.Errorf("export while another holds the target: %v, want a refusal", err)
	}
	unlock()
	sum, err := ExportSigned(ctx, s, target, opt)
	if err != nil || sum.Reports != 1 {
		t.Fatalf("export: %+v %v", sum, err)
	}
	entries, _ := os.ReadDir(target)
	if len(entries) != 1 || entries[0].Name() != filepath.Base(sum.Dir) {
		t.Errorf("target holds %v, want only %s (the stale partial folder removed)", entries, filepath.Base(sum.Dir))
	}
}
