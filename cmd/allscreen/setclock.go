package main

import (
	"fmt"
	"time"

	"golang.org/x/sys/unix"

	"allscreen/screening"
)

func init() {
	register(command{name: "set-clock", summary: "apply a clock time a reviewer entered at the review station (run as root by allscreen-clock.service)", run: runSetClock})
}

// buildDate is the commit date of the build (-X main.buildDate=...): no
// clock is set earlier than it.
var buildDate = ""

func runSetClock(argv []string) error {
	fs := newFlags("set-clock", "")
	state := fs.String("state", screening.DefaultStateDir, "the daemon's state `DIR`")
	args, err := parseFlags(fs, argv)
	if err != nil {
		return err
	}
	if len(args) > 0 {
		fs.Usage()
		return errUsage
	}
	notBefore, _ := time.Parse(time.RFC3339, buildDate)
	set, err := screening.ApplyClockRequest(*state, settimeofday, time.Now, notBefore)
	if err != nil {
		return err
	}
	if set.IsZero() {
		fmt.Println("no clock request")
		return nil
	}
	fmt.Printf("clock set to %s\n", set.UTC().Format(time.RFC3339))
	return nil
}

func settimeofday(t time.Time) error {
	tv := unix.NsecToTimeval(t.UnixNano())
	return unix.Settimeofday(&tv)
}
