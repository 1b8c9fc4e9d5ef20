package model

import (
	"encoding/csv"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"allscreen/vision"
)

// CVResult is what `allscreen eval --experiment` prints as JSON. The
// top-level report is the first seed's, pooled over its folds (each input
// counted once, judged by the fold model that never trained on it); Seeds
// holds every seed and AcrossSeeds the spread of the headline figures.
type CVResult struct {
	Report
	Name                string            `json:"name"`
	Title               string            `json:"title"`
	MeasuredOn          string            `json:"measured_on"`
	Protocol            string            `json:"protocol"`
	Arch                string            `json:"arch"`
	Input               InputSpec         `json:"input"`
	SegmentationVersion string            `json:"segmentation_version"`
	Seed                int               `json:"seed"`
	Seeds               []SeedResult      `json:"seeds"`
	AcrossSeeds         map[string]Spread `json:"across_seeds"`
	Created             string            `json:"created"`
	Seconds             float64           `json:"seconds"`
	// CodeVersion is `git describe --always --dirty` of the tree the
	// binary ran in: the cell finding and segmentation that made the
	// inputs are part of what was measured.
	CodeVersion string `json:"code_version"`
}

// SeedResult is one training seed's cross-validation.
type SeedResult struct {
	Seed   int      `json:"seed"`
	Pooled Report   `json:"pooled"`
	Folds  []Report `json:"folds"`
	// Confident: the same inputs, leaving out those the model flagged
	// uncertain (low confidence or out of distribution); UncertainShare is
	// the share left out.
	Confident      Report  `json:"confident"`
	UncertainShare float64 `json:"uncertain_share"`
	// PerField: for a CV source of whole fields, each field judged by the
	// mean probabilities of its cells.
	PerField *Report `json:"per_field,omitempty"`
	// Field: whole fields judged by the appliance's rule from their cells.
	Field         *Report `json:"field,omitempty"`
	FieldCells    int     `json:"field_cells,omitempty"`
	FieldsNoCells int     `json:"fields_without_cells,omitempty"`
	// FieldsInconclusive: fields the rule sent for review rather than
	// referring (counted as flagged in Field).
	FieldsInconclusive int                        `json:"fields_inconclusive,omitempty"`
	CrossSite          map[string]CrossSiteResult `json:"cross_site,omitempty"`
	Runs               []RunInfo                  `json:"runs"`
}

// CrossSiteResult is a fold model on a site it never trained on.
type CrossSiteResult struct {
	Folds          []Report `json:"folds"`
	Mean           Spread   `json:"accuracy_over_folds"`
	SpecMin        float64  `json:"specificity_min_over_folds,omitempty"`
	UncertainShare float64  `json:"uncertain_share"`
	// Pooled over folds (each input counted once per fold model).
	Pooled Report `json:"pooled"`
}

// RunInfo records one fold's training.
type RunInfo struct {
	Fold      int             `json:"fold"`
	Manifest  string          `json:"manifest"`
	Train     int             `json:"train_inputs"`
	Test      int             `json:"test_inputs"`
	Epochs    int             `json:"epochs_run"`
	Kept      int             `json:"epoch_kept"`
	Seconds   float64         `json:"seconds"`
	ValAcc    *float64        `json:"validation_accuracy,omitempty"`
	Operating json.RawMessage `json:"operating_point,omitempty"`
}

// RunCV cross-validates an experiment. Per-input predictions are written
// to predictionsPath (CSV) when it is not empty.
func (r *Runner) RunCV(e *Experiment, predictionsPath string) (*CVResult, error) {
	start := time.Now()
	cv, err := r.Prepare(e.CV, e.Input, e.Labels)
	if err != nil {
		return nil, err
	}
	var fieldEval *Prepared
	if e.FieldEval != nil {
		if fieldEval, err = r.Prepare(*e.FieldEval, e.Input, e.Labels); err != nil {
			return nil, err
		}
	}
	var extra, cross []*Prepared
	for _, ds := range e.ExtraTrain {
		p, err := r.Prepare(ds, e.Input, e.Labels)
		if err != nil {
			return nil, err
		}
		extra = append(extra, p)
	}
	for _, ds := range e.CrossSite {
		p, err := r.Prepare(ds, e.Input, e.Labels)
		if err != nil {
			return nil, err
		}
		cross = append(cross, p)
	}
	res := &CVResult{Name: e.Name, Title: e.Title, Protocol: e.Protocol, Arch: e.Arch, Input: e.Input,
		SegmentationVersion: vision.CellSegmentationVersion, AcrossSeeds: map[string]Spread{}}
	res.MeasuredOn = fmt.Sprintf("%s (%s), %d-fold cross-validation over %s, %s, seeds %v", e.CV.Name, e.CV.Images, e.Folds,
		groupingWords(e.CV, e.Protocol), e.Protocol, e.Seeds)
	// The seeds are independent: up to r.Jobs run at once, and their
	// results are gathered in the experiment's seed order.
	srs := make([]*SeedResult, len(e.Seeds))
	seedPreds := make([][]Predicted, len(e.Seeds))
	errs := make([]error, len(e.Seeds))
	rs := *r // the seeds' runner: whole log lines, whichever seed writes them
	if r.Log != nil {
		rs.Log = &lockedWriter{w: r.Log}
	}
	sem := make(chan struct{}, max(1, r.Jobs))
	var wg sync.WaitGroup
	for si, seed := range e.Seeds {
		wg.Add(1)
		sem <- struct{}{}
		go func() {
			defer func() { <-sem; wg.Done() }()
			srs[si], seedPreds[si], errs[si] = rs.runSeed(e, seed, cv, fieldEval, extra, cross)
		}()
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	var all []Predicted
	for si, sr := range srs {
		all = append(all, seedPreds[si]...)
		res.Seeds = append(res.Seeds, *sr)
		if si == 0 {
			res.Report, res.Seed = sr.Pooled, sr.Seed
		}
	}
	add := func(key string, get func(SeedResult) (float64, bool)) {
		var v []float64
		for _, s := range res.Seeds {
			if x, ok := get(s); ok {
				v = append(v, x)
			}
		}
		if len(v) > 0 {
			res.AcrossSeeds[key] = SpreadOf(v)
		}
	}
	add("accuracy", func(s SeedResult) (float64, bool) { return s.Pooled.Accuracy, true })
	add("macro_f1", func(s SeedResult) (float64, bool) { return s.Pooled.MacroAvg.F1, true })
	add("sensitivity", func(s SeedResult) (float64, bool) { return deref(s.Pooled.Sensitivity) })
	add("specificity", func(s SeedResult) (float64, bool) { return deref(s.Pooled.Specificity) })
	add("uncertain_share", func(s SeedResult) (float64, bool) { return s.UncertainShare, true })
	add("confident_accuracy", func(s SeedResult) (float64, bool) { return s.Confident.Accuracy, true })
	add("field_accuracy", func(s SeedResult) (float64, bool) {
		if s.Field == nil {
			return 0, false
		}
		return s.Field.Accuracy, true
	})
	add("per_field_accuracy", func(s SeedResult) (float64, bool) {
		if s.PerField == nil {
			return 0, false
		}
		return s.PerField.Accuracy, true
	})
	for _, c := range e.CrossSite {
		name := c.Name
		add("cross_site_"+name+"_accuracy", func(s SeedResult) (float64, bool) {
			cs, ok := s.CrossSite[name]
			return cs.Pooled.Accuracy, ok
		})
		add("cross_site_"+name+"_specificity_min_fold", func(s SeedResult) (float64, bool) {
			cs, ok := s.CrossSite[name]
			return cs.SpecMin, ok && cs.Pooled.Specificity != nil
		})
	}
	res.Created = time.Now().UTC().Format(time.RFC3339)
	if out, err := exec.Command("git", "-C", r.RepoDir, "describe", "--always", "--dirty", "--abbrev=12").Output(); err == nil {
		res.CodeVersion = strings.TrimSpace(string(out))
	}
	res.Seconds = time.Since(start).Seconds()
	if predictionsPath != "" {
		if err := writePredictions(predictionsPath, all, e.Labels); err != nil {
			return nil, err
		}
	}
	return res, nil
}

// lockedWriter lets seeds run at once log whole lines without mixing them.
type lockedWriter struct {
	mu sync.Mutex
	w  io.Writer
}

func (l *lockedWriter) Write(b []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.w.Write(b)
}

func deref(p *float64) (float64, bool) {
	if p == nil {
		return 0, false
	}
	return *p, true
}

func groupingWords(ds DataSource, protocol string) string {
	if protocol == AugmentThenSplit {
		return "augmented copies (the paper's protocol: copies of one image on both sides)"
	}
	switch {
	case ds.Groups != "":
		return fmt.Sprintf("groups (%s, column %s)", ds.Groups, ds.GroupColumn)
	case ds.GroupBlocks > 0:
		return fmt.Sprintf("blocks of %d consecutive file numbers per label", ds.GroupBlocks)
	case ds.Fields:
		return "fields (a field's cells together)"
	}
	return "the labels file's groups"
}

func (r *Runner) runSeed(e *Experiment, seed int, cv, fieldEval *Prepared, extra, cross []*Prepared) (*SeedResult, []Predicted, error) {
	sr := &SeedResult{Seed: seed, CrossSite: map[string]CrossSiteResult{}}
	var preds, fieldPreds []Predicted
	crossPreds := map[string][][]Predicted{}
	rows := slices.Clone(cv.Rows)
	if fieldEval != nil {
		rows = append(rows, fieldEval.Rows...)
	}
	folds := AssignFolds(rows, e.Folds, uint64(seed))
	var pos int = -1
	manifests := map[int]*Manifest{}
	for f := 0; f < e.Folds; f++ {
		runDir := filepath.Join(r.Work, "runs", e.Name, fmt.Sprintf("s%d-f%d", seed, f))
		var test, train []string
		seen := map[string]bool{}
		for _, row := range cv.Rows {
			if seen[row.Group] || row.Class < 0 {
				continue
			}
			seen[row.Group] = true
			if folds[row.Group] == f {
				test = append(test, row.Group)
			} else {
				train = append(train, row.Group)
			}
		}
		cfg := trainConfig{Arch: e.Arch, Seed: seed, Epochs: e.Epochs, Patience: e.Patience, Batch: e.Batch, LR: e.LR,
			WeightDecay: e.WeightDecay, Threads: e.Threads, Keep: e.Keep, EMA: e.EMA, Classes: e.Labels, Positive: e.Positive, Task: e.Task,
			Augment: e.Augment, Protocol: e.Protocol, Fold: f, Folds: e.Folds, Name: "model", RelativeTo: r.RepoDir,
			Title: fmt.Sprintf("%s: seed %d, fold %d of %d", e.Name, seed, f+1, e.Folds)}
		if e.Protocol == AugmentThenSplit {
			cfg.Train = []trainPart{r.part(cv, e.Labels, nil)}
		} else {
			// the fold's test groups never train; everything else does,
			// less a validation share of each set's groups
			// inputs without a trusted cell outline are not examples of a
			// cell (the device marks them uncertain); they are still tested
			sets := append([]*Prepared{cv}, extra...)
			usable := func(p *Prepared, row IndexRow) bool {
				return !row.Fallback && !(foldBound(p, cv) && isTest(folds, row.Group, f))
			}
			cfg.Train, cfg.Val = r.splitTraining(sets, e.Labels, usable, e.ValFraction, seed)
			if err := checkDisjoint(sets, cfg.Train, cfg.Val, folds, f); err != nil {
				return nil, nil, err
			}
		}
		if e.Protocol == AugmentThenSplit {
			r.logf("%s seed %d fold %d/%d: augmented copies of all %d groups, split at random", e.Name, seed, f+1, e.Folds, len(test)+len(train))
		} else {
			r.logf("%s seed %d fold %d/%d: %d test groups, %d training groups", e.Name, seed, f+1, e.Folds, len(test), len(train))
		}
		manifestPath, err := r.train(cfg, runDir)
		if err != nil {
			return nil, nil, err
		}
		info, err := runInfo(manifestPath, f)
		if err != nil {
			return nil, nil, err
		}
		var foldPreds []Predicted
		if e.Protocol == AugmentThenSplit {
			m, err := readManifestFile(manifestPath)
			if err != nil {
				return nil, nil, err
			}
			pos = m.PositiveIndex()
			foldPreds, err = readPythonPredictions(filepath.Join(runDir, "model-predictions.csv"), e.Labels, seed, f, pos, threshold(m))
			if err != nil {
				return nil, nil, err
			}
			info.Test = len(foldPreds)
			sr.Runs = append(sr.Runs, info)
			preds = append(preds, foldPreds...)
			sr.Folds = append(sr.Folds, scorePreds(e.Labels, foldPreds, pos, threshold(m)))
			continue
		}
		n, err := Load(manifestPath)
		if err != nil {
			return nil, nil, err
		}
		pos = n.pos
		manifests[f] = n.m
		testSet := map[string]bool{}
		for _, g := range test {
			testSet[g] = true
		}
		var testRows []IndexRow
		for _, row := range cv.Rows {
			if testSet[row.Group] && row.Class >= 0 {
				testRows = append(testRows, row)
			}
		}
		foldPreds, err = predictRows(n, cv, testRows, e.CV.Name, seed, f)
		if err == nil && fieldEval != nil {
			var frows []IndexRow
			for _, row := range fieldEval.Rows {
				if folds[row.Group] == f && row.Class >= 0 {
					frows = append(frows, row)
				}
			}
			var fp []Predicted
			fp, err = predictRows(n, fieldEval, frows, e.FieldEval.Name, seed, f)
			fieldPreds = append(fieldPreds, fp...)
		}
		for _, c := range cross {
			if err != nil {
				break
			}
			var rows []IndexRow
			for _, row := range c.Rows {
				if row.Class >= 0 {
					rows = append(rows, row)
				}
			}
			var cp []Predicted
			cp, err = predictRows(n, c, rows, c.Source.Name, seed, f)
			crossPreds[c.Source.Name] = append(crossPreds[c.Source.Name], cp)
		}
		if err == nil {
			th := threshold(n.m)
			sr.Folds = append(sr.Folds, scorePreds(e.Labels, foldPreds, pos, th))
			for i := range foldPreds {
				foldPreds[i].Probs = slices.Clone(foldPreds[i].Probs)
			}
		}
		n.Close()
		if err != nil {
			return nil, nil, err
		}
		info.Test = len(foldPreds)
		sr.Runs = append(sr.Runs, info)
		preds = append(preds, foldPreds...)
	}
	// Every fold's threshold is the same (0.5 for detection); pooled scoring
	// uses each input's own fold model's call, already in its probabilities.
	th := 0.5
	sr.Pooled = scorePreds(e.Labels, preds, pos, th)
	var conf []Predicted
	for _, p := range preds {
		if !p.Uncertain {
			conf = append(conf, p)
		}
	}
	sr.Confident = scorePreds(e.Labels, conf, pos, th)
	sr.UncertainShare = 1 - ratio(len(conf), len(preds))
	if e.CV.Fields && e.Protocol != AugmentThenSplit {
		rep := scoreByField(e.Labels, preds, pos, th)
		sr.PerField = &rep
	}
	if fieldEval != nil {
		rep, cells, empty, inc := r.scoreFields(e, fieldEval, fieldPreds, folds, manifests, pos)
		sr.Field, sr.FieldCells, sr.FieldsNoCells, sr.FieldsInconclusive = &rep, cells, empty, inc
		preds = append(preds, fieldPreds...)
	}
	for name, perFold := range crossPreds {
		var cs CrossSiteResult
		var accs []float64
		var pooled []Predicted
		unc := 0
		cs.SpecMin = 1
		for _, fp := range perFold {
			rep := scorePreds(e.Labels, fp, pos, th)
			cs.Folds = append(cs.Folds, rep)
			accs = append(accs, rep.Accuracy)
			if rep.Specificity != nil && specSupport(rep) > 0 {
				cs.SpecMin = min(cs.SpecMin, *rep.Specificity)
			}
			pooled = append(pooled, fp...)
			for _, p := range fp {
				if p.Uncertain {
					unc++
				}
			}
			preds = append(preds, fp...)
		}
		cs.Mean = SpreadOf(accs)
		cs.Pooled = scorePreds(e.Labels, pooled, pos, th)
		cs.UncertainShare = ratio(unc, len(pooled))
		sr.CrossSite[name] = cs
	}
	return sr, preds, nil
}

// specSupport is the number of negative inputs behind a specificity.
func specSupport(r Report) int {
	for _, l := range r.Labels {
		if l != r.Positive {
			return r.PerClass[l].Support
		}
	}
	return 0
}

func threshold(m *Manifest) float64 {
	if m.Operating.BlastThreshold != nil {
		return *m.Operating.BlastThreshold
	}
	return 0.5
}

// scorePreds scores predictions by the call each got from its own fold
// model (th is unused; kept for symmetry with scoreByField).
func scorePreds(labels []string, preds []Predicted, pos int, th float64) Report {
	outs := make([]Outcome, 0, len(preds))
	for _, p := range preds {
		outs = append(outs, Outcome{True: p.True, Pred: p.Pred, Group: p.Group})
	}
	positive := ""
	if pos >= 0 {
		positive = labels[pos]
	}
	return Score(labels, outs, positive)
}

// scoreByField judges each source field by the mean probabilities of its
// cells.
func scoreByField(labels []string, preds []Predicted, pos int, th float64) Report {
	type acc struct {
		sum   []float64
		n     int
		truth int
		group string
	}
	by := map[string]*acc{}
	var keys []string
	for _, p := range preds {
		a := by[p.Source]
		if a == nil {
			a = &acc{sum: make([]float64, len(p.Probs)), truth: p.True, group: p.Group}
			by[p.Source] = a
			keys = append(keys, p.Source)
		}
		for i, v := range p.Probs {
			a.sum[i] += float64(v)
		}
		a.n++
	}
	var outs []Outcome
	for _, k := range keys {
		a := by[k]
		mean := make([]float32, len(a.sum))
		for i := range mean {
			mean[i] = float32(a.sum[i] / float64(a.n))
		}
		outs = append(outs, Outcome{True: a.truth, Pred: predictedClass(mean, pos, th), Group: a.group})
	}
	positive := ""
	if pos >= 0 {
		positive = labels[pos]
	}
	return Score(labels, outs, positive)
}

// scoreFields judges whole fields from their cells with the appliance's
// rule (Runner.FieldPositive). A field where no cell was found counts as
// called negative (the appliance would ask for another field; here it is a
// miss if the field held blasts).
func (r *Runner) scoreFields(e *Experiment, fe *Prepared, preds []Predicted, folds map[string]int, manifests map[int]*Manifest, pos int) (Report, int, int, int) {
	byField := map[string][]Prediction{}
	for _, p := range preds {
		byField[p.Source] = append(byField[p.Source], p.prediction(pos))
	}
	rule := r.FieldPositive
	if rule == nil {
		rule = func(ps []Prediction, m *Manifest) (bool, bool) {
			for _, p := range ps {
				if !p.Uncertain && float64(p.Blast) >= *m.Operating.BlastThreshold {
					return true, false
				}
			}
			return false, false
		}
	}
	// every field of the evaluation set, including those where no cell was found
	truth := map[string]int{}
	group := map[string]string{}
	for _, row := range fe.Rows {
		truth[row.Source] = row.Class
		group[row.Source] = row.Group
	}
	items, err := ReadLabelled(filepath.Join(r.DataDir, e.FieldEval.Images), labelsPath(r.DataDir, e.FieldEval.Labels), colOr(e.FieldEval.LabelColumn))
	if err == nil {
		for _, it := range items {
			if _, ok := truth[it.File]; !ok {
				truth[it.File] = slices.Index(e.Labels, mapLabel(e.FieldEval.Map, it.Label))
				group[it.File] = it.File
			}
		}
	}
	var outs []Outcome
	cells, empty, inconclusive := 0, 0, 0
	keys := make([]string, 0, len(truth))
	for k := range truth {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	for _, f := range keys {
		if truth[f] < 0 {
			continue
		}
		ps := byField[f]
		if len(ps) == 0 {
			empty++
		}
		cells += len(ps)
		called := 1 - pos
		m := manifests[folds[group[f]]]
		if m == nil {
			m = manifests[0]
		}
		flagged, inc := rule(ps, m)
		if flagged {
			called = pos
		}
		if inc {
			inconclusive++
		}
		outs = append(outs, Outcome{True: truth[f], Pred: called, Group: group[f]})
	}
	return Score(e.Labels, outs, e.Positive), cells, empty, inconclusive
}

func labelsPath(dataDir, rel string) string {
	if rel == "" {
		return ""
	}
	return filepath.Join(dataDir, rel)
}

func colOr(c string) string {
	if c == "" {
		return "label"
	}
	return c
}

func readManifestFile(path string) (*Manifest, error) {
	raw, err := readLimited(path, MaxManifestBytes)
	if err != nil {
		return nil, err
	}
	return ParseManifest(raw)
}

func runInfo(manifestPath string, fold int) (RunInfo, error) {
	raw, err := os.ReadFile(manifestPath)
	if err != nil {
		return RunInfo{}, err
	}
	var m struct {
		Training struct {
			Data []struct {
				Inputs int `json:"inputs"`
			} `json:"data"`
			EpochsRun int     `json:"epochs_run"`
			EpochKept int     `json:"epoch_kept"`
			Seconds   float64 `json:"seconds"`
		} `json:"training"`
		ValAcc    *float64        `json:"validation_accuracy"`
		Operating json.RawMessage `json:"operating_point"`
	}
	if err := json.Unmarshal(raw, &m); err != nil {
		return RunInfo{}, err
	}
	n := 0
	for _, d := range m.Training.Data {
		n += d.Inputs
	}
	// drop the OOD reference vectors: long, and no reader needs them here
	var op map[string]any
	if json.Unmarshal(m.Operating, &op) == nil {
		delete(op, "ood")
		m.Operating, _ = json.Marshal(op)
	}
	return RunInfo{Fold: fold, Manifest: manifestPath, Train: n, Epochs: m.Training.EpochsRun, Kept: m.Training.EpochKept,
		Seconds: m.Training.Seconds, ValAcc: m.ValAcc, Operating: m.Operating}, nil
}

// readPythonPredictions reads the trainer's predictions on its own test
// part (the paper protocol, where the split is of augmented copies).
func readPythonPredictions(path string, labels []string, seed, fold, pos int, th float64) ([]Predicted, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	recs, err := csv.NewReader(f).ReadAll()
	if err != nil || len(recs) < 2 {
		return nil, fmt.Errorf("%s: %v", path, err)
	}
	head := recs[0]
	col := func(n string) int { return slices.Index(head, n) }
	var out []Predicted
	for _, rec := range recs[1:] {
		p := Predicted{Set: rec[col("set")], Input: rec[col("input")], Group: rec[col("group")], Seed: seed, Fold: fold,
			True: slices.Index(labels, rec[col("class")])}
		p.Input += "#copy" + rec[col("copy")]
		for _, l := range labels {
			v, err := strconv.ParseFloat(rec[col("p_"+l)], 32)
			if err != nil {
				return nil, fmt.Errorf("%s: %w", path, err)
			}
			p.Probs = append(p.Probs, float32(v))
		}
		p.Pred = predictedClass(p.Probs, pos, th)
		out = append(out, p)
	}
	return out, nil
}

func writePredictions(path string, preds []Predicted, labels []string) error {
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return err
	}
	var b strings.Builder
	w := csv.NewWriter(&b)
	head := []string{"set", "input", "source", "group", "seed", "fold", "true"}
	for _, l := range labels {
		head = append(head, "p_"+l)
	}
	head = append(head, "uncertain", "ood", "ood_distance")
	w.Write(head)
	for _, p := range preds {
		t := ""
		if p.True >= 0 {
			t = labels[p.True]
		}
		rec := []string{p.Set, p.Input, p.Source, p.Group, strconv.Itoa(p.Seed), strconv.Itoa(p.Fold), t}
		for _, v := range p.Probs {
			rec = append(rec, strconv.FormatFloat(float64(v), 'f', 5, 32))
		}
		rec = append(rec, strconv.Itoa(b2i(p.Uncertain)), strconv.Itoa(b2i(p.OOD)), strconv.FormatFloat(float64(p.Distance), 'f', 3, 32))
		w.Write(rec)
	}
	w.Flush()
	return WriteFileAtomic(path, []byte(b.String()))
}

// foldBound: p's groups are the CV set's, so a fold's test groups must not
// train from it.
func foldBound(p, cv *Prepared) bool { return p == cv || p.Source.CVGroups }

// isTest: group g is one of fold f's test groups.
func isTest(folds map[string]int, g string, f int) bool {
	k, ok := folds[g]
	return ok && k == f
}

// checkDisjoint refuses a fold whose training or validation inputs include
// one of its test groups, or whose validation shares a group with training,
// in the CV set (sets[0]) and every set whose groups are the CV set's: the
// guard against the leak that makes published accuracies meaningless.
func checkDisjoint(sets []*Prepared, train, val []trainPart, folds map[string]int, f int) error {
	groupOf := map[string]map[string]string{} // dir -> input -> group
	for _, p := range sets {
		if !foldBound(p, sets[0]) {
			continue
		}
		m := map[string]string{}
		for _, row := range p.Rows {
			m[row.Input] = row.Group
		}
		groupOf[p.Dir] = m
	}
	trainGroups := map[string]bool{}
	for _, p := range train {
		m, ok := groupOf[p.Dir]
		if !ok {
			continue
		}
		for _, in := range p.Inputs {
			g := m[in]
			if isTest(folds, g, f) {
				return fmt.Errorf("fold %d: test group %q would train (%s input %s)", f, g, p.Name, in)
			}
			trainGroups[g] = true
		}
	}
	for _, p := range val {
		m, ok := groupOf[p.Dir]
		if !ok {
			continue
		}
		for _, in := range p.Inputs {
			if g := m[in]; isTest(folds, g, f) || trainGroups[g] {
				return fmt.Errorf("fold %d: validation group %q is also in training or test (%s)", f, g, p.Name)
			}
		}
	}
	return nil
}
