// Package ssd1306 drives a 128x64 SSD1306 OLED over I2C as an 18x4 text
// display (the X11 7x13 fixed font on a 16-pixel line pitch). The driver is
// handed its I2C bus; it never opens hardware itself.
package ssd1306

import (
	"fmt"
	"image"
	"image/color"
	"sync"

	"allscreen/device"

	"golang.org/x/image/font"
	"golang.org/x/image/font/basicfont"
	"golang.org/x/image/math/fixed"
	"periph.io/x/conn/v3/i2c"
)

// DefaultAddr is the module's usual address (0x3D when its jumper is moved).
const DefaultAddr = 0x3C

const (
	Width, Height = 128, 64
	linePitch     = 16
	cols          = Width / 7 // basicfont.Face7x13 advances 7 pixels
	rows          = Height / linePitch
)

// I2C control bytes: what follows is commands, or display RAM.
const (
	ctrlCommand = 0x00
	ctrlData    = 0x40
)

// initCommands set a 128x64 panel up from any state (datasheet 8.9 and the
// application note's sequence), horizontal addressing so a whole frame is
// one write.
var initCommands = []byte{
	0xAE,       // display off
	0xD5, 0x80, // clock divide ratio / oscillator: reset value
	0xA8, 0x3F, // multiplex ratio: 64 rows
	0xD3, 0x00, // display offset 0
	0x40,       // start line 0
	0x8D, 0x14, // charge pump on (modules run from 3.3 V)
	0x20, 0x00, // horizontal addressing mode
	0xA1,       // segment remap: column 127 is SEG0 (module mounted upright)
	0xC8,       // COM scan from COM63 to COM0
	0xDA, 0x12, // COM pins: alternative configuration, for 64 rows
	0x81, 0xCF, // contrast
	0xD9, 0xF1, // pre-charge period for the internal charge pump
	0xDB, 0x40, // VCOMH deselect level
	0xA4, // show display RAM
	0xA6, // normal, not inverted
	0xAF, // display on
}

// frameWindow addresses the whole screen before a frame is written.
var frameWindow = []byte{0x21, 0, Width - 1, 0x22, 0, Height/8 - 1}

// Dev is an SSD1306 128x64 on I2C.
type Dev struct {
	mu  sync.Mutex
	dev i2c.Dev
	ok  bool
}

// New is handed the I2C bus and address, and initialises the panel.
func New(bus i2c.Bus, addr uint16) (*Dev, error) {
	d := &Dev{dev: i2c.Dev{Bus: bus, Addr: addr}}
	d.mu.Lock()
	defer d.mu.Unlock()
	return d, d.init()
}

func (d *Dev) init() error {
	if err := d.dev.Tx(append([]byte{ctrlCommand}, initCommands...), nil); err != nil {
		return fmt.Errorf("OLED at %#x: initialise: %w", d.dev.Addr, err)
	}
	d.ok = true
	return nil
}

// Size implements device.Display.
func (d *Dev) Size() (int, int) { return cols, rows }

// Show implements device.Display. After a failed write the next Show
// initialises the panel again (it may have lost power).
func (d *Dev) Show(lines []string) error {
	d.mu.Lock()
	defer d.mu.Unlock()
	if !d.ok {
		if err := d.init(); err != nil {
			return err
		}
	}
	frame := Pack(Render(device.Fit(lines, cols, rows)))
	if err := d.dev.Tx(append([]byte{ctrlCommand}, frameWindow...), nil); err != nil {
		d.ok = false
		return fmt.Errorf("OLED at %#x: address frame: %w", d.dev.Addr, err)
	}
	if err := d.dev.Tx(append([]byte{ctrlData}, frame...), nil); err != nil {
		d.ok = false
		return fmt.Errorf("OLED at %#x: write frame: %w", d.dev.Addr, err)
	}
	return nil
}

// Render draws text lines (already fitted) white on black.
func Render(lines []string) *image.Gray {
	img := image.NewGray(image.Rect(0, 0, Width, Height))
	dr := font.Drawer{Dst: img, Src: image.NewUniform(color.Gray{Y: 255}), Face: basicfont.Face7x13}
	for i, l := range lines {
		if i >= rows {
			break
		}
		// Baseline: ascent 11 within a 16-pixel row, centred.
		dr.Dot = fixed.P(0, i*linePitch+13)
		dr.DrawString(l)
	}
	return img
}

// Pack turns an image into the panel's RAM layout: 8 pages of 8 rows; in
// each page one byte per column, least significant bit at the top.
func Pack(img *image.Gray) []byte {
	buf := make([]byte, Width*Height/8)
	for y := 0; y < Height; y++ {
		for x := 0; x < Width; x++ {
			if img.GrayAt(x, y).Y >= 128 {
				buf[(y/8)*Width+x] |= 1 << (y % 8)
			}
		}
	}
	return buf
}

// Unpack is Pack's inverse, for tests and the simulator.
func Unpack(buf []byte) *image.Gray {
	img := image.NewGray(image.Rect(0, 0, Width, Height))
	for i, b := range buf {
		if i >= Width*Height/8 {
			break
		}
		x, page := i%Width, i/Width
		for bit := 0; bit < 8; bit++ {
			if b&(1<<bit) != 0 {
				img.SetGray(x, page*8+bit, color.Gray{Y: 255})
			}
		}
	}
	return img
}
