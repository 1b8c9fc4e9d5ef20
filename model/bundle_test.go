package model

import (
	"archive/tar"
	"bytes"
	"crypto/ed25519"
	"encoding/json"
	"errors"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// copyShipped copies a shipped model (manifest, ONNX, known answers) into a
// temporary folder, so a test can alter it.
func copyShipped(t *testing.T, name string) string {
	t.Helper()
	dir := t.TempDir()
	k, err := ReadKnownAnswers(filepath.Join("shipped", "parity", name+".json"))
	if err != nil {
		t.Fatal(err)
	}
	var m Manifest
	raw, _ := os.ReadFile(filepath.Join("shipped", name+".json"))
	json.Unmarshal(raw, &m)
	for _, f := range append([]string{name + ".json", m.ONNX, "parity/" + name + ".json"}, k.Inputs...) {
		b, err := os.ReadFile(filepath.Join("shipped", f))
		if err != nil {
			t.Fatal(err)
		}
		os.MkdirAll(filepath.Dir(filepath.Join(dir, f)), 0o755)
		os.WriteFile(filepath.Join(dir, f), b, 0o644)
	}
	return filepath.Join(dir, name+".json")
}

func bundleOf(t *testing.T, manifest string, priv ed25519.PrivateKey) string {
	t.Helper()
	var b bytes.Buffer
	if err := WriteBundle(&b, manifest, priv, time.Date(2026, 12, 7, 0, 0, 0, 0, time.UTC)); err != nil {
		t.Fatal(err)
	}
	p := filepath.Join(t.TempDir(), "model.bundle")
	os.WriteFile(p, b.Bytes(), 0o644)
	return p
}

func keys(t *testing.T) (ed25519.PublicKey, ed25519.PrivateKey) {
	t.Helper()
	prefix := filepath.Join(t.TempDir(), "k")
	if err := GenerateKeys(prefix, "test key"); err != nil {
		t.Fatal(err)
	}
	priv, err := ReadPrivateKey(prefix + ".key")
	if err != nil {
		t.Fatal(err)
	}
	pub, err := ReadTrustedKeys(prefix + ".pub")
	if err != nil || len(pub) != 1 {
		t.Fatal(err)
	}
	if st, _ := os.Stat(prefix + ".key"); st.Mode().Perm() != 0o600 {
		t.Errorf("private key mode %v", st.Mode().Perm())
	}
	return pub[0], priv
}

// rewrite returns the bundle with its entries passed through f (nil drops one).
func rewrite(t *testing.T, bundle string, f func(h *tar.Header, b []byte) []byte, extra ...[2]string) string {
	t.Helper()
	in, _ := os.Open(bundle)
	defer in.Close()
	var out bytes.Buffer
	tr, tw := tar.NewReader(in), tar.NewWriter(&out)
	for {
		h, err := tr.Next()
		if err == io.EOF {
			break
		}
		b, _ := io.ReadAll(tr)
		if b = f(h, b); b == nil {
			continue
		}
		h.Size = int64(len(b))
		tw.WriteHeader(h)
		tw.Write(b)
	}
	for _, e := range extra {
		tw.WriteHeader(&tar.Header{Name: e[0], Mode: 0o644, Size: int64(len(e[1])), Typeflag: tar.TypeReg})
		tw.Write([]byte(e[1]))
	}
	tw.Close()
	p := filepath.Join(t.TempDir(), "altered.bundle")
	os.WriteFile(p, out.Bytes(), 0o644)
	return p
}

func current(t *testing.T, models string) string {
	t.Helper()
	l, _ := os.Readlink(filepath.Join(models, "current"))
	return l
}

// TestModelBundles (issue 15 item 4): a signed bundle installs and is
// switched to after its known-answer test; unsigned, wrongly signed,
// altered, padded or traversing bundles are refused; a bundle whose model
// fails its known answers is not switched to; rollback works both ways.
func TestModelBundles(t *testing.T) {
	pub, priv := keys(t)
	otherPub, otherPriv := keys(t)
	models := t.TempDir()
	detect := bundleOf(t, copyShipped(t, "detect"), priv)

	if _, err := InstallBundle(detect, models, []ed25519.PublicKey{otherPub}); !errors.Is(err, ErrUnsigned) {
		t.Errorf("bundle signed by an untrusted key: %v", err)
	}
	in, err := InstallBundle(detect, models, []ed25519.PublicKey{otherPub, pub})
	if err != nil {
		t.Fatal(err)
	}
	first := current(t, models)
	if first == "" || in.Worst > KnownAnswerTolerance || in.Previous != "" {
		t.Fatalf("installed %+v, current %q", in, first)
	}
	n, err := Load(in.Manifest) // what the daemon's model.manifest then names
	if err != nil {
		t.Fatalf("the installed model does not load: %v", err)
	}
	n.Close()

	trusted := []ed25519.PublicKey{pub}
	for name, bad := range map[string]string{
		"unsigned": rewrite(t, detect, func(h *tar.Header, b []byte) []byte {
			if h.Name == "index.sig" {
				return nil
			}
			return b
		}),
		"weights altered": rewrite(t, detect, func(h *tar.Header, b []byte) []byte {
			if strings.HasSuffix(h.Name, ".onnx") {
				b = bytes.Clone(b)
				b[len(b)/2] ^= 1
			}
			return b
		}),
		"index altered (weights and hash changed together)": rewrite(t, detect, func(h *tar.Header, b []byte) []byte {
			if h.Name == "index.json" {
				return bytes.Replace(b, []byte(`"size"`), []byte(`"size" `), 1)
			}
			return b
		}),
		"extra file":            rewrite(t, detect, func(_ *tar.Header, b []byte) []byte { return b }, [2]string{"evil.sh", "rm -rf /"}),
		"path traversal":        rewrite(t, detect, func(_ *tar.Header, b []byte) []byte { return b }, [2]string{"../../etc/cron.d/x", "x"}),
		"signed by another key": bundleOf(t, copyShipped(t, "detect"), otherPriv),
	} {
		if _, err := InstallBundle(bad, models, trusted); err == nil {
			t.Errorf("%s: installed", name)
		}
		if current(t, models) != first {
			t.Errorf("%s: current changed", name)
		}
	}
	if _, err := os.Stat(filepath.Join(filepath.Dir(models), "etc")); err == nil {
		t.Error("a bundle wrote outside the models folder")
	}

	// A properly signed model that does not give its known answers.
	wrong := copyShipped(t, "detect")
	kat := filepath.Join(filepath.Dir(wrong), "parity", "detect.json")
	raw, _ := os.ReadFile(kat)
	var k KnownAnswers
	json.Unmarshal(raw, &k)
	k.Probs[0][0] += 0.01
	raw, _ = json.Marshal(k)
	os.WriteFile(kat, raw, 0o644)
	if _, err := InstallBundle(bundleOf(t, wrong, priv), models, trusted); !errors.Is(err, ErrKnownAnswers) {
		t.Errorf("a model failing its known answers: %v", err)
	}
	if current(t, models) != first {
		t.Error("switched to a model that failed its known answers")
	}

	// A second model, then back, then forward again.
	in2, err := InstallBundle(bundleOf(t, copyShipped(t, "subtype"), priv), models, trusted)
	if err != nil {
		t.Fatal(err)
	}
	second := current(t, models)
	if second == first || filepath.Base(in2.Previous) != first {
		t.Fatalf("second install: current %q previous %q", second, in2.Previous)
	}
	if back, err := Rollback(models); err != nil || current(t, models) != first || filepath.Base(back) != first {
		t.Errorf("rollback: %q %v, current %q", back, err, current(t, models))
	}
	if _, err := Rollback(models); err != nil || current(t, models) != second {
		t.Errorf("undoing the rollback: %v, current %q", err, current(t, models))
	}
	if _, err := Rollback(t.TempDir()); !errors.Is(err, ErrNothingToUndo) {
		t.Errorf("rollback with nothing installed: %v", err)
	}
	if entries, _ := filepath.Glob(filepath.Join(models, ".staging-*")); len(entries) != 0 {
		t.Errorf("staging folders left: %v", entries)
	}
}

// FuzzReadBundle: no bundle, however malformed, crashes the reader, and
// none is accepted unless signed.
func FuzzReadBundle(f *testing.F) {
	var b bytes.Buffer
	tw := tar.NewWriter(&b)
	for _, e := range [][2]string{{"index.json", `{"format":"` + BundleFormat + `","files":[]}`}, {"index.sig", "AAAA"}} {
		tw.WriteHeader(&tar.Header{Name: e[0], Mode: 0o644, Size: int64(len(e[1])), Typeflag: tar.TypeReg})
		tw.Write([]byte(e[1]))
	}
	tw.Close()
	f.Add(b.Bytes())
	f.Add([]byte("not a tar"))
	pub, _, _ := ed25519.GenerateKey(nil)
	f.Fuzz(func(t *testing.T, data []byte) {
		if _, _, err := readBundle(bytes.NewReader(data), []ed25519.PublicKey{pub}); err == nil {
			t.Error("an unsigned bundle was accepted")
		}
	})
}
