package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"path/filepath"
	"sync"
	"syscall"
	"time"

	"allscreen/device"
	"allscreen/device/button"
	"allscreen/device/camera"
	"allscreen/device/hd44780"
	"allscreen/device/leds"
	"allscreen/device/sim"
	"allscreen/device/ssd1306"
	"allscreen/internal/appliance"
	"allscreen/internal/config"
	"allscreen/model"
	"allscreen/screening"
	"allscreen/screening/record"
	"allscreen/vision"

	"gocv.io/x/gocv"

	"periph.io/x/conn/v3/gpio"
	"periph.io/x/conn/v3/gpio/gpioreg"
	"periph.io/x/conn/v3/i2c/i2creg"
	"periph.io/x/host/v3"
)

// parts is the wired appliance: its devices and how to reach screening.
type parts struct {
	camera  device.Camera
	button  device.Button
	lights  device.Lights
	display device.Display
	checks  []appliance.Check
	connect func(ctx context.Context) (appliance.Screener, error)
	closers []func() error
}

func (p *parts) Close() {
	for i := len(p.closers) - 1; i >= 0; i-- {
		p.closers[i]()
	}
}

func wire(ctx context.Context, cfg config.Config, f flags, log *slog.Logger) (*parts, error) {
	p := &parts{}
	cam, err := newCamera(cfg, log)
	if err != nil {
		return nil, err
	}
	p.camera = cam
	p.closers = append(p.closers, cam.Close)
	if c, ok := cam.(interface{ Check() error }); ok {
		p.checks = append(p.checks, appliance.Check{Name: "camera", Advice: "No camera: plug in microscope",
			Run: func(context.Context) error { return c.Check() }})
	}
	p.checks = append(p.checks, appliance.Check{Name: "storage", Advice: "Storage not writable: see log",
		Run: func(context.Context) error { return checkStorage(cfg.Storage.StateDir, cfg.Storage.MinFreeMB) }})

	simulate := f.sim
	if !simulate {
		if err := wireHardware(ctx, p, cfg, log); err != nil {
			if !errors.Is(err, errNoHardware) {
				return nil, err
			}
			log.Error("no GPIO hardware found: running the simulated panel instead", "err", err)
			simulate = true
		}
	}
	if simulate {
		wireSim(ctx, p, cfg, f)
	}
	p.connect = connector(cfg, log, &p.closers)
	return p, nil
}

func newCamera(cfg config.Config, log *slog.Logger) (device.Camera, error) {
	switch cfg.Camera.Source {
	case "folder":
		return camera.NewFolder(cfg.Camera.Path, loadFrame)
	case "sequence":
		return camera.NewSequence(cfg.Camera.Path, log), nil
	}
	return camera.NewUSB(camera.USBOptions{Index: cfg.Camera.Device, Width: cfg.Camera.Width, Height: cfg.Camera.Height,
		Discard: cfg.Camera.Discard, Log: log}), nil
}

// loadFrame reads an image file as a camera frame, refusing one over
// screening.MaxFramePixels from its header, before its pixels take the
// memory (a 64 MP file decoded took the daemon to 486 MB, over MemoryMax).
func loadFrame(path string) (gocv.Mat, error) {
	if w, h, err := vision.ImageSize(path); err == nil && int64(w)*int64(h) > screening.MaxFramePixels {
		return gocv.Mat{}, fmt.Errorf("%s is %dx%d: %w", path, w, h, screening.ErrFrameTooLarge)
	}
	return vision.LoadImage(path)
}

var errNoHardware = errors.New("no GPIO hardware")

// wireHardware finds the pins and bus by name (the one place that opens
// hardware) and hands them to the drivers.
func wireHardware(ctx context.Context, p *parts, cfg config.Config, log *slog.Logger) error {
	if _, err := host.Init(); err != nil {
		return fmt.Errorf("%w: %v", errNoHardware, err)
	}
	btnPin := gpioreg.ByName(cfg.Button.Pin)
	if btnPin == nil {
		return fmt.Errorf("%w: button pin %q not found (not a Raspberry Pi, or gpio group missing?)", errNoHardware, cfg.Button.Pin)
	}
	b, err := button.New(btnPin, button.Options{ActiveLow: cfg.Button.ActiveLow, Debounce: cfg.Button.Debounce.Duration,
		Long: cfg.Button.LongPress.Duration})
	if err != nil {
		return err
	}
	p.button = b
	pin := func(name string) gpio.PinOut {
		if name == "" {
			return nil
		}
		if q := gpioreg.ByName(name); q != nil {
			return q
		}
		log.Error("LED pin not found; that LED stays dark", "pin", name)
		return nil
	}
	l, err := leds.New(pin(cfg.Lights.Green), pin(cfg.Lights.Amber), pin(cfg.Lights.Red))
	if err != nil {
		log.Error("LEDs", "err", err)
	}
	p.lights = l
	t := time.NewTicker(leds.TickEvery)
	go l.Run(ctx, t.C)
	p.closers = append(p.closers, func() error { t.Stop(); return nil })
	p.display = &lazyDisplay{open: func() (device.Display, error) { return openDisplay(cfg, &p.closers) }, cols: 16, rows: 2, log: log}
	return nil
}

func openDisplay(cfg config.Config, closers *[]func() error) (device.Display, error) {
	if cfg.Display.Kind == "none" {
		return noDisplay{}, nil
	}
	bus, err := i2creg.Open(cfg.Display.Bus)
	if err != nil {
		return nil, fmt.Errorf("I2C bus %q: %w (i2c group, or dtparam=i2c_arm=on missing?)", cfg.Display.Bus, err)
	}
	addr := uint16(cfg.Display.Address)
	var d device.Display
	if cfg.Display.Kind == "hd44780" {
		if addr == 0 {
			addr = hd44780.DefaultAddr
		}
		d, err = hd44780.New(bus, addr, nil)
	} else {
		if addr == 0 {
			addr = ssd1306.DefaultAddr
		}
		d, err = ssd1306.New(bus, addr)
	}
	if err != nil {
		bus.Close()
		return nil, err
	}
	*closers = append(*closers, bus.Close)
	return d, nil
}

// lazyDisplay opens the display on first use and again after it failed to
// open, so a display plugged in (or fixed) later is picked up.
type lazyDisplay struct {
	mu         sync.Mutex
	open       func() (device.Display, error)
	d          device.Display
	cols, rows int
	log        *slog.Logger
}

func (l *lazyDisplay) Show(lines []string) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.d == nil {
		d, err := l.open()
		if err != nil {
			return err
		}
		l.d = d
		l.cols, l.rows = d.Size()
	}
	return l.d.Show(lines)
}

func (l *lazyDisplay) Size() (int, int) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.cols, l.rows
}

type noDisplay struct{}

func (noDisplay) Show([]string) error { return nil }
func (noDisplay) Size() (int, int)    { return 16, 2 }

// wireSim draws the panel on stdout and takes presses from stdin and
// SIGUSR1 (short) / SIGUSR2 (long).
func wireSim(ctx context.Context, p *parts, cfg config.Config, f flags) {
	cols, rows := 18, 4
	if cfg.Display.Kind == "hd44780" {
		cols, rows = 16, 2
	}
	panel := sim.NewPanel(os.Stdout, sim.IsTerminal(os.Stdout), cols, rows)
	p.lights = panel
	p.display = panel
	if cfg.Display.Kind == "hd44780" {
		// Send the text through the real driver into the emulated
		// controller and draw what it decodes: the panel shows exactly
		// what the LCD would.
		emu := hd44780.NewEmulator(hd44780.DefaultAddr)
		if lcd, err := hd44780.New(emu, hd44780.DefaultAddr, func(time.Duration) {}); err == nil {
			p.display = &emulatedLCD{lcd: lcd, emu: emu, panel: panel}
		}
	}
	sig := make(chan os.Signal, 4)
	signal.Notify(sig, syscall.SIGUSR1, syscall.SIGUSR2)
	p.button = &sim.Button{In: os.Stdin, Signals: sig, Map: func(s os.Signal) (device.Press, bool) {
		switch s {
		case syscall.SIGUSR1:
			return device.ShortPress, true
		case syscall.SIGUSR2:
			return device.LongPress, true
		}
		return 0, false
	}}
	p.closers = append(p.closers, func() error { signal.Stop(sig); return nil })
}

type emulatedLCD struct {
	lcd   *hd44780.Dev
	emu   *hd44780.Emulator
	panel *sim.Panel
}

func (e *emulatedLCD) Show(lines []string) error {
	if err := e.lcd.Show(lines); err != nil {
		return err
	}
	return e.panel.ShowFitted(e.emu.Lines())
}

func (e *emulatedLCD) Size() (int, int) { return e.lcd.Size() }

// connector loads the model and opens the store: the self-test item that
// refuses to screen with a missing or altered model.
func connector(cfg config.Config, log *slog.Logger, closers *[]func() error) func(ctx context.Context) (appliance.Screener, error) {
	return func(ctx context.Context) (appliance.Screener, error) {
		net, err := model.LoadWithSubtype(cfg.Model.Manifest, cfg.Model.SubtypeManifest)
		if err != nil {
			return nil, err
		}
		var cal *model.Calibration
		if cfg.Model.Calibration != "" {
			// the laboratory's own measurement replaces the model's blast
			// and OOD thresholds and its per-cell false-positive rate; a
			// calibration that does not fit the model stops the self-test
			cal, err = model.ReadCalibration(cfg.Model.Calibration)
			if err == nil {
				err = net.ApplyCalibration(cal)
			}
			if err != nil {
				net.Close()
				return nil, fmt.Errorf("model.calibration %s: %w", cfg.Model.Calibration, err)
			}
		}
		rule, err := screening.RuleFor(net.Manifest().Operating, screening.RuleConfig{
			MinWhiteCells: cfg.Screening.MinWhiteCells, ReferAlpha: cfg.Screening.ReferAlpha, ReferBlasts: cfg.Screening.ReferBlasts,
			MaxUncertainFraction: cfg.Screening.MaxUncertainFraction, MaxOutOfDistributionFraction: cfg.Screening.MaxOutOfDistributionFraction})
		if err != nil {
			net.Close()
			return nil, err
		}
		if cal != nil {
			log.Info("site calibration loaded", "laboratory", cal.Laboratory, "normal_cells", cal.NormalCells,
				"blast_threshold", cal.BlastThreshold, "ood_threshold", cal.OODThreshold, "cell_false_positive_rate", cal.CellFalsePositiveRate)
		}
		prefix := cfg.Screening.CodePrefix
		if prefix == "auto" {
			prefix = screening.DevicePrefix(screening.DeviceID())
		}
		store, err := screening.Open(ctx, cfg.Storage.StateDir, screening.Options{Logger: log, CodePrefix: prefix,
			ClockSynchronized: func() bool { return screening.ClockKnownSet(cfg.Storage.StateDir) }})
		if err != nil {
			net.Close()
			return nil, err
		}
		if r := store.Recovery(); r != nil {
			log.Error(r.Message())
		}
		scr, err := screening.NewScreener(ctx, store, screening.ScreenerConfig{
			Analyzer: &screening.Analyzer{Gate: qualityGate, Find: vision.DefaultFindOptions, Classifier: net},
			Rule:     rule,
			Provenance: screening.Provenance{ModelSHA256: net.Manifest().ONNXSHA256, ConfigSHA256: cfg.SHA256(),
				SoftwareVersion: version, Research: cfg.Screening.Research, DeviceID: screening.DeviceID(),
				Labels: net.Manifest().Labels},
			Logger: log,
		})
		if err != nil {
			store.Close()
			net.Close()
			return nil, err
		}
		*closers = append(*closers, net.Close, store.Close)
		return &exportingScreener{Screener: scr, store: store, target: cfg.Review.ExportDir}, nil
	}
}

// exportingScreener is the session with the export a long press asks for
// when no sample is open: every signed report (PDF and FHIR) to the USB
// stick mounted at review.export_dir.
type exportingScreener struct {
	*screening.Screener
	store  *screening.Store
	target string
}

func (e *exportingScreener) ExportReports(ctx context.Context) (int, error) {
	if err := record.CheckTarget(e.target, e.store.Dir()); err != nil {
		return 0, err
	}
	sum, err := record.ExportSigned(ctx, e.store, e.target, record.Options{Now: time.Now(), Device: screening.DeviceID()})
	return sum.Reports, err
}

// checkStorage proves the state directory takes a durable write and has
// room for results.
func checkStorage(dir string, minFreeMB int) error {
	if err := os.MkdirAll(dir, 0o750); err != nil {
		return fmt.Errorf("state directory: %w", err)
	}
	probe := filepath.Join(dir, ".selftest")
	fh, err := os.Create(probe)
	if err == nil {
		_, err = fh.Write([]byte("ok"))
		if err2 := fh.Sync(); err == nil {
			err = err2
		}
		fh.Close()
		os.Remove(probe)
	}
	if err != nil {
		if errors.Is(err, syscall.ENOSPC) {
			return fmt.Errorf("state directory %s: %w", dir, screening.ErrStorageFull)
		}
		return fmt.Errorf("state directory %s not writable: %w", dir, err)
	}
	var st syscall.Statfs_t
	if err := syscall.Statfs(dir, &st); err != nil {
		return fmt.Errorf("free space of %s: %w", dir, err)
	}
	free := st.Bavail * uint64(st.Bsize) >> 20
	if free < uint64(minFreeMB) {
		return fmt.Errorf("%d MB free in %s, %d MB needed: %w", free, dir, minFreeMB, screening.ErrStorageFull)
	}
	return nil
}

// qualityGate rejects a field that cannot be analysed (exposure, no stain,
// focus) with the technician's next step.
func qualityGate(field gocv.Mat) (string, error) {
	q := vision.CheckQuality(field)
	if q.OK() {
		return "", nil
	}
	return q.Advice(), nil
}
