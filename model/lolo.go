package model

import (
	"fmt"
	"path/filepath"
	"slices"
	"strings"
	"sync"
)

// Leave-one-laboratory-out (LOLO): every model trains on all laboratories
// but one and is judged on that one's cells, the way a clinic's microscope
// meets the appliance: a laboratory it never saw.

// Labs lists the laboratories of an experiment's Sources, in the order they
// first appear.
func (e *Experiment) Labs() []string {
	var labs []string
	for _, ds := range e.Sources {
		if !slices.Contains(labs, ds.Lab) {
			labs = append(labs, ds.Lab)
		}
	}
	return labs
}

// LabCell is one held-out cell judged by a model that never trained on its
// laboratory.
type LabCell struct {
	Lab    string `json:"lab"`
	Source string `json:"source"` // the data source's name (cnmc, pbc-types...)
	Image  string `json:"image"`  // the image it came from, relative to the source folder
	Input  string `json:"input"`  // the prepared input, in Prep
	Prep   string `json:"prep"`   // the prepared folder`
	// Type is the folder's own label before mapping (neutrophil, benign,
	// early-pre-b, normal...): specificity is reported per type.
	Type  string `json:"type"`
	Group string `json:"group"`
	// Blast is the truth: the label maps to the experiment's positive label.
	Blast     bool    `json:"blast"`
	PBlast    float32 `json:"p_blast"`
	Uncertain bool    `json:"uncertain"`
	OOD       bool    `json:"ood"`
	Fallback  bool    `json:"fallback"`
	// Distance is the out-of-distribution distance (0 without a check):
	// site calibration sets its own threshold on it.
	Distance float32 `json:"ood_distance"`
}

// LabFold is one model of a LOLO experiment: trained without Lab, with Seed.
type LabFold struct {
	Lab      string    `json:"lab"`
	Seed     int       `json:"seed"`
	Manifest string    `json:"manifest"`
	Cells    []LabCell `json:"-"`
	// Op is the model's operating point, chosen on validation cells of the
	// laboratories it trained on (never on Lab's).
	Op OperatingPoint `json:"operating_point"`
}

// LeaveLabOut trains (or reuses from Work) the model of experiment e that
// never sees laboratory lab, with seed, and judges every cell of lab with
// it. Training uses every other source, less a validation share of each
// source's groups (epoch choice and operating point); the trainer's config
// is cached, so an interrupted run resumes with the folds not yet trained.
func (r *Runner) LeaveLabOut(e *Experiment, lab string, seed int) (*LabFold, error) {
	if e.Task != TaskDetection {
		return nil, fmt.Errorf("lolo: experiment %s is not a detection experiment", e.Name)
	}
	if !slices.Contains(e.Labs(), lab) {
		return nil, fmt.Errorf("lolo: experiment %s has no laboratory %q (it has %s)", e.Name, lab, strings.Join(e.Labs(), ", "))
	}
	var train, held []*Prepared
	var names []string
	for _, ds := range e.Sources {
		p, err := r.Prepare(ds, e.Input, e.Labels)
		if err != nil {
			return nil, fmt.Errorf("lolo: prepare %s: %w", ds.Name, err)
		}
		if ds.Lab == lab {
			held = append(held, p)
		} else {
			train = append(train, p)
			names = append(names, ds.Name)
		}
	}
	if len(train) == 0 {
		return nil, fmt.Errorf("lolo: nothing left to train on without %s", lab)
	}
	name := fmt.Sprintf("%s-without-%s-s%d", e.Name, lab, seed)
	cfg := trainConfig{Arch: e.Arch, Seed: seed, Epochs: e.Epochs, Patience: e.Patience, Batch: e.Batch, LR: e.LR,
		WeightDecay: e.WeightDecay, Threads: e.Threads, Keep: e.Keep, EMA: e.EMA, Classes: e.Labels, Positive: e.Positive,
		Task: e.Task, Augment: e.Augment, Protocol: SplitThenAugment, Name: name, RelativeTo: r.RepoDir,
		Provisional: true, Description: e.Description,
		Title: fmt.Sprintf("%s, laboratory %s left out, seed %d", e.Name, lab, seed)}
	cfg.Train, cfg.Val = r.splitTraining(train, e.Labels, func(_ *Prepared, row IndexRow) bool { return !row.Fallback }, e.ValFraction, seed)
	cfg.Split = fmt.Sprintf("trained on %s (laboratory %s never seen); %.0f%% of each set's groups held out for validation (epoch choice, operating point, OOD threshold)",
		strings.Join(names, " + "), lab, 100*e.ValFraction)
	dir := filepath.Join(r.Work, "lolo", e.Name, lab, fmt.Sprintf("s%d", seed))
	manifest, err := r.train(cfg, dir)
	if err != nil {
		return nil, err
	}
	n, err := Load(manifest)
	if err != nil {
		return nil, fmt.Errorf("lolo: the model trained without %s does not load: %w", lab, err)
	}
	defer n.Close()
	fold := &LabFold{Lab: lab, Seed: seed, Manifest: manifest, Op: n.m.Operating}
	pos := slices.Index(e.Labels, e.Positive)
	for _, p := range held {
		var rows []IndexRow
		for _, row := range p.Rows {
			if row.Class >= 0 {
				rows = append(rows, row)
			}
		}
		preds, err := predictRows(n, p, rows, p.Source.Name, seed, 0)
		if err != nil {
			return nil, fmt.Errorf("lolo: judge %s: %w", p.Source.Name, err)
		}
		for i, pr := range preds {
			fold.Cells = append(fold.Cells, LabCell{Lab: lab, Source: p.Source.Name, Image: rows[i].Source, Input: rows[i].Input, Prep: p.Dir,
				Type: rows[i].Label, Group: rows[i].Group, Blast: rows[i].Class == pos, PBlast: pr.Probs[pos],
				Uncertain: pr.Uncertain, OOD: pr.OOD, Fallback: rows[i].Fallback, Distance: pr.Distance})
		}
	}
	return fold, nil
}

// LeaveLabsOut runs LeaveLabOut for every laboratory in labs and every
// seed, up to r.Jobs at once, and returns the folds seed by seed in labs'
// order. Every source is prepared once first: folds trained at once would
// otherwise prepare the same folder side by side.
func (r *Runner) LeaveLabsOut(e *Experiment, labs []string, seeds []int) ([]*LabFold, error) {
	for _, ds := range e.Sources {
		if _, err := r.Prepare(ds, e.Input, e.Labels); err != nil {
			return nil, fmt.Errorf("lolo: prepare %s: %w", ds.Name, err)
		}
	}
	type job struct {
		lab  string
		seed int
	}
	var todo []job
	for _, s := range seeds {
		for _, l := range labs {
			todo = append(todo, job{l, s})
		}
	}
	rs := *r // the folds' runner: whole log lines, whichever fold writes them
	if r.Log != nil {
		rs.Log = &lockedWriter{w: r.Log}
	}
	folds := make([]*LabFold, len(todo))
	errs := make([]error, len(todo))
	sem := make(chan struct{}, max(1, r.Jobs))
	var wg sync.WaitGroup
	for i, j := range todo {
		wg.Add(1)
		sem <- struct{}{}
		go func() {
			defer func() { <-sem; wg.Done() }()
			rs.logf("lolo: %s without %s, seed %d", e.Name, j.lab, j.seed)
			folds[i], errs[i] = rs.LeaveLabOut(e, j.lab, j.seed)
		}()
	}
	wg.Wait()
	for _, err := range errs {
		if err != nil {
			return nil, err
		}
	}
	return folds, nil
}
