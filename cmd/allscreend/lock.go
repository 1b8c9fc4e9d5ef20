package main

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
)

// lockName is the file in the state directory that one daemon holds
// locked while it runs.
const lockName = "allscreend.lock"

// lockState takes the state directory for this daemon alone: two daemons
// on one store merged fields into one sample and closed each other's
// samples (issue 15). The lock is flock(2) on a file in the directory, so
// the kernel releases it when the process dies however it dies (kill -9, a
// power cut): no stale lock is ever left to clear. The file holds the
// holder's pid, for the error a second daemon prints.
func lockState(dir string) (release func(), err error) {
	if err := os.MkdirAll(dir, 0o750); err != nil {
		return nil, fmt.Errorf("state directory: %w", err)
	}
	path := filepath.Join(dir, lockName)
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o640)
	if err != nil {
		return nil, fmt.Errorf("state directory lock: %w", err)
	}
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
		f.Close()
		if errors.Is(err, syscall.EWOULDBLOCK) {
			holder := "another process"
			if b, err := os.ReadFile(path); err == nil {
				if pid, err := strconv.Atoi(strings.TrimSpace(string(b))); err == nil {
					holder = fmt.Sprintf("allscreend pid %d", pid)
				}
			}
			return nil, fmt.Errorf("the state directory %s is in use by %s: one daemon per results store (stop the other first)", dir, holder)
		}
		return nil, fmt.Errorf("state directory lock: %w", err)
	}
	if err := f.Truncate(0); err == nil {
		f.WriteAt([]byte(strconv.Itoa(os.Getpid())+"\n"), 0)
	}
	return func() { f.Close() }, nil
}
