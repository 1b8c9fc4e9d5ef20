package screening

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"image"
	"strings"
	"time"
)

// The person in the loop (issue 13): a reviewer sees every cell the device
// called, reclassifies any of them, and signs. What a reviewer decided is
// kept apart from what the device decided: the device's rows are never
// changed, and a review is a numbered version of calls over them. A signed
// version is immutable (the database refuses, not only this code); an
// amendment is a new version with a reason. Every action lands in an audit
// trail the database keeps append-only.

// Errors of the review workflow, for the review station to turn into words.
var (
	// ErrNoSample: no sample has that code.
	ErrNoSample = errors.New("no such sample")
	// ErrSampleOpen: the sample is still being captured; it can be reviewed
	// once the device has closed it.
	ErrSampleOpen = errors.New("the sample is still open on the device: review it once it has a verdict")
	// ErrSigned: the current version is signed; amend it to change it.
	ErrSigned = errors.New("this result is signed: amend it, with a reason, to change it")
	// ErrNotSigned: only a signed version can be amended.
	ErrNotSigned = errors.New("this result is not signed yet: there is nothing to amend")
	// ErrNoCell: the cell is not one of this sample's.
	ErrNoCell = errors.New("no such cell in this sample")
)

// Call is a reviewer's call on one cell.
type Call string

// Calls a reviewer can make. DeviceCall (empty) takes a reviewer's call back,
// so the device's call stands again.
const (
	CallBlast    Call = "blast"
	CallNotBlast Call = "not-blast"
	CallUnusable Call = "unusable" // smudge, artefact, cut: not a white cell to count
	DeviceCall   Call = ""
	// CallUncertain is the device's call on a cell it was unsure of or
	// found unlike its training data; never a reviewer's (ParseCall
	// refuses it).
	CallUncertain Call = "uncertain"
)

// Standing is the call that stands on the cell under a review's calls:
// the reviewer's when there is one, else the device's.
func (c CellDetail) Standing(calls map[int64]Call) Call {
	if call, ok := calls[c.ID]; ok && call != DeviceCall {
		return call
	}
	switch {
	case c.OOD || c.Uncertain:
		return CallUncertain
	case c.CalledBlast:
		return CallBlast
	}
	return CallNotBlast
}

// ParseCall reads a call from a form.
func ParseCall(s string) (Call, error) {
	switch c := Call(s); c {
	case CallBlast, CallNotBlast, CallUnusable:
		return c, nil
	case "device":
		return DeviceCall, nil
	}
	return "", fmt.Errorf("call %q: want blast, not-blast, unusable or device", s)
}

// ReviewVersion is one version of a sample's review.
type ReviewVersion struct {
	Version     int
	CreatedAt   time.Time
	CreatedBy   string
	AmendReason string     // why this version replaced the one before (empty for version 1)
	SignedAt    *time.Time // nil while a draft
	SignedBy    string
	// Verdict is the reviewed verdict this version was signed with (set only
	// once signed; a draft's is computed by SampleDetail.ReviewedVerdict).
	Verdict *Verdict
	Calls   map[int64]Call // by cell ID; a cell not in it keeps the device's call
}

// Signed says whether the version is signed.
func (r *ReviewVersion) Signed() bool { return r != nil && r.SignedAt != nil }

// FieldDetail is one stored field, with its cells.
type FieldDetail struct {
	ID       int64
	Number   int
	Image    ImageRef
	Width    int
	Height   int
	Accepted bool
	Reject   string
	Cells    []CellDetail
}

// CellDetail is one stored white cell as the device judged it.
type CellDetail struct {
	ID          int64
	FieldNumber int
	Number      int
	Box         image.Rectangle
	Crop        ImageRef
	PBlast      float64
	Uncertain   bool
	OOD         bool
	CalledBlast bool
}

// DeviceLabel says in a word how the device called the cell.
func (c CellDetail) DeviceLabel() string {
	switch {
	case c.OOD:
		return "unlike training data"
	case c.Uncertain:
		return "uncertain"
	case c.CalledBlast:
		return "blast"
	}
	return "not blast"
}

// AuditEntry is one line of the audit trail.
type AuditEntry struct {
	At     time.Time
	User   string
	Action string
	CellID int64 // 0 when the action is about the whole sample
	Before string
	After  string
	Reason string
}

// SampleDetail is everything a reviewer sees of one sample.
type SampleDetail struct {
	SampleSummary
	Rule     *Rule // the rule the device's verdict used (nil while open)
	Fields   []FieldDetail
	Versions []ReviewVersion // oldest first; empty when nobody has reviewed it
	Audit    []AuditEntry    // oldest first
}

// Current is the newest review version, nil when there is none.
func (d SampleDetail) Current() *ReviewVersion {
	if len(d.Versions) == 0 {
		return nil
	}
	return &d.Versions[len(d.Versions)-1]
}

// Cells lists every cell of the sample, as the device's tally counts them.
func (d SampleDetail) Cells() []CellDetail {
	var out []CellDetail
	for _, f := range d.Fields {
		out = append(out, f.Cells...)
	}
	return out
}

// ReviewedVerdict is the verdict the device's own rule gives once the
// calls replace the device's: a cell called blast counts as a confident
// blast, not-blast as a confident normal cell, unusable is not counted.
// An incomplete sample stays incomplete.
func (d SampleDetail) ReviewedVerdict(calls map[int64]Call) (Verdict, error) {
	if d.Rule == nil {
		return Verdict{}, ErrSampleOpen
	}
	t := Tally{Fields: d.Tally.Fields}
	for _, c := range d.Cells() {
		switch call := c.Standing(calls); call {
		case CallUnusable:
		case CallUncertain:
			t = t.Count(CellCall{Uncertain: true, OutOfDistribution: c.OOD})
		default:
			t = t.Count(CellCall{Blast: call == CallBlast})
		}
	}
	if len(d.Reasons) > 0 && strings.HasPrefix(d.Reasons[0], incompletePrefix) {
		return DecideIncomplete(t, *d.Rule, strings.TrimPrefix(d.Reasons[0], incompletePrefix)), nil
	}
	return Decide(t, *d.Rule), nil
}

// SampleDetail reads one sample by its code, with its fields, cells,
// review versions and audit trail.
func (s *Store) SampleDetail(ctx context.Context, code string) (SampleDetail, error) {
	tx, err := s.db.BeginTx(ctx, &sql.TxOptions{ReadOnly: true})
	if err != nil {
		return SampleDetail{}, classify("read sample", err)
	}
	defer tx.Rollback()
	return s.sampleDetail(ctx, tx, code)
}

type txQuerier interface {
	QueryContext(context.Context, string, ...any) (*sql.Rows, error)
	QueryRowContext(context.Context, string, ...any) *sql.Row
}

func (s *Store) sampleDetail(ctx context.Context, q txQuerier, code string) (SampleDetail, error) {
	var d SampleDetail
	var id int64
	var rule sql.NullString
	err := q.QueryRowContext(ctx, `SELECT id, rule FROM samples WHERE code = ?`, code).Scan(&id, &rule)
	if errors.Is(err, sql.ErrNoRows) {
		return d, fmt.Errorf("sample %q: %w", code, ErrNoSample)
	}
	if err != nil {
		return d, classify("read sample", err)
	}
	sums, err := s.samplesWhere(ctx, q, "s.id = ?", id)
	if err != nil || len(sums) != 1 {
		return d, fmt.Errorf("read sample %s: %w", code, errors.Join(err, ErrNoSample))
	}
	d.SampleSummary = sums[0]
	if rule.Valid {
		d.Rule = new(Rule)
		if err := json.Unmarshal([]byte(rule.String), d.Rule); err != nil {
			return d, fmt.Errorf("sample %s: unreadable rule: %w", code, err)
		}
	}
	if d.Fields, err = readFields(ctx, q, id); err != nil {
		return d, fmt.Errorf("sample %s: %w", code, err)
	}
	if d.Versions, err = readVersions(ctx, q, id); err != nil {
		return d, fmt.Errorf("sample %s: %w", code, err)
	}
	if d.Audit, err = readAudit(ctx, q, id); err != nil {
		return d, fmt.Errorf("sample %s: %w", code, err)
	}
	return d, nil
}

func readFields(ctx context.Context, q txQuerier, sampleID int64) ([]FieldDetail, error) {
	rows, err := q.QueryContext(ctx, `SELECT id, number, image_sha256, image_format, width, height, accepted,
		coalesce(reject_reason, '') FROM fields WHERE sample_id = ? ORDER BY number`, sampleID)
	if err != nil {
		return nil, classify("read fields", err)
	}
	var out []FieldDetail
	byID := map[int64]int{}
	for rows.Next() {
		var f FieldDetail
		if err := rows.Scan(&f.ID, &f.Number, &f.Image.SHA256, &f.Image.Format, &f.Width, &f.Height, &f.Accepted, &f.Reject); err != nil {
			rows.Close()
			return nil, classify("read fields", err)
		}
		byID[f.ID] = len(out)
		out = append(out, f)
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return nil, classify("read fields", err)
	}
	rows, err = q.QueryContext(ctx, `SELECT c.id, c.field_id, c.number, c.box_x, c.box_y, c.box_w, c.box_h,
		c.crop_sha256, c.crop_format, c.p_blast, c.uncertain, c.out_of_distribution, c.called_blast
		FROM cells c JOIN fields f ON f.id = c.field_id WHERE f.sample_id = ? ORDER BY f.number, c.number`, sampleID)
	if err != nil {
		return nil, classify("read cells", err)
	}
	defer rows.Close()
	for rows.Next() {
		var c CellDetail
		var fieldID int64
		var x, y, w, h int
		if err := rows.Scan(&c.ID, &fieldID, &c.Number, &x, &y, &w, &h, &c.Crop.SHA256, &c.Crop.Format,
			&c.PBlast, &c.Uncertain, &c.OOD, &c.CalledBlast); err != nil {
			return nil, classify("read cells", err)
		}
		c.Box = image.Rect(x, y, x+w, y+h)
		i := byID[fieldID]
		c.FieldNumber = out[i].Number
		out[i].Cells = append(out[i].Cells, c)
	}
	return out, classify("read cells", rows.Err())
}

func readVersions(ctx context.Context, q txQuerier, sampleID int64) ([]ReviewVersion, error) {
	rows, err := q.QueryContext(ctx, `SELECT id, version, created_at, created_by, coalesce(amend_reason, ''),
		signed_at, coalesce(signed_by, ''), verdict, verdict_reasons, white_cells, blasts, uncertain
		FROM reviews WHERE sample_id = ? ORDER BY version`, sampleID)
	if err != nil {
		return nil, classify("read reviews", err)
	}
	var out []ReviewVersion
	var ids []int64
	for rows.Next() {
		var v ReviewVersion
		var id int64
		var created string
		var signed, outcome, reasons sql.NullString
		var wc, bl, un sql.NullInt64
		if err := rows.Scan(&id, &v.Version, &created, &v.CreatedBy, &v.AmendReason, &signed, &v.SignedBy,
			&outcome, &reasons, &wc, &bl, &un); err != nil {
			rows.Close()
			return nil, classify("read reviews", err)
		}
		if v.CreatedAt, err = parseTime(created); err != nil {
			rows.Close()
			return nil, fmt.Errorf("review version %d: bad time %q", v.Version, created)
		}
		if signed.Valid {
			t, err := parseTime(signed.String)
			if err != nil {
				rows.Close()
				return nil, fmt.Errorf("review version %d: bad signing time %q", v.Version, signed.String)
			}
			v.SignedAt = &t
			v.Verdict = &Verdict{Outcome: Outcome(outcome.String),
				Tally: Tally{WhiteCells: int(wc.Int64), Blasts: int(bl.Int64), Uncertain: int(un.Int64)}}
			if err := json.Unmarshal([]byte(reasons.String), &v.Verdict.Reasons); err != nil {
				rows.Close()
				return nil, fmt.Errorf("review version %d: unreadable reasons: %w", v.Version, err)
			}
			v.Verdict.Incomplete = len(v.Verdict.Reasons) > 0 && strings.HasPrefix(v.Verdict.Reasons[0], incompletePrefix)
		}
		v.Calls = map[int64]Call{}
		out = append(out, v)
		ids = append(ids, id)
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return nil, classify("read reviews", err)
	}
	for i, id := range ids {
		rows, err := q.QueryContext(ctx, `SELECT cell_id, call FROM cell_calls WHERE review_id = ?`, id)
		if err != nil {
			return nil, classify("read cell calls", err)
		}
		for rows.Next() {
			var cell int64
			var c string
			if err := rows.Scan(&cell, &c); err != nil {
				rows.Close()
				return nil, classify("read cell calls", err)
			}
			out[i].Calls[cell] = Call(c)
		}
		rows.Close()
		if err := rows.Err(); err != nil {
			return nil, classify("read cell calls", err)
		}
	}
	return out, nil
}

func readAudit(ctx context.Context, q txQuerier, sampleID int64) ([]AuditEntry, error) {
	rows, err := q.QueryContext(ctx, `SELECT at, user, action, coalesce(cell_id, 0), coalesce(before, ''),
		coalesce(after, ''), coalesce(reason, '') FROM audit WHERE sample_id = ? ORDER BY id`, sampleID)
	if err != nil {
		return nil, classify("read audit trail", err)
	}
	defer rows.Close()
	var out []AuditEntry
	for rows.Next() {
		var e AuditEntry
		var at string
		if err := rows.Scan(&at, &e.User, &e.Action, &e.CellID, &e.Before, &e.After, &e.Reason); err != nil {
			return nil, classify("read audit trail", err)
		}
		if e.At, err = parseTime(at); err != nil {
			return nil, fmt.Errorf("audit: bad time %q", at)
		}
		out = append(out, e)
	}
	return out, classify("read audit trail", rows.Err())
}

// SetCall records a reviewer's call on one cell of a closed sample (call
// DeviceCall takes it back). The first call opens version 1; a signed
// current version refuses (ErrSigned). The audit trail gets the call
// before and after.
func (s *Store) SetCall(ctx context.Context, code string, cellID int64, call Call, by string) error {
	return s.reviewTx(ctx, "reclassify cell", code, func(tx *sql.Tx, d *SampleDetail, now time.Time) error {
		cur := d.Current()
		if cur.Signed() {
			return ErrSigned
		}
		var cell *CellDetail
		for _, f := range d.Fields {
			for i := range f.Cells {
				if f.Cells[i].ID == cellID {
					cell = &f.Cells[i]
				}
			}
		}
		if cell == nil {
			return fmt.Errorf("cell %d: %w", cellID, ErrNoCell)
		}
		reviewID, err := ensureDraft(ctx, tx, d, by, now)
		if err != nil {
			return err
		}
		before := Call("")
		if cur != nil {
			before = cur.Calls[cellID]
		}
		if before == call {
			return nil
		}
		if call == DeviceCall {
			_, err = tx.ExecContext(ctx, `DELETE FROM cell_calls WHERE review_id = ? AND cell_id = ?`, reviewID, cellID)
		} else {
			_, err = tx.ExecContext(ctx, `INSERT INTO cell_calls (review_id, cell_id, call) VALUES (?, ?, ?)
				ON CONFLICT (review_id, cell_id) DO UPDATE SET call = excluded.call`, reviewID, cellID, string(call))
		}
		if err != nil {
			return err
		}
		return audit(ctx, tx, now, by, "reclassify", d.ID, cellID, callText(before, *cell), callText(call, *cell), "")
	})
}

// callText is a call in the audit trail's words; the device's call is
// named as such.
func callText(c Call, cell CellDetail) string {
	if c == DeviceCall {
		return "device: " + cell.DeviceLabel()
	}
	return string(c)
}

// Sign signs the current version (opening version 1 when nobody changed a
// call) with the reviewed verdict its calls give. The caller has checked
// the signer's PIN and role.
func (s *Store) Sign(ctx context.Context, code, by string) (Verdict, error) {
	var v Verdict
	err := s.reviewTx(ctx, "sign", code, func(tx *sql.Tx, d *SampleDetail, now time.Time) error {
		cur := d.Current()
		if cur.Signed() {
			return ErrSigned
		}
		reviewID, err := ensureDraft(ctx, tx, d, by, now)
		if err != nil {
			return err
		}
		calls := map[int64]Call{}
		if cur != nil {
			calls = cur.Calls
		}
		if v, err = d.ReviewedVerdict(calls); err != nil {
			return err
		}
		reasons, _ := json.Marshal(v.Reasons)
		if _, err := tx.ExecContext(ctx, `UPDATE reviews SET signed_at = ?, signed_by = ?, verdict = ?, verdict_text = ?,
			verdict_reasons = ?, white_cells = ?, blasts = ?, uncertain = ? WHERE id = ?`,
			formatTime(now), by, string(v.Outcome), v.Headline(), string(reasons),
			v.Tally.WhiteCells, v.Tally.Blasts, v.Tally.Uncertain, reviewID); err != nil {
			return err
		}
		return audit(ctx, tx, now, by, "sign", d.ID, 0, d.Verdict, v.Headline(), "")
	})
	return v, err
}

// Amend opens a new version of a signed result, starting from the signed
// version's calls, for the reason given (required).
func (s *Store) Amend(ctx context.Context, code, by, reason string) error {
	reason = strings.TrimSpace(reason)
	if reason == "" {
		return errors.New("an amendment needs a reason")
	}
	return s.reviewTx(ctx, "amend", code, func(tx *sql.Tx, d *SampleDetail, now time.Time) error {
		cur := d.Current()
		if !cur.Signed() {
			return ErrNotSigned
		}
		var id int64
		if err := tx.QueryRowContext(ctx, `INSERT INTO reviews (sample_id, version, created_at, created_by, amend_reason)
			VALUES (?, ?, ?, ?, ?) RETURNING id`, d.ID, cur.Version+1, formatTime(now), by, reason).Scan(&id); err != nil {
			return err
		}
		for cell, c := range cur.Calls {
			if _, err := tx.ExecContext(ctx, `INSERT INTO cell_calls (review_id, cell_id, call) VALUES (?, ?, ?)`, id, cell, string(c)); err != nil {
				return err
			}
		}
		return audit(ctx, tx, now, by, "amend", d.ID, 0, fmt.Sprintf("version %d (signed)", cur.Version),
			fmt.Sprintf("version %d (draft)", cur.Version+1), reason)
	})
}

// ensureDraft returns the current draft's row ID, creating version 1 when
// the sample has no review yet.
func ensureDraft(ctx context.Context, tx *sql.Tx, d *SampleDetail, by string, now time.Time) (int64, error) {
	var id int64
	if cur := d.Current(); cur != nil {
		err := tx.QueryRowContext(ctx, `SELECT id FROM reviews WHERE sample_id = ? AND version = ?`, d.ID, cur.Version).Scan(&id)
		return id, err
	}
	err := tx.QueryRowContext(ctx, `INSERT INTO reviews (sample_id, version, created_at, created_by)
		VALUES (?, 1, ?, ?) RETURNING id`, d.ID, formatTime(now), by).Scan(&id)
	return id, err
}

// reviewTx runs one review action in a write transaction on the sample as
// read inside it, so two reviewers never act on a stale page.
func (s *Store) reviewTx(ctx context.Context, what, code string, f func(*sql.Tx, *SampleDetail, time.Time) error) error {
	return s.writeTx(ctx, what, func(tx *sql.Tx, now time.Time) error {
		d, err := s.sampleDetail(ctx, tx, code)
		if err != nil {
			return err
		}
		if d.ClosedAt == nil {
			return fmt.Errorf("%s: %w", code, ErrSampleOpen)
		}
		if err := f(tx, &d, now); err != nil {
			return fmt.Errorf("%s: %w", code, err)
		}
		return nil
	})
}

// writeTx runs f in one write transaction and commits it, checking the
// database file is still the one opened (checkIdentity) before and after.
func (s *Store) writeTx(ctx context.Context, what string, f func(*sql.Tx, time.Time) error) error {
	if err := s.writable(); err != nil {
		return err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	now := s.opt.Clock.Now()
	tx, err := s.db.BeginTx(ctx, nil)
	if err != nil {
		return classify(what, err)
	}
	defer tx.Rollback()
	if err := f(tx, now); err != nil {
		return fmt.Errorf("%s: %w", what, classifyKeep(err))
	}
	if err := tx.Commit(); err != nil {
		return classify(what, err)
	}
	if err := s.checkIdentity(); err != nil {
		return fmt.Errorf("%s: %w", what, err)
	}
	return nil
}

// classifyKeep classifies storage errors and keeps the workflow's own.
func classifyKeep(err error) error {
	for _, e := range []error{ErrSigned, ErrNotSigned, ErrNoCell, ErrSampleOpen, ErrNoSample} {
		if errors.Is(err, e) {
			return err
		}
	}
	return classify("write review", err)
}

func audit(ctx context.Context, tx *sql.Tx, now time.Time, user, action string, sampleID, cellID int64, before, after, reason string) error {
	null := func(s string) sql.NullString { return sql.NullString{String: s, Valid: s != ""} }
	cell := sql.NullInt64{Int64: cellID, Valid: cellID != 0}
	smp := sql.NullInt64{Int64: sampleID, Valid: sampleID != 0}
	_, err := tx.ExecContext(ctx, `INSERT INTO audit (at, user, action, sample_id, cell_id, before, after, reason)
		VALUES (?, ?, ?, ?, ?, ?, ?, ?)`, formatTime(now), user, action, smp, cell, null(before), null(after), null(reason))
	return err
}

// Audit records an action in the audit trail: about a sample when code is
// not empty (a refused signature), else about no sample (a login).
func (s *Store) Audit(ctx context.Context, user, action, code, detail string) error {
	return s.writeTx(ctx, "audit", func(tx *sql.Tx, now time.Time) error {
		var id int64
		if code != "" {
			if err := tx.QueryRowContext(ctx, `SELECT id FROM samples WHERE code = ?`, code).Scan(&id); err != nil {
				return fmt.Errorf("sample %q: %w", code, ErrNoSample)
			}
		}
		return audit(ctx, tx, now, user, action, id, 0, "", detail, "")
	})
}

// ReviewState is where a sample stands in review, for the sample list.
type ReviewState struct {
	Version  int     // 0: not reviewed
	Signed   bool    // the current version is signed
	Outcome  Outcome // the signed reviewed verdict, when signed
	Headline string
}

// ReviewStates gives every reviewed sample's state, by sample ID.
func (s *Store) ReviewStates(ctx context.Context) (map[int64]ReviewState, error) {
	rows, err := s.db.QueryContext(ctx, `SELECT r.sample_id, r.version, r.signed_at IS NOT NULL,
		coalesce(r.verdict, ''), coalesce(r.verdict_text, '')
		FROM reviews r WHERE r.version = (SELECT max(version) FROM reviews WHERE sample_id = r.sample_id)`)
	if err != nil {
		return nil, classify("read review states", err)
	}
	defer rows.Close()
	out := map[int64]ReviewState{}
	for rows.Next() {
		var id int64
		var st ReviewState
		var outcome string
		if err := rows.Scan(&id, &st.Version, &st.Signed, &outcome, &st.Headline); err != nil {
			return nil, classify("read review states", err)
		}
		st.Outcome = Outcome(outcome)
		out[id] = st
	}
	return out, classify("read review states", rows.Err())
}
