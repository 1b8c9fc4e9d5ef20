package screening

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
)

// salvageOpenSample copies the newest open sample of a set-aside database
// into the new one (tx), under its own ID and code, with every field whose
// rows read back and whose images are intact. It reads only the columns of
// schema version 1, so a damaged file of any version serves. It returns what
// it carried over, "" when no sample was open.
func salvageOpenSample(ctx context.Context, asidePath, root string, tx *sql.Tx, opt Options) (string, error) {
	old, err := sql.Open("sqlite", dsn(asidePath, opt, true))
	if err != nil {
		return "", err
	}
	defer old.Close()
	var id int64
	var code, opened, model, config, software string
	err = old.QueryRowContext(ctx, `SELECT id, code, opened_at, model_sha256, config_sha256, software_version
		FROM samples WHERE closed_at IS NULL ORDER BY id DESC LIMIT 1`).Scan(&id, &code, &opened, &model, &config, &software)
	if errors.Is(err, sql.ErrNoRows) {
		return "", nil
	}
	if err != nil {
		return "", fmt.Errorf("read the open sample: %w", err)
	}
	if _, err := tx.ExecContext(ctx, `INSERT INTO samples (id, code, opened_at, model_sha256, config_sha256, software_version)
		VALUES (?, ?, ?, ?, ?, ?)`, id, code, opened, model, config, software); err != nil {
		return "", fmt.Errorf("sample %s: %w", code, err)
	}
	type field struct {
		id                                                     int64
		number, width, height, accepted, wbc, blasts, unc, ood int
		captured, stored, sha, format, model, config, software string
		reject                                                 sql.NullString
	}
	rows, err := old.QueryContext(ctx, `SELECT id, number, captured_at, stored_at, width, height, image_sha256, image_format,
		accepted, reject_reason, white_cells, blasts, uncertain, out_of_distribution, model_sha256, config_sha256, software_version
		FROM fields WHERE sample_id = ? ORDER BY number`, id)
	if err != nil {
		return "", fmt.Errorf("sample %s's fields: %w", code, err)
	}
	var fields []field
	for rows.Next() {
		var f field
		if err := rows.Scan(&f.id, &f.number, &f.captured, &f.stored, &f.width, &f.height, &f.sha, &f.format, &f.accepted, &f.reject,
			&f.wbc, &f.blasts, &f.unc, &f.ood, &f.model, &f.config, &f.software); err != nil {
			break
		}
		fields = append(fields, f)
	}
	rows.Close()
	saved, lost := 0, 0
	for _, f := range fields {
		ok, err := salvageField(ctx, old, tx, root, f.id, func(tx *sql.Tx) (int64, error) {
			var newID int64
			err := tx.QueryRowContext(ctx, `INSERT INTO fields (sample_id, number, captured_at, stored_at, width, height,
				image_sha256, image_format, accepted, reject_reason, white_cells, blasts, uncertain, out_of_distribution,
				model_sha256, config_sha256, software_version) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) RETURNING id`,
				id, f.number, f.captured, f.stored, f.width, f.height, f.sha, f.format, f.accepted, f.reject, f.wbc, f.blasts, f.unc, f.ood,
				f.model, f.config, f.software).Scan(&newID)
			return newID, err
		}, ImageRef{SHA256: f.sha, Format: f.format})
		if err != nil {
			return "", err
		}
		if ok {
			saved++
		} else {
			lost++
		}
	}
	msg := fmt.Sprintf("sample %s, open in it, was carried over with %d field(s)", code, saved)
	if lost > 0 {
		msg += fmt.Sprintf("; %d field(s) of it were unreadable and stay in the set-aside file", lost)
	}
	return msg, nil
}

// salvageField copies one field and its cells when every row reads and
// every image is intact; ok is false (and nothing written) otherwise.
func salvageField(ctx context.Context, old *sql.DB, tx *sql.Tx, root string, fieldID int64,
	insert func(*sql.Tx) (int64, error), frame ImageRef) (ok bool, err error) {
	if checkImage(root, frame) != nil {
		return false, nil
	}
	rows, err := old.QueryContext(ctx, `SELECT number, box_x, box_y, box_w, box_h, crop_x, crop_y, crop_side, area,
		crop_sha256, crop_format, p_blast, probs, subtype, subtype_prob, uncertain, out_of_distribution, called_blast
		FROM cells WHERE field_id = ? ORDER BY number`, fieldID)
	if err != nil {
		return false, nil
	}
	var cells [][]any
	for rows.Next() {
		c := make([]any, 18)
		ptrs := make([]any, 18)
		for i := range c {
			ptrs[i] = &c[i]
		}
		if err := rows.Scan(ptrs...); err != nil {
			rows.Close()
			return false, nil
		}
		ref := ImageRef{SHA256: fmt.Sprint(c[9]), Format: fmt.Sprint(c[10])}
		if checkImage(root, ref) != nil {
			rows.Close()
			return false, nil
		}
		cells = append(cells, c)
	}
	if rows.Close(); rows.Err() != nil {
		return false, nil
	}
	if _, err := tx.ExecContext(ctx, `SAVEPOINT field`); err != nil {
		return false, err
	}
	newID, err := insert(tx)
	for _, c := range cells {
		if err != nil {
			break
		}
		_, err = tx.ExecContext(ctx, `INSERT INTO cells (field_id, number, box_x, box_y, box_w, box_h, crop_x, crop_y, crop_side,
			area, crop_sha256, crop_format, p_blast, probs, subtype, subtype_prob, uncertain, out_of_distribution, called_blast)
			VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`, append([]any{newID}, c...)...)
	}
	if err != nil { // a row that does not fit the schema: leave this field
		_, rerr := tx.ExecContext(ctx, `ROLLBACK TO field`)
		return false, rerr
	}
	_, err = tx.ExecContext(ctx, `RELEASE field`)
	return err == nil, err
}
