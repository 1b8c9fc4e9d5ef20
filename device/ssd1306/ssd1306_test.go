package ssd1306

import (
	"bytes"
	"errors"
	"image"
	"image/color"
	"strings"
	"testing"

	"periph.io/x/conn/v3/i2c/i2ctest"
)

// goldenInit is the power-up sequence written out from the SSD1306
// datasheet's recommended set-up, behind the I2C command control byte 0x00.
var goldenInit = []byte{0x00,
	0xAE, 0xD5, 0x80, 0xA8, 0x3F, 0xD3, 0x00, 0x40, 0x8D, 0x14, 0x20, 0x00,
	0xA1, 0xC8, 0xDA, 0x12, 0x81, 0xCF, 0xD9, 0xF1, 0xDB, 0x40, 0xA4, 0xA6, 0xAF}

func TestGoldenInitAndBlankFrame(t *testing.T) {
	bus := &i2ctest.Playback{DontPanic: true, Ops: []i2ctest.IO{
		{Addr: 0x3C, W: goldenInit},
		{Addr: 0x3C, W: []byte{0x00, 0x21, 0x00, 0x7F, 0x22, 0x00, 0x07}},
		{Addr: 0x3C, W: append([]byte{0x40}, make([]byte, 1024)...)},
	}}
	d, err := New(bus, 0x3C)
	if err != nil {
		t.Fatal(err)
	}
	if err := d.Show(nil); err != nil {
		t.Fatal(err)
	}
	if err := bus.Close(); err != nil {
		t.Fatal(err)
	}
}

// TestPackBitOrder pins the RAM layout with hand-computed bytes: a pixel at
// (3, 10) is page 1, column 3, bit 2; one at (127, 63) is the last byte's
// top bit.
func TestPackBitOrder(t *testing.T) {
	img := image.NewGray(image.Rect(0, 0, Width, Height))
	img.SetGray(3, 10, color.Gray{Y: 255})
	img.SetGray(127, 63, color.Gray{Y: 255})
	buf := Pack(img)
	want := make([]byte, 1024)
	want[128+3] = 0x04
	want[1023] = 0x80
	if !bytes.Equal(buf, want) {
		t.Fatal("packed bytes differ from the datasheet's layout")
	}
	if !bytes.Equal(Pack(Unpack(buf)), buf) {
		t.Fatal("Unpack is not Pack's inverse")
	}
}

// TestShowDrawsText records the frame on the wire and checks the text is
// drawn in its row and nothing spills outside the rows used.
func TestShowDrawsText(t *testing.T) {
	rec := &i2ctest.Record{}
	d, err := New(rec, 0x3C)
	if err != nil {
		t.Fatal(err)
	}
	if err := d.Show([]string{"READY", "Sample K7M2"}); err != nil {
		t.Fatal(err)
	}
	last := rec.Ops[len(rec.Ops)-1].W
	if last[0] != 0x40 || len(last) != 1025 {
		t.Fatalf("frame write: control %#x, %d bytes", last[0], len(last))
	}
	img := Unpack(last[1:])
	lit := func(y0, y1 int) int {
		n := 0
		for y := y0; y < y1; y++ {
			for x := 0; x < Width; x++ {
				if img.GrayAt(x, y).Y > 0 {
					n++
				}
			}
		}
		return n
	}
	if lit(0, 16) == 0 || lit(16, 32) == 0 {
		t.Error("rows 1 and 2 should have text")
	}
	if n := lit(32, 64); n != 0 {
		t.Errorf("rows 3-4 should be dark, %d pixels lit", n)
	}
	// "READY" is 5 characters of 7 pixels: nothing right of x=35 in row 1.
	for y := 0; y < 16; y++ {
		for x := 35; x < Width; x++ {
			if img.GrayAt(x, y).Y > 0 {
				t.Fatalf("pixel lit at (%d,%d), right of READY", x, y)
			}
		}
	}
}

type failBus struct{ i2ctest.Record }

func (f *failBus) Tx(addr uint16, w, r []byte) error { return errors.New("i2c: NACK") }

func TestNACKNamesTheDisplay(t *testing.T) {
	_, err := New(&failBus{}, 0x3C)
	if err == nil || !strings.Contains(err.Error(), "OLED at 0x3c") {
		t.Fatalf("err = %v", err)
	}
}

func TestReinitAfterFailure(t *testing.T) {
	rec := &i2ctest.Record{}
	d, err := New(rec, 0x3C)
	if err != nil {
		t.Fatal(err)
	}
	d.dev.Bus = &failBus{}
	if err := d.Show([]string{"x"}); err == nil {
		t.Fatal("want an error from a NACKing bus")
	}
	rec2 := &i2ctest.Record{}
	d.dev.Bus = rec2
	if err := d.Show([]string{"x"}); err != nil {
		t.Fatal(err)
	}
	if len(rec2.Ops) != 3 || !bytes.Equal(rec2.Ops[0].W, goldenInit) {
		t.Fatalf("after a failure Show must initialise first; got %d writes", len(rec2.Ops))
	}
}
