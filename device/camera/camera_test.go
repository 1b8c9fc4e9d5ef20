package camera

import (
	"context"
	"errors"
	"fmt"
	"image"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"allscreen/device"

	"gocv.io/x/gocv"
)

func solid(w, h int, mt gocv.MatType) gocv.Mat {
	m := gocv.NewMatWithSize(h, w, mt)
	m.SetTo(gocv.NewScalar(120, 80, 200, 255))
	return m
}

func TestCheckFrame(t *testing.T) {
	cases := []struct {
		name    string
		make    func() gocv.Mat
		wantErr bool
	}{
		{"empty", gocv.NewMat, true},
		{"tiny", func() gocv.Mat { return solid(10, 10, gocv.MatTypeCV8UC3) }, true},
		{"thin", func() gocv.Mat { return solid(640, 8, gocv.MatTypeCV8UC3) }, true},
		{"bgr", func() gocv.Mat { return solid(640, 480, gocv.MatTypeCV8UC3) }, false},
		{"grey", func() gocv.Mat { return solid(640, 480, gocv.MatTypeCV8UC1) }, false},
		{"bgra", func() gocv.Mat { return solid(640, 480, gocv.MatTypeCV8UC4) }, false},
		{"float", func() gocv.Mat { return solid(640, 480, gocv.MatTypeCV32FC3) }, true},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			in := c.make()
			defer in.Close()
			out, err := CheckFrame(in)
			if c.wantErr {
				if !errors.Is(err, device.ErrBadFrame) {
					t.Fatalf("err = %v, want ErrBadFrame", err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			defer out.Close()
			if out.Type() != gocv.MatTypeCV8UC3 || out.Cols() != 640 || out.Rows() != 480 {
				t.Fatalf("out %dx%d type %d", out.Cols(), out.Rows(), out.Type())
			}
		})
	}
}

// fakeSource plays frames; a nil entry is a failed read (unplug).
type fakeSource struct {
	frames []func() gocv.Mat
	closed bool
}

func (f *fakeSource) Read(m *gocv.Mat) bool {
	if len(f.frames) == 0 || f.frames[0] == nil {
		return false
	}
	src := f.frames[0]()
	f.frames = f.frames[1:]
	src.CopyTo(m)
	src.Close()
	return true
}

func (f *fakeSource) Close() error { f.closed = true; return nil }

type fakeClock struct {
	mu  sync.Mutex
	now time.Time
}

func (c *fakeClock) Now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.now }
func (c *fakeClock) Add(d time.Duration) {
	c.mu.Lock()
	c.now = c.now.Add(d)
	c.mu.Unlock()
}

func good() gocv.Mat { return solid(320, 240, gocv.MatTypeCV8UC3) }

// TestUnplugAndReplug: a camera that works, is unplugged mid-session
// (read fails, then opening fails), and comes back.
func TestUnplugAndReplug(t *testing.T) {
	clk := &fakeClock{now: time.Unix(1e9, 0)}
	plugged := true
	opens := 0
	var cur *fakeSource
	open := func() (source, error) {
		opens++
		if !plugged {
			return nil, errors.New("no such device")
		}
		cur = &fakeSource{frames: []func() gocv.Mat{good, nil}}
		return cur, nil
	}
	s := newStream("/dev/video0", open, 0, nil, clk)
	ctx := context.Background()
	capture := func() error {
		m, err := s.Capture(ctx)
		if err == nil {
			m.Close()
		}
		return err
	}
	if err := capture(); err != nil {
		t.Fatalf("first capture: %v", err)
	}
	plugged = false
	first := cur
	if err := capture(); !errors.Is(err, device.ErrNoCamera) {
		t.Fatalf("unplugged read: %v, want ErrNoCamera", err)
	}
	if !first.closed {
		t.Error("the dead device was not closed")
	}
	if err := capture(); !errors.Is(err, device.ErrNoCamera) {
		t.Fatalf("reopen while unplugged: %v", err)
	}
	n := opens
	if err := capture(); !errors.Is(err, device.ErrNoCamera) || opens != n {
		t.Fatalf("within back-off: err %v, opens %d -> %d (want no new open)", err, n, opens)
	}
	plugged = true
	clk.Add(maxBackoff)
	if err := capture(); err != nil {
		t.Fatalf("after replug: %v", err)
	}
}

func TestBackoffGrowsAndCaps(t *testing.T) {
	clk := &fakeClock{now: time.Unix(1e9, 0)}
	s := newStream("x", func() (source, error) { return nil, errors.New("absent") }, 0, nil, clk)
	var waits []time.Duration
	for i := 0; i < 7; i++ {
		s.Check()
		waits = append(waits, s.retryAt.Sub(clk.Now()))
		clk.Add(waits[len(waits)-1])
	}
	want := []time.Duration{250 * time.Millisecond, 500 * time.Millisecond, time.Second, 2 * time.Second, 4 * time.Second, 4 * time.Second, 4 * time.Second}
	if fmt.Sprint(waits) != fmt.Sprint(want) {
		t.Errorf("back-off %v, want %v", waits, want)
	}
}

func TestTinyFrameIsErrorAndCameraStaysOpen(t *testing.T) {
	src := &fakeSource{frames: []func() gocv.Mat{
		func() gocv.Mat { return solid(8, 8, gocv.MatTypeCV8UC3) },
		gocv.NewMat, // empty
		good,
	}}
	s := newStream("x", func() (source, error) { return src, nil }, 0, nil, nil)
	for i, want := range []error{device.ErrBadFrame, device.ErrBadFrame, nil} {
		m, err := s.Capture(context.Background())
		if !errors.Is(err, want) && !(want == nil && err == nil) {
			t.Fatalf("capture %d: %v, want %v", i, err, want)
		}
		if err == nil {
			m.Close()
		}
	}
	if src.closed {
		t.Error("a bad frame must not close a working camera")
	}
}

func TestDiscardDropsQueuedFrames(t *testing.T) {
	stale := func() gocv.Mat { return solid(100, 100, gocv.MatTypeCV8UC3) }
	src := &fakeSource{frames: []func() gocv.Mat{stale, stale, good}}
	s := newStream("x", func() (source, error) { return src, nil }, 2, nil, nil)
	m, err := s.Capture(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	if m.Cols() != 320 {
		t.Errorf("got a %d-wide frame: a queued frame was returned", m.Cols())
	}
}

// TestUSBAbsent: this machine has no V4L2; the real driver must say so.
func TestUSBAbsent(t *testing.T) {
	s := NewUSB(USBOptions{Index: 9, Width: 640, Height: 480})
	defer s.Close()
	_, err := s.Capture(context.Background())
	if !errors.Is(err, device.ErrNoCamera) {
		t.Fatalf("err = %v, want ErrNoCamera", err)
	}
}

func writeFrames(t *testing.T, dir string, n int) {
	t.Helper()
	for i := 0; i < n; i++ {
		m := solid(100+10*i, 80, gocv.MatTypeCV8UC3)
		ok := gocv.IMWrite(filepath.Join(dir, fmt.Sprintf("field_%03d.png", i)), m)
		m.Close()
		if !ok {
			t.Fatal("write frame")
		}
	}
}

func TestSequenceLoops(t *testing.T) {
	dir := t.TempDir()
	writeFrames(t, dir, 3)
	s := NewSequence(filepath.Join(dir, "field_%03d.png"), nil)
	defer s.Close()
	var widths []int
	for i := 0; i < 5; i++ {
		m, err := s.Capture(context.Background())
		if err != nil {
			t.Fatalf("capture %d: %v", i, err)
		}
		widths = append(widths, m.Cols())
		m.Close()
	}
	if fmt.Sprint(widths) != "[100 110 120 100 110]" { // sizes kept, order kept, looped
		t.Errorf("widths %v", widths)
	}
}

func TestSequenceMissing(t *testing.T) {
	s := NewSequence(filepath.Join(t.TempDir(), "none_%03d.png"), nil)
	if _, err := s.Capture(context.Background()); !errors.Is(err, device.ErrNoCamera) {
		t.Fatalf("err = %v", err)
	}
}

func TestFolder(t *testing.T) {
	dir := t.TempDir()
	writeFrames(t, dir, 2)
	os.WriteFile(filepath.Join(dir, "notes.txt"), []byte("x"), 0o644)
	os.WriteFile(filepath.Join(dir, "zz_broken.png"), []byte("not a png"), 0o644)
	f, err := NewFolder(dir, nil)
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for i := 0; i < 4; i++ {
		m, err := f.Capture(context.Background())
		switch {
		case err == nil:
			got = append(got, fmt.Sprint(m.Cols()))
			m.Close()
		case errors.Is(err, device.ErrBadFrame):
			got = append(got, "bad")
		default:
			t.Fatal(err)
		}
	}
	if fmt.Sprint(got) != "[100 110 bad 100]" {
		t.Errorf("captures %v", got)
	}
	if _, err := NewFolder(t.TempDir(), nil); err == nil {
		t.Error("an empty folder must be an error")
	}
}

func TestCancelledContext(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	s := newStream("x", func() (source, error) { t.Fatal("opened"); return nil, nil }, 0, nil, nil)
	if _, err := s.Capture(ctx); !errors.Is(err, context.Canceled) {
		t.Fatalf("err = %v", err)
	}
}

var _ = image.Pt
