#!/usr/bin/python3
"""The straightforward reference for Algorithm 1 (k tuning), against ours.

The reference does what the paper describes, with the usual Python tools:
cv2.GaussianBlur 5x5 sigma 0; cv2.kmeans on every pixel's colour at full
resolution, called as OpenCV's tutorial does (criteria EPS+MAX_ITER 10
iterations / 1.0, 10 attempts, random centres, seed 1); every cluster a
candidate mask, scored against the ground truth with skimage's
structural_similarity (gaussian_weights=True, sigma=1.5,
use_sample_covariance=False, data_range=255), Dice and IoU; per image and k
the cluster with the best mean of the three; means per class.

In the same run it times `allscreen tune-k` on the same images and prints
the speed ratio and how far the scores agree: per class and k, and per image
and k. Run from the repository root:

    /usr/bin/python3 vision/reference/tunek_reference.py --allscreen bin/allscreen \
        --data ../shared/data/allidb2 [--limit N] [--json OUT.json]
"""
import argparse
import csv
import json
import os
import subprocess
import sys
import tempfile
import time

import cv2
import numpy as np
from skimage.metrics import structural_similarity

KS = [2, 3, 4, 5, 6]


def scores(pred, truth):
    p, t = pred > 0, truth > 0
    ssim = structural_similarity(np.where(p, 255.0, 0.0), np.where(t, 255.0, 0.0),
                                 gaussian_weights=True, sigma=1.5,
                                 use_sample_covariance=False, data_range=255)
    inter, np_, nt = int((p & t).sum()), int(p.sum()), int(t.sum())
    dice = 1.0 if np_ + nt == 0 else 2 * inter / (np_ + nt)
    iou = 1.0 if np_ + nt == 0 else inter / (np_ + nt - inter)
    return ssim, dice, iou


def reference(rows, data, target):
    """Algorithm 1 the straightforward way; returns {(file, k): (ssim, dice, iou)}."""
    cv2.setRNGSeed(1)
    out = {}
    for r in rows:
        img = cv2.imread(os.path.join(data, "images", r["file"]), cv2.IMREAD_COLOR)
        mask = cv2.imread(os.path.join(data, "masks", r["file"]), cv2.IMREAD_GRAYSCALE)
        truth = mask > 191 if target == "nucleus" else mask > 63
        blurred = cv2.GaussianBlur(img, (5, 5), 0)
        z = blurred.reshape(-1, 3).astype(np.float32)
        for k in KS:
            _, labels, _ = cv2.kmeans(z, k, None,
                                      (cv2.TERM_CRITERIA_EPS + cv2.TERM_CRITERIA_MAX_ITER, 10, 1.0),
                                      10, cv2.KMEANS_RANDOM_CENTERS)
            labels = labels.reshape(img.shape[:2])
            best = None
            for c in range(k):
                s = scores(labels == c, truth)
                if best is None or sum(s) > sum(best):
                    best = s
            out[(r["file"], k)] = best
    return out


def ours(binary, data, target, files):
    """allscreen tune-k on the same files; returns ({(file, k): scores}, seconds)."""
    with tempfile.TemporaryDirectory() as tmp:
        labels = os.path.join(tmp, "labels.csv")
        with open(os.path.join(data, "labels.csv")) as f, open(labels, "w") as g:
            rd = csv.DictReader(f)
            wr = csv.DictWriter(g, fieldnames=rd.fieldnames)
            wr.writeheader()
            for r in rd:
                if r["file"] in files:
                    wr.writerow(r)
        out = os.path.join(tmp, "ours.csv")
        t0 = time.perf_counter()
        subprocess.run([binary, "tune-k", "--images", os.path.join(data, "images"),
                        "--masks", os.path.join(data, "masks"), "--labels", labels,
                        "--target", target, "--json", "--csv", out],
                       check=True, stdout=subprocess.DEVNULL)
        secs = time.perf_counter() - t0
        res = {}
        with open(out) as f:
            for r in csv.DictReader(f):
                res[(r["file"], int(r["k"]))] = (float(r["ssim"]), float(r["dice"]), float(r["iou"]))
    return res, secs


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--allscreen", required=True, help="the allscreen binary")
    ap.add_argument("--data", required=True, help="a folder with images/, masks/ and labels.csv (allidb2 or wbcseg)")
    ap.add_argument("--target", default="nucleus", choices=["nucleus", "cell"])
    ap.add_argument("--limit", type=int, default=0, help="only the first N images (0: all)")
    ap.add_argument("--json", help="also write the comparison to this file")
    a = ap.parse_args()

    with open(os.path.join(a.data, "labels.csv")) as f:
        rows = list(csv.DictReader(f))
    col = "label" if "label" in rows[0] else "celltype"
    rows.sort(key=lambda r: r["file"])
    if a.limit:
        rows = rows[:a.limit]
    label = {r["file"]: r[col] for r in rows}

    mine, t_ours = ours(a.allscreen, a.data, a.target, set(label))
    t0 = time.perf_counter()
    ref = reference(rows, a.data, a.target)
    t_ref = time.perf_counter() - t0

    classes = sorted(set(label.values()))
    table = {}
    print(f"Algorithm 1 on {len(rows)} images of {a.data} (target {a.target})")
    print(f"time: reference {t_ref:.1f} s, allscreen tune-k {t_ours:.1f} s: allscreen is {t_ref / t_ours:.1f}x faster\n")
    print(f"  {'class':12s} {'k':>2s} {'reference':>9s} {'allscreen':>9s} {'diff':>7s}   (mean of SSIM, Dice, IoU of the best cluster)")
    for c in classes:
        table[c] = {}
        for k in KS:
            fs = [f for f in label if label[f] == c]
            r = np.mean([sum(ref[(f, k)]) / 3 for f in fs])
            o = np.mean([sum(mine[(f, k)]) / 3 for f in fs])
            table[c][k] = (r, o)
            print(f"  {c:12s} {k:2d} {r:9.4f} {o:9.4f} {o - r:+7.4f}")
    best = {c: (KS[int(np.argmax([table[c][k][0] for k in KS]))], KS[int(np.argmax([table[c][k][1] for k in KS]))]) for c in classes}
    diffs = np.array([abs(sum(ref[key]) - sum(mine[key])) / 3 for key in ref])
    ssim_d = np.array([abs(ref[key][0] - mine[key][0]) for key in ref])
    print()
    for c in classes:
        print(f"best k, {c}: reference {best[c][0]}, allscreen {best[c][1]}")
    print(f"per image and k ({len(diffs)} pairs): score differs by < 0.001 in {np.mean(diffs < 0.001):.1%}, "
          f"< 0.01 in {np.mean(diffs < 0.01):.1%}, < 0.05 in {np.mean(diffs < 0.05):.1%}; largest {diffs.max():.4f}")
    print(f"SSIM alone differs by < 0.001 in {np.mean(ssim_d < 0.001):.1%} of the pairs")
    if a.json:
        with open(a.json, "w") as f:
            json.dump({"images": len(rows), "target": a.target, "seconds_reference": t_ref, "seconds_allscreen": t_ours,
                       "speedup": t_ref / t_ours,
                       "classes": {c: {str(k): {"reference": table[c][k][0], "allscreen": table[c][k][1]} for k in KS} for c in classes},
                       "best_k": {c: {"reference": best[c][0], "allscreen": best[c][1]} for c in classes},
                       "pairs": len(diffs), "within_0_001": float(np.mean(diffs < 0.001)),
                       "within_0_01": float(np.mean(diffs < 0.01)), "within_0_05": float(np.mean(diffs < 0.05)),
                       "max_diff": float(diffs.max()), "ssim_within_0_001": float(np.mean(ssim_d < 0.001))}, f, indent=1)
    return 0


if __name__ == "__main__":
    sys.exit(main())
