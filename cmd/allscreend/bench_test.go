package main

import (
	"allscreen/internal/realdata"
	"fmt"
	"os"
	"path/filepath"
	"slices"
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
	var ms []float64
	for i := 0; i < b.N; i++ {
		state := b.TempDir()
		start := time.Now()
		d := startDaemon(b, nil, simArgs(b, state)...)
		if !d.wait(b, "lights: ready") {
			b.Fatalf("daemon ended: %s", d.err.String())
		}
		ms = append(ms, float64(time.Since(start).Milliseconds()))
		d.cmd.Process.Signal(syscall.SIGTERM)
		<-d.done
	}
	// The median and the worst of the runs: one metric per run would keep
	// only the last.
	slices.Sort(ms)
	b.ReportMetric(ms[len(ms)/2], "ms-to-ready-median")
	b.ReportMetric(ms[len(ms)-1], "ms-to-ready-max")
	b.ReportMetric(0, "ns/op")
}

// BenchmarkSessionRSS: the daemon's peak resident memory (VmHWM) over a
// sample of 10 full-size fields (ALL-IDB1 normal fields, 2592x1944, the
// camera's 5 MP; the bundled samples are single cells and would flatter
// it). Target < 200 MB. Also reported, at the end of the session (the
// largest over the runs): the resident pages of shared libraries, the
// anonymous ones, and how many shared libraries are mapped.
func BenchmarkSessionRSS(b *testing.B) {
	daemonBinary(b)
	fields := b.TempDir()
	src := realdata.Dir(b, "allidb1", "fields")
	for n := 64; n < 74; n++ {
		name := fmt.Sprintf("Im%03d_0.jpg", n)
		if err := os.Symlink(filepath.Join(src, name), filepath.Join(fields, name)); err != nil {
			b.Fatal(err)
		}
	}
	peak, file, anon, libs := 0.0, 0.0, 0.0, 0.0
	for i := 0; i < b.N; i++ {
		args := append(simArgs(b, b.TempDir()), "--camera-folder", fields)
		d := startDaemon(b, nil, args...)
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
			f := strings.Fields(l)
			if len(f) < 2 {
				continue
			}
			kb, _ := strconv.Atoi(f[1])
			switch f[0] {
			case "VmHWM:":
				peak = max(peak, float64(kb)/1024)
			case "RssFile:":
				file = max(file, float64(kb)/1024)
			case "RssAnon:":
				anon = max(anon, float64(kb)/1024)
			}
		}
		// What the resident memory is made of at the end of the session:
		// pages of the shared libraries (OpenCV and its dependencies)
		// against anonymous memory (heaps, frames, stacks).
		maps, err := os.ReadFile("/proc/" + strconv.Itoa(d.cmd.Process.Pid) + "/maps")
		if err != nil {
			b.Fatal(err)
		}
		so := map[string]bool{}
		for _, l := range strings.Split(string(maps), "\n") {
			if f := strings.Fields(l); len(f) >= 6 && strings.Contains(f[5], ".so") {
				so[f[5]] = true
			}
		}
		libs = max(libs, float64(len(so)))
		d.cmd.Process.Signal(syscall.SIGTERM)
		<-d.done
	}
	b.ReportMetric(peak, "MB-peak-RSS")
	b.ReportMetric(file, "MB-libs-RSS-end")
	b.ReportMetric(anon, "MB-anon-RSS-end")
	b.ReportMetric(libs, "shared-libs")
	b.ReportMetric(0, "ns/op")
}
