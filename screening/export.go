package screening

import (
	"context"
	"crypto/sha256"
	"database/sql"
	"encoding/csv"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"

	"allscreen/internal/durable"
)

// ExportSummary says what an export wrote.
type ExportSummary struct {
	Dir           string   `json:"dir"`
	Samples       int      `json:"samples"`
	Fields        int      `json:"fields"`
	Cells         int      `json:"cells"`
	Images        int      `json:"images"`
	MissingImages []string `json:"missing_images,omitempty"`
}

// Export writes every result to a new folder inside parent (a USB stick):
// samples.csv, fields.csv, cells.csv, results.json, the images (unless
// withImages is false), a README.txt and SHA256SUMS. The folder appears
// whole or not at all: it is written under a temporary name, synced, then
// renamed. The store is only read, in one transaction, so the export is a
// consistent snapshot even while the daemon writes. Images missing from the
// store are listed in the summary and in results.json, not fatal: one lost
// file must not block the export of everything else.
func (s *Store) Export(ctx context.Context, parent string, withImages bool) (ExportSummary, error) {
	snap, err := s.snapshot(ctx)
	if err != nil {
		return ExportSummary{}, err
	}
	if err := os.MkdirAll(parent, 0o755); err != nil {
		return ExportSummary{}, fmt.Errorf("export: %w", err)
	}
	unlock, err := LockExportTarget(parent)
	if err != nil {
		return ExportSummary{}, err
	}
	defer unlock()
	name := "allscreen-export-" + snap.ExportedAt.UTC().Format("20060102T150405Z")
	tmp, err := os.MkdirTemp(parent, "."+name+".partial-")
	if err != nil {
		return ExportSummary{}, classify("export", err)
	}
	ok := false
	defer func() {
		if !ok {
			os.RemoveAll(tmp)
		}
	}()
	sum := ExportSummary{Samples: len(snap.Samples)}
	w := &exportWriter{dir: tmp, sums: map[string]string{}}
	if withImages {
		for _, ref := range snap.images() {
			if !ref.valid() {
				sum.MissingImages = append(sum.MissingImages, fmt.Sprintf("invalid reference %q", ref.SHA256+"."+ref.Format))
				continue
			}
			err := w.copyImage(filepath.Join(s.dir, ref.relPath()), ref)
			if errors.Is(err, fs.ErrNotExist) {
				sum.MissingImages = append(sum.MissingImages, ref.relPath())
				continue
			}
			var bad badImageError
			if errors.As(err, &bad) {
				sum.MissingImages = append(sum.MissingImages, ref.relPath()+": "+bad.why)
				continue
			}
			if err != nil {
				return ExportSummary{}, classify("export images", err)
			}
			sum.Images++
		}
	}
	snap.MissingImages = sum.MissingImages
	for _, smp := range snap.Samples {
		sum.Fields += len(smp.Captures)
		for _, f := range smp.Captures {
			sum.Cells += len(f.Cells)
		}
	}
	if err := w.writeCSVs(snap); err != nil {
		return ExportSummary{}, classify("export", err)
	}
	js, err := json.MarshalIndent(snap, "", "  ")
	if err != nil {
		return ExportSummary{}, fmt.Errorf("export: %w", err)
	}
	if err := w.writeFile("results.json", append(js, '\n')); err != nil {
		return ExportSummary{}, classify("export", err)
	}
	if err := w.writeFile("README.txt", []byte(exportReadme(snap, withImages))); err != nil {
		return ExportSummary{}, classify("export", err)
	}
	if err := w.writeSums(); err != nil {
		return ExportSummary{}, classify("export", err)
	}
	if err := w.syncDirs(); err != nil {
		return ExportSummary{}, classify("export", err)
	}
	final := filepath.Join(parent, name)
	for i := 2; ; i++ {
		if _, err := os.Lstat(final); errors.Is(err, fs.ErrNotExist) {
			break
		}
		final = filepath.Join(parent, fmt.Sprintf("%s-%d", name, i))
	}
	if err := os.Rename(tmp, final); err != nil {
		return ExportSummary{}, classify("export", err)
	}
	ok = true
	if err := durable.SyncDir(parent); err != nil {
		return ExportSummary{}, classify("export", err)
	}
	sum.Dir = final
	return sum, nil
}

// Exported rows, as results.json holds them.
type (
	exportSnapshot struct {
		Format        string           `json:"format"`
		ExportedAt    time.Time        `json:"exported_at"`
		SchemaVersion int              `json:"schema_version"`
		Samples       []exportedSample `json:"samples"`
		Events        []Event          `json:"events"`
		MissingImages []string         `json:"missing_images,omitempty"`
	}
	exportedSample struct {
		SampleSummary
		Rule json.RawMessage `json:"rule,omitempty"`
		// Captures are the sample's fields in full (Fields is their count).
		Captures []exportedField `json:"captures"`
	}
	exportedField struct {
		ID           int64          `json:"id"`
		Number       int            `json:"number"`
		CapturedAt   time.Time      `json:"captured_at"`
		StoredAt     time.Time      `json:"stored_at"`
		Width        int            `json:"width"`
		Height       int            `json:"height"`
		Image        string         `json:"image"`
		Accepted     bool           `json:"accepted"`
		RejectReason string         `json:"reject_reason,omitempty"`
		Tally        Tally          `json:"tally"`
		Provenance   Provenance     `json:"provenance"`
		Cells        []exportedCell `json:"cells"`
		ref          ImageRef
	}
	exportedCell struct {
		Number            int       `json:"number"`
		Box               [4]int    `json:"box"`  // x, y, w, h in field pixels
		Crop              [3]int    `json:"crop"` // x, y, side
		Area              int       `json:"area"`
		Image             string    `json:"image"`
		PBlast            float64   `json:"p_blast"`
		Probs             []float64 `json:"probs"`
		Subtype           string    `json:"subtype,omitempty"`
		SubtypeProb       *float64  `json:"subtype_prob,omitempty"`
		Uncertain         bool      `json:"uncertain"`
		OutOfDistribution bool      `json:"out_of_distribution"`
		CalledBlast       bool      `json:"called_blast"`
		ref               ImageRef
	}
)

func (s *exportSnapshot) images() []ImageRef {
	seen := map[ImageRef]bool{}
	var out []ImageRef
	add := func(r ImageRef) {
		if !seen[r] {
			seen[r] = true
			out = append(out, r)
		}
	}
	for _, smp := range s.Samples {
		if smp.PrunedAt != nil {
			continue // its images were removed on purpose (Prune)
		}
		for _, f := range smp.Captures {
			add(f.ref)
			for _, c := range f.Cells {
				add(c.ref)
			}
		}
	}
	return out
}

// snapshot reads everything in one read transaction.
func (s *Store) snapshot(ctx context.Context) (*exportSnapshot, error) {
	tx, err := s.db.BeginTx(ctx, &sql.TxOptions{ReadOnly: true})
	if err != nil {
		return nil, classify("export: read results", err)
	}
	defer tx.Rollback()
	snap := &exportSnapshot{Format: "allscreen-export/1", ExportedAt: s.opt.Clock.Now().UTC()}
	if snap.SchemaVersion, err = schemaVersion(ctx, tx); err != nil {
		return nil, classify("export: read results", err)
	}
	list, err := s.samplesWhere(ctx, tx, "1")
	if err != nil {
		return nil, err
	}
	byID := map[int64]*exportedSample{}
	snap.Samples = make([]exportedSample, len(list))
	for i, smp := range list {
		snap.Samples[i] = exportedSample{SampleSummary: smp, Captures: []exportedField{}}
		byID[smp.ID] = &snap.Samples[i]
	}
	rules, err := tx.QueryContext(ctx, `SELECT id, rule FROM samples WHERE rule IS NOT NULL`)
	if err != nil {
		return nil, classify("export: read samples", err)
	}
	for rules.Next() {
		var id int64
		var rule string
		if err := rules.Scan(&id, &rule); err != nil {
			rules.Close()
			return nil, err
		}
		if smp := byID[id]; smp != nil {
			smp.Rule = json.RawMessage(rule)
		}
	}
	rules.Close()
	fieldByID := map[int64]*exportedField{}
	rows, err := tx.QueryContext(ctx, `SELECT id, sample_id, number, captured_at, stored_at, width, height, image_sha256,
		image_format, accepted, reject_reason, white_cells, blasts, uncertain, out_of_distribution,
		model_sha256, config_sha256, software_version, research FROM fields ORDER BY sample_id, number`)
	if err != nil {
		return nil, classify("export: read fields", err)
	}
	for rows.Next() {
		var f exportedField
		var sampleID int64
		var captured, stored string
		var reject sql.NullString
		if err := rows.Scan(&f.ID, &sampleID, &f.Number, &captured, &stored, &f.Width, &f.Height, &f.ref.SHA256, &f.ref.Format,
			&f.Accepted, &reject, &f.Tally.WhiteCells, &f.Tally.Blasts, &f.Tally.Uncertain, &f.Tally.OutOfDistribution,
			&f.Provenance.ModelSHA256, &f.Provenance.ConfigSHA256, &f.Provenance.SoftwareVersion, &f.Provenance.Research); err != nil {
			rows.Close()
			return nil, err
		}
		f.CapturedAt, _ = parseTime(captured)
		f.StoredAt, _ = parseTime(stored)
		f.RejectReason = reject.String
		f.Image = filepath.ToSlash(f.ref.relPath())
		f.Cells = []exportedCell{}
		smp := byID[sampleID]
		if smp == nil {
			rows.Close()
			return nil, fmt.Errorf("export: field %d belongs to missing sample %d", f.ID, sampleID)
		}
		smp.Captures = append(smp.Captures, f)
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return nil, classify("export: read fields", err)
	}
	// Pointers into the slices only now that they no longer grow.
	for _, smp := range snap.Samples {
		for i := range smp.Captures {
			fieldByID[smp.Captures[i].ID] = &smp.Captures[i]
		}
	}
	cells, err := tx.QueryContext(ctx, `SELECT field_id, number, box_x, box_y, box_w, box_h, crop_x, crop_y, crop_side, area,
		crop_sha256, crop_format, p_blast, probs, subtype, subtype_prob, uncertain, out_of_distribution, called_blast
		FROM cells ORDER BY field_id, number`)
	if err != nil {
		return nil, classify("export: read cells", err)
	}
	defer cells.Close()
	for cells.Next() {
		var c exportedCell
		var fieldID int64
		var probs string
		var subtype sql.NullString
		var subProb sql.NullFloat64
		if err := cells.Scan(&fieldID, &c.Number, &c.Box[0], &c.Box[1], &c.Box[2], &c.Box[3], &c.Crop[0], &c.Crop[1], &c.Crop[2],
			&c.Area, &c.ref.SHA256, &c.ref.Format, &c.PBlast, &probs, &subtype, &subProb, &c.Uncertain, &c.OutOfDistribution,
			&c.CalledBlast); err != nil {
			return nil, err
		}
		if err := json.Unmarshal([]byte(probs), &c.Probs); err != nil {
			return nil, fmt.Errorf("export: cell %d of field %d: unreadable probabilities: %w", c.Number, fieldID, err)
		}
		c.Subtype = subtype.String
		if subProb.Valid {
			c.SubtypeProb = &subProb.Float64
		}
		c.Image = filepath.ToSlash(c.ref.relPath())
		f := fieldByID[fieldID]
		if f == nil {
			return nil, fmt.Errorf("export: cell %d belongs to missing field %d", c.Number, fieldID)
		}
		f.Cells = append(f.Cells, c)
	}
	if err := cells.Err(); err != nil {
		return nil, classify("export: read cells", err)
	}
	if snap.SchemaVersion >= 2 {
		ev, err := tx.QueryContext(ctx, `SELECT at, kind, message FROM events ORDER BY id`)
		if err != nil {
			return nil, classify("export: read events", err)
		}
		for ev.Next() {
			var e Event
			var at string
			if err := ev.Scan(&at, &e.Kind, &e.Message); err != nil {
				ev.Close()
				return nil, err
			}
			e.At, _ = parseTime(at)
			snap.Events = append(snap.Events, e)
		}
		ev.Close()
	}
	if snap.Events == nil {
		snap.Events = []Event{}
	}
	return snap, nil
}

// exportWriter writes files into the export folder, each synced, and
// remembers their hashes.
type exportWriter struct {
	dir  string
	sums map[string]string
	dirs []string
}

func (w *exportWriter) create(rel string) (*os.File, error) {
	p := filepath.Join(w.dir, rel)
	if d := filepath.Dir(p); d != w.dir && !slices.Contains(w.dirs, d) {
		if err := os.MkdirAll(d, 0o755); err != nil {
			return nil, err
		}
		w.dirs = append(w.dirs, d)
	}
	return os.OpenFile(p, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o644)
}

func (w *exportWriter) finish(rel string, f *os.File, h []byte) error {
	err := f.Sync()
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return err
	}
	w.sums[filepath.ToSlash(rel)] = hex.EncodeToString(h)
	return nil
}

func (w *exportWriter) writeFile(rel string, data []byte) error {
	f, err := w.create(rel)
	if err != nil {
		return err
	}
	if _, err := f.Write(data); err != nil {
		f.Close()
		return err
	}
	h := sha256.Sum256(data)
	return w.finish(rel, f, h[:])
}

// badImageError: a stored image that is there but must not be exported as
// the result's image (not a regular file, or not the content its name
// says).
type badImageError struct{ why string }

func (e badImageError) Error() string { return e.why }

// copyImage copies a stored image into the export only if it is a regular
// file (opened without following a symlink or blocking on a FIFO) whose
// content has the SHA-256 its name says; otherwise nothing of it is left
// in the export and badImageError says why.
func (w *exportWriter) copyImage(src string, ref ImageRef) error {
	rel := ref.relPath()
	in, err := os.OpenFile(src, os.O_RDONLY|syscall.O_NOFOLLOW|syscall.O_NONBLOCK, 0)
	if errors.Is(err, syscall.ELOOP) {
		return badImageError{"a symbolic link, not the stored image: not exported"}
	}
	if err != nil {
		return err
	}
	defer in.Close()
	st, err := in.Stat()
	if err != nil {
		return err
	}
	if !st.Mode().IsRegular() {
		return badImageError{"not a regular file: not exported"}
	}
	f, err := w.create(rel)
	if err != nil {
		return err
	}
	h := sha256.New()
	if _, err := io.Copy(io.MultiWriter(f, h), in); err != nil {
		f.Close()
		return err
	}
	if got := hex.EncodeToString(h.Sum(nil)); got != ref.SHA256 {
		f.Close()
		os.Remove(filepath.Join(w.dir, rel))
		return badImageError{"its content (sha256 " + got[:12] + "...) is not what its name says: altered, not exported"}
	}
	return w.finish(rel, f, h.Sum(nil))
}

// LockExportTarget holds an flock on the target folder itself (nothing is
// left on the stick) for one export, of results (Export) or of signed
// reports (record.ExportSigned), and removes the hidden partial folders
// (.allscreen-*.partial-*) an export killed there earlier left behind
// (under the lock, no other export is writing them). Call the returned
// function to release it.
func LockExportTarget(parent string) (func(), error) {
	f, err := os.Open(parent)
	if err != nil {
		return nil, classify("export", err)
	}
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
		f.Close()
		if errors.Is(err, syscall.EWOULDBLOCK) {
			return nil, fmt.Errorf("export: another export to %s is running; wait for it", parent)
		}
		return nil, classify("export", err)
	}
	stale, _ := filepath.Glob(filepath.Join(parent, ".allscreen-*.partial-*"))
	for _, d := range stale {
		os.RemoveAll(d)
	}
	return func() { f.Close() }, nil
}

func (w *exportWriter) writeSums() error {
	names := make([]string, 0, len(w.sums))
	for n := range w.sums {
		names = append(names, n)
	}
	slices.Sort(names)
	var b strings.Builder
	for _, n := range names {
		fmt.Fprintf(&b, "%s  %s\n", w.sums[n], n)
	}
	return w.writeFile("SHA256SUMS", []byte(b.String()))
}

func (w *exportWriter) syncDirs() error {
	// Deepest first, so every entry is durable before its parent's.
	dirs := slices.Clone(w.dirs)
	slices.SortFunc(dirs, func(a, b string) int { return len(b) - len(a) })
	for _, d := range append(dirs, filepath.Join(w.dir, "images"), w.dir) {
		if err := durable.SyncDir(d); err != nil && !errors.Is(err, fs.ErrNotExist) {
			return err
		}
	}
	return nil
}

func (w *exportWriter) writeCSVs(snap *exportSnapshot) error {
	b := func(v bool) string {
		if v {
			return "1"
		}
		return "0"
	}
	ts := func(t time.Time) string { return t.UTC().Format(time.RFC3339) }
	itoa := strconv.Itoa
	ftoa := func(f float64) string { return strconv.FormatFloat(f, 'g', 6, 64) }

	samples := [][]string{{"code", "id", "opened_at", "closed_at", "fields", "accepted_fields", "white_cells", "blasts",
		"uncertain", "out_of_distribution", "outcome", "verdict", "reasons", "model_sha256", "config_sha256", "software_version", "research",
		"device_id", "specimen_id", "operator", "clock_synchronized"}}
	fields := [][]string{{"sample_code", "field_id", "number", "captured_at", "stored_at", "width", "height", "accepted",
		"reject_reason", "white_cells", "blasts", "uncertain", "out_of_distribution", "image", "research"}}
	cells := [][]string{{"sample_code", "field_number", "cell_number", "box_x", "box_y", "box_w", "box_h", "crop_x", "crop_y",
		"crop_side", "area", "p_blast", "probs (label=P)", "subtype", "subtype_prob", "uncertain", "out_of_distribution", "called_blast", "image"}}
	for _, smp := range snap.Samples {
		closed := ""
		if smp.ClosedAt != nil {
			closed = ts(*smp.ClosedAt)
		}
		t := smp.Tally
		samples = append(samples, []string{smp.Code, strconv.FormatInt(smp.ID, 10), ts(smp.OpenedAt), closed, itoa(smp.Fields),
			itoa(smp.AcceptedFields), itoa(t.WhiteCells), itoa(t.Blasts), itoa(t.Uncertain), itoa(t.OutOfDistribution),
			string(smp.Outcome), smp.Verdict, strings.Join(smp.Reasons, "; "), smp.ModelSHA256, smp.ConfigSHA256, smp.SoftwareVersion, b(smp.Research),
			smp.DeviceID, smp.SpecimenID, smp.Operator, optBool(smp.ClockSynchronized)})
		for _, f := range smp.Captures {
			fields = append(fields, []string{smp.Code, strconv.FormatInt(f.ID, 10), itoa(f.Number), ts(f.CapturedAt), ts(f.StoredAt),
				itoa(f.Width), itoa(f.Height), b(f.Accepted), f.RejectReason, itoa(f.Tally.WhiteCells), itoa(f.Tally.Blasts),
				itoa(f.Tally.Uncertain), itoa(f.Tally.OutOfDistribution), f.Image, b(f.Provenance.Research)})
			for _, c := range f.Cells {
				probs := make([]string, len(c.Probs))
				for i, p := range c.Probs {
					label := fmt.Sprintf("class%d", i) // a sample stored before labels were kept
					if i < len(smp.Labels) {
						label = smp.Labels[i]
					}
					probs[i] = label + "=" + ftoa(p)
				}
				sub := ""
				if c.SubtypeProb != nil {
					sub = ftoa(*c.SubtypeProb)
				}
				cells = append(cells, []string{smp.Code, itoa(f.Number), itoa(c.Number), itoa(c.Box[0]), itoa(c.Box[1]),
					itoa(c.Box[2]), itoa(c.Box[3]), itoa(c.Crop[0]), itoa(c.Crop[1]), itoa(c.Crop[2]), itoa(c.Area),
					ftoa(c.PBlast), strings.Join(probs, ";"), c.Subtype, sub, b(c.Uncertain), b(c.OutOfDistribution),
					b(c.CalledBlast), c.Image})
			}
		}
	}
	for name, rows := range map[string][][]string{"samples.csv": samples, "fields.csv": fields, "cells.csv": cells} {
		var sb strings.Builder
		cw := csv.NewWriter(&sb)
		if err := cw.WriteAll(rows); err != nil {
			return err
		}
		if err := w.writeFile(name, []byte(sb.String())); err != nil {
			return err
		}
	}
	return nil
}

func exportReadme(snap *exportSnapshot, withImages bool) string {
	var b strings.Builder
	fmt.Fprintf(&b, "allscreen results, exported %s (schema version %d)\n\n", snap.ExportedAt.Format(time.RFC3339), snap.SchemaVersion)
	b.WriteString(`samples.csv   one line per sample (slide): its code, times, counts and verdict
fields.csv    one line per captured field; rejected fields carry the reason
cells.csv     one line per white cell: box, crop, P(blast), all probabilities, subtype, calls
results.json  the same, nested (samples > captures > cells), with each verdict's thresholds
SHA256SUMS    check the copy with: sha256sum -c SHA256SUMS
`)
	if withImages {
		b.WriteString("images/       field frames (JPEG) and cell crops (PNG), named by the sha256 of their content\n")
	} else {
		b.WriteString("Images were not exported (--no-images).\n")
	}
	if len(snap.MissingImages) > 0 {
		fmt.Fprintf(&b, "\n%d images referenced by results were missing from the device or unusable (altered, not a file); results.json lists them.\n", len(snap.MissingImages))
	}
	research := 0
	for _, smp := range snap.Samples {
		if smp.Research {
			research++
		}
	}
	if research > 0 {
		fmt.Fprintf(&b, "\nRESEARCH: %d sample(s) were made in research mode, with screening settings outside the validated bounds\n"+
			"(the research column is 1). Their verdicts are not results for a patient.\n", research)
	}
	b.WriteString("\nThis is a screening aid, not a diagnosis: every 'refer' and 'review' goes to a haematologist.\n")
	return b.String()
}

// optBool is 1, 0, or empty when not recorded.
func optBool(v *bool) string {
	switch {
	case v == nil:
		return ""
	case *v:
		return "1"
	}
	return "0"
}
