package screening

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"
)

// SampleSummary is one line of `allscreen results`.
type SampleSummary struct {
	ID             int64      `json:"id"`
	Code           string     `json:"code"`
	OpenedAt       time.Time  `json:"opened_at"`
	ClosedAt       *time.Time `json:"closed_at"` // nil while the sample is open
	Fields         int        `json:"fields"`    // captured, rejected ones included
	AcceptedFields int        `json:"accepted_fields"`
	Tally          Tally      `json:"tally"`
	Outcome        Outcome    `json:"outcome,omitempty"` // empty while open
	Verdict        string     `json:"verdict"`           // the headline shown, or "open"
	Reasons        []string   `json:"reasons,omitempty"`
	SpecimenID     string     `json:"specimen_id,omitempty"`
	// PrunedAt: the sample's images were removed then (allscreen prune);
	// its rows, review and audit trail are kept.
	PrunedAt *time.Time `json:"pruned_at,omitempty"`
	Operator string     `json:"operator,omitempty"`
	Provenance
}

// Samples lists every sample, oldest first. Tallies of open samples are
// summed from their fields; closed ones show the tally their verdict used.
func (s *Store) Samples(ctx context.Context) ([]SampleSummary, error) {
	return s.samplesWhere(ctx, s.db, "1")
}

// samplesWhere lists the samples that match an SQL condition on s.
func (s *Store) samplesWhere(ctx context.Context, q interface {
	QueryContext(context.Context, string, ...any) (*sql.Rows, error)
}, where string, args ...any) ([]SampleSummary, error) {
	rows, err := q.QueryContext(ctx, `SELECT s.id, s.code, s.opened_at, s.closed_at, s.verdict, s.verdict_text,
		s.verdict_reasons, s.model_sha256, s.config_sha256, s.software_version, s.research,
		s.device_id, coalesce(s.specimen_id, ''), coalesce(s.operator, ''), s.labels, s.clock_synchronized, s.pruned_at,
		count(f.id), coalesce(sum(f.accepted), 0), coalesce(sum(f.white_cells), 0), coalesce(sum(f.blasts), 0),
		coalesce(sum(f.uncertain), 0), coalesce(sum(f.out_of_distribution), 0)
		FROM samples s LEFT JOIN fields f ON f.sample_id = s.id
		WHERE `+where+` GROUP BY s.id ORDER BY s.id`, args...)
	if err != nil {
		return nil, classify("list samples", err)
	}
	defer rows.Close()
	var out []SampleSummary
	for rows.Next() {
		var r SampleSummary
		var opened string
		var closed, outcome, text, reasons sql.NullString
		var labels string
		var clock sql.NullBool
		var pruned sql.NullString
		if err := rows.Scan(&r.ID, &r.Code, &opened, &closed, &outcome, &text, &reasons,
			&r.ModelSHA256, &r.ConfigSHA256, &r.SoftwareVersion, &r.Research,
			&r.DeviceID, &r.SpecimenID, &r.Operator, &labels, &clock, &pruned, &r.Fields, &r.AcceptedFields,
			&r.Tally.WhiteCells, &r.Tally.Blasts, &r.Tally.Uncertain, &r.Tally.OutOfDistribution); err != nil {
			return nil, classify("list samples", err)
		}
		r.Tally.Fields = r.AcceptedFields
		if clock.Valid {
			r.ClockSynchronized = &clock.Bool
		}
		if pruned.Valid {
			t, err := parseTime(pruned.String)
			if err != nil {
				return nil, fmt.Errorf("sample %s: bad pruning time %q", r.Code, pruned.String)
			}
			r.PrunedAt = &t
		}
		if err := json.Unmarshal([]byte(labels), &r.Labels); err != nil {
			return nil, fmt.Errorf("sample %s: unreadable labels %q", r.Code, labels)
		}
		if r.OpenedAt, err = parseTime(opened); err != nil {
			return nil, fmt.Errorf("sample %s: bad opening time %q", r.Code, opened)
		}
		r.Verdict = "open"
		if closed.Valid {
			t, err := parseTime(closed.String)
			if err != nil {
				return nil, fmt.Errorf("sample %s: bad closing time %q", r.Code, closed.String)
			}
			r.ClosedAt = &t
			r.Outcome, r.Verdict = Outcome(outcome.String), text.String
			if reasons.Valid {
				if err := json.Unmarshal([]byte(reasons.String), &r.Reasons); err != nil {
					return nil, fmt.Errorf("sample %s: unreadable verdict reasons: %w", r.Code, err)
				}
			}
		}
		out = append(out, r)
	}
	if err := rows.Err(); err != nil {
		return nil, classify("list samples", err)
	}
	return out, nil
}

// Event is something a person should know about the store.
type Event struct {
	At      time.Time `json:"at"`
	Kind    string    `json:"kind"`
	Message string    `json:"message"`
}

// Events lists the store's events, oldest first (none before schema 2).
func (s *Store) Events(ctx context.Context) ([]Event, error) {
	v, err := schemaVersion(ctx, s.db)
	if err != nil || v < 2 {
		return nil, err
	}
	rows, err := s.db.QueryContext(ctx, `SELECT at, kind, message FROM events ORDER BY id`)
	if err != nil {
		return nil, classify("list events", err)
	}
	defer rows.Close()
	var out []Event
	for rows.Next() {
		var e Event
		var at string
		if err := rows.Scan(&at, &e.Kind, &e.Message); err != nil {
			return nil, err
		}
		e.At, _ = parseTime(at)
		out = append(out, e)
	}
	return out, rows.Err()
}

// Verify checks the store end to end: SQLite's full integrity check, every
// foreign key, and every referenced image present with the content its name
// says. It returns nil or an error listing what is wrong.
func (s *Store) Verify(ctx context.Context) error {
	var problems []string
	rows, err := s.db.QueryContext(ctx, `PRAGMA integrity_check`)
	if err != nil {
		return classify("integrity check", err)
	}
	for rows.Next() {
		var line string
		if err := rows.Scan(&line); err != nil {
			rows.Close()
			return err
		}
		if line != "ok" {
			problems = append(problems, line)
		}
	}
	rows.Close()
	rows, err = s.db.QueryContext(ctx, `PRAGMA foreign_key_check`)
	if err != nil {
		return classify("foreign key check", err)
	}
	for rows.Next() {
		problems = append(problems, "a row refers to a missing parent")
	}
	rows.Close()
	rows, err = s.db.QueryContext(ctx, `SELECT image_sha256, image_format FROM fields f JOIN samples s ON s.id = f.sample_id
		WHERE s.pruned_at IS NULL
		UNION SELECT crop_sha256, crop_format FROM cells c JOIN fields f ON f.id = c.field_id JOIN samples s ON s.id = f.sample_id
		WHERE s.pruned_at IS NULL`)
	if err != nil {
		return classify("list images", err)
	}
	var refs []ImageRef
	for rows.Next() {
		var r ImageRef
		if err := rows.Scan(&r.SHA256, &r.Format); err != nil {
			rows.Close()
			return err
		}
		refs = append(refs, r)
	}
	rows.Close()
	for _, r := range refs {
		if err := checkImage(s.dir, r); err != nil {
			problems = append(problems, err.Error())
		}
	}
	if len(problems) > 0 {
		if len(problems) > 10 {
			problems = append(problems[:10], fmt.Sprintf("and %d more", len(problems)-10))
		}
		return errors.New("results store damaged: " + strings.Join(problems, "; "))
	}
	return nil
}
