package model

import (
	"image"
	"image/png"
	"os"
	"path/filepath"
	"testing"
)

// dropEdgeCells leaves out exactly the cells whose box touches their own
// field's edge (fields of different sizes in one source), and says so when
// a field cannot be read.
func TestDropEdgeCells(t *testing.T) {
	data := t.TempDir()
	for name, size := range map[string]image.Point{"a/f1.png": {40, 30}, "b/f2.png": {60, 50}} {
		p := filepath.Join(data, "set", name)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		f, err := os.Create(p)
		if err != nil {
			t.Fatal(err)
		}
		if err := png.Encode(f, image.NewRGBA(image.Rectangle{Max: size})); err != nil {
			t.Fatal(err)
		}
		f.Close()
	}
	rows := []IndexRow{
		{Source: "a/f1.png", Box: image.Rect(5, 5, 20, 20)},  // inside
		{Source: "a/f1.png", Box: image.Rect(0, 5, 20, 20)},  // left edge
		{Source: "a/f1.png", Box: image.Rect(5, 5, 40, 20)},  // right edge
		{Source: "a/f1.png", Box: image.Rect(5, 10, 20, 30)}, // bottom edge
		{Source: "b/f2.png", Box: image.Rect(5, 5, 40, 29)},  // inside f2, though it would touch f1's bottom
		{Source: "b/f2.png", Box: image.Rect(5, 0, 40, 20)},  // top edge
		{Source: "b/f2.png", Box: image.Rect(1, 1, 59, 49)},  // one pixel in from every edge
	}
	want := []int{0, -1, -1, -1, 0, -1, 0}
	r := &Runner{DataDir: data}
	n, err := r.dropEdgeCells(DataSource{Name: "set", Images: "set"}, rows)
	if err != nil {
		t.Fatal(err)
	}
	if n != 4 {
		t.Errorf("left out %d cells, want 4", n)
	}
	for i, row := range rows {
		if row.Class != want[i] {
			t.Errorf("row %d (%v in %s): class %d, want %d", i, row.Box, row.Source, row.Class, want[i])
		}
	}
	rows = append(rows, IndexRow{Source: "missing.png", Box: image.Rect(5, 5, 10, 10)})
	if _, err := r.dropEdgeCells(DataSource{Name: "set", Images: "set"}, rows); err == nil {
		t.Error("a field that cannot be read: no error")
	}
}
