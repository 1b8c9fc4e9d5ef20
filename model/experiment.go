package model

import (
	"bytes"
	"crypto/sha256"
	"encoding/csv"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"image"
	"io"
	"math"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"sort"
	"strconv"
	"strings"

	"allscreen/vision"

	"gocv.io/x/gocv"
)

// An Experiment is one evaluation or training recipe, read from a JSON file
// (model/experiments/*.json): which data, which input, which architecture,
// which protocol, which seeds. `allscreen eval --experiment` cross-validates
// it; `allscreen train --experiment` trains the model to ship. Inputs are
// prepared by Go (PrepareSet); the Python trainer (model/train/train.py)
// only trains; every figure is measured here, on the Go inference path.
type Experiment struct {
	Name     string   `json:"name"`
	Title    string   `json:"title"`
	Task     string   `json:"task"` // TaskDetection or TaskSubtype
	Arch     string   `json:"arch"` // paper, compact
	Labels   []string `json:"labels"`
	Positive string   `json:"positive,omitempty"`
	// Input: the spec inputs are prepared with (size, masking, framing...).
	Input InputSpec `json:"input"`
	// Protocol: "split-then-augment" (honest) or "augment-then-split" (the
	// paper's: copies made before the split, so copies of a test image train).
	Protocol    string  `json:"protocol"`
	Augment     string  `json:"augment"` // one of AugmentModes; empty is "full"
	Folds       int     `json:"folds"`
	Seeds       []int   `json:"seeds"`
	Epochs      int     `json:"epochs"`
	Patience    int     `json:"patience"`
	Batch       int     `json:"batch,omitempty"`
	LR          float64 `json:"lr,omitempty"`
	WeightDecay float64 `json:"weight_decay,omitempty"`
	ValFraction float64 `json:"val_fraction"`
	Threads     int     `json:"threads,omitempty"`
	// Keep: "best" (the epoch of lowest validation loss, early stopping)
	// or "last" (the end of the cosine schedule).
	Keep string `json:"keep,omitempty"`
	// EMA > 0: the trainer validates, keeps and exports an exponential
	// moving average of the weights with this decay per step.
	EMA float64 `json:"ema,omitempty"`
	// CV is cross-validated: folds over its groups.
	CV DataSource `json:"cv"`
	// FieldEval: whole fields whose groups share names with CV's groups; a
	// fold's fields are judged by the model that never saw their crops.
	FieldEval *DataSource `json:"field_eval,omitempty"`
	// ExtraTrain joins every fold's training (other sites).
	ExtraTrain []DataSource `json:"extra_train,omitempty"`
	// CrossSite is evaluated with every fold's model and never trained on.
	CrossSite []DataSource `json:"cross_site,omitempty"`
	// Sources, for a leave-one-laboratory-out experiment (Runner.LeaveLabOut,
	// `allscreen lolo`): every labelled folder, each naming its laboratory.
	// Each model trains on every laboratory but one and is judged on that
	// one. An experiment with Sources needs no CV set.
	Sources []DataSource `json:"sources,omitempty"`
	// Description and Split go into a shipped model's manifest.
	Description string `json:"description,omitempty"`
}

// DataSource is one labelled folder and how its labels map to the model's.
type DataSource struct {
	Name   string `json:"name"`
	Images string `json:"images"`           // relative to the data folder
	Labels string `json:"labels,omitempty"` // relative to the data folder; "" = a folder per label
	// LabelAll: no labels file; every image directly in Images has this
	// label and is its own group (bccd's and olympus/fields' fields, whose
	// boxes.csv gives no cell type: every white cell in them is normal).
	LabelAll string `json:"label_all,omitempty"`
	// Lab names the laboratory the folder comes from (leave-one-laboratory-
	// out experiments: the data README's table of laboratories).
	Lab         string `json:"lab,omitempty"`
	LabelColumn string `json:"label_column,omitempty"`
	// GroupColumnInLabels names the labels CSV's group column (default
	// "group"; absent column: every image its own group).
	GroupColumnInLabels string `json:"labels_group_column,omitempty"`
	Fields              bool   `json:"fields,omitempty"`    // whole fields: classify the cells FindCells finds
	ScaleBar            bool   `json:"scale_bar,omitempty"` // blank bll-stages' scale bar first
	// Map turns the folder's labels into the model's ("*" matches any other
	// label; a label mapped to "" is left out). Absent: labels as they are.
	Map map[string]string `json:"map,omitempty"`
	// Groups: a CSV (relative to the repository) with a "file" column and
	// GroupColumn giving each image's group (e.g. its ALL-IDB1 field family).
	Groups      string `json:"groups,omitempty"`
	GroupColumn string `json:"group_column,omitempty"`
	// GroupBlocks > 0 groups images by runs of that many consecutive file
	// numbers within a label: for data without patient IDs, whose numbering
	// follows acquisition (neighbouring images share a slide).
	GroupBlocks int `json:"group_blocks,omitempty"`
	// CVGroups: the groups are the CV set's (ALL-IDB1 field families, say):
	// a fold's test groups never train from this set either, and its
	// validation share is held out by the same groups as the CV set's.
	CVGroups bool `json:"cv_groups,omitempty"`
	// Centroids (fields only): a folder, relative to the data folder, of
	// <field stem>.xyc files with one "x y" per line marking objects of
	// one kind (ALL-IDB1's other-wbc-centroids: the non-blast white cells
	// and platelets an expert marked). A found cell with a mark in the
	// central part of its box (see MarkedCell) takes CentroidLabel before
	// Map; the other cells keep their field's label.
	Centroids     string  `json:"centroids,omitempty"`
	CentroidLabel string  `json:"centroid_label,omitempty"`
	PerEpoch      int     `json:"per_epoch,omitempty"`
	Weight        float64 `json:"weight,omitempty"`
	// DropEdgeCells (fields only): a cell whose box touches the field's
	// edge is left out of whatever the source is used for (bll-stages':
	// training). Its crop reaches past the field and is
	// filled by replicating the edge, so the input shows part of a cell
	// with stripes: in bll-stages' 224-pixel fields 30-57% of the cells,
	// more of them on blast fields than on benign ones.
	DropEdgeCells bool `json:"drop_edge_cells,omitempty"`
}

// AugmentModes are the augmentations train.py knows (its AUGMENT_MODES):
// none; paper (the paper's quarter turns and crops); light and full (flips,
// rotations, scale, stain jitter, blur, mild and strong); wide (light's,
// after restyling most cells' colour and contrast as another laboratory's,
// and with sharpening).
var AugmentModes = []string{"none", "paper", "light", "full", "wide"}

// Protocols of an experiment.
const (
	SplitThenAugment = "split-then-augment"
	AugmentThenSplit = "augment-then-split"
)

// ReadExperiment reads and checks an experiment file.
func ReadExperiment(path string) (*Experiment, error) {
	raw, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	var e Experiment
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&e); err != nil {
		return nil, fmt.Errorf("experiment %s: %w", path, err)
	}
	if e.Name == "" {
		e.Name = strings.TrimSuffix(filepath.Base(path), filepath.Ext(path))
	}
	if e.Task == "" {
		e.Task = TaskDetection
	}
	if e.Protocol == "" {
		e.Protocol = SplitThenAugment
	}
	if e.Folds == 0 {
		e.Folds = 5
	}
	if len(e.Seeds) == 0 {
		e.Seeds = []int{1}
	}
	if e.ValFraction == 0 {
		e.ValFraction = 0.15
	}
	if e.Threads == 0 {
		e.Threads = 2
	}
	switch {
	case len(e.Labels) < 2:
		return nil, fmt.Errorf("experiment %s: needs at least 2 labels", path)
	case e.Task == TaskDetection && !slices.Contains(e.Labels, e.Positive):
		return nil, fmt.Errorf("experiment %s: positive %q is not a label", path, e.Positive)
	case e.Protocol != SplitThenAugment && e.Protocol != AugmentThenSplit:
		return nil, fmt.Errorf("experiment %s: protocol %q", path, e.Protocol)
	case e.Augment != "" && !slices.Contains(AugmentModes, e.Augment):
		return nil, fmt.Errorf("experiment %s: augment %q (want one of %s)", path, e.Augment, strings.Join(AugmentModes, ", "))
	case !(e.EMA >= 0 && e.EMA < 1):
		return nil, fmt.Errorf("experiment %s: ema %v is not a decay in [0, 1)", path, e.EMA)
	case e.Folds < 2:
		return nil, fmt.Errorf("experiment %s: %d folds", path, e.Folds)
	case e.CV.Images == "" && len(e.Sources) == 0:
		return nil, fmt.Errorf("experiment %s: cv.images is empty", path)
	}
	if err := e.Input.Check(); err != nil {
		return nil, fmt.Errorf("experiment %s: input: %w", path, err)
	}
	sources := append([]DataSource{e.CV}, e.ExtraTrain...)
	sources = append(sources, e.CrossSite...)
	sources = append(sources, e.Sources...)
	if e.FieldEval != nil {
		sources = append(sources, *e.FieldEval)
	}
	for _, ds := range sources {
		if ds.DropEdgeCells && !ds.Fields {
			return nil, fmt.Errorf("experiment %s: data source %s: drop_edge_cells needs \"fields\": true", path, ds.Name)
		}
		if len(e.Sources) > 0 && ds.Images != "" && ds.Lab == "" {
			return nil, fmt.Errorf("experiment %s: data source %s names no laboratory (\"lab\")", path, ds.Name)
		}
		if ds.LabelAll != "" && ds.Labels != "" {
			return nil, fmt.Errorf("experiment %s: data source %s has both labels and label_all", path, ds.Name)
		}
		if ds.Centroids != "" && (!ds.Fields || ds.CentroidLabel == "") {
			return nil, fmt.Errorf("experiment %s: data source %s: centroids need \"fields\": true and a centroid_label", path, ds.Name)
		}
	}
	return &e, nil
}

// Runner runs experiments. Prepared inputs and trained fold models are
// cached under Work, keyed by what made them, so a rerun (or a resumed run
// after a cut-off) trains only what changed.
type Runner struct {
	DataDir string // ../shared/data
	RepoDir string // the repository root (model/train/train.py, groups CSVs)
	Work    string // cache: prepared inputs and fold runs
	Python  string // /usr/bin/python3
	Log     io.Writer
	// Jobs is how many seeds RunCV trains and evaluates at once (each
	// trainer uses the experiment's own thread count); below 2, one.
	Jobs int
	// FieldPositive decides a field from its cells' predictions with the
	// appliance's verdict rule: flagged (referred, or sent for review as
	// inconclusive) or not, and whether it was inconclusive. nil flags a
	// field when any confident cell is called a blast.
	FieldPositive func(preds []Prediction, m *Manifest) (flagged, inconclusive bool)
}

func (r *Runner) logf(format string, a ...any) {
	if r.Log != nil {
		fmt.Fprintf(r.Log, format+"\n", a...)
	}
}

// Prepared is a prepared folder: its rows and where they live.
type Prepared struct {
	Source DataSource
	Dir    string
	Rows   []IndexRow
}

// IndexRow is one row of a prepared folder's index.csv, its label mapped.
type IndexRow struct {
	Input, Source, Label, Group string
	Class                       int // index into the experiment's labels, -1 when left out
	Fallback                    bool
	Box                         image.Rectangle // the cell in its source image
}

// Prepare prepares a data source with a spec, or reuses the cache.
func (r *Runner) Prepare(ds DataSource, spec InputSpec, labels []string) (*Prepared, error) {
	key := struct {
		Spec   InputSpec
		Seg    string
		Fields bool
		Bar    bool
		Images string
		Labels string
		Col    string
		GCol   string
		All    string `json:",omitempty"`
	}{spec, vision.CellSegmentationVersion, ds.Fields, ds.ScaleBar, ds.Images, ds.Labels, ds.LabelColumn, ds.GroupColumnInLabels, ds.LabelAll}
	kb, _ := json.Marshal(key)
	sum := sha256.Sum256(kb)
	name := ds.Name
	if name == "" {
		name = filepath.Base(ds.Images)
	}
	dir := filepath.Join(r.Work, "prep", fmt.Sprintf("%s-%d-%s-%s", name, spec.Size, spec.Masking, hex.EncodeToString(sum[:6])))
	if _, err := os.Stat(filepath.Join(dir, "index.csv")); err != nil {
		labelsCSV := ""
		if ds.Labels != "" {
			labelsCSV = filepath.Join(r.DataDir, ds.Labels)
		}
		col := ds.LabelColumn
		if col == "" {
			col = "label"
		}
		gcol := ds.GroupColumnInLabels
		if gcol == "" {
			gcol = "group"
		}
		var items []Labelled
		var err error
		if ds.LabelAll != "" {
			items, err = readAllLabelled(filepath.Join(r.DataDir, ds.Images), ds.LabelAll)
		} else {
			items, err = ReadLabelledGroups(filepath.Join(r.DataDir, ds.Images), labelsCSV, col, gcol)
		}
		if err != nil {
			return nil, err
		}
		r.logf("preparing %s (%d images) into %s", name, len(items), dir)
		res, err := PrepareSet(items, dir, PrepareOptions{Spec: spec, Fields: ds.Fields, BlankScaleBar: ds.ScaleBar, Find: vision.DefaultFindOptions}, nil)
		if err != nil {
			return nil, err
		}
		r.logf("prepared %s: %d inputs from %d images, %d without a cell outline, %d failed, %d cells skipped", name, res.Inputs, res.Images, res.Fallbacks, len(res.Failed), len(res.SkippedCells))
		for _, f := range res.Failed {
			r.logf("  %s", f)
		}
	}
	rows, err := readIndex(dir)
	if err != nil {
		return nil, err
	}
	groupOf, err := r.groupsOf(ds, rows)
	if err != nil {
		return nil, err
	}
	if ds.Centroids != "" {
		if err := r.labelMarked(ds, rows); err != nil {
			return nil, err
		}
	}
	for i := range rows {
		rows[i].Class = slices.Index(labels, mapLabel(ds.Map, rows[i].Label))
		if g, ok := groupOf[rows[i].Source]; ok {
			rows[i].Group = g
		}
	}
	if ds.DropEdgeCells {
		n, err := r.dropEdgeCells(ds, rows)
		if err != nil {
			return nil, err
		}
		r.logf("%s: %d of %d cells touch their field's edge and are left out", name, n, len(rows))
	}
	return &Prepared{Source: ds, Dir: dir, Rows: rows}, nil
}

// dropEdgeCells leaves out (Class -1) the rows whose cell box touches the
// edge of its field (vision's Cell.AtEdge: the box is clipped to the field
// exactly when the cell reaches its edge) and returns how many it left out.
func (r *Runner) dropEdgeCells(ds DataSource, rows []IndexRow) (int, error) {
	size := map[string]image.Point{}
	n := 0
	for i, row := range rows {
		sz, ok := size[row.Source]
		if !ok {
			w, h, err := vision.ImageSize(filepath.Join(r.DataDir, ds.Images, row.Source))
			if err != nil {
				return 0, fmt.Errorf("drop edge cells of %s: %w", ds.Name, err)
			}
			sz = image.Pt(w, h)
			size[row.Source] = sz
		}
		b := row.Box
		if b.Min.X <= 0 || b.Min.Y <= 0 || b.Max.X >= sz.X || b.Max.Y >= sz.Y {
			rows[i].Class = -1
			n++
		}
	}
	return n, nil
}

func mapLabel(m map[string]string, l string) string {
	if m == nil {
		return l
	}
	if v, ok := m[l]; ok {
		return v
	}
	if v, ok := m["*"]; ok {
		return v
	}
	return l
}

func readIndex(dir string) ([]IndexRow, error) {
	f, err := os.Open(filepath.Join(dir, "index.csv"))
	if err != nil {
		return nil, err
	}
	defer f.Close()
	recs, err := csv.NewReader(f).ReadAll()
	if err != nil {
		return nil, fmt.Errorf("%s/index.csv: %w", dir, err)
	}
	if len(recs) == 0 || !slices.Equal(recs[0], IndexHeader) {
		return nil, fmt.Errorf("%s/index.csv: unexpected header", dir)
	}
	rows := make([]IndexRow, 0, len(recs)-1)
	for i, rec := range recs[1:] {
		var b [4]int
		for k := range b {
			if b[k], err = strconv.Atoi(rec[5+k]); err != nil {
				return nil, fmt.Errorf("%s/index.csv line %d: %s is not a whole number", dir, i+2, IndexHeader[5+k])
			}
		}
		rows = append(rows, IndexRow{Input: rec[0], Source: rec[1], Label: rec[2], Group: rec[3], Fallback: rec[9] == "1",
			Box: image.Rect(b[0], b[1], b[0]+b[2], b[1]+b[3])})
	}
	return rows, nil
}

// labelMarked gives every row whose box holds one of its field's marks
// ds.CentroidLabel (ReadExperiment checked that ds has fields and a label).
func (r *Runner) labelMarked(ds DataSource, rows []IndexRow) error {
	marks := map[string][]image.Point{}
	for i, row := range rows {
		pts, ok := marks[row.Source]
		if !ok {
			path := filepath.Join(r.DataDir, ds.Centroids, strings.TrimSuffix(row.Source, filepath.Ext(row.Source))+".xyc")
			raw, err := os.ReadFile(path)
			if err != nil {
				return fmt.Errorf("data source %s: %w", ds.Name, err)
			}
			if pts, err = ParseCentroids(raw); err != nil {
				return fmt.Errorf("%s: %w", path, err)
			}
			marks[row.Source] = pts
		}
		if MarkedCell(row.Box, pts) {
			rows[i].Label = ds.CentroidLabel
		}
	}
	return nil
}

// ParseCentroids reads an .xyc file: one "x y" pair of non-negative
// numbers per line (blank lines ignored).
func ParseCentroids(raw []byte) ([]image.Point, error) {
	var pts []image.Point
	for i, line := range strings.Split(string(raw), "\n") {
		f := strings.Fields(line)
		if len(f) == 0 {
			continue
		}
		if len(f) != 2 {
			return nil, fmt.Errorf("line %d: want \"x y\", got %q", i+1, line)
		}
		x, ex := strconv.ParseFloat(f[0], 64)
		y, ey := strconv.ParseFloat(f[1], 64)
		if ex != nil || ey != nil || !(x >= 0 && y >= 0 && x < 1e6 && y < 1e6) {
			return nil, fmt.Errorf("line %d: %q is not a pair of coordinates", i+1, line)
		}
		pts = append(pts, image.Pt(int(math.Round(x)), int(math.Round(y))))
	}
	return pts, nil
}

// MarkedCell says whether a mark lies in the central part of a cell's box:
// the ellipse with 0.35 of the box's width and height as half-axes, so
// that a mark near the box's edge (a platelet or a neighbouring cell) does
// not name the cell.
func MarkedCell(box image.Rectangle, pts []image.Point) bool {
	if box.Empty() {
		return false
	}
	cx, cy := float64(box.Min.X+box.Max.X)/2, float64(box.Min.Y+box.Max.Y)/2
	ax, ay := 0.35*float64(box.Dx()), 0.35*float64(box.Dy())
	for _, p := range pts {
		dx, dy := (float64(p.X)-cx)/ax, (float64(p.Y)-cy)/ay
		if dx*dx+dy*dy <= 1 {
			return true
		}
	}
	return false
}

var trailingNumber = regexp.MustCompile(`(\d+)\D*$`)

// groupsOf maps source files to groups from the source's groups CSV or
// file-number blocks.
func (r *Runner) groupsOf(ds DataSource, rows []IndexRow) (map[string]string, error) {
	out := map[string]string{}
	if ds.Groups != "" {
		f, err := os.Open(filepath.Join(r.RepoDir, ds.Groups))
		if err != nil {
			return nil, err
		}
		defer f.Close()
		recs, err := csv.NewReader(f).ReadAll()
		if err != nil || len(recs) == 0 {
			return nil, fmt.Errorf("groups %s: %v", ds.Groups, err)
		}
		fc, gc := slices.Index(recs[0], "file"), slices.Index(recs[0], ds.GroupColumn)
		if fc < 0 || gc < 0 {
			return nil, fmt.Errorf("groups %s: no columns file and %q", ds.Groups, ds.GroupColumn)
		}
		for _, rec := range recs[1:] {
			out[rec[fc]] = rec[gc]
		}
		return out, nil
	}
	if ds.GroupBlocks > 0 {
		for _, row := range rows {
			if g := BlockGroup(row.Label, row.Source, ds.GroupBlocks); g != "" {
				out[row.Source] = g
			}
		}
	}
	return out, nil
}

// BlockGroup is the group of a file in runs of n consecutive file numbers
// within its label ("" when the name holds no number).
func BlockGroup(label, file string, n int) string {
	m := trailingNumber.FindStringSubmatch(strings.TrimSuffix(file, filepath.Ext(file)))
	if m == nil || n <= 0 {
		return ""
	}
	k, _ := strconv.Atoi(m[1])
	return fmt.Sprintf("%s/block%03d", label, k/n)
}

// AssignFolds puts groups into k folds, balancing each label's count: groups
// are taken largest first (ties in seeded random order) and each goes to the
// fold holding fewest of its majority label.
func AssignFolds(rows []IndexRow, k int, seed uint64) map[string]int {
	type grp struct {
		name   string
		counts map[int]int
		n      int
	}
	gm := map[string]*grp{}
	for _, r := range rows {
		if r.Class < 0 {
			continue
		}
		g := gm[r.Group]
		if g == nil {
			g = &grp{name: r.Group, counts: map[int]int{}}
			gm[r.Group] = g
		}
		g.counts[r.Class]++
		g.n++
	}
	names := make([]string, 0, len(gm))
	for n := range gm {
		names = append(names, n)
	}
	slices.Sort(names)
	rng := rand.New(rand.NewPCG(seed, 0x5eed))
	rng.Shuffle(len(names), func(i, j int) { names[i], names[j] = names[j], names[i] })
	sort.SliceStable(names, func(i, j int) bool { return gm[names[i]].n > gm[names[j]].n })
	load := make([]map[int]int, k)
	total := make([]int, k)
	for i := range load {
		load[i] = map[int]int{}
	}
	fold := map[string]int{}
	for _, n := range names {
		g := gm[n]
		major, best := 0, -1
		for c, v := range g.counts {
			if v > best || (v == best && c < major) {
				major, best = c, v
			}
		}
		f := 0
		for i := 1; i < k; i++ {
			if load[i][major] < load[f][major] || (load[i][major] == load[f][major] && total[i] < total[f]) {
				f = i
			}
		}
		fold[n] = f
		for c, v := range g.counts {
			load[f][c] += v
		}
		total[f] += g.n
	}
	return fold
}

// trainConfig is the JSON model/train/train.py reads.
type trainConfig struct {
	Arch        string        `json:"arch"`
	Seed        int           `json:"seed"`
	Epochs      int           `json:"epochs,omitempty"`
	Patience    int           `json:"patience,omitempty"`
	Batch       int           `json:"batch,omitempty"`
	LR          float64       `json:"lr,omitempty"`
	WeightDecay float64       `json:"weight_decay,omitempty"`
	Threads     int           `json:"threads"`
	Classes     []string      `json:"classes"`
	Positive    string        `json:"positive,omitempty"`
	Task        string        `json:"task"`
	Train       []trainPart   `json:"train"`
	Val         []trainPart   `json:"val,omitempty"`
	Test        []trainPart   `json:"test,omitempty"`
	ValFraction float64       `json:"val_fraction,omitempty"`
	Augment     string        `json:"augment"`
	Protocol    string        `json:"protocol"`
	Keep        string        `json:"keep,omitempty"`
	EMA         float64       `json:"ema,omitempty"`
	Fold        int           `json:"fold"`
	Folds       int           `json:"folds"`
	Out         string        `json:"out"`
	Name        string        `json:"name"`
	Title       string        `json:"title"`
	Provisional bool          `json:"provisional"`
	Description string        `json:"description,omitempty"`
	Split       string        `json:"split,omitempty"`
	RelativeTo  string        `json:"relative_to,omitempty"`
	Parity      *parityConfig `json:"parity,omitempty"`
}

type trainPart struct {
	Dir  string            `json:"dir"`
	Name string            `json:"name"`
	Map  map[string]string `json:"map"`
	// Inputs lists the prepared inputs (index.csv's input column) this part
	// uses. Go decides every split, by its own groups: the trainer never
	// sees a group name.
	Inputs []string `json:"inputs"`
	// Relabel gives an input a label other than its index.csv row's (a
	// marked cell of a field), before Map.
	Relabel  map[string]string `json:"relabel,omitempty"`
	PerEpoch int               `json:"per_epoch,omitempty"`
	Weight   float64           `json:"weight,omitempty"`
}

type parityConfig struct {
	Dir string `json:"dir"` // prepared inputs (from samples/)
	Out string `json:"out"` // fixture folder: parity JSON and the input PNGs
}

// part is the trainer's view of the rows of p that keep says to use.
func (r *Runner) part(p *Prepared, labels []string, keep func(IndexRow) bool) trainPart {
	m := map[string]string{}
	tp := trainPart{Dir: p.Dir, Name: p.Source.Name, Map: m, PerEpoch: p.Source.PerEpoch, Weight: p.Source.Weight, Inputs: []string{}}
	for _, row := range p.Rows {
		if row.Class >= 0 && (keep == nil || keep(row)) {
			m[row.Label] = labels[row.Class]
			tp.Inputs = append(tp.Inputs, row.Input)
			if p.Source.Centroids != "" {
				if tp.Relabel == nil {
					tp.Relabel = map[string]string{}
				}
				tp.Relabel[row.Input] = row.Label
			}
		}
	}
	if tp.Weight == 0 {
		tp.Weight = 1
	}
	return tp
}

// splitTraining makes the training and validation parts of the prepared
// sets: rows that usable says may train are split by group, per label, a
// fraction frac of each label's groups (seeded) going to validation. The
// first set (the CV set) and the sets with CVGroups share one draw: a group
// is held out from all of them or from none.
func (r *Runner) splitTraining(sets []*Prepared, labels []string, usable func(*Prepared, IndexRow) bool, frac float64, seed int) (train, val []trainPart) {
	shared := map[string]bool{} // group -> held, for the CV set's groups
	for i, p := range sets {
		byLabel := map[int][]string{}
		seen := map[string]bool{}
		held := map[string]bool{}
		joint := i == 0 || p.Source.CVGroups
		for _, row := range p.Rows {
			if row.Class < 0 || !usable(p, row) || seen[row.Group] {
				continue
			}
			seen[row.Group] = true
			if h, ok := shared[row.Group]; ok && joint {
				held[row.Group] = h
				continue
			}
			byLabel[row.Class] = append(byLabel[row.Class], row.Group)
		}
		rng := rand.New(rand.NewPCG(uint64(seed), 0xa1))
		for c := 0; c < len(labels); c++ {
			gs := byLabel[c]
			slices.Sort(gs)
			rng.Shuffle(len(gs), func(i, j int) { gs[i], gs[j] = gs[j], gs[i] })
			for k, g := range gs {
				held[g] = k < int(math.Round(frac*float64(len(gs))))
			}
		}
		if joint {
			for g, h := range held {
				shared[g] = h
			}
		}
		train = append(train, r.part(p, labels, func(row IndexRow) bool { return usable(p, row) && !held[row.Group] }))
		v := r.part(p, labels, func(row IndexRow) bool { return usable(p, row) && held[row.Group] })
		v.Name += "-val"
		v.PerEpoch = 0
		if len(v.Inputs) > 0 {
			val = append(val, v)
		}
	}
	return train, val
}

// train runs the Python trainer on a config unless the same config already
// produced a model in dir. It returns the manifest path.
func (r *Runner) train(cfg trainConfig, dir string) (string, error) {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return "", err
	}
	cfg.Out = dir
	raw, _ := json.MarshalIndent(cfg, "", " ")
	cfgPath := filepath.Join(dir, "config.json")
	manifest := filepath.Join(dir, cfg.Name+".json")
	if old, err := os.ReadFile(cfgPath); err == nil && bytes.Equal(old, raw) {
		if _, err := os.Stat(manifest); err == nil {
			r.logf("  %s: trained before with the same config; reusing it", dir)
			return manifest, nil
		}
	}
	os.Remove(manifest)
	if err := os.WriteFile(cfgPath, raw, 0o644); err != nil {
		return "", err
	}
	cmd := exec.Command("nice", "-n", "10", r.Python, filepath.Join(r.RepoDir, "model", "train", "train.py"), cfgPath)
	cmd.Dir = r.RepoDir
	var tail bytes.Buffer
	w := io.Writer(&tail)
	if r.Log != nil {
		w = io.MultiWriter(&tail, &prefixWriter{w: r.Log, prefix: "    "})
	}
	cmd.Stdout, cmd.Stderr = w, w
	if err := cmd.Run(); err != nil {
		t := tail.String()
		return "", fmt.Errorf("training in %s failed: %v\n%s", dir, err, t[max(0, len(t)-2000):])
	}
	if _, err := os.Stat(manifest); err != nil {
		return "", fmt.Errorf("training in %s wrote no manifest", dir)
	}
	return manifest, nil
}

// prefixWriter indents the trainer's lines, dropping library warnings.
type prefixWriter struct {
	w      io.Writer
	prefix string
	buf    []byte
}

func (p *prefixWriter) Write(b []byte) (int, error) {
	p.buf = append(p.buf, b...)
	for {
		i := bytes.IndexByte(p.buf, '\n')
		if i < 0 {
			return len(b), nil
		}
		line := string(p.buf[:i])
		p.buf = p.buf[i+1:]
		if strings.Contains(line, "Warning") || strings.HasPrefix(strings.TrimSpace(line), "warnings.warn") {
			continue
		}
		fmt.Fprintf(p.w, "%s%s\n", p.prefix, line)
	}
}

// Predicted is one evaluated input.
type Predicted struct {
	Set       string    `json:"set"`
	Input     string    `json:"input"`
	Source    string    `json:"source"`
	Group     string    `json:"group"`
	Seed      int       `json:"seed"`
	Fold      int       `json:"fold"`
	True      int       `json:"true"`
	Pred      int       `json:"pred"` // the call at its fold model's operating point
	Probs     []float32 `json:"probs"`
	Uncertain bool      `json:"uncertain"`
	OOD       bool      `json:"ood"`
	Distance  float32   `json:"ood_distance"`
}

// predictRows runs prepared rows through a loaded model.
func predictRows(n *Net, p *Prepared, rows []IndexRow, set string, seed, fold int) ([]Predicted, error) {
	out := make([]Predicted, 0, len(rows))
	for start := 0; start < len(rows); start += 64 {
		chunk := rows[start:min(start+64, len(rows))]
		imgs := make([]gocv.Mat, 0, len(chunk))
		for _, row := range chunk {
			m := gocv.IMRead(filepath.Join(p.Dir, row.Input), gocv.IMReadColor)
			if m.Empty() {
				for _, o := range imgs {
					o.Close()
				}
				m.Close()
				return nil, fmt.Errorf("cannot read prepared input %s/%s", p.Dir, row.Input)
			}
			imgs = append(imgs, m)
		}
		probs, feats, err := n.RunPrepared(imgs)
		for _, m := range imgs {
			m.Close()
		}
		if err != nil {
			return nil, err
		}
		for i, row := range chunk {
			j := n.judge(probs[i], feats[i], row.Fallback)
			out = append(out, Predicted{Set: set, Input: row.Input, Source: row.Source, Group: row.Group, Seed: seed, Fold: fold,
				True: row.Class, Pred: predictedClass(probs[i], n.pos, threshold(n.m)), Probs: probs[i], Uncertain: j.Uncertain, OOD: j.OutOfDistribution, Distance: j.OODDistance})
		}
	}
	return out, nil
}

// prediction turns a Predicted back into the classifier's answer.
func (p Predicted) prediction(pos int) Prediction {
	pr := Prediction{Probs: p.Probs, Uncertain: p.Uncertain, OutOfDistribution: p.OOD, OODDistance: p.Distance}
	if pos >= 0 && pos < len(p.Probs) {
		pr.Blast = p.Probs[pos]
	}
	return pr
}

// argmax of a probability vector.
func argmax(p []float32) int {
	b := 0
	for i, v := range p {
		if v > p[b] {
			b = i
		}
	}
	return b
}

// predictedClass is the call at the operating point: for a detection model,
// positive when P(positive) >= the threshold; otherwise the top label.
func predictedClass(p []float32, pos int, threshold float64) int {
	if pos >= 0 && len(p) == 2 {
		if float64(p[pos]) >= threshold {
			return pos
		}
		return 1 - pos
	}
	return argmax(p)
}

// ErrNoData is returned when an experiment selects no inputs.
var ErrNoData = errors.New("no inputs selected")
