package vision

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"image"
	"image/color"
	"image/jpeg"
	"image/png"
	"io"
	"io/fs"
	"os"
	"strings"

	"gocv.io/x/gocv"
	"golang.org/x/image/bmp"
	"golang.org/x/image/tiff"
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

// pixelLimit is MaxPixels, lowered only by the fuzz test: a fuzzer finds
// headers that claim the full 64 MP and spends seconds decoding each one.
var pixelLimit = MaxPixels

// ErrBadImage is wrapped by every error about an unusable image file.
var ErrBadImage = errors.New("not a usable image")

// ErrUnsupportedImage is wrapped (with ErrBadImage) by the error for a
// well-formed file in a variant of its format this package does not read
// (a TIFF compression, a BMP encoding): the file is not damaged, and the
// person is told to save it another way rather than that it is broken.
var ErrUnsupportedImage = errors.New("image variant not supported")

// isUnsupported tells a decoder's "valid but not a variant I read" from
// damage. x/image/bmp says ErrUnsupported also for a header whose pixel
// data would start past the end of the file; that is damage.
func isUnsupported(err error, data []byte) bool {
	var te tiff.UnsupportedError
	var pe png.UnsupportedError
	var je jpeg.UnsupportedError
	if errors.Is(err, bmp.ErrUnsupported) {
		return len(data) >= 14 && int64(binary.LittleEndian.Uint32(data[10:14])) < int64(len(data))
	}
	return errors.As(err, &te) || errors.As(err, &pe) || errors.As(err, &je)
}

func unsupportedError(format string, err error) error {
	return fmt.Errorf("%s file uses a variant this appliance does not read (%v); it is not damaged: save it as PNG or JPEG: %w (%w)",
		format, err, ErrUnsupportedImage, ErrBadImage)
}

// LoadImage reads an image file into an 8-bit, 3-channel BGR Mat.
// Grayscale images are expanded to three channels, 16-bit images are scaled
// to 8 bits and an alpha channel is dropped. Empty, truncated, non-image,
// tiny or huge files give an error naming the file, never a crash.
func LoadImage(path string) (gocv.Mat, error) {
	data, err := readImageFile(path)
	if err != nil {
		return gocv.Mat{}, err
	}
	m, err := DecodeImage(data)
	if err != nil {
		return gocv.Mat{}, fmt.Errorf("%s: %w", path, err)
	}
	return m, nil
}

// ImageSize returns an image file's width and height as its header states
// them (PNG, JPEG, BMP or TIFF), without decoding its pixels. The file is
// read with LoadImage's checks, so it fails as LoadImage would.
func ImageSize(path string) (w, h int, err error) {
	data, err := readImageFile(path)
	if err != nil {
		return 0, 0, err
	}
	cfg, _, err := decodeConfig(data)
	if err != nil {
		return 0, 0, fmt.Errorf("%s: header: %v: %w", path, err, ErrBadImage)
	}
	return cfg.Width, cfg.Height, nil
}

// readImageFile reads a file that should hold an image, with an error
// naming the file for a missing or unreadable one, a directory, a device
// and anything over MaxFileBytes.
func readImageFile(path string) ([]byte, error) {
	st, err := os.Stat(path)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		return nil, fmt.Errorf("%s: no such file", path)
	case errors.Is(err, fs.ErrPermission):
		return nil, fmt.Errorf("%s: permission denied", path)
	case err != nil:
		return nil, fmt.Errorf("%s: %w", path, err)
	case st.IsDir():
		return nil, fmt.Errorf("%s: is a directory, not an image file: %w", path, ErrBadImage)
	case !st.Mode().IsRegular():
		return nil, fmt.Errorf("%s: not a regular file: %w", path, ErrBadImage)
	case st.Size() > MaxFileBytes:
		return nil, fmt.Errorf("%s: file is %d bytes, more than the %d accepted: %w", path, st.Size(), MaxFileBytes, ErrBadImage)
	}
	f, err := os.Open(path)
	if err != nil {
		if errors.Is(err, fs.ErrPermission) {
			return nil, fmt.Errorf("%s: permission denied", path)
		}
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	defer f.Close()
	data, err := io.ReadAll(io.LimitReader(f, MaxFileBytes+1))
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	if len(data) > MaxFileBytes { // grew since the stat
		return nil, fmt.Errorf("%s: file is larger than %d bytes: %w", path, MaxFileBytes, ErrBadImage)
	}
	return data, nil
}

// DecodeImage decodes an encoded PNG, JPEG, BMP or TIFF image into an 8-bit
// BGR Mat, with the same checks as LoadImage.
//
// JPEG and PNG go to OpenCV (libjpeg-turbo and libpng: fast, and they report
// damage instead of crashing); BMP and TIFF are decoded by Go's own
// memory-safe decoders, because OpenCV's are rarely exercised and libtiff
// accepts far more layouts than a microscope ever writes. The EXIF
// orientation of a JPEG is ignored: a field has no up, and the pixel grid
// must match the header the size checks read.
func DecodeImage(data []byte) (gocv.Mat, error) {
	if len(data) == 0 {
		return gocv.Mat{}, fmt.Errorf("empty file: %w", ErrBadImage)
	}
	if len(data) > MaxFileBytes {
		return gocv.Mat{}, fmt.Errorf("file is larger than %d bytes: %w", MaxFileBytes, ErrBadImage)
	}
	cfg, format, err := decodeConfig(data)
	if err != nil {
		if f := sniffFormat(data); f != "" && isUnsupported(err, data) {
			return gocv.Mat{}, unsupportedError(f, err)
		} else if f != "" {
			return gocv.Mat{}, fmt.Errorf("%s file is truncated or damaged: its header cannot be read (%v): %w", f, err, ErrBadImage)
		}
		return gocv.Mat{}, fmt.Errorf("not a PNG, JPEG, BMP or TIFF image (%v): %w", err, ErrBadImage)
	}
	if err := checkSize(cfg.Width, cfg.Height); err != nil {
		return gocv.Mat{}, err
	}
	if err := checkComplete(format, data); err != nil {
		return gocv.Mat{}, err
	}
	var m gocv.Mat
	switch format {
	case "jpeg", "png":
		m, err = gocv.IMDecode(data, gocv.IMReadColor|gocv.IMReadIgnoreOrientation)
		if err != nil {
			return gocv.Mat{}, fmt.Errorf("decode %s: %v: %w", format, err, ErrBadImage)
		}
	default:
		m, err = decodeInGo(format, data)
		if err != nil {
			return gocv.Mat{}, err
		}
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

// decodeConfig reads only the header, and only of the four formats this
// package decodes. It calls each format's own DecodeConfig on a
// bytes.Reader: image.DecodeConfig would wrap the data in a bufio.Reader,
// and x/image/tiff, given a reader without ReadAt, buffers up to whatever
// offset the file claims: a 9-byte TIFF pointing 4 GB ahead made it
// allocate 4 GB (found by FuzzDecodeImage).
func decodeConfig(data []byte) (cfg image.Config, format string, err error) {
	defer func() {
		if p := recover(); p != nil { // a decoder bug must not take the appliance down
			cfg, format, err = image.Config{}, "", fmt.Errorf("header decoder failed: %v", p)
		}
	}()
	r := bytes.NewReader(data)
	switch sniffFormat(data) {
	case "PNG":
		cfg, err = png.DecodeConfig(r)
		return cfg, "png", err
	case "JPEG":
		cfg, err = jpeg.DecodeConfig(r)
		return cfg, "jpeg", err
	case "TIFF":
		cfg, err = tiff.DecodeConfig(r)
		return cfg, "tiff", err
	case "BMP":
		cfg, err = bmp.DecodeConfig(r)
		return cfg, "bmp", err
	}
	return image.Config{}, "", errors.New("unknown format")
}

// sniffFormat names the format its magic bytes claim, for error messages
// about files that start right but cannot be read.
func sniffFormat(data []byte) string {
	switch {
	case bytes.HasPrefix(data, []byte("\x89PNG\r\n\x1a\n")):
		return "PNG"
	case bytes.HasPrefix(data, []byte{0xFF, 0xD8, 0xFF}):
		return "JPEG"
	case bytes.HasPrefix(data, []byte("II*\x00")), bytes.HasPrefix(data, []byte("MM\x00*")):
		return "TIFF"
	case bytes.HasPrefix(data, []byte("BM")):
		return "BMP"
	}
	return ""
}

// decodeInGo decodes BMP and TIFF with Go's decoders and converts to BGR.
func decodeInGo(format string, data []byte) (m gocv.Mat, err error) {
	defer func() {
		if p := recover(); p != nil {
			m, err = gocv.Mat{}, fmt.Errorf("%s image is damaged and could not be decoded (%v): %w", format, p, ErrBadImage)
		}
	}()
	var img image.Image
	switch format {
	case "bmp":
		img, err = bmp.Decode(bytes.NewReader(data))
	case "tiff":
		img, err = tiff.Decode(bytes.NewReader(data))
	default:
		return gocv.Mat{}, fmt.Errorf("%s images are not accepted: %w", format, ErrBadImage)
	}
	if isUnsupported(err, data) {
		return gocv.Mat{}, unsupportedError(strings.ToUpper(format), err)
	}
	if err != nil {
		return gocv.Mat{}, fmt.Errorf("%s image is damaged and could not be decoded (%v): %w", format, err, ErrBadImage)
	}
	b := img.Bounds()
	if err := checkSize(b.Dx(), b.Dy()); err != nil {
		return gocv.Mat{}, err
	}
	return NewMatCopy(b.Dy(), b.Dx(), gocv.MatTypeCV8UC3, imageBGR(img))
}

// imageBGR returns the pixels of img as 8-bit BGR, row-major. 16-bit
// samples keep their high byte; alpha is dropped without compositing, as
// OpenCV's IMReadColor does.
func imageBGR(img image.Image) []byte {
	b := img.Bounds()
	out := make([]byte, 0, 3*b.Dx()*b.Dy())
	switch im := img.(type) {
	case *image.NRGBA:
		for y := b.Min.Y; y < b.Max.Y; y++ {
			row := im.Pix[im.PixOffset(b.Min.X, y):]
			for x := 0; x < b.Dx(); x++ {
				out = append(out, row[4*x+2], row[4*x+1], row[4*x])
			}
		}
	case *image.RGBA:
		for y := b.Min.Y; y < b.Max.Y; y++ {
			row := im.Pix[im.PixOffset(b.Min.X, y):]
			for x := 0; x < b.Dx(); x++ {
				out = append(out, row[4*x+2], row[4*x+1], row[4*x])
			}
		}
	case *image.Gray:
		for y := b.Min.Y; y < b.Max.Y; y++ {
			row := im.Pix[im.PixOffset(b.Min.X, y):]
			for x := 0; x < b.Dx(); x++ {
				out = append(out, row[x], row[x], row[x])
			}
		}
	default:
		for y := b.Min.Y; y < b.Max.Y; y++ {
			for x := b.Min.X; x < b.Max.X; x++ {
				c := color.NRGBA64Model.Convert(img.At(x, y)).(color.NRGBA64)
				out = append(out, byte(c.B>>8), byte(c.G>>8), byte(c.R>>8))
			}
		}
	}
	return out
}

func checkSize(w, h int) error {
	switch {
	case w < MinSide || h < MinSide:
		return fmt.Errorf("image is %dx%d, smaller than the %dx%d accepted: %w", w, h, MinSide, MinSide, ErrBadImage)
	case w > MaxSide || h > MaxSide || int64(w)*int64(h) > int64(pixelLimit):
		return fmt.Errorf("image is %dx%d, larger than the %d megapixels (or %d pixels a side) accepted: %w", w, h, pixelLimit>>20, MaxSide, ErrBadImage)
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
		// thumbnail's own markers come before the main scan). A progressive
		// JPEG has several scans; the last one decides.
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
