package screening

import (
	"bytes"
	"image"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"allscreen/internal/realdata"
	"allscreen/vision"

	"gocv.io/x/gocv"
)

// TestEncodeCropLossless: a stored crop decodes to the pixels it was
// encoded from.
func TestEncodeCropLossless(t *testing.T) {
	field := synthField(640, 480, 3, 2)
	defer field.Close()
	for _, side := range []int{40, CropStoreSide} {
		crop := field.Region(image.Rect(320-side/2, 240-side/2, 320-side/2+side, 240-side/2+side))
		png, err := encodeCrop(crop)
		if err != nil {
			crop.Close()
			t.Fatal(err)
		}
		back, err := gocv.IMDecode(png, gocv.IMReadUnchanged)
		if err != nil {
			crop.Close()
			t.Fatal(err)
		}
		want := crop.Clone()
		if !bytes.Equal(back.ToBytes(), want.ToBytes()) || back.Cols() != side || back.Rows() != side {
			t.Errorf("%dx%d crop: decoded %dx%d, pixels differ", side, side, back.Cols(), back.Rows())
		}
		back.Close()
		want.Close()
		crop.Close()
	}
}

// BenchmarkEncodeCrop: storing real white-cell crops (the first 16
// ALL-IDB2 images, 257x257, stored at CropStoreSide); ns/op is per crop.
// Drawn crops would mislead: their flat colours compress unlike stained
// cells.
func BenchmarkEncodeCrop(b *testing.B) {
	dir := filepath.Join(realdata.Dir(b, "allidb2"), "images")
	entries, err := os.ReadDir(dir)
	if err != nil {
		b.Fatal(err)
	}
	var crops []gocv.Mat
	defer func() {
		for _, c := range crops {
			c.Close()
		}
	}()
	for _, e := range entries {
		if len(crops) == 16 {
			break
		}
		if strings.HasSuffix(e.Name(), ".png") {
			m, err := vision.LoadImage(filepath.Join(dir, e.Name()))
			if err != nil {
				b.Fatal(err)
			}
			crops = append(crops, m)
		}
	}
	total, n := 0, 0
	for b.Loop() {
		png, err := encodeCrop(crops[n%len(crops)])
		if err != nil {
			b.Fatal(err)
		}
		total += len(png)
		n++
	}
	b.ReportMetric(float64(total)/float64(n), "bytes/crop")
}
