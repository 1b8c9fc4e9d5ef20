#!/usr/bin/python3
"""Regenerate the classifier's figures and tables (make report-model).

Reads only saved outputs: model/results/*.json (written by `allscreen eval --experiment ... --out`, `allscreen
shortcut --json` and `make model-bench`) and the shipped manifests model/shipped/*.json. Writes
docs/figures/model-*.png, the generated part of docs/classifier.md (between its BEGIN/END markers) and the
README's "## Classifier (model)" section. Every number in those places comes from these files.
"""
import csv
import functools
import glob
import json
import os
import re
import shutil
import sys

import matplotlib
import numpy as np

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
RES = os.path.join(ROOT, "model", "results")
FIG = os.path.join(ROOT, "docs", "figures")
SHIP = os.path.join(ROOT, "model", "shipped")

# the recipe of model/shipped/detect (make model)
SHIPPED = "allidb2-compact-multisite-ema"
DETECTION = [  # (result name, short description)
    (SHIPPED, "compact, segmented, + PBC + bll-stages, weights averaged (EMA) (shipped until the leave-one-laboratory-out recipe)"),
    ("allidb2-compact-multisite", "the same without weight averaging (shipped until EMA passed its rule)"),
    ("allidb2-compact-multisite-labstd", "the same, cell colours standardised in Lab (not shipped)"),
    ("allidb2-compact-multisite-idb1", "the same + ALL-IDB1's other white cells as normal (not shipped)"),
    ("allidb2-compact-multisite-ema-long", "that recipe trained 4x as long, 240 epochs (not shipped)"),
    ("allidb2-compact-multisite-ema-wide", "that recipe with wide colour and contrast augmentation (decided by its rule)"),
    ("allidb2-compact-multisite-ema-noedge", "that recipe without bll-stages' cells cut by the field edge (decided by its rule)"),
    ("allidb2-compact", "compact, segmented, ALL-IDB2 only"),
    ("allidb2-compact-raw", "compact, RAW crop, ALL-IDB2 only"),
    ("allidb2-compact-paperaug", "compact, segmented, paper's augmentation, split first"),
    ("allidb2-paper", "paper's network (Table 4), segmented, paper's augmentation, split first"),
    ("allidb2-compact-leaky", "compact, segmented, paper's augmentation, copies made BEFORE the split"),
]


@functools.cache
def load(name):
    p = os.path.join(RES, name + ".json")
    if not os.path.exists(p):
        return None
    with open(p) as f:
        return json.load(f)


def detection_versions():
    """The cell segmentation versions the detection experiments' results were measured with."""
    return sorted({x["segmentation_version"] for x in (load(n) for n, _ in DETECTION) if x})


def seg_desc(desc, r):
    """A table row's model description with the cell segmentation its inputs were made with, when the
    experiments of the report were not all run with the same one."""
    return f"{desc} (`{r['segmentation_version']}`)" if len(detection_versions()) > 1 else desc


def shipped_hash():
    """The ONNX hash of the detection model in model/shipped now."""
    with open(os.path.join(SHIP, "detect.json")) as f:
        return json.load(f)["onnx_sha256"]


def is_shipped(sr):
    """A seed run (model/results/seeds-*.json) one of whose models is the shipped detection model now (the
    run's own same_onnx_as_shipped was true when it ran, and the shipped model may have changed since)."""
    h = shipped_hash()
    return any(x["onnx_sha256"] == h for x in sr["seeds"])


def chooser(sr):
    """A seed run of a "nopbc" recipe: trained without PBC to choose a recipe on it, never a candidate to ship."""
    return sr["experiment"].startswith("nopbc")


def f3(x):
    return "-" if x is None else f"{x:.3f}"


def ci(c):
    return "-" if not c else f"{c[0]:.3f}-{c[1]:.3f}"


def spread(s):
    if not s:
        return "-"
    if len(s["values"]) == 1:
        return f"{s['mean']:.3f} (1 seed)"
    return f"{s['mean']:.3f} ± {s['sd']:.3f} ({s['min']:.3f}-{s['max']:.3f}, {len(s['values'])} seeds)"


def table(head, rows):
    out = ["| " + " | ".join(head) + " |", "|" + "|".join("---" for _ in head) + "|"]
    out += ["| " + " | ".join(str(c) for c in r) + " |" for r in rows]
    return "\n".join(out)


def auc(pos, neg):
    """Area under the ROC curve: the chance that a random pos scores above a random neg (ties count half)."""
    pos, neg = np.asarray(pos, float)[:, None], np.asarray(neg, float)[None, :]
    if not pos.size or not neg.size:
        return None
    return float(np.mean(pos > neg) + 0.5 * np.mean(pos == neg))


def matched_sensitivity(name, site, sens=0.95):
    """Per seed of a cross-validated experiment (its predictions CSV): ROC AUC on ALL-IDB2, the AUC of
    ALL-IDB2's blasts against the site's normal cells, and the site's specificity at the threshold that
    gives the seed's fold models blast sensitivity sens on ALL-IDB2. None without the CSV or the site."""
    p = os.path.join(RES, name + "-predictions.csv")
    if not os.path.exists(p):
        return None
    by = {}
    with open(p) as f:
        for r in csv.DictReader(f):
            by.setdefault(r["seed"], {}).setdefault((r["set"], r["true"]), []).append(float(r["p_blast"]))
    out = []
    for seed in sorted(by, key=int):
        d = by[seed]
        bl, no, other = d.get(("allidb2", "blast"), []), d.get(("allidb2", "normal"), []), d.get((site, "normal"), [])
        if not bl or not other:
            return None
        t = float(np.quantile(bl, 1 - sens, method="lower"))
        out.append({"seed": int(seed), "auc_allidb2": auc(bl, no), "auc_site": auc(bl, other),
                    "threshold": t, "specificity": float(np.mean(np.asarray(other) < t))})
    return out


def confusion_png(rep, title, path):
    labels, m = rep["labels"], rep["confusion"]
    k = len(labels)
    fig, ax = plt.subplots(figsize=(1.2 * k + 2.2, 1.1 * k + 1.6))
    tot = [max(1, sum(r)) for r in m]
    ax.imshow([[v / tot[i] for v in r] for i, r in enumerate(m)], cmap="Blues", vmin=0, vmax=1)
    for i in range(k):
        for j in range(k):
            share = m[i][j] / tot[i]
            ax.text(j, i, f"{m[i][j]}\n{100 * share:.0f}%", ha="center", va="center", color="white" if share > 0.6 else "black", fontsize=9)
    ax.set_xticks(range(k)); ax.set_xticklabels(labels, rotation=30, ha="right")
    ax.set_yticks(range(k)); ax.set_yticklabels(labels)
    ax.set_xlabel("predicted"); ax.set_ylabel("true")
    ax.set_title(title, fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def replace_between(path, generated):
    text = open(path).read()
    b, e = "<!-- BEGIN generated by make report-model -->", "<!-- END generated by make report-model -->"
    if b not in text or e not in text:
        sys.exit(f"{path}: markers missing")
    text = text[:text.index(b) + len(b)] + "\n\n" + generated + "\n\n" + text[text.index(e):]
    open(path, "w").write(text)


def write_audit():
    """docs/l1l2l3-audit.md: what the folders hold, the CNN under both protocols, the shortcuts."""
    parts = []
    data = os.environ.get("ALLSCREEN_DATA", os.path.join(ROOT, "..", "shared", "data"))
    man = os.path.join(data, "paper-l1l2l3", "manifest.csv")
    if os.path.exists(man):
        import csv
        from collections import Counter, defaultdict
        rows = list(csv.DictReader(open(man)))
        sizes = defaultdict(Counter)
        suffix = defaultdict(Counter)
        hashes = Counter(r["original_sha256_16"] for r in rows)
        for r in rows:
            sizes[r["label"]][f"{r['original_width']}x{r['original_height']}"] += 1
            stem = os.path.splitext(r["original_name"])[0]
            suffix[r["label"]]["_0 (ALL-IDB: no blast)" if stem.endswith("_0") else "_1 (ALL-IDB: blast)" if stem.endswith("_1") else "other"] += 1
        t = table(["folder", "images", "original pixel sizes", "original file names"],
                  [[l, sum(sizes[l].values()), ", ".join(f"{k}: {v}" for k, v in sizes[l].most_common()),
                    ", ".join(f"{k}: {v}" for k, v in suffix[l].most_common())] for l in sorted(sizes)])
        parts.append("### What each folder holds (from `manifest.csv`)\n\n" + t +
                     f"\n\n{sum(v - 1 for v in hashes.values() if v > 1)} files are byte copies of another file in the set.")
    lrows = []
    for name, desc in (("l1l2l3-leaky", "CNN, paper's protocol (copies before a random split)"),
                       ("l1l2l3-honest", "CNN, copies grouped, split first, then augmented")):
        r = load(name)
        if r is not None:
            pc = r["per_class"]
            lrows.append([desc, r["protocol"], f"{r['accuracy']:.3f} ({ci(r['accuracy_ci'])})", spread(r["across_seeds"].get("accuracy")),
                          ", ".join(f"{l} {pc[l]['recall']:.2f}" for l in r["labels"])])
    for s_ in load("shortcut-l1l2l3") or []:
        pc = s_["per_class"]
        lrows.append([f"image {s_['feature']} alone: {s_['classifier']}", "grouped 5-fold", f"{s_['accuracy']:.3f} ({ci(s_['accuracy_ci'])})", "-",
                      ", ".join(f"{l} {pc[l]['recall']:.2f}" for l in s_["labels"])])
    if lrows:
        parts.append("### Accuracy on L1/L2/L3\n\nFirst seed pooled over the 5 folds (Wilson 95% CI); then mean ± sd over seeds; "
                     "recall per folder.\n\n" + table(["classifier", "protocol", "accuracy (95% CI)", "over seeds", "recall per folder"], lrows))
        for name in ("l1l2l3-leaky", "l1l2l3-honest"):
            r = load(name)
            if r is not None:
                p = os.path.join(FIG, f"model-confusion-{name}.png")
                confusion_png(r, f"{name}, seed {r['seed']}", p)
                parts.append(f"![{name}](figures/{os.path.basename(p)})")
    replace_between(os.path.join(ROOT, "docs", "l1l2l3-audit.md"), "\n\n".join(parts) if parts else "_Not run yet._")


def main():
    os.makedirs(FIG, exist_ok=True)
    md = []
    readme = []
    figs = []

    # ---- shipped models
    ship_rows = []
    for name in ("detect", "subtype"):
        p = os.path.join(SHIP, name + ".json")
        if not os.path.exists(p):
            continue
        m = json.load(open(p))
        op = m["operating_point"]
        opdesc = (f"blast at P >= {op.get('blast_threshold')}, uncertain {op.get('uncertain_low')}-{op.get('uncertain_high')}"
                  if m["task"] == "detection" else f"subtype shown as uncertain below {op.get('min_confidence')}")
        ship_rows.append([f"`model/shipped/{name}.onnx`", m["task"] + (" (PROVISIONAL)" if m.get("provisional") else ""), m["architecture"],
                          f"{m['parameters']:,}", f"{m['onnx_bytes'] / 1e6:.2f} MB", f"{m['input']['size']}x{m['input']['size']}, {m['input']['masking']}",
                          f3(m.get("validation_accuracy")), opdesc, f"`{m['segmentation_version']}`"])
        src = os.path.join(SHIP, m["training"]["curves"])
        if os.path.exists(src):
            dst = os.path.join(FIG, f"model-curves-{name}.png")
            shutil.copyfile(src, dst)
            figs.append((dst, f"Training curves of the shipped {name} model (loss and accuracy, training vs validation; as the paper's Figure 7)"))
    if ship_rows:
        md.append("### Shipped models\n\n" + table(["file", "task", "architecture", "parameters", "ONNX size", "input", "validation accuracy",
                                                    "operating point", "segmentation"], ship_rows) +
                  "\n\nValidation accuracy is on the held-out validation groups that chose the epoch and the operating point; "
                  "it is not a test figure. The test figures are the cross-validated ones below.")
        readme.append(md[-1].replace("### ", "#### "))

    # ---- targets of the issue, met or not
    trows = []
    ms, single = load(SHIPPED), load("allidb2-compact")
    for r, what in ((ms, "previously shipped recipe (multi-site, EMA)"), (single, "ALL-IDB2 only")):
        if r:
            a = r["across_seeds"]["accuracy"]
            trows.append([f"grouped-CV accuracy on ALL-IDB2 >= 0.97, compact, {seg_desc(what, r)}", f"{a['mean']:.3f} mean over {len(a['values'])} seeds ({a['min']:.3f}-{a['max']:.3f})",
                          "met" if a["mean"] >= 0.97 else f"missed by {0.97 - a['mean']:.3f}"])
    for r, what in ((ms, "previously shipped recipe"), (single, "ALL-IDB2 only")):
        if r and r["across_seeds"].get("field_accuracy"):
            a = r["across_seeds"]["field_accuracy"]
            trows.append([f"field-level accuracy on ALL-IDB1 >= 0.95, {seg_desc(what, r)}", f"{a['mean']:.3f} mean over {len(a['values'])} seeds ({a['min']:.3f}-{a['max']:.3f})",
                          "met" if a["mean"] >= 0.95 else f"missed by {0.95 - a['mean']:.3f}"])
    for r, what in ((ms, "previously shipped recipe"), (single, "ALL-IDB2 only")):
        if r and r["seeds"] and "wbcseg" in (r["seeds"][0].get("cross_site") or {}):
            specs = [s_["cross_site"]["wbcseg"]["pooled"]["specificity"] for s_ in r["seeds"]]
            ok = len(specs) >= 5 and min(specs) >= 0.95
            trows.append([f"specificity >= 0.95 on wbcseg's normal cells in every one of 5 seeds, {seg_desc(what, r)}, cross-validation fold models pooled",
                          f"{len(specs)} seeds: {', '.join(f'{x:.3f}' for x in specs)}", "met" if ok else f"missed: worst seed {min(specs):.3f}"])
    seed_runs = [json.load(open(p)) for p in sorted(glob.glob(os.path.join(RES, "seeds-*.json")))]
    for sr in seed_runs:
        if sr["site"] != "wbcseg" or chooser(sr):
            continue
        specs = sr["specificity"]["values"]
        ok = len(specs) >= 5 and min(specs) >= 0.95
        trows.append([f"specificity >= 0.95 on wbcseg's normal cells in every one of 5 seeds, `{sr['experiment']}` trained on all its data"
                      + (" (the shipped model's recipe)" if is_shipped(sr) else ""),
                      f"{len(specs)} seeds: {', '.join(f'{x:.3f}' for x in specs)}", "met" if ok else f"missed: worst seed {min(specs):.3f}"])
    detm = os.path.join(SHIP, "detect.json")
    if os.path.exists(detm):
        m = json.load(open(detm))
        trows.append(["compact model <= 1 MB as ONNX", f"{m['onnx_bytes'] / 1e6:.2f} MB", "met" if m["onnx_bytes"] <= 1e6 else "missed"])
    bench = os.path.join(RES, "bench.txt")
    if os.path.exists(bench):
        v = [float(x) for x in re.findall(r"BenchmarkForward/opencv/compact/batch16-\d+\s+\d+\s+\S+ ns/op\s+(\S+) ms/crop", open(bench).read())]
        if v:
            med = sorted(v)[len(v) // 2]
            trows.append(["<= 5 ms per crop at batch 16 (network, OpenCV dnn)", f"{med:.2f} ms (median of {len(v)} runs)", "met" if med <= 5 else "missed"])
    if trows:
        t = "### The issue's targets\n\n" + table(["target", "measured", ""], trows)
        md.append(t)
        readme.append(t.replace("### ", "#### "))

    # ---- detection on ALL-IDB2
    rows = []
    for name, desc in DETECTION:
        r = load(name)
        if r is None:
            rows.append([desc, "not run", "", "", "", "", "", ""])
            continue
        a = r["across_seeds"]
        gb = r.get("accuracy_ci_group_bootstrap")
        rows.append([seg_desc(desc, r), r["protocol"], f"{r['accuracy']:.3f} ({ci(r['accuracy_ci'])}; fields {ci(gb)})", spread(a.get("accuracy")),
                     spread(a.get("sensitivity")), spread(a.get("specificity")), spread(a.get("uncertain_share")), spread(a.get("confident_accuracy"))])
        confusion_png(r, f"{name}, seed {r['seed']}, pooled over folds", os.path.join(FIG, f"model-confusion-{name}.png"))
    versions = detection_versions()
    vers = "cell segmentation " + ", ".join(f"`{v}`" for v in versions)
    det = ("### Detection on ALL-IDB2 (blast vs normal), grouped 5-fold cross-validation\n\n" +
           (f"Measured with {vers}. " if len(versions) == 1 else
            f"Measured with {vers}: the cell segmentation changed while these ran, so each row names the version its "
            "inputs were made with; the shipped models are trained with the version in their own table above. ") +
           "Every crop is judged by the fold model that never saw it, its ALL-IDB1 field, an overlapping field or a copy of it "
           "(groups from `model/data/allidb2-sources.csv`). First seed: accuracy with its Wilson 95% CI, and the 95% CI from "
           "resampling whole field families. Then mean ± sd (min-max) over seeds. \"Uncertain\" is the share the model flags "
           "(low confidence or out of distribution); \"confident accuracy\" is measured on the rest.\n\n" +
           table(["model", "protocol", "accuracy, seed 1 (95% CIs)", "accuracy over seeds", "sensitivity", "specificity", "uncertain share",
                  "confident accuracy"], rows))
    md.append(det)
    readme.append(det.replace("### ", "#### "))
    for name in (SHIPPED, "allidb2-paper"):
        p = os.path.join(FIG, f"model-confusion-{name}.png")
        if os.path.exists(p):
            figs.append((p, f"Confusion matrix, {name} (first seed, pooled over the 5 folds; as the paper's Figure 8)"))

    # ---- field level
    frows = []
    for name, desc in DETECTION:
        r = load(name)
        if r is None:
            continue
        s0 = next((s for s in r["seeds"] if s.get("field")), None)
        if s0 is None:
            continue
        f = s0["field"]
        a = r["across_seeds"]
        frows.append([seg_desc(desc, r), f"{f['accuracy']:.3f} ({ci(f['accuracy_ci'])})", f"{f3(f.get('sensitivity'))} ({ci(f.get('sensitivity_ci'))})",
                      f"{f3(f.get('specificity'))} ({ci(f.get('specificity_ci'))})", spread(a.get("field_accuracy")),
                      f"{f['n']} fields, {s0.get('field_cells', 0)} cells, {s0.get('fields_inconclusive', 0)} inconclusive"])
    if frows:
        t = ("### Field level on ALL-IDB1 (leave-fields-out)\n\n"
             "Each ALL-IDB1 field is judged by the fold model that never trained on a crop of it (or of an overlapping field): "
             "the appliance's cell finding and cropping on the whole field, then the appliance's verdict rule "
             "(`screening.Decide`, with no minimum cell count) on its cells; \"inconclusive\" counts as flagged. "
             "Sensitivity: blast fields flagged; specificity: normal fields not flagged. First seed with Wilson 95% CIs, then over seeds.\n\n" +
             table(["model", "accuracy", "sensitivity", "specificity", "accuracy over seeds", "fields"], frows))
        md.append(t)
        readme.append(t.replace("### ", "#### "))

    # ---- cross-site
    crows = []
    cross_fig = []
    for name, desc in DETECTION:
        r = load(name)
        if r is None or not r["seeds"] or not r["seeds"][0].get("cross_site"):
            continue
        for site in sorted(r["seeds"][0]["cross_site"]):
            specs = [s["cross_site"][site]["pooled"].get("specificity") for s in r["seeds"]]
            mins = [s["cross_site"][site].get("specificity_min_over_folds") for s in r["seeds"]]
            unc = [s["cross_site"][site].get("uncertain_share", 0) for s in r["seeds"]]
            n = r["seeds"][0]["cross_site"][site]["pooled"]["n"] // max(1, len(r["seeds"][0]["cross_site"][site]["folds"]))
            crows.append([seg_desc(desc, r), site, n, ", ".join(f3(x) for x in specs), f3(min(x for x in mins if x is not None)) if any(x is not None for x in mins) else "-",
                          f"{sum(unc) / len(unc):.3f}"])
            cross_fig.append((f"{name}\non {site}", specs))
    if crows:
        t = ("### Other laboratories, never trained on\n\n"
             "Every fold model of every seed classifies every cell of the site (all normal white cells, so the figure is "
             "specificity: the share not called blast). The target is at least 0.95 on wbcseg in every one of 5 seeds.\n\n" +
             table(["model", "site", "cells", "specificity per seed (pooled over the 5 fold models)", "worst single fold model", "uncertain share"], crows))
        md.append(t)
        readme.append(t.replace("### ", "#### "))
        fig, ax = plt.subplots(figsize=(7, 3.2))
        for i, (lab, specs) in enumerate(cross_fig):
            ax.scatter([i] * len(specs), specs, s=25)
        ax.axhline(0.95, ls="--", lw=1, color="grey")
        ax.set_xticks(range(len(cross_fig))); ax.set_xticklabels([l for l, _ in cross_fig], fontsize=7)
        ax.set_ylabel("specificity (one dot per seed)"); ax.set_ylim(-0.02, 1.02)
        fig.tight_layout()
        p = os.path.join(FIG, "model-cross-site.png")
        fig.savefig(p, dpi=110); plt.close(fig)
        figs.append((p, "Specificity on normal white cells from laboratories never trained on, one dot per training seed (dashed: the 0.95 target)"))

    # ---- the same fold models at one blast sensitivity: how well they separate, whatever the threshold
    # The predictions CSVs are large and not committed (make model-eval writes them): the figures made from
    # them are kept in a small committed summary, used where a CSV is absent (a fresh clone).
    summary_path = os.path.join(RES, "matched-sensitivity.json")
    summary = json.load(open(summary_path)) if os.path.exists(summary_path) else {}
    mrows = []
    for name, desc in DETECTION:
        m = matched_sensitivity(name, "wbcseg")
        if m:
            summary[name] = m
        m = summary.get(name) if load(name) else None
        if not m:
            continue
        sp = [x["specificity"] for x in m]
        mrows.append([seg_desc(desc, load(name)), len(m), f"{np.mean([x['auc_allidb2'] for x in m]):.3f}",
                      f"{np.mean([x['auc_site'] for x in m]):.3f} ({min(x['auc_site'] for x in m):.3f})",
                      ", ".join(f"{x:.3f}" for x in sp), f"{min(sp):.3f}", f"{np.mean(sp):.3f}"])
    with open(summary_path, "w") as f:
        json.dump(summary, f, indent=1, sort_keys=True)
        f.write("\n")
    if mrows:
        md.append("### At one blast sensitivity: separation, not threshold\n\n"
                  "A recipe that calls fewer cells blasts everywhere gains specificity on a new laboratory by losing "
                  "sensitivity, which the figures at each model's own operating point mix up. Here the same fold models "
                  "are compared at one sensitivity: for each seed, the threshold at which its fold models find 95% of "
                  "ALL-IDB2's blasts (cross-validated), and wbcseg's specificity at that threshold; and, with no threshold "
                  "at all, the ROC AUC of ALL-IDB2's blasts against wbcseg's normal cells. The threshold is read off the test "
                  "predictions, so this compares recipes; it is not an operating point any model ships with.\n\n" +
                  table(["model", "seeds", "ROC AUC on ALL-IDB2 (mean)", "AUC, ALL-IDB2 blasts vs wbcseg normal cells (mean, worst)",
                         "wbcseg specificity at 0.95 sensitivity, per seed", "worst", "mean"], mrows))

    # ---- the nopbc recipes on both sites none of them trained on: does one unseen site predict another?
    both = {}
    for sr in seed_runs:
        if chooser(sr):
            both.setdefault(sr["experiment"], {})[sr["site"]] = sr
    both = {k: v for k, v in both.items() if {"pbc-lymphocytes", "wbcseg"} <= set(v)}
    if len(both) >= 3:
        brows, pm, wm = [], [], []
        for name in sorted(both, key=lambda k: -both[k]["pbc-lymphocytes"]["specificity"]["mean"]):
            p, w = both[name]["pbc-lymphocytes"]["specificity"], both[name]["wbcseg"]["specificity"]
            sens = [x["validation_cell_sensitivity"] for x in both[name]["wbcseg"]["seeds"] if x.get("validation_cell_sensitivity") is not None]
            brows.append([f"`{name}`", f"{p['mean']:.3f}", f"{p['min']:.3f}", f"{w['mean']:.3f}", f"{w['min']:.3f}",
                          f"{sum(sens) / len(sens):.3f}" if sens else "-"])
            pm.append(p["mean"]); wm.append(w["mean"])
        rank = lambda v: np.argsort(np.argsort(v)).astype(float)  # noqa: E731
        rho = float(np.corrcoef(rank(pm), rank(wm))[0, 1])
        md.append("### Two laboratories never trained on, one recipe\n\n"
                  "The `nopbc` recipes (the ones recipes were chosen with) trained on neither PBC (Barcelona) nor wbcseg "
                  "(Jiangxi Tecom), so each was judged on both (5 seeds each; specificity on their normal white cells). If one "
                  "unseen laboratory predicted another, a recipe good on one would be good on the other. Rows are sorted by "
                  f"the mean on PBC; the rank correlation of the two means over the {len(brows)} recipes is {rho:+.2f}.\n\n" +
                  table(["recipe", "PBC mean", "PBC worst seed", "wbcseg mean", "wbcseg worst seed", "validation blast sensitivity (mean)"], brows))

    # ---- recipes over seeds, trained on all their data, on a site never trained on
    if seed_runs:
        rows = []
        for sr in seed_runs:
            sp = sr["specificity"]
            sens = [x["validation_cell_sensitivity"] for x in sr["seeds"] if x.get("validation_cell_sensitivity") is not None]
            rows.append([f"`{sr['experiment']}`" + (" (shipped)" if is_shipped(sr) else ""),
                         sr["input"].get("colour") or "as is", sr["site"], sr["seeds"][0]["site"]["n"],
                         ", ".join(f"{x:.3f}" for x in sp["values"]), f"{sp['min']:.3f}", f"{sp['mean']:.3f}",
                         f"{sum(sens) / len(sens):.3f}" if sens else "-"])
        t = ("### Recipes over seeds, on a laboratory never trained on\n\n"
             "Each recipe trained on all of its training data (no cross-validation fold held out, as the shipped model is), once "
             "per seed, and every model judged on every normal white cell of a site it never trained on (`make model-seeds`). "
             "A cell counts as called blast when its blast probability reaches the model's threshold, whether or not the model "
             "also flags it uncertain; the figure is the share not called blast (specificity). A model that called every cell "
             "normal would score 1.000, so the last column gives the models' blast sensitivity on their own validation cells "
             "(individually labelled cells of held-out groups: few, and not a test figure). The `nopbc` recipes leave PBC out "
             "of training so that a recipe (input colour mode, ALL-IDB1's other cells, weight averaging) can be chosen on PBC, "
             "an unseen site, with wbcseg kept as the test (the rules are under \"Choices made\" in docs/classifier.md); they are "
             "judged on wbcseg as well, a second site none of them trained on, which is reported and never chosen on.\n\n" +
             table(["recipe", "input colour", "site", "cells", "specificity per seed", "worst", "mean", "validation blast sensitivity (mean)"], rows))
        for sr in seed_runs:
            if sr["site"] != "wbcseg" or chooser(sr):
                continue
            types = sorted({k for x in sr["seeds"] for k in x["site"]["per_type"]}, key=lambda k: -sr["seeds"][0]["site"]["per_type"].get(k, {}).get("n", 0))
            n0 = sr["seeds"][0]["site"]["per_type"]
            trs = [[x["seed"] if not x["same_onnx_as_shipped"] else f"{x['seed']} (the shipped model, retrained bit for bit)",
                    f"{x['site']['specificity']:.3f} ({ci(x['site']['specificity_ci'])})", f"{x['site']['uncertain'] / x['site']['n']:.3f}",
                    f3(x.get("validation_cell_sensitivity")), x.get("epoch_kept", "-")] +
                   [f3(x["site"]["per_type"][k]["specificity"]) if k in x["site"]["per_type"] else "-" for k in types] for x in sr["seeds"]]
            counts = ", ".join(f"{k} {n0[k]['n']}" for k in types if k in n0)
            t += (f"\n\n`{sr['experiment']}` on wbcseg, per seed and cell type ({counts}), "
                  f"segmentation `{sr['segmentation_version']}`:\n\n" +
                  table(["seed", "specificity (95% CI)", "flagged uncertain", "validation blast sensitivity", "epoch kept"] + types, trs))
        md.append(t)
        readme.append(t.replace("### ", "#### "))

    # ---- subtype
    r = load("subtype-bll-stages")
    sc = load("shortcut-bll-stages")
    if r is not None:
        a = r["across_seeds"]
        rows = [["cell (each cell its field's label)", f"{r['accuracy']:.3f} ({ci(r['accuracy_ci'])}; blocks {ci(r.get('accuracy_ci_group_bootstrap'))})",
                 spread(a.get("accuracy")), spread(a.get("macro_f1"))]]
        pf = r["seeds"][0].get("per_field")
        if pf:
            rows.append(["field (mean of its cells)", f"{pf['accuracy']:.3f} ({ci(pf['accuracy_ci'])})", spread(a.get("per_field_accuracy")), "-"])
        for fname, what in (("shortcut-bll-stages-blasts", "the slide's background colour alone (outer ring, no cell)"),
                            ("shortcut-bll-stages-cells", "the segmented cell's mean colour alone (no shape, no texture)")):
            for s in load(fname) or []:
                rows.append([f"{what}: `{s['feature']}`, {s['classifier']}", f"{s['accuracy']:.3f} ({ci(s['accuracy_ci'])})", "-", f3(s['macro_avg']['f1'])])
        confusion_png(r, "subtype-bll-stages, seed 1, cells pooled over folds", os.path.join(FIG, "model-confusion-subtype.png"))
        figs.append((os.path.join(FIG, "model-confusion-subtype.png"), "Subtype confusion matrix (bll-stages cells, first seed)"))
        t = ("### Subtype on bll-stages (WHO maturation stage of B-ALL blasts)\n\n"
             "5-fold cross-validation grouped by blocks of 20 consecutive file numbers per stage (the data has no patient IDs). "
             "Per-class figures are in `model/results/subtype-bll-stages.json`.\n\n" +
             table(["unit", "accuracy, seed 1 (95% CI)", "accuracy over seeds", "macro F1"], rows))
        md.append(t)
        readme.append(t.replace("### ", "#### "))

    # ---- L1/L2/L3
    lrows = []
    for name, desc in (("l1l2l3-leaky", "compact CNN, paper's protocol (copies before the split)"),
                       ("l1l2l3-honest", "compact CNN, copies grouped, split first")):
        r = load(name)
        if r is not None:
            lrows.append([desc, f"{r['accuracy']:.3f} ({ci(r['accuracy_ci'])})", spread(r["across_seeds"].get("accuracy"))])
    for s in load("shortcut-l1l2l3") or []:
        lrows.append([f"image {s['feature']} alone ({s['classifier']})", f"{s['accuracy']:.3f} ({ci(s['accuracy_ci'])})", "-"])
    if lrows:
        t = ("### The paper's L1/L2/L3 data\n\n"
             "5-fold cross-validation on `paper-l1l2l3` (150 images; byte-identical copies grouped). See docs/l1l2l3-audit.md.\n\n" +
             table(["classifier", "accuracy, seed 1 (95% CI)", "over seeds"], lrows))
        md.append(t)
        readme.append(t.replace("### ", "#### "))

    # ---- shortcuts on detection data
    srows = []
    for fname, data in (("shortcut-allidb2", "ALL-IDB2 crops"), ("shortcut-allidb2-cells", "ALL-IDB2, segmented cell (model input)"),
                        ("shortcut-allidb1", "ALL-IDB1 fields"), ("shortcut-bll-stages", "bll-stages fields, all four folders")):
        for s in load(fname) or []:
            srows.append([data, s["feature"], s["classifier"], f"{s['accuracy']:.3f} ({ci(s['accuracy_ci'])})"])
    if srows:
        t = ("### What predicts the label without looking at a cell\n\n"
             "`allscreen shortcut`: one feature of the image, no cell, grouped 5-fold cross-validation.\n\n" +
             table(["data", "feature", "classifier", "accuracy (95% CI)"], srows))
        md.append(t)

    # ---- speed
    bench = os.path.join(RES, "bench.txt")
    if os.path.exists(bench):
        lines = [l for l in open(bench) if "ms/crop" in l]
        by = {}
        for l in lines:
            m = re.match(r"Benchmark(\S+?)-\d+\s+\d+\s+\S+ ns/op\s+(\S+) ms/crop", l)
            if m:
                by.setdefault(m.group(1), []).append(float(m.group(2)))
        brows = [[k, f"{sorted(v)[len(v) // 2]:.2f}", f"{min(v):.2f}-{max(v):.2f} ({len(v)} runs)"] for k, v in by.items()]
        if brows:
            t = ("### Speed on the development machine (2 shared cores, `make model-bench`)\n\n"
                 "Per crop. `Forward`: the network alone on prepared inputs, through OpenCV's dnn (the device path) and PyTorch "
                 "eager on the same inputs in the same run. `Classify`: the whole device path per crop (cell segmentation, "
                 "framing, masking, resizing, network). Shared machine: other jobs ran at the same time.\n\n" +
                 table(["benchmark", "ms per crop (median)", "range"], brows) +
                 "\n\nPyTorch eager is timed inside Python (`model/train/bench_torch.py`, 2 threads, 10 repetitions after one "
                 "warm-up call) and reported through the Go benchmark, so its ns/op column in `model/results/bench.txt` means nothing.")
            md.append(t)
            readme.append(t.replace("### ", "#### "))

    write_audit()

    fig_md = "\n\n".join(f"![{cap}](figures/{os.path.basename(p)})\n\n*{cap}.*" for p, cap in figs)
    generated = "\n\n".join(md) + ("\n\n### Figures\n\n" + fig_md if figs else "")
    doc = os.path.join(ROOT, "docs", "classifier.md")
    replace_between(doc, generated)

    rd = os.path.join(ROOT, "README.md")
    rt = open(rd).read()
    head = "## Classifier (model)"
    i = rt.index(head)
    j = rt.find("\n## ", i + len(head))
    j = len(rt) if j < 0 else j + 1
    intro = ("Blast or not for every white cell, and the maturation stage of a blast, by small CNNs trained in Python and run in "
             "Go through OpenCV's dnn. How they were trained and measured, what the paper's 99-100% meant, and every field of a "
             "model's manifest: [docs/classifier.md](docs/classifier.md), [docs/l1l2l3-audit.md](docs/l1l2l3-audit.md). "
             "Figures below are written by `make report-model` from `model/results/` (`make model-eval` reruns the experiments; "
             "`make model` retrains the shipped models).")
    sr = next((x for x in seed_runs if x["experiment"] == SHIPPED), None)
    own = [x["site"]["specificity"] for x in sr["seeds"] if x["onnx_sha256"] == shipped_hash()] if sr else []
    if sr and not own:
        # the shipped model is no longer this recipe's: the headline is the leave-one-laboratory-out section
        intro += ("\n\nThe shipped detection model now follows the leave-one-laboratory-out recipe chosen in the section above, "
                  "which is its headline. The tables below are the earlier experiments on one or three laboratories; "
                  f"`{SHIPPED}` is the recipe shipped before it.")
    elif sr:
        sp = sr["specificity"]
        intro += ("\n\n**Check the model on your own laboratory's labelled cells before trusting it** "
                  "(`allscreen eval --model model/shipped/detect.json --data DIR --labels CSV`): on "
                  f"{sr['site']}, a laboratory it never trained on, the shipped recipe's specificity ranged from {sp['min']:.3f} to "
                  f"{sp['max']:.3f} over {len(sp['values'])} training seeds" + (f" (the shipped model: {own[0]:.3f})" if own else "") +
                  "; see \"Recipes over seeds\" below.")
    if len(both) >= 3:
        good = [k for k, v in both.items() if min(v["pbc-lymphocytes"]["specificity"]["min"], v["wbcseg"]["specificity"]["min"]) >= 0.9]
        intro += (f" Of the {len(both)} recipes judged on two laboratories none of their models trained on (PBC and wbcseg), "
                  + (f"{len(good)} kept every seed at 0.9 or above on both" if good else "none kept every seed at 0.9 or above on both")
                  + " (docs/classifier.md, \"Two laboratories never trained on, one recipe\").")
    section = head + "\n\n" + intro + "\n\n" + "\n\n".join(readme) + "\n\n"
    rt = rt[:i] + section + rt[j:]
    open(rd, "w").write(rt)
    print(f"wrote {doc} ({len(md)} tables, {len(figs)} figures) and the README section")


if __name__ == "__main__":
    main()
