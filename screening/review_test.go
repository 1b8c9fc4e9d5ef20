package screening

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"golang.org/x/crypto/bcrypt"
)

func init() { hashCost = bcrypt.MinCost }

// closedSample stores a closed sample of fields with the given cells and
// blasts each, and returns its detail.
func closedSample(t *testing.T, s *Store, tag string, cells ...[2]int) SampleDetail {
	t.Helper()
	ctx := context.Background()
	smp, err := s.CreateSample(ctx, testProvenance)
	if err != nil {
		t.Fatal(err)
	}
	for i, c := range cells {
		if _, err := s.SaveField(ctx, testField(smp.ID, c[0], c[1], tag+string(rune('a'+i)))); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := s.CloseSample(ctx, smp.ID, testRule); err != nil {
		t.Fatal(err)
	}
	d, err := s.SampleDetail(ctx, smp.Code)
	if err != nil {
		t.Fatal(err)
	}
	return d
}

// TestReviewedVerdictWithoutCallsIsTheDevices: recomputing by the same rule
// from the stored cells gives back the device's verdict, for every kind.
func TestReviewedVerdictWithoutCallsIsTheDevices(t *testing.T) {
	ctx := context.Background()
	s := openTestStore(t, t.TempDir())
	for name, cells := range map[string][][2]int{
		"refer":        {{8, 3}, {6, 1}},
		"no-blasts":    {{8, 0}, {6, 0}},
		"one-blast":    {{8, 1}, {6, 0}},
		"few-cells":    {{3, 0}},
		"no-cells":     {{0, 0}},
		"reject-field": {{12, 0}},
	} {
		d := closedSample(t, s, name, cells...)
		v, err := d.ReviewedVerdict(nil)
		if err != nil || string(v.Outcome) != string(d.Outcome) || v.Headline() != d.Verdict || !reflect.DeepEqual(v.Reasons, d.Reasons) {
			t.Errorf("%s: recomputed %+v (%v), device %s %q %q", name, v, err, d.Outcome, d.Verdict, d.Reasons)
		}
	}
	// An incomplete sample stays incomplete.
	smp, _ := s.CreateSample(ctx, testProvenance)
	s.SaveField(ctx, testField(smp.ID, 12, 0, "inc"))
	if _, err := s.CloseIncomplete(ctx, smp.ID, testRule, "closed at power-on"); err != nil {
		t.Fatal(err)
	}
	d, _ := s.SampleDetail(ctx, smp.Code)
	if v, _ := d.ReviewedVerdict(nil); v.Headline() != "INCOMPLETE - REVIEW" || v.Reasons[0] != d.Reasons[0] {
		t.Errorf("incomplete recomputed as %q %q", v.Headline(), v.Reasons)
	}
}

// TestReviewWorkflow: reclassify, sign, refuse changes to a signed
// version (in code and in the database itself), amend with a reason, and
// keep every step in the audit trail.
func TestReviewWorkflow(t *testing.T) {
	ctx := context.Background()
	s := openTestStore(t, t.TempDir())
	// 14 cells, one called blast: the device says inconclusive.
	d := closedSample(t, s, "w", [2]int{8, 1}, [2]int{6, 0})
	if d.Outcome != Inconclusive || d.Current() != nil {
		t.Fatalf("device verdict %s, review %+v", d.Outcome, d.Current())
	}
	var blast CellDetail
	for _, c := range d.Cells() {
		if c.CalledBlast {
			blast = c
		}
	}
	if err := s.SetCall(ctx, d.Code, blast.ID, CallNotBlast, "dr.a"); err != nil {
		t.Fatal(err)
	}
	d, _ = s.SampleDetail(ctx, d.Code)
	cur := d.Current()
	if cur == nil || cur.Version != 1 || cur.Signed() || cur.Calls[blast.ID] != CallNotBlast {
		t.Fatalf("after reclassifying: %+v", cur)
	}
	v, _ := d.ReviewedVerdict(cur.Calls)
	if v.Outcome != NoBlastsSeen || v.Tally.Confident() != 14 {
		t.Errorf("reviewed verdict %+v, want no blasts seen in 14", v)
	}
	// Take it back, then make it again: the trail keeps both.
	if err := s.SetCall(ctx, d.Code, blast.ID, DeviceCall, "dr.a"); err != nil {
		t.Fatal(err)
	}
	if err := s.SetCall(ctx, d.Code, blast.ID, CallNotBlast, "dr.a"); err != nil {
		t.Fatal(err)
	}
	signed, err := s.Sign(ctx, d.Code, "dr.a")
	if err != nil || signed.Outcome != NoBlastsSeen {
		t.Fatalf("sign: %+v %v", signed, err)
	}
	if err := s.SetCall(ctx, d.Code, blast.ID, CallBlast, "dr.a"); !errors.Is(err, ErrSigned) {
		t.Errorf("reclassified a signed result: %v", err)
	}
	if _, err := s.Sign(ctx, d.Code, "dr.b"); !errors.Is(err, ErrSigned) {
		t.Errorf("signed twice: %v", err)
	}
	// The database refuses too, whoever writes to it.
	for _, q := range []string{
		`UPDATE reviews SET verdict = 'refer'`,
		`DELETE FROM reviews`,
		`UPDATE cell_calls SET call = 'blast'`,
		`DELETE FROM cell_calls`,
		`INSERT INTO cell_calls (review_id, cell_id, call) SELECT id, 1, 'blast' FROM reviews`,
		`UPDATE audit SET user = 'nobody'`,
		`DELETE FROM audit`,
	} {
		if _, err := s.db.ExecContext(ctx, q); err == nil || !strings.Contains(err.Error(), "immutable") && !strings.Contains(err.Error(), "append-only") {
			t.Errorf("%s: %v", q, err)
		}
	}
	if err := s.Amend(ctx, d.Code, "dr.b", "  "); err == nil {
		t.Error("amended without a reason")
	}
	if err := s.Amend(ctx, d.Code, "dr.b", "second look: cell is a blast"); err != nil {
		t.Fatal(err)
	}
	if err := s.Amend(ctx, d.Code, "dr.b", "again"); !errors.Is(err, ErrNotSigned) {
		t.Errorf("amended a draft: %v", err)
	}
	if err := s.SetCall(ctx, d.Code, blast.ID, CallBlast, "dr.b"); err != nil {
		t.Fatal(err)
	}
	d, _ = s.SampleDetail(ctx, d.Code)
	if len(d.Versions) != 2 || !d.Versions[0].Signed() || d.Versions[0].Verdict.Outcome != NoBlastsSeen ||
		d.Versions[0].Calls[blast.ID] != CallNotBlast || d.Versions[1].Calls[blast.ID] != CallBlast ||
		d.Versions[1].AmendReason != "second look: cell is a blast" {
		t.Fatalf("versions %+v", d.Versions)
	}
	var trail []string
	for _, e := range d.Audit {
		trail = append(trail, e.User+" "+e.Action+" "+e.Before+" -> "+e.After)
	}
	want := []string{
		"dr.a reclassify device: blast -> not-blast",
		"dr.a reclassify not-blast -> device: blast",
		"dr.a reclassify device: blast -> not-blast",
		"dr.a sign INCONCLUSIVE - REVIEW -> NO BLASTS SEEN in 14 white cells",
		"dr.b amend version 1 (signed) -> version 2 (draft)",
		"dr.b reclassify not-blast -> blast",
	}
	if !reflect.DeepEqual(trail, want) {
		t.Errorf("audit trail\n%s\nwant\n%s", strings.Join(trail, "\n"), strings.Join(want, "\n"))
	}
	states, err := s.ReviewStates(ctx)
	if st := states[d.ID]; err != nil || st.Version != 2 || st.Signed {
		t.Errorf("review state %+v %v", st, err)
	}
}

func TestReviewRefusals(t *testing.T) {
	ctx := context.Background()
	s := openTestStore(t, t.TempDir())
	a := closedSample(t, s, "a", [2]int{3, 0})
	b := closedSample(t, s, "b", [2]int{3, 0})
	if err := s.SetCall(ctx, a.Code, b.Fields[0].Cells[0].ID, CallBlast, "x"); !errors.Is(err, ErrNoCell) {
		t.Errorf("another sample's cell: %v", err)
	}
	if err := s.SetCall(ctx, "HNOPE", 1, CallBlast, "x"); !errors.Is(err, ErrNoSample) {
		t.Errorf("unknown sample: %v", err)
	}
	open, _ := s.CreateSample(ctx, testProvenance)
	s.SaveField(ctx, testField(open.ID, 2, 0, "open"))
	d, _ := s.SampleDetail(ctx, open.Code)
	if err := s.SetCall(ctx, open.Code, d.Fields[0].Cells[0].ID, CallBlast, "x"); !errors.Is(err, ErrSampleOpen) {
		t.Errorf("open sample: %v", err)
	}
	if _, err := s.Sign(ctx, open.Code, "x"); !errors.Is(err, ErrSampleOpen) {
		t.Errorf("signed an open sample: %v", err)
	}
	if _, err := ParseCall("maybe"); err == nil {
		t.Error("ParseCall took maybe")
	}
}

func TestUsers(t *testing.T) {
	ctx := context.Background()
	s := openTestStore(t, t.TempDir())
	rev, err := s.AddUser(ctx, "Dr Amina", RoleReviewer, "correct horse battery", "4821")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.AddUser(ctx, "dr amina", RoleTechnician, "another password", ""); err == nil {
		t.Error("a name taken in other case was accepted")
	}
	for _, bad := range []struct {
		name, pw, pin string
		role          Role
	}{
		{"tech", "short", "", RoleTechnician},
		{"tech", "long enough password", "1234", RoleTechnician},
		{"rev", "long enough password", "", RoleReviewer},
		{"rev", "long enough password", "12a4", RoleReviewer},
		{" rev", "long enough password", "1234", RoleReviewer},
		{"re\nv", "long enough password", "1234", RoleReviewer},
	} {
		if _, err := s.AddUser(ctx, bad.name, bad.role, bad.pw, bad.pin); err == nil {
			t.Errorf("accepted %+v", bad)
		}
	}
	if u, err := s.Authenticate(ctx, "Dr Amina", "correct horse battery"); err != nil || u.ID != rev.ID || u.Role != RoleReviewer {
		t.Errorf("login: %+v %v", u, err)
	}
	for _, c := range [][2]string{{"Dr Amina", "wrong horse battery"}, {"nobody", "correct horse battery"}, {"", ""}} {
		if _, err := s.Authenticate(ctx, c[0], c[1]); !errors.Is(err, ErrBadLogin) {
			t.Errorf("login %q: %v", c, err)
		}
	}
	if err := s.CheckPIN(ctx, rev.ID, "4821"); err != nil {
		t.Error(err)
	}
	if err := s.CheckPIN(ctx, rev.ID, "4822"); !errors.Is(err, ErrBadPIN) {
		t.Errorf("wrong PIN: %v", err)
	}
	var hash string
	s.db.QueryRowContext(ctx, `SELECT password_hash FROM users`).Scan(&hash)
	if !strings.HasPrefix(hash, "$2a$") || strings.Contains(hash, "horse") {
		t.Errorf("password stored as %q", hash)
	}
}

func TestOpenImageRefusesWhatIsNotAStoredImage(t *testing.T) {
	dir := t.TempDir()
	s := openTestStore(t, dir)
	d := closedSample(t, s, "img", [2]int{1, 0})
	f, err := s.OpenImage(d.Fields[0].Image)
	if err != nil {
		t.Fatal(err)
	}
	f.Close()
	for _, name := range []string{"../results.db", "abc.png", strings.Repeat("A", 64) + ".png", d.Fields[0].Image.SHA256 + ".gif"} {
		if _, ok := ParseImageRef(name); ok {
			t.Errorf("ParseImageRef(%q) accepted", name)
		}
	}
	// A symlink in the image tree is not served.
	ref := d.Fields[0].Cells[0].Crop
	p := filepath.Join(dir, ref.relPath())
	os.Remove(p)
	os.Symlink(filepath.Join(dir, DBName), p)
	if f, err := s.OpenImage(ref); err == nil {
		f.Close()
		t.Error("served a symlink")
	}
}

func TestOpenExistingNeverCreates(t *testing.T) {
	dir := t.TempDir()
	if _, err := OpenExisting(context.Background(), dir, Options{}); !errors.Is(err, ErrNoStore) {
		t.Errorf("empty directory: %v", err)
	}
	if _, err := os.Stat(filepath.Join(dir, DBName)); err == nil {
		t.Error("OpenExisting created a database")
	}
}

// TestSpecimenEnteredBeforeTheSampleIsTaken: an entry waits for the next
// sample only, never past PendingSpecimenMaxAge, and a later correction is
// audited and refused once signed.
func TestSpecimenEnteredBeforeTheSampleIsTaken(t *testing.T) {
	ctx := context.Background()
	clk := newFakeClock()
	s, err := Open(ctx, t.TempDir(), Options{Clock: clk})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if err := s.EnterNextSpecimen(ctx, "", "Tech", "tech"); !errors.Is(err, ErrBadSpecimen) {
		t.Errorf("empty specimen: %v", err)
	}
	if err := s.EnterNextSpecimen(ctx, "LAB-0001", "Tech A", "tech"); err != nil {
		t.Fatal(err)
	}
	if err := s.EnterNextSpecimen(ctx, "LAB-0002", "Tech A", "tech"); err != nil { // a correction replaces it
		t.Fatal(err)
	}
	if sp, _, _, ok, _ := s.PendingSpecimen(ctx); !ok || sp != "LAB-0002" {
		t.Errorf("pending %q %v", sp, ok)
	}
	a, err := s.CreateSample(ctx, Provenance{DeviceID: "d1"})
	if err != nil || a.SpecimenID != "LAB-0002" || a.Operator != "Tech A" {
		t.Fatalf("first sample %+v %v", a, err)
	}
	b, _ := s.CreateSample(ctx, testProvenance)
	if b.SpecimenID != "" {
		t.Errorf("the entry was taken twice: %+v", b)
	}
	s.EnterNextSpecimen(ctx, "LAB-0003", "Tech A", "tech")
	clk.mu.Lock()
	clk.t = clk.t.Add(PendingSpecimenMaxAge + time.Minute)
	clk.mu.Unlock()
	c, _ := s.CreateSample(ctx, testProvenance)
	if c.SpecimenID != "" {
		t.Errorf("a stale entry was taken: %+v", c)
	}
	list, _ := s.Samples(ctx)
	if list[0].SpecimenID != "LAB-0002" || list[0].DeviceID != "d1" || list[1].SpecimenID != "" {
		t.Errorf("stored: %+v", list)
	}
	// Set afterwards, then refused once signed.
	s.SaveField(ctx, testField(c.ID, 3, 0, "c"))
	s.CloseSample(ctx, c.ID, testRule)
	if err := s.SetSpecimen(ctx, c.Code, "LAB-0003", "Tech B", "dr"); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Sign(ctx, c.Code, "dr"); err != nil {
		t.Fatal(err)
	}
	if err := s.SetSpecimen(ctx, c.Code, "LAB-9999", "Tech B", "dr"); !errors.Is(err, ErrSigned) {
		t.Errorf("changed a signed sample's specimen: %v", err)
	}
	d, _ := s.SampleDetail(ctx, c.Code)
	if d.SpecimenID != "LAB-0003" || d.Audit[0].Action != "set-specimen" || d.Audit[0].After != "LAB-0003 by Tech B" {
		t.Errorf("detail %+v audit %+v", d.SampleSummary, d.Audit)
	}
}

func TestDeviceID(t *testing.T) {
	dir := t.TempDir()
	serial := filepath.Join(dir, "serial")
	machine := filepath.Join(dir, "machine-id")
	os.WriteFile(serial, []byte("10000000a3b2c1d0\x00"), 0o644)
	os.WriteFile(machine, []byte("0123456789abcdef0123456789abcdef\n"), 0o644)
	if id := deviceIDFrom([]string{serial, machine}); id != "10000000a3b2c1d0" {
		t.Errorf("serial: %q", id)
	}
	if id := deviceIDFrom([]string{filepath.Join(dir, "none"), machine}); id != "123456789abcdef0" {
		t.Errorf("machine id: %q", id)
	}
	os.WriteFile(serial, []byte("<script>"), 0o644)
	if id := deviceIDFrom([]string{serial}); id != "unknown" {
		t.Errorf("junk: %q", id)
	}
}

// TestClockStateKeptWithEachSample (issue 13, and issue 15's clock): each
// sample records whether the clock was known to be set as it started.
func TestClockStateKeptWithEachSample(t *testing.T) {
	ctx := context.Background()
	synced := false
	s, err := Open(ctx, t.TempDir(), Options{ClockSynchronized: func() bool { return synced }})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	s.CreateSample(ctx, testProvenance)
	synced = true
	s.CreateSample(ctx, testProvenance)
	list, _ := s.Samples(ctx)
	if list[0].ClockSynchronized == nil || *list[0].ClockSynchronized || list[1].ClockSynchronized == nil || !*list[1].ClockSynchronized {
		t.Errorf("clock states %v %v", list[0].ClockSynchronized, list[1].ClockSynchronized)
	}
	plain := openTestStore(t, t.TempDir())
	plain.CreateSample(ctx, testProvenance)
	if l, _ := plain.Samples(ctx); l[0].ClockSynchronized != nil {
		t.Error("a store without the question recorded an answer")
	}
}

// FuzzParseImageRef: a name from a URL is accepted only as a stored
// image's, whose path stays inside images/.
func FuzzParseImageRef(f *testing.F) {
	for _, s := range []string{"../results.db", strings.Repeat("a", 64) + ".png", strings.Repeat("a", 64) + ".jpg/..", "", ".", "%2e%2e"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, name string) {
		ref, ok := ParseImageRef(name)
		if !ok {
			return
		}
		p := ref.relPath()
		if ref.SHA256+"."+ref.Format != name || strings.Contains(p, "..") || !strings.HasPrefix(p, "images/") ||
			filepath.Clean(p) != p {
			t.Errorf("%q accepted as %q", name, p)
		}
	})
}

// FuzzParseCall: only the four calls are accepted.
func FuzzParseCall(f *testing.F) {
	for _, s := range []string{"blast", "not-blast", "unusable", "device", "", "BLAST"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		c, err := ParseCall(s)
		if err == nil && c != CallBlast && c != CallNotBlast && c != CallUnusable && c != DeviceCall {
			t.Errorf("%q gave %q", s, c)
		}
		if err == nil && c == DeviceCall && s != "device" {
			t.Errorf("%q taken as the device's call", s)
		}
	})
}

// TestClockRequest (issue 15 item 7): a reviewer's time is applied with the
// time elapsed since it was asked, never from a stale or impossible
// request, and marks the clock set for this boot only.
func TestClockRequest(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	s, err := Open(ctx, dir, Options{Clock: newFakeClock()})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	boot := filepath.Join(t.TempDir(), "boot_id")
	os.WriteFile(boot, []byte("boot-1\n"), 0o644)
	old := bootIDFile
	bootIDFile = boot
	defer func() { bootIDFile = old }()

	if err := s.RequestClock(ctx, time.Date(1970, 1, 1, 0, 0, 0, 0, time.UTC), "dr"); !errors.Is(err, ErrBadClockTime) {
		t.Errorf("1970 accepted: %v", err)
	}
	want := time.Date(2026, 12, 7, 10, 0, 0, 0, time.UTC)
	if err := s.RequestClock(ctx, want, "dr"); err != nil {
		t.Fatal(err)
	}
	req := filepath.Join(dir, ClockRequestName)
	written := time.Now().Add(-30 * time.Second)
	os.Chtimes(req, written, written)
	var set time.Time
	got, err := ApplyClockRequest(dir, func(t time.Time) error { set = t; return nil }, time.Now, time.Time{})
	if err != nil || set.Sub(want) < 29*time.Second || set.Sub(want) > 40*time.Second || !got.Equal(set) {
		t.Fatalf("set to %v (%v), want %v plus the 30 s since the request", set, err, want)
	}
	if _, err := os.Stat(req); err == nil {
		t.Error("the request was left to be applied again")
	}
	if !ClockSetThisBoot(dir) || !ClockKnownSet(dir) {
		t.Error("not marked set for this boot")
	}
	os.WriteFile(boot, []byte("boot-2\n"), 0o644)
	if ClockSetThisBoot(dir) {
		t.Error("still marked set after a reboot")
	}
	// Stale: asked 11 minutes ago.
	s.RequestClock(ctx, want, "dr")
	stale := time.Now().Add(-11 * time.Minute)
	os.Chtimes(req, stale, stale)
	set = time.Time{}
	if _, err := ApplyClockRequest(dir, func(t time.Time) error { set = t; return nil }, time.Now, time.Time{}); err == nil || !set.IsZero() {
		t.Errorf("a stale request was applied: %v %v", set, err)
	}
	// Earlier than the build: refused.
	s.RequestClock(ctx, want, "dr")
	if _, err := ApplyClockRequest(dir, func(time.Time) error { t.Error("set"); return nil }, time.Now, want.AddDate(1, 0, 0)); !errors.Is(err, ErrBadClockTime) {
		t.Errorf("a time before the build: %v", err)
	}
	if got, err := ApplyClockRequest(dir, nil, time.Now, time.Time{}); err != nil || !got.IsZero() {
		t.Errorf("no request: %v %v", got, err)
	}
}
