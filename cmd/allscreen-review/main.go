// Command allscreen-review is the review station: a web application on the
// device where a reviewer sees every cell the device called, reclassifies,
// and signs (internal/station). It is its own process and systemd unit, so
// the capture daemon (allscreend) keeps no network; it serves one address,
// loopback by default, and shares the daemon's results store.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/signal"
	"syscall"
	"time"

	sdnotify "github.com/coreos/go-systemd/v22/daemon"

	"allscreen/internal/config"
	"allscreen/internal/station"
	"allscreen/screening"
)

// version is set at build time (-ldflags "-X main.version=...").
var version = "dev"

const exitConfig = 78 // EX_CONFIG: restarting does not cure it

func main() { os.Exit(run(os.Args[1:])) }

func run(args []string) int {
	fs := flag.NewFlagSet("allscreen-review", flag.ContinueOnError)
	cfgPath := fs.String("config", config.DefaultPath, "configuration `file` (missing: defaults)")
	stateDir := fs.String("state-dir", "", "results `directory` (overrides storage.state_dir)")
	listen := fs.String("listen", "", "`host:port` to serve (overrides review.listen; an IP address, never 0.0.0.0)")
	showVersion := fs.Bool("version", false, "print the version and exit")
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return 0
		}
		return 2
	}
	if *showVersion {
		fmt.Println("allscreen-review", version)
		return 0
	}
	cfg, _, err := config.Load(*cfgPath, true)
	if err == nil {
		if *stateDir != "" {
			cfg.Storage.StateDir = *stateDir
		}
		if *listen != "" {
			cfg.Review.Listen = *listen
		}
		err = cfg.Validate()
	}
	if err != nil {
		fmt.Fprintf(os.Stderr, "allscreen-review: configuration error: %v\n", err)
		return exitConfig
	}
	log := slog.New(slog.NewTextHandler(os.Stderr, nil))
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
	defer stop()
	if err := serve(ctx, cfg, log); err != nil {
		log.Error("review station stopped", "err", err)
		return 1
	}
	return 0
}

func serve(ctx context.Context, cfg config.Config, log *slog.Logger) error {
	store, err := screening.OpenExisting(ctx, cfg.Storage.StateDir, screening.Options{Logger: log})
	if err != nil {
		return err
	}
	defer store.Close()
	ln, err := net.Listen("tcp", cfg.Review.Listen)
	if err != nil {
		return err
	}
	ctx, restart := context.WithCancelCause(ctx)
	defer restart(nil)
	srv := &http.Server{
		Handler: station.New(store, station.Options{Logger: log, Device: screening.DeviceID(), ExportDir: cfg.Review.ExportDir,
			// The database was replaced (set aside by the daemon) or fails:
			// end, and systemd starts the station again on the current one.
			OnStorageFault: func(err error) { restart(err) }}),
		ReadHeaderTimeout: 5 * time.Second,
		ReadTimeout:       30 * time.Second,
		WriteTimeout:      60 * time.Second,
		IdleTimeout:       2 * time.Minute,
		MaxHeaderBytes:    16 << 10,
		ErrorLog:          slog.NewLogLogger(log.Handler(), slog.LevelWarn),
	}
	done := make(chan error, 1)
	go func() { done <- srv.Serve(ln) }()
	log.Info("review station ready", "url", "http://"+ln.Addr().String()+"/", "state", cfg.Storage.StateDir, "version", version)
	sdnotify.SdNotify(false, sdnotify.SdNotifyReady)
	select {
	case err := <-done:
		return err
	case <-ctx.Done():
	}
	cause := context.Cause(ctx)
	fault := cause != nil && !errors.Is(cause, context.Canceled)
	if !fault {
		sdnotify.SdNotify(false, sdnotify.SdNotifyStopping)
	}
	shut, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	err = srv.Shutdown(shut)
	if fault {
		return cause
	}
	return err
}
