package main

import (
	"bufio"
	"bytes"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"allscreen/internal/config"
	"allscreen/screening"
)

// The daemon tests run the real binary, built once.
var (
	buildOnce sync.Once
	binPath   string
	buildErr  error
)

func daemonBinary(t testing.TB) string {
	t.Helper()
	buildOnce.Do(func() {
		dir, err := os.MkdirTemp("", "allscreend-test")
		if err != nil {
			buildErr = err
			return
		}
		binPath = filepath.Join(dir, "allscreend")
		out, err := exec.Command("go", "build", "-o", binPath, ".").CombinedOutput()
		if err != nil {
			buildErr = fmt.Errorf("go build: %v\n%s", err, out)
		}
	})
	if buildErr != nil {
		t.Fatal(buildErr)
	}
	return binPath
}

func repoRoot(t testing.TB) string {
	t.Helper()
	_, file, _, _ := runtime.Caller(0)
	return filepath.Join(filepath.Dir(file), "..", "..")
}

// daemon is a running allscreend --sim with its panel lines collected.
type daemon struct {
	cmd   *exec.Cmd
	lines chan string
	mu    sync.Mutex
	all   []string
	err   lockedBuffer
	done  chan struct{}
}

// lockedBuffer collects the daemon's stderr; a failing test reads it while
// the process may still be writing.
type lockedBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *lockedBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *lockedBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

func startDaemon(t testing.TB, env []string, args ...string) *daemon {
	t.Helper()
	cmd := exec.Command(daemonBinary(t), args...)
	cmd.Env = append(os.Environ(), env...)
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	d := &daemon{cmd: cmd, lines: make(chan string, 1000), done: make(chan struct{})}
	cmd.Stderr = &d.err
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() {
		sc := bufio.NewScanner(out)
		for sc.Scan() {
			d.mu.Lock()
			d.all = append(d.all, sc.Text())
			d.mu.Unlock()
			select {
			case d.lines <- sc.Text():
			default:
			}
		}
		close(d.lines)
	}()
	go func() { cmd.Wait(); close(d.done) }()
	return d
}

// wait reads panel lines until one contains want; false when the daemon
// ended first. The deadline only stops a broken test from hanging.
func (d *daemon) wait(t testing.TB, want string) bool {
	t.Helper()
	l, ok := d.until(func(l string) bool { return strings.Contains(l, want) })
	if !ok && l == "timeout" {
		t.Fatalf("no %q from the daemon; stderr:\n%s", want, d.err.String())
	}
	return ok
}

// next returns the next line starting with prefix ("" when the daemon
// ended or a minute passed).
func (d *daemon) next(t testing.TB, prefix string) string {
	t.Helper()
	l, ok := d.until(func(l string) bool { return strings.HasPrefix(l, prefix) })
	if !ok {
		return ""
	}
	return l
}

// until reads panel lines until match takes one (it returns it, true);
// false with "" when the daemon ended, "timeout" after a minute.
func (d *daemon) until(match func(string) bool) (string, bool) {
	deadline := time.After(60 * time.Second)
	for {
		select {
		case l, ok := <-d.lines:
			if !ok {
				return "", false
			}
			if match(l) {
				return l, true
			}
		case <-deadline:
			return "timeout", false
		}
	}
}

func (d *daemon) output() []string {
	d.mu.Lock()
	defer d.mu.Unlock()
	return append([]string(nil), d.all...)
}

func simArgs(t testing.TB, state string) []string {
	root := repoRoot(t)
	return []string{"--sim", "--config", filepath.Join(t.TempDir(), "none.toml"), "--state-dir", state,
		"--model", filepath.Join(root, "model", "shipped", "detect.json"),
		"--camera-folder", filepath.Join(root, "samples")}
}

func TestConfigErrorExits78(t *testing.T) {
	p := filepath.Join(t.TempDir(), "allscreen.toml")
	os.WriteFile(p, []byte("[camera]\nwidth = 640\n\n[display]\nkind = \"lcd\"\n"), 0o644)
	cmd := exec.Command(daemonBinary(t), "--config", p)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	err := cmd.Run()
	ee, ok := err.(*exec.ExitError)
	if !ok || ee.ExitCode() != exitConfig {
		t.Fatalf("exit: %v, want code %d", err, exitConfig)
	}
	if msg := stderr.String(); !strings.Contains(msg, p+":5: display.kind") {
		t.Errorf("stderr %q should name the file, line 5 and display.kind", msg)
	}
}

// TestOneDaemonPerStateDir (issue 15 item 2): a second daemon on the
// same state directory refuses to start, naming the first; once the first
// is gone (killed: the kernel drops its lock) a new one starts.
func TestOneDaemonPerStateDir(t *testing.T) {
	state := t.TempDir()
	args := simArgs(t, state)
	first := startDaemon(t, nil, args...)
	if !first.wait(t, "lights: ready") {
		t.Fatalf("first daemon: %s", first.err.String())
	}
	cmd := exec.Command(daemonBinary(t), args...)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	err := cmd.Run()
	want := fmt.Sprintf("in use by allscreend pid %d", first.cmd.Process.Pid)
	if ee, ok := err.(*exec.ExitError); !ok || ee.ExitCode() != 1 || !strings.Contains(stderr.String(), want) {
		t.Fatalf("second daemon: %v, stderr %q; want exit 1 saying %q", err, stderr.String(), want)
	}
	first.cmd.Process.Kill()
	<-first.done
	again := startDaemon(t, nil, args...)
	if !again.wait(t, "lights: ready") {
		t.Fatalf("after the first was killed: %s", again.err.String())
	}
	again.cmd.Process.Signal(syscall.SIGTERM)
	<-again.done
}

// TestDatabaseDeletedWhileRunning (issue 15 item 2): results.db removed
// under the running daemon. The next press shows a storage fault, never a
// field result that would be stored nowhere.
func TestDatabaseDeletedWhileRunning(t *testing.T) {
	state := t.TempDir()
	d := startDaemon(t, nil, simArgs(t, state)...)
	defer func() { d.cmd.Process.Signal(syscall.SIGTERM); <-d.done }()
	if !d.wait(t, "lights: ready") {
		t.Fatalf("daemon: %s", d.err.String())
	}
	if err := os.Remove(filepath.Join(state, "results.db")); err != nil {
		t.Fatal(err)
	}
	d.cmd.Process.Signal(syscall.SIGUSR1)
	if !d.wait(t, `"Storage fault:`) {
		t.Fatalf("no storage fault shown; panel:\n%s\nstderr:\n%s", strings.Join(d.output(), "\n"), d.err.String())
	}
	for _, l := range d.output() {
		if shownField.MatchString(l) {
			t.Errorf("a field result was shown with the database gone: %s", l)
		}
	}
}

func TestBadFlagValue(t *testing.T) {
	cmd := exec.Command(daemonBinary(t), "--sim", "--config", "/nonexistent.toml", "--display", "vga")
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	err := cmd.Run()
	if ee, ok := err.(*exec.ExitError); !ok || ee.ExitCode() != exitConfig || !strings.Contains(stderr.String(), "display.kind") {
		t.Fatalf("exit %v, stderr %q", err, stderr.String())
	}
}

// TestSystemdNotify runs the daemon under a fake NOTIFY_SOCKET with a
// watchdog, and checks READY, STATUS, WATCHDOG and STOPPING arrive.
func TestSystemdNotify(t *testing.T) {
	sock := filepath.Join(t.TempDir(), "notify.sock")
	conn, err := net.ListenUnixgram("unixgram", &net.UnixAddr{Name: sock, Net: "unixgram"})
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	got := make(chan string, 100)
	go func() {
		buf := make([]byte, 4096)
		for {
			n, err := conn.Read(buf)
			if err != nil {
				close(got)
				return
			}
			got <- string(buf[:n])
		}
	}()
	d := startDaemon(t, []string{"NOTIFY_SOCKET=" + sock, "WATCHDOG_USEC=200000"}, simArgs(t, t.TempDir())...)
	waitFor := func(want string) {
		t.Helper()
		deadline := time.After(60 * time.Second)
		for {
			select {
			case m := <-got:
				if strings.Contains(m, want) {
					return
				}
			case <-deadline:
				t.Fatalf("no %q on the notify socket; stderr:\n%s", want, d.err.String())
			}
		}
	}
	waitFor("STATUS=Ready")
	waitFor("READY=1")
	waitFor("WATCHDOG=1")
	d.cmd.Process.Signal(syscall.SIGTERM)
	waitFor("STOPPING=1")
	<-d.done
	if code := d.cmd.ProcessState.ExitCode(); code != 0 {
		t.Errorf("exit code %d after SIGTERM; stderr:\n%s", code, d.err.String())
	}
}

// TestModelTampered: a model whose file does not match its manifest's
// hash is refused; the daemon says so and screens nothing.
func TestModelTampered(t *testing.T) {
	root := repoRoot(t)
	dir := t.TempDir()
	for _, f := range []string{"detect.json", "detect.onnx"} {
		b, err := os.ReadFile(filepath.Join(root, "model", "shipped", f))
		if err != nil {
			t.Fatal(err)
		}
		if f == "detect.onnx" {
			b[len(b)/2] ^= 0xff
		}
		os.WriteFile(filepath.Join(dir, f), b, 0o644)
	}
	args := simArgs(t, t.TempDir())
	args[6] = filepath.Join(dir, "detect.json")
	d := startDaemon(t, nil, args...)
	defer d.cmd.Process.Kill()
	if !d.wait(t, "altered: reinstall") {
		t.Fatalf("daemon ended; stderr:\n%s", d.err.String())
	}
	d.cmd.Process.Signal(syscall.SIGUSR1)
	if !d.wait(t, "NOT READY") {
		t.Fatal("daemon ended")
	}
	d.cmd.Process.Signal(syscall.SIGTERM)
	<-d.done
	for _, l := range d.output() {
		if strings.Contains(l, "Field") {
			t.Errorf("screened with a tampered model: %s", l)
		}
	}
}

// TestModelMissingThenInstalled: no model at start, then it is put in
// place; the retry picks it up without a restart.
func TestModelMissingThenInstalled(t *testing.T) {
	root := repoRoot(t)
	dir := t.TempDir()
	cfg := filepath.Join(t.TempDir(), "allscreen.toml")
	os.WriteFile(cfg, []byte("[daemon]\nretry = \"200ms\"\n"), 0o644)
	args := simArgs(t, t.TempDir())
	args[2] = cfg
	args[6] = filepath.Join(dir, "detect.json")
	d := startDaemon(t, nil, args...)
	defer d.cmd.Process.Kill()
	if !d.wait(t, "altered: reinstall") {
		t.Fatalf("daemon ended; stderr:\n%s", d.err.String())
	}
	for _, f := range []string{"detect.onnx", "detect.json"} { // manifest last, as an installer would
		b, _ := os.ReadFile(filepath.Join(root, "model", "shipped", f))
		os.WriteFile(filepath.Join(dir, f), b, 0o644)
	}
	if !d.wait(t, "READY") {
		t.Fatalf("daemon ended; stderr:\n%s", d.err.String())
	}
	d.cmd.Process.Signal(syscall.SIGTERM)
	<-d.done
}

// TestCalibrationForAnotherModel: a laboratory's calibration file that was
// made for another model stops the self-test with a message saying so;
// nothing is screened with thresholds that do not belong to the model.
func TestCalibrationForAnotherModel(t *testing.T) {
	dir := t.TempDir()
	cal := filepath.Join(dir, "site.json")
	os.WriteFile(cal, []byte(`{"format":"allscreen-calibration/1","laboratory":"x","model_onnx_sha256":"`+strings.Repeat("0", 64)+
		`","normal_cells":400,"ood_threshold":100,"ood_quantile":0.99,"cell_false_positive_rate":0.02,"cell_false_positive_rate_ci95":[0.01,0.04],"confident_cells":390,"uncertain_share":0.02}`), 0o644)
	conf := filepath.Join(dir, "allscreen.toml")
	os.WriteFile(conf, []byte("[model]\ncalibration = \""+cal+"\"\n"), 0o644)
	args := simArgs(t, t.TempDir())
	args[2] = conf
	d := startDaemon(t, nil, args...)
	defer d.cmd.Process.Kill()
	if !d.wait(t, "NOT READY") {
		t.Fatalf("daemon ended; stderr:\n%s", d.err.String())
	}
	d.cmd.Process.Signal(syscall.SIGUSR1)
	d.cmd.Process.Signal(syscall.SIGTERM)
	<-d.done
	if !strings.Contains(d.err.String(), "calibrate again") {
		t.Errorf("the log does not say the calibration belongs to another model:\n%s", d.err.String())
	}
	for _, l := range d.output() {
		if strings.Contains(l, "Field") {
			t.Errorf("screened with a calibration of another model: %s", l)
		}
	}
}

// TestFrameLimitsAgree: the config refuses a camera resolution the
// screening pipeline would refuse frame by frame.
func TestFrameLimitsAgree(t *testing.T) {
	if config.MaxFramePixels != screening.MaxFramePixels {
		t.Errorf("config.MaxFramePixels %d, screening.MaxFramePixels %d", config.MaxFramePixels, screening.MaxFramePixels)
	}
}

func TestCodeAlphabetsAgree(t *testing.T) {
	if config.CodeAlphabet != screening.CodeAlphabet {
		t.Errorf("config.CodeAlphabet %q, screening.CodeAlphabet %q", config.CodeAlphabet, screening.CodeAlphabet)
	}
	// And the derived prefix is always one the configuration accepts.
	for _, id := range []string{"", "unknown", "10000000a3b2c1d0", "0123456789abcdef"} {
		p := screening.DevicePrefix(id)
		if !screening.ValidCodePrefix(p) || len(p) != screening.MaxCodePrefix {
			t.Errorf("DevicePrefix(%q) = %q", id, p)
		}
	}
}
