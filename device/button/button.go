// Package button reads the capture button on a GPIO pin: edge-triggered,
// debounced, and told apart into short and long presses by how long it was
// held. The driver is handed its pin; it never opens hardware itself.
package button

import (
	"context"
	"fmt"
	"time"

	"allscreen/device"

	"periph.io/x/conn/v3/gpio"
)

// Clock is the time source; tests script it so they never sleep.
type Clock interface{ Now() time.Time }

type realClock struct{}

func (realClock) Now() time.Time { return time.Now() }

// Options configure a Button. Zero values take the defaults.
type Options struct {
	// ActiveLow: the button pulls the pin to ground (the usual wiring
	// with the internal pull-up). Default true through New's caller;
	// the zero Options value means active-high.
	ActiveLow bool
	// Debounce: a level change within this time of the last accepted
	// one is contact bounce and ignored. Default 30 ms.
	Debounce time.Duration
	// Long: a press held at least this long is a long press. Default 1.5 s.
	Long time.Duration
	// Poll: how often the pin is re-read while no edge comes, so a lost
	// edge cannot leave the button stuck, and ctx is checked. Default 100 ms.
	Poll  time.Duration
	Clock Clock
}

// Button is the capture button on a GPIO input pin.
type Button struct {
	pin gpio.PinIn
	opt Options
	d   debouncer
}

// New sets pin up as an input with the pull that matches the wiring and
// edge detection on both edges.
func New(pin gpio.PinIn, opt Options) (*Button, error) {
	if opt.Debounce <= 0 {
		opt.Debounce = 30 * time.Millisecond
	}
	if opt.Long <= 0 {
		opt.Long = 1500 * time.Millisecond
	}
	if opt.Poll <= 0 {
		opt.Poll = 100 * time.Millisecond
	}
	if opt.Clock == nil {
		opt.Clock = realClock{}
	}
	if opt.Long <= opt.Debounce {
		return nil, fmt.Errorf("button: long press (%v) must be longer than debounce (%v)", opt.Long, opt.Debounce)
	}
	pull := gpio.PullDown
	if opt.ActiveLow {
		pull = gpio.PullUp
	}
	if err := pin.In(pull, gpio.BothEdges); err != nil {
		return nil, fmt.Errorf("button on %s: set up as input with edge detection: %w", pin, err)
	}
	b := &Button{pin: pin, opt: opt}
	b.d = debouncer{debounce: opt.Debounce, long: opt.Long, pressed: b.isPressed(pin.Read()), last: opt.Clock.Now()}
	return b, nil
}

func (b *Button) isPressed(l gpio.Level) bool { return bool(l) != b.opt.ActiveLow }

// Run implements device.Button.
func (b *Button) Run(ctx context.Context, presses chan<- device.Press) error {
	for ctx.Err() == nil {
		// A timeout is not an error: it is the chance to re-read the pin.
		b.pin.WaitForEdge(b.opt.Poll)
		p, ok := b.d.feed(b.isPressed(b.pin.Read()), b.opt.Clock.Now())
		if !ok {
			continue
		}
		select {
		case presses <- p:
		case <-ctx.Done():
		}
	}
	return nil
}

// debouncer turns timed pin levels into presses. It is pure, so the
// timing rules are tested without a pin.
type debouncer struct {
	debounce, long time.Duration
	pressed        bool      // the accepted (debounced) state
	last           time.Time // when it was accepted
	down           time.Time // when the current press began
}

// feed takes the pin's level at time now and returns a press when a
// release completes one.
func (d *debouncer) feed(pressed bool, now time.Time) (device.Press, bool) {
	if pressed == d.pressed || now.Sub(d.last) < d.debounce {
		return 0, false
	}
	d.pressed, d.last = pressed, now
	if pressed {
		d.down = now
		return 0, false
	}
	if now.Sub(d.down) >= d.long {
		return device.LongPress, true
	}
	return device.ShortPress, true
}
