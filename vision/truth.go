package vision

import (
	"bytes"
	"encoding/csv"
	"errors"
	"fmt"
	"image"
	"image/draw"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
)

// Target is the part of a white cell a ground-truth mask is read as.
// Ground-truth masks (ALL-IDB2 masks, wbcseg) hold 0 for background, 128 for
// cytoplasm and 255 for nucleus.
type Target int

const (
	TargetNucleus Target = iota // pixels of 255
	TargetCell                  // pixels of 128 or 255: nucleus and cytoplasm
)

func (t Target) String() string {
	if t == TargetCell {
		return "cell"
	}
	return "nucleus"
}

// ParseTarget reads "nucleus" or "cell".
func ParseTarget(s string) (Target, error) {
	switch s {
	case "nucleus":
		return TargetNucleus, nil
	case "cell":
		return TargetCell, nil
	}
	return 0, fmt.Errorf("unknown target %q (want nucleus or cell)", s)
}

// TruthMask reads a ground-truth grey image as a mask of the target. Values
// are split half-way between the three levels (above 191 is nucleus, above
// 63 is cell), so masks resaved with slightly shifted levels still read
// right.
func TruthMask(g *image.Gray, t Target) *Mask {
	w, h := g.Rect.Dx(), g.Rect.Dy()
	m := NewMask(w, h)
	cut := uint8(191)
	if t == TargetCell {
		cut = 63
	}
	for y := range h {
		row := g.Pix[g.PixOffset(g.Rect.Min.X, g.Rect.Min.Y+y):][:w]
		for x, v := range row {
			if v > cut {
				m.Pix[y*w+x] = 255
			}
		}
	}
	return m
}

// LoadTruth reads a ground-truth mask file (PNG, BMP or TIFF; grey, or
// colour read as its luminance), with the same size limits as LoadImage.
func LoadTruth(path string) (*image.Gray, error) {
	st, err := os.Stat(path)
	if err != nil {
		return nil, err
	}
	if !st.Mode().IsRegular() {
		return nil, fmt.Errorf("%s: not a regular file: %w", path, ErrBadImage)
	}
	if st.Size() > MaxFileBytes {
		return nil, fmt.Errorf("%s: file is %d bytes, more than the %d accepted: %w", path, st.Size(), MaxFileBytes, ErrBadImage)
	}
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	cfg, format, err := image.DecodeConfig(bytes.NewReader(data))
	if err != nil {
		return nil, fmt.Errorf("%s: not a PNG, BMP or TIFF mask (%v): %w", path, err, ErrBadImage)
	}
	if err := checkSize(cfg.Width, cfg.Height); err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	if format == "jpeg" {
		// JPEG blurs the three levels into each other.
		return nil, fmt.Errorf("%s: a JPEG mask cannot hold exact levels; save masks as PNG: %w", path, ErrBadImage)
	}
	img, _, err := image.Decode(bytes.NewReader(data))
	if err != nil {
		return nil, fmt.Errorf("%s: %v: %w", path, err, ErrBadImage)
	}
	if g, ok := img.(*image.Gray); ok {
		return g, nil
	}
	g := image.NewGray(img.Bounds())
	draw.Draw(g, g.Rect, img, img.Bounds().Min, draw.Src)
	return g, nil
}

// LabeledImage is one image of a data set with its class and, when the set
// has one, its ground-truth mask.
type LabeledImage struct {
	Name  string // file name as in the labels file
	Label string // class (ALL-IDB2: blast/normal; wbcseg: cell type)
	Group string // the labels' group column (one cell shown twice shares it), or ""
	Image string // path
	Mask  string // path, or "" without ground truth
}

// labelColumns are tried in order when no label column is named: ALL-IDB2
// calls it "label", wbcseg "celltype".
var labelColumns = []string{"label", "celltype", "class", "cell_type", "type"}

// ReadLabels reads a labels CSV with a header row: a "file" column and a
// label column (labelColumn, or the first of label, celltype, class,
// cell_type, type). Images are looked up in imagesDir and, when masksDir is
// not empty, masks of the same file name in masksDir. Files are not opened
// here: a missing one is reported, by name, when it is read. Rows come back
// sorted by file name.
func ReadLabels(csvPath, labelColumn, imagesDir, masksDir string) ([]LabeledImage, error) {
	return readLabels(csvPath, labelColumn, imagesDir, masksDir, false)
}

// ReadNestedLabels is ReadLabels for a set whose file names may hold a
// sub-folder (pbc-types: basophil/BA_127868.jpg, slash-separated), which
// must stay inside imagesDir; with an empty labelColumn it looks for the
// same columns.
func ReadNestedLabels(csvPath, labelColumn, imagesDir, masksDir string) ([]LabeledImage, error) {
	return readLabels(csvPath, labelColumn, imagesDir, masksDir, true)
}

func readLabels(csvPath, labelColumn, imagesDir, masksDir string, nested bool) ([]LabeledImage, error) {
	f, err := os.Open(csvPath)
	if err != nil {
		return nil, fmt.Errorf("labels: %w", err)
	}
	defer f.Close()
	r := csv.NewReader(io.LimitReader(f, 64<<20))
	r.TrimLeadingSpace = true
	header, err := r.Read()
	if err != nil {
		return nil, fmt.Errorf("labels %s: no header row: %w", csvPath, err)
	}
	for i := range header {
		header[i] = strings.ToLower(strings.TrimSpace(strings.TrimPrefix(header[i], "\ufeff")))
	}
	fileCol := slices.Index(header, "file")
	if fileCol < 0 {
		fileCol = slices.Index(header, "filename")
	}
	if fileCol < 0 {
		return nil, fmt.Errorf("labels %s: no \"file\" column (columns: %s)", csvPath, strings.Join(header, ", "))
	}
	groupCol := slices.Index(header, "group")
	labelCol := -1
	if labelColumn != "" {
		labelCol = slices.Index(header, strings.ToLower(labelColumn))
		if labelCol < 0 {
			return nil, fmt.Errorf("labels %s: no column %q (columns: %s)", csvPath, labelColumn, strings.Join(header, ", "))
		}
	} else {
		for _, c := range labelColumns {
			if labelCol = slices.Index(header, c); labelCol >= 0 {
				break
			}
		}
		if labelCol < 0 {
			return nil, fmt.Errorf("labels %s: no label column found (columns: %s); name one with --label-column", csvPath, strings.Join(header, ", "))
		}
	}
	var out []LabeledImage
	seen := map[string]bool{}
	for line := 2; ; line++ {
		rec, err := r.Read()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return nil, fmt.Errorf("labels %s: %w", csvPath, err)
		}
		if len(rec) <= max(fileCol, labelCol) {
			return nil, fmt.Errorf("labels %s line %d: %d columns, want at least %d", csvPath, line, len(rec), max(fileCol, labelCol)+1)
		}
		name, label := strings.TrimSpace(rec[fileCol]), strings.TrimSpace(rec[labelCol])
		if name == "" || label == "" {
			return nil, fmt.Errorf("labels %s line %d: empty file name or label", csvPath, line)
		}
		switch {
		case nested && !filepath.IsLocal(filepath.FromSlash(name)):
			return nil, fmt.Errorf("labels %s line %d: file %q leaves the folder", csvPath, line, name)
		case !nested && (name != filepath.Base(name) || !filepath.IsLocal(name)):
			return nil, fmt.Errorf("labels %s line %d: file %q must be a plain file name", csvPath, line, name)
		}
		if seen[name] {
			return nil, fmt.Errorf("labels %s line %d: %s listed twice", csvPath, line, name)
		}
		seen[name] = true
		li := LabeledImage{Name: name, Label: label, Image: filepath.Join(imagesDir, filepath.FromSlash(name))}
		if groupCol >= 0 && groupCol < len(rec) {
			li.Group = strings.TrimSpace(rec[groupCol])
		}
		if masksDir != "" {
			li.Mask = filepath.Join(masksDir, filepath.FromSlash(name))
		}
		out = append(out, li)
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("labels %s: no rows", csvPath)
	}
	slices.SortFunc(out, func(a, b LabeledImage) int { return strings.Compare(a.Name, b.Name) })
	return out, nil
}

// Classes returns the distinct labels, sorted.
func Classes(set []LabeledImage) []string {
	var cs []string
	for _, li := range set {
		if !slices.Contains(cs, li.Label) {
			cs = append(cs, li.Label)
		}
	}
	slices.Sort(cs)
	return cs
}
