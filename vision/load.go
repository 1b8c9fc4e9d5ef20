package vision

import (
	"bytes"
	"errors"
	"fmt"
	"image"
	_ "image/jpeg" // register decoders for DecodeConfig (header only)
	_ "image/png"
	"io"
	"os"

	"gocv.io/x/gocv"
	_ "golang.org/x/image/bmp"
	_ "golang.org/x/image/tiff"
)

// Limits on images accepted from outside. They are checked from the file
// header, before any pixel is decoded.
const (
	// MaxPixels is the largest image accepted: 64 megapixels, well above the
	// 5 MP of a microscope camera, far below what would exhaust a Pi's memory.
	MaxPixels = 64 << 20
	// MaxSide is the longest side accepted.
	MaxSide = 16384
	// MinSide is the shortest side accepted: below it there is no cell to see.
	MinSide = 16
	// MaxFileBytes is the largest file read.
	MaxFileBytes = 256 << 20
)

// ErrBadImage is wrapped by every error about an unusable image file.
var ErrBadImage = errors.New("not a usable image")

// LoadImage reads an image file into an 8-bit, 3-channel BGR Mat.
// Grayscale images are expanded to three channels, 16-bit images are scaled
// to 8 bits and an alpha channel is dropped. Empty, truncated, non-image,
// tiny or huge files give an error naming the file, never a crash.
func LoadImage(path string) (gocv.Mat, error) {
	st, err := os.Stat(path)
	if err != nil {
		return gocv.Mat{}, fmt.Errorf("%s: %w", path, err)
	}
	if st.IsDir() {
		return gocv.Mat{}, fmt.Errorf("%s: is a directory: %w", path, ErrBadImage)
	}
	if !st.Mode().IsRegular() {
		return gocv.Mat{}, fmt.Errorf("%s: not a regular file: %w", path, ErrBadImage)
	}
	if st.Size() > MaxFileBytes {
		return gocv.Mat{}, fmt.Errorf("%s: file is %d bytes, more than the %d accepted: %w", path, st.Size(), MaxFileBytes, ErrBadImage)
	}
	f, err := os.Open(path)
	if err != nil {
		return gocv.Mat{}, fmt.Errorf("%s: %w", path, err)
	}
	defer f.Close()
	data, err := io.ReadAll(io.LimitReader(f, MaxFileBytes+1))
	if err != nil {
		return gocv.Mat{}, fmt.Errorf("%s: %w", path, err)
	}
	m, err := DecodeImage(data)
	if err != nil {
		return gocv.Mat{}, fmt.Errorf("%s: %w", path, err)
	}
	return m, nil
}

// DecodeImage decodes an encoded PNG, JPEG, BMP or TIFF image into an 8-bit
// BGR Mat, with the same checks as LoadImage.
func DecodeImage(data []byte) (gocv.Mat, error) {
	if len(data) == 0 {
		return gocv.Mat{}, fmt.Errorf("empty file: %w", ErrBadImage)
	}
	if len(data) > MaxFileBytes {
		return gocv.Mat{}, fmt.Errorf("file is larger than %d bytes: %w", MaxFileBytes, ErrBadImage)
	}
	cfg, format, err := image.DecodeConfig(bytes.NewReader(data))
	if err != nil {
		return gocv.Mat{}, fmt.Errorf("not a PNG, JPEG, BMP or TIFF image (%v): %w", err, ErrBadImage)
	}
	if err := checkSize(cfg.Width, cfg.Height); err != nil {
		return gocv.Mat{}, err
	}
	if err := checkComplete(format, data); err != nil {
		return gocv.Mat{}, err
	}
	m, err := gocv.IMDecode(data, gocv.IMReadColor)
	if err != nil {
		return gocv.Mat{}, fmt.Errorf("decode %s: %v: %w", format, err, ErrBadImage)
	}
	if m.Empty() {
		m.Close()
		return gocv.Mat{}, fmt.Errorf("%s image is damaged and could not be decoded: %w", format, ErrBadImage)
	}
	if m.Cols() != cfg.Width || m.Rows() != cfg.Height || m.Type() != gocv.MatTypeCV8UC3 {
		got := fmt.Sprintf("%dx%d type %d", m.Cols(), m.Rows(), m.Type())
		m.Close()
		return gocv.Mat{}, fmt.Errorf("%s header says %dx%d but decoder gave %s: %w", format, cfg.Width, cfg.Height, got, ErrBadImage)
	}
	return m, nil
}

func checkSize(w, h int) error {
	switch {
	case w < MinSide || h < MinSide:
		return fmt.Errorf("image is %dx%d, smaller than the %dx%d accepted: %w", w, h, MinSide, MinSide, ErrBadImage)
	case w > MaxSide || h > MaxSide || int64(w)*int64(h) > MaxPixels:
		return fmt.Errorf("image is %dx%d, larger than the %d megapixels (or %d pixels a side) accepted: %w", w, h, MaxPixels>>20, MaxSide, ErrBadImage)
	}
	return nil
}

// checkComplete rejects files cut short, which decoders would otherwise
// return half grey (JPEG) or silently fail on.
func checkComplete(format string, data []byte) error {
	switch format {
	case "jpeg":
		// Entropy-coded data byte-stuffs 0xFF, so 0xFFD9 after the last
		// start-of-scan can only be the real end-of-image marker (an EXIF
		// thumbnail's own markers come before the main scan).
		sos := bytes.LastIndex(data, []byte{0xFF, 0xDA})
		if sos < 0 || bytes.LastIndex(data, []byte{0xFF, 0xD9}) < sos {
			return fmt.Errorf("JPEG file is truncated (no end-of-image marker): %w", ErrBadImage)
		}
	case "png":
		tail := data[max(0, len(data)-64):]
		if !bytes.Contains(tail, []byte("IEND")) {
			return fmt.Errorf("PNG file is truncated (no IEND chunk): %w", ErrBadImage)
		}
	}
	return nil
}
