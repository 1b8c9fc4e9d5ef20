package sim

import (
	"bytes"
	"context"
	"os"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"unicode/utf8"

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

// TestPanelTTYRedrawsInPlace (issue 13): every drawing starts from the
// terminal's home position and clears what is below it, so a log line or
// an echoed key between two drawings cannot shift the panel; and the box's
// lines are all one width, on both display sizes.
func TestPanelTTYRedrawsInPlace(t *testing.T) {
	for _, size := range [][2]int{{16, 2}, {18, 4}} {
		var buf bytes.Buffer
		p := NewPanel(&buf, true, size[0], size[1])
		p.Set(device.LightRefer)
		first := buf.String()
		buf.WriteString("time=... level=WARN msg=\"a log line\"\n\n") // what else reaches the terminal
		mark := buf.Len()
		p.Show([]string{"K7M2 REFER"})
		second := buf.String()[mark:]
		if !strings.HasPrefix(first, "\x1b[2J\x1b[H") || !strings.HasPrefix(second, "\x1b[H") || strings.Contains(second, "\x1b[2J") ||
			!strings.HasSuffix(second, "\x1b[J") || strings.Contains(second, "\x1b[6A") {
			t.Errorf("%v: drawings must start at home and clear below: %q", size, second)
		}
		if !strings.Contains(second, "K7M2 REFER") || !strings.Contains(second, "(●) red") {
			t.Errorf("%v: second drawing %q", size, second)
		}
		ansi := regexp.MustCompile("\x1b\\[[0-9;]*[A-Za-z]")
		widths := map[int]bool{}
		for _, l := range strings.Split(strings.TrimSuffix(ansi.ReplaceAllString(second, ""), "\n"), "\n") {
			if strings.ContainsAny(l, "┌│└") {
				widths[utf8.RuneCountInString(l)] = true
			}
		}
		if len(widths) != 1 {
			t.Errorf("%v: the box has %d widths: %v", size, len(widths), widths)
		}
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
