#!/usr/bin/python3
"""Contact sheets of the leave-one-laboratory-out errors: for each left-out laboratory, the blasts its model
scored lowest and the normal cells it scored highest (first seed), as the network saw them (the prepared
64x64 inputs, cell on grey). Reads the cells CSV `allscreen lolo --cells` wrote; measures nothing.

usage: lolo_sheets.py CELLS.csv OUT_DIR [--public OUT_PUBLIC] [--name RECIPE]

Sheets of every laboratory go to OUT_DIR (out/, never committed: ALL-IDB, bll-stages and olympus images may
not be redistributed). With --public, the sheets of laboratories whose images are CC BY (Delhi's C-NMC,
Barcelona's PBC) are also written there (docs/figures).
"""
import argparse
import csv
import os

import cv2
import numpy as np

PUBLIC = {"delhi", "barcelona"}  # C-NMC (CC BY 3.0) and PBC (CC BY 4.0) only
N = 16


def tile(row):
    # the prepared folder the model was judged on (recipes differ in input: never guess it)
    im = cv2.imread(os.path.join(row["prep"], row["input"]), cv2.IMREAD_UNCHANGED)
    if im is None:
        return np.full((64, 64, 3), 255, np.uint8)
    a = im[:, :, 3:4].astype(np.float32) / 255
    t = (im[:, :, :3] * a + 128 * (1 - a)).astype(np.uint8)
    t = cv2.resize(t, (96, 96), interpolation=cv2.INTER_NEAREST)
    cv2.putText(t, f"{float(row['p_blast']):.2f}", (2, 92), cv2.FONT_HERSHEY_SIMPLEX, 0.4, (255, 255, 255), 2)
    cv2.putText(t, f"{float(row['p_blast']):.2f}", (2, 92), cv2.FONT_HERSHEY_SIMPLEX, 0.4, (0, 0, 0), 1)
    return t


def strip(rows):
    tiles = [tile(r) for r in rows[:N]]
    tiles += [np.full((96, 96, 3), 255, np.uint8)] * (N - len(tiles))
    return np.hstack(tiles)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("cells")
    ap.add_argument("out")
    ap.add_argument("--name", default="lolo")
    ap.add_argument("--public")
    a = ap.parse_args()
    rows = list(csv.DictReader(open(a.cells)))
    seed = min(int(r["seed"]) for r in rows)
    os.makedirs(a.out, exist_ok=True)
    for lab in sorted({r["lab"] for r in rows}):
        rs = [r for r in rows if r["lab"] == lab and int(r["seed"]) == seed]
        blasts = sorted([r for r in rs if r["blast"] == "1"], key=lambda r: float(r["p_blast"]))
        normal = sorted([r for r in rs if r["blast"] == "0"], key=lambda r: -float(r["p_blast"]))
        parts = []
        for title, sel in (("blasts scored lowest", blasts), ("normal cells scored highest", normal)):
            if not sel:
                continue
            head = np.full((22, 96 * N, 3), 255, np.uint8)
            cv2.putText(head, f"{a.name}: {lab} left out, seed {seed}: {title} (P(blast) on each)", (4, 16), cv2.FONT_HERSHEY_SIMPLEX, 0.5, (0, 0, 0), 1)
            parts += [head, strip(sel)]
        sheet = np.vstack(parts)
        name = f"{a.name}-errors-{lab}.png"
        cv2.imwrite(os.path.join(a.out, name), sheet)
        if a.public and lab in PUBLIC:
            os.makedirs(a.public, exist_ok=True)
            cv2.imwrite(os.path.join(a.public, name), sheet)
        print(f"{lab}: {name}")


if __name__ == "__main__":
    main()
