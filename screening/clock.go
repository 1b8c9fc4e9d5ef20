package screening

import (
	"time"

	"golang.org/x/sys/unix"
)

// Clock tells the time. It is an interface so tests control time instead of
// sleeping.
type Clock interface {
	Now() time.Time
}

// SystemClock is the wall clock.
type SystemClock struct{}

// Now returns the current time.
func (SystemClock) Now() time.Time { return time.Now() }

// ClockSynchronized says whether the kernel holds the wall clock as
// synchronized (by NTP, or by a real-time clock's service that says so):
// adjtimex's state is not TIME_ERROR and STA_UNSYNC is clear. A Pi with no
// real-time clock and no network starts unsynchronized, possibly in the
// past; every sample records what was known, and reports say it.
func ClockSynchronized() bool {
	var tx unix.Timex
	state, err := unix.Adjtimex(&tx)
	return err == nil && state != unix.TIME_ERROR && tx.Status&unix.STA_UNSYNC == 0
}
