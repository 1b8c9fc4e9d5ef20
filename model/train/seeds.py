#!/usr/bin/env python3
"""Collect `make model-seeds`: the shipped detection recipe trained on all its data with several seeds,
each model judged by `allscreen eval --model` on a site it never saw (wbcseg), overall and per cell type.

usage: seeds.py WORK_SEEDS_DIR SHIPPED_MANIFEST OUT_JSON

WORK_SEEDS_DIR holds s<seed>/detect-s<seed>.json (the manifest `allscreen train` installed) and
s<seed>-wbcseg[-<celltype>].json (the eval reports). Nothing here is measured in Python: it only reads the
Go evaluation's JSON and puts the seeds side by side.
"""
import glob
import json
import os
import re
import sys


def main():
    work, shipped, out = sys.argv[1:4]
    ship = json.load(open(shipped))
    seeds = []
    for d in sorted(glob.glob(os.path.join(work, "s*")), key=lambda p: int(re.sub(r"\D", "", os.path.basename(p)) or 0)):
        if not os.path.isdir(d):
            continue
        s = int(os.path.basename(d)[1:])
        man = os.path.join(d, f"detect-s{s}.json")
        rep = os.path.join(work, f"s{s}-wbcseg.json")
        if not (os.path.exists(man) and os.path.exists(rep)):
            continue
        m = json.load(open(man))
        r = json.load(open(rep))
        types = {}
        for p in sorted(glob.glob(os.path.join(work, f"s{s}-wbcseg-*.json"))):
            t = json.load(open(p))
            types[os.path.basename(p)[len(f"s{s}-wbcseg-"):-5]] = {
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
            "wbcseg": {"n": r["n"], "specificity": r["specificity"], "specificity_ci": r["specificity_ci"],
                       "uncertain": r["uncertain"], "per_type": types},
        })
    if not seeds:
        sys.exit(f"{work}: no seed results (run make model-seeds)")
    specs = [x["wbcseg"]["specificity"] for x in seeds]
    res = {
        "title": "Shipped detection recipe, trained on all its training data, one model per seed, judged on wbcseg (never trained on)",
        "recipe": ship["training"]["split"],
        "segmentation_version": ship["segmentation_version"],
        "measured_on": seeds[0]["wbcseg"]["n"] and f"wbcseg (Jiangxi Tecom): {seeds[0]['wbcseg']['n']} normal white cells, single-cell crops, through allscreen eval --model",
        "rule": "a cell counts as called blast when its blast probability reaches the manifest's blast_threshold; cells the model flags uncertain are counted by that rule too",
        "seeds": seeds,
        "specificity": {"values": specs, "mean": sum(specs) / len(specs), "min": min(specs), "max": max(specs)},
    }
    with open(out, "w") as f:
        json.dump(res, f, indent=1)
        f.write("\n")
    print(f"{out}: wbcseg specificity per seed {', '.join(f'{x:.3f}' for x in specs)}")


if __name__ == "__main__":
    main()
