package screening

import (
	"errors"
	"fmt"
	"syscall"

	"modernc.org/sqlite"
	sqlite3 "modernc.org/sqlite/lib"
)

// Errors a person has to act on. Each is wrapped with context; test with
// errors.Is. Their texts are written for the appliance's display and log.
var (
	// ErrStorageFull: the disk holding the results is full. Nothing of the
	// failed result was stored; it is safe to retry once space is freed.
	ErrStorageFull = errors.New("Storage full: export and delete old results")
	// ErrStorageBusy: another program holds the results database locked
	// for longer than the busy timeout. Nothing was stored; retry.
	ErrStorageBusy = errors.New("Storage busy: another program is using the results database; close it and retry")
	// ErrStorageFault: the results store cannot be written or read back
	// (a read-only or failing card, a damaged or removed database). Nothing
	// of the failed result was stored. Pressing again will not help: a
	// person must look.
	ErrStorageFault = errors.New("Storage fault: the results store cannot be written; call service")
	// ErrSchemaTooNew: the database was written by a newer allscreen.
	ErrSchemaTooNew = errors.New("results database is from a newer allscreen: update the software")
	// ErrNoStore: there is no results database in the state directory.
	ErrNoStore = errors.New("no results database")
	// ErrNoStick: an export target that is not a separate, mounted
	// filesystem (record.CheckTarget).
	ErrNoStick = errors.New("no USB stick: plug one in and mount it")
	// ErrNoOpenSample: a field or verdict was asked for with no sample open.
	ErrNoOpenSample = errors.New("no sample is open")
)

// sqliteCode returns the primary SQLite result code inside err, or 0.
func sqliteCode(err error) int {
	var se *sqlite.Error
	if errors.As(err, &se) {
		return se.Code() & 0xff
	}
	return 0
}

// classify maps low-level storage failures onto the errors above, keeping
// the original for the log. what says what was being done.
func classify(what string, err error) error {
	if err == nil {
		return nil
	}
	switch {
	case errors.Is(err, ErrStorageFull), errors.Is(err, ErrStorageBusy), errors.Is(err, ErrStorageFault):
		return fmt.Errorf("%s: %w", what, err)
	case errors.Is(err, syscall.ENOSPC), errors.Is(err, syscall.EDQUOT):
		return fmt.Errorf("%s: %w (%v)", what, ErrStorageFull, err)
	case errors.Is(err, syscall.EROFS), errors.Is(err, syscall.EIO), errors.Is(err, syscall.EACCES), errors.Is(err, syscall.EPERM):
		return fmt.Errorf("%s: %w (%w)", what, ErrStorageFault, err)
	}
	switch sqliteCode(err) {
	case sqlite3.SQLITE_FULL:
		return fmt.Errorf("%s: %w (%v)", what, ErrStorageFull, err)
	case sqlite3.SQLITE_BUSY, sqlite3.SQLITE_LOCKED:
		return fmt.Errorf("%s: %w (%v)", what, ErrStorageBusy, err)
	case sqlite3.SQLITE_READONLY, sqlite3.SQLITE_IOERR, sqlite3.SQLITE_CORRUPT, sqlite3.SQLITE_NOTADB,
		sqlite3.SQLITE_CANTOPEN, sqlite3.SQLITE_PERM:
		// %w twice: the original stays visible to isCorrupt.
		return fmt.Errorf("%s: %w (%w)", what, ErrStorageFault, err)
	}
	return fmt.Errorf("%s: %w", what, err)
}

// isCorrupt reports whether err says the database file itself is damaged
// (as opposed to a full disk, a lock or a permission problem, which must
// never cause a database to be set aside).
func isCorrupt(err error) bool {
	var ce corruptError
	if errors.As(err, &ce) {
		return true
	}
	switch sqliteCode(err) {
	case sqlite3.SQLITE_CORRUPT, sqlite3.SQLITE_NOTADB:
		return true
	}
	return false
}
