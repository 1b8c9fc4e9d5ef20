package screening

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"time"
)

// Setting the clock (issue 15 item 7). A Pi without a real-time clock or a
// network starts with the wrong time, and every result carries times. A
// reviewer sets it at the review station; neither the station nor the
// daemon may change the clock (ProtectClock=, no capabilities), so the
// station leaves a request in the state directory and a one-shot root unit
// (allscreen-clock.path -> allscreen-clock.service -> allscreen set-clock)
// applies it. A clock set so holds until the next boot: the device marks
// it with the boot's ID.

// Files in the state directory.
const (
	ClockRequestName = "clock-request.json"
	ClockSetName     = "clock-set"
)

// ClockRequestMaxAge: a request older than this (by the device's own
// clock, wrong as it may be, the elapsed time is right) is stale.
const ClockRequestMaxAge = 10 * time.Minute

type clockRequest struct {
	Time time.Time `json:"time"` // what the reviewer said it is
	By   string    `json:"by"`
}

// RequestClock leaves a request to set the clock to t, with an audit entry.
func (s *Store) RequestClock(ctx context.Context, t time.Time, by string) error {
	if err := checkClockTime(t, time.Time{}); err != nil {
		return err
	}
	b, _ := json.Marshal(clockRequest{Time: t.UTC(), By: by})
	err := s.writeTx(ctx, "set the clock", func(tx *sql.Tx, now time.Time) error {
		return audit(ctx, tx, now, by, "set-clock", 0, 0, now.UTC().Format(time.RFC3339), t.UTC().Format(time.RFC3339), "")
	})
	if err != nil {
		return err
	}
	return writeDurable(s.files, filepath.Join(s.dir, ClockRequestName), b)
}

// ErrBadClockTime: a time no clock of this device should be set to.
var ErrBadClockTime = errors.New("that time cannot be right: check the date and the year")

func checkClockTime(t, notBefore time.Time) error {
	if t.Year() < 2025 || t.Year() > 2100 || (!notBefore.IsZero() && t.Before(notBefore)) {
		return fmt.Errorf("%s: %w", t.Format(time.RFC3339), ErrBadClockTime)
	}
	return nil
}

// ApplyClockRequest sets the clock from a request in stateDir, if one is
// there and fresh: to the requested time plus what elapsed since it was
// written. notBefore is the software's build time (zero: none). It removes
// the request whatever happens, and marks the clock set for this boot.
func ApplyClockRequest(stateDir string, set func(time.Time) error, now func() time.Time, notBefore time.Time) (time.Time, error) {
	path := filepath.Join(stateDir, ClockRequestName)
	st, err := os.Lstat(path)
	if errors.Is(err, fs.ErrNotExist) {
		return time.Time{}, nil
	}
	if err != nil {
		return time.Time{}, err
	}
	defer os.Remove(path)
	if !st.Mode().IsRegular() || st.Size() > 4096 {
		return time.Time{}, fmt.Errorf("%s is not a clock request", path)
	}
	raw, err := os.ReadFile(path)
	if err != nil {
		return time.Time{}, err
	}
	var req clockRequest
	if err := json.Unmarshal(raw, &req); err != nil {
		return time.Time{}, fmt.Errorf("%s: %w", path, err)
	}
	elapsed := now().Sub(st.ModTime())
	if elapsed < 0 || elapsed > ClockRequestMaxAge {
		return time.Time{}, fmt.Errorf("the request to set the clock is stale (%v old): ask again", elapsed.Round(time.Second))
	}
	target := req.Time.Add(elapsed)
	if err := checkClockTime(target, notBefore); err != nil {
		return time.Time{}, err
	}
	if err := set(target); err != nil {
		return time.Time{}, fmt.Errorf("set the clock: %w", err)
	}
	boot, _ := os.ReadFile(bootIDFile)
	return target, writeDurable(osFileSystem{}, filepath.Join(stateDir, ClockSetName), boot)
}

var bootIDFile = "/proc/sys/kernel/random/boot_id"

// ClockSetThisBoot says whether a person set the clock since this boot.
func ClockSetThisBoot(stateDir string) bool {
	mark, err1 := os.ReadFile(filepath.Join(stateDir, ClockSetName))
	boot, err2 := os.ReadFile(bootIDFile)
	return err1 == nil && err2 == nil && len(boot) > 0 && strings.TrimSpace(string(mark)) == strings.TrimSpace(string(boot))
}

// ClockKnownSet says whether the clock can be trusted: the kernel holds it
// as synchronized, or a person set it since this boot. READY, the review
// station and every sample's record ask this one question.
func ClockKnownSet(stateDir string) bool {
	return ClockSynchronized() || ClockSetThisBoot(stateDir)
}
