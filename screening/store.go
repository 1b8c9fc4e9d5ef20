package screening

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"image"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"time"

	"allscreen/internal/durable"
	"allscreen/model"

	_ "modernc.org/sqlite" // registers the "sqlite" database/sql driver
)

// DBName is the results database's file name inside the state directory.
const DBName = "results.db"

// DefaultStateDir is where the daemon keeps results (systemd's
// StateDirectory=allscreen).
const DefaultStateDir = "/var/lib/allscreen"

// Options configures a Store. Zero values take the defaults.
type Options struct {
	Clock  Clock
	Logger *slog.Logger
	// BusyTimeout is how long a write waits for another process's lock
	// before failing with ErrStorageBusy. Default 5 s.
	BusyTimeout time.Duration
	// CodePrefix starts every new sample code (PrefixedSampleCode): this
	// device's, so no two devices issue the same code. "" for none.
	CodePrefix string
	// ClockSynchronized, when set, is asked as each sample starts whether
	// the clock is known to be set (ClockKnownSet); the answer is kept
	// with the sample.
	ClockSynchronized func() bool
}

func (o Options) withDefaults() Options {
	if o.Clock == nil {
		o.Clock = SystemClock{}
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	if o.BusyTimeout <= 0 {
		o.BusyTimeout = 5 * time.Second
	}
	return o
}

// Store is the durable home of samples, fields, cells and their images in
// one state directory. A Store is safe for concurrent use; writes are
// serialised.
type Store struct {
	dir      string
	db       *sql.DB
	files    fileSystem
	opt      Options
	readOnly bool
	recovery *Recovery
	mu       sync.Mutex // serialises writes (and the image writes before them)
	// ident is the database file as opened. A file deleted or replaced
	// under a running daemon would take every later write into an unlinked
	// inode, shown but stored nowhere; every write checks it first and
	// after its commit (checkIdentity).
	ident fs.FileInfo
}

// Recovery describes a damaged database that Open set aside.
type Recovery struct {
	At       time.Time
	SetAside string // where the damaged file now is
	Cause    string // what SQLite said
	// Salvage says what of the open sample was carried over ("" when no
	// sample was open).
	Salvage string
}

// Message says what happened in words for the display and the log.
func (r *Recovery) Message() string {
	msg := fmt.Sprintf("The results database was damaged (%s). It was kept as %s and a new one was started; "+
		"export that file for review.", r.Cause, filepath.Base(r.SetAside))
	if r.Salvage != "" {
		msg += " " + strings.ToUpper(r.Salvage[:1]) + r.Salvage[1:] + "."
	}
	return msg
}

// Provenance says what produced a result.
type Provenance struct {
	ModelSHA256     string `json:"model_sha256"`
	ConfigSHA256    string `json:"config_sha256"`
	SoftwareVersion string `json:"software_version"`
	// Research: made in research mode (config screening.research), with
	// settings outside the validated bounds; not a result for a patient.
	Research bool `json:"research"`
	// DeviceID names the device that captured it (DeviceID()).
	DeviceID string `json:"device_id"`
	// Labels name the classifier's outputs, in the order of each cell's
	// probabilities (the model manifest's labels).
	Labels []string `json:"labels,omitempty"`
	// ClockSynchronized: the device's clock was known to be set when the
	// sample started (ClockKnownSet: synchronized, or set by a person
	// since that boot); nil when not recorded.
	ClockSynchronized *bool `json:"clock_synchronized,omitempty"`
}

// Open opens (creating if needed) the store in dir for reading and writing,
// and brings its schema up to date. A database file SQLite reports as
// damaged is renamed aside with a timestamp and a new one started; Recovery
// then says so. A locked database gives ErrStorageBusy, a full disk
// ErrStorageFull: neither ever causes a file to be set aside.
func Open(ctx context.Context, dir string, opt Options) (*Store, error) {
	opt = opt.withDefaults()
	if !ValidCodePrefix(opt.CodePrefix) {
		return nil, fmt.Errorf("sample code prefix %q: at most %d characters of %s", opt.CodePrefix, MaxCodePrefix, CodeAlphabet)
	}
	if err := os.MkdirAll(filepath.Join(dir, "images"), 0o750); err != nil {
		return nil, classify("open results store", err)
	}
	if err := removeTempImages(dir); err != nil {
		return nil, classify("open results store: clean up unfinished images", err)
	}
	path := filepath.Join(dir, DBName)
	s := &Store{dir: dir, files: osFileSystem{}, opt: opt}
	db, err := openChecked(ctx, path, opt)
	if err != nil && isCorrupt(err) {
		if s.recovery, err = setAside(path, err, opt.Clock.Now()); err != nil {
			return nil, err
		}
		opt.Logger.Error("results database damaged, set aside", "set_aside", s.recovery.SetAside, "cause", s.recovery.Cause)
		db, err = openChecked(ctx, path, opt)
	}
	if err != nil {
		return nil, classify("open results database "+path, err)
	}
	s.db = db
	if err := migrate(ctx, db, SchemaVersion, opt.Clock.Now); err != nil {
		db.Close()
		return nil, classify("upgrade results database "+path, err)
	}
	if s.recovery != nil {
		if err := s.recordRecovery(ctx); err != nil {
			db.Close()
			return nil, classify("record the damaged database", err)
		}
	}
	if s.ident, err = os.Stat(path); err != nil {
		db.Close()
		return nil, classify("open results database "+path, err)
	}
	return s, nil
}

// OpenExisting opens the daemon's store for reading and writing from
// another process (the review station). It never creates a database and
// never sets a damaged one aside (that is the daemon's, at its start); it
// brings the schema up to date as Open does.
func OpenExisting(ctx context.Context, dir string, opt Options) (*Store, error) {
	opt = opt.withDefaults()
	path := filepath.Join(dir, DBName)
	if _, err := os.Stat(path); err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return nil, fmt.Errorf("%s: %w (is the state directory right? the daemon creates it on first start)", path, ErrNoStore)
		}
		return nil, classify("open results database", err)
	}
	db, err := openChecked(ctx, path, opt)
	if err != nil {
		return nil, classify("open results database "+path, err)
	}
	if err := migrate(ctx, db, SchemaVersion, opt.Clock.Now); err != nil {
		db.Close()
		return nil, classify("upgrade results database "+path, err)
	}
	s := &Store{dir: dir, db: db, files: osFileSystem{}, opt: opt}
	if s.ident, err = os.Stat(path); err != nil {
		db.Close()
		return nil, classify("open results database "+path, err)
	}
	return s, nil
}

// OpenReadOnly opens an existing store for reading only: it never creates,
// migrates or repairs anything, so it is safe while the daemon writes.
func OpenReadOnly(ctx context.Context, dir string, opt Options) (*Store, error) {
	opt = opt.withDefaults()
	path := filepath.Join(dir, DBName)
	if _, err := os.Stat(path); err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return nil, fmt.Errorf("%s: %w (is --state right? the daemon creates it on first start)", path, ErrNoStore)
		}
		return nil, fmt.Errorf("open results database: %w", err)
	}
	db, err := sql.Open("sqlite", dsn(path, opt, true))
	if err != nil {
		return nil, err
	}
	v, err := schemaVersion(ctx, db)
	if err != nil {
		db.Close()
		return nil, classify("read results database "+path, err)
	}
	switch {
	case v == 0:
		db.Close()
		return nil, fmt.Errorf("%s holds no results yet: %w", path, ErrNoStore)
	case v > SchemaVersion:
		db.Close()
		return nil, fmt.Errorf("%s: schema version %d, this software knows up to %d: %w", path, v, SchemaVersion, ErrSchemaTooNew)
	case v < SchemaVersion:
		db.Close()
		return nil, fmt.Errorf("%s: schema version %d, this software reads %d: start allscreend once (it upgrades the database) and try again", path, v, SchemaVersion)
	}
	return &Store{dir: dir, db: db, files: osFileSystem{}, opt: opt, readOnly: true}, nil
}

// Dir is the state directory.
func (s *Store) Dir() string { return s.dir }

// Recovery is non-nil when Open found the database damaged and started a
// new one.
func (s *Store) Recovery() *Recovery { return s.recovery }

// Close closes the database. Every result already returned is on disk.
func (s *Store) Close() error { return s.db.Close() }

func dsn(path string, opt Options, readOnly bool) string {
	esc := strings.NewReplacer("%", "%25", "?", "%3f", "#", "%23").Replace(path)
	q := fmt.Sprintf("_pragma=busy_timeout(%d)", opt.BusyTimeout.Milliseconds())
	if readOnly {
		return "file:" + esc + "?mode=ro&" + q + "&_pragma=query_only(1)"
	}
	// WAL: readers (export) never block the writer, and a commit is one
	// append. synchronous=FULL: the WAL is fsynced at every commit, so a
	// committed result survives a power cut, not just a crash.
	return "file:" + esc + "?" + q + "&_pragma=journal_mode(WAL)&_pragma=synchronous(FULL)&_pragma=foreign_keys(1)&_txlock=immediate"
}

// openChecked opens the database for writing and runs SQLite's quick check,
// returning a corruption error (see isCorrupt) when the file is damaged.
func openChecked(ctx context.Context, path string, opt Options) (*sql.DB, error) {
	db, err := sql.Open("sqlite", dsn(path, opt, false))
	if err != nil {
		return nil, err
	}
	// One connection: writes are serialised anyway, and every pragma above
	// then holds for every statement.
	db.SetMaxOpenConns(1)
	rows, err := db.QueryContext(ctx, `PRAGMA quick_check`)
	if err == nil {
		var problems []string
		for rows.Next() {
			var line string
			if err = rows.Scan(&line); err != nil {
				break
			}
			if line != "ok" {
				problems = append(problems, line)
			}
		}
		if err == nil {
			err = rows.Err()
		}
		rows.Close()
		if err == nil && len(problems) > 0 {
			err = corruptError{strings.Join(problems, "; ")}
		}
	}
	if err != nil {
		db.Close()
		return nil, err
	}
	return db, nil
}

// corruptError is a failed quick_check.
type corruptError struct{ detail string }

func (e corruptError) Error() string { return "database disk image is malformed: " + e.detail }

// setAside renames a damaged database (and its WAL and shared-memory files,
// which belong to it) to results.corrupt-TIME.db, so it can still be opened
// for review, and returns what happened.
func setAside(path string, cause error, now time.Time) (*Recovery, error) {
	stamp := now.UTC().Format("20060102T150405Z")
	base := strings.TrimSuffix(path, ".db") + ".corrupt-" + stamp
	dst := base + ".db"
	for i := 2; ; i++ {
		if _, err := os.Stat(dst); errors.Is(err, fs.ErrNotExist) {
			break
		}
		dst = fmt.Sprintf("%s-%d.db", base, i)
	}
	for _, suffix := range []string{"", "-wal", "-shm"} {
		if err := os.Rename(path+suffix, dst+suffix); err != nil && !errors.Is(err, fs.ErrNotExist) {
			return nil, fmt.Errorf("set aside damaged results database %s: %w", path, err)
		}
	}
	if err := durable.SyncDir(filepath.Dir(path)); err != nil {
		return nil, fmt.Errorf("set aside damaged results database: %w", err)
	}
	return &Recovery{At: now, SetAside: dst, Cause: describeCorruption(cause)}, nil
}

func describeCorruption(err error) string {
	var ce corruptError
	if errors.As(err, &ce) {
		return "integrity check failed"
	}
	return err.Error()
}

// sampleNumberFloor is how far apart the sample numbers of successive
// databases start after a damaged one is set aside, when the damaged file's
// own last number cannot be read: codes then stay unique as long as a
// database holds fewer samples than this (about five years at 50 a day).
const sampleNumberFloor = 100_000

// recordRecovery notes the set-aside database in the new one and continues
// its sample numbering past the old one's, so no code is issued twice.
func (s *Store) recordRecovery(ctx context.Context) error {
	last := lastSampleNumber(ctx, s.recovery.SetAside, s.opt)
	asides, _ := filepath.Glob(filepath.Join(s.dir, "results.corrupt-*.db"))
	next := max(last, int64(len(asides))*sampleNumberFloor)
	tx, err := s.db.BeginTx(ctx, nil)
	if err != nil {
		return err
	}
	defer tx.Rollback()
	var cur sql.NullInt64
	if err := tx.QueryRowContext(ctx, `SELECT seq FROM sqlite_sequence WHERE name = 'samples'`).Scan(&cur); err != nil && !errors.Is(err, sql.ErrNoRows) {
		return err
	}
	if next > cur.Int64 {
		if cur.Valid {
			_, err = tx.ExecContext(ctx, `UPDATE sqlite_sequence SET seq = ? WHERE name = 'samples'`, next)
		} else {
			_, err = tx.ExecContext(ctx, `INSERT INTO sqlite_sequence (name, seq) VALUES ('samples', ?)`, next)
		}
		if err != nil {
			return err
		}
	}
	// The sample that was open (the slide under the microscope) is carried
	// over with every field still readable, under its own code: its
	// fields are not stranded in the set-aside file.
	if saved, err := salvageOpenSample(ctx, s.recovery.SetAside, s.dir, tx, s.opt); err != nil {
		s.opt.Logger.Warn("the open sample of the damaged database could not be carried over", "err", err)
		s.recovery.Salvage = "the sample open in it could not be carried over: " + err.Error()
	} else {
		s.recovery.Salvage = saved
	}
	if _, err := tx.ExecContext(ctx, `INSERT INTO events (at, kind, message) VALUES (?, 'database-set-aside', ?)`,
		formatTime(s.recovery.At), s.recovery.Message()); err != nil {
		return err
	}
	return tx.Commit()
}

// lastSampleNumber reads the highest sample number from a damaged
// database, or 0 when even that cannot be read.
func lastSampleNumber(ctx context.Context, path string, opt Options) int64 {
	db, err := sql.Open("sqlite", dsn(path, opt, true))
	if err != nil {
		return 0
	}
	defer db.Close()
	var n sql.NullInt64
	if db.QueryRowContext(ctx, `SELECT seq FROM sqlite_sequence WHERE name = 'samples'`).Scan(&n) != nil {
		db.QueryRowContext(ctx, `SELECT max(id) FROM samples`).Scan(&n)
	}
	return n.Int64
}

// Sample is one slide's session.
type Sample struct {
	ID       int64     `json:"id"`
	Code     string    `json:"code"`
	OpenedAt time.Time `json:"opened_at"`
	// SpecimenID and Operator were entered at the review station before
	// the sample started (empty when nobody did; they can be set later).
	SpecimenID string `json:"specimen_id,omitempty"`
	Operator   string `json:"operator,omitempty"`
	Provenance
}

// SequenceName is the file in the state directory that holds the highest
// sample number ever issued there, apart from the database: a database
// deleted, or lost with its set-aside copy, must not make a later sample
// reuse a code already written on a slide (issue 15).
const SequenceName = "sample-sequence"

// reserveSampleID returns the next sample number, above both the
// database's sequence and the sequence file, and makes it durable in the
// file before the sample's row is committed: a number is burned if the
// commit then fails, never issued twice.
func (s *Store) reserveSampleID(dbSeq int64) (int64, error) {
	path := filepath.Join(s.dir, SequenceName)
	next := dbSeq + 1
	b, err := os.ReadFile(path)
	switch {
	case err == nil:
		if n, perr := strconv.ParseInt(strings.TrimSpace(string(b)), 10, 64); perr == nil && n >= next {
			next = n + 1
		}
	case !errors.Is(err, fs.ErrNotExist):
		return 0, err
	}
	return next, writeDurable(s.files, path, []byte(strconv.FormatInt(next, 10)+"\n"))
}

func (s *Store) writable() error {
	if s.readOnly {
		return errors.New("results store was opened read-only")
	}
	return s.checkIdentity()
}

// checkIdentity fails with ErrStorageFault when the database file at its
// path is no longer the one this Store opened (deleted, replaced, moved).
func (s *Store) checkIdentity() error {
	if s.ident == nil {
		return nil
	}
	path := filepath.Join(s.dir, DBName)
	st, err := os.Stat(path)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		return fmt.Errorf("%s was removed while the daemon ran: %w", path, ErrStorageFault)
	case err != nil:
		return classify("check the results database", err)
	case !os.SameFile(st, s.ident):
		return fmt.Errorf("%s was replaced by another file while the daemon ran: %w", path, ErrStorageFault)
	}
	return nil
}

// CreateSample starts a new sample and returns it with its code, committed.
func (s *Store) CreateSample(ctx context.Context, prov Provenance) (Sample, error) {
	if err := s.writable(); err != nil {
		return Sample{}, err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	now := s.opt.Clock.Now()
	tx, err := s.db.BeginTx(ctx, nil)
	if err != nil {
		return Sample{}, classify("start sample", err)
	}
	defer tx.Rollback()
	var seq sql.NullInt64
	if err := tx.QueryRowContext(ctx, `SELECT seq FROM sqlite_sequence WHERE name = 'samples'`).Scan(&seq); err != nil && !errors.Is(err, sql.ErrNoRows) {
		return Sample{}, classify("start sample", err)
	}
	id, err := s.reserveSampleID(seq.Int64)
	if err != nil {
		return Sample{}, classify("start sample", err)
	}
	smp := Sample{ID: id, OpenedAt: now, Provenance: prov}
	smp.Code = PrefixedSampleCode(s.opt.CodePrefix, smp.ID)
	labels, _ := json.Marshal(append([]string{}, prov.Labels...))
	if f := s.opt.ClockSynchronized; f != nil {
		synced := f()
		prov.ClockSynchronized = &synced
	}
	if _, err := tx.ExecContext(ctx, `INSERT INTO samples (id, code, opened_at, model_sha256, config_sha256, software_version, research, device_id, labels,
		clock_synchronized) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`, smp.ID, smp.Code, formatTime(now), prov.ModelSHA256, prov.ConfigSHA256,
		prov.SoftwareVersion, prov.Research, prov.DeviceID, string(labels), prov.ClockSynchronized); err != nil {
		return Sample{}, classify("start sample", err)
	}
	if smp.SpecimenID, smp.Operator, err = takePendingSpecimen(ctx, tx, smp.ID, now); err != nil {
		return Sample{}, classify("start sample: specimen", err)
	}
	if err := tx.Commit(); err != nil {
		return Sample{}, classify("start sample", err)
	}
	if err := s.checkIdentity(); err != nil {
		return Sample{}, fmt.Errorf("start sample: %w", err)
	}
	return smp, nil
}

// OpenSample returns the newest sample that has not been closed (one a
// restart interrupted), with its tally so far and its last field number;
// ok is false when every sample is closed.
func (s *Store) OpenSample(ctx context.Context) (smp Sample, t Tally, lastField int, ok bool, err error) {
	var opened string
	err = s.db.QueryRowContext(ctx, `SELECT id, code, opened_at, model_sha256, config_sha256, software_version, research
		FROM samples WHERE closed_at IS NULL ORDER BY id DESC LIMIT 1`).
		Scan(&smp.ID, &smp.Code, &opened, &smp.ModelSHA256, &smp.ConfigSHA256, &smp.SoftwareVersion, &smp.Research)
	if errors.Is(err, sql.ErrNoRows) {
		return Sample{}, Tally{}, 0, false, nil
	}
	if err != nil {
		return Sample{}, Tally{}, 0, false, classify("find the open sample", err)
	}
	if smp.OpenedAt, err = parseTime(opened); err != nil {
		return Sample{}, Tally{}, 0, false, fmt.Errorf("sample %s: bad time %q: %w", smp.Code, opened, err)
	}
	if t, lastField, err = sampleTally(ctx, s.db, smp.ID); err != nil {
		return Sample{}, Tally{}, 0, false, classify("tally sample "+smp.Code, err)
	}
	return smp, t, lastField, true, nil
}

type queryer interface {
	QueryRowContext(context.Context, string, ...any) *sql.Row
}

// sampleTally sums the accepted fields of a sample; lastField is the highest
// field number, accepted or not.
func sampleTally(ctx context.Context, q queryer, id int64) (t Tally, lastField int, err error) {
	err = q.QueryRowContext(ctx, `SELECT coalesce(sum(accepted), 0),
		coalesce(sum(white_cells), 0), coalesce(sum(blasts), 0), coalesce(sum(uncertain), 0),
		coalesce(sum(out_of_distribution), 0), coalesce(max(number), 0)
		FROM fields WHERE sample_id = ?`, id).
		Scan(&t.Fields, &t.WhiteCells, &t.Blasts, &t.Uncertain, &t.OutOfDistribution, &lastField)
	return t, lastField, err
}

// FieldRecord is one captured field, ready to store.
type FieldRecord struct {
	SampleID    int64
	CapturedAt  time.Time
	Width       int
	Height      int
	Image       []byte // the frame, encoded
	ImageFormat string // "jpg" or "png"
	Accepted    bool
	Reject      string // the technician's reason when not accepted
	Cells       []CellRecord
	Provenance
}

// CellRecord is one white cell of a field.
type CellRecord struct {
	Box        image.Rectangle
	Crop       image.Rectangle
	Area       int
	CropImage  []byte // the crop as classified, encoded
	CropFormat string
	Prediction model.Prediction
	Call       CellCall
}

// StoredField is what SaveField committed.
type StoredField struct {
	ID       int64
	Number   int // 1, 2, ... within the sample, rejected fields included
	StoredAt time.Time
	Tally    Tally // this field's cells
}

// SaveField stores a field: its images first (each durable before the
// transaction starts), then its row and its cells' rows in one
// transaction. When it returns without error, the field is committed; on
// any error nothing of it is in the database.
func (s *Store) SaveField(ctx context.Context, f *FieldRecord) (StoredField, error) {
	if err := s.writable(); err != nil {
		return StoredField{}, err
	}
	if f.ImageFormat == "" || len(f.Image) == 0 {
		return StoredField{}, errors.New("save field: no frame image")
	}
	if !f.Accepted && f.Reject == "" {
		return StoredField{}, errors.New("save field: a rejected field needs its reason")
	}
	var t Tally
	for _, c := range f.Cells {
		t = t.Count(c.Call)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	frame, err := writeImage(s.files, s.dir, f.Image, f.ImageFormat)
	if err != nil {
		return StoredField{}, classify("save field", err)
	}
	crops := make([]ImageRef, len(f.Cells))
	for i, c := range f.Cells {
		if crops[i], err = writeImage(s.files, s.dir, c.CropImage, c.CropFormat); err != nil {
			return StoredField{}, classify("save field: cell crop", err)
		}
	}
	now := s.opt.Clock.Now()
	tx, err := s.db.BeginTx(ctx, nil)
	if err != nil {
		return StoredField{}, classify("save field", err)
	}
	defer tx.Rollback()
	var closed sql.NullString
	if err := tx.QueryRowContext(ctx, `SELECT closed_at FROM samples WHERE id = ?`, f.SampleID).Scan(&closed); err != nil {
		if errors.Is(err, sql.ErrNoRows) {
			return StoredField{}, fmt.Errorf("save field: sample %d does not exist: %w", f.SampleID, ErrNoOpenSample)
		}
		return StoredField{}, classify("save field", err)
	}
	if closed.Valid {
		return StoredField{}, fmt.Errorf("save field: sample %d was closed at %s: %w", f.SampleID, closed.String, ErrNoOpenSample)
	}
	out := StoredField{StoredAt: now, Tally: t}
	if err := tx.QueryRowContext(ctx, `SELECT coalesce(max(number), 0) + 1 FROM fields WHERE sample_id = ?`, f.SampleID).Scan(&out.Number); err != nil {
		return StoredField{}, classify("save field", err)
	}
	var reject sql.NullString
	if !f.Accepted {
		reject = sql.NullString{String: f.Reject, Valid: true}
	}
	err = tx.QueryRowContext(ctx, `INSERT INTO fields (sample_id, number, captured_at, stored_at, width, height,
		image_sha256, image_format, accepted, reject_reason, white_cells, blasts, uncertain, out_of_distribution,
		model_sha256, config_sha256, software_version, research)
		VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) RETURNING id`,
		f.SampleID, out.Number, formatTime(f.CapturedAt), formatTime(now), f.Width, f.Height,
		frame.SHA256, frame.Format, f.Accepted, reject, t.WhiteCells, t.Blasts, t.Uncertain, t.OutOfDistribution,
		f.ModelSHA256, f.ConfigSHA256, f.SoftwareVersion, f.Research).Scan(&out.ID)
	if err != nil {
		return StoredField{}, classify("save field", err)
	}
	for i, c := range f.Cells {
		probs, err := json.Marshal(c.Prediction.Probs)
		if err != nil {
			return StoredField{}, fmt.Errorf("save field: cell %d: %w", i+1, err)
		}
		var subtype sql.NullString
		var subProb sql.NullFloat64
		if c.Prediction.Subtype != "" {
			subtype = sql.NullString{String: c.Prediction.Subtype, Valid: true}
			subProb = sql.NullFloat64{Float64: float64(c.Prediction.SubtypeProb), Valid: true}
		}
		if _, err := tx.ExecContext(ctx, `INSERT INTO cells (field_id, number, box_x, box_y, box_w, box_h,
			crop_x, crop_y, crop_side, area, crop_sha256, crop_format, p_blast, probs, subtype, subtype_prob,
			uncertain, out_of_distribution, called_blast)
			VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
			out.ID, i+1, c.Box.Min.X, c.Box.Min.Y, c.Box.Dx(), c.Box.Dy(),
			c.Crop.Min.X, c.Crop.Min.Y, c.Crop.Dx(), c.Area, crops[i].SHA256, crops[i].Format,
			float64(c.Prediction.Blast), string(probs), subtype, subProb,
			c.Call.Uncertain, c.Call.OutOfDistribution, c.Call.Blast); err != nil {
			return StoredField{}, classify(fmt.Sprintf("save field: cell %d", i+1), err)
		}
	}
	if err := tx.Commit(); err != nil {
		return StoredField{}, classify("save field", err)
	}
	if err := s.checkIdentity(); err != nil {
		return StoredField{}, fmt.Errorf("save field: %w", err)
	}
	return out, nil
}

// ClosedSample is a sample with its committed verdict.
type ClosedSample struct {
	Sample
	ClosedAt time.Time
	Verdict  Verdict
	Rule     Rule
}

// CloseSample decides the verdict of an open sample from its stored fields
// and commits it, in one transaction: the verdict always matches the fields
// it was computed from.
func (s *Store) CloseSample(ctx context.Context, sampleID int64, rule Rule) (ClosedSample, error) {
	return s.closeSample(ctx, sampleID, rule, "")
}

// CloseIncomplete closes an open sample as CloseSample does, with the
// verdict DecideIncomplete gives for the reason why.
func (s *Store) CloseIncomplete(ctx context.Context, sampleID int64, rule Rule, why string) (ClosedSample, error) {
	if why == "" {
		return ClosedSample{}, errors.New("close incomplete: no reason given")
	}
	return s.closeSample(ctx, sampleID, rule, why)
}

func (s *Store) closeSample(ctx context.Context, sampleID int64, rule Rule, incomplete string) (ClosedSample, error) {
	if err := s.writable(); err != nil {
		return ClosedSample{}, err
	}
	if err := rule.Validate(); err != nil {
		return ClosedSample{}, err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	now := s.opt.Clock.Now()
	tx, err := s.db.BeginTx(ctx, nil)
	if err != nil {
		return ClosedSample{}, classify("close sample", err)
	}
	defer tx.Rollback()
	out := ClosedSample{ClosedAt: now, Rule: rule}
	var opened string
	var closed sql.NullString
	err = tx.QueryRowContext(ctx, `SELECT id, code, opened_at, closed_at, model_sha256, config_sha256, software_version, research
		FROM samples WHERE id = ?`, sampleID).
		Scan(&out.ID, &out.Code, &opened, &closed, &out.ModelSHA256, &out.ConfigSHA256, &out.SoftwareVersion, &out.Research)
	if errors.Is(err, sql.ErrNoRows) {
		return ClosedSample{}, fmt.Errorf("close sample %d: no such sample: %w", sampleID, ErrNoOpenSample)
	}
	if err != nil {
		return ClosedSample{}, classify("close sample", err)
	}
	if closed.Valid {
		return ClosedSample{}, fmt.Errorf("close sample %s: already closed at %s: %w", out.Code, closed.String, ErrNoOpenSample)
	}
	if out.OpenedAt, err = parseTime(opened); err != nil {
		return ClosedSample{}, fmt.Errorf("close sample %s: bad time %q: %w", out.Code, opened, err)
	}
	t, _, err := sampleTally(ctx, tx, sampleID)
	if err != nil {
		return ClosedSample{}, classify("close sample", err)
	}
	if incomplete != "" {
		out.Verdict = DecideIncomplete(t, rule, incomplete)
	} else {
		out.Verdict = Decide(t, rule)
	}
	reasons, _ := json.Marshal(out.Verdict.Reasons)
	ruleJSON, _ := json.Marshal(rule)
	if _, err := tx.ExecContext(ctx, `UPDATE samples SET closed_at = ?, verdict = ?, verdict_text = ?, verdict_reasons = ?,
		white_cells = ?, blasts = ?, uncertain = ?, out_of_distribution = ?, rule = ? WHERE id = ?`,
		formatTime(now), string(out.Verdict.Outcome), out.Verdict.Headline(), string(reasons),
		t.WhiteCells, t.Blasts, t.Uncertain, t.OutOfDistribution, string(ruleJSON), sampleID); err != nil {
		return ClosedSample{}, classify("close sample", err)
	}
	if err := tx.Commit(); err != nil {
		return ClosedSample{}, classify("close sample", err)
	}
	if err := s.checkIdentity(); err != nil {
		return ClosedSample{}, fmt.Errorf("close sample: %w", err)
	}
	return out, nil
}
