package device

import (
	"context"
	"errors"
	"fmt"

	"gocv.io/x/gocv"
)

// Camera captures one microscope field.
type Camera interface {
	// Capture returns a new 8-bit BGR frame that the caller closes. A
	// missing camera, an unplugged one or an empty or tiny frame is an
	// error (errors.Is ErrNoCamera or ErrBadFrame), never a crash.
	Capture(ctx context.Context) (gocv.Mat, error)
	// Close releases the device.
	Close() error
}

// ErrNoCamera means no camera answered: not plugged in, unplugged, or not
// readable by the service user.
var ErrNoCamera = errors.New("no camera")

// ErrBadFrame means the camera answered with an empty, tiny or malformed frame.
var ErrBadFrame = errors.New("bad frame from camera")

// Press is one press of the capture button.
type Press int

const (
	// ShortPress captures and analyses a field.
	ShortPress Press = iota + 1
	// LongPress closes the sample and gives its verdict.
	LongPress
)

func (p Press) String() string {
	switch p {
	case ShortPress:
		return "short press"
	case LongPress:
		return "long press"
	}
	return fmt.Sprintf("Press(%d)", int(p))
}

// Button reports presses of the capture button.
type Button interface {
	// Run sends each press to presses until ctx is done or the button
	// fails; it returns nil when ctx ended it.
	Run(ctx context.Context, presses chan<- Press) error
}

// Light is what the three LEDs (green, amber, red) say.
type Light int

const (
	// LightOff: all dark (shutting down).
	LightOff Light = iota
	// LightStarting: amber slow blink while the self-test runs.
	LightStarting
	// LightReady: green steady, waiting for a press.
	LightReady
	// LightWorking: amber fast blink while a field is captured or analysed.
	LightWorking
	// LightRejected: amber steady, the last field was rejected (retake it).
	LightRejected
	// LightRefer: red steady, verdict "ALL suspected - refer".
	LightRefer
	// LightNoBlasts: green steady with amber off, verdict "no blasts seen".
	LightNoBlasts
	// LightReview: amber and red steady, verdict "inconclusive - review".
	LightReview
	// LightFault: red blink, something needs a person (self-test failed,
	// storage full, model refused).
	LightFault
)

var lightNames = [...]string{"off", "starting", "ready", "working", "rejected", "refer", "no-blasts", "review", "fault"}

func (l Light) String() string {
	if l >= 0 && int(l) < len(lightNames) {
		return lightNames[l]
	}
	return fmt.Sprintf("Light(%d)", int(l))
}

// Lamp is how one LED behaves.
type Lamp int

const (
	LampOff Lamp = iota
	LampOn
	LampSlow // blinks once a second
	LampFast // blinks about three times a second
)

// Lamps says how each of the three LEDs behaves in a state. It is the one
// place that maps states to LED patterns, used by the GPIO driver and the
// simulator alike.
func (l Light) Lamps() (green, amber, red Lamp) {
	switch l {
	case LightStarting:
		return LampOff, LampSlow, LampOff
	case LightReady:
		return LampOn, LampOff, LampOff
	case LightWorking:
		return LampOff, LampFast, LampOff
	case LightRejected:
		return LampOff, LampOn, LampOff
	case LightRefer:
		return LampOff, LampOff, LampOn
	case LightNoBlasts:
		return LampOn, LampOff, LampOff
	case LightReview:
		return LampOff, LampOn, LampOn
	case LightFault:
		return LampOff, LampOff, LampFast
	}
	return LampOff, LampOff, LampOff
}

// Lights shows a state on the three LEDs.
type Lights interface {
	Set(Light) error
}

// Display shows a few lines of text.
type Display interface {
	// Show replaces the screen with lines, in priority order: each is
	// wrapped to the display's width (see Fit) and what does not fit is
	// left off the bottom.
	Show(lines []string) error
	// Size is the display's text size in characters.
	Size() (cols, rows int)
}
