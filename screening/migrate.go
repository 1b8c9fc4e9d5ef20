package screening

import (
	"context"
	"database/sql"
	"fmt"
	"time"
)

// migration is one step of the schema. Steps are applied in order, each in
// its own transaction together with its row in schema_migrations, so a crash
// leaves the database at exactly one version. Never edit a released step:
// add a new one.
type migration struct {
	version     int
	description string
	sql         string
}

var migrations = []migration{
	{1, "samples, fields and cells", `
CREATE TABLE samples (
	id               INTEGER PRIMARY KEY AUTOINCREMENT,
	code             TEXT NOT NULL UNIQUE,
	opened_at        TEXT NOT NULL,
	closed_at        TEXT,
	verdict          TEXT CHECK (verdict IN ('refer', 'no-blasts-seen', 'inconclusive')),
	verdict_text     TEXT,
	verdict_reasons  TEXT,
	white_cells      INTEGER,
	blasts           INTEGER,
	uncertain        INTEGER,
	out_of_distribution INTEGER,
	rule             TEXT,
	model_sha256     TEXT NOT NULL,
	config_sha256    TEXT NOT NULL,
	software_version TEXT NOT NULL,
	CHECK ((closed_at IS NULL) = (verdict IS NULL))
);
CREATE TABLE fields (
	id               INTEGER PRIMARY KEY AUTOINCREMENT,
	sample_id        INTEGER NOT NULL REFERENCES samples(id),
	number           INTEGER NOT NULL CHECK (number > 0),
	captured_at      TEXT NOT NULL,
	stored_at        TEXT NOT NULL,
	width            INTEGER NOT NULL,
	height           INTEGER NOT NULL,
	image_sha256     TEXT NOT NULL,
	image_format     TEXT NOT NULL,
	accepted         INTEGER NOT NULL CHECK (accepted IN (0, 1)),
	reject_reason    TEXT,
	white_cells      INTEGER NOT NULL,
	blasts           INTEGER NOT NULL,
	uncertain        INTEGER NOT NULL,
	out_of_distribution INTEGER NOT NULL,
	model_sha256     TEXT NOT NULL,
	config_sha256    TEXT NOT NULL,
	software_version TEXT NOT NULL,
	UNIQUE (sample_id, number),
	CHECK (accepted = 1 OR reject_reason IS NOT NULL)
);
CREATE TABLE cells (
	id               INTEGER PRIMARY KEY AUTOINCREMENT,
	field_id         INTEGER NOT NULL REFERENCES fields(id),
	number           INTEGER NOT NULL CHECK (number > 0),
	box_x INTEGER NOT NULL, box_y INTEGER NOT NULL, box_w INTEGER NOT NULL, box_h INTEGER NOT NULL,
	crop_x INTEGER NOT NULL, crop_y INTEGER NOT NULL, crop_side INTEGER NOT NULL,
	area             INTEGER NOT NULL,
	crop_sha256      TEXT NOT NULL,
	crop_format      TEXT NOT NULL,
	p_blast          REAL NOT NULL,
	probs            TEXT NOT NULL,
	subtype          TEXT,
	subtype_prob     REAL,
	uncertain        INTEGER NOT NULL CHECK (uncertain IN (0, 1)),
	out_of_distribution INTEGER NOT NULL CHECK (out_of_distribution IN (0, 1)),
	called_blast     INTEGER NOT NULL CHECK (called_blast IN (0, 1)),
	UNIQUE (field_id, number)
);`},
	{2, "events a person should see (a damaged database set aside, ...)", `
CREATE TABLE events (
	id      INTEGER PRIMARY KEY AUTOINCREMENT,
	at      TEXT NOT NULL,
	kind    TEXT NOT NULL,
	message TEXT NOT NULL
);`},
	{3, "research mode: results made with settings outside the validated bounds", `
ALTER TABLE samples ADD COLUMN research INTEGER NOT NULL DEFAULT 0 CHECK (research IN (0, 1));
ALTER TABLE fields ADD COLUMN research INTEGER NOT NULL DEFAULT 0 CHECK (research IN (0, 1));`},
	{4, "review: identity, accounts, reviewed versions with cell calls, sign-off, an append-only audit trail", `
ALTER TABLE samples ADD COLUMN device_id TEXT NOT NULL DEFAULT '';
ALTER TABLE samples ADD COLUMN specimen_id TEXT;
ALTER TABLE samples ADD COLUMN operator TEXT;
ALTER TABLE samples ADD COLUMN labels TEXT NOT NULL DEFAULT '[]';
ALTER TABLE samples ADD COLUMN clock_synchronized INTEGER CHECK (clock_synchronized IN (0, 1));
ALTER TABLE samples ADD COLUMN pruned_at TEXT;
CREATE TABLE pending_specimens (
	id          INTEGER PRIMARY KEY AUTOINCREMENT,
	specimen_id TEXT NOT NULL CHECK (specimen_id != ''),
	operator    TEXT NOT NULL CHECK (operator != ''),
	entered_at  TEXT NOT NULL,
	entered_by  TEXT NOT NULL,
	sample_id   INTEGER UNIQUE REFERENCES samples(id)
);
CREATE TABLE users (
	id            INTEGER PRIMARY KEY AUTOINCREMENT,
	name          TEXT NOT NULL UNIQUE COLLATE NOCASE,
	role          TEXT NOT NULL CHECK (role IN ('technician', 'reviewer')),
	password_hash TEXT NOT NULL,
	pin_hash      TEXT,
	created_at    TEXT NOT NULL,
	CHECK (role = 'technician' OR pin_hash IS NOT NULL)
);
CREATE TABLE reviews (
	id            INTEGER PRIMARY KEY AUTOINCREMENT,
	sample_id     INTEGER NOT NULL REFERENCES samples(id),
	version       INTEGER NOT NULL CHECK (version > 0),
	created_at    TEXT NOT NULL,
	created_by    TEXT NOT NULL,
	amend_reason  TEXT,
	signed_at     TEXT,
	signed_by     TEXT,
	verdict       TEXT CHECK (verdict IN ('refer', 'no-blasts-seen', 'inconclusive')),
	verdict_text  TEXT,
	verdict_reasons TEXT,
	white_cells   INTEGER,
	blasts        INTEGER,
	uncertain     INTEGER,
	UNIQUE (sample_id, version),
	CHECK ((signed_at IS NULL) = (signed_by IS NULL)),
	CHECK ((signed_at IS NULL) = (verdict IS NULL)),
	CHECK (version = 1 OR amend_reason IS NOT NULL)
);
CREATE TABLE cell_calls (
	review_id INTEGER NOT NULL REFERENCES reviews(id),
	cell_id   INTEGER NOT NULL REFERENCES cells(id),
	call      TEXT NOT NULL CHECK (call IN ('blast', 'not-blast', 'unusable')),
	PRIMARY KEY (review_id, cell_id)
);
CREATE TABLE audit (
	id        INTEGER PRIMARY KEY AUTOINCREMENT,
	at        TEXT NOT NULL,
	user      TEXT NOT NULL,
	action    TEXT NOT NULL,
	sample_id INTEGER REFERENCES samples(id),
	cell_id   INTEGER REFERENCES cells(id),
	before    TEXT,
	after     TEXT,
	reason    TEXT
);
CREATE TRIGGER audit_append_only_update BEFORE UPDATE ON audit
	BEGIN SELECT RAISE(ABORT, 'the audit trail is append-only'); END;
CREATE TRIGGER audit_append_only_delete BEFORE DELETE ON audit
	BEGIN SELECT RAISE(ABORT, 'the audit trail is append-only'); END;
CREATE TRIGGER signed_review_update BEFORE UPDATE ON reviews WHEN OLD.signed_at IS NOT NULL
	BEGIN SELECT RAISE(ABORT, 'a signed review is immutable: amend it'); END;
CREATE TRIGGER signed_review_delete BEFORE DELETE ON reviews WHEN OLD.signed_at IS NOT NULL
	BEGIN SELECT RAISE(ABORT, 'a signed review is immutable: amend it'); END;
CREATE TRIGGER signed_calls_insert BEFORE INSERT ON cell_calls
	WHEN (SELECT signed_at FROM reviews WHERE id = NEW.review_id) IS NOT NULL
	BEGIN SELECT RAISE(ABORT, 'a signed review is immutable: amend it'); END;
CREATE TRIGGER signed_calls_update BEFORE UPDATE ON cell_calls
	WHEN (SELECT signed_at FROM reviews WHERE id = OLD.review_id) IS NOT NULL
	BEGIN SELECT RAISE(ABORT, 'a signed review is immutable: amend it'); END;
CREATE TRIGGER signed_calls_delete BEFORE DELETE ON cell_calls
	WHEN (SELECT signed_at FROM reviews WHERE id = OLD.review_id) IS NOT NULL
	BEGIN SELECT RAISE(ABORT, 'a signed review is immutable: amend it'); END;`},
}

// SchemaVersion is the schema this software writes.
var SchemaVersion = migrations[len(migrations)-1].version

// schemaVersion returns the highest applied migration, 0 for a new file.
func schemaVersion(ctx context.Context, q interface {
	QueryRowContext(context.Context, string, ...any) *sql.Row
}) (int, error) {
	var n int
	err := q.QueryRowContext(ctx, `SELECT count(*) FROM sqlite_master WHERE type = 'table' AND name = 'schema_migrations'`).Scan(&n)
	if err != nil || n == 0 {
		return 0, err
	}
	var v int
	err = q.QueryRowContext(ctx, `SELECT coalesce(max(version), 0) FROM schema_migrations`).Scan(&v)
	return v, err
}

// migrate brings db up to version upto (SchemaVersion in production; lower
// in tests of upgrades).
// A database already up to date is only read: opening the store then takes
// no write lock, so it succeeds while another process writes.
func migrate(ctx context.Context, db *sql.DB, upto int, now func() time.Time) error {
	v, err := schemaVersion(ctx, db)
	if err != nil {
		return err
	}
	if v > SchemaVersion {
		return fmt.Errorf("schema version %d, this software knows up to %d: %w", v, SchemaVersion, ErrSchemaTooNew)
	}
	for _, m := range migrations {
		if m.version > upto {
			break
		}
		if m.version <= v {
			continue
		}
		if err := applyMigration(ctx, db, m, now()); err != nil {
			return err
		}
	}
	return nil
}

func applyMigration(ctx context.Context, db *sql.DB, m migration, now time.Time) error {
	// BEGIN IMMEDIATE (the store's _txlock): the version is read under the
	// write lock, so two processes never apply the same step.
	tx, err := db.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("migration %d: %w", m.version, err)
	}
	defer tx.Rollback()
	if _, err := tx.ExecContext(ctx, `CREATE TABLE IF NOT EXISTS schema_migrations (
		version     INTEGER PRIMARY KEY,
		description TEXT NOT NULL,
		applied_at  TEXT NOT NULL)`); err != nil {
		return fmt.Errorf("migration %d: %w", m.version, err)
	}
	v, err := schemaVersion(ctx, tx)
	if err != nil {
		return fmt.Errorf("migration %d: %w", m.version, err)
	}
	if v > SchemaVersion {
		return fmt.Errorf("schema version %d, this software knows up to %d: %w", v, SchemaVersion, ErrSchemaTooNew)
	}
	if v >= m.version {
		return nil
	}
	if v != m.version-1 {
		return fmt.Errorf("migration %d: database is at version %d, expected %d", m.version, v, m.version-1)
	}
	if _, err := tx.ExecContext(ctx, m.sql); err != nil {
		return fmt.Errorf("migration %d (%s): %w", m.version, m.description, err)
	}
	if _, err := tx.ExecContext(ctx, `INSERT INTO schema_migrations (version, description, applied_at) VALUES (?, ?, ?)`,
		m.version, m.description, formatTime(now)); err != nil {
		return fmt.Errorf("migration %d: %w", m.version, err)
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("migration %d: %w", m.version, err)
	}
	return nil
}

// Times are stored as UTC RFC 3339 text with nanoseconds: readable in the
// sqlite3 shell and sortable as text.
const timeLayout = "2006-01-02T15:04:05.000000000Z07:00"

func formatTime(t time.Time) string { return t.UTC().Format(timeLayout) }

func parseTime(s string) (time.Time, error) { return time.Parse(time.RFC3339Nano, s) }
