package vision

import (
	"errors"
	"image"
	"image/color"
	"testing"

	"gocv.io/x/gocv"
)

// FuzzDecodeImage feeds arbitrary bytes to the image-loading path. Any
// OpenCV exception aborts the process, so this proves that whatever a file
// holds, DecodeImage returns an 8-bit BGR Mat within the size limits or an
// ErrBadImage, and never crashes. The seed corpus holds small generated
// images of every accepted format and variant (testdata/fuzz holds those Go
// cannot encode: CMYK and progressive JPEG, palette and grey-alpha PNG,
// 16-bit TIFF, broken BMP and TIFF, made with Python's PIL). `go test`
// runs the seeds; `go test -fuzz FuzzDecodeImage ./vision` explores.
func FuzzDecodeImage(f *testing.F) {
	pat := testPattern(20, 17)
	gray := image.NewGray16(pat.Bounds())
	for y := range 17 {
		for x := range 20 {
			gray.SetGray16(x, y, color.Gray16{Y: uint16(x*y) << 6})
		}
	}
	for _, seed := range [][]byte{
		encodePNG(f, pat),
		encodePNG(f, gray),
		encodeJPEG(f, pat),
		withEXIFOrientation(encodeJPEG(f, pat), 8),
		encodeTIFF(f, pat),
		encodeBMP(f, pat),
		pngHeaderOnly(40000, 40000),
		{},
	} {
		f.Add(seed)
	}
	// Decoding a header that claims 64 MP takes seconds; the size limit
	// itself is tested in TestDecodeImageRefuses. The fuzzer looks for
	// crashes in the parsers, which small images reach as well.
	defer func(old int) { pixelLimit = old }(pixelLimit)
	pixelLimit = 1 << 20
	f.Fuzz(func(t *testing.T, data []byte) {
		m, err := DecodeImage(data)
		if err != nil {
			if !errors.Is(err, ErrBadImage) {
				t.Fatalf("error %q does not wrap ErrBadImage", err)
			}
			return
		}
		defer m.Close()
		if m.Type() != gocv.MatTypeCV8UC3 || m.Cols() < MinSide || m.Rows() < MinSide ||
			m.Cols() > MaxSide || m.Rows() > MaxSide {
			t.Fatalf("accepted a %dx%d Mat of type %d", m.Cols(), m.Rows(), m.Type())
		}
	})
}
