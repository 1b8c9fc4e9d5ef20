package main

import (
	"os"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// BenchmarkStartToReady: process start to the READY screen (self-test
// done: camera, storage, model loaded and verified, store opened), with a
// folder camera in --sim mode. Target < 3 s.
func BenchmarkStartToReady(b *testing.B) {
	daemonBinary(b)
	for i := 0; i < b.N; i++ {
		state := b.TempDir()
		start := time.Now()
		d := startDaemon(b, nil, simArgs(b, state)...)
		if !d.wait(b, "lights: ready") {
			b.Fatalf("daemon ended: %s", d.err.String())
		}
		b.ReportMetric(float64(time.Since(start).Milliseconds()), "ms-to-ready")
		d.cmd.Process.Signal(syscall.SIGTERM)
		<-d.done
	}
	b.ReportMetric(0, "ns/op")
}

// BenchmarkSessionRSS: the daemon's peak resident memory (VmHWM) over a
// sample of 10 fields. Target < 200 MB.
func BenchmarkSessionRSS(b *testing.B) {
	daemonBinary(b)
	for i := 0; i < b.N; i++ {
		d := startDaemon(b, nil, simArgs(b, b.TempDir())...)
		if !d.wait(b, "lights: ready") {
			b.Fatal("daemon ended")
		}
		for f := 0; f < 10; f++ {
			d.cmd.Process.Signal(syscall.SIGUSR1)
			d.wait(b, "lights: ready")
		}
		status, err := os.ReadFile("/proc/" + strconv.Itoa(d.cmd.Process.Pid) + "/status")
		if err != nil {
			b.Fatal(err)
		}
		for _, l := range strings.Split(string(status), "\n") {
			if f := strings.Fields(l); len(f) >= 2 && f[0] == "VmHWM:" {
				kb, _ := strconv.Atoi(f[1])
				b.ReportMetric(float64(kb)/1024, "MB-peak-RSS")
			}
		}
		d.cmd.Process.Signal(syscall.SIGTERM)
		<-d.done
	}
	b.ReportMetric(0, "ns/op")
}
