package vision

import (
	"testing"

	"gocv.io/x/gocv"
)

// BenchmarkFindCells is a 2592x1944 field (a real ALL-IDB1 normal field when
// the data is present, else a synthetic one of the same size) from a
// decoded Mat to its white cells: segmented and cells found.
func BenchmarkFindCells(b *testing.B) {
	field := benchField(b)
	defer field.Close()
	b.ResetTimer()
	for b.Loop() {
		if _, err := FindCells(field, DefaultFindOptions); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkFieldPath is what the appliance does per captured frame before
// classification: the quality gate, the white cells, and a crop of each.
func BenchmarkFieldPath(b *testing.B) {
	field := benchField(b)
	defer field.Close()
	b.ResetTimer()
	for b.Loop() {
		fieldPath(b, field)
	}
}

// fieldPath runs the gate, FindCells and CropCell on a field.
func fieldPath(tb testing.TB, field gocv.Mat) int {
	q := CheckQuality(field)
	_ = q.OK()
	cells, err := FindCells(field, DefaultFindOptions)
	if err != nil {
		tb.Fatal(err)
	}
	for _, c := range cells {
		crop, err := CropCell(field, c.Crop)
		if err != nil {
			tb.Fatal(err)
		}
		crop.Close()
	}
	return len(cells)
}
