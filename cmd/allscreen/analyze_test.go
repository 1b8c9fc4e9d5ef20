package main

import (
	"bufio"
	"bytes"
	"encoding/binary"
	"encoding/json"
	"errors"
	"hash/crc32"
	"image"
	"image/color"
	"image/jpeg"
	"image/png"
	"math"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// smearImage draws a small smear: plasma, a grid of red cells and two white
// cells (purple nucleus, pale blue cytoplasm).
func smearImage() *image.NRGBA {
	const w, h = 480, 360
	img := image.NewNRGBA(image.Rect(0, 0, w, h))
	paint := func(cx, cy, r float64, c color.NRGBA) {
		for y := range h {
			for x := range w {
				if math.Hypot(float64(x)-cx, float64(y)-cy) <= r {
					img.SetNRGBA(x, y, c)
				}
			}
		}
	}
	paint(240, 180, 1e9, color.NRGBA{R: 157, G: 154, B: 158, A: 255})
	for y := 20.0; y < h; y += 40 {
		for x := 20.0; x < w; x += 40 {
			paint(x+float64(int(y)%80)/4, y, 12, color.NRGBA{R: 144, G: 124, B: 130, A: 255})
		}
	}
	for _, c := range [][2]float64{{120, 100}, {350, 250}} {
		paint(c[0], c[1], 19, color.NRGBA{R: 126, G: 116, B: 150, A: 255})
		paint(c[0], c[1], 15, color.NRGBA{R: 84, G: 36, B: 120, A: 255})
	}
	return img
}

func encode(t *testing.T, img image.Image, format string) []byte {
	t.Helper()
	var b bytes.Buffer
	var err error
	if format == "jpeg" {
		err = jpeg.Encode(&b, img, &jpeg.Options{Quality: 92})
	} else {
		err = png.Encode(&b, img)
	}
	if err != nil {
		t.Fatal(err)
	}
	return b.Bytes()
}

// hugePNGHeader is a PNG that claims w x h pixels but holds none.
func hugePNGHeader(w, h uint32) []byte {
	var b bytes.Buffer
	b.WriteString("\x89PNG\r\n\x1a\n")
	chunk := func(typ string, data []byte) {
		binary.Write(&b, binary.BigEndian, uint32(len(data)))
		b.WriteString(typ)
		b.Write(data)
		binary.Write(&b, binary.BigEndian, crc32.ChecksumIEEE(append([]byte(typ), data...)))
	}
	ihdr := make([]byte, 13)
	binary.BigEndian.PutUint32(ihdr[0:], w)
	binary.BigEndian.PutUint32(ihdr[4:], h)
	ihdr[8], ihdr[9] = 8, 2
	chunk("IHDR", ihdr)
	chunk("IDAT", []byte{0x78, 0x9c, 0x03, 0x00, 0x00, 0x00, 0x00, 0x01})
	chunk("IEND", nil)
	return b.Bytes()
}

// TestAnalyzeBadInputs runs the analyze command end to end on a mix of good
// and bad files: every bad one gets an error naming it, the good ones are
// still analysed, and the command fails overall (exit status 1).
func TestAnalyzeBadInputs(t *testing.T) {
	dir := t.TempDir()
	smear := smearImage()
	grey := image.NewGray(smear.Bounds())
	grey16 := image.NewGray16(smear.Bounds())
	alpha := image.NewNRGBA(smear.Bounds())
	for y := range smear.Bounds().Dy() {
		for x := range smear.Bounds().Dx() {
			c := smear.NRGBAAt(x, y)
			grey.SetGray(x, y, color.Gray{Y: c.G})
			grey16.SetGray16(x, y, color.Gray16{Y: uint16(c.G) << 8})
			c.A = 128
			alpha.SetNRGBA(x, y, c)
		}
	}
	pngData := encode(t, smear, "png")
	jpegData := encode(t, smear, "jpeg")
	write := func(name string, data []byte) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, data, 0o644); err != nil {
			t.Fatal(err)
		}
		return p
	}
	good := []string{
		write("smear.png", pngData),
		write("smear.jpg", jpegData),
		write("grey.png", encode(t, grey, "png")),
		write("grey16.png", encode(t, grey16, "png")),
		write("alpha.png", encode(t, alpha, "png")),
	}
	sub := filepath.Join(dir, "a-directory")
	if err := os.Mkdir(sub, 0o755); err != nil {
		t.Fatal(err)
	}
	bad := map[string]string{
		write("empty.png", nil):                                                    "empty file",
		write("cut.png", pngData[:len(pngData)/2]):                                 "truncated",
		write("cut.jpg", jpegData[:len(jpegData)/2]):                               "truncated",
		write("notes.txt", []byte("not an image\n")):                               "not a PNG, JPEG, BMP or TIFF",
		write("one.png", encode(t, image.NewNRGBA(image.Rect(0, 0, 1, 1)), "png")): "smaller than",
		write("huge.png", hugePNGHeader(40000, 40000)):                             "larger than",
		sub:                               "is a directory",
		filepath.Join(dir, "missing.png"): "no such file",
	}
	args := []string{"--json", "--overlay", filepath.Join(dir, "overlays")}
	// Interleave, so a failure cannot stop the files after it.
	var order []string
	i := 0
	for p := range bad {
		order = append(order, p)
		if i < len(good) {
			order = append(order, good[i])
			i++
		}
	}
	order = append(order, good[i:]...)
	var stdout, stderr bytes.Buffer
	err := runAnalyze(append(args, order...), &stdout, &stderr)
	if !errors.Is(err, errSomeFailed) {
		t.Fatalf("error %v, want errSomeFailed (exit status 1)", err)
	}
	var results []analyzeJSON
	sc := bufio.NewScanner(&stdout)
	for sc.Scan() {
		var r analyzeJSON
		if err := json.Unmarshal(sc.Bytes(), &r); err != nil {
			t.Fatalf("not one JSON object per line: %q: %v", sc.Text(), err)
		}
		results = append(results, r)
	}
	if len(results) != len(order) {
		t.Fatalf("%d results for %d files", len(results), len(order))
	}
	for k, r := range results {
		if r.File != order[k] {
			t.Errorf("result %d is for %s, want %s", k, r.File, order[k])
		}
		if msg, isBad := bad[r.File]; isBad {
			if r.Error == "" || !strings.Contains(r.Error, msg) || !strings.Contains(r.Error, r.File) {
				t.Errorf("%s: error %q should name the file and say %q", r.File, r.Error, msg)
			}
			if !strings.Contains(stderr.String(), r.File) {
				t.Errorf("%s: not reported on stderr", r.File)
			}
			continue
		}
		if r.Error != "" || r.Quality == nil {
			t.Errorf("%s: %q, quality %v", r.File, r.Error, r.Quality)
			continue
		}
		if _, err := os.Stat(r.Overlay); err != nil {
			t.Errorf("%s: overlay %q: %v", r.File, r.Overlay, err)
		}
	}
	// The colour smear has its two white cells found (grey copies have no
	// stain colour, so no count is asked of them).
	for _, r := range results {
		if (strings.HasSuffix(r.File, "smear.png") || strings.HasSuffix(r.File, "smear.jpg")) && len(r.Cells) != 2 {
			t.Errorf("%s: %d cells, want 2: %+v", r.File, len(r.Cells), r.Cells)
		}
	}
	if !strings.Contains(stderr.String(), "8 of 13 files failed") {
		t.Errorf("stderr does not sum up the failures:\n%s", stderr.String())
	}
}

// TestAnalyzeExitStatus: through the dispatcher, all good is 0, any bad
// file is 1, no file is a usage error (2).
func TestAnalyzeExitStatus(t *testing.T) {
	dir := t.TempDir()
	good := filepath.Join(dir, "smear.png")
	if err := os.WriteFile(good, encode(t, smearImage(), "png"), 0o644); err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		args []string
		want int
	}{
		{[]string{"analyze", good}, 0},
		{[]string{"analyze", "--json", good, filepath.Join(dir, "missing.png")}, 1},
		{[]string{"analyze", dir}, 1},
		{[]string{"analyze"}, 2},
	} {
		if got, _ := runCaptured(t, c.args...); got != c.want {
			t.Errorf("allscreen %v: exit %d, want %d", c.args, got, c.want)
		}
	}
}

// TestAnalyzeWithModel (issue 13): --model classifies each cell found, as
// the appliance calls it, and the overlay is coloured by call.
func TestAnalyzeWithModel(t *testing.T) {
	dir := t.TempDir()
	var stdout, stderr bytes.Buffer
	imgs := []string{"../../samples/blast_cnmc_UID_1_2_2_all.png", "../../samples/normal_pbc_LY_6217.jpg"}
	err := runAnalyze(append([]string{"--json", "--model", "../../model/shipped/detect.json", "--overlay", dir}, imgs...), &stdout, &stderr)
	if err != nil {
		t.Fatalf("%v: %s", err, stderr.String())
	}
	dec := json.NewDecoder(&stdout)
	for range imgs {
		var res analyzeJSON
		if err := dec.Decode(&res); err != nil {
			t.Fatal(err)
		}
		if len(res.Cells) == 0 {
			t.Fatalf("%s: no cells", res.File)
		}
		for _, c := range res.Cells {
			if c.PBlast == nil || *c.PBlast < 0 || *c.PBlast > 1 ||
				!strings.Contains(" blast not-blast uncertain unlike-training-data ", " "+c.Call+" ") {
				t.Errorf("%s: cell %+v has no call", res.File, c)
			}
		}
		if _, err := os.Stat(res.Overlay); err != nil {
			t.Errorf("overlay: %v", err)
		}
	}
	if err := runAnalyze([]string{"--model", filepath.Join(dir, "missing.json"), imgs[0]}, &stdout, &stderr); err == nil {
		t.Error("a missing model was accepted")
	}
}

// TestEvalPredictionsWithModel (issue 13): eval --model --predictions
// writes one row per image with named probabilities.
func TestEvalPredictionsWithModel(t *testing.T) {
	data := t.TempDir()
	for label, names := range map[string][]string{"blast": {"blast_cnmc_UID_1_2_2_all.png", "blast_cnmc_UID_1_3_1_all.png"},
		"normal": {"normal_pbc_LY_6217.jpg"}} {
		os.MkdirAll(filepath.Join(data, label), 0o755)
		for _, n := range names {
			b, err := os.ReadFile(filepath.Join("../../samples", n))
			if err != nil {
				t.Fatal(err)
			}
			os.WriteFile(filepath.Join(data, label, n), b, 0o644)
		}
	}
	out := filepath.Join(t.TempDir(), "p.csv")
	if code := run([]string{"eval", "--model", "../../model/shipped/detect.json", "--data", data, "--predictions", out, "--json"}); code != 0 {
		t.Fatalf("exit %d", code)
	}
	b, err := os.ReadFile(out)
	if err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimSpace(string(b)), "\n")
	if len(lines) != 4 || !strings.HasPrefix(lines[0], "file,group,label,predicted,probs (label=P)") ||
		!strings.Contains(lines[1], "normal=") || !strings.Contains(lines[1], ";blast=") {
		t.Errorf("predictions:\n%s", b)
	}
}
