// Package leds drives the green, amber and red status LEDs on three GPIO
// output pins, with the blink patterns of device.Light. The driver is
// handed its pins; it never opens hardware itself.
package leds

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"allscreen/device"

	"periph.io/x/conn/v3/gpio"
)

// TickEvery is the blink clock: a fast-blinking LED toggles every tick
// (about 3 Hz), a slow one every third tick (about 1 Hz).
const TickEvery = 167 * time.Millisecond

// LEDs is the three-LED panel. Set is safe to call from any goroutine.
type LEDs struct {
	mu    sync.Mutex
	pins  [3]gpio.PinOut // green, amber, red
	lamps [3]device.Lamp
	tick  int
}

// New is handed the three output pins (any may be nil when not fitted) and
// switches them all off.
func New(green, amber, red gpio.PinOut) (*LEDs, error) {
	l := &LEDs{pins: [3]gpio.PinOut{green, amber, red}}
	return l, l.apply()
}

// Set implements device.Lights: the new pattern shows at once.
func (l *LEDs) Set(s device.Light) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	g, a, r := s.Lamps()
	l.lamps = [3]device.Lamp{g, a, r}
	l.tick = 0
	return l.apply()
}

// Tick advances the blink patterns by one step; Run calls it on a clock.
func (l *LEDs) Tick() error {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.tick++
	return l.apply()
}

// Run ticks the blink patterns on every value from ticks (for example a
// time.Ticker's channel at TickEvery) until ctx is done, then switches the
// LEDs off.
func (l *LEDs) Run(ctx context.Context, ticks <-chan time.Time) error {
	for {
		select {
		case <-ctx.Done():
			l.mu.Lock()
			l.lamps = [3]device.Lamp{}
			err := l.apply()
			l.mu.Unlock()
			return err
		case <-ticks:
			// An LED write error is reported by the next Set; blinking
			// goes on for the LEDs that work.
			_ = l.Tick()
		}
	}
}

// On says whether a lamp is lit at a tick count.
func On(m device.Lamp, tick int) bool {
	switch m {
	case device.LampOn:
		return true
	case device.LampFast:
		return tick%2 == 0
	case device.LampSlow:
		return (tick/3)%2 == 0
	}
	return false
}

func (l *LEDs) apply() error {
	var errs []error
	for i, p := range l.pins {
		if p == nil {
			continue
		}
		lvl := gpio.Low
		if On(l.lamps[i], l.tick) {
			lvl = gpio.High
		}
		if err := p.Out(lvl); err != nil {
			errs = append(errs, fmt.Errorf("LED on %s: %w", p, err))
		}
	}
	return errors.Join(errs...)
}
