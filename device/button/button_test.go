package button

import (
	"context"
	"strings"
	"sync"
	"testing"
	"time"

	"allscreen/device"

	"periph.io/x/conn/v3/gpio"
	"periph.io/x/conn/v3/gpio/gpiotest"
)

var t0 = time.Date(2025, 1, 1, 9, 0, 0, 0, time.UTC)

func ms(n int) time.Time { return t0.Add(time.Duration(n) * time.Millisecond) }

func TestDebouncer(t *testing.T) {
	type step struct {
		at      int
		pressed bool
	}
	cases := []struct {
		name  string
		steps []step
		want  []device.Press
	}{
		{"short", []step{{100, true}, {300, false}}, []device.Press{device.ShortPress}},
		{"long", []step{{100, true}, {1700, false}}, []device.Press{device.LongPress}},
		{"exactly long", []step{{100, true}, {1600, false}}, []device.Press{device.LongPress}},
		{"bounce on press and release is one press", []step{
			{100, true}, {102, false}, {104, true}, {400, false}, {405, true}, {409, false},
		}, []device.Press{device.ShortPress}},
		{"repeated level is no press", []step{{100, false}, {200, false}}, nil},
		{"two presses", []step{{100, true}, {200, false}, {400, true}, {2500, false}}, []device.Press{device.ShortPress, device.LongPress}},
		// A 10 ms blip (noise on a long wire) is shorter than the debounce.
		{"glitch ignored", []step{{100, true}, {110, false}}, nil},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			d := debouncer{debounce: 30 * time.Millisecond, long: 1500 * time.Millisecond, last: t0}
			var got []device.Press
			for _, s := range c.steps {
				if p, ok := d.feed(s.pressed, ms(s.at)); ok {
					got = append(got, p)
				}
			}
			if len(got) != len(c.want) {
				t.Fatalf("got %v, want %v", got, c.want)
			}
			for i := range got {
				if got[i] != c.want[i] {
					t.Fatalf("got %v, want %v", got, c.want)
				}
			}
		})
	}
}

// scriptClock hands out the given times, one per call, so the pin's edges
// land at known instants without the test sleeping.
type scriptClock struct {
	mu    sync.Mutex
	times []time.Time
}

func (c *scriptClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	if len(c.times) == 0 {
		return ms(1 << 20)
	}
	t := c.times[0]
	c.times = c.times[1:]
	return t
}

// TestButtonOnFakePin drives the driver through a periph gpiotest pin: an
// active-low button pressed briefly, then held.
func TestButtonOnFakePin(t *testing.T) {
	pin := &gpiotest.Pin{N: "GPIO17", EdgesChan: make(chan gpio.Level)}
	// New reads the clock once; then one Now per edge (Poll is long, so no
	// timeouts interleave).
	clk := &scriptClock{times: []time.Time{ms(0), ms(100), ms(300), ms(1000), ms(3000)}}
	b, err := New(pin, Options{ActiveLow: true, Poll: time.Hour, Clock: clk})
	if err != nil {
		t.Fatal(err)
	}
	if pin.P != gpio.PullUp {
		t.Errorf("pull = %v, want PullUp for an active-low button", pin.P)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	presses := make(chan device.Press, 4)
	done := make(chan error)
	go func() { done <- b.Run(ctx, presses) }()
	for _, l := range []gpio.Level{gpio.Low, gpio.High, gpio.Low, gpio.High} {
		pin.EdgesChan <- l
	}
	if p := <-presses; p != device.ShortPress {
		t.Errorf("first press = %v, want short", p)
	}
	if p := <-presses; p != device.LongPress {
		t.Errorf("second press = %v, want long", p)
	}
	cancel()
	// Run may see ctx before it waits for another edge, or be waiting in
	// WaitForEdge: wake it only if it is (under load, under qemu, the
	// first happened and a bare send here waited forever).
	var runErr error
	select {
	case pin.EdgesChan <- gpio.High:
		runErr = <-done
	case runErr = <-done:
	}
	if runErr != nil {
		t.Errorf("Run = %v", runErr)
	}
}

func TestNewRejectsLongShorterThanDebounce(t *testing.T) {
	pin := &gpiotest.Pin{N: "GPIO17", EdgesChan: make(chan gpio.Level)}
	if _, err := New(pin, Options{Debounce: time.Second, Long: time.Millisecond}); err == nil {
		t.Fatal("want an error")
	}
}

func TestNewNeedsEdges(t *testing.T) {
	// gpiotest refuses edge detection without an edge channel, like a pin
	// whose driver lacks it: the error must name the pin.
	pin := &gpiotest.Pin{N: "GPIO17"}
	_, err := New(pin, Options{})
	if err == nil || !strings.Contains(err.Error(), "GPIO17") {
		t.Fatalf("err = %v, want one naming GPIO17", err)
	}
}
