package hd44780

import (
	"errors"
	"fmt"
	"strings"
	"sync"

	"periph.io/x/conn/v3/i2c"
	"periph.io/x/conn/v3/physic"
)

// Emulator is an HD44780 controller behind a PCF8574, seen from the I2C
// bus: it decodes the bytes written to it the way the chip does (latching
// on E's falling edge, 8-bit mode until told otherwise, then nibble pairs)
// and keeps the display RAM, so tests read back the text a person would see.
// It implements i2c.Bus. Set Fail to make every write fail (a NACK).
type Emulator struct {
	mu        sync.Mutex
	Addr      uint16
	Fail      error
	ddram     [0x80]byte
	addr      byte
	eightBit  bool
	twoLine   bool
	displayOn bool
	backlight bool
	half      *byte // first nibble of a 4-bit pair
	lastE     bool
	errs      []error
}

// NewEmulator returns a controller in its power-on state.
func NewEmulator(addr uint16) *Emulator {
	e := &Emulator{Addr: addr, eightBit: true}
	for i := range e.ddram {
		e.ddram[i] = ' '
	}
	return e
}

func (e *Emulator) String() string { return "hd44780-emulator" }

// SetSpeed implements i2c.Bus.
func (e *Emulator) SetSpeed(physic.Frequency) error { return nil }

// Tx implements i2c.Bus.
func (e *Emulator) Tx(addr uint16, w, r []byte) error {
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.Fail != nil {
		return e.Fail
	}
	if addr != e.Addr {
		return fmt.Errorf("no device at %#x (NACK)", addr)
	}
	if len(r) != 0 {
		return errors.New("emulator: reads are not supported")
	}
	for _, b := range w {
		e.pin(b)
	}
	return nil
}

func (e *Emulator) pin(b byte) {
	en := b&bitE != 0
	e.backlight = b&bitBacklight != 0
	if e.lastE && !en {
		e.latch(b>>4, b&bitRS != 0)
	}
	e.lastE = en
}

func (e *Emulator) latch(n byte, rs bool) {
	if e.eightBit {
		// Only D7..D4 are wired: the low four lines read as zero.
		e.exec(n<<4, rs)
		return
	}
	if e.half == nil {
		e.half = &n
		return
	}
	v := *e.half<<4 | n
	e.half = nil
	e.exec(v, rs)
}

func (e *Emulator) exec(v byte, rs bool) {
	if rs {
		if !e.twoLine || e.eightBit {
			e.errs = append(e.errs, fmt.Errorf("data %#02x written before 4-bit two-line set-up", v))
		}
		e.ddram[e.addr&0x7f] = v
		e.addr = next(e.addr)
		return
	}
	// The highest set bit selects the instruction.
	switch {
	case v&0x80 != 0:
		e.addr = v & 0x7f
	case v&0x40 != 0: // character generator RAM address: not emulated
	case v&0x20 != 0: // function set
		e.eightBit = v&0x10 != 0
		e.twoLine = v&0x08 != 0
	case v&0x10 != 0: // cursor or display shift: not used by the driver
		e.errs = append(e.errs, fmt.Errorf("shift %#02x not expected", v))
	case v&0x08 != 0:
		e.displayOn = v&0x04 != 0
	case v&0x04 != 0: // entry mode: only increment is emulated
		if v&0x02 == 0 {
			e.errs = append(e.errs, fmt.Errorf("entry mode %#02x (decrement) not expected", v))
		}
	case v&0x02 != 0:
		e.addr = 0
	case v == 0x01:
		for i := range e.ddram {
			e.ddram[i] = ' '
		}
		e.addr = 0
	}
}

// next is the address after a, wrapping within a row's 40 bytes of RAM.
func next(a byte) byte {
	switch a {
	case 0x27:
		return 0x40
	case 0x67:
		return 0x00
	}
	return a + 1
}

// Lines returns the two visible rows (trailing spaces trimmed).
func (e *Emulator) Lines() []string {
	e.mu.Lock()
	defer e.mu.Unlock()
	out := make([]string, rows)
	for r := range out {
		out[r] = strings.TrimRight(string(e.ddram[rowAddr[r]:rowAddr[r]+cols]), " ")
	}
	return out
}

// Check reports what would make a real display show nothing or garbage:
// not in 4-bit two-line mode, display or backlight off, a half-sent byte,
// or data sent before set-up.
func (e *Emulator) Check() error {
	e.mu.Lock()
	defer e.mu.Unlock()
	errs := append([]error(nil), e.errs...)
	if e.eightBit {
		errs = append(errs, errors.New("still in 8-bit mode"))
	}
	if !e.twoLine {
		errs = append(errs, errors.New("one-line mode: row 2 is not shown"))
	}
	if !e.displayOn {
		errs = append(errs, errors.New("display off"))
	}
	if !e.backlight {
		errs = append(errs, errors.New("backlight off"))
	}
	if e.half != nil {
		errs = append(errs, errors.New("a byte was left half-sent"))
	}
	return errors.Join(errs...)
}

var _ i2c.Bus = (*Emulator)(nil)
