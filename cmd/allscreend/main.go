// Command allscreend is the appliance's daemon: it self-tests, then serves
// the capture button (short press: analyse a field; long press: the
// sample's verdict), shows results on the LEDs and display, and stores
// every result before showing it. Run by systemd (Type=notify); --sim
// draws the LEDs and display on the terminal and takes presses from the
// keyboard or from SIGUSR1 (short) and SIGUSR2 (long).
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"syscall"
	"time"

	"allscreen/device"
	"allscreen/internal/appliance"
	"allscreen/internal/config"
	"allscreen/screening"
)

// version is set at build time (-ldflags "-X main.version=...").
var version = "dev"

// buildDate is the commit date of the build (RFC 3339, -ldflags "-X
// main.buildDate=..."); a clock earlier than it was never set.
var buildDate = ""

func main() {
	os.Exit(run(os.Args[1:]))
}

type flags struct {
	config, stateDir, model, cameraFolder, cameraSequence, display, logLevel string
	cameraDevice                                                             int
	sim, version                                                             bool
}

func parseFlags(args []string) (flags, error) {
	var f flags
	fs := flag.NewFlagSet("allscreend", flag.ContinueOnError)
	fs.StringVar(&f.config, "config", config.DefaultPath, "configuration `file` (missing is fine with --sim: defaults apply)")
	fs.BoolVar(&f.sim, "sim", false, "simulate the button, LEDs and display on this terminal")
	fs.StringVar(&f.stateDir, "state-dir", "", "results `directory` (overrides storage.state_dir)")
	fs.StringVar(&f.model, "model", "", "detection model manifest `file` (overrides model.manifest)")
	fs.StringVar(&f.cameraFolder, "camera-folder", "", "take fields from the images in `dir` (overrides [camera])")
	fs.StringVar(&f.cameraSequence, "camera-sequence", "", "take fields from a printf `pattern` such as frames/f_%03d.png")
	fs.IntVar(&f.cameraDevice, "camera-device", -1, "USB camera /dev/video`N` (overrides camera.device)")
	fs.StringVar(&f.display, "display", "", "display `kind`: ssd1306, hd44780 or none (with --sim: the size drawn)")
	fs.StringVar(&f.logLevel, "log-level", "", "debug, info, warn or error (overrides daemon.log_level)")
	fs.BoolVar(&f.version, "version", false, "print the version and exit")
	err := fs.Parse(args)
	if err == nil && fs.NArg() > 0 {
		fs.Usage()
		err = fmt.Errorf("unexpected argument %q", fs.Arg(0))
	}
	return f, err
}

// applyFlags lays the flags over the file's configuration and validates
// the result (a flag can be as wrong as a file).
func applyFlags(c config.Config, f flags) (config.Config, error) {
	if f.stateDir != "" {
		c.Storage.StateDir = f.stateDir
	}
	if f.model != "" {
		c.Model.Manifest = f.model
	}
	switch {
	case f.cameraFolder != "":
		c.Camera.Source, c.Camera.Path = "folder", f.cameraFolder
	case f.cameraSequence != "":
		c.Camera.Source, c.Camera.Path = "sequence", f.cameraSequence
	case f.cameraDevice >= 0:
		c.Camera.Source, c.Camera.Device = "usb", f.cameraDevice
	}
	if f.display != "" {
		c.Display.Kind = f.display
	}
	if f.logLevel != "" {
		c.Daemon.LogLevel = f.logLevel
	}
	if err := c.Validate(); err != nil {
		return c, fmt.Errorf("after command-line flags: %w", err)
	}
	return c, nil
}

func run(args []string) int {
	started := time.Now()
	mallocTuned := tuneMalloc()
	f, err := parseFlags(args)
	if errors.Is(err, flag.ErrHelp) {
		return 0
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "allscreend:", err)
		return 2
	}
	if f.version {
		fmt.Println("allscreend", version)
		return 0
	}
	// A missing file is fine only for a simulation or when the default
	// path was not asked for explicitly and does not exist (a developer's
	// machine); the packaged service always installs one.
	cfg, _, err := config.Load(f.config, f.sim)
	if err == nil {
		cfg, err = applyFlags(cfg, f)
	}
	if err != nil {
		// Exit code 78 (EX_CONFIG): systemd's Restart=on-failure would
		// only repeat the same error; RestartPreventExitStatus stops it.
		fmt.Fprintf(os.Stderr, "allscreend: configuration error: %v\n", err)
		return exitConfig
	}
	log := newLogger(cfg.Daemon.LogLevel)
	log.Info("starting", "version", version, "config", f.config, "config_sha256", cfg.SHA256()[:12], "sim", f.sim)
	if cfg.Screening.Research {
		log.Warn("research mode (screening.research = true): screening settings may be outside the validated bounds; every result is marked RESEARCH and is not for a patient")
	}
	if !mallocTuned {
		log.Warn("could not set malloc's mmap threshold and arenas: resident memory will be higher")
	}

	unlock, err := lockState(cfg.Storage.StateDir)
	if err != nil {
		log.Error("cannot start", "err", err)
		fmt.Fprintln(os.Stderr, "allscreend:", err)
		return 1
	}
	defer unlock()

	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
	defer stop()

	hw, err := wire(ctx, cfg, f, log)
	if err != nil {
		log.Error("cannot start", "err", err)
		return 1
	}
	defer hw.Close()

	notifier, watchdog := systemdNotifier(log)
	retry := time.NewTicker(cfg.Daemon.Retry.Duration)
	defer retry.Stop()
	presses := make(chan device.Press)
	go func() {
		if err := hw.button.Run(ctx, presses); err != nil {
			log.Error("button stopped", "err", err)
		}
	}()
	readyOnce := false
	a, err := appliance.New(appliance.Options{
		Camera: hw.camera, Lights: hw.lights, Display: hw.display,
		Connect: hw.connect, Checks: hw.checks,
		Notifier: notifierFunc(func(state string) error {
			if state == "READY=1" && !readyOnce {
				readyOnce = true
				log.Info("self-test done", "since_start", time.Since(started).Round(time.Millisecond))
			}
			return notifier.Notify(state)
		}),
		Log: log, Retry: retry.C, Watchdog: watchdog,
		Research:      cfg.Screening.Research,
		MaxOpen:       cfg.Screening.MaxOpen.Duration,
		MinWhiteCells: cfg.Screening.MinWhiteCells,
		ClockNotSet:   func() bool { return clockNotSet(cfg.Storage.StateDir) },
	})
	if err != nil {
		log.Error("cannot start", "err", err)
		return 1
	}
	if err := a.Run(ctx, presses); err != nil {
		log.Error("stopped", "err", err)
		return 1
	}
	log.Info("stopped cleanly")
	return 0
}

const exitConfig = 78

func newLogger(level string) *slog.Logger {
	var l slog.Level
	_ = l.UnmarshalText([]byte(level)) // validated by config
	opts := &slog.HandlerOptions{Level: l}
	if os.Getenv("JOURNAL_STREAM") != "" {
		// journald stamps every line itself.
		opts.ReplaceAttr = func(groups []string, a slog.Attr) slog.Attr {
			if a.Key == slog.TimeKey && len(groups) == 0 {
				return slog.Attr{}
			}
			return a
		}
	}
	return slog.New(slog.NewTextHandler(os.Stderr, opts))
}

// clockNotSet: the clock reads earlier than the software's own commit (a
// Pi without a real-time clock or network starts in the past), or the
// kernel does not hold it as synchronized and nobody set it at the review
// station since this boot.
func clockNotSet(stateDir string) bool {
	if b, err := time.Parse(time.RFC3339, buildDate); err == nil && time.Now().Before(b) {
		return true
	}
	return !screening.ClockKnownSet(stateDir)
}
