// Package realdata locates the real microscopy data (ALL-IDB and the other
// sets described in ../shared/data/README.md) for tests, benchmarks and
// reports. The data is never copied into the repository.
package realdata

import (
	"fmt"
	"os"
	"path/filepath"
	"testing"
)

// EnvVar overrides the data folder.
const EnvVar = "ALLSCREEN_DATA"

// Find returns the data folder: $ALLSCREEN_DATA, or ../shared/data beside
// the module root. It errors when the folder does not exist.
func Find() (string, error) {
	if d := os.Getenv(EnvVar); d != "" {
		return check(d)
	}
	root, err := moduleRoot()
	if err != nil {
		return "", err
	}
	return check(filepath.Join(root, "..", "shared", "data"))
}

// Or returns dir when it is set (a command's --data flag), else Find's
// folder.
func Or(dir string) (string, error) {
	if dir != "" {
		return dir, nil
	}
	return Find()
}

func check(d string) (string, error) {
	abs, err := filepath.Abs(d)
	if err != nil {
		return "", err
	}
	st, err := os.Stat(abs)
	if err != nil {
		return "", fmt.Errorf("real data folder: %w (set %s)", err, EnvVar)
	}
	if !st.IsDir() {
		return "", fmt.Errorf("real data folder %s is not a directory", abs)
	}
	return abs, nil
}

func moduleRoot() (string, error) {
	dir, err := os.Getwd()
	if err != nil {
		return "", err
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			return dir, nil
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", fmt.Errorf("no go.mod above the working directory; set %s", EnvVar)
		}
		dir = parent
	}
}

// Dir returns the data folder for a test or benchmark, or the sub-folder
// joined from parts. Without the data the test is skipped, except under
// CI=true, where it fails: CI has the data, so its absence is a fault.
func Dir(tb testing.TB, parts ...string) string {
	tb.Helper()
	d, err := Find()
	if err == nil {
		p := filepath.Join(append([]string{d}, parts...)...)
		if _, err = os.Stat(p); err == nil {
			return p
		}
	}
	if os.Getenv("CI") == "true" {
		tb.Fatalf("real data missing under CI: %v", err)
	}
	tb.Skipf("real data not available: %v", err)
	return ""
}
