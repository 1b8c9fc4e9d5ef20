package main

import (
	"encoding/csv"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"

	"allscreen/model"
)

func init() {
	register(command{name: "lolo", summary: "leave one laboratory out: train without each laboratory, judge it, simulate its samples", run: runLOLO})
}

func runLOLO(argv []string) error {
	fs := newFlags("lolo", "")
	experiment := fs.String("experiment", "", "the leave-one-laboratory-out experiment `JSON` (model/experiments/lolo/)")
	seedsFlag := fs.String("seeds", "", "comma-separated seeds (default: the experiment's)")
	labsFlag := fs.String("labs", "", "comma-separated laboratories to leave out (default: every one)")
	jobs := fs.Int("jobs", 2, "train this many models at once (one core each at threads 1)")
	data := fs.String("data", "", "the data folder (default ../shared/data)")
	work := fs.String("work", "out/model", "cache `DIR` for prepared inputs and trained models (a rerun reuses them)")
	python := fs.String("python", "/usr/bin/python3", "the Python with torch")
	out := fs.String("out", "", "write the results `JSON` here (model/results/lolo-*.json)")
	cellsOut := fs.String("cells", "", "write every held-out cell's prediction to this `CSV`")
	samples := fs.Int("samples", 1000, "simulated samples per laboratory, seed and kind")
	prepareOnly := fs.Bool("prepare-only", false, "prepare every source's inputs, then stop")
	rest, err := parseFlags(fs, argv)
	if err != nil {
		return err
	}
	if len(rest) > 0 || *experiment == "" || *jobs < 1 || *samples < 1 {
		fs.Usage()
		return errUsage
	}
	e, err := model.ReadExperiment(*experiment)
	if err != nil {
		return err
	}
	if len(e.Sources) == 0 {
		return fmt.Errorf("lolo: %s has no \"sources\"", *experiment)
	}
	seeds := e.Seeds
	if *seedsFlag != "" {
		if seeds, err = parseInts(*seedsFlag); err != nil {
			return fmt.Errorf("lolo: --seeds: %w", err)
		}
	}
	labs := e.Labs()
	if *labsFlag != "" {
		labs = strings.Split(*labsFlag, ",")
		for _, l := range labs {
			if !slices.Contains(e.Labs(), l) {
				return fmt.Errorf("lolo: --labs: %s has no laboratory %q (it has %s)", *experiment, l, strings.Join(e.Labs(), ", "))
			}
		}
	}
	r, err := newRunner(*data, *work, *python)
	if err != nil {
		return err
	}
	r.Log, r.Jobs = os.Stderr, *jobs
	if *prepareOnly {
		for _, ds := range e.Sources {
			if _, err := r.Prepare(ds, e.Input, e.Labels); err != nil {
				return fmt.Errorf("lolo: prepare %s: %w", ds.Name, err)
			}
		}
		return nil
	}
	folds, err := r.LeaveLabsOut(e, labs, seeds)
	if err != nil {
		return err
	}
	res, err := summariseLOLO(e, folds, *samples)
	if err != nil {
		return err
	}
	if *cellsOut != "" {
		if err := writeLabCells(*cellsOut, folds); err != nil {
			return err
		}
	}
	raw, _ := json.MarshalIndent(res, "", " ")
	raw = append(raw, '\n')
	if *out != "" {
		if err := os.MkdirAll(filepath.Dir(*out), 0o755); err != nil {
			return err
		}
		if err := os.WriteFile(*out, raw, 0o644); err != nil {
			return err
		}
	}
	fmt.Print(loloText(res))
	return nil
}

func parseInts(s string) ([]int, error) {
	var out []int
	for _, f := range strings.Split(s, ",") {
		v, err := strconv.Atoi(strings.TrimSpace(f))
		if err != nil {
			return nil, err
		}
		out = append(out, v)
	}
	return out, nil
}

// writeLabCells writes every held-out cell's prediction, one row per cell
// and seed.
func writeLabCells(path string, folds []*model.LabFold) error {
	var b strings.Builder
	w := csv.NewWriter(&b)
	w.Write([]string{"lab", "seed", "source", "image", "prep", "input", "type", "group", "blast", "p_blast", "uncertain", "ood", "fallback"})
	for _, f := range folds {
		for _, c := range f.Cells {
			w.Write([]string{c.Lab, strconv.Itoa(f.Seed), c.Source, c.Image, c.Prep, c.Input, c.Type, c.Group, b01(c.Blast),
				strconv.FormatFloat(float64(c.PBlast), 'f', 5, 32), b01(c.Uncertain), b01(c.OOD), b01(c.Fallback)})
		}
	}
	w.Flush()
	if err := w.Error(); err != nil {
		return err
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return err
	}
	return os.WriteFile(path, []byte(b.String()), 0o644)
}

func b01(v bool) string {
	if v {
		return "1"
	}
	return "0"
}
