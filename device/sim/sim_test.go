package sim

import (
	"bytes"
	"context"
	"os"
	"strings"
	"syscall"
	"testing"

	"allscreen/device"
)

func TestPanelPlainLines(t *testing.T) {
	var buf bytes.Buffer
	p := NewPanel(&buf, false, 16, 2)
	p.Set(device.LightWorking)
	p.Set(device.LightWorking) // unchanged: not printed again
	p.Show([]string{"Field 3: 7 WBC, 2 suspicious", "K7M2"})
	want := "lights: working\ndisplay: \"Field 3: 7 WBC,\" | \"2 suspicious\"\n"
	if buf.String() != want {
		t.Errorf("got %q, want %q", buf.String(), want)
	}
	if got := p.Lines(); len(got) != 2 || got[1] != "2 suspicious" {
		t.Errorf("Lines = %q", got)
	}
}

func TestPanelTTYRedrawsInPlace(t *testing.T) {
	var buf bytes.Buffer
	p := NewPanel(&buf, true, 16, 2)
	p.Set(device.LightRefer)
	first := buf.Len()
	p.Show([]string{"K7M2 REFER"})
	out := buf.String()
	if strings.Contains(out[:first], "\x1b[6A") {
		t.Error("first drawing must not move the cursor up")
	}
	if !strings.Contains(out[first:], "\x1b[6A") || !strings.Contains(out[first:], "K7M2 REFER") {
		t.Errorf("second drawing should move up 6 lines and show the text: %q", out[first:])
	}
	if !strings.Contains(out, "(●) red") {
		t.Error("red LED not drawn lit")
	}
}

func TestButtonKeysAndSignals(t *testing.T) {
	sig := make(chan os.Signal, 1)
	b := &Button{
		In:      strings.NewReader("\nl\nnonsense\n"),
		Signals: sig,
		Map: func(s os.Signal) (device.Press, bool) {
			switch s {
			case syscall.SIGUSR1:
				return device.ShortPress, true
			case syscall.SIGUSR2:
				return device.LongPress, true
			}
			return 0, false
		},
	}
	ctx, cancel := context.WithCancel(context.Background())
	presses := make(chan device.Press)
	done := make(chan error)
	go func() { done <- b.Run(ctx, presses) }()
	if p := <-presses; p != device.ShortPress {
		t.Errorf("Enter = %v", p)
	}
	if p := <-presses; p != device.LongPress {
		t.Errorf("l = %v", p)
	}
	sig <- syscall.SIGUSR2
	if p := <-presses; p != device.LongPress {
		t.Errorf("SIGUSR2 = %v", p)
	}
	sig <- syscall.SIGUSR1
	if p := <-presses; p != device.ShortPress {
		t.Errorf("SIGUSR1 = %v", p)
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
}
