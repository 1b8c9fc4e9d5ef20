package durable

import (
	"os"
	"path/filepath"
	"testing"
)

func TestWriteNewRefusesAnExistingFile(t *testing.T) {
	p := filepath.Join(t.TempDir(), "f")
	if err := WriteNew(p, []byte("one"), 0o640); err != nil {
		t.Fatal(err)
	}
	if err := WriteNew(p, []byte("two"), 0o640); err == nil {
		t.Error("overwrote an existing file")
	}
	if b, _ := os.ReadFile(p); string(b) != "one" {
		t.Errorf("content %q", b)
	}
	if st, _ := os.Stat(p); st.Mode().Perm() != 0o640 {
		t.Errorf("mode %v", st.Mode().Perm())
	}
	if err := SyncDir(filepath.Dir(p)); err != nil {
		t.Error(err)
	}
	if err := SyncDir(filepath.Join(t.TempDir(), "missing")); err == nil {
		t.Error("synced a missing folder")
	}
}
