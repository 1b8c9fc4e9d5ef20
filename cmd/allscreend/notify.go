package main

import (
	"log/slog"
	"time"

	sdnotify "github.com/coreos/go-systemd/v22/daemon"
)

type notifierFunc func(state string) error

func (f notifierFunc) Notify(state string) error { return f(state) }

// systemdNotifier sends sd_notify states to $NOTIFY_SOCKET (a no-op when
// not run by systemd) and returns the watchdog ticks: at half the
// WatchdogSec systemd set, or none.
func systemdNotifier(log *slog.Logger) (notifierFunc, <-chan time.Time) {
	n := notifierFunc(func(state string) error {
		_, err := sdnotify.SdNotify(false, state)
		return err
	})
	every, err := sdnotify.SdWatchdogEnabled(false)
	if err != nil {
		log.Warn("watchdog settings unreadable; not pinging", "err", err)
		return n, nil
	}
	if every <= 0 {
		return n, nil
	}
	log.Info("watchdog on", "ping_every", every/2)
	return n, time.NewTicker(every / 2).C
}
