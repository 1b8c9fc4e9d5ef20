package vision

import (
	"testing"
)

func BenchmarkSegmentCellAllIDB2(b *testing.B) {
	set := allidb2(b)
	img, err := LoadImage(set[0].Image)
	if err != nil {
		b.Fatal(err)
	}
	defer img.Close()
	for b.Loop() {
		if _, err := SegmentCell(img); err != nil {
			b.Fatal(err)
		}
	}
}
