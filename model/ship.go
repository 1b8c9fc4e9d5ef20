package model

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
)

// ShipOptions configures Runner.Ship.
type ShipOptions struct {
	Out         string // folder of the shipped model (model/shipped)
	Name        string // file stem: detect, subtype
	Seed        int
	Provisional bool
	// Samples: a folder of CC-BY images (samples/) from which the parity
	// fixture is prepared; "" skips the fixture.
	Samples string
}

// Ship trains the model to ship from an experiment: all of its CV data
// (less a validation share, by group, that picks the epoch and the
// operating point) plus its extra sites; writes ONNX, manifest, curves and
// the parity fixture into opt.Out.
func (r *Runner) Ship(e *Experiment, opt ShipOptions) (string, error) {
	cfg := trainConfig{Arch: e.Arch, Seed: opt.Seed, Epochs: e.Epochs, Patience: e.Patience, Batch: e.Batch, LR: e.LR,
		WeightDecay: e.WeightDecay, Threads: e.Threads, Keep: e.Keep, EMA: e.EMA, Classes: e.Labels, Positive: e.Positive, Task: e.Task,
		Augment: e.Augment, Protocol: SplitThenAugment, Name: opt.Name, RelativeTo: r.RepoDir,
		Provisional: opt.Provisional, Description: e.Description,
		Title: fmt.Sprintf("%s (shipped %s model), seed %d", e.Name, opt.Name, opt.Seed)}
	// A leave-one-laboratory-out experiment ships its recipe trained on
	// every laboratory; another trains on its CV set and extra sites.
	sources := append([]DataSource{e.CV}, e.ExtraTrain...)
	grouping := groupingWords(e.CV, SplitThenAugment)
	if len(e.Sources) > 0 {
		sources, grouping = e.Sources, "groups: subjects, field families, blocks of fields or single images, per folder"
	}
	var sets []*Prepared
	var names []string
	for _, ds := range sources {
		p, err := r.Prepare(ds, e.Input, e.Labels)
		if err != nil {
			return "", err
		}
		sets = append(sets, p)
		names = append(names, ds.Name)
	}
	cfg.Train, cfg.Val = r.splitTraining(sets, e.Labels, func(_ *Prepared, row IndexRow) bool { return !row.Fallback }, e.ValFraction, opt.Seed)
	cfg.Split = fmt.Sprintf("trained on %s; %.0f%% of each set's groups (%s) held out for validation (epoch choice, operating point, OOD threshold)",
		strings.Join(names, " + "), 100*e.ValFraction, grouping)
	if opt.Samples != "" {
		items, err := sampleItems(opt.Samples)
		if err != nil {
			return "", err
		}
		dir := filepath.Join(r.Work, "prep", fmt.Sprintf("samples-%s", opt.Name))
		os.RemoveAll(dir)
		if _, err := PrepareSet(items, dir, PrepareOptions{Spec: e.Input}, nil); err != nil {
			return "", err
		}
		cfg.Parity = &parityConfig{Dir: dir, Out: filepath.Join(opt.Out, "parity", opt.Name+".json")}
	}
	// Train in the work folder, then move the results into place, so a
	// failed run never leaves a half-written shipped model.
	runDir := filepath.Join(r.Work, "ship", opt.Name)
	os.RemoveAll(runDir)
	if _, err := r.train(cfg, runDir); err != nil {
		return "", err
	}
	if err := os.MkdirAll(filepath.Join(opt.Out, "parity"), 0o755); err != nil {
		return "", err
	}
	moves := []string{opt.Name + ".onnx", opt.Name + "-curves.png", opt.Name + ".log"}
	if cfg.Parity != nil {
		moves = append(moves, filepath.Join("parity", opt.Name), filepath.Join("parity", opt.Name+".json"))
	}
	moves = append(moves, opt.Name+".json") // the manifest last: it names a file already in place
	for _, f := range moves {
		dst := filepath.Join(opt.Out, f)
		os.RemoveAll(dst)
		if err := os.Rename(filepath.Join(runDir, f), dst); err != nil {
			return "", fmt.Errorf("install %s: %w", f, err)
		}
	}
	return filepath.Join(opt.Out, opt.Name+".json"), nil
}

// sampleItems lists the images of a folder (unlabelled: parity needs none).
func sampleItems(dir string) ([]Labelled, error) { return readAllLabelled(dir, "sample") }
