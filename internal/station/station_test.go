package station

import (
	"context"
	"errors"
	"fmt"
	"image"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"allscreen/model"
	"allscreen/screening"
)

var testRule = screening.Rule{BlastThreshold: 0.5, CellFalsePositiveRate: 0.01, ReferAlpha: 0.01, ReferBlasts: 2,
	MinWhiteCells: 10, MaxUncertainFraction: 0.2, MaxOutOfDistributionFraction: 0.1}

// clock is a hand-moved clock shared by the store and the station.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *clock) add(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}

type fixture struct {
	store *screening.Store
	srv   *Server
	clock *clock
	dir   string
	code  string // a closed sample: cells with the first one called blast
}

const (
	reviewerPW  = "reviewer password"
	reviewerPIN = "2468"
	techPW      = "technician password"
)

// newFixture stores one closed sample of n cells (one of them called blast)
// and one open sample, and makes a reviewer and a technician.
func newFixture(t testing.TB, n int) *fixture {
	t.Helper()
	ctx := context.Background()
	dir := t.TempDir()
	c := &clock{t: time.Date(2026, 3, 2, 9, 0, 0, 0, time.UTC)}
	st, err := screening.Open(ctx, dir, screening.Options{Clock: c})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	prov := screening.Provenance{ModelSHA256: "m", ConfigSHA256: "c", SoftwareVersion: "test"}
	smp, err := st.CreateSample(ctx, prov)
	if err != nil {
		t.Fatal(err)
	}
	f := &screening.FieldRecord{SampleID: smp.ID, Width: 640, Height: 480, Image: []byte("frame"), ImageFormat: "jpg",
		Accepted: true, Provenance: prov}
	for i := range n {
		p := model.Prediction{Blast: 0.1 + 0.3*float32(i%3)/3, Probs: []float32{0.9, 0.1}}
		if i == 0 {
			p = model.Prediction{Blast: 0.95, Probs: []float32{0.05, 0.95}}
		}
		f.Cells = append(f.Cells, screening.CellRecord{Box: image.Rect(i%60*10, i/60*10, i%60*10+9, i/60*10+9),
			Crop: image.Rect(0, 0, 9, 9), Area: 50, CropImage: []byte(fmt.Sprintf("crop %d", i)), CropFormat: "png",
			Prediction: p, Call: testRule.CallCell(p)})
	}
	if _, err := st.SaveField(ctx, f); err != nil {
		t.Fatal(err)
	}
	if _, err := st.CloseSample(ctx, smp.ID, testRule); err != nil {
		t.Fatal(err)
	}
	if _, err := st.CreateSample(ctx, prov); err != nil {
		t.Fatal(err)
	}
	if _, err := st.AddUser(ctx, "Dr Reviewer", screening.RoleReviewer, reviewerPW, reviewerPIN); err != nil {
		t.Fatal(err)
	}
	if _, err := st.AddUser(ctx, "Tech", screening.RoleTechnician, techPW, ""); err != nil {
		t.Fatal(err)
	}
	return &fixture{store: st, srv: New(st, Options{Now: c.Now, ClockNotSet: func() bool { return true }}), clock: c, dir: dir, code: smp.Code}
}

// browser is a logged-in (or not) client of the station.
type browser struct {
	t      testing.TB
	f      *fixture
	cookie *http.Cookie
	csrf   string
}

func (b *browser) do(method, target string, form url.Values) *httptest.ResponseRecorder {
	b.t.Helper()
	var body io.Reader
	if form != nil {
		body = strings.NewReader(form.Encode())
	}
	r := httptest.NewRequest(method, target, body)
	r.RemoteAddr = "192.0.2.7:4242"
	if form != nil {
		r.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	}
	if b.cookie != nil {
		r.AddCookie(b.cookie)
	}
	w := httptest.NewRecorder()
	b.f.srv.ServeHTTP(w, r)
	return w
}

var csrfRE = regexp.MustCompile(`name="csrf" value="([^"]+)"`)

func (f *fixture) login(t testing.TB, name, pw string) *browser {
	t.Helper()
	b := &browser{t: t, f: f}
	w := b.do("POST", "/login", url.Values{"name": {name}, "password": {pw}})
	if w.Code != http.StatusSeeOther {
		t.Fatalf("login %s: %d %s", name, w.Code, w.Body)
	}
	for _, c := range w.Result().Cookies() {
		if c.Name == cookieName {
			b.cookie = c
			if !c.HttpOnly || c.SameSite != http.SameSiteStrictMode {
				t.Errorf("session cookie %+v: want HttpOnly, SameSite=Strict", c)
			}
		}
	}
	page := b.do("GET", "/", nil)
	m := csrfRE.FindStringSubmatch(page.Body.String())
	if b.cookie == nil || m == nil {
		t.Fatalf("no session after login: %d %s", page.Code, page.Body)
	}
	b.csrf = m[1]
	return b
}

// concrete fills a route's pattern with real values.
func (f *fixture) concrete(pattern string) string {
	cell := f.cellIDs()[0]
	r := strings.NewReplacer("{$}", "", "{code}", f.code, "{cell}", fmt.Sprint(cell), "{name}", f.frameName())
	return r.Replace(pattern)
}

func (f *fixture) detail() screening.SampleDetail {
	d, err := f.store.SampleDetail(context.Background(), f.code)
	if err != nil {
		panic(err)
	}
	return d
}

func (f *fixture) cellIDs() []int64 {
	var ids []int64
	for _, c := range f.detail().Cells() {
		ids = append(ids, c.ID)
	}
	return ids
}

func (f *fixture) frameName() string {
	ref := f.detail().Fields[0].Image
	return ref.SHA256 + "." + ref.Format
}

// unchanged fails when anything a POST route writes was written.
func (f *fixture) unchanged(t *testing.T, who string) {
	t.Helper()
	d := f.detail()
	_, _, _, pending, err := f.store.PendingSpecimen(context.Background())
	_, clockErr := os.Stat(filepath.Join(f.dir, screening.ClockRequestName))
	if len(d.Versions) != 0 || d.SpecimenID != "" || pending || err != nil || clockErr == nil {
		t.Errorf("%s wrote: versions %+v, specimen %q, pending %v (%v), clock request %v", who, d.Versions, d.SpecimenID, pending, err, clockErr == nil)
	}
}

// formFor is a plausible body for each POST route.
func formFor(pattern, csrf string) url.Values {
	v := url.Values{"csrf": {csrf}}
	switch {
	case strings.HasSuffix(pattern, "/sign"):
		v.Set("name", "Dr Reviewer")
		v.Set("pin", reviewerPIN)
	case strings.HasSuffix(pattern, "/amend"):
		v.Set("reason", "a reason")
	case strings.HasSuffix(pattern, "/clock"):
		v.Set("time", "2026-12-07T10:00")
	case strings.HasSuffix(pattern, "/next"), strings.HasSuffix(pattern, "/specimen"):
		v.Set("specimen", "LAB-1")
		v.Set("operator", "Tech")
	case strings.Contains(pattern, "/cells/"):
		v.Set("call", "not-blast")
	}
	return v
}

// TestEveryRouteNeedsASession walks the route table: without a session (or
// with a made-up or expired one) no route but health and the login page
// answers, and nothing is written.
func TestEveryRouteNeedsASession(t *testing.T) {
	f := newFixture(t, 12)
	expired := f.login(t, "Dr Reviewer", reviewerPW)
	f.clock.add(idleTimeout + time.Minute)
	for _, cookie := range []*http.Cookie{nil, {Name: cookieName, Value: "made-up"}, expired.cookie} {
		b := &browser{t: t, f: f, cookie: cookie}
		for _, rt := range routes {
			if rt.access == public {
				continue
			}
			target := f.concrete(rt.pattern)
			var form url.Values
			if rt.method == "POST" {
				form = formFor(rt.pattern, expired.csrf)
			}
			w := b.do(rt.method, target, form)
			switch {
			case rt.method == "GET" && (w.Code != http.StatusSeeOther || !strings.HasPrefix(w.Header().Get("Location"), "/login")):
				t.Errorf("GET %s without a session: %d %s", target, w.Code, w.Header().Get("Location"))
			case rt.method == "POST" && w.Code != http.StatusForbidden:
				t.Errorf("POST %s without a session: %d", target, w.Code)
			}
		}
	}
	f.unchanged(t, "a request without a session")
	w := (&browser{t: t, f: f}).do("GET", "/health", nil)
	if w.Code != http.StatusOK || w.Body.String() != "ok\n" {
		t.Errorf("health: %d %q", w.Code, w.Body)
	}
}

// TestReviewerRoutesRefuseTechnicians: a technician sees results but
// cannot reclassify, sign or amend, even with a valid CSRF token.
func TestReviewerRoutesRefuseTechnicians(t *testing.T) {
	f := newFixture(t, 12)
	tech := f.login(t, "Tech", techPW)
	for _, rt := range routes {
		target := f.concrete(rt.pattern)
		switch rt.access {
		case reviewerOnly:
			if w := tech.do(rt.method, target, formFor(rt.pattern, tech.csrf)); w.Code != http.StatusForbidden {
				t.Errorf("technician %s %s: %d", rt.method, target, w.Code)
			}
		case anyUser:
			if rt.method == "GET" {
				if w := tech.do("GET", target, nil); w.Code != http.StatusOK {
					t.Errorf("technician GET %s: %d", target, w.Code)
				}
			}
		}
	}
	if d := f.detail(); len(d.Versions) != 0 {
		t.Errorf("a technician's request wrote %+v", d.Versions)
	}
	if page := tech.do("GET", "/samples/"+f.code, nil).Body.String(); strings.Contains(page, "/sign") || strings.Contains(page, "/cells/") {
		t.Error("a technician is shown reviewer forms")
	}
}

// TestEveryPostNeedsTheCSRFToken: a reviewer's own session with a missing or
// foreign token is refused on every POST route, and nothing is written.
func TestEveryPostNeedsTheCSRFToken(t *testing.T) {
	f := newFixture(t, 12)
	rev := f.login(t, "Dr Reviewer", reviewerPW)
	other := f.login(t, "Tech", techPW)
	for _, rt := range routes {
		if rt.method != "POST" || rt.access == public {
			continue
		}
		for _, token := range []string{"", "forged", other.csrf} {
			if w := rev.do("POST", f.concrete(rt.pattern), formFor(rt.pattern, token)); w.Code != http.StatusForbidden {
				t.Errorf("POST %s with csrf %q: %d", rt.pattern, token, w.Code)
			}
		}
	}
	f.unchanged(t, "a forged request")
	// Logout is a POST too: still logged in after the forged ones.
	if w := rev.do("GET", "/", nil); w.Code != http.StatusOK {
		t.Errorf("forged logout logged out: %d", w.Code)
	}
}

// TestImageRouteServesOnlyStoredImages: names that are not a stored
// image's, traversal included, get nothing of the state directory.
func TestImageRouteServesOnlyStoredImages(t *testing.T) {
	f := newFixture(t, 2)
	b := f.login(t, "Tech", techPW)
	if w := b.do("GET", "/images/"+f.frameName(), nil); w.Code != http.StatusOK || w.Body.String() != "frame" ||
		w.Header().Get("Content-Type") != "image/jpeg" {
		t.Errorf("stored frame: %d %q %s", w.Code, w.Body, w.Header().Get("Content-Type"))
	}
	for _, p := range []string{
		"/images/..%2fresults.db", "/images/%2e%2e%2fresults.db", "/images/../results.db", "/images/results.db",
		"/images/" + strings.Repeat("0", 64) + ".jpg", "/images/" + f.frameName() + "%00.png",
		"/images/..%2f..%2f..%2fetc%2fpasswd", "/images/" + strings.ToUpper(f.frameName()),
	} {
		w := b.do("GET", p, nil)
		if w.Code == http.StatusOK || strings.Contains(w.Body.String(), "SQLite format") || strings.Contains(w.Body.String(), "root:") {
			t.Errorf("GET %s: %d %.40q", p, w.Code, w.Body)
		}
	}
}

// TestReviewThroughTheStation: reclassify the device's one blast call,
// refuse a wrong PIN, sign, refuse a change to the signed result, amend.
func TestReviewThroughTheStation(t *testing.T) {
	f := newFixture(t, 12)
	rev := f.login(t, "Dr Reviewer", reviewerPW)
	page := rev.do("GET", "/samples/"+f.code, nil).Body.String()
	if !strings.Contains(page, "INCONCLUSIVE - REVIEW") || !strings.Contains(page, "P(blast) 0.95") {
		t.Fatalf("sample page lacks the device verdict or the blast cell:\n%s", page)
	}
	blast := f.detail().Cells()[0]
	w := rev.do("POST", fmt.Sprintf("/samples/%s/cells/%d", f.code, blast.ID), url.Values{"csrf": {rev.csrf}, "call": {"not-blast"}})
	if w.Code != http.StatusSeeOther {
		t.Fatalf("reclassify: %d %s", w.Code, w.Body)
	}
	page = rev.do("GET", "/samples/"+f.code, nil).Body.String()
	if !strings.Contains(page, "NO BLASTS SEEN in 12 white cells") || !strings.Contains(page, "draft") {
		t.Errorf("the reviewed verdict is not recomputed beside the device's")
	}
	w = rev.do("POST", "/samples/"+f.code+"/sign", url.Values{"csrf": {rev.csrf}, "name": {"Dr Reviewer"}, "pin": {"0000"}})
	if w.Code == http.StatusSeeOther || f.detail().Current().Signed() {
		t.Fatalf("signed with a wrong PIN: %d", w.Code)
	}
	w = rev.do("POST", "/samples/"+f.code+"/sign", url.Values{"csrf": {rev.csrf}, "name": {"Someone Else"}, "pin": {reviewerPIN}})
	if w.Code == http.StatusSeeOther {
		t.Fatal("signed under another name")
	}
	w = rev.do("POST", "/samples/"+f.code+"/sign", url.Values{"csrf": {rev.csrf}, "name": {"dr reviewer"}, "pin": {reviewerPIN}})
	if w.Code != http.StatusSeeOther {
		t.Fatalf("sign: %d %s", w.Code, w.Body)
	}
	d := f.detail()
	if cur := d.Current(); !cur.Signed() || cur.SignedBy != "Dr Reviewer" || cur.Verdict.Outcome != screening.NoBlastsSeen {
		t.Fatalf("after signing: %+v", cur)
	}
	w = rev.do("POST", fmt.Sprintf("/samples/%s/cells/%d", f.code, blast.ID), url.Values{"csrf": {rev.csrf}, "call": {"blast"}})
	if w.Code != http.StatusConflict || !strings.Contains(w.Body.String(), "amend") {
		t.Errorf("reclassify after signing: %d %s", w.Code, w.Body)
	}
	w = rev.do("POST", "/samples/"+f.code+"/amend", url.Values{"csrf": {rev.csrf}, "reason": {"second opinion"}})
	if w.Code != http.StatusSeeOther || len(f.detail().Versions) != 2 {
		t.Fatalf("amend: %d", w.Code)
	}
	page = rev.do("GET", "/samples/"+f.code, nil).Body.String()
	for _, want := range []string{"second opinion", "version 2", "sign-refused", "Dr Reviewer"} {
		if !strings.Contains(page, want) {
			t.Errorf("sample page lacks %q", want)
		}
	}
	list := rev.do("GET", "/?state=draft", nil).Body.String()
	if !strings.Contains(list, f.code) || strings.Contains(rev.do("GET", "/?state=signed", nil).Body.String(), f.code) {
		t.Error("the list's state filter is wrong")
	}
	// The open sample cannot be reviewed yet.
	open := "HN" // any code of the open sample: read it from the list
	for _, s := range mustSamples(t, f) {
		if s.ClosedAt == nil {
			open = s.Code
		}
	}
	if w := rev.do("POST", "/samples/"+open+"/sign", url.Values{"csrf": {rev.csrf}, "name": {"Dr Reviewer"}, "pin": {reviewerPIN}}); w.Code != http.StatusConflict {
		t.Errorf("signed an open sample: %d", w.Code)
	}
}

func mustSamples(t *testing.T, f *fixture) []screening.SampleSummary {
	l, err := f.store.Samples(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	return l
}

func TestLoginThrottle(t *testing.T) {
	f := newFixture(t, 1)
	b := &browser{t: t, f: f}
	for i := range freeAttempts {
		if w := b.do("POST", "/login", url.Values{"name": {"Dr Reviewer"}, "password": {"guess"}}); w.Code != http.StatusUnauthorized {
			t.Fatalf("attempt %d: %d", i+1, w.Code)
		}
	}
	w := b.do("POST", "/login", url.Values{"name": {"Dr Reviewer"}, "password": {reviewerPW}})
	if w.Code != http.StatusTooManyRequests || !strings.Contains(w.Body.String(), "wait 30 s") {
		t.Fatalf("after %d failures the right password: %d %s", freeAttempts, w.Code, w.Body)
	}
	f.clock.add(baseDelay)
	f.login(t, "Dr Reviewer", reviewerPW)
	if w := b.do("POST", "/login", url.Values{"name": {"nobody"}, "password": {"x"}}); !strings.Contains(w.Body.String(), "wrong name or password") {
		t.Errorf("unknown name: %s", w.Body)
	}
}

func TestSafeNext(t *testing.T) {
	for in, want := range map[string]string{"/samples/X": "/samples/X", "//evil.example/": "/", "https://evil.example": "/",
		"/\\evil": "/", "": "/"} {
		if got := safeNext(in); got != want {
			t.Errorf("safeNext(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestSecurityHeaders(t *testing.T) {
	f := newFixture(t, 1)
	w := (&browser{t: t, f: f}).do("GET", "/login", nil)
	if csp := w.Header().Get("Content-Security-Policy"); !strings.Contains(csp, "default-src 'none'") || w.Header().Get("X-Frame-Options") != "DENY" {
		t.Errorf("headers %v", w.Header())
	}
}

// BenchmarkSamplePage500Cells: the sample page of a sample with 500 cells,
// served in process (issue 13: at most 200 ms on this machine).
func BenchmarkSamplePage500Cells(b *testing.B) {
	f := newFixture(b, 500)
	br := f.login(b, "Dr Reviewer", reviewerPW)
	for b.Loop() {
		if w := br.do("GET", "/samples/"+f.code, nil); w.Code != http.StatusOK {
			b.Fatal(w.Code)
		}
	}
}

// TestExportNeedsAStick: with no stick mounted at the export folder (it is
// on the results' own disk), the export is refused in words and nothing is
// written there.
func TestExportNeedsAStick(t *testing.T) {
	f := newFixture(t, 12)
	dir := t.TempDir()
	f.srv = New(f.store, Options{Now: f.clock.Now, ExportDir: dir})
	b := f.login(t, "Tech", techPW)
	w := b.do("POST", "/export", url.Values{"csrf": {b.csrf}})
	if w.Code != http.StatusConflict || !strings.Contains(w.Body.String(), "USB stick") {
		t.Errorf("export to the SD card: %d %s", w.Code, w.Body)
	}
	if entries, _ := os.ReadDir(dir); len(entries) != 0 {
		t.Errorf("export wrote %v", entries)
	}
	if w := b.do("GET", "/samples/"+f.code+"/fhir.json", nil); w.Code != http.StatusOK || w.Header().Get("Content-Type") != "application/fhir+json" ||
		!strings.Contains(w.Body.String(), `"resourceType": "Bundle"`) {
		t.Errorf("FHIR: %d %s", w.Code, w.Header())
	}
}

// FuzzSafeNext: a post-login redirect never leaves the site.
func FuzzSafeNext(f *testing.F) {
	for _, s := range []string{"/samples/X", "//evil.example", "/\\evil", "https://evil.example", "/%2F%2Fevil", "/\r\nSet-Cookie: x"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, next string) {
		got := safeNext(next)
		u, err := url.Parse(got)
		if !strings.HasPrefix(got, "/") || strings.HasPrefix(got, "//") || strings.ContainsAny(got, "\\\r\n") ||
			err == nil && (u.Host != "" || u.Scheme != "") {
			t.Errorf("safeNext(%q) = %q leaves the site", next, got)
		}
	})
}

// TestReviewerSetsTheClock: the list shows the device's clock when it is
// not known to be set, and a reviewer's time becomes a request for the
// root unit to apply; a technician is only told.
func TestReviewerSetsTheClock(t *testing.T) {
	f := newFixture(t, 1)
	tech := f.login(t, "Tech", techPW)
	if page := tech.do("GET", "/", nil).Body.String(); !strings.Contains(page, "not known to be set") || strings.Contains(page, `action="/clock"`) {
		t.Error("a technician should see the warning without the form")
	}
	rev := f.login(t, "Dr Reviewer", reviewerPW)
	if page := rev.do("GET", "/", nil).Body.String(); !strings.Contains(page, `action="/clock"`) {
		t.Error("no clock form for the reviewer")
	}
	if w := rev.do("POST", "/clock", url.Values{"csrf": {rev.csrf}, "time": {"1970-01-01T00:00"}}); w.Code != http.StatusBadRequest {
		t.Errorf("1970: %d", w.Code)
	}
	if w := rev.do("POST", "/clock", url.Values{"csrf": {rev.csrf}, "time": {"2026-12-07T10:00"}}); w.Code != http.StatusOK {
		t.Fatalf("set the clock: %d %s", w.Code, w.Body)
	}
	if _, err := os.Stat(filepath.Join(f.dir, screening.ClockRequestName)); err != nil {
		t.Errorf("no request for the root unit: %v", err)
	}
}

// TestListShowsStoreEvents: a damaged database set aside at the daemon's
// start is told to reviewers too, with where it was kept.
func TestListShowsStoreEvents(t *testing.T) {
	dir := t.TempDir()
	os.WriteFile(filepath.Join(dir, screening.DBName), []byte(strings.Repeat("not a database ", 500)), 0o644)
	st, err := screening.Open(context.Background(), dir, screening.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	if _, err := st.AddUser(context.Background(), "Tech", screening.RoleTechnician, techPW, ""); err != nil {
		t.Fatal(err)
	}
	f := &fixture{store: st, srv: New(st, Options{}), dir: dir}
	page := f.login(t, "Tech", techPW).do("GET", "/", nil).Body.String()
	if !strings.Contains(page, "was damaged") || !strings.Contains(page, "results.corrupt-") {
		t.Errorf("the list does not tell of the set-aside database:\n%.2000s", page)
	}
}

// TestStorageFaultEndsTheStation: when the daemon sets the database aside
// (replaced under the station), a write is refused as a storage fault and
// the station is told to end, so it restarts on the current database.
func TestStorageFaultEndsTheStation(t *testing.T) {
	f := newFixture(t, 3)
	var fault error
	f.srv = New(f.store, Options{Now: f.clock.Now, ClockNotSet: func() bool { return false }, OnStorageFault: func(err error) { fault = err }})
	rev := f.login(t, "Dr Reviewer", reviewerPW)
	db := filepath.Join(f.dir, screening.DBName)
	if err := os.Rename(db, db+".aside"); err != nil {
		t.Fatal(err)
	}
	os.WriteFile(db, nil, 0o640)
	cell := f.cellIDs()[0]
	w := rev.do("POST", fmt.Sprintf("/samples/%s/cells/%d", f.code, cell), url.Values{"csrf": {rev.csrf}, "call": {"not-blast"}})
	if w.Code != http.StatusServiceUnavailable || !errors.Is(fault, screening.ErrStorageFault) {
		t.Errorf("write after the database was replaced: %d, fault %v", w.Code, fault)
	}
}
