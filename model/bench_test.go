package model

import (
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"testing"

	"gocv.io/x/gocv"
)

// Benchmarks of inference per crop at batch 1 and 16 for both
// architectures, through OpenCV's dnn (the device path), with PyTorch eager
// timed on the same inputs in the same run. Weights do not change the
// speed: the paper network, which is not shipped (193 MB), is timed from a
// random-weight export. Run with `make model-bench`; the ms/crop metric is
// the figure to read.

const benchPython = "/usr/bin/python3"

// benchModel returns a manifest for an architecture: the shipped compact
// model, or a random-weight export made for the benchmark.
func benchModel(b *testing.B, arch string) string {
	b.Helper()
	if arch == "compact" {
		if m, err := readManifestFile("shipped/detect.json"); err == nil && m.Architecture == "compact" {
			return "shipped/detect.json"
		}
	}
	dir := filepath.Join(os.TempDir(), "allscreen-bench-"+arch)
	if _, err := os.Stat(filepath.Join(dir, "bench.json")); err != nil {
		out, err := exec.Command(benchPython, "train/bench_torch.py", "--arch", arch, "--export", dir).CombinedOutput()
		if err != nil {
			b.Skipf("cannot export a %s model for the benchmark: %v\n%s", arch, err, out)
		}
	}
	return filepath.Join(dir, "bench.json")
}

// benchInputs prepares the CC-BY sample images as a model of this spec
// sees them.
func benchInputs(b *testing.B, spec InputSpec) (string, []gocv.Mat) {
	b.Helper()
	items, err := sampleItems("../samples")
	if err != nil {
		b.Fatal(err)
	}
	dir := b.TempDir()
	if _, err := PrepareSet(items, dir, PrepareOptions{Spec: spec}, nil); err != nil {
		b.Fatal(err)
	}
	files, _ := filepath.Glob(filepath.Join(dir, "inputs", "*.png"))
	var imgs []gocv.Mat
	for i := 0; i < MaxBatch; i++ {
		m := gocv.IMRead(files[i%len(files)], gocv.IMReadColor)
		if m.Empty() {
			b.Fatalf("cannot read %s", files[i%len(files)])
		}
		imgs = append(imgs, m)
	}
	return filepath.Join(dir, "inputs"), imgs
}

func BenchmarkForward(b *testing.B) {
	for _, arch := range []string{"compact", "paper"} {
		n, err := Load(benchModel(b, arch))
		if err != nil {
			b.Fatal(err)
		}
		dir, imgs := benchInputs(b, n.m.Input)
		for _, bs := range []int{1, MaxBatch} {
			b.Run(fmt.Sprintf("opencv/%s/batch%d", arch, bs), func(b *testing.B) {
				for i := 0; i < b.N; i++ {
					if _, _, err := n.RunPrepared(imgs[:bs]); err != nil {
						b.Fatal(err)
					}
				}
				b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*bs)/1e6, "ms/crop")
			})
		}
		// PyTorch eager on the same prepared inputs, timed inside Python
		// (process start-up excluded); reported as the same metric.
		out, err := exec.Command(benchPython, "train/bench_torch.py", "--arch", arch, "--inputs", dir,
			"--batches", fmt.Sprintf("1,%d", MaxBatch), "--threads", "2", "--repeats", "10").Output()
		var tr struct {
			MS map[string]float64 `json:"ms_per_crop"`
		}
		if err == nil && json.Unmarshal(out, &tr) == nil {
			for _, bs := range []int{1, MaxBatch} {
				ms := tr.MS[fmt.Sprint(bs)]
				b.Run(fmt.Sprintf("torch-eager/%s/batch%d", arch, bs), func(b *testing.B) {
					b.ReportMetric(ms, "ms/crop")
				})
			}
		} else {
			b.Logf("PyTorch eager timing unavailable: %v", err)
		}
		for _, m := range imgs {
			m.Close()
		}
		n.Close()
	}
}

// BenchmarkClassify times the whole device path for a field's cells:
// segmentation, framing, masking and resizing of each crop, then the
// network, at batch 1 and 16.
func BenchmarkClassify(b *testing.B) {
	n, err := Load(benchModel(b, "compact"))
	if err != nil {
		b.Fatal(err)
	}
	defer n.Close()
	items, err := sampleItems("../samples")
	if err != nil {
		b.Fatal(err)
	}
	var crops []gocv.Mat
	for i := 0; i < MaxBatch; i++ {
		m := gocv.IMRead(items[i%len(items)].Path, gocv.IMReadColor)
		defer m.Close()
		crops = append(crops, m)
	}
	for _, bs := range []int{1, MaxBatch} {
		b.Run(fmt.Sprintf("compact/batch%d", bs), func(b *testing.B) {
			for i := 0; i < b.N; i++ {
				if _, err := n.Classify(crops[:bs]); err != nil {
					b.Fatal(err)
				}
			}
			b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*bs)/1e6, "ms/crop")
		})
	}
}

// BenchmarkLoad times Load of the shipped model with the child-process
// probe that keeps a damaged model from aborting the process, and without
// it, side by side in one run (`go test -run '^$' -bench Load ./model`).
func BenchmarkLoad(b *testing.B) {
	for _, probe := range []bool{true, false} {
		name := "with-probe"
		if !probe {
			name = "without-probe"
		}
		b.Run(name, func(b *testing.B) {
			probeModels = probe
			defer func() { probeModels = true }()
			for b.Loop() {
				n, err := Load("shipped/detect.json")
				if err != nil {
					b.Fatal(err)
				}
				n.Close()
			}
		})
	}
}
