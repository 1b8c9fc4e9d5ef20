// Package hd44780 drives a 16x2 HD44780 character LCD behind a PCF8574 I2C
// backpack (the common "LCD1602 I2C" module), and emulates one (Emulator)
// so that the bytes the driver sends are checked as screen text.
//
// periph's devices/v3/hd44780 driver never sets two-line mode over a
// PCF8574; this one follows the datasheet's 4-bit initialisation. The
// driver is handed its I2C bus; it never opens hardware itself.
package hd44780

import (
	"fmt"
	"strings"
	"sync"
	"time"

	"allscreen/device"

	"periph.io/x/conn/v3/i2c"
)

// PCF8574 pins as wired on the common backpack: P0 RS, P1 RW, P2 E,
// P3 backlight, P4..P7 D4..D7.
const (
	bitRS        = 0x01
	bitE         = 0x04
	bitBacklight = 0x08
)

// DefaultAddr is the backpack's usual address (0x3F on PCF8574A boards).
const DefaultAddr = 0x27

const (
	cols = 16
	rows = 2
)

// rowAddr is each row's first DDRAM address.
var rowAddr = [rows]byte{0x00, 0x40}

// Dev is a 16x2 LCD on a PCF8574 backpack.
type Dev struct {
	mu    sync.Mutex
	dev   i2c.Dev
	sleep func(time.Duration)
	ok    bool // initialised and the last write succeeded
}

// New is handed the I2C bus and the backpack's address. sleep waits (nil
// means time.Sleep; tests pass a no-op). It initialises the display.
func New(bus i2c.Bus, addr uint16, sleep func(time.Duration)) (*Dev, error) {
	if sleep == nil {
		sleep = time.Sleep
	}
	d := &Dev{dev: i2c.Dev{Bus: bus, Addr: addr}, sleep: sleep}
	d.mu.Lock()
	defer d.mu.Unlock()
	return d, d.init()
}

// init runs the datasheet's "initialisation by instruction" for 4-bit mode:
// it works whatever state the controller was left in.
func (d *Dev) init() error {
	d.sleep(50 * time.Millisecond) // power-on settling
	for i, wait := range []time.Duration{4100 * time.Microsecond, 100 * time.Microsecond, 100 * time.Microsecond} {
		if err := d.nibble(0x3, false); err != nil {
			return fmt.Errorf("LCD at %#x: reset nibble %d: %w", d.dev.Addr, i+1, err)
		}
		d.sleep(wait)
	}
	if err := d.nibble(0x2, false); err != nil {
		return fmt.Errorf("LCD at %#x: set 4-bit mode: %w", d.dev.Addr, err)
	}
	for _, c := range []byte{
		0x28, // function set: 4-bit, two lines, 5x8 font
		0x08, // display off
		0x01, // clear
		0x06, // entry mode: increment, no shift
		0x0C, // display on, cursor off, blink off
	} {
		if err := d.write(c, false); err != nil {
			return fmt.Errorf("LCD at %#x: command %#02x: %w", d.dev.Addr, c, err)
		}
		if c == 0x01 {
			d.sleep(2 * time.Millisecond) // clear takes 1.52 ms
		}
	}
	d.ok = true
	return nil
}

// nibble clocks four bits in: E high, then E low (the controller latches on
// the falling edge). Both bytes go in one I2C write; the PCF8574 updates its
// pins after each byte, which gives E a pulse of one byte time (about 90 us
// at 100 kHz, far above the 450 ns minimum).
func (d *Dev) nibble(n byte, data bool) error {
	b := n<<4 | bitBacklight
	if data {
		b |= bitRS
	}
	return d.dev.Tx([]byte{b | bitE, b}, nil)
}

// write sends one command or data byte as two nibbles in one I2C write.
func (d *Dev) write(c byte, data bool) error {
	hi, lo := c>>4<<4|bitBacklight, c<<4|bitBacklight
	if data {
		hi |= bitRS
		lo |= bitRS
	}
	return d.dev.Tx([]byte{hi | bitE, hi, lo | bitE, lo}, nil)
}

// Size implements device.Display.
func (d *Dev) Size() (int, int) { return cols, rows }

// Show implements device.Display. After a failed write (display unplugged,
// NACK) the next Show first initialises the controller again, since it may
// have lost power.
func (d *Dev) Show(lines []string) error {
	d.mu.Lock()
	defer d.mu.Unlock()
	if !d.ok {
		if err := d.init(); err != nil {
			return err
		}
	}
	fit := device.Fit(lines, cols, rows)
	for r := 0; r < rows; r++ {
		text := ""
		if r < len(fit) {
			text = fit[r]
		}
		// Writing whole padded rows avoids the clear command (2 ms and a
		// visible flicker).
		buf := make([]byte, 0, 4*(cols+1))
		buf = appendByte(buf, 0x80|rowAddr[r], false)
		for _, ch := range []byte(romText(text)) {
			buf = appendByte(buf, ch, true)
		}
		if err := d.dev.Tx(buf, nil); err != nil {
			d.ok = false
			return fmt.Errorf("LCD at %#x: write row %d: %w", d.dev.Addr, r+1, err)
		}
	}
	return nil
}

func appendByte(buf []byte, c byte, data bool) []byte {
	hi, lo := c>>4<<4|bitBacklight, c<<4|bitBacklight
	if data {
		hi |= bitRS
		lo |= bitRS
	}
	return append(buf, hi|bitE, hi, lo|bitE, lo)
}

// romText pads to the row width and maps the two ASCII characters the
// usual A00 character ROM draws differently ('\' is a yen sign, '~' an arrow).
func romText(s string) string {
	s = strings.NewReplacer(`\`, "/", "~", "-").Replace(s)
	return s + strings.Repeat(" ", cols-len(s))
}
