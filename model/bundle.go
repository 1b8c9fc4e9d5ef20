package model

import (
	"archive/tar"
	"bufio"
	"bytes"
	"crypto/ed25519"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"allscreen/internal/durable"
)

// A model bundle (issue 15 item 4) is how a model reaches a device: one tar
// file holding the manifest, the ONNX file, the known-answer fixture
// (parity/NAME.json and its inputs), an index of every file with its
// SHA-256, and an ed25519 signature of the index. A device installs a
// bundle only when a key it trusts signed it and every file matches the
// index, then switches to it only when it reproduces its known answers
// through the real inference path; the model it replaces is kept for
// rollback.

// BundleFormat names the bundle index's format.
const BundleFormat = "allscreen-model-bundle/1"

// Limits on what a bundle may hold: well above a real model (0.3 MB ONNX,
// a dozen fixture images), far below what would fill the card.
const (
	MaxBundleBytes = 64 << 20
	maxBundleFiles = 256
)

// Errors of installing a bundle.
var (
	ErrUnsigned       = errors.New("model bundle is not signed by a trusted key: not installed")
	ErrBundleDamaged  = errors.New("model bundle is damaged or altered: not installed")
	ErrKnownAnswers   = errors.New("model failed its known-answer test: not switched to")
	ErrNothingToUndo  = errors.New("no previous model to roll back to")
	errBundleTooLarge = fmt.Errorf("model bundle larger than %d bytes", MaxBundleBytes)
)

type bundleIndex struct {
	Format       string       `json:"format"`
	Manifest     string       `json:"manifest"`      // e.g. detect.json
	KnownAnswers string       `json:"known_answers"` // e.g. parity/detect.json
	Created      string       `json:"created"`
	Files        []bundleFile `json:"files"`
}

type bundleFile struct {
	Name   string `json:"name"`
	SHA256 string `json:"sha256"`
	Size   int64  `json:"size"`
}

// Keys are stored one per line, base64, with a type word:
//
//	allscreen-ed25519-public  <base64 32 bytes>  optional comment
//	allscreen-ed25519-private <base64 64 bytes>
const (
	pubKeyWord  = "allscreen-ed25519-public"
	privKeyWord = "allscreen-ed25519-private"
)

// GenerateKeys writes a new signing key pair: PREFIX.key (0600, keep it off
// the device) and PREFIX.pub (a line for a device's trusted-keys file).
func GenerateKeys(prefix, comment string) error {
	pub, priv, err := ed25519.GenerateKey(nil)
	if err != nil {
		return err
	}
	line := func(word string, b []byte) []byte {
		return fmt.Appendf(nil, "%s %s %s\n", word, base64.StdEncoding.EncodeToString(b), comment)
	}
	if err := os.WriteFile(prefix+".key", line(privKeyWord, priv), 0o600); err != nil {
		return err
	}
	return os.WriteFile(prefix+".pub", line(pubKeyWord, pub), 0o644)
}

// ReadPrivateKey reads a key GenerateKeys wrote.
func ReadPrivateKey(path string) (ed25519.PrivateKey, error) {
	keys, err := readKeys(path, privKeyWord, ed25519.PrivateKeySize)
	if err != nil {
		return nil, err
	}
	if len(keys) != 1 {
		return nil, fmt.Errorf("%s: want one private key, found %d", path, len(keys))
	}
	return ed25519.PrivateKey(keys[0]), nil
}

// ReadTrustedKeys reads a device's trusted public keys
// (/etc/allscreen/trusted-keys): one per line, # comments allowed.
func ReadTrustedKeys(path string) ([]ed25519.PublicKey, error) {
	keys, err := readKeys(path, pubKeyWord, ed25519.PublicKeySize)
	if err != nil {
		return nil, err
	}
	out := make([]ed25519.PublicKey, len(keys))
	for i, k := range keys {
		out[i] = ed25519.PublicKey(k)
	}
	return out, nil
}

func readKeys(path, word string, size int) ([][]byte, error) {
	raw, err := readLimited(path, 64<<10)
	if err != nil {
		return nil, err
	}
	var out [][]byte
	sc := bufio.NewScanner(bytes.NewReader(raw))
	for n := 1; sc.Scan(); n++ {
		f := strings.Fields(sc.Text())
		if len(f) == 0 || strings.HasPrefix(f[0], "#") {
			continue
		}
		if f[0] != word || len(f) < 2 {
			return nil, fmt.Errorf("%s line %d: want %q and a base64 key", path, n, word)
		}
		k, err := base64.StdEncoding.DecodeString(f[1])
		if err != nil || len(k) != size {
			return nil, fmt.Errorf("%s line %d: not a %d-byte base64 key", path, n, size)
		}
		out = append(out, k)
	}
	return out, nil
}

// WriteBundle writes the bundle of the model at manifestPath (its ONNX file
// and its known-answer fixture MODELDIR/parity/NAME.json with its inputs),
// signed with priv.
func WriteBundle(w io.Writer, manifestPath string, priv ed25519.PrivateKey, now time.Time) error {
	dir := filepath.Dir(manifestPath)
	m, _, err := readVerified(manifestPath)
	if err != nil {
		return err
	}
	name := filepath.Base(manifestPath)
	kat := path.Join("parity", name)
	k, err := ReadKnownAnswers(filepath.Join(dir, kat))
	if err != nil {
		return fmt.Errorf("bundle: a model needs its known-answer fixture: %w", err)
	}
	files := append([]string{name, m.ONNX, kat}, k.Inputs...)
	idx := bundleIndex{Format: BundleFormat, Manifest: name, KnownAnswers: kat, Created: now.UTC().Format(time.RFC3339)}
	contents := map[string][]byte{}
	for _, f := range files {
		f = path.Clean(filepath.ToSlash(f))
		if !validBundleName(f) {
			return fmt.Errorf("bundle: file name %q", f)
		}
		if _, dup := contents[f]; dup {
			continue
		}
		b, err := os.ReadFile(filepath.Join(dir, filepath.FromSlash(f)))
		if err != nil {
			return fmt.Errorf("bundle: %w", err)
		}
		sum := sha256.Sum256(b)
		contents[f] = b
		idx.Files = append(idx.Files, bundleFile{Name: f, SHA256: hex.EncodeToString(sum[:]), Size: int64(len(b))})
	}
	index, err := json.MarshalIndent(idx, "", " ")
	if err != nil {
		return err
	}
	tw := tar.NewWriter(w)
	add := func(name string, b []byte) error {
		if err := tw.WriteHeader(&tar.Header{Name: name, Mode: 0o644, Size: int64(len(b)), ModTime: now, Typeflag: tar.TypeReg}); err != nil {
			return err
		}
		_, err := tw.Write(b)
		return err
	}
	if err := add("index.json", index); err != nil {
		return err
	}
	if err := add("index.sig", []byte(base64.StdEncoding.EncodeToString(ed25519.Sign(priv, index))+"\n")); err != nil {
		return err
	}
	for _, f := range idx.Files {
		if err := add(f.Name, contents[f.Name]); err != nil {
			return err
		}
	}
	return tw.Close()
}

// validBundleName: a relative path inside the bundle, no "..", no
// absolute path, no hidden or odd characters.
func validBundleName(n string) bool {
	if n == "" || len(n) > 200 || path.IsAbs(n) || path.Clean(n) != n || strings.HasPrefix(n, "../") || n == ".." {
		return false
	}
	for _, part := range strings.Split(n, "/") {
		if part == "" || part == "." || part == ".." || strings.HasPrefix(part, ".") {
			return false
		}
	}
	for _, c := range n {
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || strings.ContainsRune("-_./", c)) {
			return false
		}
	}
	return true
}

// readBundle reads and checks a bundle: a trusted signature over its
// index, and every file the index lists, with nothing else.
func readBundle(r io.Reader, trusted []ed25519.PublicKey) (*bundleIndex, map[string][]byte, error) {
	tr := tar.NewReader(io.LimitReader(r, MaxBundleBytes+1))
	files := map[string][]byte{}
	var total int64
	for {
		h, err := tr.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			return nil, nil, fmt.Errorf("%w: %v", ErrBundleDamaged, err)
		}
		if h.Typeflag != tar.TypeReg || !validBundleName(h.Name) || len(files) >= maxBundleFiles {
			return nil, nil, fmt.Errorf("%w: entry %q is not a plain file of a bundle", ErrBundleDamaged, h.Name)
		}
		if _, dup := files[h.Name]; dup {
			return nil, nil, fmt.Errorf("%w: %s twice", ErrBundleDamaged, h.Name)
		}
		if total += h.Size; h.Size < 0 || total > MaxBundleBytes {
			return nil, nil, errBundleTooLarge
		}
		b, err := io.ReadAll(io.LimitReader(tr, h.Size))
		if err != nil || int64(len(b)) != h.Size {
			return nil, nil, fmt.Errorf("%w: %s is truncated", ErrBundleDamaged, h.Name)
		}
		files[h.Name] = b
	}
	index, sig := files["index.json"], files["index.sig"]
	if index == nil || sig == nil {
		return nil, nil, ErrUnsigned
	}
	s, err := base64.StdEncoding.DecodeString(strings.TrimSpace(string(sig)))
	if err != nil || len(s) != ed25519.SignatureSize || !slices.ContainsFunc(trusted, func(k ed25519.PublicKey) bool {
		return ed25519.Verify(k, index, s)
	}) {
		return nil, nil, ErrUnsigned
	}
	var idx bundleIndex
	if err := json.Unmarshal(index, &idx); err != nil || idx.Format != BundleFormat {
		return nil, nil, fmt.Errorf("%w: index is not %s", ErrBundleDamaged, BundleFormat)
	}
	listed := map[string]bool{"index.json": true, "index.sig": true}
	for _, f := range idx.Files {
		b, ok := files[f.Name]
		sum := sha256.Sum256(b)
		if !ok || int64(len(b)) != f.Size || hex.EncodeToString(sum[:]) != f.SHA256 {
			return nil, nil, fmt.Errorf("%w: %s does not match the signed index", ErrBundleDamaged, f.Name)
		}
		listed[f.Name] = true
	}
	for n := range files {
		if !listed[n] {
			return nil, nil, fmt.Errorf("%w: %s is not in the signed index", ErrBundleDamaged, n)
		}
	}
	if !listed[idx.Manifest] || !listed[idx.KnownAnswers] {
		return nil, nil, fmt.Errorf("%w: the manifest or the known answers are missing", ErrBundleDamaged)
	}
	return &idx, files, nil
}

// Installed says what InstallBundle did.
type Installed struct {
	Dir      string  // the installed model's folder
	Manifest string  // its manifest, for model.manifest in the configuration
	Worst    float64 // the known-answer test's largest probability difference
	Previous string  // the folder rolled back to by Rollback ("" for none)
}

// InstallBundle verifies the bundle at bundlePath against the trusted keys,
// unpacks it beside the installed models in modelsDir, runs its
// known-answer test through the real inference path, and only then makes
// it modelsDir/current (the one it replaces becomes modelsDir/previous).
// A bundle that fails at any step leaves current as it was.
func InstallBundle(bundlePath, modelsDir string, trusted []ed25519.PublicKey) (Installed, error) {
	if len(trusted) == 0 {
		return Installed{}, fmt.Errorf("no trusted keys: %w", ErrUnsigned)
	}
	f, err := os.Open(bundlePath)
	if err != nil {
		return Installed{}, err
	}
	defer f.Close()
	idx, files, err := readBundle(f, trusted)
	if err != nil {
		return Installed{}, err
	}
	if err := os.MkdirAll(modelsDir, 0o755); err != nil {
		return Installed{}, err
	}
	sum := sha256.Sum256(files["index.json"])
	name := "model-" + hex.EncodeToString(sum[:6])
	final := filepath.Join(modelsDir, name)
	if _, err := os.Stat(final); errors.Is(err, fs.ErrNotExist) {
		staging, err := os.MkdirTemp(modelsDir, ".staging-")
		if err != nil {
			return Installed{}, err
		}
		defer os.RemoveAll(staging)
		for n, b := range files {
			p := filepath.Join(staging, filepath.FromSlash(n))
			if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
				return Installed{}, err
			}
			if err := durable.WriteNew(p, b, 0o644); err != nil {
				return Installed{}, err
			}
		}
		// Every folder's entries durable before the rename makes it the
		// model's (a power cut must not leave a model missing files).
		var dirs []string
		filepath.WalkDir(staging, func(p string, d fs.DirEntry, err error) error {
			if err == nil && d.IsDir() {
				dirs = append(dirs, p)
			}
			return nil
		})
		for i := len(dirs) - 1; i >= 0; i-- {
			if err := durable.SyncDir(dirs[i]); err != nil {
				return Installed{}, err
			}
		}
		if err := os.Rename(staging, final); err != nil {
			return Installed{}, err
		}
		if err := durable.SyncDir(modelsDir); err != nil {
			return Installed{}, err
		}
	}
	out := Installed{Dir: final, Manifest: filepath.Join(modelsDir, "current", idx.Manifest)}
	out.Worst, err = CheckKnownAnswers(filepath.Join(final, filepath.FromSlash(idx.KnownAnswers)))
	if err != nil {
		os.RemoveAll(final)
		return out, fmt.Errorf("%w: %v", ErrKnownAnswers, err)
	}
	prev, _ := os.Readlink(filepath.Join(modelsDir, "current"))
	if prev == name {
		prev, _ = os.Readlink(filepath.Join(modelsDir, "previous"))
	} else if prev != "" {
		if err := swapLink(modelsDir, "previous", prev); err != nil {
			return out, err
		}
	}
	if err := swapLink(modelsDir, "current", name); err != nil {
		return out, err
	}
	if prev != "" {
		out.Previous = filepath.Join(modelsDir, prev)
	}
	return out, durable.SyncDir(modelsDir)
}

// Rollback makes modelsDir/previous current again (and the current one
// previous, so a rollback can itself be undone).
func Rollback(modelsDir string) (string, error) {
	prev, err := os.Readlink(filepath.Join(modelsDir, "previous"))
	if err != nil {
		return "", ErrNothingToUndo
	}
	cur, _ := os.Readlink(filepath.Join(modelsDir, "current"))
	if err := swapLink(modelsDir, "current", prev); err != nil {
		return "", err
	}
	if cur != "" {
		if err := swapLink(modelsDir, "previous", cur); err != nil {
			return "", err
		}
	}
	return filepath.Join(modelsDir, prev), durable.SyncDir(modelsDir)
}

// swapLink points dir/name at target atomically (a new link renamed over
// the old one).
func swapLink(dir, name, target string) error {
	tmp := filepath.Join(dir, "."+name+".new")
	os.Remove(tmp)
	if err := os.Symlink(target, tmp); err != nil {
		return err
	}
	return os.Rename(tmp, filepath.Join(dir, name))
}
