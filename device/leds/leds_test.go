package leds

import (
	"context"
	"testing"
	"time"

	"allscreen/device"

	"periph.io/x/conn/v3/gpio"
	"periph.io/x/conn/v3/gpio/gpiotest"
)

func pins() (g, a, r *gpiotest.Pin) {
	return &gpiotest.Pin{N: "GPIO5", L: gpio.High}, &gpiotest.Pin{N: "GPIO6", L: gpio.High}, &gpiotest.Pin{N: "GPIO13", L: gpio.High}
}

func levels(g, a, r *gpiotest.Pin) string {
	s := ""
	for _, p := range []*gpiotest.Pin{g, a, r} {
		if p.Read() == gpio.High {
			s += "1"
		} else {
			s += "0"
		}
	}
	return s
}

func TestNewSwitchesOff(t *testing.T) {
	g, a, r := pins()
	if _, err := New(g, a, r); err != nil {
		t.Fatal(err)
	}
	if got := levels(g, a, r); got != "000" {
		t.Errorf("after New: %s, want 000", got)
	}
}

// TestPatterns checks the pin levels (green, amber, red) over six ticks
// for each state.
func TestPatterns(t *testing.T) {
	cases := []struct {
		light device.Light
		want  []string // before the first tick, then after each tick
	}{
		{device.LightReady, []string{"100", "100", "100", "100", "100", "100", "100"}},
		{device.LightRefer, []string{"001", "001", "001", "001", "001", "001", "001"}},
		{device.LightReview, []string{"011", "011", "011", "011", "011", "011", "011"}},
		{device.LightWorking, []string{"010", "000", "010", "000", "010", "000", "010"}},
		{device.LightStarting, []string{"010", "010", "010", "000", "000", "000", "010"}},
		{device.LightFault, []string{"001", "000", "001", "000", "001", "000", "001"}},
		{device.LightOff, []string{"000", "000", "000", "000", "000", "000", "000"}},
	}
	for _, c := range cases {
		t.Run(c.light.String(), func(t *testing.T) {
			g, a, r := pins()
			l, _ := New(g, a, r)
			l.Tick() // Set must restart the pattern, whatever came before
			if err := l.Set(c.light); err != nil {
				t.Fatal(err)
			}
			for i, w := range c.want {
				if got := levels(g, a, r); got != w {
					t.Fatalf("step %d: %s, want %s", i, got, w)
				}
				l.Tick()
			}
		})
	}
}

func TestMissingLEDIsSkipped(t *testing.T) {
	g, _, r := pins()
	l, err := New(g, nil, r)
	if err != nil {
		t.Fatal(err)
	}
	if err := l.Set(device.LightReview); err != nil {
		t.Fatal(err)
	}
	if r.Read() != gpio.High {
		t.Error("red should be on")
	}
}

func TestRunTicksAndSwitchesOffAtEnd(t *testing.T) {
	g, a, r := pins()
	l, _ := New(g, a, r)
	l.Set(device.LightWorking)
	ticks := make(chan time.Time)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error)
	go func() { done <- l.Run(ctx, ticks) }()
	ticks <- time.Time{} // unbuffered: returns once Run has taken it
	ticks <- time.Time{}
	ticks <- time.Time{}
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if got := levels(g, a, r); got != "000" {
		t.Errorf("after Run ends: %s, want 000", got)
	}
	l.mu.Lock()
	tick := l.tick
	l.mu.Unlock()
	if tick != 3 {
		t.Errorf("ticks seen = %d, want 3", tick)
	}
}
