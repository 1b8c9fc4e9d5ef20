package model

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"strings"
	"time"

	"gocv.io/x/gocv"
)

// OpenCV 4.6 throws a C++ exception on an ONNX graph it cannot import
// (a weight whose stated shape does not match its data, an attribute out
// of range), and gocv's C wrapper does not catch it: the whole process
// aborts. A model that is damaged but whose manifest was updated to match
// passes every check in Go (readVerified), so before the process that will
// use it loads it, a child process (this same executable, re-run with
// probeEnv set: init below loads the model and exits) loads it first. The
// child may abort; the parent reports a bad model and carries on.

// probeEnv names the ONNX file a child process is to load and exit.
const probeEnv = "ALLSCREEN_ONNX_PROBE"

// probeModels is false only in BenchmarkLoad's comparison run.
var probeModels = true

// probeTimeout bounds the child: a tiny CNN loads in well under a second.
const probeTimeout = 60 * time.Second

func init() {
	if path := os.Getenv(probeEnv); path != "" {
		os.Exit(probeLoad(path))
	}
}

// probeLoad is the child's whole work: 0 when OpenCV loads the model.
func probeLoad(path string) int {
	net := gocv.ReadNet(path, "")
	defer net.Close()
	if net.Empty() {
		return 3
	}
	return 0
}

// probeInChild loads the ONNX file at path in a child process and returns
// an error wrapping ErrBadModel when OpenCV cannot import it.
func probeInChild(path string) error {
	exe, err := os.Executable()
	if err != nil {
		return fmt.Errorf("cannot check the model in a separate process (%v): %w", err, ErrBadModel)
	}
	ctx, cancel := context.WithTimeout(context.Background(), probeTimeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, exe)
	cmd.Env = append(os.Environ(), probeEnv+"="+path)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		// The executable cannot re-run itself at all: only under an
		// emulator with no binfmt entry for it (qemu-user in CI's arm64
		// tests). The model is then loaded without the probe; on the
		// device the child always starts.
		return nil
	}
	err = cmd.Wait()
	if err == nil {
		return nil
	}
	why := strings.TrimSpace(stderr.String())
	if i := strings.Index(why, "what():"); i >= 0 {
		why = strings.TrimSpace(why[i+len("what():"):])
	}
	if j := strings.IndexByte(why, '\n'); j >= 0 {
		why = why[:j]
	}
	var ee *exec.ExitError
	switch {
	case errors.Is(ctx.Err(), context.DeadlineExceeded):
		why = fmt.Sprintf("loading it took more than %v", probeTimeout)
	case errors.As(err, &ee) && why == "":
		why = ee.String()
	}
	return fmt.Errorf("OpenCV cannot import the model (%s); it is damaged: reinstall the model: %w", why, ErrBadModel)
}
