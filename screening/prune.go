package screening

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"time"

	"allscreen/internal/durable"
)

// Pruning (issue 15 item 8): the images fill the card, not the rows. A
// pruned sample loses its field and crop images; its rows, its signed
// review and its audit trail stay (a signed result is immutable and the
// trail append-only, so they could not honestly go), and its record says
// when it was pruned. Only samples that are signed and whose every image is
// in an export folder, byte for byte, are pruned unless forced.

// PruneOptions says what Prune may remove.
type PruneOptions struct {
	Before     time.Time // samples closed before this
	ExportedIn string    // a folder holding allscreen-export-* folders (a USB stick)
	Force      bool      // prune unsigned or unexported samples too
	DryRun     bool      // say what would go, remove nothing
	By         string    // who, for the audit trail
}

// PruneSummary says what Prune did (or would do).
type PruneSummary struct {
	Samples []string       // codes pruned
	Images  int            // files removed
	Bytes   int64          // their size
	Kept    map[string]int // samples left, by reason
}

// Prune removes the images of closed samples as PruneOptions allow. It
// commits the samples' pruned state and audit entries first, then removes
// the files: a crash in between leaves files that nothing needs, never a
// row whose images are gone unexplained.
func (s *Store) Prune(ctx context.Context, opt PruneOptions) (PruneSummary, error) {
	sum := PruneSummary{Kept: map[string]int{}}
	if opt.By == "" {
		return sum, errors.New("prune: who prunes is needed for the audit trail")
	}
	list, err := s.Samples(ctx)
	if err != nil {
		return sum, err
	}
	states, err := s.ReviewStates(ctx)
	if err != nil {
		return sum, err
	}
	refsOf := map[int64][]ImageRef{}
	uses := map[ImageRef]int{} // samples not pruned (now or before) that need each image
	for _, smp := range list {
		if smp.PrunedAt != nil {
			continue
		}
		d, err := s.SampleDetail(ctx, smp.Code)
		if err != nil {
			return sum, err
		}
		seen := map[ImageRef]bool{}
		for _, f := range d.Fields {
			for _, r := range append([]ImageRef{f.Image}, cropsOf(f)...) {
				if !seen[r] {
					seen[r] = true
					refsOf[smp.ID] = append(refsOf[smp.ID], r)
					uses[r]++
				}
			}
		}
	}
	exported := exportedImages(opt.ExportedIn)
	var prune []SampleSummary
	for _, smp := range list {
		switch {
		case smp.PrunedAt != nil:
			continue
		case smp.ClosedAt == nil:
			sum.Kept["open"]++
			continue
		case !smp.ClosedAt.Before(opt.Before):
			sum.Kept["closed on or after the date"]++
			continue
		}
		if !opt.Force && !states[smp.ID].Signed {
			sum.Kept["not signed (--force prunes it)"]++
			continue
		}
		if !opt.Force && !allExported(refsOf[smp.ID], exported) {
			sum.Kept["not every image in an export (--force prunes it)"]++
			continue
		}
		prune = append(prune, smp)
	}
	var files []ImageRef
	for _, smp := range prune {
		sum.Samples = append(sum.Samples, smp.Code)
		for _, r := range refsOf[smp.ID] {
			if uses[r]--; uses[r] == 0 {
				files = append(files, r)
			}
		}
	}
	for _, r := range files {
		if st, err := os.Lstat(filepath.Join(s.dir, r.relPath())); err == nil {
			sum.Images++
			sum.Bytes += st.Size()
		}
	}
	if opt.DryRun || len(prune) == 0 {
		return sum, nil
	}
	err = s.writeTx(ctx, "prune", func(tx *sql.Tx, now time.Time) error {
		for _, smp := range prune {
			if _, err := tx.ExecContext(ctx, `UPDATE samples SET pruned_at = ? WHERE id = ? AND pruned_at IS NULL`, formatTime(now), smp.ID); err != nil {
				return err
			}
			why := "signed, and every image found in an export in " + opt.ExportedIn
			if opt.Force {
				why = "forced"
			}
			if err := audit(ctx, tx, now, opt.By, "prune", smp.ID, 0, "", fmt.Sprintf("%d images removed", len(refsOf[smp.ID])),
				fmt.Sprintf("closed before %s; %s", opt.Before.Format(time.DateOnly), why)); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return PruneSummary{Kept: sum.Kept}, err
	}
	dirs := map[string]bool{}
	for _, r := range files {
		p := filepath.Join(s.dir, r.relPath())
		if err := os.Remove(p); err != nil && !errors.Is(err, fs.ErrNotExist) {
			return sum, fmt.Errorf("prune: %w (the samples are marked pruned; run prune again to finish)", err)
		}
		dirs[filepath.Dir(p)] = true
	}
	for d := range dirs {
		if err := durable.SyncDir(d); err != nil {
			return sum, err
		}
	}
	return sum, nil
}

func cropsOf(f FieldDetail) []ImageRef {
	out := make([]ImageRef, len(f.Cells))
	for i, c := range f.Cells {
		out[i] = c.Crop
	}
	return out
}

// exportedImages finds, for each image in an allscreen-export-* folder of
// dir, the export folder holding it (laid out as the store: images/ab/...).
func exportedImages(dir string) map[ImageRef]string {
	out := map[ImageRef]string{}
	if dir == "" {
		return out
	}
	files, _ := filepath.Glob(filepath.Join(dir, "allscreen-export-*", "images", "*", "*"))
	for _, p := range files {
		if ref, ok := ParseImageRef(filepath.Base(p)); ok {
			out[ref] = filepath.Dir(filepath.Dir(filepath.Dir(p)))
		}
	}
	return out
}

// allExported: every image is in an export, and its bytes hash to its name.
func allExported(refs []ImageRef, exported map[ImageRef]string) bool {
	for _, r := range refs {
		root, ok := exported[r]
		if !ok || checkImage(root, r) != nil {
			return false
		}
	}
	return true
}
