package appliance

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"allscreen/device"
	"allscreen/screening"

	"gocv.io/x/gocv"
)

// events is the ordered record of everything the appliance did, shared by
// the fakes, so tests can check "committed before shown".
type events struct {
	mu  sync.Mutex
	log []string
}

func (e *events) add(format string, a ...any) {
	e.mu.Lock()
	e.log = append(e.log, fmt.Sprintf(format, a...))
	e.mu.Unlock()
}

func (e *events) all() []string {
	e.mu.Lock()
	defer e.mu.Unlock()
	return append([]string(nil), e.log...)
}

type fakeDisplay struct {
	ev   *events
	fail error
	mu   sync.Mutex
}

func (d *fakeDisplay) Show(lines []string) error {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.fail != nil {
		return d.fail
	}
	d.ev.add("show %s", strings.Join(lines, " / "))
	return nil
}
func (d *fakeDisplay) Size() (int, int) { return 18, 4 }
func (d *fakeDisplay) setFail(err error) {
	d.mu.Lock()
	d.fail = err
	d.mu.Unlock()
}

type fakeLights struct{ ev *events }

func (l *fakeLights) Set(s device.Light) error { l.ev.add("light %s", s); return nil }

// fakeCamera returns frames made by next; next returning an error is a
// camera fault.
type fakeCamera struct {
	mu   sync.Mutex
	next func() (gocv.Mat, error)
}

func (c *fakeCamera) Capture(ctx context.Context) (gocv.Mat, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.next()
}
func (c *fakeCamera) Close() error { return nil }
func (c *fakeCamera) set(f func() (gocv.Mat, error)) {
	c.mu.Lock()
	c.next = f
	c.mu.Unlock()
}

func frame() (gocv.Mat, error) { return gocv.NewMatWithSize(480, 640, gocv.MatTypeCV8UC3), nil }

// fakeScreener commits to an in-memory list; each field's result is given
// by the test.
type fakeScreener struct {
	ev      *events
	mu      sync.Mutex
	cur     *screening.Sample
	tally   screening.Tally
	n       int
	fields  int
	result  func() (accepted bool, reject string, wbc, blasts int, err error)
	block   chan struct{} // when set, AddField waits on it or on ctx
	outcome screening.Outcome
	resumed bool
	fault   error  // Check's answer
	notice  string // Notice's answer
}

func (s *fakeScreener) Notice() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.notice
}

func (s *fakeScreener) Check() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.fault
}

func (s *fakeScreener) Resumed() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.resumed
}

func (s *fakeScreener) CloseIncomplete(ctx context.Context, why string) (screening.ClosedSample, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.cur == nil {
		return screening.ClosedSample{}, screening.ErrNoOpenSample
	}
	c := screening.ClosedSample{Sample: *s.cur, Verdict: screening.Verdict{Outcome: screening.Inconclusive, Tally: s.tally,
		Incomplete: true, Reasons: []string{"incomplete: " + why}}}
	s.ev.add("commit incomplete %s: %s", c.Code, why)
	s.cur, s.resumed = nil, false
	return c, nil
}

func (s *fakeScreener) Current() (screening.Sample, screening.Tally, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.cur == nil {
		return screening.Sample{}, screening.Tally{}, false
	}
	return *s.cur, s.tally, true
}

func (s *fakeScreener) StartSample(ctx context.Context) (screening.Sample, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.start(), nil
}

func (s *fakeScreener) start() screening.Sample {
	if s.cur == nil {
		s.n++
		s.cur = &screening.Sample{ID: int64(s.n), Code: screening.SampleCode(int64(s.n)), OpenedAt: time.Now()}
		s.tally, s.fields = screening.Tally{}, 0
	}
	return *s.cur
}

func (s *fakeScreener) AddField(ctx context.Context, f gocv.Mat, at time.Time) (screening.FieldResult, error) {
	if s.block != nil {
		select {
		case <-s.block:
		case <-ctx.Done():
			return screening.FieldResult{}, ctx.Err()
		}
	}
	acc, rej, wbc, bl, err := s.result()
	if err != nil {
		return screening.FieldResult{}, err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	smp := s.start()
	s.fields++
	ft := screening.Tally{WhiteCells: wbc, Blasts: bl}
	if acc {
		s.tally = s.tally.Add(ft)
		s.tally.Fields++
	}
	s.ev.add("commit field %s/%d", smp.Code, s.fields)
	return screening.FieldResult{Sample: smp, Number: s.fields, Accepted: acc, Reject: rej, Field: ft, Running: s.tally}, nil
}

func (s *fakeScreener) CloseSample(ctx context.Context) (screening.ClosedSample, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.cur == nil {
		return screening.ClosedSample{}, screening.ErrNoOpenSample
	}
	c := screening.ClosedSample{Sample: *s.cur, Verdict: screening.Verdict{Outcome: s.outcome, Tally: s.tally}}
	s.ev.add("commit verdict %s %s", c.Code, c.Verdict.Outcome)
	s.cur, s.resumed = nil, false
	return c, nil
}

type fakeNotifier struct{ ev *events }

func (n *fakeNotifier) Notify(s string) error { n.ev.add("notify %s", s); return nil }

// rig is an appliance on fakes, running in a goroutine.
type rig struct {
	t           *testing.T
	ev          *events
	cam         *fakeCamera
	disp        *fakeDisplay
	scr         *fakeScreener
	presses     chan device.Press
	retry       chan time.Time
	shown       chan string
	cancel      context.CancelFunc
	done        chan error
	camErr      error
	connErr     error
	research    bool
	maxOpen     time.Duration
	clockNotSet bool
	// export, when set, makes the session an Exporter answering with it.
	export func() (int, error)
	mu     sync.Mutex
}

// exportingFake is a fake session that can also export signed reports.
type exportingFake struct {
	*fakeScreener
	export func() (int, error)
}

func (e exportingFake) ExportReports(ctx context.Context) (int, error) {
	e.ev.add("export")
	return e.export()
}

func newRig(t *testing.T, setup func(r *rig)) *rig {
	ev := &events{}
	r := &rig{t: t, ev: ev, cam: &fakeCamera{next: frame}, disp: &fakeDisplay{ev: ev},
		scr: &fakeScreener{ev: ev, outcome: screening.NoBlastsSeen,
			result: func() (bool, string, int, int, error) { return true, "", 7, 2, nil }},
		presses: make(chan device.Press), retry: make(chan time.Time), shown: make(chan string, 100), done: make(chan error, 1)}
	if setup != nil {
		setup(r)
	}
	a, err := New(Options{
		Camera: r.cam, Lights: &fakeLights{ev}, Display: r.disp, Notifier: &fakeNotifier{ev},
		Connect: func(ctx context.Context) (Screener, error) {
			r.mu.Lock()
			defer r.mu.Unlock()
			if r.connErr != nil {
				return nil, r.connErr
			}
			if r.export != nil {
				return exportingFake{r.scr, r.export}, nil
			}
			return r.scr, nil
		},
		ClockNotSet: func() bool { r.mu.Lock(); defer r.mu.Unlock(); return r.clockNotSet },
		Checks: []Check{{Name: "camera", Advice: "Camera fault", Run: func(context.Context) error {
			r.mu.Lock()
			defer r.mu.Unlock()
			return r.camErr
		}}},
		Retry:    r.retry,
		Shown:    func(l []string) { r.shown <- strings.Join(l, " / ") },
		Research: r.research,
		MaxOpen:  r.maxOpen,
	})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	r.cancel = cancel
	go func() { r.done <- a.Run(ctx, r.presses) }()
	t.Cleanup(func() { cancel(); <-r.done })
	return r
}

func (r *rig) set(f func()) { r.mu.Lock(); f(); r.mu.Unlock() }

// waitShown reads screens until one contains want. The timeout only stops
// a broken test from hanging; nothing is timed.
func (r *rig) waitShown(want string) string {
	r.t.Helper()
	deadline := time.After(20 * time.Second)
	for {
		select {
		case s := <-r.shown:
			if strings.Contains(s, want) {
				return s
			}
		case <-deadline:
			r.t.Fatalf("never shown: %q; events:\n%s", want, strings.Join(r.ev.all(), "\n"))
		}
	}
}

func (r *rig) has(ev string) bool {
	for _, e := range r.ev.all() {
		if strings.Contains(e, ev) {
			return true
		}
	}
	return false
}

// index of the first event containing s, or -1.
func (r *rig) index(s string) int {
	for i, e := range r.ev.all() {
		if strings.Contains(e, s) {
			return i
		}
	}
	return -1
}

func TestPowerOnReady(t *testing.T) {
	r := newRig(t, nil)
	r.waitShown("READY")
	if !r.has("notify READY=1") || !r.has("notify STATUS=Ready") {
		t.Errorf("systemd not told: %q", r.ev.all())
	}
	if r.index("light starting") > r.index("light ready") || r.index("light ready") < 0 {
		t.Errorf("lights: %q", r.ev.all())
	}
}

// TestResearchModeOnEveryScreen (issue 15 item 3): with settings outside
// the validated bounds every screen, from READY to the verdict, starts
// with RESEARCH.
func TestResearchModeOnEveryScreen(t *testing.T) {
	r := newRig(t, func(r *rig) { r.research = true; r.scr.outcome = screening.NoBlastsSeen })
	var seen []string
	wait := func(want string) {
		t.Helper()
		s := r.waitShown(want)
		seen = append(seen, s)
	}
	wait("READY")
	r.presses <- device.ShortPress
	wait("Field 1")
	r.presses <- device.LongPress
	wait("NO BLASTS")
	for _, s := range seen {
		if !strings.HasPrefix(s, "RESEARCH / ") {
			t.Errorf("screen %q does not start with RESEARCH", s)
		}
	}
	if !r.has("show RESEARCH / READY") {
		t.Errorf("the display was not given RESEARCH: %q", r.ev.all())
	}
}

// resumedRig is a rig whose session found sample 1 open at power-on, with
// 3 fields in it, opened age ago.
func resumedRig(t *testing.T, age, maxOpen time.Duration) *rig {
	return newRig(t, func(r *rig) {
		r.scr.n = 1
		r.scr.cur = &screening.Sample{ID: 1, Code: screening.SampleCode(1), OpenedAt: time.Now().Add(-age)}
		r.scr.tally, r.scr.fields, r.scr.resumed = screening.Tally{Fields: 3, WhiteCells: 21}, 3, true
		r.maxOpen = maxOpen
	})
}

// TestResumedSampleIsNeverSilentlyContinued (issue 15 item 1): a sample
// found open at power-on is put to the technician; a long press closes it
// as INCOMPLETE, and the next press starts a new sample with a new code.
func TestResumedSampleIsNeverSilentlyContinued(t *testing.T) {
	r := resumedRig(t, 10*time.Minute, 2*time.Hour)
	code := screening.SampleCode(1)
	r.waitShown("Sample " + code + " / open since ")
	r.presses <- device.LongPress
	r.waitShown(code + " REVIEW: / INCOMPLETE")
	if !r.has("commit incomplete " + code + ": found open at power-on and closed by the technician") {
		t.Errorf("events: %q", r.ev.all())
	}
	r.presses <- device.ShortPress
	r.waitShown("next slide")
	r.presses <- device.ShortPress
	r.waitShown("Sample " + screening.SampleCode(2))
	if r.has("commit field " + code + "/4") {
		t.Errorf("a field joined the closed sample: %q", r.ev.all())
	}
}

// TestResumedSampleContinuedOnAPress: a short press answers "continue";
// that press takes no field, the next one adds field 4 to the same sample.
func TestResumedSampleContinuedOnAPress(t *testing.T) {
	r := resumedRig(t, 10*time.Minute, 2*time.Hour)
	code := screening.SampleCode(1)
	r.waitShown("Sample " + code + " / open since")
	r.presses <- device.ShortPress
	r.waitShown("Sample " + code + " / 21 WBC / Press: next field")
	if r.has("commit field") {
		t.Fatalf("the answering press took a field: %q", r.ev.all())
	}
	r.presses <- device.ShortPress
	r.waitShown("Field 4: 7 WBC") // the result, not the "Field 4 / Analysing..." before it
	if !r.has("commit field " + code + "/4") {
		t.Errorf("events: %q", r.ev.all())
	}
}

// TestDamagedDatabaseNoticeAtPowerOn (issue 15 item 2): a results database
// set aside at start is on the display until a press acknowledges it; that
// press captures nothing, the next one does.
func TestDamagedDatabaseNoticeAtPowerOn(t *testing.T) {
	r := newRig(t, func(r *rig) { r.scr.notice = "The results database was damaged ... kept as results.db.damaged-x" })
	r.waitShown("Results database / damaged: kept / aside, see log. / Press: OK")
	r.presses <- device.ShortPress
	r.waitShown("READY")
	if r.has("commit") {
		t.Fatalf("the acknowledging press captured a field: %q", r.ev.all())
	}
	r.presses <- device.ShortPress
	r.waitShown("Field 1: 7 WBC")
}

// TestStaleSampleClosedIncomplete: a sample open longer than MaxOpen is
// closed as INCOMPLETE at power-on, without asking.
func TestStaleSampleClosedIncomplete(t *testing.T) {
	r := resumedRig(t, 3*time.Hour, 2*time.Hour)
	code := screening.SampleCode(1)
	r.waitShown(code + " REVIEW: / INCOMPLETE")
	if !r.has("commit incomplete " + code + ": open for 3h0m0s, more than the 2h0m0s allowed") {
		t.Errorf("events: %q", r.ev.all())
	}
}

func TestFieldThenVerdict(t *testing.T) {
	r := newRig(t, func(r *rig) { r.scr.outcome = screening.Refer })
	r.waitShown("READY")
	r.presses <- device.ShortPress
	code := screening.SampleCode(1)
	r.waitShown("Field 1: 7 WBC, / 2 suspicious")
	if i, j := r.index("commit field "+code+"/1"), r.index("show Sample "+code+" / Field 1"); i < 0 || j < i {
		t.Fatalf("field shown before it was committed: %q", r.ev.all())
	}
	r.presses <- device.ShortPress
	r.waitShown("Field 2: 7 WBC")
	r.presses <- device.LongPress
	s := r.waitShown("REFER")
	if !strings.Contains(s, code) || !strings.Contains(s, "ALL SUSPECTED") {
		t.Errorf("verdict screen %q lacks the code or the words", s)
	}
	if i, j := r.index("commit verdict "+code), r.index("show "+code+" REFER"); i < 0 || j < i {
		t.Fatalf("verdict shown before it was committed: %q", r.ev.all())
	}
	if !r.has("light refer") || !r.has("light working") {
		t.Errorf("lights: %q", r.ev.all())
	}
	// The next press asks for the next slide (issue 13) and captures
	// nothing; the one after starts a new sample with a new code.
	r.presses <- device.ShortPress
	r.waitShown("Done. Load the / next slide, then / press to start it")
	if r.has("commit field " + screening.SampleCode(2)) {
		t.Fatalf("the press after the verdict captured a field: %q", r.ev.all())
	}
	r.presses <- device.ShortPress
	r.waitShown("Sample " + screening.SampleCode(2))
}

func TestVerdictLights(t *testing.T) {
	for _, c := range []struct {
		o     screening.Outcome
		light string
		words string
	}{
		{screening.NoBlastsSeen, "light no-blasts", "NO BLASTS / SEEN in 7 WBC"},
		{screening.Inconclusive, "light review", "INCONCLUSIVE"},
	} {
		t.Run(string(c.o), func(t *testing.T) {
			r := newRig(t, func(r *rig) { r.scr.outcome = c.o })
			r.waitShown("READY")
			r.presses <- device.ShortPress
			r.waitShown("Field 1")
			r.presses <- device.LongPress
			r.waitShown(c.words)
			if !r.has(c.light) {
				t.Errorf("no %s: %q", c.light, r.ev.all())
			}
		})
	}
}

func TestRejectedField(t *testing.T) {
	r := newRig(t, func(r *rig) {
		r.scr.result = func() (bool, string, int, int, error) { return false, "Refocus the microscope", 0, 0, nil }
	})
	r.waitShown("READY")
	r.presses <- device.ShortPress
	r.waitShown("Field 1 rejected: / Refocus the microscope")
	if !r.has("light rejected") {
		t.Errorf("no amber: %q", r.ev.all())
	}
}

func TestLongPressWithoutSample(t *testing.T) {
	r := newRig(t, nil)
	r.waitShown("READY")
	r.presses <- device.LongPress
	r.waitShown("No sample open")
	if r.has("commit") {
		t.Error("nothing should be committed")
	}
}

// TestLongPressWithoutSampleExports (issue 13): with no sample open, a long
// press writes the signed reports to the USB stick, or says it is missing;
// a long press during a sample still closes it.
func TestLongPressWithoutSampleExports(t *testing.T) {
	var fail error
	r := newRig(t, func(r *rig) {
		r.export = func() (int, error) {
			r.mu.Lock()
			defer r.mu.Unlock()
			if fail != nil {
				return 0, fail
			}
			return 12, nil
		}
	})
	r.waitShown("READY")
	r.presses <- device.LongPress
	r.waitShown("12 reports / saved to USB")
	r.set(func() { fail = fmt.Errorf("/media/usb is on the same disk as the results: %w", screening.ErrNoStick) })
	r.presses <- device.LongPress
	r.waitShown("No USB stick:")
	r.presses <- device.ShortPress
	r.waitShown("Field 1")
	r.presses <- device.LongPress
	r.waitShown("NO BLASTS")
	if n := strings.Count(strings.Join(r.ev.all(), "\n"), "export"); n != 2 {
		t.Errorf("%d exports, want 2: %q", n, r.ev.all())
	}
}

// TestReadyAsksForTheClock (issue 15 item 7): READY says so when the clock
// is not known to be set; screening still works.
func TestReadyAsksForTheClock(t *testing.T) {
	r := newRig(t, func(r *rig) { r.clockNotSet = true })
	r.waitShown("READY / Press: new sample / Set the clock")
	r.presses <- device.ShortPress
	r.waitShown("Field 1")
}

func TestCameraMissingAtStartThenPlugged(t *testing.T) {
	r := newRig(t, func(r *rig) { r.camErr = fmt.Errorf("open /dev/video0: %w", device.ErrNoCamera) })
	r.waitShown("NOT READY / No camera: plug in microscope")
	if !r.has("light fault") || !r.has("notify READY=1") || !r.has("notify STATUS=Not ready: camera: No camera") {
		t.Errorf("events: %q", r.ev.all())
	}
	// A press while not ready retries and refuses; nothing is captured.
	r.presses <- device.ShortPress
	r.waitShown("NOT READY")
	if r.has("commit") {
		t.Fatal("captured while not ready")
	}
	r.set(func() { r.camErr = nil })
	r.retry <- time.Time{}
	r.waitShown("READY")
	if !r.has("notify STATUS=Ready") {
		t.Errorf("events: %q", r.ev.all())
	}
}

func TestCameraUnpluggedMidSample(t *testing.T) {
	r := newRig(t, nil)
	r.waitShown("READY")
	r.presses <- device.ShortPress
	r.waitShown("Field 1")
	r.cam.set(func() (gocv.Mat, error) { return gocv.Mat{}, fmt.Errorf("read: %w", device.ErrNoCamera) })
	r.set(func() { r.camErr = device.ErrNoCamera })
	r.presses <- device.ShortPress
	r.waitShown("No camera")
	r.cam.set(frame)
	r.set(func() { r.camErr = nil })
	r.retry <- time.Time{}
	// Back, with the same sample still open.
	r.waitShown("Sample " + screening.SampleCode(1) + " / 7 WBC")
	r.presses <- device.ShortPress
	r.waitShown("Field 2: 7 WBC")
}

func TestEmptyFrame(t *testing.T) {
	r := newRig(t, nil)
	r.waitShown("READY")
	r.cam.set(func() (gocv.Mat, error) { return gocv.Mat{}, fmt.Errorf("empty frame: %w", device.ErrBadFrame) })
	r.presses <- device.ShortPress
	r.waitShown("Bad camera frame")
	if r.has("commit") {
		t.Error("a bad frame must not be stored")
	}
	r.cam.set(frame)
	r.presses <- device.ShortPress
	r.waitShown("Field 1")
}

func TestDisplayAbsentKeepsWorkingOnLEDs(t *testing.T) {
	r := newRig(t, func(r *rig) { r.disp.fail = errors.New("i2c: NACK") })
	r.waitShown("READY") // Shown is still reported: the LEDs say it
	r.presses <- device.ShortPress
	r.waitShown("Field 1")
	r.presses <- device.LongPress
	r.waitShown("NO BLASTS")
	if !r.has("commit verdict") || !r.has("light no-blasts") {
		t.Errorf("events: %q", r.ev.all())
	}
	r.disp.setFail(nil) // plugged back: the next screen reaches it
	r.presses <- device.ShortPress
	r.waitShown("next slide")
	r.presses <- device.ShortPress
	r.waitShown("Field 1")
	if !r.has("show Sample") {
		t.Error("display not used again after it came back")
	}
}

func TestModelRefused(t *testing.T) {
	r := newRig(t, func(r *rig) {
		r.connErr = errors.New("model /usr/share/allscreen/model/detect.json: sha256 mismatch; reinstall the model: model unusable")
	})
	r.waitShown("Model missing or altered: reinstall")
	r.presses <- device.ShortPress
	r.waitShown("NOT READY")
	r.set(func() { r.connErr = nil })
	r.retry <- time.Time{}
	r.waitShown("READY")
}

func TestStorageFullThenFreed(t *testing.T) {
	full := true
	var mu sync.Mutex
	r := newRig(t, func(r *rig) {
		r.scr.result = func() (bool, string, int, int, error) {
			mu.Lock()
			defer mu.Unlock()
			if full {
				return false, "", 0, 0, fmt.Errorf("save field: %w", screening.ErrStorageFull)
			}
			return true, "", 5, 0, nil
		}
	})
	r.waitShown("READY")
	r.presses <- device.ShortPress
	r.waitShown("Storage full: export results")
	if r.has("commit") || !r.has("light fault") {
		t.Errorf("events: %q", r.ev.all())
	}
	// No storage check in this rig: a press re-runs the self-test, which
	// has nothing failing but the recorded storage fault, so it clears
	// once the next field stores.
	mu.Lock()
	full = false
	mu.Unlock()
	r.presses <- device.ShortPress
	r.waitShown("Field 1: 5 WBC")
}

// TestStorageFaultSaysCallService (issue 15 item 2): a storage fault
// mid-session (a read-only card, a damaged database) is NOT READY with
// "call service", never "press again".
func TestStorageFaultSaysCallService(t *testing.T) {
	r := newRig(t, func(r *rig) {
		r.scr.result = func() (bool, string, int, int, error) {
			return false, "", 0, 0, fmt.Errorf("save field: %w (read-only file system)", screening.ErrStorageFault)
		}
	})
	r.waitShown("READY")
	r.presses <- device.ShortPress
	r.waitShown("NOT READY / Storage fault: call service")
	if r.has("press again") || r.has("commit") || !r.has("light fault") {
		t.Errorf("events: %q", r.ev.all())
	}
	// The store's own check still fails (its database was removed): a
	// retry or a press keeps it NOT READY.
	r.scr.mu.Lock()
	r.scr.fault = fmt.Errorf("results.db was removed: %w", screening.ErrStorageFault)
	r.scr.mu.Unlock()
	r.retry <- time.Now()
	r.presses <- device.ShortPress
	r.waitShown("NOT READY / Storage fault: call service")
	if r.has("show READY") && r.index("show READY") > r.index("Storage fault") {
		t.Errorf("READY again with the fault still there: %q", r.ev.all())
	}
}

// TestFrameTooLargeSaysSo: a frame over the pixel limit tells the
// technician what to change, not "press again".
func TestFrameTooLargeSaysSo(t *testing.T) {
	r := newRig(t, func(r *rig) {
		r.scr.result = func() (bool, string, int, int, error) {
			return false, "", 0, 0, fmt.Errorf("frame is 9216x6912: %w", screening.ErrFrameTooLarge)
		}
	})
	r.waitShown("READY")
	r.presses <- device.ShortPress
	r.waitShown("Frame too large: / lower camera res")
}

// TestStopMidAnalysis: SIGTERM (ctx cancelled) while a field is analysed:
// the Screener abandons it, nothing is shown as a result, Run returns nil
// after telling systemd it is stopping.
func TestStopMidAnalysis(t *testing.T) {
	r := newRig(t, func(r *rig) { r.scr.block = make(chan struct{}) })
	r.waitShown("READY")
	r.presses <- device.ShortPress
	r.waitShown("Analysing")
	r.cancel()
	if err := <-r.done; err != nil {
		t.Fatal(err)
	}
	r.done <- nil // for Cleanup
	if r.has("commit") || r.has("show Field") {
		t.Errorf("a result appeared: %q", r.ev.all())
	}
	if !r.has("notify STOPPING=1") || !r.has("light off") {
		t.Errorf("events: %q", r.ev.all())
	}
}
