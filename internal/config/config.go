// Package config reads the appliance's one configuration file,
// /etc/allscreen/allscreen.toml. Every setting has a default, so an empty
// file (or none) is a working configuration; an unknown key, a value of the
// wrong type or out of range is an error that names the key and its line.
package config

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"strconv"
	"strings"
	"syscall"
	"time"

	toml "github.com/pelletier/go-toml/v2"
	"github.com/pelletier/go-toml/v2/unstable"
)

// DefaultPath is where the packaged service reads its configuration.
const DefaultPath = "/etc/allscreen/allscreen.toml"

// MaxFramePixels is screening.MaxFramePixels, the largest frame analysed
// (cmd/allscreend's TestFrameLimitsAgree checks they agree; config does not
// import screening).
const MaxFramePixels = 32_000_000

// CodeAlphabet is screening.CodeAlphabet, the sample codes' characters
// (config does not import screening; cmd/allscreend's
// TestCodeAlphabetsAgree checks they agree).
const CodeAlphabet = "23456789ABCDEFGHJKMNPQRSTUVWXYZ"

// MaxBytes bounds the file: a config is a page of text.
const MaxBytes = 1 << 20

// Duration is a time.Duration written as "30ms", "1.5s" in the file.
type Duration struct{ time.Duration }

// UnmarshalText implements encoding.TextUnmarshaler.
func (d *Duration) UnmarshalText(b []byte) error {
	v, err := time.ParseDuration(string(b))
	if err != nil {
		return fmt.Errorf("%q is not a duration (write e.g. \"30ms\" or \"1.5s\")", b)
	}
	if v < 0 {
		return fmt.Errorf("%q is negative", b)
	}
	d.Duration = v
	return nil
}

// MarshalText implements encoding.TextMarshaler.
func (d Duration) MarshalText() ([]byte, error) { return []byte(d.String()), nil }

// Config is the whole configuration. The toml tags are the file's keys.
type Config struct {
	Camera    Camera    `toml:"camera"`
	Button    Button    `toml:"button"`
	Lights    Lights    `toml:"lights"`
	Display   Display   `toml:"display"`
	Model     Model     `toml:"model"`
	Storage   Storage   `toml:"storage"`
	Screening Screening `toml:"screening"`
	Daemon    Daemon    `toml:"daemon"`
	Review    Review    `toml:"review"`
}

// Review is the review station (allscreen-review), a process of its own:
// the capture daemon keeps no network.
type Review struct {
	// Listen is the one address the station serves, host:port with an IP
	// address: loopback for a kiosk browser on the device's own screen, or
	// one LAN or USB-gadget address. Never every address (0.0.0.0, ::).
	Listen string `toml:"listen"`
	// ExportDir is where a USB stick is mounted for exporting signed
	// reports; it must be a filesystem other than the results' own.
	ExportDir string `toml:"export_dir"`
}

// Camera says where fields come from.
type Camera struct {
	// Source: "usb" (a V4L2 microscope), "folder" (images in Path, for
	// the simulator and demos) or "sequence" (a printf pattern in Path).
	Source string `toml:"source"`
	Device int    `toml:"device"` // /dev/videoN for "usb"
	Width  int    `toml:"width"`
	Height int    `toml:"height"`
	// Discard: queued frames dropped so a field is taken after the press.
	Discard int    `toml:"discard"`
	Path    string `toml:"path"`
}

// Button is the capture button.
type Button struct {
	Pin       string   `toml:"pin"` // periph name, e.g. "GPIO17"
	ActiveLow bool     `toml:"active_low"`
	Debounce  Duration `toml:"debounce"`
	LongPress Duration `toml:"long_press"`
}

// Lights are the three LEDs' pins; "" means not fitted.
type Lights struct {
	Green string `toml:"green"`
	Amber string `toml:"amber"`
	Red   string `toml:"red"`
}

// Display is the text display.
type Display struct {
	Kind    string `toml:"kind"` // "ssd1306", "hd44780" or "none"
	Bus     string `toml:"bus"`  // I2C bus name for periph, "1" on a Pi
	Address int    `toml:"address"`
}

// Model names the classifier.
type Model struct {
	Manifest        string `toml:"manifest"`
	SubtypeManifest string `toml:"subtype_manifest"`
	// Calibration: the laboratory's calibration file (`allscreen
	// calibrate`), or "" for the model's own out-of-distribution threshold
	// and per-cell false-positive rate.
	Calibration string `toml:"calibration"`
}

// Storage is where results live.
type Storage struct {
	StateDir string `toml:"state_dir"`
	// MinFreeMB: below this much free space the self-test fails (a field
	// with its crops is a few MB).
	MinFreeMB int `toml:"min_free_mb"`
}

// Screening holds the verdict rule's configurable part (the per-cell
// thresholds come from the model's manifest).
//
// Outside research mode each setting may only move a verdict towards
// review or referral from the values the published figures were made
// with (Default): at least 100 confident cells for NO BLASTS SEEN, no more
// uncertain or unfamiliar cells tolerated, no harder referral. A research
// mode allows any value in range, and then every screen and every stored
// record says RESEARCH.
type Screening struct {
	MinWhiteCells                int     `toml:"min_white_cells"`
	ReferAlpha                   float64 `toml:"refer_alpha"`
	ReferBlasts                  int     `toml:"refer_blasts"`
	MaxUncertainFraction         float64 `toml:"max_uncertain_fraction"`
	MaxOutOfDistributionFraction float64 `toml:"max_out_of_distribution_fraction"`
	// Research allows settings outside the validated bounds; its results
	// are marked RESEARCH everywhere and are not for patients.
	Research bool `toml:"research"`
	// MaxOpen: a sample open longer than this is closed as INCOMPLETE
	// (a slide left under the microscope, the next patient's put there).
	MaxOpen Duration `toml:"max_open"`
	// CodePrefix starts every sample code, so two devices never issue the
	// same one: "auto" (two characters derived from the board's serial),
	// "" (none), or up to 2 characters of the code alphabet.
	CodePrefix string `toml:"code_prefix"`
}

// Daemon is the service's own behaviour.
type Daemon struct {
	// Retry: how often a failed self-test check is tried again.
	Retry Duration `toml:"retry"`
	// LogLevel: "debug", "info", "warn" or "error".
	LogLevel string `toml:"log_level"`
}

// Default returns the configuration used for anything the file leaves out.
// The screening defaults match screening.DefaultRuleConfig (a test checks).
func Default() Config {
	return Config{
		Camera:  Camera{Source: "usb", Device: 0, Width: 2592, Height: 1944, Discard: 2},
		Button:  Button{Pin: "GPIO17", ActiveLow: true, Debounce: Duration{30 * time.Millisecond}, LongPress: Duration{1500 * time.Millisecond}},
		Lights:  Lights{Green: "GPIO5", Amber: "GPIO6", Red: "GPIO13"},
		Display: Display{Kind: "ssd1306", Bus: "1", Address: 0},
		Model:   Model{Manifest: "/usr/share/allscreen/model/detect.json"},
		Storage: Storage{StateDir: "/var/lib/allscreen", MinFreeMB: 200},
		Screening: Screening{MinWhiteCells: 100, ReferAlpha: 0.01, ReferBlasts: 2,
			MaxUncertainFraction: 0.25, MaxOutOfDistributionFraction: 0.10, MaxOpen: Duration{2 * time.Hour}, CodePrefix: "auto"},
		Daemon: Daemon{Retry: Duration{5 * time.Second}, LogLevel: "info"},
		Review: Review{Listen: "127.0.0.1:8480", ExportDir: "/media/usb"},
	}
}

// Error is a configuration error at a place in the file.
type Error struct {
	File string
	Line int    // 0 when not known (the key is absent, so a default or flag)
	Key  string // dotted, e.g. "camera.width"
	Msg  string
}

func (e *Error) Error() string {
	var b strings.Builder
	b.WriteString(e.File)
	if e.Line > 0 {
		fmt.Fprintf(&b, ":%d", e.Line)
	}
	if e.Key != "" {
		fmt.Fprintf(&b, ": %s", e.Key)
	}
	fmt.Fprintf(&b, ": %s", e.Msg)
	return b.String()
}

// Load reads path. A missing file is not an error (the defaults apply) when
// optional is true: the packaged service always has one, a developer's
// machine may not. Only a regular file is read, and at most MaxBytes+1 of
// it: a FIFO, a device such as /dev/zero or a directory is refused at once,
// without blocking or reading without end.
func Load(path string, optional bool) (Config, []byte, error) {
	data, err := readFile(path)
	if errors.Is(err, os.ErrNotExist) && optional {
		return Default(), nil, nil
	}
	if err != nil {
		return Config{}, nil, fmt.Errorf("config: %w", err)
	}
	c, err := Parse(path, data)
	return c, data, err
}

// readFile reads a configuration file: opened without blocking (a FIFO
// with no writer would hang an ordinary open), its type checked on the
// open descriptor (so a swap between a check and the open cannot pass a
// FIFO), and read through a limit.
func readFile(path string) ([]byte, error) {
	f, err := os.OpenFile(path, os.O_RDONLY|syscall.O_NONBLOCK, 0)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return nil, err
	}
	if !st.Mode().IsRegular() {
		return nil, &Error{File: path, Msg: fmt.Sprintf("is a %s, not a regular file", fileKind(st.Mode()))}
	}
	data, err := io.ReadAll(io.LimitReader(f, MaxBytes+1))
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return data, nil
}

// fileKind names a file mode's type for an error.
func fileKind(m os.FileMode) string {
	switch {
	case m.IsDir():
		return "directory"
	case m&os.ModeNamedPipe != 0:
		return "named pipe (FIFO)"
	case m&os.ModeCharDevice != 0:
		return "character device"
	case m&os.ModeDevice != 0:
		return "device"
	case m&os.ModeSocket != 0:
		return "socket"
	}
	return "special file"
}

// Parse decodes a configuration file's contents over the defaults and
// validates the result. name is used in errors.
func Parse(name string, data []byte) (Config, error) {
	c := Default()
	if len(data) > MaxBytes {
		return Config{}, &Error{File: name, Msg: fmt.Sprintf("file is over %d bytes; a configuration is a page of text", MaxBytes)}
	}
	dec := toml.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&c); err != nil {
		return Config{}, decodeError(name, err)
	}
	if err := c.Validate(); err != nil {
		var ce *Error
		if errors.As(err, &ce) {
			ce.File = name
			ce.Line = keyLine(data, ce.Key)
		}
		return Config{}, err
	}
	return c, nil
}

func decodeError(name string, err error) error {
	var sm *toml.StrictMissingError
	if errors.As(err, &sm) && len(sm.Errors) > 0 {
		// Report the first unknown key; a person fixes one at a time.
		e := sm.Errors[0]
		row, _ := e.Position()
		key := strings.Join(e.Key(), ".")
		return &Error{File: name, Line: row, Key: key, Msg: "unknown key (misspelt, or in the wrong [section]?)"}
	}
	var de *toml.DecodeError
	if errors.As(err, &de) {
		row, _ := de.Position()
		msg := strings.TrimPrefix(de.Error(), "toml: ")
		// go-toml names Go types ("struct field ... of type int"): say it
		// in the file's terms.
		if strings.Contains(msg, "cannot decode TOML") {
			msg = "wrong type of value: " + tomlTypeHint(msg)
		}
		return &Error{File: name, Line: row, Key: strings.Join(de.Key(), "."), Msg: msg}
	}
	return &Error{File: name, Msg: err.Error()}
}

func tomlTypeHint(msg string) string {
	switch {
	case strings.HasSuffix(msg, "of type int"):
		return "want a whole number"
	case strings.HasSuffix(msg, "of type float64"):
		return "want a number"
	case strings.HasSuffix(msg, "of type bool"):
		return "want true or false"
	case strings.HasSuffix(msg, "of type string"):
		return "want a quoted string"
	}
	return "see the default configuration for the expected form"
}

// keyLine finds the line of a dotted key in a TOML document, or 0. It uses
// go-toml's parser so tables, dotted keys and comments are handled as the
// decoder sees them.
func keyLine(data []byte, dotted string) int {
	if dotted == "" {
		return 0
	}
	p := unstable.Parser{}
	p.Reset(data)
	var table []string
	for p.NextExpression() {
		e := p.Expression()
		switch e.Kind {
		case unstable.Table, unstable.ArrayTable:
			table = keyParts(e.Key())
		case unstable.KeyValue:
			k := append(append([]string(nil), table...), keyParts(e.Key())...)
			if strings.Join(k, ".") == dotted {
				it := e.Key()
				it.Next()
				return p.Shape(it.Node().Raw).Start.Line
			}
		}
	}
	return 0
}

func keyParts(it unstable.Iterator) []string {
	var out []string
	for it.Next() {
		out = append(out, string(it.Node().Data))
	}
	return out
}

// Validate checks every value; the error names the key.
func (c Config) Validate() error {
	bad := func(key, format string, a ...any) error {
		return &Error{Key: key, Msg: fmt.Sprintf(format, a...)}
	}
	switch c.Camera.Source {
	case "usb":
		if c.Camera.Device < 0 {
			return bad("camera.device", "must be 0 or more (the N of /dev/videoN)")
		}
	case "folder", "sequence":
		if c.Camera.Path == "" {
			return bad("camera.path", "camera.source %q needs a path", c.Camera.Source)
		}
	default:
		return bad("camera.source", "%q is not one of usb, folder, sequence", c.Camera.Source)
	}
	if c.Camera.Width < 0 || c.Camera.Width > 16384 {
		return bad("camera.width", "%d is outside 0..16384", c.Camera.Width)
	}
	if c.Camera.Height < 0 || c.Camera.Height > 16384 {
		return bad("camera.height", "%d is outside 0..16384", c.Camera.Height)
	}
	if int64(c.Camera.Width)*int64(c.Camera.Height) > MaxFramePixels {
		return bad("camera.height", "%dx%d is %.1f megapixels, over the %d the appliance analyses within its memory limit",
			c.Camera.Width, c.Camera.Height, float64(c.Camera.Width)*float64(c.Camera.Height)/1e6, MaxFramePixels/1_000_000)
	}
	if c.Camera.Discard < 0 || c.Camera.Discard > 30 {
		return bad("camera.discard", "%d is outside 0..30", c.Camera.Discard)
	}
	if c.Button.Debounce.Duration > time.Second {
		return bad("button.debounce", "%v is longer than a second: presses would be lost", c.Button.Debounce)
	}
	if c.Button.LongPress.Duration <= c.Button.Debounce.Duration || c.Button.LongPress.Duration > 10*time.Second {
		return bad("button.long_press", "%v must be longer than button.debounce and at most 10s", c.Button.LongPress)
	}
	switch c.Display.Kind {
	case "ssd1306", "hd44780", "none":
	default:
		return bad("display.kind", "%q is not one of ssd1306, hd44780, none", c.Display.Kind)
	}
	if c.Display.Address < 0 || c.Display.Address > 0x7f {
		return bad("display.address", "%#x is not a 7-bit I2C address (0 means the display's usual one)", c.Display.Address)
	}
	if c.Model.Manifest == "" {
		return bad("model.manifest", "is required: the path of the detection model's manifest")
	}
	if c.Storage.StateDir == "" {
		return bad("storage.state_dir", "is required")
	}
	if c.Storage.MinFreeMB < 0 {
		return bad("storage.min_free_mb", "must be 0 or more")
	}
	s := c.Screening
	switch {
	case s.MinWhiteCells < 1:
		return bad("screening.min_white_cells", "must be at least 1")
	case !(s.ReferAlpha > 0 && s.ReferAlpha < 1):
		return bad("screening.refer_alpha", "%v must lie strictly between 0 and 1", s.ReferAlpha)
	case s.ReferBlasts < 1:
		return bad("screening.refer_blasts", "must be at least 1")
	case !(s.MaxUncertainFraction >= 0 && s.MaxUncertainFraction <= 1):
		return bad("screening.max_uncertain_fraction", "%v must lie in 0..1", s.MaxUncertainFraction)
	case !(s.MaxOutOfDistributionFraction >= 0 && s.MaxOutOfDistributionFraction <= 1):
		return bad("screening.max_out_of_distribution_fraction", "%v must lie in 0..1", s.MaxOutOfDistributionFraction)
	}
	if s.MaxOpen.Duration < 10*time.Minute || s.MaxOpen.Duration > 24*time.Hour {
		return bad("screening.max_open", "%v is outside 10m..24h", s.MaxOpen)
	}
	if s.CodePrefix != "auto" && (len(s.CodePrefix) > 2 || strings.Trim(s.CodePrefix, CodeAlphabet) != "") {
		return bad("screening.code_prefix", "%q: \"auto\", \"\" or up to 2 of %s", s.CodePrefix, CodeAlphabet)
	}
	if !s.Research {
		if err := s.validated(); err != nil {
			return err
		}
	}
	if c.Daemon.Retry.Duration < 100*time.Millisecond {
		return bad("daemon.retry", "%v is shorter than 100ms", c.Daemon.Retry)
	}
	switch c.Daemon.LogLevel {
	case "debug", "info", "warn", "error":
	default:
		return bad("daemon.log_level", "%q is not one of debug, info, warn, error", c.Daemon.LogLevel)
	}
	if err := c.Review.validate(); err != nil {
		return bad("review.listen", "%v", err)
	}
	return nil
}

func (r Review) validate() error {
	host, port, err := net.SplitHostPort(r.Listen)
	if err != nil {
		return fmt.Errorf("%q is not host:port", r.Listen)
	}
	ip := net.ParseIP(host)
	switch n, perr := strconv.Atoi(port); {
	case ip == nil:
		return fmt.Errorf("%q: the host must be an IP address, such as 127.0.0.1 or the USB gadget's", host)
	case ip.IsUnspecified():
		return fmt.Errorf("%q would serve every network: name one address", host)
	case perr != nil || n < 1 || n > 65535:
		return fmt.Errorf("port %q is not 1-65535", port)
	}
	return nil
}

// validated refuses a setting that makes a verdict less safe than the
// defaults the published figures were made with.
func (s Screening) validated() error {
	v := Default().Screening
	unsafe := func(key, format string, a ...any) error {
		return &Error{Key: key, Msg: fmt.Sprintf(format, a...) +
			"; outside research mode a setting may only make a verdict more cautious (set screening.research = true for research use: every result is then marked RESEARCH)"}
	}
	switch {
	case s.MinWhiteCells < v.MinWhiteCells:
		return unsafe("screening.min_white_cells", "%d is below the %d confident cells NO BLASTS SEEN needs (none in %d bounds the blast share under 3%%)",
			s.MinWhiteCells, v.MinWhiteCells, v.MinWhiteCells)
	case s.ReferAlpha < v.ReferAlpha:
		return unsafe("screening.refer_alpha", "%v is below the validated %v: blasts would be explained away as the model's errors more often", s.ReferAlpha, v.ReferAlpha)
	case s.ReferBlasts > v.ReferBlasts:
		return unsafe("screening.refer_blasts", "%d is above the validated %d: more blasts would be needed to refer", s.ReferBlasts, v.ReferBlasts)
	case s.MaxUncertainFraction > v.MaxUncertainFraction:
		return unsafe("screening.max_uncertain_fraction", "%v is above the validated %v", s.MaxUncertainFraction, v.MaxUncertainFraction)
	case s.MaxOutOfDistributionFraction > v.MaxOutOfDistributionFraction:
		return unsafe("screening.max_out_of_distribution_fraction", "%v is above the validated %v", s.MaxOutOfDistributionFraction, v.MaxOutOfDistributionFraction)
	}
	return nil
}

// SHA256 is the hash of the effective configuration (after defaults and
// flags), stored with every result so a result says what produced it.
func (c Config) SHA256() string {
	b, err := toml.Marshal(c)
	if err != nil {
		return ""
	}
	h := sha256.Sum256(b)
	return hex.EncodeToString(h[:])
}
