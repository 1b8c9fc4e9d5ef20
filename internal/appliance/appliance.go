package appliance

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"time"

	"allscreen/device"
	"allscreen/screening"

	"gocv.io/x/gocv"
)

// Screener is what the appliance needs of screening.Screener; every method
// commits before it returns a result.
type Screener interface {
	Current() (screening.Sample, screening.Tally, bool)
	// Resumed: the open sample was found open when the session started
	// (a power cut or restart interrupted it).
	Resumed() bool
	StartSample(ctx context.Context) (screening.Sample, error)
	AddField(ctx context.Context, frame gocv.Mat, capturedAt time.Time) (screening.FieldResult, error)
	CloseSample(ctx context.Context) (screening.ClosedSample, error)
	// CloseIncomplete closes the open sample before it was finished
	// (screening.DecideIncomplete).
	CloseIncomplete(ctx context.Context, why string) (screening.ClosedSample, error)
	// Check reports a results store that can no longer be written (its
	// database removed or replaced under the daemon): screening.ErrStorageFault.
	Check() error
	// Notice is what a person must be told once at power-on, "" if
	// nothing: a damaged results database that was set aside.
	Notice() string
}

// Exporter is what a Screener may also do: write every signed report to
// the USB stick. With no sample open, a long press asks for it (issue 13:
// export from the device, by a button sequence). n is how many reports
// were written; screening.ErrNoStick says the stick is missing.
type Exporter interface {
	ExportReports(ctx context.Context) (n int, err error)
}

// storeCheck names the self-test item that connects the model and store.
const storeCheck = "model and results store"

// Notifier tells the service manager how the daemon is: "READY=1",
// "STATUS=...", "WATCHDOG=1", "STOPPING=1" (sd_notify states).
type Notifier interface {
	Notify(state string) error
}

// Clock is the time source.
type Clock interface{ Now() time.Time }

type systemClock struct{}

func (systemClock) Now() time.Time { return time.Now() }

// Check is one self-test item that can fail and recover.
type Check struct {
	Name string // "camera", "storage", ...
	// Run returns nil when the item works. Its error goes to the log.
	Run func(ctx context.Context) error
	// Advice is what the display says when it fails, for a person to act
	// on ("Plug in microscope"). Errors may refine it (see adviceFor).
	Advice string
}

// Options wire an Appliance.
type Options struct {
	Camera  device.Camera
	Lights  device.Lights
	Display device.Display
	// Connect loads the model and opens the result store, returning the
	// screening session. It is a self-test item: it is retried until it
	// works (a model reinstalled, a database unlocked).
	Connect func(ctx context.Context) (Screener, error)
	// Checks are the other self-test items (camera, storage, free space).
	Checks   []Check
	Notifier Notifier
	Log      *slog.Logger
	Clock    Clock
	// Retry and Watchdog deliver ticks: re-run failed checks; tell the
	// service manager the loop is alive. Either may be nil.
	Retry    <-chan time.Time
	Watchdog <-chan time.Time
	// Shown, when set, is called with every screen after it is shown
	// (the kill test and the logs use it).
	Shown func(lines []string)
	// MaxOpen: a sample open longer than this is closed as INCOMPLETE at
	// the next press or at power-on (a slide left on the stage, the next
	// patient's slide put under it); 0: no limit.
	MaxOpen time.Duration
	// ClockNotSet, when set, says whether the wall clock is not known to be
	// set (never synchronized, or earlier than the software's build):
	// READY then asks for it to be set, since every result carries times.
	ClockNotSet func() bool
	// MinWhiteCells is the count NO BLASTS SEEN needs (the verdict rule's):
	// the screens show progress toward it ("43/100 WBC"). 0: counts only.
	MinWhiteCells int
	// Research: the screening settings are outside the validated bounds
	// (config screening.research). Every screen then starts with RESEARCH,
	// and its last line gives way on a small display.
	Research bool
}

// Appliance runs the technician's flow.
type Appliance struct {
	o        Options
	scr      Screener
	failed   map[string]error // self-test items failing now
	advice   map[string]string
	dispDown bool
	lightErr bool
	// asked: the session's resumed sample has been put to the technician;
	// confirm: waiting for the answer (a press continues it, a long press
	// closes it as INCOMPLETE). Fields never silently join a sample found
	// open at power-on: it may be the previous patient's.
	asked, confirm bool
	// noticed: the session's Notice has been shown; ack: it is on the
	// display until a press acknowledges it (that press does nothing else).
	noticed, ack bool
	// nextSlide: a verdict is on the display; the next press asks for the
	// next slide rather than starting a sample on the one still there.
	nextSlide bool
}

// New checks the wiring.
func New(o Options) (*Appliance, error) {
	if o.Camera == nil || o.Lights == nil || o.Display == nil || o.Connect == nil {
		return nil, errors.New("appliance: camera, lights, display and Connect are required")
	}
	if o.Log == nil {
		o.Log = slog.New(slog.DiscardHandler)
	}
	if o.Clock == nil {
		o.Clock = systemClock{}
	}
	if o.Notifier == nil {
		o.Notifier = nopNotifier{}
	}
	return &Appliance{o: o, failed: map[string]error{}, advice: map[string]string{}}, nil
}

type nopNotifier struct{}

func (nopNotifier) Notify(string) error { return nil }

// Ready reports whether every self-test item passes.
func (a *Appliance) Ready() bool { return len(a.failed) == 0 }

// Run powers on, self-tests, then serves presses until ctx is done. A
// press being analysed when ctx ends is abandoned by the Screener
// (nothing half-stored); Run then shows that it stopped and returns nil.
func (a *Appliance) Run(ctx context.Context, presses <-chan device.Press) error {
	a.light(device.LightStarting)
	a.show(screenStarting())
	a.selfTest(ctx)
	a.notify("READY=1")
	a.settle(ctx)
	for {
		select {
		case <-ctx.Done():
			a.notify("STOPPING=1")
			a.light(device.LightOff)
			a.show([]string{"Stopped", "Results are safe"})
			return nil
		case <-a.o.Watchdog:
			a.notify("WATCHDOG=1")
		case <-a.o.Retry:
			if !a.Ready() {
				was := a.statusLine()
				a.selfTest(ctx)
				if a.statusLine() != was {
					a.settle(ctx)
				}
			}
		case p := <-presses:
			a.o.Log.Info("button", "press", p.String())
			a.press(ctx, p)
		}
	}
}

// selfTest runs every check (all of them at power-on, then only those
// failing) and records the failures.
func (a *Appliance) selfTest(ctx context.Context) {
	checks := append([]Check(nil), a.o.Checks...)
	checks = append(checks, Check{Name: storeCheck, Advice: "Model or storage fault: see log", Run: func(ctx context.Context) error {
		if a.scr != nil {
			return a.scr.Check()
		}
		s, err := a.o.Connect(ctx)
		if err != nil {
			return err
		}
		a.scr = s
		return nil
	}})
	// A fault seen by an operation (storage full on a save) with no check
	// of its own is cleared here: the next operation finds it again if it
	// is still there.
	for name := range a.failed {
		if !slices.ContainsFunc(checks, func(c Check) bool { return c.Name == name }) {
			delete(a.failed, name)
		}
	}
	for _, c := range checks {
		if ctx.Err() != nil {
			return
		}
		_, wasFailing := a.failed[c.Name]
		err := c.Run(ctx)
		switch {
		case err != nil:
			if !wasFailing || a.failed[c.Name].Error() != err.Error() {
				a.o.Log.Error("self-test failed", "check", c.Name, "err", err)
			}
			a.failed[c.Name] = err
			a.advice[c.Name] = adviceFor(c, err)
		case wasFailing:
			a.o.Log.Info("self-test recovered", "check", c.Name)
			delete(a.failed, c.Name)
		}
	}
	if a.Ready() {
		a.notify("STATUS=Ready")
	} else {
		a.notify("STATUS=Not ready: " + a.statusLine())
	}
}

// statusLine lists the failing items in words.
func (a *Appliance) statusLine() string {
	var parts []string
	for _, c := range a.order() {
		parts = append(parts, c+": "+a.advice[c])
	}
	return strings.Join(parts, "; ")
}

// order is the failing checks in a stable order (camera first: the one a
// technician most often fixes).
func (a *Appliance) order() []string {
	var out []string
	for _, c := range a.o.Checks {
		if _, ok := a.failed[c.Name]; ok {
			out = append(out, c.Name)
		}
	}
	var rest []string
	for name := range a.failed {
		if !slices.Contains(out, name) {
			rest = append(rest, name)
		}
	}
	slices.Sort(rest)
	return append(out, rest...)
}

// adviceFor refines a check's advice from its error.
func adviceFor(c Check, err error) string {
	switch {
	case errors.Is(err, screening.ErrStorageFull):
		return "Storage full: export results"
	case errors.Is(err, screening.ErrStorageBusy):
		return "Storage busy: retrying"
	case errors.Is(err, screening.ErrStorageFault):
		return "Storage fault: call service"
	case errors.Is(err, device.ErrNoCamera):
		return "No camera: plug in microscope"
	case strings.Contains(err.Error(), "model unusable"):
		return "Model missing or altered: reinstall"
	}
	return c.Advice
}

// showState shows READY (with the open sample) or the first failure.
func (a *Appliance) showState() {
	if !a.Ready() {
		a.light(device.LightFault)
		a.show(screenFault(a.advice[a.order()[0]]))
		return
	}
	a.light(device.LightReady)
	smp, t, ok := a.scr.Current()
	if a.ack {
		cols, rows := a.o.Display.Size()
		a.show(screenNotice(cols, rows))
		return
	}
	if ok && a.confirm {
		cols, rows := a.o.Display.Size()
		a.show(screenResume(smp, cols, rows))
	} else if ok {
		cols, rows := a.o.Display.Size()
		a.show(screenIdle(&smp, t, a.o.MinWhiteCells, cols, rows))
	} else if a.o.ClockNotSet != nil && a.o.ClockNotSet() {
		cols, rows := a.o.Display.Size()
		a.show(screenReadyClockNotSet(cols, rows))
	} else {
		cols, rows := a.o.Display.Size()
		a.show(screenIdle(nil, t, a.o.MinWhiteCells, cols, rows))
	}
}

// settle shows the state the appliance is in, after first dealing with
// an open sample that is too old or was found open at power-on.
func (a *Appliance) settle(ctx context.Context) {
	if a.Ready() && a.guardOpenSample(ctx) {
		return
	}
	a.showState()
}

// guardOpenSample closes an open sample older than MaxOpen as INCOMPLETE
// (showing its verdict), or marks a sample the session resumed as waiting
// for the technician's answer (showing the question). It returns true when
// it showed either: the press that led here is not the answer.
func (a *Appliance) guardOpenSample(ctx context.Context) bool {
	if a.scr == nil {
		return false
	}
	if !a.noticed {
		a.noticed = true
		if n := a.scr.Notice(); n != "" {
			a.ack = true
			a.o.Log.Warn("shown at power-on", "notice", n)
			a.showState()
			return true
		}
	}
	if a.ack {
		return false
	}
	smp, _, ok := a.scr.Current()
	if !ok {
		a.confirm = false
		return false
	}
	if age := a.o.Clock.Now().Sub(smp.OpenedAt); a.o.MaxOpen > 0 && age > a.o.MaxOpen {
		a.confirm = false
		a.closeIncomplete(ctx, fmt.Sprintf("open for %s, more than the %s allowed: the slide may have changed",
			age.Round(time.Minute), a.o.MaxOpen))
		return true
	}
	if !a.asked && a.scr.Resumed() {
		a.asked, a.confirm = true, true
		a.o.Log.Warn("sample found open at power-on: asking the technician", "sample", smp.Code, "opened", smp.OpenedAt)
		a.showState()
		return true
	}
	return false
}

func (a *Appliance) press(ctx context.Context, p device.Press) {
	if !a.Ready() {
		// A press is a person asking: try again now rather than at the
		// next retry tick.
		a.selfTest(ctx)
		if !a.Ready() {
			a.showState()
			return
		}
	}
	if a.guardOpenSample(ctx) {
		return
	}
	if a.ack {
		a.ack = false
		a.settle(ctx) // then the open-sample question, if any
		return
	}
	if a.nextSlide {
		a.nextSlide = false
		cols, rows := a.o.Display.Size()
		a.light(device.LightReady)
		a.show(screenNextSlide(cols, rows))
		return
	}
	if a.confirm {
		a.confirm = false
		if p == device.LongPress {
			a.closeIncomplete(ctx, "found open at power-on and closed by the technician")
			return
		}
		smp, _, _ := a.scr.Current()
		a.o.Log.Info("technician continued the sample found open at power-on", "sample", smp.Code)
		a.showState()
		return
	}
	switch p {
	case device.ShortPress:
		a.captureField(ctx)
	case device.LongPress:
		a.closeSample(ctx)
	}
}

func (a *Appliance) captureField(ctx context.Context) {
	smp, t, ok := a.scr.Current()
	code, next := "", 1
	if ok {
		code = smp.Code
		next = t.Fields + 1 // accepted fields; the store numbers rejected ones too
	}
	a.light(device.LightWorking)
	a.show(screenWorking(code, next))
	at := a.o.Clock.Now()
	frame, err := a.o.Camera.Capture(ctx)
	if err != nil {
		a.fieldFailed(ctx, "capture", err)
		return
	}
	res, err := a.scr.AddField(ctx, frame, at)
	frame.Close()
	if err != nil {
		a.fieldFailed(ctx, "analyse", err)
		return
	}
	cols, rows := a.o.Display.Size()
	if res.Accepted {
		a.light(device.LightReady)
	} else {
		a.light(device.LightRejected)
	}
	a.show(screenField(res, a.o.MinWhiteCells, cols, rows))
	a.notify(fmt.Sprintf("STATUS=Sample %s: %d fields, %d WBC, %d suspicious", res.Sample.Code,
		res.Running.Fields, res.Running.WhiteCells, res.Running.Blasts))
}

// fail records a fault an operation found under the self-test item name,
// with the advice adviceFor gives, and shows NOT READY.
func (a *Appliance) fail(name string, err error) {
	a.failed[name] = err
	a.advice[name] = adviceFor(Check{Name: name, Advice: "See log"}, err)
	a.notify("STATUS=Not ready: " + a.statusLine())
	a.showState()
}

// fieldFailed shows why a field produced no result. Nothing of it was
// stored (the Screener's promise), so the technician simply retries.
func (a *Appliance) fieldFailed(ctx context.Context, stage string, err error) {
	if ctx.Err() != nil {
		a.o.Log.Warn("field abandoned: shutting down", "stage", stage, "err", err)
		return
	}
	a.o.Log.Error("field failed", "stage", stage, "err", err)
	switch {
	case errors.Is(err, device.ErrNoCamera):
		a.fail("camera", err)
	case errors.Is(err, screening.ErrFrameTooLarge):
		a.light(device.LightRejected)
		a.show([]string{"Frame too large:", "lower camera res"})
	case errors.Is(err, device.ErrBadFrame), errors.Is(err, screening.ErrBadFrame):
		a.light(device.LightRejected)
		a.show([]string{"Bad camera frame:", "press again"})
	case errors.Is(err, screening.ErrStorageFull):
		a.fail("storage", err)
	case errors.Is(err, screening.ErrStorageBusy):
		a.light(device.LightFault)
		a.show([]string{"Storage busy:", "press again"})
	case errors.Is(err, screening.ErrStorageFault):
		// Pressing again cannot help (a read-only or failing card, a
		// damaged or removed database): NOT READY until the store's own
		// check passes again.
		a.fail(storeCheck, err)
	default:
		a.light(device.LightFault)
		a.show([]string{"Analysis failed:", "press again"})
	}
}

func (a *Appliance) closeSample(ctx context.Context) {
	if _, _, ok := a.scr.Current(); !ok {
		if exp, ok := a.scr.(Exporter); ok {
			a.exportReports(ctx, exp)
			return
		}
		a.light(device.LightReady)
		a.show([]string{"No sample open", "Press: new sample"})
		return
	}
	a.light(device.LightWorking)
	c, err := a.scr.CloseSample(ctx)
	a.showVerdict(ctx, c, err)
}

// closeIncomplete closes the open sample as INCOMPLETE for the reason why.
func (a *Appliance) closeIncomplete(ctx context.Context, why string) {
	a.light(device.LightWorking)
	c, err := a.scr.CloseIncomplete(ctx, why)
	if err == nil {
		a.o.Log.Warn("sample closed incomplete", "sample", c.Code, "why", why)
	}
	a.showVerdict(ctx, c, err)
}

// showVerdict shows a committed verdict, or why there is none.
func (a *Appliance) showVerdict(ctx context.Context, c screening.ClosedSample, err error) {
	if err != nil {
		a.fieldFailed(ctx, "verdict", err)
		return
	}
	switch c.Verdict.Outcome {
	case screening.Refer:
		a.light(device.LightRefer)
	case screening.NoBlastsSeen:
		a.light(device.LightNoBlasts)
	default:
		a.light(device.LightReview)
	}
	cols, rows := a.o.Display.Size()
	a.show(screenVerdict(c, cols, rows))
	a.nextSlide = true
	a.notify(fmt.Sprintf("STATUS=Sample %s: %s", c.Code, c.Verdict.Headline()))
}

// show puts lines on the display. A display that fails (absent, NACK) is
// logged once; the appliance goes on with its LEDs and retries the display
// with every screen.
func (a *Appliance) show(lines []string) {
	if a.o.Research {
		lines = append([]string{"RESEARCH"}, lines...)
	}
	err := a.o.Display.Show(lines)
	switch {
	case err != nil && !a.dispDown:
		a.dispDown = true
		a.o.Log.Error("display not working; carrying on with the LEDs", "err", err)
	case err == nil && a.dispDown:
		a.dispDown = false
		a.o.Log.Info("display working again")
	}
	a.o.Log.Info("shown", "lines", strings.Join(lines, " / "))
	if a.o.Shown != nil {
		a.o.Shown(lines)
	}
}

func (a *Appliance) light(l device.Light) {
	err := a.o.Lights.Set(l)
	switch {
	case err != nil && !a.lightErr:
		a.lightErr = true
		a.o.Log.Error("LEDs not working", "err", err)
	case err == nil && a.lightErr:
		a.lightErr = false
		a.o.Log.Info("LEDs working again")
	}
}

func (a *Appliance) notify(state string) {
	if err := a.o.Notifier.Notify(state); err != nil {
		a.o.Log.Warn("notify service manager", "state", state, "err", err)
	}
}

// exportReports writes the signed reports to the USB stick and says how it
// went; a missing stick is said in words, and nothing else changes.
func (a *Appliance) exportReports(ctx context.Context, exp Exporter) {
	a.light(device.LightWorking)
	a.show([]string{"Exporting signed", "reports to USB"})
	n, err := exp.ExportReports(ctx)
	switch {
	case err == nil:
		a.o.Log.Info("signed reports exported", "reports", n)
		a.light(device.LightReady)
		a.show([]string{fmt.Sprintf("%d reports", n), "saved to USB"})
	case errors.Is(err, screening.ErrNoStick):
		a.o.Log.Warn("export refused", "err", err)
		a.light(device.LightRejected)
		a.show([]string{"No USB stick:", "plug in, hold"})
	default:
		a.o.Log.Error("export failed", "err", err)
		a.light(device.LightFault)
		a.show([]string{"Export failed:", "see log"})
	}
}
