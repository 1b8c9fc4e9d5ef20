#!/usr/bin/python3
"""Write the tiny test model and its parity fixture into model/testdata/ (synthetic; no real image).

    /usr/bin/python3 model/train/fixtures.py model/testdata

tiny.onnx + tiny.json: a TinyNet (16x16 input, seeded random weights, a few hundred parameters) with a
valid manifest, so Go tests load a real model in milliseconds. parity/tiny/*.png are synthetic 16x16
inputs and parity/tiny.json their PyTorch eager probabilities and features, which the Go path must
reproduce within 1e-4.
"""
import datetime
import json
import os
import sys

import cv2
import numpy as np
import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import nets  # noqa: E402
from train import sha256, ood_distance, git_version, MANIFEST_FORMAT  # noqa: E402


def main():
    out = sys.argv[1] if len(sys.argv) > 1 else "model/testdata"
    torch.manual_seed(7)
    torch.set_num_threads(1)
    net = nets.TinyNet(2)
    # BatchNorm statistics other than 0/1 so the export's folding is exercised
    for m in net.modules():
        if isinstance(m, torch.nn.BatchNorm2d):
            m.running_mean.uniform_(-0.2, 0.2)
            m.running_var.uniform_(0.5, 1.5)
    with torch.no_grad():
        # larger weights than the default init, so outputs differ between inputs and parity means something
        for p in net.parameters():
            p.mul_(4.0)
    net.eval()
    os.makedirs(os.path.join(out, "parity", "tiny"), exist_ok=True)
    rng = np.random.default_rng(7)
    names, xs = [], []
    for i in range(6):
        # smooth synthetic "cells": a dark disc on a pale background, random colours
        yy, xx = np.mgrid[0:16, 0:16]
        r = rng.uniform(3, 7)
        disc = ((yy - 8 + rng.uniform(-2, 2)) ** 2 + (xx - 8 + rng.uniform(-2, 2)) ** 2) < r * r
        img = np.empty((16, 16, 3), np.uint8)
        for c in range(3):
            img[:, :, c] = np.where(disc, rng.integers(40, 140), rng.integers(150, 250)) + rng.integers(0, 10, (16, 16))
        name = f"parity/tiny/in{i}.png"
        cv2.imwrite(os.path.join(out, name), img)  # stored as BGR, as Go reads it
        names.append(name)
        xs.append(torch.from_numpy(img[:, :, ::-1].copy()).permute(2, 0, 1).float() / 255.0)
    x = torch.stack(xs)
    exp = nets.Exported(net).eval()
    with torch.no_grad():
        prob, feat = exp(x)
    f = feat.numpy().astype(np.float64)
    means = [f[:3].mean(0), f[3:].mean(0)]
    var = f.var(0) + 1e-6
    d = ood_distance(f, means, var)
    onnx_path = os.path.join(out, "tiny.onnx")
    torch.onnx.export(exp, x[:1], onnx_path, opset_version=13, input_names=["input"], output_names=["prob", "feature"],
                      dynamic_axes={"input": {0: "batch"}, "prob": {0: "batch"}, "feature": {0: "batch"}})
    manifest = {
        "format": MANIFEST_FORMAT, "task": "detection", "provisional": True,
        "description": "TEST FIXTURE: random weights, synthetic inputs. Classifies nothing; for Go tests only.",
        "architecture": "tiny", "parameters": nets.n_params(net),
        "onnx": "tiny.onnx", "onnx_sha256": sha256(onnx_path), "onnx_bytes": os.path.getsize(onnx_path), "opset": 13,
        "input_name": "input", "output_name": "prob", "feature_name": "feature",
        "labels": ["normal", "blast"], "positive_label": "blast",
        "input": {"size": 16, "channel_order": "RGB", "scale": 1 / 255, "masking": "none", "framing": "crop",
                  "margin": 1.2, "background_rgb": [128, 128, 128]},
        "segmentation_version": "none (the fixture does not segment)",
        "operating_point": {"blast_threshold": 0.5, "uncertain_low": 0.45, "uncertain_high": 0.55, "chosen_on": "fixture",
                            "ood": {"kind": "feature-distance", "output": "feature",
                                    "class_means": [[float(v) for v in m] for m in means],
                                    "variance": [float(v) for v in var], "threshold": float(np.quantile(d, 0.5)) + 1e-6,
                                    "chosen_on": "fixture"}},
        "training": {"note": "untrained"},
        "created": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "code_version": git_version(),
    }
    with open(os.path.join(out, "tiny.json"), "w") as fh:
        json.dump(manifest, fh, indent=1)
        fh.write("\n")
    with open(os.path.join(out, "parity", "tiny.json"), "w") as fh:
        json.dump({"manifest": "tiny.json", "inputs": names, "probs": prob.numpy().tolist(), "features": feat.numpy().tolist(),
                   "ood_distance": d.tolist(), "note": "PyTorch eager outputs of tiny.onnx's network"}, fh, indent=1)
        fh.write("\n")
    print(f"wrote {onnx_path} ({os.path.getsize(onnx_path)} bytes), tiny.json and parity/tiny.json")


if __name__ == "__main__":
    main()
