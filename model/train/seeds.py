#!/usr/bin/env python3
"""Collect model/train/seeds.sh (`make model-seeds`): a detection recipe trained on all its data with
several seeds, each model judged by `allscreen eval --model` on a site it never saw, overall and per cell type.

usage: seeds.py DIR NAME SITE SHIPPED_MANIFEST OUT_JSON

DIR holds s<seed>/<NAME>-s<seed>.json (the manifest `allscreen train` installed) and
s<seed>-<SITE>[-<celltype>].json (the eval reports). Nothing here is measured in Python: it only reads the
Go evaluation's JSON and puts the seeds side by side.
"""
import glob
import json
import os
import re
import sys


def main():
    work, name, site, shipped, out = sys.argv[1:6]
    ship = json.load(open(shipped))
    seeds = []
    first = None  # the first seed's manifest: recipe, input and segmentation are the same for every seed
    for d in sorted(glob.glob(os.path.join(work, "s*")), key=lambda p: int(re.sub(r"\D", "", os.path.basename(p)) or 0)):
        if not os.path.isdir(d):
            continue
        s = int(os.path.basename(d)[1:])
        man = os.path.join(d, f"{name}-s{s}.json")
        rep = os.path.join(work, f"s{s}-{site}.json")
        if not (os.path.exists(man) and os.path.exists(rep)):
            continue
        m = json.load(open(man))
        first = first or m
        r = json.load(open(rep))
        types = {}
        for p in sorted(glob.glob(os.path.join(work, f"s{s}-{site}-*.json"))):
            t = json.load(open(p))
            types[os.path.basename(p)[len(f"s{s}-{site}-"):-5]] = {
                "n": t["n"], "specificity": t["specificity"], "specificity_ci": t["specificity_ci"], "uncertain": t["uncertain"]}
        seeds.append({
            "seed": s,
            "onnx_sha256": m["onnx_sha256"],
            "same_onnx_as_shipped": m["onnx_sha256"] == ship["onnx_sha256"],
            "validation_accuracy": m.get("validation_accuracy"),
            "epoch_kept": m["training"].get("epoch_kept"),
            "blast_threshold": m["operating_point"].get("blast_threshold"),
            # on the validation groups (never a test figure): a model that calls every cell normal would have a
            # perfect wbcseg specificity, so its sensitivity stands beside it
            "validation_cell_sensitivity": m["operating_point"].get("cell_sensitivity"),
            "validation_cell_false_positive_rate": m["operating_point"].get("cell_false_positive_rate"),
            "site": {"n": r["n"], "specificity": r["specificity"], "specificity_ci": r["specificity_ci"],
                       "uncertain": r["uncertain"], "per_type": types},
        })
    if not seeds:
        sys.exit(f"{work}: no seed results (run make model-seeds)")
    specs = [x["site"]["specificity"] for x in seeds]
    res = {
        "experiment": name,
        "title": f"{name}, trained on all its training data, one model per seed, judged on {site} (never trained on)",
        "recipe": first["training"]["split"],
        "input": first["input"],
        "segmentation_version": first["segmentation_version"],
        "site": site,
        "measured_on": f"{site}: {seeds[0]['site']['n']} normal white cells, single-cell crops, through allscreen eval --model",
        "rule": "a cell counts as called blast when its blast probability reaches the manifest's blast_threshold; cells the model flags uncertain are counted by that rule too",
        "seeds": seeds,
        "specificity": {"values": specs, "mean": sum(specs) / len(specs), "min": min(specs), "max": max(specs)},
    }
    with open(out, "w") as f:
        json.dump(res, f, indent=1)
        f.write("\n")
    print(f"{out}: {site} specificity per seed {', '.join(f'{x:.3f}' for x in specs)}")


if __name__ == "__main__":
    main()
