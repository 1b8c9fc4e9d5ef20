#!/usr/bin/python3
"""PyTorch eager timing of an architecture on prepared inputs, for comparison with the Go/OpenCV path in the
same benchmark run (model/bench_test.go). Speed does not depend on the weights, so none are loaded.

    bench_torch.py --arch compact --inputs DIR --batches 1,16 --threads 2 --repeats 20
    bench_torch.py --arch paper --export OUT_DIR    # also write a random-weight ONNX + manifest for Go to time

Prints one JSON object: {"arch": .., "threads": .., "ms_per_crop": {"1": .., "16": ..}}.
"""
import argparse
import glob
import json
import os
import sys
import time

import cv2
import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import nets  # noqa: E402
from train import sha256, MANIFEST_FORMAT  # noqa: E402


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--arch", required=True)
    ap.add_argument("--inputs", help="folder of prepared PNG inputs (BGR or BGRA)")
    ap.add_argument("--batches", default="1,16")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--repeats", type=int, default=20)
    ap.add_argument("--export", help="write a random-weight ONNX and manifest here instead of timing")
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    torch.manual_seed(1)
    net = nets.ARCHS[a.arch](2).eval()
    exp = nets.Exported(net).eval()
    size = net.input_size or 64
    if a.export:
        os.makedirs(a.export, exist_ok=True)
        p = os.path.join(a.export, "bench.onnx")
        torch.onnx.export(exp, torch.zeros(1, 3, size, size), p, opset_version=13, input_names=["input"],
                          output_names=["prob", "feature"], dynamic_axes={"input": {0: "batch"}, "prob": {0: "batch"}, "feature": {0: "batch"}})
        m = {"format": MANIFEST_FORMAT, "task": "detection", "provisional": True, "description": "BENCHMARK ONLY: random weights",
             "architecture": a.arch, "onnx": "bench.onnx", "onnx_sha256": sha256(p), "onnx_bytes": os.path.getsize(p), "opset": 13,
             "input_name": "input", "output_name": "prob", "labels": ["normal", "blast"], "positive_label": "blast",
             "input": {"size": size, "channel_order": "RGB", "scale": 1 / 255, "masking": "none", "framing": "crop", "margin": 1.2,
                       "background_rgb": [128, 128, 128]},
             "segmentation_version": "none", "operating_point": {"blast_threshold": 0.5, "uncertain_low": 0.5, "uncertain_high": 0.5},
             "created": "", "code_version": ""}
        with open(os.path.join(a.export, "bench.json"), "w") as f:
            json.dump(m, f)
        print(json.dumps({"manifest": os.path.join(a.export, "bench.json")}))
        return
    files = sorted(glob.glob(os.path.join(a.inputs, "*.png")))
    xs = []
    for f in files:
        im = cv2.imread(f, cv2.IMREAD_COLOR)
        im = cv2.resize(im, (size, size), interpolation=cv2.INTER_AREA)
        xs.append(torch.from_numpy(im[:, :, ::-1].copy()).permute(2, 0, 1).float() / 255.0)
    out = {}
    for b in [int(v) for v in a.batches.split(",")]:
        x = torch.stack([xs[i % len(xs)] for i in range(b)])
        with torch.no_grad():
            exp(x)  # warm up
            t = time.perf_counter()
            for _ in range(a.repeats):
                exp(x)
            out[str(b)] = (time.perf_counter() - t) / a.repeats / b * 1000
    print(json.dumps({"arch": a.arch, "threads": a.threads, "ms_per_crop": out}))


if __name__ == "__main__":
    main()
