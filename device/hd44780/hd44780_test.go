package hd44780

import (
	"bytes"
	"errors"
	"reflect"
	"strings"
	"testing"
	"time"

	"periph.io/x/conn/v3/i2c/i2ctest"
)

func noSleep(time.Duration) {}

// initOps are the datasheet's 4-bit initialisation as PCF8574 bytes,
// written out by hand: each nibble is sent with E (0x04) high then low,
// backlight (0x08) on, RS (0x01) low for commands.
var initOps = []i2ctest.IO{
	{Addr: 0x27, W: []byte{0x3C, 0x38}},             // 0x3 (8-bit reset) ...
	{Addr: 0x27, W: []byte{0x3C, 0x38}},             // ... three times
	{Addr: 0x27, W: []byte{0x3C, 0x38}},             //
	{Addr: 0x27, W: []byte{0x2C, 0x28}},             // 0x2: 4-bit mode
	{Addr: 0x27, W: []byte{0x2C, 0x28, 0x8C, 0x88}}, // 0x28 two lines
	{Addr: 0x27, W: []byte{0x0C, 0x08, 0x8C, 0x88}}, // 0x08 display off
	{Addr: 0x27, W: []byte{0x0C, 0x08, 0x1C, 0x18}}, // 0x01 clear
	{Addr: 0x27, W: []byte{0x0C, 0x08, 0x6C, 0x68}}, // 0x06 entry mode
	{Addr: 0x27, W: []byte{0x0C, 0x08, 0xCC, 0xC8}}, // 0x0C display on
}

func rowOp(cmd byte, text string) i2ctest.IO {
	hi, lo := cmd&0xF0|0x08, cmd<<4|0x08
	w := []byte{hi | 0x04, hi, lo | 0x04, lo}
	for _, c := range []byte(text) {
		hi, lo := c&0xF0|0x09, c<<4|0x09
		w = append(w, hi|0x04, hi, lo|0x04, lo)
	}
	return i2ctest.IO{Addr: 0x27, W: w}
}

func TestGoldenInit(t *testing.T) {
	bus := &i2ctest.Playback{Ops: initOps, DontPanic: true}
	if _, err := New(bus, 0x27, noSleep); err != nil {
		t.Fatal(err)
	}
	if err := bus.Close(); err != nil {
		t.Fatal(err)
	}
}

func TestGoldenShow(t *testing.T) {
	ops := append(append([]i2ctest.IO(nil), initOps...),
		// Hand-checked first bytes: set address 0x00 is 0x80 -> 8C 88 0C 08;
		// 'H' (0x48) with RS -> 4D 49 8D 89.
		rowOp(0x80, "Hi              "),
		rowOp(0xC0, "Sample K7M2     "))
	if got := ops[len(initOps)].W[:8]; !bytes.Equal(got, []byte{0x8C, 0x88, 0x0C, 0x08, 0x4D, 0x49, 0x8D, 0x89}) {
		t.Fatalf("test's own encoding is wrong: % x", got)
	}
	bus := &i2ctest.Playback{Ops: ops, DontPanic: true}
	d, err := New(bus, 0x27, noSleep)
	if err != nil {
		t.Fatal(err)
	}
	if err := d.Show([]string{"Hi", "Sample K7M2"}); err != nil {
		t.Fatal(err)
	}
	if err := bus.Close(); err != nil {
		t.Fatal(err)
	}
}

func TestEmulatorShowsText(t *testing.T) {
	emu := NewEmulator(0x27)
	d, err := New(emu, 0x27, noSleep)
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		in   []string
		want []string
	}{
		{[]string{"READY", "Sample K7M2"}, []string{"READY", "Sample K7M2"}},
		{[]string{"Field 3: 7 WBC, 2 suspicious"}, []string{"Field 3: 7 WBC,", "2 suspicious"}},
		{[]string{`a\b~c`}, []string{"a/b-c", ""}},
		{nil, []string{"", ""}},
	} {
		if err := d.Show(c.in); err != nil {
			t.Fatal(err)
		}
		if got := emu.Lines(); !reflect.DeepEqual(got, c.want) {
			t.Errorf("Show(%q) displays %q, want %q", c.in, got, c.want)
		}
		if err := emu.Check(); err != nil {
			t.Errorf("Show(%q): %v", c.in, err)
		}
	}
}

// TestEmulatorCatchesOneLineMode shows the emulator would have caught the
// bug of periph's driver over a PCF8574 (two-line mode never set).
func TestEmulatorCatchesOneLineMode(t *testing.T) {
	emu := NewEmulator(0x27)
	seq := []byte{0x3C, 0x38, 0x3C, 0x38, 0x3C, 0x38, 0x2C, 0x28,
		0x2C, 0x28, 0x0C, 0x08, // 0x20: 4-bit, ONE line
		0x0C, 0x08, 0xCC, 0xC8} // display on
	if err := emu.Tx(0x27, seq, nil); err != nil {
		t.Fatal(err)
	}
	err := emu.Check()
	if err == nil || !strings.Contains(err.Error(), "one-line") {
		t.Fatalf("Check = %v, want a one-line mode error", err)
	}
}

func TestNACKThenRecovery(t *testing.T) {
	emu := NewEmulator(0x27)
	d, err := New(emu, 0x27, noSleep)
	if err != nil {
		t.Fatal(err)
	}
	emu.mu.Lock()
	emu.Fail = errors.New("i2c: NACK")
	emu.mu.Unlock()
	err = d.Show([]string{"lost"})
	if err == nil || !strings.Contains(err.Error(), "0x27") {
		t.Fatalf("Show on a NACKing bus = %v, want an error naming the address", err)
	}
	// The display comes back having lost power: back in 8-bit mode.
	fresh := NewEmulator(0x27)
	d.dev.Bus = fresh
	if err := d.Show([]string{"back"}); err != nil {
		t.Fatal(err)
	}
	if got := fresh.Lines()[0]; got != "back" {
		t.Errorf("after recovery shows %q", got)
	}
	if err := fresh.Check(); err != nil {
		t.Errorf("not re-initialised: %v", err)
	}
}

func TestAbsentDisplay(t *testing.T) {
	emu := NewEmulator(0x3F) // nothing answers at 0x27
	if _, err := New(emu, 0x27, noSleep); err == nil {
		t.Fatal("New on an absent display: want an error")
	}
}

// FuzzEmulator feeds arbitrary bytes: the emulator must never panic and
// always return two rows of at most 16 characters.
func FuzzEmulator(f *testing.F) {
	f.Add([]byte{0x3C, 0x38, 0x2C, 0x28, 0x8C, 0x88})
	f.Fuzz(func(t *testing.T, b []byte) {
		e := NewEmulator(0x27)
		_ = e.Tx(0x27, b, nil)
		l := e.Lines()
		if len(l) != 2 || len(l[0]) > 16 || len(l[1]) > 16 {
			t.Fatalf("lines %q", l)
		}
		_ = e.Check()
	})
}
