package vision

import (
	"bytes"
	"encoding/binary"
	"errors"
	"hash/crc32"
	"image"
	"image/color"
	"image/jpeg"
	"image/png"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"golang.org/x/image/bmp"
	"golang.org/x/image/tiff"
)

// testPattern is a small image whose every pixel differs, so a decoder that
// swaps channels, drops rows or rotates shows up in a pixel comparison.
func testPattern(w, h int) *image.NRGBA {
	img := image.NewNRGBA(image.Rect(0, 0, w, h))
	for y := range h {
		for x := range w {
			img.SetNRGBA(x, y, color.NRGBA{R: uint8(8 * x), G: uint8(8 * y), B: uint8(255 - 4*x - 4*y), A: 255})
		}
	}
	return img
}

func encodePNG(t testing.TB, img image.Image) []byte {
	t.Helper()
	var b bytes.Buffer
	if err := png.Encode(&b, img); err != nil {
		t.Fatal(err)
	}
	return b.Bytes()
}

func encodeJPEG(t testing.TB, img image.Image) []byte {
	t.Helper()
	var b bytes.Buffer
	if err := jpeg.Encode(&b, img, &jpeg.Options{Quality: 95}); err != nil {
		t.Fatal(err)
	}
	return b.Bytes()
}

func encodeTIFF(t testing.TB, img image.Image) []byte {
	t.Helper()
	var b bytes.Buffer
	if err := tiff.Encode(&b, img, nil); err != nil {
		t.Fatal(err)
	}
	return b.Bytes()
}

func encodeBMP(t testing.TB, img image.Image) []byte {
	t.Helper()
	var b bytes.Buffer
	if err := bmp.Encode(&b, img); err != nil {
		t.Fatal(err)
	}
	return b.Bytes()
}

// pngHeaderOnly is a PNG whose IHDR claims w x h but which holds no pixel
// data: only a decoder that reads the header first can refuse it cheaply.
func pngHeaderOnly(w, h uint32) []byte {
	var b bytes.Buffer
	b.WriteString("\x89PNG\r\n\x1a\n")
	chunk := func(typ string, data []byte) {
		binary.Write(&b, binary.BigEndian, uint32(len(data)))
		b.WriteString(typ)
		b.Write(data)
		c := crc32.NewIEEE()
		c.Write([]byte(typ))
		c.Write(data)
		binary.Write(&b, binary.BigEndian, c.Sum32())
	}
	ihdr := make([]byte, 13)
	binary.BigEndian.PutUint32(ihdr[0:], w)
	binary.BigEndian.PutUint32(ihdr[4:], h)
	ihdr[8], ihdr[9] = 8, 2 // 8-bit RGB
	chunk("IHDR", ihdr)
	chunk("IDAT", []byte{0x78, 0x9c, 0x03, 0x00, 0x00, 0x00, 0x00, 0x01})
	chunk("IEND", nil)
	return b.Bytes()
}

// withEXIFOrientation inserts an APP1 EXIF segment with the given
// orientation tag after the JPEG's SOI marker.
func withEXIFOrientation(j []byte, orientation uint16) []byte {
	var tiffHdr bytes.Buffer
	tiffHdr.WriteString("MM\x00*")
	binary.Write(&tiffHdr, binary.BigEndian, uint32(8))
	binary.Write(&tiffHdr, binary.BigEndian, uint16(1))      // one entry
	binary.Write(&tiffHdr, binary.BigEndian, uint16(0x0112)) // Orientation
	binary.Write(&tiffHdr, binary.BigEndian, uint16(3))      // SHORT
	binary.Write(&tiffHdr, binary.BigEndian, uint32(1))
	binary.Write(&tiffHdr, binary.BigEndian, orientation)
	binary.Write(&tiffHdr, binary.BigEndian, uint16(0))
	binary.Write(&tiffHdr, binary.BigEndian, uint32(0)) // no next IFD
	payload := append([]byte("Exif\x00\x00"), tiffHdr.Bytes()...)
	var out bytes.Buffer
	out.Write(j[:2])
	out.Write([]byte{0xFF, 0xE1})
	binary.Write(&out, binary.BigEndian, uint16(len(payload)+2))
	out.Write(payload)
	out.Write(j[2:])
	return out.Bytes()
}

func TestDecodeImageFormats(t *testing.T) {
	pat := testPattern(32, 24)
	gray := image.NewGray(pat.Bounds())
	gray16 := image.NewGray16(pat.Bounds())
	rgba64 := image.NewRGBA64(pat.Bounds())
	pal := image.NewPaletted(pat.Bounds(), color.Palette{color.Black, color.White, color.RGBA{R: 200, G: 10, B: 90, A: 255}})
	alpha := image.NewNRGBA(pat.Bounds())
	for y := range 24 {
		for x := range 32 {
			c := pat.NRGBAAt(x, y)
			gray.SetGray(x, y, color.Gray{Y: c.G})
			gray16.SetGray16(x, y, color.Gray16{Y: uint16(c.G)<<8 | 0x7F})
			rgba64.SetRGBA64(x, y, color.RGBA64{R: uint16(c.R) << 8, G: uint16(c.G) << 8, B: uint16(c.B) << 8, A: 0xFFFF})
			pal.SetColorIndex(x, y, uint8((x+y)%3))
			c.A = 40 // nearly transparent: alpha must be dropped, not composited
			alpha.SetNRGBA(x, y, c)
		}
	}
	// want(x, y) is the BGR pixel expected at (x, y).
	patBGR := func(x, y int) [3]uint8 { c := pat.NRGBAAt(x, y); return [3]uint8{c.B, c.G, c.R} }
	grayBGR := func(x, y int) [3]uint8 { g := pat.NRGBAAt(x, y).G; return [3]uint8{g, g, g} }
	palBGR := func(x, y int) [3]uint8 {
		r, g, b, _ := pal.Palette[(x+y)%3].RGBA()
		return [3]uint8{uint8(b >> 8), uint8(g >> 8), uint8(r >> 8)}
	}
	cases := []struct {
		name  string
		data  []byte
		want  func(x, y int) [3]uint8
		exact bool // lossless: compare every pixel exactly
	}{
		{"png rgb", encodePNG(t, pat), patBGR, true},
		{"png gray", encodePNG(t, gray), grayBGR, true},
		{"png 16-bit gray", encodePNG(t, gray16), grayBGR, true},
		{"png 16-bit rgb", encodePNG(t, rgba64), patBGR, true},
		{"png palette", encodePNG(t, pal), palBGR, true},
		{"png alpha", encodePNG(t, alpha), patBGR, true},
		{"tiff rgb", encodeTIFF(t, pat), patBGR, true},
		{"tiff 16-bit gray", encodeTIFF(t, gray16), grayBGR, true},
		{"tiff alpha", encodeTIFF(t, alpha), patBGR, true},
		{"bmp", encodeBMP(t, pat), patBGR, true},
		{"bmp gray", encodeBMP(t, gray), grayBGR, true},
		{"jpeg", encodeJPEG(t, pat), patBGR, false},
		{"jpeg gray", encodeJPEG(t, gray), grayBGR, false},
		{"jpeg exif rotated", withEXIFOrientation(encodeJPEG(t, pat), 6), patBGR, false},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			m, err := DecodeImage(c.data)
			if err != nil {
				t.Fatalf("DecodeImage: %v", err)
			}
			defer m.Close()
			if m.Cols() != 32 || m.Rows() != 24 || m.Channels() != 3 {
				t.Fatalf("got %dx%d with %d channels, want 32x24 BGR", m.Cols(), m.Rows(), m.Channels())
			}
			pix := m.ToBytes()
			worst := 0
			for y := range 24 {
				for x := range 32 {
					w := c.want(x, y)
					for ch := range 3 {
						d := int(pix[3*(32*y+x)+ch]) - int(w[ch])
						worst = max(worst, d, -d)
					}
				}
			}
			limit := 0
			if !c.exact {
				limit = 40 // JPEG chroma subsampling on a steep synthetic gradient
			}
			if worst > limit {
				t.Errorf("largest channel error %d, want <= %d", worst, limit)
			}
		})
	}
}

func TestDecodeImageRefuses(t *testing.T) {
	pat := testPattern(32, 24)
	pngData := encodePNG(t, pat)
	jpegData := encodeJPEG(t, pat)
	tiffData := encodeTIFF(t, pat)
	bmpData := encodeBMP(t, pat)
	// Valid files in variants the decoders do not read: a TIFF whose
	// Compression tag (259) says JPEG (7), a BMP whose compression field
	// says RLE8 (1).
	oddTIFF := bytes.Clone(tiffData)
	if i := bytes.Index(oddTIFF, []byte{0x03, 0x01, 0x03, 0x00, 0x01, 0x00, 0x00, 0x00}); i < 0 {
		t.Fatal("no Compression tag in the encoded TIFF")
	} else {
		binary.LittleEndian.PutUint16(oddTIFF[i+8:], 7)
	}
	oddBMP := bytes.Clone(bmpData)
	binary.LittleEndian.PutUint32(oddBMP[30:], 1)
	bogusBMP := bytes.Clone(bmpData)
	binary.LittleEndian.PutUint32(bogusBMP[10:], 1<<30) // pixel data offset far past the end
	cases := []struct {
		name string
		data []byte
		msg  string // part of the error a person reads
	}{
		{"empty", nil, "empty file"},
		{"text", []byte("this is not an image, just some words in a file\n"), "not a PNG, JPEG, BMP or TIFF"},
		{"png truncated", pngData[:len(pngData)/2], "truncated"},
		{"png header only", pngData[:40], "truncated"},
		{"jpeg truncated", jpegData[:len(jpegData)*2/3], "truncated"},
		{"jpeg header only", jpegData[:200], "truncated"},
		{"tiff truncated", tiffData[:len(tiffData)/2], "truncated or damaged"},
		{"bmp truncated", bmpData[:len(bmpData)/2], "damaged"},
		{"bmp bogus offset", bogusBMP, "bmp"},
		{"tiff jpeg-compressed", oddTIFF, "TIFF file uses a variant this appliance does not read"},
		{"bmp rle8", oddBMP, "BMP file uses a variant this appliance does not read"},
		{"1x1", encodePNG(t, image.NewNRGBA(image.Rect(0, 0, 1, 1))), "smaller than"},
		{"40000x40000", pngHeaderOnly(40000, 40000), "larger than"},
		{"20000x10", pngHeaderOnly(20000, 20), "larger than"},
		{"gif", []byte("GIF89a\x20\x00\x18\x00\x00\x00\x00;"), "not a PNG, JPEG, BMP or TIFF"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			m, err := DecodeImage(c.data)
			if err == nil {
				m.Close()
				t.Fatal("accepted a bad image")
			}
			if !errors.Is(err, ErrBadImage) {
				t.Errorf("error %q does not wrap ErrBadImage", err)
			}
			if odd := strings.Contains(c.msg, "variant"); errors.Is(err, ErrUnsupportedImage) != odd {
				t.Errorf("error %q: wraps ErrUnsupportedImage %v, want %v", err, !odd, odd)
			}
			if !strings.Contains(strings.ToLower(err.Error()), strings.ToLower(c.msg)) {
				t.Errorf("error %q does not say %q", err, c.msg)
			}
		})
	}
}

func TestLoadImagePaths(t *testing.T) {
	dir := t.TempDir()
	good := filepath.Join(dir, "good.png")
	if err := os.WriteFile(good, encodePNG(t, testPattern(32, 24)), 0o644); err != nil {
		t.Fatal(err)
	}
	empty := filepath.Join(dir, "empty.jpg")
	if err := os.WriteFile(empty, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	m, err := LoadImage(good)
	if err != nil {
		t.Fatalf("good file: %v", err)
	}
	m.Close()
	for _, c := range []struct{ path, msg string }{
		{filepath.Join(dir, "missing.png"), "no such file"},
		{dir, "is a directory"},
		{empty, "empty file"},
	} {
		m, err := LoadImage(c.path)
		if err == nil {
			m.Close()
			t.Errorf("%s: accepted", c.path)
			continue
		}
		if !strings.HasPrefix(err.Error(), c.path+":") || !strings.Contains(err.Error(), c.msg) {
			t.Errorf("%s: error %q should name the file and say %q", c.path, err, c.msg)
		}
	}
}

// ImageSize reads the size from the header of each format LoadImage takes,
// and refuses what is not an image or is cut before its header ends.
func TestImageSize(t *testing.T) {
	dir := t.TempDir()
	img := testPattern(32, 24)
	files := map[string][]byte{"a.png": encodePNG(t, img), "a.jpg": encodeJPEG(t, img)}
	for name, data := range files {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, data, 0o644); err != nil {
			t.Fatal(err)
		}
		if w, h, err := ImageSize(p); err != nil || w != 32 || h != 24 {
			t.Errorf("%s: %dx%d, %v; want 32x24", name, w, h, err)
		}
		cut := filepath.Join(dir, "cut-"+name)
		if err := os.WriteFile(cut, data[:10], 0o644); err != nil {
			t.Fatal(err)
		}
		if _, _, err := ImageSize(cut); !errors.Is(err, ErrBadImage) {
			t.Errorf("%s cut to 10 bytes: %v, want ErrBadImage", name, err)
		}
	}
	text := filepath.Join(dir, "notes.txt")
	if err := os.WriteFile(text, []byte("not an image"), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, _, err := ImageSize(text); !errors.Is(err, ErrBadImage) {
		t.Errorf("a text file: %v, want ErrBadImage", err)
	}
	if _, _, err := ImageSize(filepath.Join(dir, "missing.png")); err == nil {
		t.Error("a missing file: no error")
	}
}
