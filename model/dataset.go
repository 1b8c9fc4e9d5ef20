package model

import (
	"encoding/csv"
	"encoding/json"
	"errors"
	"fmt"
	"image"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"

	"allscreen/vision"

	"gocv.io/x/gocv"
)

// Labelled is one labelled image of a data folder.
type Labelled struct {
	Path  string // file to read
	File  string // name relative to the data folder, as the labels CSV gives it
	Label string
	Group string // images of one group must stay on one side of a split
}

// imageExts are the file types read from a folder of images.
var imageExts = []string{".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff"}

// IsImageFile says whether a file name has one of the image types read.
func IsImageFile(name string) bool {
	return slices.Contains(imageExts, strings.ToLower(filepath.Ext(name)))
}

// ReadLabelled lists the labelled images of dir. With a labels CSV, its
// column "file" names each image (relative to dir), labelColumn its label
// and an optional column "group" its group (else the file is its own
// group). Without one, every sub-folder of dir is a label.
func ReadLabelled(dir, labelsCSV, labelColumn string) ([]Labelled, error) {
	return ReadLabelledGroups(dir, labelsCSV, labelColumn, "group")
}

// ReadLabelledGroups is ReadLabelled with the group read from groupColumn.
func ReadLabelledGroups(dir, labelsCSV, labelColumn, groupColumn string) ([]Labelled, error) {
	st, err := os.Stat(dir)
	if err != nil {
		return nil, fmt.Errorf("images folder: %w", err)
	}
	if !st.IsDir() {
		return nil, fmt.Errorf("images folder %s is not a folder", dir)
	}
	if labelsCSV == "" {
		return readFolderPerLabel(dir)
	}
	f, err := os.Open(labelsCSV)
	if err != nil {
		return nil, fmt.Errorf("labels: %w", err)
	}
	defer f.Close()
	items, err := parseLabels(f, labelColumn, groupColumn)
	if err != nil {
		return nil, fmt.Errorf("labels %s: %w", labelsCSV, err)
	}
	for i := range items {
		items[i].Path = filepath.Join(dir, filepath.FromSlash(items[i].File))
	}
	return items, nil
}

// maxLabelRows bounds a labels file read from outside.
const maxLabelRows = 1 << 20

// parseLabels reads a labels CSV: a header naming at least "file" and the
// label column, then one row per image.
func parseLabels(r io.Reader, labelColumn, groupColumn string) ([]Labelled, error) {
	cr := csv.NewReader(r)
	cr.FieldsPerRecord = -1
	head, err := cr.Read()
	if err != nil {
		return nil, fmt.Errorf("no header row: %w", err)
	}
	col := map[string]int{}
	for i, h := range head {
		col[strings.ToLower(strings.TrimSpace(strings.TrimPrefix(h, "\ufeff")))] = i
	}
	fileCol, ok := col["file"]
	if !ok {
		return nil, fmt.Errorf("header %q has no column \"file\"", strings.Join(head, ","))
	}
	labelCol, ok := col[strings.ToLower(labelColumn)]
	if !ok {
		return nil, fmt.Errorf("header %q has no label column %q", strings.Join(head, ","), labelColumn)
	}
	groupCol, hasGroup := col[strings.ToLower(groupColumn)]
	var items []Labelled
	seen := map[string]bool{}
	for line := 2; ; line++ {
		rec, err := cr.Read()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return nil, err
		}
		if len(items) >= maxLabelRows {
			return nil, fmt.Errorf("more than %d rows", maxLabelRows)
		}
		if len(rec) <= fileCol || len(rec) <= labelCol || (hasGroup && len(rec) <= groupCol) {
			return nil, fmt.Errorf("line %d: %d columns, fewer than the header's", line, len(rec))
		}
		it := Labelled{File: strings.TrimSpace(rec[fileCol]), Label: strings.TrimSpace(rec[labelCol])}
		if hasGroup {
			it.Group = strings.TrimSpace(rec[groupCol])
		}
		if it.File == "" || it.Label == "" {
			return nil, fmt.Errorf("line %d: empty file or label", line)
		}
		clean := filepath.ToSlash(filepath.Clean(filepath.FromSlash(it.File)))
		if filepath.IsAbs(it.File) || clean == ".." || strings.HasPrefix(clean, "../") {
			return nil, fmt.Errorf("line %d: file %q lies outside the images folder", line, it.File)
		}
		if seen[clean] {
			return nil, fmt.Errorf("line %d: file %q listed twice", line, it.File)
		}
		seen[clean] = true
		it.File = clean
		if it.Group == "" {
			it.Group = it.File
		}
		items = append(items, it)
	}
	if len(items) == 0 {
		return nil, errors.New("no rows")
	}
	return items, nil
}

func readFolderPerLabel(dir string) ([]Labelled, error) {
	ents, err := os.ReadDir(dir)
	if err != nil {
		return nil, err
	}
	var items []Labelled
	for _, e := range ents {
		if !e.IsDir() || strings.HasPrefix(e.Name(), ".") {
			continue
		}
		files, err := os.ReadDir(filepath.Join(dir, e.Name()))
		if err != nil {
			return nil, err
		}
		for _, f := range files {
			if f.IsDir() || !IsImageFile(f.Name()) {
				continue
			}
			rel := e.Name() + "/" + f.Name()
			items = append(items, Labelled{Path: filepath.Join(dir, e.Name(), f.Name()), File: rel, Label: e.Name(), Group: rel})
		}
	}
	if len(items) == 0 {
		return nil, fmt.Errorf("%s: no labels CSV given and no sub-folder (one per label) holds images", dir)
	}
	return items, nil
}

// readAllLabelled lists the images directly in dir, each its own group,
// all with one label.
func readAllLabelled(dir, label string) ([]Labelled, error) {
	ents, err := os.ReadDir(dir)
	if err != nil {
		return nil, err
	}
	var items []Labelled
	for _, e := range ents {
		if !e.IsDir() && IsImageFile(e.Name()) {
			items = append(items, Labelled{Path: filepath.Join(dir, e.Name()), File: e.Name(), Label: label, Group: e.Name()})
		}
	}
	if len(items) == 0 {
		return nil, fmt.Errorf("%s holds no images", dir)
	}
	return items, nil
}

// PrepareOptions configures PrepareSet.
type PrepareOptions struct {
	Spec InputSpec
	// Fields: the images are whole fields; each white cell FindCells finds
	// becomes one input, labelled with its field's label.
	Fields bool
	Find   vision.FindOptions
	// BlankScaleBar paints over the bottom-right corner first.
	BlankScaleBar bool
}

// PreparedSpec is written beside prepared inputs (spec.json): what made them.
type PreparedSpec struct {
	Input               InputSpec `json:"input"`
	SegmentationVersion string    `json:"segmentation_version"`
	Fields              bool      `json:"fields"`
	ScaleBarBlanked     bool      `json:"scale_bar_blanked"`
}

// PrepareResult counts what PrepareSet did.
type PrepareResult struct {
	Images, Inputs, Fallbacks int
	Failed                    []string // one line per image that could not be used
	// SkippedCells: cells found in a field that could not be prepared
	// (fields mode); the field's other cells are kept.
	SkippedCells []string
}

// IndexHeader is the header of a prepared folder's index.csv.
var IndexHeader = []string{"input", "source", "label", "group", "cell", "x", "y", "w", "h", "fallback"}

// PrepareSet writes the model input of every item into outDir, as 8-bit
// PNGs with the cell mask as alpha, plus index.csv and spec.json. An image
// that cannot be read is reported in the result and skipped.
func PrepareSet(items []Labelled, outDir string, opt PrepareOptions, progress func(done, total int)) (PrepareResult, error) {
	var res PrepareResult
	if err := opt.Spec.Check(); err != nil {
		return res, err
	}
	if err := os.MkdirAll(filepath.Join(outDir, "inputs"), 0o755); err != nil {
		return res, err
	}
	rows := [][]string{IndexHeader}
	for i, it := range items {
		n, fb, err := prepareOne(it, outDir, opt, &rows, &res.SkippedCells)
		if err != nil {
			res.Failed = append(res.Failed, err.Error())
		} else {
			res.Images++
			res.Inputs += n
			res.Fallbacks += fb
		}
		if progress != nil {
			progress(i+1, len(items))
		}
	}
	spec, _ := json.MarshalIndent(PreparedSpec{Input: opt.Spec, SegmentationVersion: vision.CellSegmentationVersion,
		Fields: opt.Fields, ScaleBarBlanked: opt.BlankScaleBar}, "", "  ")
	if err := WriteFileAtomic(filepath.Join(outDir, "spec.json"), append(spec, '\n')); err != nil {
		return res, err
	}
	var b strings.Builder
	w := csv.NewWriter(&b)
	w.WriteAll(rows)
	if err := w.Error(); err != nil {
		return res, err
	}
	return res, WriteFileAtomic(filepath.Join(outDir, "index.csv"), []byte(b.String()))
}

func prepareOne(it Labelled, outDir string, opt PrepareOptions, rows *[][]string, skipped *[]string) (inputs, fallbacks int, err error) {
	img, err := vision.LoadImage(it.Path)
	if err != nil {
		return 0, 0, err
	}
	defer img.Close()
	if opt.BlankScaleBar {
		BlankScaleBar(&img)
	}
	stem := strings.NewReplacer("/", "__", " ", "_").Replace(strings.TrimSuffix(it.File, filepath.Ext(it.File)))
	if !opt.Fields {
		in, err := PrepareInput(img, opt.Spec)
		if err != nil {
			return 0, 0, fmt.Errorf("%s: %w", it.Path, err)
		}
		defer in.Close()
		name := "inputs/" + stem + ".png"
		if err := writeInputPNG(filepath.Join(outDir, name), in); err != nil {
			return 0, 0, err
		}
		*rows = append(*rows, indexRow(name, it, 0, image.Rect(0, 0, img.Cols(), img.Rows()), in.Fallback))
		return 1, b2i(in.Fallback), nil
	}
	cells, err := vision.FindCells(img, opt.Find)
	if err != nil {
		return 0, 0, fmt.Errorf("%s: %w", it.Path, err)
	}
	for ci, c := range cells {
		crop, err := vision.CropCell(img, c.Crop)
		if err != nil {
			return 0, 0, fmt.Errorf("%s cell %d: %w", it.Path, ci+1, err)
		}
		in, err := PrepareInput(crop, opt.Spec)
		crop.Close()
		if err != nil {
			// Not a usable white cell (no nucleus, too small): the device
			// would mark it uncertain; it is no training example.
			*skipped = append(*skipped, fmt.Sprintf("%s cell %d: %v", it.Path, ci+1, err))
			continue
		}
		name := fmt.Sprintf("inputs/%s_c%02d.png", stem, ci+1)
		err = writeInputPNG(filepath.Join(outDir, name), in)
		in.Close()
		if err != nil {
			return 0, 0, err
		}
		*rows = append(*rows, indexRow(name, it, ci+1, c.Box, in.Fallback))
		inputs++
		fallbacks += b2i(in.Fallback)
	}
	return inputs, fallbacks, nil
}

func indexRow(name string, it Labelled, cell int, box image.Rectangle, fallback bool) []string {
	return []string{name, it.File, it.Label, it.Group, strconv.Itoa(cell),
		strconv.Itoa(box.Min.X), strconv.Itoa(box.Min.Y), strconv.Itoa(box.Dx()), strconv.Itoa(box.Dy()), strconv.Itoa(b2i(fallback))}
}

func b2i(b bool) int {
	if b {
		return 1
	}
	return 0
}

// writeInputPNG writes the input's BGR pixels with its cell mask as alpha.
func writeInputPNG(path string, in Input) error {
	bgr := in.Image.ToBytes()
	n := in.Image.Rows() * in.Image.Cols()
	if len(bgr) != 3*n || len(in.Cell) != n {
		return fmt.Errorf("write %s: input of %d pixels has %d bytes and %d mask pixels", path, n, len(bgr), len(in.Cell))
	}
	bgra := make([]uint8, 4*n)
	for i := 0; i < n; i++ {
		copy(bgra[4*i:4*i+3], bgr[3*i:3*i+3])
		bgra[4*i+3] = in.Cell[i]
	}
	m, err := vision.NewMatCopy(in.Image.Rows(), in.Image.Cols(), gocv.MatTypeCV8UC4, bgra)
	if err != nil {
		return err
	}
	defer m.Close()
	buf, err := gocv.IMEncode(gocv.PNGFileExt, m)
	if err != nil {
		return fmt.Errorf("encode %s: %w", path, err)
	}
	return WriteFileAtomic(path, buf)
}

// BlankScaleBar paints the bottom-right corner, where bll-stages prints a
// scale bar whose colour differs by class, with the median colour of the
// band around it, so neither cell finding nor the model can see the bar.
func BlankScaleBar(img *gocv.Mat) {
	w, h := img.Cols(), img.Rows()
	box := image.Rect(w*86/100, h*87/100, w, h)
	band := image.Rect(box.Min.X-w/30, box.Min.Y-h/30, w, h)
	pix := img.ToBytes()
	var ch [3][]int
	for y := band.Min.Y; y < band.Max.Y; y++ {
		for x := band.Min.X; x < band.Max.X; x++ {
			if image.Pt(x, y).In(box) {
				continue
			}
			for c := 0; c < 3; c++ {
				ch[c] = append(ch[c], int(pix[3*(y*w+x)+c]))
			}
		}
	}
	var fill [3]uint8
	for c := range ch {
		if len(ch[c]) == 0 {
			return
		}
		slices.Sort(ch[c])
		fill[c] = uint8(ch[c][len(ch[c])/2])
	}
	for y := box.Min.Y; y < box.Max.Y; y++ {
		for x := box.Min.X; x < box.Max.X; x++ {
			copy(pix[3*(y*w+x):], fill[:])
		}
	}
	m, err := vision.NewMatCopy(h, w, gocv.MatTypeCV8UC3, pix)
	if err != nil {
		return
	}
	img.Close()
	*img = m
}

// WriteFileAtomic writes through a temporary file and a rename, so a reader
// never sees half a file.
func WriteFileAtomic(path string, data []byte) error {
	tmp, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".*")
	if err != nil {
		return err
	}
	if _, err := tmp.Write(data); err != nil {
		tmp.Close()
		os.Remove(tmp.Name())
		return err
	}
	if err := tmp.Chmod(0o644); err != nil { // CreateTemp makes 0600; these files are for any reader
		tmp.Close()
		os.Remove(tmp.Name())
		return err
	}
	if err := tmp.Close(); err != nil {
		os.Remove(tmp.Name())
		return err
	}
	if err := os.Rename(tmp.Name(), path); err != nil {
		os.Remove(tmp.Name())
		return err
	}
	return nil
}
