package screening

import (
	"bytes"
	"context"
	"database/sql"
	"errors"
	"os"
	"strings"
	"time"
	"unicode"
)

// Identity (issue 13): which specimen a sample is, who captured it, on which
// device. A technician enters the next slide's specimen ID (typed, or
// scanned: a USB barcode scanner is a keyboard) and their name at the
// review station before pressing the button; the daemon's next sample
// takes it. An entry older than PendingSpecimenMaxAge is never taken: a
// slide entered and then abandoned must not name another patient's sample.

// PendingSpecimenMaxAge is how long an entered specimen waits for its sample.
const PendingSpecimenMaxAge = 30 * time.Minute

// ErrBadSpecimen: a specimen ID or operator name that cannot be stored.
var ErrBadSpecimen = errors.New("a specimen ID and an operator name are 1-64 printable characters")

func checkIdentityText(s string) error {
	if s == "" || len(s) > 64 || strings.TrimSpace(s) != s || strings.IndexFunc(s, unicode.IsControl) >= 0 {
		return ErrBadSpecimen
	}
	return nil
}

// EnterNextSpecimen records the specimen ID and operator for the next
// sample the daemon starts. A newer entry replaces an untaken older one.
func (s *Store) EnterNextSpecimen(ctx context.Context, specimen, operator, by string) error {
	specimen, operator = strings.TrimSpace(specimen), strings.TrimSpace(operator)
	if checkIdentityText(specimen) != nil || checkIdentityText(operator) != nil {
		return ErrBadSpecimen
	}
	return s.writeTx(ctx, "enter specimen", func(tx *sql.Tx, now time.Time) error {
		if _, err := tx.ExecContext(ctx, `DELETE FROM pending_specimens WHERE sample_id IS NULL`); err != nil {
			return err
		}
		if _, err := tx.ExecContext(ctx, `INSERT INTO pending_specimens (specimen_id, operator, entered_at, entered_by)
			VALUES (?, ?, ?, ?)`, specimen, operator, formatTime(now), by); err != nil {
			return err
		}
		return audit(ctx, tx, now, by, "enter-specimen", 0, 0, "", specimen+" by "+operator, "")
	})
}

// PendingSpecimen is the entry waiting for the next sample, if any.
func (s *Store) PendingSpecimen(ctx context.Context) (specimen, operator string, at time.Time, ok bool, err error) {
	var t string
	err = s.db.QueryRowContext(ctx, `SELECT specimen_id, operator, entered_at FROM pending_specimens
		WHERE sample_id IS NULL ORDER BY id DESC LIMIT 1`).Scan(&specimen, &operator, &t)
	if errors.Is(err, sql.ErrNoRows) {
		return "", "", time.Time{}, false, nil
	}
	if err != nil {
		return "", "", time.Time{}, false, classify("read pending specimen", err)
	}
	at, err = parseTime(t)
	if err != nil || s.opt.Clock.Now().Sub(at) > PendingSpecimenMaxAge {
		return "", "", time.Time{}, false, nil
	}
	return specimen, operator, at, true, nil
}

// takePendingSpecimen gives a new sample the waiting entry, inside the
// transaction that creates it.
func takePendingSpecimen(ctx context.Context, tx *sql.Tx, sampleID int64, now time.Time) (specimen, operator string, err error) {
	var id int64
	var at string
	err = tx.QueryRowContext(ctx, `SELECT id, specimen_id, operator, entered_at FROM pending_specimens
		WHERE sample_id IS NULL ORDER BY id DESC LIMIT 1`).Scan(&id, &specimen, &operator, &at)
	if errors.Is(err, sql.ErrNoRows) {
		return "", "", nil
	}
	if err != nil {
		return "", "", err
	}
	if t, perr := parseTime(at); perr != nil || now.Sub(t) > PendingSpecimenMaxAge || now.Before(t.Add(-time.Minute)) {
		return "", "", nil // stale (or from a clock since set back): never attach it
	}
	if _, err := tx.ExecContext(ctx, `UPDATE pending_specimens SET sample_id = ? WHERE id = ?`, sampleID, id); err != nil {
		return "", "", err
	}
	_, err = tx.ExecContext(ctx, `UPDATE samples SET specimen_id = ?, operator = ? WHERE id = ?`, specimen, operator, sampleID)
	return specimen, operator, err
}

// SetSpecimen records a sample's specimen ID and operator after the fact
// (nobody entered them before it started, or they were wrong). A signed
// result refuses (ErrSigned): amend it first. The audit trail keeps both.
func (s *Store) SetSpecimen(ctx context.Context, code, specimen, operator, by string) error {
	specimen, operator = strings.TrimSpace(specimen), strings.TrimSpace(operator)
	if checkIdentityText(specimen) != nil || checkIdentityText(operator) != nil {
		return ErrBadSpecimen
	}
	return s.reviewTx(ctx, "set specimen", code, func(tx *sql.Tx, d *SampleDetail, now time.Time) error {
		if d.Current().Signed() {
			return ErrSigned
		}
		if _, err := tx.ExecContext(ctx, `UPDATE samples SET specimen_id = ?, operator = ? WHERE id = ?`, specimen, operator, d.ID); err != nil {
			return err
		}
		before := ""
		if d.SpecimenID != "" || d.Operator != "" {
			before = d.SpecimenID + " by " + d.Operator
		}
		return audit(ctx, tx, now, by, "set-specimen", d.ID, 0, before, specimen+" by "+operator, "")
	})
}

// Where DeviceID looks, in order: the Raspberry Pi's serial number, then the
// machine ID systemd writes at first boot.
var deviceIDFiles = []string{"/proc/device-tree/serial-number", "/sys/firmware/devicetree/base/serial-number", "/etc/machine-id"}

// DeviceID names this device: its board serial, else its machine ID
// (16 hex digits kept), else "unknown".
func DeviceID() string { return deviceIDFrom(deviceIDFiles) }

func deviceIDFrom(files []string) string {
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			continue
		}
		id := strings.TrimSpace(string(bytes.Trim(b, "\x00")))
		id = strings.TrimLeft(id, "0") // Pi serials are zero-padded
		if len(id) > 16 {
			id = id[:16]
		}
		if id != "" && strings.Trim(strings.ToLower(id), "0123456789abcdef") == "" {
			return strings.ToLower(id)
		}
	}
	return "unknown"
}
