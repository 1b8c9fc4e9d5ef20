package config

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

func TestEmptyFileIsDefaults(t *testing.T) {
	c, err := Parse("x.toml", nil)
	if err != nil {
		t.Fatal(err)
	}
	if c != Default() {
		t.Errorf("empty file: %+v", c)
	}
	if err := Default().Validate(); err != nil {
		t.Errorf("defaults invalid: %v", err)
	}
}

func TestParseOverrides(t *testing.T) {
	c, err := Parse("x.toml", []byte(`
# a comment
[camera]
source = "folder"
path = "/srv/fields"
[button]
debounce = "20ms"
long_press = "2s"
[display]
kind = "hd44780"
address = 0x3F
`))
	if err != nil {
		t.Fatal(err)
	}
	if c.Camera.Source != "folder" || c.Camera.Path != "/srv/fields" || c.Button.Debounce.Duration != 20*time.Millisecond ||
		c.Button.LongPress.Duration != 2*time.Second || c.Display.Kind != "hd44780" || c.Display.Address != 0x3F {
		t.Errorf("parsed %+v", c)
	}
	if c.Camera.Width != 2592 || c.Lights.Red != "GPIO13" {
		t.Error("defaults of keys left out were lost")
	}
}

// TestErrorsNameKeyAndLine: every kind of bad input names the key and the
// line a person must fix.
func TestErrorsNameKeyAndLine(t *testing.T) {
	cases := []struct {
		name, doc string
		key       string
		line      int
	}{
		{"unknown key", "[camera]\nwidth = 640\nwidht = 480\n", "camera.widht", 3},
		{"unknown section", "\n\n[camra]\nwidth = 1\n", "camra", 3},
		{"wrong type", "[camera]\n\nwidth = \"640\"\n", "camera.width", 3},
		{"bad duration", "[button]\ndebounce = \"fast\"\n", "button.debounce", 2},
		{"negative duration", "[button]\ndebounce = \"-5ms\"\n", "button.debounce", 2},
		{"bad enum", "[display]\n# which one\nkind = \"lcd\"\n", "display.kind", 3},
		{"out of range", "[camera]\nwidth = 640\nheight = 99999\n", "camera.height", 3},
		{"over the frame limit", "[camera]\nwidth = 8000\nheight = 6000\n", "camera.height", 3},
		{"dotted key form", "camera.height = -1\n", "camera.height", 1},
		{"cross-field", "[button]\nlong_press = \"10ms\"\n", "button.long_press", 2},
		{"range float", "[screening]\nrefer_alpha = 1.5\n", "screening.refer_alpha", 2},
		{"needs path", "[camera]\nsource = \"folder\"\n", "camera.path", 0}, // absent key: no line
		{"duplicate", "[camera]\nwidth = 1\nwidth = 2\n", "width", 3},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			_, err := Parse("allscreen.toml", []byte(c.doc))
			var ce *Error
			if !errors.As(err, &ce) {
				t.Fatalf("err = %v (%T), want *config.Error", err, err)
			}
			if ce.Key != c.key || ce.Line != c.line {
				t.Errorf("error %q: key %q line %d, want key %q line %d", err, ce.Key, ce.Line, c.key, c.line)
			}
			if !strings.HasPrefix(err.Error(), "allscreen.toml") || !strings.Contains(err.Error(), c.key) {
				t.Errorf("message %q should start with the file and name the key", err)
			}
		})
	}
}

// TestScreeningBounds (issue 15 item 3): outside research mode a screening
// setting that would make NO BLASTS SEEN easier to reach, or a referral
// harder, is refused with file, line and key; a more cautious one is
// accepted; research mode accepts any value in range and says so.
func TestScreeningBounds(t *testing.T) {
	unsafe := []struct{ doc, key string }{
		{"[screening]\nmin_white_cells = 1\nmax_uncertain_fraction = 1.0\n", "screening.min_white_cells"},
		{"[screening]\n\nmin_white_cells = 99\n", "screening.min_white_cells"},
		{"[screening]\nrefer_alpha = 0.001\n", "screening.refer_alpha"},
		{"[screening]\nrefer_blasts = 5\n", "screening.refer_blasts"},
		{"[screening]\nmax_uncertain_fraction = 1.0\n", "screening.max_uncertain_fraction"},
		{"[screening]\nmax_out_of_distribution_fraction = 0.5\n", "screening.max_out_of_distribution_fraction"},
	}
	for _, c := range unsafe {
		_, err := Parse("allscreen.toml", []byte(c.doc))
		var ce *Error
		if !errors.As(err, &ce) || ce.Key != c.key || ce.Line != strings.Count(c.doc[:strings.Index(c.doc, c.key[len("screening."):])], "\n")+1 {
			t.Errorf("%q: err %v, want a config.Error at key %s and its line", c.doc, err, c.key)
			continue
		}
		if !strings.Contains(err.Error(), "research") {
			t.Errorf("%q: %q does not say how research use is allowed", c.doc, err)
		}
		c, err := Parse("allscreen.toml", []byte(c.doc+"research = true\n"))
		if err != nil || !c.Screening.Research {
			t.Errorf("research mode: %v (research %v)", err, c.Screening.Research)
		}
	}
	cautious := "[screening]\nmin_white_cells = 200\nrefer_alpha = 0.05\nrefer_blasts = 1\nmax_uncertain_fraction = 0.1\nmax_out_of_distribution_fraction = 0.05\n"
	if c, err := Parse("allscreen.toml", []byte(cautious)); err != nil || c.Screening.Research {
		t.Errorf("more cautious settings: %v", err)
	}
	if _, err := Parse("allscreen.toml", []byte("[screening]\nresearch = true\nrefer_alpha = 1.5\n")); err == nil {
		t.Error("research mode accepted a value out of range")
	}
}

func TestSyntaxErrorHasLine(t *testing.T) {
	_, err := Parse("a.toml", []byte("[camera]\nwidth = \n"))
	var ce *Error
	if !errors.As(err, &ce) || ce.Line != 2 {
		t.Fatalf("err = %v", err)
	}
}

func TestLoad(t *testing.T) {
	dir := t.TempDir()
	if c, _, err := Load(filepath.Join(dir, "none.toml"), true); err != nil || c != Default() {
		t.Fatalf("optional missing file: %v", err)
	}
	if _, _, err := Load(filepath.Join(dir, "none.toml"), false); err == nil {
		t.Fatal("required missing file: want an error")
	}
	p := filepath.Join(dir, "a.toml")
	os.WriteFile(p, []byte("[daemon]\nlog_level = \"debug\"\n"), 0o644)
	c, raw, err := Load(p, false)
	if err != nil || c.Daemon.LogLevel != "debug" || len(raw) == 0 {
		t.Fatalf("Load: %v %+v", err, c.Daemon)
	}
}

// TestLoadRefusesSpecialFiles: a FIFO (which would block an ordinary open
// for ever), /dev/zero (endless) and a directory are refused at once with
// words, and an oversized regular file is refused after reading only
// MaxBytes+1 of it.
func TestLoadRefusesSpecialFiles(t *testing.T) {
	dir := t.TempDir()
	fifo := filepath.Join(dir, "fifo.toml")
	if err := syscall.Mkfifo(fifo, 0o600); err != nil {
		t.Fatal(err)
	}
	big := filepath.Join(dir, "big.toml")
	if err := os.WriteFile(big, bytes.Repeat([]byte("# comment\n"), MaxBytes/5), 0o644); err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct{ path, want string }{
		{fifo, "named pipe (FIFO), not a regular file"},
		{"/dev/zero", "character device, not a regular file"},
		{dir, "directory, not a regular file"},
		{big, "a configuration is a page of text"},
	} {
		done := make(chan error, 1)
		go func() {
			_, _, err := Load(c.path, true)
			done <- err
		}()
		select {
		case err := <-done:
			if err == nil || !strings.Contains(err.Error(), c.want) {
				t.Errorf("Load(%s): %v, want an error saying %q", c.path, err, c.want)
			}
		case <-time.After(10 * time.Second):
			t.Fatalf("Load(%s) still blocked after 10 s", c.path)
		}
	}
}

func TestSHA256ChangesWithValues(t *testing.T) {
	a, b := Default(), Default()
	b.Screening.MinWhiteCells++
	if a.SHA256() == b.SHA256() || a.SHA256() != Default().SHA256() || len(a.SHA256()) != 64 {
		t.Error("config hash must be stable and depend on values")
	}
}

// TestShippedConfigParses keeps the packaged default file in step with the
// code: it must parse, and every key it sets must equal the default.
func TestShippedConfigParses(t *testing.T) {
	data, err := os.ReadFile("../../systemd/allscreen.toml")
	if err != nil {
		t.Skip("systemd/allscreen.toml not written yet")
	}
	c, err := Parse("systemd/allscreen.toml", data)
	if err != nil {
		t.Fatal(err)
	}
	if c != Default() {
		t.Errorf("the shipped file differs from the defaults:\n%+v\n%+v", c, Default())
	}
}

// FuzzParse: any bytes give a config or an *Error, never a panic, and an
// accepted config always validates.
func FuzzParse(f *testing.F) {
	f.Add([]byte("[camera]\nwidth = 640\n"))
	f.Add([]byte("[button]\ndebounce = \"30ms\"\nlong_press = \"1s\"\n"))
	f.Add([]byte("camera.source = \"folder\"\ncamera.path = \"x\"\n"))
	f.Add([]byte("[[camera]]\n"))
	f.Add([]byte("[display]\naddress = 0x3c\nkind = 'hd44780'\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		c, err := Parse("f.toml", data)
		if err != nil {
			var ce *Error
			if !errors.As(err, &ce) {
				t.Fatalf("error of type %T: %v", err, err)
			}
			return
		}
		if err := c.Validate(); err != nil {
			t.Fatalf("accepted an invalid config: %v", err)
		}
	})
}

func TestCodePrefix(t *testing.T) {
	for doc, ok := range map[string]bool{"": true, "[screening]\ncode_prefix = \"K7\"\n": true, "[screening]\ncode_prefix = \"\"\n": true,
		"[screening]\ncode_prefix = \"K0\"\n": false, "[screening]\ncode_prefix = \"K7M\"\n": false, "[screening]\ncode_prefix = \"k7\"\n": false} {
		_, err := Parse("allscreen.toml", []byte(doc))
		if (err == nil) != ok {
			t.Errorf("%q: %v", doc, err)
		}
	}
}
