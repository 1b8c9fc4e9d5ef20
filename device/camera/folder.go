package camera

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"

	"allscreen/device"

	"gocv.io/x/gocv"
)

// Folder is a camera that returns the images of a folder in name order,
// then starts again: the simulated appliance's microscope.
type Folder struct {
	dir   string
	load  func(path string) (gocv.Mat, error)
	mu    sync.Mutex
	files []string
	next  int
}

var imageExt = []string{".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff"}

// NewFolder lists the images in dir. load reads one image into a BGR Mat
// (the daemon passes vision.LoadImage, which checks files before OpenCV
// sees them); nil means gocv.IMRead.
func NewFolder(dir string, load func(string) (gocv.Mat, error)) (*Folder, error) {
	ents, err := os.ReadDir(dir)
	if err != nil {
		return nil, fmt.Errorf("image folder: %w", err)
	}
	var files []string
	for _, e := range ents {
		if !e.IsDir() && slices.Contains(imageExt, strings.ToLower(filepath.Ext(e.Name()))) {
			files = append(files, filepath.Join(dir, e.Name()))
		}
	}
	if len(files) == 0 {
		return nil, fmt.Errorf("image folder %s has no PNG, JPEG, BMP or TIFF images", dir)
	}
	slices.Sort(files)
	if load == nil {
		load = func(p string) (gocv.Mat, error) { return gocv.IMRead(p, gocv.IMReadColor), nil }
	}
	return &Folder{dir: dir, load: load, files: files}, nil
}

// Capture implements device.Camera.
func (f *Folder) Capture(ctx context.Context) (gocv.Mat, error) {
	if err := ctx.Err(); err != nil {
		return gocv.Mat{}, err
	}
	f.mu.Lock()
	path := f.files[f.next]
	f.next = (f.next + 1) % len(f.files)
	f.mu.Unlock()
	img, err := f.load(path)
	if err != nil {
		return gocv.Mat{}, fmt.Errorf("%w: %w", device.ErrBadFrame, err)
	}
	out, err := CheckFrame(img)
	img.Close()
	if err != nil {
		return gocv.Mat{}, fmt.Errorf("%s: %w", path, err)
	}
	return out, nil
}

// Last returns the file the previous Capture read (for logs).
func (f *Folder) Last() string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.files[(f.next+len(f.files)-1)%len(f.files)]
}

// Check reports whether the folder is still readable.
func (f *Folder) Check() error {
	if _, err := os.Stat(f.dir); err != nil {
		return fmt.Errorf("image folder: %w: %v", device.ErrNoCamera, err)
	}
	return nil
}

// Close implements device.Camera.
func (f *Folder) Close() error { return nil }
