package main

import (
	"encoding/csv"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"

	"allscreen/internal/realdata"
	"allscreen/model"
	"allscreen/screening"
	"allscreen/vision"

	"gocv.io/x/gocv"
)

func init() {
	register(command{name: "eval", summary: "measure a model on labelled images, or cross-validate an experiment", run: runEval})
	register(command{name: "train", summary: "train the model to ship from an experiment (make model)", run: runTrain})
}

func runEval(argv []string) error {
	fs := newFlags("eval", "")
	experiment := fs.String("experiment", "", "cross-validate the experiment in this `JSON` file (model/experiments/)")
	modelPath := fs.String("model", "", "evaluate this model (its manifest `JSON`) on --data")
	subtype := fs.String("subtype", "", "with --model: also load this subtype model `JSON`")
	data := fs.String("data", "", "folder of labelled images (`DIR`); with --experiment, the data folder (default ../shared/data)")
	labels := fs.String("labels", "", "labels `CSV` (file, label); without it each sub-folder of --data is a label")
	labelColumn := fs.String("label-column", "label", "the labels CSV column holding the label")
	mapping := fs.String("map", "", "map the folder's labels to the model's: `from=to,...` (* = any other; to empty = leave out)")
	fields := fs.Bool("fields", false, "the images are whole fields: find the cells, judge each field with the verdict rule")
	scaleBar := fs.Bool("scale-bar", false, "blank the bottom-right corner first (bll-stages' scale bar)")
	asJSON := fs.Bool("json", false, "print one JSON object")
	out := fs.String("out", "", "also write the JSON to this `FILE`")
	predictions := fs.String("predictions", "", "write every input's prediction to this `CSV`")
	confusionPNG := fs.String("confusion-png", "", "draw the confusion matrix into this `PNG`")
	work := fs.String("work", "out/model", "cache `DIR` for prepared inputs and fold models")
	python := fs.String("python", "/usr/bin/python3", "the Python with torch, for --experiment")
	jobs := fs.Int("jobs", 1, "with --experiment: train and evaluate this many seeds at once (one core each at threads 1)")
	rest, err := parseFlags(fs, argv)
	if err != nil {
		return err
	}
	if len(rest) > 0 || (*experiment == "") == (*modelPath == "") {
		fs.Usage()
		return errUsage
	}
	jobsSet := false
	fs.Visit(func(f *flag.Flag) { jobsSet = jobsSet || f.Name == "jobs" })
	switch {
	case jobsSet && *experiment == "":
		return fmt.Errorf("eval: --jobs applies to --experiment only (--model evaluates one model)")
	case *jobs < 1:
		return fmt.Errorf("eval: --jobs %d: want at least 1", *jobs)
	}
	var result any
	var report model.Report
	var failed []string
	title := ""
	if *experiment != "" {
		e, err := model.ReadExperiment(*experiment)
		if err != nil {
			return err
		}
		r, err := newRunner(*data, *work, *python)
		if err != nil {
			return err
		}
		r.Jobs = *jobs
		res, err := r.RunCV(e, *predictions)
		if err != nil {
			return err
		}
		result, report, title = res, res.Report, res.Title
		if !*asJSON {
			printCV(res)
		}
	} else {
		if *data == "" {
			fs.Usage()
			return errUsage
		}
		res, err := evalModel(*modelPath, *subtype, *data, *labels, *labelColumn, *mapping, *fields, *scaleBar)
		if err != nil {
			return err
		}
		result, report, title, failed = res, res.Report, res.MeasuredOn, res.Failed
		if *predictions != "" {
			if err := writePredictions(*predictions, res.Predictions); err != nil {
				return err
			}
		}
		if !*asJSON {
			fmt.Printf("%s\n%s", res.MeasuredOn, res.Report.Text())
			fmt.Printf("uncertain: %d of %d (%.1f%%); skipped (label not in the model): %d\n", res.Uncertain, res.N, 100*float64(res.Uncertain)/float64(max(1, res.N)), res.Skipped)
		}
	}
	raw, err := json.MarshalIndent(result, "", " ")
	if err != nil {
		return err
	}
	if *asJSON {
		os.Stdout.Write(append(raw, '\n'))
	}
	if *out != "" {
		if err := os.MkdirAll(filepath.Dir(*out), 0o755); err != nil {
			return err
		}
		if err := os.WriteFile(*out, append(raw, '\n'), 0o644); err != nil {
			return err
		}
	}
	if *confusionPNG != "" {
		if err := model.WriteConfusionPNG(report, title, *confusionPNG); err != nil {
			return err
		}
	}
	// Images that could not be read are not in any figure above: a
	// measurement that silently left some out would look complete.
	if len(failed) > 0 {
		fmt.Fprintf(os.Stderr, "allscreen eval: %d image(s) could not be read or classified and are left out of the figures:\n", len(failed))
		for _, f := range failed {
			fmt.Fprintf(os.Stderr, "  %s\n", f)
		}
		return errSomeFailed
	}
	return nil
}

func runTrain(argv []string) error {
	fs := newFlags("train", "")
	experiment := fs.String("experiment", "", "the experiment `JSON` whose recipe the shipped model follows")
	outDir := fs.String("out", "model/shipped", "install the model into this `DIR`")
	name := fs.String("name", "", "file stem of the model (detect, subtype)")
	seed := fs.Int("seed", 1, "training seed")
	provisional := fs.Bool("provisional", false, "mark the manifest provisional")
	samples := fs.String("samples", "samples", "CC-BY images to make the parity fixture from (`DIR`; empty: none)")
	data := fs.String("data", "", "the data folder (default ../shared/data)")
	work := fs.String("work", "out/model", "cache `DIR` for prepared inputs")
	python := fs.String("python", "/usr/bin/python3", "the Python with torch")
	rest, err := parseFlags(fs, argv)
	if err != nil {
		return err
	}
	if len(rest) > 0 || *experiment == "" || *name == "" {
		fs.Usage()
		return errUsage
	}
	e, err := model.ReadExperiment(*experiment)
	if err != nil {
		return err
	}
	r, err := newRunner(*data, *work, *python)
	if err != nil {
		return err
	}
	m, err := r.Ship(e, model.ShipOptions{Out: *outDir, Name: *name, Seed: *seed, Provisional: *provisional, Samples: *samples})
	if err != nil {
		return err
	}
	n, err := model.Load(m)
	if err != nil {
		return fmt.Errorf("the model just trained does not load: %w", err)
	}
	n.Close()
	fmt.Printf("installed %s (loads and passes its self-test)\n", m)
	return nil
}

func newRunner(data, work, python string) (*model.Runner, error) {
	data, err := realdata.Or(data)
	if err != nil {
		return nil, err
	}
	repo, err := os.Getwd()
	if err != nil {
		return nil, err
	}
	if _, err := os.Stat(filepath.Join(repo, "model", "train", "train.py")); err != nil {
		return nil, errors.New("run from the repository root (model/train/train.py not found)")
	}
	return &model.Runner{DataDir: data, RepoDir: repo, Work: work, Python: python, Log: os.Stderr, FieldPositive: fieldVerdict}, nil
}

// fieldVerdict judges one field with the appliance's own verdict rule
// (screening.Decide), as if the field were a whole sample with no minimum
// cell count: flagged when the rule refers or asks for review.
func fieldVerdict(preds []model.Prediction, m *model.Manifest) (flagged, inconclusive bool) {
	cfg := screening.DefaultRuleConfig
	cfg.MinWhiteCells = 1
	rule, err := screening.RuleFor(m.Operating, cfg)
	if err != nil {
		return true, true
	}
	var t screening.Tally
	for _, p := range preds {
		t = t.Count(rule.CallCell(p))
	}
	switch screening.Decide(t, rule).Outcome {
	case screening.Refer:
		return true, false
	case screening.Inconclusive:
		return true, true
	}
	return false, false
}

func printCV(res *model.CVResult) {
	fmt.Printf("%s\nmeasured on %s\n\nseed %d, pooled over folds:\n%s", res.Title, res.MeasuredOn, res.Seed, res.Report.Text())
	keys := make([]string, 0, len(res.AcrossSeeds))
	for k := range res.AcrossSeeds {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	fmt.Printf("\nacross %d seeds (mean, sd, min-max):\n", len(res.Seeds))
	for _, k := range keys {
		s := res.AcrossSeeds[k]
		fmt.Printf("  %-44s %.4f  %.4f  %.4f-%.4f\n", k, s.Mean, s.SD, s.Min, s.Max)
	}
	for _, s := range res.Seeds {
		if s.Field != nil {
			fmt.Printf("\nseed %d, field level (%d cells; %d fields without cells, %d inconclusive):\n%s", s.Seed, s.FieldCells, s.FieldsNoCells, s.FieldsInconclusive, s.Field.Text())
			break
		}
	}
}

// ModelEval is `allscreen eval --model`'s result.
type ModelEval struct {
	model.Report
	MeasuredOn string   `json:"measured_on"`
	Model      string   `json:"model"`
	ModelSHA   string   `json:"model_sha256"`
	Uncertain  int      `json:"uncertain"`
	Skipped    int      `json:"skipped"`
	Failed     []string `json:"failed,omitempty"`
	Cells      int      `json:"cells,omitempty"`
	// Predictions are one row per judged image, for --predictions.
	Predictions [][]string `json:"-"`
}

func parseMap(s string) (map[string]string, error) {
	if s == "" {
		return nil, nil
	}
	m := map[string]string{}
	for _, kv := range strings.Split(s, ",") {
		k, v, ok := strings.Cut(kv, "=")
		if !ok || strings.TrimSpace(k) == "" {
			return nil, fmt.Errorf("--map: %q is not from=to", kv)
		}
		m[strings.TrimSpace(k)] = strings.TrimSpace(v)
	}
	return m, nil
}

func evalModel(manifest, subtype, data, labels, labelColumn, mapping string, fields, scaleBar bool) (*ModelEval, error) {
	lmap, err := parseMap(mapping)
	if err != nil {
		return nil, err
	}
	var n *model.Net
	if subtype != "" {
		n, err = model.LoadWithSubtype(manifest, subtype)
	} else {
		n, err = model.Load(manifest)
	}
	if err != nil {
		return nil, err
	}
	defer n.Close()
	m := n.Manifest()
	items, err := model.ReadLabelled(data, labels, labelColumn)
	if err != nil {
		return nil, err
	}
	pos := m.PositiveIndex()
	res := &ModelEval{Model: manifest, ModelSHA: m.ONNXSHA256}
	var outs []model.Outcome
	for i, it := range items {
		label := it.Label
		if lmap != nil {
			if v, ok := lmap[label]; ok {
				label = v
			} else {
				label = lmap["*"]
			}
		}
		truth := slices.Index(m.Labels, label)
		if truth < 0 {
			res.Skipped++
			continue
		}
		img, err := vision.LoadImage(it.Path)
		if err != nil {
			res.Failed = append(res.Failed, err.Error())
			continue
		}
		if scaleBar {
			model.BlankScaleBar(&img)
		}
		if fields {
			called, cells, err := judgeField(n, img)
			img.Close()
			if err != nil {
				res.Failed = append(res.Failed, fmt.Sprintf("%s: %v", it.Path, err))
				continue
			}
			res.Cells += cells
			outs = append(outs, model.Outcome{True: truth, Pred: called, Group: it.Group})
			res.Predictions = append(res.Predictions, []string{it.Path, it.Group, m.Labels[truth], m.Labels[called], "", "", strconv.Itoa(cells)})
		} else {
			preds, err := n.Classify([]gocv.Mat{img})
			img.Close()
			if err != nil {
				return nil, err
			}
			p := preds[0]
			if p.Probs == nil {
				res.Failed = append(res.Failed, fmt.Sprintf("%s: %s", it.Path, p.Reason))
				continue
			}
			if p.Uncertain {
				res.Uncertain++
			}
			pred := argmaxF(p.Probs)
			if pos >= 0 && len(p.Probs) == 2 {
				pred = 1 - pos
				if float64(p.Blast) >= *m.Operating.BlastThreshold {
					pred = pos
				}
			}
			outs = append(outs, model.Outcome{True: truth, Pred: pred, Group: it.Group})
			probs := make([]string, len(p.Probs))
			for j, v := range p.Probs {
				probs[j] = m.Labels[j] + "=" + strconv.FormatFloat(float64(v), 'g', 6, 32)
			}
			res.Predictions = append(res.Predictions, []string{it.Path, it.Group, m.Labels[truth], m.Labels[pred],
				strings.Join(probs, ";"), strconv.FormatBool(p.Uncertain), ""})
		}
		if (i+1)%100 == 0 {
			fmt.Fprintf(os.Stderr, "eval: %d/%d images\n", i+1, len(items))
		}
	}
	if len(outs) == 0 {
		return nil, fmt.Errorf("no image of %s has a label the model knows (%q); use --map", data, m.Labels)
	}
	res.Report = model.Score(m.Labels, outs, m.PositiveLabel)
	unit := "single-cell crops"
	if fields {
		unit = "whole fields judged by the verdict rule"
	}
	res.MeasuredOn = fmt.Sprintf("%s: %d %s (model %s)", data, len(outs), unit, manifest)
	return res, nil
}

// judgeField finds and classifies a field's cells, then applies the rule.
func judgeField(n *model.Net, img gocv.Mat) (called, cells int, err error) {
	m := n.Manifest()
	preds, err := classifyFieldCells(n, img)
	if err != nil {
		return 0, 0, err
	}
	pos := m.PositiveIndex()
	if flagged, _ := fieldVerdict(preds, m); flagged {
		return pos, len(preds), nil
	}
	return 1 - pos, len(preds), nil
}

func argmaxF(p []float32) int {
	b := 0
	for i, v := range p {
		if v > p[b] {
			b = i
		}
	}
	return b
}

// writePredictions writes eval --model's per-image predictions: the image,
// its group, the true and the predicted label, each label's probability
// (label=P; empty for whole fields) and whether the model was unsure; for
// whole fields (--fields), the cells judged.
func writePredictions(path string, rows [][]string) error {
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return err
	}
	var b strings.Builder
	w := csv.NewWriter(&b)
	w.Write([]string{"file", "group", "label", "predicted", "probs (label=P)", "uncertain", "cells"})
	if err := w.WriteAll(rows); err != nil {
		return err
	}
	return os.WriteFile(path, []byte(b.String()), 0o644)
}
