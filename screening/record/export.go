package record

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"syscall"

	"allscreen/internal/durable"
	"allscreen/screening"
)

// CheckTarget refuses an export target that is missing, not a folder, or
// on the same filesystem as the results (the SD card): an export there
// would look done and leave the device with the only copy.
func CheckTarget(target, stateDir string) error {
	st, err := os.Stat(target)
	if errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("%s does not exist: %w", target, screening.ErrNoStick)
	}
	if err != nil {
		return fmt.Errorf("export target: %w", err)
	}
	if !st.IsDir() {
		return fmt.Errorf("%s is not a folder: %w", target, screening.ErrNoStick)
	}
	state, err := os.Stat(stateDir)
	if err != nil {
		return fmt.Errorf("results folder: %w", err)
	}
	a, aok := st.Sys().(*syscall.Stat_t)
	b, bok := state.Sys().(*syscall.Stat_t)
	if aok && bok && a.Dev == b.Dev {
		return fmt.Errorf("%s is on the same disk as the results: %w", target, screening.ErrNoStick)
	}
	return nil
}

// ExportSummary says what ExportSigned wrote.
type ExportSummary struct {
	Dir     string
	Reports int // signed samples, each a PDF and a FHIR bundle
}

// ExportSigned writes every signed sample's current version as
// CODE-vN.pdf and CODE-vN.fhir.json, with SHA256SUMS, into a new folder
// in target. The folder is written under a temporary name, synced, then
// renamed: it appears whole or not at all. One export writes to a target
// at a time (screening.LockExportTarget), and the partial folders a
// killed export left there are removed first.
func ExportSigned(ctx context.Context, s *screening.Store, target string, opt Options) (ExportSummary, error) {
	unlock, err := screening.LockExportTarget(target)
	if err != nil {
		return ExportSummary{}, err
	}
	defer unlock()
	states, err := s.ReviewStates(ctx)
	if err != nil {
		return ExportSummary{}, err
	}
	samples, err := s.Samples(ctx)
	if err != nil {
		return ExportSummary{}, err
	}
	name := "allscreen-reports-" + opt.Now.UTC().Format("20060102T150405Z")
	tmp, err := os.MkdirTemp(target, "."+name+".partial-")
	if err != nil {
		return ExportSummary{}, fmt.Errorf("export: %w", err)
	}
	done := false
	defer func() {
		if !done {
			os.RemoveAll(tmp)
		}
	}()
	sums := map[string]string{}
	write := func(file string, data []byte) error {
		if err := durable.WriteNew(filepath.Join(tmp, file), data, 0o644); err != nil {
			return fmt.Errorf("export: %w", err)
		}
		h := sha256.Sum256(data)
		sums[file] = hex.EncodeToString(h[:])
		return nil
	}
	out := ExportSummary{}
	for _, smp := range samples {
		if st := states[smp.ID]; !st.Signed {
			continue
		}
		d, err := s.SampleDetail(ctx, smp.Code)
		if err != nil {
			return ExportSummary{}, err
		}
		base := fmt.Sprintf("%s-v%d", d.Code, d.Current().Version)
		var pdf bytes.Buffer
		if err := WritePDF(&pdf, d, s.ReadImage, opt); err != nil {
			return ExportSummary{}, fmt.Errorf("report %s: %w", d.Code, err)
		}
		bundle, err := FHIRBundle(d, opt)
		if err != nil {
			return ExportSummary{}, fmt.Errorf("FHIR %s: %w", d.Code, err)
		}
		if err := write(base+".pdf", pdf.Bytes()); err != nil {
			return ExportSummary{}, err
		}
		if err := write(base+".fhir.json", bundle); err != nil {
			return ExportSummary{}, err
		}
		out.Reports++
	}
	var list bytes.Buffer
	names := make([]string, 0, len(sums))
	for n := range sums {
		names = append(names, n)
	}
	slices.Sort(names)
	for _, n := range names {
		fmt.Fprintf(&list, "%s  %s\n", sums[n], n)
	}
	if err := durable.WriteNew(filepath.Join(tmp, "SHA256SUMS"), list.Bytes(), 0o644); err != nil {
		return ExportSummary{}, fmt.Errorf("export: %w", err)
	}
	if err := durable.SyncDir(tmp); err != nil {
		return ExportSummary{}, err
	}
	out.Dir = filepath.Join(target, name)
	if err := os.Rename(tmp, out.Dir); err != nil {
		return ExportSummary{}, fmt.Errorf("export: %w", err)
	}
	done = true
	return out, durable.SyncDir(target)
}
