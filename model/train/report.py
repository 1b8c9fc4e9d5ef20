#!/usr/bin/python3
"""Regenerate the classifier's figures and tables (make report-model).

Reads only saved outputs: model/results/*.json (written by `allscreen eval --experiment ... --out`, `allscreen
shortcut --json` and `make model-bench`) and the shipped manifests model/shipped/*.json. Writes
docs/figures/model-*.png, the generated part of docs/classifier.md (between its BEGIN/END markers) and the
README's "## Classifier (model)" section. Every number in those places comes from these files.
"""
import json
import os
import re
import shutil
import sys

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
RES = os.path.join(ROOT, "model", "results")
FIG = os.path.join(ROOT, "docs", "figures")
SHIP = os.path.join(ROOT, "model", "shipped")

DETECTION = [  # (result name, short description)
    ("allidb2-compact-multisite", "compact, segmented, + PBC + bll-stages (shipped recipe)"),
    ("allidb2-compact", "compact, segmented, ALL-IDB2 only"),
    ("allidb2-compact-raw", "compact, RAW crop, ALL-IDB2 only"),
    ("allidb2-compact-paperaug", "compact, segmented, paper's augmentation, split first"),
    ("allidb2-paper", "paper's network (Table 4), segmented, paper's augmentation, split first"),
    ("allidb2-compact-leaky", "compact, segmented, paper's augmentation, copies made BEFORE the split"),
]


def load(name):
    p = os.path.join(RES, name + ".json")
    if not os.path.exists(p):
        return None
    with open(p) as f:
        return json.load(f)


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

    # ---- detection on ALL-IDB2
    rows = []
    for name, desc in DETECTION:
        r = load(name)
        if r is None:
            rows.append([desc, "not run", "", "", "", "", "", ""])
            continue
        a = r["across_seeds"]
        gb = r.get("accuracy_ci_group_bootstrap")
        rows.append([desc, r["protocol"], f"{r['accuracy']:.3f} ({ci(r['accuracy_ci'])}; fields {ci(gb)})", spread(a.get("accuracy")),
                     spread(a.get("sensitivity")), spread(a.get("specificity")), spread(a.get("uncertain_share")), spread(a.get("confident_accuracy"))])
        confusion_png(r, f"{name}, seed {r['seed']}, pooled over folds", os.path.join(FIG, f"model-confusion-{name}.png"))
    det = ("### Detection on ALL-IDB2 (blast vs normal), grouped 5-fold cross-validation\n\n"
           "Every crop is judged by the fold model that never saw it, its ALL-IDB1 field, an overlapping field or a copy of it "
           "(groups from `model/data/allidb2-sources.csv`). First seed: accuracy with its Wilson 95% CI, and the 95% CI from "
           "resampling whole field families. Then mean ± sd (min-max) over seeds. \"Uncertain\" is the share the model flags "
           "(low confidence or out of distribution); \"confident accuracy\" is measured on the rest.\n\n" +
           table(["model", "protocol", "accuracy, seed 1 (95% CIs)", "accuracy over seeds", "sensitivity", "specificity", "uncertain share",
                  "confident accuracy"], rows))
    md.append(det)
    readme.append(det.replace("### ", "#### "))
    for name in ("allidb2-compact-multisite", "allidb2-paper"):
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
        frows.append([desc, f"{f['accuracy']:.3f} ({ci(f['accuracy_ci'])})", f"{f3(f.get('sensitivity'))} ({ci(f.get('sensitivity_ci'))})",
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
            crows.append([desc, site, n, ", ".join(f3(x) for x in specs), f3(min(x for x in mins if x is not None)) if any(x is not None for x in mins) else "-",
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
        for s in sc or []:
            if s["feature"] in ("border-rgb",):
                rows.append([f"background colour alone ({s['feature']}, no cell): all four folders", f"{s['accuracy']:.3f} ({ci(s['accuracy_ci'])})", "-", f3(s['macro_avg']['f1'])])
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
    for fname, data in (("shortcut-allidb2", "ALL-IDB2 crops"), ("shortcut-allidb1", "ALL-IDB1 fields")):
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
        brows = []
        for l in lines:
            m = re.match(r"Benchmark(\S+?)-\d+\s+\d+\s+\S+ ns/op\s+(\S+) ms/crop", l)
            if m:
                brows.append([m.group(1), m.group(2)])
        if brows:
            t = ("### Speed on the development machine (2 shared cores, `make model-bench`)\n\n"
                 "Per crop. `Forward`: the network alone on prepared inputs, through OpenCV's dnn (the device path) and PyTorch "
                 "eager on the same inputs in the same run. `Classify`: the whole device path per crop (cell segmentation, "
                 "framing, masking, resizing, network). Shared machine: other jobs ran at the same time.\n\n" +
                 table(["benchmark", "ms per crop"], brows))
            md.append(t)
            readme.append(t.replace("### ", "#### "))

    fig_md = "\n\n".join(f"![{cap}](figures/{os.path.basename(p)})\n\n*{cap}.*" for p, cap in figs)
    generated = "\n\n".join(md) + ("\n\n### Figures\n\n" + fig_md if figs else "")
    doc = os.path.join(ROOT, "docs", "classifier.md")
    text = open(doc).read()
    b, e = "<!-- BEGIN generated by make report-model -->", "<!-- END generated by make report-model -->"
    if b not in text or e not in text:
        sys.exit(f"{doc}: markers missing")
    text = text[:text.index(b) + len(b)] + "\n\n" + generated + "\n\n" + text[text.index(e):]
    open(doc, "w").write(text)

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
    section = head + "\n\n" + intro + "\n\n" + "\n\n".join(readme) + "\n\n"
    rt = rt[:i] + section + rt[j:]
    open(rd, "w").write(rt)
    print(f"wrote {doc} ({len(md)} tables, {len(figs)} figures) and the README section")


if __name__ == "__main__":
    main()
