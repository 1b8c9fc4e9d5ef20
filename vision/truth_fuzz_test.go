package vision

import (
	"bytes"
	"image"
	"image/png"
	"os"
	"path/filepath"
	"testing"
)

// FuzzReadLabels: any labels file gives rows or an error, never a panic,
// and every row it returns names a plain file with a label.
func FuzzReadLabels(f *testing.F) {
	for _, s := range []string{
		"file,label,group,width,height\nIm001_1.png,blast,Im001_1,257,257\n",
		"file,celltype\n001.png,lymphocyte\n002.png,neutrophil\n",
		"\ufefffile,label\n\"a,b.png\",blast\n",
		"file\n", "", "file,label\na.png\n", "file,label\n../x.png,blast\n", "file,label\nsub/x.png,blast\n",
	} {
		f.Add([]byte(s))
	}
	dir := f.TempDir()
	f.Fuzz(func(t *testing.T, data []byte) {
		p := filepath.Join(dir, "labels.csv")
		if err := os.WriteFile(p, data, 0o644); err != nil {
			t.Fatal(err)
		}
		set, err := ReadLabels(p, "", "I", "M")
		for _, li := range set {
			if li.Name == "" || li.Label == "" || li.Name != filepath.Base(li.Name) || !filepath.IsLocal(li.Name) {
				t.Fatalf("row %+v accepted", li)
			}
		}
		nested, nerr := ReadNestedLabels(p, "", "I", "M")
		if err == nil && nerr != nil {
			t.Fatalf("ReadNestedLabels refuses what ReadLabels reads: %v", nerr)
		}
		for _, li := range nested {
			if li.Name == "" || li.Label == "" || !filepath.IsLocal(filepath.FromSlash(li.Name)) {
				t.Fatalf("nested row %+v accepted", li)
			}
		}
	})
}

// FuzzLoadTruth: any mask file gives a grey image or an error, never a
// panic, and never an image larger than the limits.
func FuzzLoadTruth(f *testing.F) {
	var b bytes.Buffer
	g := image.NewGray(image.Rect(0, 0, 20, 17))
	for i := range g.Pix {
		g.Pix[i] = []uint8{0, 128, 255}[i%3]
	}
	png.Encode(&b, g)
	f.Add(b.Bytes())
	f.Add(b.Bytes()[:b.Len()/2])
	f.Add([]byte("not a mask"))
	f.Add(pngHeaderOnly(40000, 40000))
	dir := f.TempDir()
	f.Fuzz(func(t *testing.T, data []byte) {
		p := filepath.Join(dir, "mask.png")
		if err := os.WriteFile(p, data, 0o644); err != nil {
			t.Fatal(err)
		}
		m, err := LoadTruth(p)
		if err != nil {
			return
		}
		w, h := m.Rect.Dx(), m.Rect.Dy()
		if w < MinSide || h < MinSide || w > MaxSide || h > MaxSide {
			t.Fatalf("accepted a %dx%d mask", w, h)
		}
		TruthMask(m, TargetCell)
	})
}
