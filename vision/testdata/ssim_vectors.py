#!/usr/bin/python3
"""Writes ssim_vectors.json: synthetic image pairs with SSIM values computed
by scikit-image, and Dice/IoU by numpy, as an independent check of
vision/score.go.

SSIM conventions (Wang et al. 2004 as skimage applies them):
structural_similarity(a, b, gaussian_weights=True, sigma=1.5,
use_sample_covariance=False, data_range=255) on float64 copies of 8-bit
images: an 11-tap Gaussian window, K1=0.01, K2=0.03, mean over the pixels
at least 5 from every edge.

Run from this folder with Debian's python3-skimage:
    /usr/bin/python3 ssim_vectors.py > ssim_vectors.json
The images are generated here (seeded), never taken from a data set.
"""
import json
import sys

import numpy as np
import skimage
from skimage.metrics import structural_similarity


def disk(w, h, cx, cy, r):
    y, x = np.mgrid[0:h, 0:w]
    return np.where((x - cx) ** 2 + (y - cy) ** 2 <= r * r, 255, 0).astype(np.uint8)


def rect(w, h, x0, y0, x1, y1):
    m = np.zeros((h, w), np.uint8)
    m[y0:y1, x0:x1] = 255
    return m


def main():
    rng = np.random.default_rng(20250210)
    cases = []

    def add(name, a, b, binary):
        ssim = structural_similarity(a.astype(np.float64), b.astype(np.float64),
                                     gaussian_weights=True, sigma=1.5,
                                     use_sample_covariance=False, data_range=255)
        c = {"name": name, "w": int(a.shape[1]), "h": int(a.shape[0]),
             "a": a.tobytes().hex(), "b": b.tobytes().hex(), "ssim": float(ssim)}
        if binary:
            pa, pb = a > 0, b > 0
            inter, na, nb = int((pa & pb).sum()), int(pa.sum()), int(pb.sum())
            c["dice"] = 1.0 if na + nb == 0 else 2 * inter / (na + nb)
            c["iou"] = 1.0 if na + nb == 0 else inter / (na + nb - inter)
        cases.append(c)

    add("disk vs shifted disk", disk(32, 32, 15, 16, 9), disk(32, 32, 18, 14, 10), True)
    add("identical disks", disk(24, 20, 12, 10, 6), disk(24, 20, 12, 10, 6), True)
    add("rectangle vs disk, not square", rect(40, 27, 8, 5, 30, 22), disk(40, 27, 20, 13, 10), True)
    add("empty vs empty", np.zeros((12, 15), np.uint8), np.zeros((12, 15), np.uint8), True)
    add("full vs empty", np.full((13, 11), 255, np.uint8), np.zeros((13, 11), np.uint8), True)
    add("smallest image, 11x11", disk(11, 11, 5, 5, 3), rect(11, 11, 2, 3, 9, 8), True)
    add("mask touching the border", rect(30, 18, 0, 0, 12, 18), rect(30, 18, 0, 2, 14, 18), True)
    add("disjoint", rect(20, 20, 0, 0, 8, 8), rect(20, 20, 12, 12, 20, 20), True)
    for i in range(4):
        w, h = int(rng.integers(11, 48)), int(rng.integers(11, 48))
        a = np.where(rng.random((h, w)) < 0.4, 255, 0).astype(np.uint8)
        b = a.copy()
        flip = rng.random((h, w)) < 0.15
        b[flip] = 255 - b[flip]
        add(f"random mask {w}x{h} with 15% flipped", a, b, True)
    y, x = np.mgrid[0:25, 0:31]
    grad = (x * 8 + y * 2).clip(0, 255).astype(np.uint8)
    noisy = (grad.astype(int) + rng.integers(-30, 31, grad.shape)).clip(0, 255).astype(np.uint8)
    add("grey gradient vs noisy copy", grad, noisy, False)
    add("random grey", rng.integers(0, 256, (17, 19), dtype=np.uint8),
        rng.integers(0, 256, (17, 19), dtype=np.uint8), False)

    json.dump({"generator": "vision/testdata/ssim_vectors.py",
               "skimage": skimage.__version__,
               "ssim_call": "structural_similarity(a, b, gaussian_weights=True, sigma=1.5, "
                            "use_sample_covariance=False, data_range=255) on float64",
               "cases": cases}, sys.stdout, indent=1)
    sys.stdout.write("\n")


if __name__ == "__main__":
    main()
