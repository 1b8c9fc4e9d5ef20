package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"allscreen/vision"
)

func TestReadFieldLabels(t *testing.T) {
	dir := t.TempDir()
	write := func(s string) {
		if err := os.WriteFile(filepath.Join(dir, "labels.csv"), []byte(s), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	write("file,label\npro-b/a.jpg,pro-b\nbenign/b.jpg,benign\n")
	files, labels, err := readFieldLabels(dir)
	if err != nil || len(files) != 2 || files[1] != filepath.Join(dir, "pro-b", "a.jpg") || labels[0] != "benign" {
		t.Fatalf("got %q %q %v", files, labels, err)
	}
	for _, bad := range []string{
		"file,label\n../x.jpg,pro-b\n",   // outside the folder
		"file,label\n/etc/x.jpg,pro-b\n", // absolute
		"name,label\na.jpg,pro-b\n",      // no file column
		"file,label\n",                   // no rows
	} {
		write(bad)
		if _, _, err := readFieldLabels(dir); err == nil {
			t.Errorf("%q: no error", bad)
		}
	}
}

func TestLabelledTally(t *testing.T) {
	var tl labelledTally
	good := vision.Quality{Issue: vision.QualityGood, WorkRadius: 10}
	bright := vision.Quality{Issue: vision.QualityTooBright}
	tl.add(good, 3)
	tl.add(good, 0)
	tl.add(bright, 2)
	tl.add(bright, 0)
	g := tl.group("x")
	if g.Fields != 4 || g.AnyFound.K != 2 || g.AnyFound.N != 4 || g.AnyFoundAccepted.K != 1 || g.AnyFoundAccepted.N != 2 ||
		g.Refuse["too-bright"] != 2 || g.WorkRadius != 10 {
		t.Errorf("%+v", g)
	}
	if s := countsList(g.Refuse, "none"); !strings.Contains(s, "too-bright 2") {
		t.Errorf("refusals %q", s)
	}
}
