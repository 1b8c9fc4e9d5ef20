package screening

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"syscall"

	"allscreen/internal/durable"
)

// Images live beside the database under images/, named by the sha256 of
// their bytes: images/ab/ab12....png. Equal images are stored once, a name
// can never point at other content, and an export can verify every file.

// fileSystem is the part of the OS the image store uses. Tests replace it to
// make writes fail (a full disk) at chosen moments.
type fileSystem interface {
	MkdirAll(path string, perm fs.FileMode) error
	CreateTemp(dir, pattern string) (writableFile, error)
	Rename(oldpath, newpath string) error
	Remove(name string) error
	Stat(name string) (fs.FileInfo, error)
	// SyncDir makes the directory's entries (a rename, a new file) durable.
	SyncDir(dir string) error
}

type writableFile interface {
	io.Writer
	Sync() error
	Close() error
	Name() string
}

type osFileSystem struct{}

func (osFileSystem) MkdirAll(p string, perm fs.FileMode) error { return os.MkdirAll(p, perm) }
func (osFileSystem) CreateTemp(dir, pattern string) (writableFile, error) {
	return os.CreateTemp(dir, pattern)
}
func (osFileSystem) Rename(a, b string) error           { return os.Rename(a, b) }
func (osFileSystem) Remove(n string) error              { return os.Remove(n) }
func (osFileSystem) Stat(n string) (fs.FileInfo, error) { return os.Stat(n) }
func (osFileSystem) SyncDir(dir string) error           { return durable.SyncDir(dir) }

// ImageRef names a stored image.
type ImageRef struct {
	SHA256 string
	Format string // file extension: "jpg" or "png"
}

// valid: a lowercase hex SHA-256 and a format the store writes. A row
// damaged or edited by hand may hold anything; it must never become a
// path outside images/ or a slice past a string's end.
func (r ImageRef) valid() bool {
	if len(r.SHA256) != 2*sha256.Size || (r.Format != "jpg" && r.Format != "png") {
		return false
	}
	for _, c := range r.SHA256 {
		if !('0' <= c && c <= '9' || 'a' <= c && c <= 'f') {
			return false
		}
	}
	return true
}

// relPath is where the image lives under the state directory; a
// reference that is not valid names a file that never exists.
func (r ImageRef) relPath() string {
	if !r.valid() {
		return filepath.Join("images", "invalid-reference")
	}
	return filepath.Join("images", r.SHA256[:2], r.SHA256+"."+r.Format)
}

const tempPrefix = ".tmp-"

// writeImage stores data durably under its content hash and returns its
// reference. It returns only after the file and its directory entry are on
// disk, so a row referencing it may then be committed.
func writeImage(fsys fileSystem, root string, data []byte, format string) (ImageRef, error) {
	sum := sha256.Sum256(data)
	ref := ImageRef{SHA256: hex.EncodeToString(sum[:]), Format: format}
	final := filepath.Join(root, ref.relPath())
	if st, err := os.Lstat(final); err == nil && st.Mode().IsRegular() && checkImage(root, ref) == nil {
		// Already stored. Only complete files are ever renamed into place,
		// but a file may have been altered or swapped since: it is reused
		// only when it is a regular file with this content, else replaced.
		return ref, nil
	}
	dir := filepath.Dir(final)
	if _, err := fsys.Stat(dir); errors.Is(err, fs.ErrNotExist) {
		if err := fsys.MkdirAll(dir, 0o755); err != nil {
			return ImageRef{}, fmt.Errorf("store image: %w", err)
		}
		if err := fsys.SyncDir(filepath.Dir(dir)); err != nil {
			return ImageRef{}, fmt.Errorf("store image: %w", err)
		}
	}
	if err := writeDurable(fsys, final, data); err != nil {
		return ImageRef{}, fmt.Errorf("store image %s: %w", ref.SHA256[:12], err)
	}
	return ref, nil
}

// writeDurable puts data at path whole or not at all: a temporary file in
// the same directory, written and fsynced, renamed over path, then the
// directory fsynced so the new entry survives a power cut.
func writeDurable(fsys fileSystem, path string, data []byte) error {
	dir := filepath.Dir(path)
	f, err := fsys.CreateTemp(dir, tempPrefix+"*")
	if err != nil {
		return err
	}
	tmp := f.Name()
	_, err = f.Write(data)
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = fsys.Rename(tmp, path)
	}
	if err != nil {
		fsys.Remove(tmp)
		return err
	}
	return fsys.SyncDir(dir)
}

// removeTempImages deletes temporary files a crash left behind in images/.
func removeTempImages(root string) error {
	dirs, err := os.ReadDir(filepath.Join(root, "images"))
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		return err
	}
	for _, d := range dirs {
		if !d.IsDir() {
			continue
		}
		sub := filepath.Join(root, "images", d.Name())
		files, err := os.ReadDir(sub)
		if err != nil {
			return err
		}
		for _, f := range files {
			if strings.HasPrefix(f.Name(), tempPrefix) {
				if err := os.Remove(filepath.Join(sub, f.Name())); err != nil {
					return err
				}
			}
		}
	}
	return nil
}

// checkImage verifies that a stored image exists and has the content its
// name says.
func checkImage(root string, ref ImageRef) error {
	if !ref.valid() {
		return fmt.Errorf("image reference %q (%q) is not a stored image's SHA-256 and format", ref.SHA256, ref.Format)
	}
	data, err := os.ReadFile(filepath.Join(root, ref.relPath()))
	if err != nil {
		return err
	}
	sum := sha256.Sum256(data)
	if got := hex.EncodeToString(sum[:]); got != ref.SHA256 {
		return fmt.Errorf("image %s has content %s", ref.relPath(), got)
	}
	return nil
}

// OpenImage opens a stored image by its reference for reading: only a
// valid reference (so never a path outside images/) naming a regular file,
// not a symlink.
func (s *Store) OpenImage(ref ImageRef) (*os.File, error) {
	if !ref.valid() {
		return nil, fs.ErrNotExist
	}
	path := filepath.Join(s.dir, ref.relPath())
	f, err := os.OpenFile(path, os.O_RDONLY|syscall.O_NOFOLLOW|syscall.O_NONBLOCK, 0)
	if err != nil {
		return nil, err
	}
	if st, err := f.Stat(); err != nil || !st.Mode().IsRegular() {
		f.Close()
		return nil, fs.ErrNotExist
	}
	return f, nil
}

// ParseImageRef reads "sha256.format" as a stored image's name.
func ParseImageRef(name string) (ImageRef, bool) {
	sha, format, ok := strings.Cut(name, ".")
	ref := ImageRef{SHA256: sha, Format: format}
	return ref, ok && ref.valid()
}

// maxStoredImage bounds what ReadImage reads: a frame is at most
// MaxFramePixels, far below this encoded.
const maxStoredImage = 256 << 20

// ReadImage reads a stored image whole (OpenImage's checks apply).
func (s *Store) ReadImage(ref ImageRef) ([]byte, error) {
	f, err := s.OpenImage(ref)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	b, err := io.ReadAll(io.LimitReader(f, maxStoredImage+1))
	if err == nil && len(b) > maxStoredImage {
		err = fmt.Errorf("image %s: larger than %d bytes", ref.SHA256, maxStoredImage)
	}
	return b, err
}
