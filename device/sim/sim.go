// Package sim is the appliance without hardware: a panel that draws the
// three LEDs and the display on a terminal (or, when output is not a
// terminal, prints one line per change for scripts and logs), and a button
// worked by the keyboard (Enter: short press; l then Enter: long press) or
// by signals (SIGUSR1: short, SIGUSR2: long).
package sim

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"
	"sync"

	"allscreen/device"
)

// Panel draws the simulated LEDs and display. It implements device.Lights
// and device.Display.
type Panel struct {
	mu         sync.Mutex
	w          io.Writer
	tty        bool
	cols, rows int
	light      device.Light
	lines      []string
	drawn      bool
	lightShown bool
}

// NewPanel draws on w a display of cols x rows characters (16x2 like the
// HD44780, 18x4 like the OLED). tty selects in-place redrawing with
// colours; otherwise every change is one plain line:
//
//	lights: refer
//	display: "K7M2 REFER" | "3 of 212 blasts"
func NewPanel(w io.Writer, tty bool, cols, rows int) *Panel {
	return &Panel{w: w, tty: tty, cols: cols, rows: rows}
}

// IsTerminal reports whether f is a character device (a terminal), so the
// panel redraws in place only for a person.
func IsTerminal(f *os.File) bool {
	st, err := f.Stat()
	return err == nil && st.Mode()&os.ModeCharDevice != 0
}

// Size implements device.Display.
func (p *Panel) Size() (int, int) { return p.cols, p.rows }

// Set implements device.Lights.
func (p *Panel) Set(l device.Light) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	if l == p.light && p.lightShown {
		return nil
	}
	p.light, p.lightShown = l, true
	if !p.tty {
		_, err := fmt.Fprintf(p.w, "lights: %s\n", l)
		return err
	}
	return p.draw()
}

// Show implements device.Display.
func (p *Panel) Show(lines []string) error {
	return p.ShowFitted(device.Fit(lines, p.cols, p.rows))
}

// ShowFitted shows lines already laid out for the screen (for example read
// back from a display emulator).
func (p *Panel) ShowFitted(lines []string) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.lines = append([]string(nil), lines...)
	if !p.tty {
		q := make([]string, len(lines))
		for i, l := range lines {
			q[i] = strconv.Quote(l)
		}
		_, err := fmt.Fprintf(p.w, "display: %s\n", strings.Join(q, " | "))
		return err
	}
	return p.draw()
}

// Lines returns what the display shows now.
func (p *Panel) Lines() []string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return append([]string(nil), p.lines...)
}

// Light returns what the LEDs show now.
func (p *Panel) Light() device.Light {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.light
}

const (
	ansiReset = "\x1b[0m"
	ansiDim   = "\x1b[2m"
)

func lamp(name string, m device.Lamp, colour string) string {
	switch m {
	case device.LampOn:
		return colour + "(●) " + name + ansiReset
	case device.LampSlow, device.LampFast:
		return colour + "(◐) " + name + " blinking" + ansiReset
	}
	return ansiDim + "( ) " + name + ansiReset
}

// draw repaints the whole panel from the top-left corner of the terminal
// and clears everything below it. A relative redraw (cursor up N lines)
// breaks as soon as anything else reaches the terminal: a log line, the
// echo of the Enter key. Drawing from home does not: whatever was printed
// in between is overwritten or cleared, and the box is drawn at one width.
func (p *Panel) draw() error {
	var b strings.Builder
	if !p.drawn {
		b.WriteString("\x1b[2J") // clear the screen once
	}
	b.WriteString("\x1b[H")
	g, a, r := p.light.Lamps()
	const title = "─ allscreen (simulated) "
	inner := max(p.cols+2, len([]rune(title))+1) // columns between the corners
	line := func(s string) { b.WriteString("\x1b[2K" + s + "\n") }
	line("┌" + title + strings.Repeat("─", inner-len([]rune(title))) + "┐")
	line("  " + lamp("green", g, "\x1b[32m") + "  " + lamp("amber", a, "\x1b[33m") + "  " + lamp("red", r, "\x1b[31m"))
	for i := 0; i < p.rows; i++ {
		l := ""
		if i < len(p.lines) {
			l = p.lines[i]
		}
		line(fmt.Sprintf("│ \x1b[7m%-*s\x1b[0m%s │", p.cols, l, strings.Repeat(" ", inner-p.cols-2)))
	}
	line("└" + strings.Repeat("─", inner) + "┘")
	line("  Enter: capture a field   l + Enter: close the sample   Ctrl-C: quit")
	b.WriteString("\x1b[J") // anything below (log lines, echoed keys) is cleared
	p.drawn = true
	_, err := io.WriteString(p.w, b.String())
	return err
}

// Button is the simulated capture button: lines from In (an empty line is
// a short press, "l" a long press) and signals from Signals (the caller
// maps SIGUSR1 to ShortPress and SIGUSR2 to LongPress through signal.Notify).
type Button struct {
	In      io.Reader
	Signals <-chan os.Signal
	// Map turns a signal into a press; nil ignores signals.
	Map func(os.Signal) (device.Press, bool)
}

// Run implements device.Button. The end of In is not an error: signals
// still work (a script's stdin is often /dev/null).
func (b *Button) Run(ctx context.Context, presses chan<- device.Press) error {
	lines := make(chan string)
	if b.In != nil {
		go func() {
			sc := bufio.NewScanner(b.In)
			for sc.Scan() {
				select {
				case lines <- sc.Text():
				case <-ctx.Done():
					return
				}
			}
		}()
	}
	for {
		var p device.Press
		select {
		case <-ctx.Done():
			return nil
		case l := <-lines:
			switch strings.ToLower(strings.TrimSpace(l)) {
			case "":
				p = device.ShortPress
			case "l", "long":
				p = device.LongPress
			default:
				continue
			}
		case s := <-b.Signals:
			var ok bool
			if b.Map == nil {
				continue
			}
			if p, ok = b.Map(s); !ok {
				continue
			}
		}
		select {
		case presses <- p:
		case <-ctx.Done():
			return nil
		}
	}
}
