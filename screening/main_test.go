package screening

import (
	"context"
	"fmt"
	"os"
	"sync"
	"testing"
	"time"
)

// Tests that need another process (a writer to kill, a lock holder) re-run
// this test binary with childEnv set to the role; TestMain plays it.
const childEnv = "SCREENING_TEST_CHILD"

func TestMain(m *testing.M) {
	switch role := os.Getenv(childEnv); role {
	case "":
		os.Exit(m.Run())
	case "writer":
		os.Exit(runCrashWriter(os.Getenv("SCREENING_TEST_DIR")))
	case "lock":
		os.Exit(runLockHolder(os.Getenv("SCREENING_TEST_DIR")))
	default:
		fmt.Fprintf(os.Stderr, "unknown child role %q\n", role)
		os.Exit(2)
	}
}

// fakeClock is a clock tests move by hand.
type fakeClock struct {
	mu sync.Mutex
	t  time.Time
}

func newFakeClock() *fakeClock {
	return &fakeClock{t: time.Date(2025, 6, 1, 9, 30, 0, 0, time.UTC)}
}

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(time.Second)
	return c.t
}

var testProvenance = Provenance{ModelSHA256: "m0del", ConfigSHA256: "c0nfig", SoftwareVersion: "test", Labels: []string{"normal", "blast"}}

func openTestStore(t *testing.T, dir string) *Store {
	t.Helper()
	s, err := Open(context.Background(), dir, Options{Clock: newFakeClock()})
	if err != nil {
		t.Fatalf("open store: %v", err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}
