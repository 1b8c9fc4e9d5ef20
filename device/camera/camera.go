// Package camera captures microscope fields: a USB microscope through
// OpenCV's V4L2 capture, a printf-pattern image sequence, or a folder of
// images (the simulated appliance). Every frame is checked before it leaves
// the package: an empty, tiny or odd-format frame is an error, never a
// crash inside OpenCV further on.
package camera

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"allscreen/device"

	"gocv.io/x/gocv"
)

// MinSide is the smallest frame side accepted: a smaller frame cannot hold
// a white cell at any magnification the appliance supports.
const MinSide = 64

// Clock is the time source for the reopen back-off.
type Clock interface{ Now() time.Time }

type realClock struct{}

func (realClock) Now() time.Time { return time.Now() }

// source is an open capture: gocv's VideoCapture, or a test double.
type source interface {
	Read(*gocv.Mat) bool
	Close() error
}

// Stream is a camera read through a VideoCapture that may disappear (a USB
// microscope unplugged) and come back: a failed read closes it, and the
// next Capture reopens it, no more often than the back-off allows.
type Stream struct {
	name    string
	open    func() (source, error)
	discard int  // frames grabbed and dropped before the one returned
	loop    bool // at the end (a sequence), start again at once
	log     *slog.Logger
	clock   Clock

	mu      sync.Mutex
	src     source
	backoff time.Duration
	retryAt time.Time
}

const (
	minBackoff = 250 * time.Millisecond
	maxBackoff = 4 * time.Second
)

// USBOptions configure a USB camera.
type USBOptions struct {
	Index         int // /dev/videoN
	Width, Height int // requested resolution; 0 keeps the camera's default
	// Discard is how many queued frames to drop before the one returned,
	// so a field is captured after the press, not before it.
	Discard int
	Log     *slog.Logger
	Clock   Clock
}

// NewUSB returns the USB camera /dev/video<Index>. It does not open it:
// the first Capture (or Check) does, so a camera plugged in later works.
func NewUSB(o USBOptions) *Stream {
	name := fmt.Sprintf("/dev/video%d", o.Index)
	open := func() (source, error) {
		vc, err := gocv.VideoCaptureDeviceWithAPI(o.Index, gocv.VideoCaptureV4L2)
		if err != nil || !vc.IsOpened() {
			if vc != nil {
				vc.Close()
			}
			return nil, fmt.Errorf("open %s: %v", name, err)
		}
		if o.Width > 0 && o.Height > 0 {
			vc.Set(gocv.VideoCaptureFrameWidth, float64(o.Width))
			vc.Set(gocv.VideoCaptureFrameHeight, float64(o.Height))
		}
		vc.Set(gocv.VideoCaptureBufferSize, 1)
		return vc, nil
	}
	return newStream(name, open, o.Discard, o.Log, o.Clock)
}

// NewSequence returns a camera reading a printf-pattern image sequence
// ("frames/field_%03d.png"); at its end it starts again. OpenCV's own image
// sequence reader is used: through FFmpeg every frame would be scaled to
// the first one's size.
func NewSequence(pattern string, log *slog.Logger) *Stream {
	open := func() (source, error) {
		vc, err := gocv.VideoCaptureFileWithAPI(pattern, gocv.VideoCaptureImages)
		if err != nil || !vc.IsOpened() {
			if vc != nil {
				vc.Close()
			}
			return nil, fmt.Errorf("open image sequence %s: %v", pattern, err)
		}
		return vc, nil
	}
	s := newStream(pattern, open, 0, log, nil)
	s.loop = true
	return s
}

func newStream(name string, open func() (source, error), discard int, log *slog.Logger, clock Clock) *Stream {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	if clock == nil {
		clock = realClock{}
	}
	return &Stream{name: name, open: open, discard: discard, log: log, clock: clock}
}

// Check opens the camera if it is closed, without capturing: the
// self-test. It honours the back-off.
func (s *Stream) Check() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.ensureOpen()
}

func (s *Stream) ensureOpen() error {
	if s.src != nil {
		return nil
	}
	now := s.clock.Now()
	if now.Before(s.retryAt) {
		return fmt.Errorf("camera %s: %w (next try in %v)", s.name, device.ErrNoCamera, s.retryAt.Sub(now).Round(time.Millisecond))
	}
	src, err := s.open()
	if err != nil {
		s.backoff = min(max(2*s.backoff, minBackoff), maxBackoff)
		s.retryAt = now.Add(s.backoff)
		return fmt.Errorf("camera %s: %w: %v", s.name, device.ErrNoCamera, err)
	}
	if s.backoff > 0 {
		s.log.Info("camera back", "camera", s.name)
	}
	s.src, s.backoff, s.retryAt = src, 0, time.Time{}
	return nil
}

// Capture implements device.Camera.
func (s *Stream) Capture(ctx context.Context) (gocv.Mat, error) {
	if err := ctx.Err(); err != nil {
		return gocv.Mat{}, err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if err := s.ensureOpen(); err != nil {
		return gocv.Mat{}, err
	}
	frame := gocv.NewMat()
	ok := true
	var err error
	for i := 0; i <= s.discard && ok; i++ {
		ok = s.src.Read(&frame)
	}
	if !ok && s.loop {
		s.src.Close()
		if s.src, err = s.open(); err != nil {
			frame.Close()
			return gocv.Mat{}, fmt.Errorf("camera %s: %w: %v", s.name, device.ErrNoCamera, err)
		}
		ok = s.src.Read(&frame)
	}
	if !ok {
		frame.Close()
		// A read that fails on an open device is an unplug (or the end of
		// a sequence): drop the device so the next Capture reopens it.
		s.src.Close()
		s.src = nil
		s.log.Warn("camera stopped answering; will reopen", "camera", s.name)
		return gocv.Mat{}, fmt.Errorf("camera %s stopped answering (unplugged?): %w", s.name, device.ErrNoCamera)
	}
	out, err := CheckFrame(frame)
	frame.Close()
	if err != nil {
		return gocv.Mat{}, fmt.Errorf("camera %s: %w", s.name, err)
	}
	return out, nil
}

// Close implements device.Camera.
func (s *Stream) Close() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.src == nil {
		return nil
	}
	err := s.src.Close()
	s.src = nil
	return err
}

// CheckFrame validates a captured frame and returns a new 8-bit BGR copy
// of it (the caller still closes frame): grey and BGRA frames are
// converted; an empty, tiny or non-8-bit frame is ErrBadFrame.
func CheckFrame(frame gocv.Mat) (gocv.Mat, error) {
	if frame.Empty() {
		return gocv.Mat{}, fmt.Errorf("empty frame: %w", device.ErrBadFrame)
	}
	if frame.Cols() < MinSide || frame.Rows() < MinSide {
		return gocv.Mat{}, fmt.Errorf("frame %dx%d is smaller than %dx%d: %w", frame.Cols(), frame.Rows(), MinSide, MinSide, device.ErrBadFrame)
	}
	out := gocv.NewMat()
	switch frame.Type() {
	case gocv.MatTypeCV8UC3:
		frame.CopyTo(&out)
	case gocv.MatTypeCV8UC1:
		gocv.CvtColor(frame, &out, gocv.ColorGrayToBGR)
	case gocv.MatTypeCV8UC4:
		gocv.CvtColor(frame, &out, gocv.ColorBGRAToBGR)
	default:
		out.Close()
		return gocv.Mat{}, fmt.Errorf("frame of OpenCV type %d, want 8-bit BGR: %w", frame.Type(), device.ErrBadFrame)
	}
	return out, nil
}

// IsNoCamera says whether err means the camera is absent (as opposed to a
// bad frame from a present one).
func IsNoCamera(err error) bool { return errors.Is(err, device.ErrNoCamera) }
