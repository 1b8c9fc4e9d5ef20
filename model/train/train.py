#!/usr/bin/python3
"""Train one classifier on inputs prepared by `allscreen prepare` and export it as ONNX plus manifest.

Python only trains: every input was written by the Go code the device runs (model/input.go), so the model
sees in training exactly what it sees on the device. The run is described by a JSON config (see
model/train/README.md); `allscreen eval` writes configs for cross-validation folds, `make model` uses
model/train/configs/*.json for the shipped models.

    /usr/bin/python3 model/train/train.py CONFIG.json

Deterministic for a seed and a thread count (both recorded in the manifest).
"""
import argparse
import copy
import csv
import datetime
import hashlib
import json
import math
import os
import subprocess
import sys
import time

import cv2
import numpy as np
import torch
import torch.nn.functional as F

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import nets  # noqa: E402

MANIFEST_FORMAT = "allscreen-model/1"


# ---------------------------------------------------------------- data

def read_index(d):
    with open(os.path.join(d, "index.csv"), newline="") as f:
        return list(csv.DictReader(f))


def read_spec(d):
    with open(os.path.join(d, "spec.json")) as f:
        return json.load(f)


class Part:
    """The rows of one prepared folder that one role (train, val, test) uses, loaded into memory."""

    def __init__(self, cfg, classes):
        self.dir = cfg["dir"]
        self.name = cfg.get("name", os.path.basename(os.path.normpath(self.dir)))
        self.weight = float(cfg.get("weight", 1.0))
        self.per_epoch = cfg.get("per_epoch")
        self.spec = read_spec(self.dir)
        # cells found in whole fields carry their field's label, not their own: weak labels, kept out of the
        # choice of the operating point (their label noise is not the model's uncertainty)
        self.weak = bool(self.spec.get("fields"))
        rows = read_index(self.dir)
        keep_inputs = set(cfg["inputs"]) if cfg.get("inputs") is not None else None
        keep_groups = set(cfg["groups"]) if cfg.get("groups") is not None else None
        drop_groups = set(cfg.get("exclude_groups") or [])
        mapping = cfg.get("map") or {c: c for c in classes}
        relabel = cfg.get("relabel") or {}  # input -> label, where Go labelled a row otherwise (a marked cell)
        sel = []
        for r in rows:
            if keep_inputs is not None and r["input"] not in keep_inputs:
                continue
            if keep_groups is not None and r["group"] not in keep_groups:
                continue
            if r["group"] in drop_groups:
                continue
            label = relabel.get(r["input"], r["label"])
            cls = mapping.get(label, mapping.get("*"))
            if cls is None and keep_inputs is not None:
                # Go chose this input as an example of a class: a label that maps to none is a bug, not a filter
                raise SystemExit(f"{self.name}: listed input {r['input']} has label {label!r}, which the map leaves out")
            if cls is None:
                continue
            if cls not in classes:
                raise SystemExit(f"{self.dir}: label {r['label']!r} maps to {cls!r}, not one of {classes}")
            sel.append((r, classes.index(cls)))
        self.rows = [r for r, _ in sel]
        self.y = np.array([c for _, c in sel], dtype=np.int64)
        n = len(sel)
        size = self.spec["input"]["size"]
        self.rgb = np.zeros((n, size, size, 3), np.uint8)
        self.alpha = np.zeros((n, size, size), np.uint8)
        for i, r in enumerate(self.rows):
            im = cv2.imread(os.path.join(self.dir, r["input"]), cv2.IMREAD_UNCHANGED)
            if im is None or im.shape != (size, size, 4):
                raise SystemExit(f"{self.dir}/{r['input']}: not a {size}x{size} BGRA model input")
            self.rgb[i] = im[:, :, 2::-1]
            self.alpha[i] = im[:, :, 3]

    def __len__(self):
        return len(self.rows)


def hold_out_groups(train_cfgs, classes, fraction, rng):
    """Move a random fraction of each training part's groups, per label, to validation: a group (one cell and
    its copies, or one field's cells) stays on one side."""
    new_train, val = [], []
    for c in train_cfgs:
        rows = read_index(c["dir"])
        keep_groups = set(c["groups"]) if c.get("groups") is not None else None
        drop = set(c.get("exclude_groups") or [])
        by_label = {}
        for r in rows:
            if (keep_groups is None or r["group"] in keep_groups) and r["group"] not in drop:
                by_label.setdefault(r["label"], set()).add(r["group"])
        held = set()
        for label in sorted(by_label):
            gs = sorted(by_label[label])
            k = int(round(len(gs) * fraction))
            held |= {gs[i] for i in rng.permutation(len(gs))[:k]}
        t = dict(c)
        t["exclude_groups"] = sorted(drop | held)
        v = {k2: v2 for k2, v2 in c.items() if k2 not in ("per_epoch", "weight", "exclude_groups", "groups")}
        v["groups"] = sorted(held)
        v["name"] = c.get("name", os.path.basename(os.path.normpath(c["dir"]))) + "-val"
        new_train.append(t)
        val.append(v)
    return new_train, val


def check_specs(parts):
    # whole fields and crops may be mixed (and only bll-stages has a scale bar); the input itself may not differ
    specs = {json.dumps({k: p.spec[k] for k in ("input", "segmentation_version")}, sort_keys=True) for p in parts if len(p)}
    if len(specs) != 1:
        raise SystemExit("prepared folders disagree on the input spec or segmentation version: " + " | ".join(specs))
    return json.loads(specs.pop())


def to_tensor(rgb, alpha, order):
    x = torch.from_numpy(rgb).permute(0, 3, 1, 2).float().div(255.0)
    if order == "BGR":
        x = x.flip(1)
    a = torch.from_numpy(alpha).unsqueeze(1).float().div(255.0)
    return x, a


# ---------------------------------------------------------------- augmentation (training data only, after the split)

AUGMENT_MODES = ("none", "paper", "light", "full", "wide")
JITTER_MODES = ("full", "light", "wide")  # the modes with free rotation, flips, stain jitter and blur

# restyle_lab's ranges, in CIE L*a*b* units (L 0-100; OpenCV's 8-bit Lab is L*255/100, a+128, b+128).
# Measured on the segmented cells: the training sites' per-site mean L spans 65-179 (8-bit), b 74-104,
# a 153-167, and the cells' own spread of L (nucleus against cytoplasm) is 14-27 (8-bit) at the training
# sites and 42-48 at the two other sites (PBC, wbcseg). A shift of the cell's mean and a gain on its
# spread, drawn per cell, make the absolute colour and contrast of a cell worthless as a cue while its
# pattern stays.
RESTYLE = {"p": 0.8, "shift": (16.0, 12.0, 25.0), "gain": ((0.7, 2.0), (0.7, 1.6), (0.7, 1.6))}


D65 = torch.tensor([0.950456, 1.0, 1.088754]).view(1, 3, 1, 1)  # the white point of sRGB, in XYZ


def rgb_to_lab(x):
    """x: (B,3,H,W) sRGB in [0,1] -> CIE L*a*b* (D65), L in 0..100."""
    lin = torch.where(x <= 0.04045, x / 12.92, ((x.clamp(min=0) + 0.055) / 1.055) ** 2.4)
    m = torch.tensor([[0.412453, 0.357580, 0.180423], [0.212671, 0.715160, 0.072169], [0.019334, 0.119193, 0.950227]])
    xyz = torch.einsum("ij,bjhw->bihw", m, lin) / D65
    f = torch.where(xyz > 0.008856, xyz.clamp(min=1e-9) ** (1 / 3), 7.787 * xyz + 16 / 116)
    return torch.stack([116 * f[:, 1] - 16, 500 * (f[:, 0] - f[:, 1]), 200 * (f[:, 1] - f[:, 2])], 1)


def lab_to_rgb(lab):
    """Inverse of rgb_to_lab; out-of-gamut colours are clipped to [0,1]."""
    fy = (lab[:, 0] + 16) / 116
    f = torch.stack([fy + lab[:, 1] / 500, fy, fy - lab[:, 2] / 200], 1)
    xyz = torch.where(f > 0.206893, f ** 3, (f - 16 / 116) / 7.787) * D65
    m = torch.tensor([[3.240479, -1.53715, -0.498535], [-0.969256, 1.875991, 0.041556], [0.055648, -0.204043, 1.057311]])
    lin = torch.einsum("ij,bjhw->bihw", m, xyz).clamp(0, 1)
    return torch.where(lin <= 0.0031308, lin * 12.92, 1.055 * lin.clamp(min=1e-9) ** (1 / 2.4) - 0.055).clamp(0, 1)


def restyle_lab(x, a, g, order="RGB"):
    """A random laboratory for most cells: with probability RESTYLE["p"], each cell's L*a*b* mean (over its
    mask a) is shifted by up to RESTYLE["shift"] per channel and its pixels' spread about that mean
    multiplied by a gain drawn log-uniformly from RESTYLE["gain"]. x: (B,3,H,W) in [0,1] in channel order
    order; pixels outside the cell are restored by the caller's blend."""
    B = x.shape[0]
    rgb = x.flip(1) if order == "BGR" else x
    lab = rgb_to_lab(rgb)
    w = (a > 0.5).float()
    n = w.sum(dim=(2, 3), keepdim=True).clamp(min=1)
    mean = (lab * w).sum(dim=(2, 3), keepdim=True) / n
    u = lambda *s: torch.rand(*s, generator=g)  # noqa: E731
    shift = (u(B, 3, 1, 1) * 2 - 1) * torch.tensor(RESTYLE["shift"]).view(1, 3, 1, 1)
    lo = torch.tensor([r[0] for r in RESTYLE["gain"]]).log().view(1, 3, 1, 1)
    hi = torch.tensor([r[1] for r in RESTYLE["gain"]]).log().view(1, 3, 1, 1)
    gain = (lo + u(B, 3, 1, 1) * (hi - lo)).exp()
    on = (u(B, 1, 1, 1) < RESTYLE["p"]).float()
    shift, gain = shift * on, 1 + (gain - 1) * on
    lab = mean + shift + (lab - mean) * gain
    lab = torch.cat([lab[:, :1].clamp(0, 100), lab[:, 1:].clamp(-127, 127)], 1)
    out = lab_to_rgb(lab)
    out = out.flip(1) if order == "BGR" else out
    return torch.where(on.bool().expand_as(x), out, x)


def blur5(x, s):
    """x: (B,3,H,W) blurred by a 5x5 Gaussian of sigma s, edges replicated."""
    r = torch.arange(-2, 3).float()
    k1 = torch.exp(-(r ** 2) / (2 * s * s))
    k1 = k1 / k1.sum()
    k2 = (k1[:, None] * k1[None, :]).expand(3, 1, 5, 5).contiguous()
    return F.conv2d(F.pad(x, (2, 2, 2, 2), mode="replicate"), k2, groups=3)


def augment(x, a, bg, g, mode, order="RGB"):
    """x: (B,3,H,W) in [0,1]; a: (B,1,H,W) cell mask in [0,1]; bg: (3,) neutral background; g: torch.Generator.

    paper: a random quarter turn (0/90/180/270) and a random crop (zoom 1.0-1.15), as the paper.
    full:  paper's, plus flips, a small free rotation, scale 0.85-1.2, shifts, stain jitter in optical
           density (per-channel gain and offset, channel mixing), brightness, blur and noise.
    light: the same kinds, milder (scale 0.9-1.1, gain +-10%, less mixing, blur on fewer images).
    wide:  light's, after a wide restyling of most cells (restyle_lab) and with sharpening as well as blur:
           laboratories differ far more than light's jitter spans (see restyle_lab).
    The background stays neutral: colours are jittered on the cell only. order is x's channel order."""
    if mode not in AUGMENT_MODES:
        raise SystemExit(f"augment {mode!r}: want one of {', '.join(AUGMENT_MODES)}")
    if mode == "none":
        return x
    B = x.shape[0]
    u = lambda *s: torch.rand(*s, generator=g)  # noqa: E731
    k = torch.randint(0, 4, (B,), generator=g).float()
    ang = k * (math.pi / 2)
    strong = mode == "full"
    if mode in JITTER_MODES:
        ang = ang + (u(B) - 0.5) * (math.pi / 6)
        scale = (0.85 + u(B) * 0.35) if strong else (0.9 + u(B) * 0.2)
        flip = torch.where(u(B) < 0.5, -1.0, 1.0)
        shift = (u(B, 2) - 0.5) * 0.12
    else:
        scale = 1.0 + u(B) * 0.15
        flip = torch.ones(B)
        shift = (u(B, 2) - 0.5) * 0.1 * (scale.unsqueeze(1) - 1) / 0.15
    cos, sin = torch.cos(ang) / scale, torch.sin(ang) / scale
    theta = torch.zeros(B, 2, 3)
    theta[:, 0, 0], theta[:, 0, 1], theta[:, 0, 2] = cos * flip, -sin, shift[:, 0]
    theta[:, 1, 0], theta[:, 1, 1], theta[:, 1, 2] = sin * flip, cos, shift[:, 1]
    grid = F.affine_grid(theta, list(x.shape), align_corners=False)
    bgv = bg.view(1, 3, 1, 1)
    x = F.grid_sample(x - bgv, grid, align_corners=False, padding_mode="zeros") + bgv
    a = F.grid_sample(a, grid, align_corners=False, padding_mode="zeros")
    if mode not in JITTER_MODES:
        return x.clamp(0, 1)
    if mode == "wide":
        x = restyle_lab(x.clamp(0, 1), a, g, order)
    # stain jitter in optical density: Beer-Lambert makes stain amount multiplicative there
    od = -torch.log(x.clamp(min=1.0 / 255))
    mix = torch.eye(3).unsqueeze(0) + (torch.randn(B, 3, 3, generator=g) * (0.05 if strong else 0.02))
    od = torch.einsum("bij,bjhw->bihw", mix, od)
    gain = 1.0 + (u(B, 3, 1, 1) - 0.5) * (0.5 if strong else 0.2)
    off = (u(B, 3, 1, 1) - 0.5) * (0.1 if strong else 0.04)
    xc = torch.exp(-(od * gain + off))
    xc = xc * (0.9 + u(B, 1, 1, 1) * 0.2)
    # blur about a third of the images (focus differs between microscopes); one sigma per batch keeps it cheap
    sel = torch.nonzero(u(B) < (0.33 if strong else 0.15)).flatten()
    if len(sel):
        xc[sel] = blur5(xc[sel], 0.4 + float(u(1)) * 0.8)
    if mode == "wide":
        # sharpen another share (unsharp mask): cameras and scanners differ in sharpness both ways
        sel = torch.nonzero(u(B) < 0.15).flatten()
        if len(sel):
            xc[sel] = xc[sel] + (0.3 + u(len(sel), 1, 1, 1) * 0.7) * (xc[sel] - blur5(xc[sel], 1.0))
    xc = xc + torch.randn(xc.shape, generator=g) * 0.01
    x = a * xc + (1 - a) * bgv
    return x.clamp(0, 1)


# ---------------------------------------------------------------- training

def ema_update(ema, net, decay):
    """ema <- decay * ema + (1 - decay) * net, for weights and batch-norm running statistics alike."""
    with torch.no_grad():
        for e, n in zip(ema.state_dict().values(), net.state_dict().values()):
            if e.dtype.is_floating_point:
                e.mul_(decay).add_(n, alpha=1 - decay)
            else:
                e.copy_(n)


def predict(net, x, batch=64):
    net.eval()
    probs, feats = [], []
    with torch.no_grad():
        for i in range(0, len(x), batch):
            logits, f = net(x[i:i + batch])
            probs.append(torch.softmax(logits, 1))
            feats.append(f)
    if not probs:
        return torch.zeros(0), torch.zeros(0)
    return torch.cat(probs), torch.cat(feats)


def class_weights(parts, n_classes):
    """Per-sample loss weights: within each part the classes count equally (a part's mean weight is its
    'weight'); how much each part counts per epoch is set by how many of its inputs an epoch draws."""
    ws = []
    for p in parts:
        cnt = np.bincount(p.y, minlength=n_classes).astype(np.float64)
        present = max(int((cnt > 0).sum()), 1)
        w = np.where(cnt > 0, len(p.y) / np.maximum(cnt, 1) / present, 0.0) * p.weight
        ws.append(w[p.y])
    return torch.from_numpy(np.concatenate(ws)).float()


def balanced_val(probs, y, part_ids, n_classes):
    """Validation loss and accuracy that count every part and, within it, every class the same: the large
    site must not decide the epoch alone."""
    logp = torch.log(probs.clamp(min=1e-7))
    pred = probs.argmax(1).numpy()
    losses, accs = [], []
    for pid in np.unique(part_ids):
        pl, pa = [], []
        for c in range(n_classes):
            m = (part_ids == pid) & (y == c)
            if m.any():
                idx = torch.from_numpy(np.nonzero(m)[0])
                pl.append(float(-logp[idx, c].mean()))
                pa.append(float((pred[m] == c).mean()))
        losses.append(np.mean(pl))
        accs.append(np.mean(pa))
    return float(np.mean(losses)), float(np.mean(accs))


def wilson(k, n, z=1.959963984540054):
    """Wilson score 95% interval; a rate measured as 0 on few cells is not 0."""
    if n == 0:
        return [0.0, 1.0]
    p = k / n
    den = 1 + z * z / n
    c = (p + z * z / (2 * n)) / den
    h = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / den
    return [round(max(0.0, c - h), 5), round(min(1.0, c + h), 5)]


def choose_operating_point(p_pos, y, positive, target_error=0.02):
    """On validation data: the threshold at which a cell counts as positive (0.5: the classes are balanced
    in training), and the narrowest band around it outside which the validation error is at most
    target_error; a cell inside the band is uncertain."""
    t = 0.5
    yb = (y == positive)
    band = 0.45
    for d in np.arange(0.0, 0.451, 0.01):
        out = np.abs(p_pos - t) > d
        if out.sum() == 0:
            break
        err = ((p_pos[out] >= t) != yb[out]).mean()
        if err <= target_error:
            band = float(d)
            break
    inside = np.abs(p_pos - t) <= band
    neg_conf = (~yb) & (~inside)
    pos_all = yb
    fpr = float((p_pos[neg_conf] >= t).mean()) if neg_conf.any() else None
    sens = float((p_pos[pos_all] >= t).mean()) if pos_all.any() else None
    k, n = int((p_pos[neg_conf] >= t).sum()), int(neg_conf.sum())
    return {"cell_false_positive_rate": fpr, "cell_false_positive_rate_ci95": wilson(k, n), "validation_normal_cells": n,
            "cell_sensitivity": sens,"blast_threshold": t, "uncertain_low": round(max(0.0, t - band), 4), "uncertain_high": round(min(1.0, t + band), 4),
            "uncertain_target_error": target_error, "validation_uncertain_share": float(inside.mean()) if len(y) else None,
            "validation_error_outside_band": float(((p_pos[~inside] >= t) != yb[~inside]).mean()) if (~inside).any() else None}


def ood_reference(feat_train, y_train, feat_val, n_classes, quantile=0.99, part_train=None, part_val=None):
    """Feature-distance out-of-distribution check: the distance of a cell's feature vector to the nearest
    centre of the training cells, each dimension scaled by the training spread within centres. There is one
    centre per class and training set (site): a model trained on several laboratories has one cloud of
    features per laboratory, and one centre per class would sit between them. The threshold is the 99th
    percentile of the validation cells' distances, taken per set and then the largest, so that 99% of every
    site's unseen in-distribution cells pass; an input farther than that is unlike the training data."""
    f = feat_train.numpy().astype(np.float64)
    if part_train is None:
        part_train = np.zeros(len(f), int)
    centres, labels, resid = [], [], []
    for pt in np.unique(part_train):
        for c in range(n_classes):
            m = (part_train == pt) & (y_train == c)
            if m.sum() >= 10 or (m.any() and not centres):
                mu = f[m].mean(0)
                centres.append(mu)
                labels.append(c)
                resid.append(f[m] - mu)
    if not centres:
        centres, labels, resid = [f.mean(0)], [0], [f - f.mean(0)]
    var = np.concatenate(resid).var(0) + 1e-6
    use_val = feat_val is not None and len(feat_val)
    ref = (feat_val if use_val else feat_train).numpy()
    pref = (part_val if use_val else part_train)
    if pref is None or len(pref) != len(ref):
        pref = np.zeros(len(ref), int)
    d = ood_distance(ref, centres, var)
    thr = max(float(np.quantile(d[pref == pt], quantile)) for pt in np.unique(pref))
    return {"kind": "feature-distance", "output": "feature", "class_means": [[round(float(v), 6) for v in m] for m in centres],
            "centre_labels": labels, "variance": [round(float(v), 6) for v in var], "threshold": round(thr, 4),
            "quantile": quantile, "chosen_on": ("validation" if use_val else "training") + ", per training set"}


def ood_distance(f, means, var):
    f = np.asarray(f, np.float64)
    d = np.stack([np.sqrt((((f - m) ** 2) / var).mean(1)) for m in means], 1)
    return d.min(1)


def git_version():
    """The commit of the training code, "-dirty" when tracked files differ from it. The shipped models themselves
    (model/shipped) do not count: `make model` installs one model before it trains the next."""
    try:
        here = os.path.dirname(os.path.abspath(__file__))
        v = subprocess.run(["git", "-C", here, "describe", "--always", "--abbrev=12"], capture_output=True, text=True, timeout=10)
        if not v.stdout.strip():
            return "unknown"
        top = subprocess.run(["git", "-C", here, "rev-parse", "--show-toplevel"], capture_output=True, text=True, timeout=10).stdout.strip()
        st = subprocess.run(["git", "-C", top, "status", "--porcelain", "--untracked-files=no", "--", ".", ":(exclude)model/shipped"],
                            capture_output=True, text=True, timeout=10)
        return v.stdout.strip() + ("-dirty" if st.stdout.strip() else "")
    except Exception:
        return "unknown"


def sha256(path):
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def save_curves(hist, path, title):
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    ep = [h["epoch"] for h in hist]
    fig, ax = plt.subplots(1, 2, figsize=(9, 3.4))
    ax[0].plot(ep, [h["train_loss"] for h in hist], label="train")
    if hist and hist[0].get("val_loss") is not None:
        ax[0].plot(ep, [h["val_loss"] for h in hist], label="validation")
    ax[0].set_xlabel("epoch"); ax[0].set_ylabel("loss"); ax[0].legend()
    ax[1].plot(ep, [h["train_acc"] for h in hist], label="train")
    if hist and hist[0].get("val_acc") is not None:
        ax[1].plot(ep, [h["val_acc"] for h in hist], label="validation")
    ax[1].set_xlabel("epoch"); ax[1].set_ylabel("accuracy"); ax[1].set_ylim(0, 1.01); ax[1].legend()
    fig.suptitle(title, fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def expand_paper(parts):
    """The paper's protocol: every image becomes five copies (itself, three quarter turns, a central crop)
    BEFORE any split. Returns a list of (part index, row index, copy id)."""
    return [(pi, ri, c) for pi, p in enumerate(parts) for ri in range(len(p)) for c in range(5)]


def copy_of(rgb, alpha, c):
    if c < 4:
        return np.ascontiguousarray(np.rot90(rgb, c)), np.ascontiguousarray(np.rot90(alpha, c))
    s = rgb.shape[0]
    m = s // 14
    r = cv2.resize(rgb[m:s - m, m:s - m], (s, s), interpolation=cv2.INTER_AREA)
    a = cv2.resize(alpha[m:s - m, m:s - m], (s, s), interpolation=cv2.INTER_AREA)
    return r, a


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("config")
    ap.add_argument("--recalibrate", metavar="MANIFEST", help="recompute MANIFEST's operating point (see recalibrate)")
    args = ap.parse_args()
    if args.recalibrate:
        recalibrate(args.config, args.recalibrate)
        return
    with open(args.config) as f:
        cfg = json.load(f)
    t_start = time.time()
    threads = int(cfg.get("threads", 2))
    torch.set_num_threads(threads)
    seed = int(cfg.get("seed", 1))
    torch.manual_seed(seed)
    np.random.seed(seed)
    torch.use_deterministic_algorithms(True)
    g = torch.Generator().manual_seed(seed)
    rng = np.random.default_rng(seed)

    classes = cfg["classes"]
    positive = cfg.get("positive")
    arch = cfg.get("arch", "compact")
    out_dir = cfg["out"]
    name = cfg.get("name", "model")
    os.makedirs(out_dir, exist_ok=True)
    log = open(os.path.join(out_dir, name + ".log"), "w")

    def say(msg):
        print(msg, flush=True)
        log.write(msg + "\n")
        log.flush()

    train_cfgs, val_cfgs = cfg["train"], list(cfg.get("val", []))
    if cfg.get("val_fraction"):
        train_cfgs, extra = hold_out_groups(train_cfgs, classes, float(cfg["val_fraction"]), rng)
        val_cfgs += extra
    train_parts = [Part(c, classes) for c in train_cfgs]
    val_parts = [Part(c, classes) for c in val_cfgs]
    test_parts = [Part(c, classes) for c in cfg.get("test", [])]
    spec = check_specs(train_parts + val_parts + test_parts)
    inp = spec["input"]
    size, order = inp["size"], inp["channel_order"]
    bg = torch.tensor(inp["background_rgb"], dtype=torch.float32) / 255.0
    if order == "BGR":
        bg = bg.flip(0)
    net_cls = nets.ARCHS[arch]
    if net_cls.input_size is not None and net_cls.input_size != size:
        raise SystemExit(f"architecture {arch} takes {net_cls.input_size}x{net_cls.input_size} inputs; these are {size}x{size} (prepare with --size {net_cls.input_size})")
    protocol = cfg.get("protocol", "split-then-augment")

    def cat(parts):
        if not parts:
            return torch.zeros(0, 3, size, size), torch.zeros(0, 1, size, size), np.zeros(0, np.int64)
        xs, as_ = zip(*[to_tensor(p.rgb, p.alpha, order) for p in parts])
        return torch.cat(xs), torch.cat(as_), np.concatenate([p.y for p in parts])

    if protocol == "augment-then-split":
        # The paper's leaking protocol, reproduced on purpose for the comparison: copies first, then a random
        # split of the copies into folds, so copies of one test image sit in training.
        copies = expand_paper(train_parts)
        order_ = rng.permutation(len(copies))
        k, nf = int(cfg["fold"]), int(cfg.get("folds", 5))
        test_idx = [copies[i] for j, i in enumerate(order_) if j % nf == k]
        rest = [copies[i] for j, i in enumerate(order_) if j % nf != k]
        nval = len(rest) // 10
        val_idx, tr_idx = rest[:nval], rest[nval:]

        def build(idx):
            rgb = np.stack([copy_of(train_parts[p].rgb[r], train_parts[p].alpha[r], c)[0] for p, r, c in idx])
            al = np.stack([copy_of(train_parts[p].rgb[r], train_parts[p].alpha[r], c)[1] for p, r, c in idx])
            x, a = to_tensor(rgb, al, order)
            return x, a, np.array([train_parts[p].y[r] for p, r, c in idx])
        xtr, atr, ytr = build(tr_idx)
        xva, ava, yva = build(val_idx)
        val_part_ids = np.zeros(len(yva))
        xte, ate, yte = build(test_idx)
        test_meta = [(train_parts[p].name, train_parts[p].rows[r], c) for p, r, c in test_idx]
        wtr = class_weights([type("P", (), {"y": ytr, "weight": 1.0})()], len(classes))
        aug_mode = "none"
        per_epoch_plan = None
    else:
        xtr, atr, ytr = cat(train_parts)
        xva, ava, yva = cat(val_parts)
        val_part_ids = np.concatenate([np.full(len(p), i) for i, p in enumerate(val_parts)]) if val_parts else np.zeros(0)
        xte, ate, yte = cat(test_parts)
        test_meta = [(p.name, r, 0) for p in test_parts for r in p.rows]
        wtr = class_weights(train_parts, len(classes))
        aug_mode = cfg.get("augment", "full")
        # parts with per_epoch draw that many samples each epoch (a large site must not swamp the others)
        offsets = np.cumsum([0] + [len(p) for p in train_parts])
        per_epoch_plan = [(offsets[i], len(p), p.per_epoch) for i, p in enumerate(train_parts)]

    if len(xtr) == 0:
        raise SystemExit("no training inputs selected")
    net = net_cls(n_classes=len(classes))
    say(f"{name}: {arch} ({nets.n_params(net):,} parameters), {size}x{size}, {len(xtr)} training / {len(xva)} validation / "
        f"{len(xte)} test inputs, classes {classes}, augment {aug_mode}, protocol {protocol}, seed {seed}, threads {threads}")
    lr = float(cfg.get("lr", 1e-3))
    wd = float(cfg.get("weight_decay", 1e-4))
    opt = torch.optim.Adam(net.parameters(), lr=lr, weight_decay=wd)
    epochs = int(cfg.get("epochs", 30))
    patience = int(cfg.get("patience", 8))
    batch = int(cfg.get("batch", 32))
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=epochs)
    # "ema" > 0: validate, keep and export an exponential moving average of the weights (and batch-norm
    # statistics) instead of the last step's. An epoch here is a few dozen steps, and the raw weights'
    # validation loss jumps from epoch to epoch, so early stopping on it picks an epoch by chance.
    ema_decay = float(cfg.get("ema", 0))
    ema = copy.deepcopy(net) if ema_decay > 0 else None
    steps = 0
    hist = []
    best = (float("inf"), None, 0)
    for ep in range(1, epochs + 1):
        t0 = time.time()
        net.train()
        if per_epoch_plan is None:
            idx = torch.randperm(len(xtr), generator=g)
        else:
            chunks = []
            for off, n, pe in per_epoch_plan:
                if pe is None or pe >= n:
                    chunks.append(off + torch.randperm(n, generator=g))
                else:
                    chunks.append(off + torch.randperm(n, generator=g)[:int(pe)])
            idx = torch.cat(chunks)
            idx = idx[torch.randperm(len(idx), generator=g)]
        tl, tc, tn = 0.0, 0, 0
        for i in range(0, len(idx), batch):
            b = idx[i:i + batch]
            if len(b) < 2:
                continue
            xb = augment(xtr[b], atr[b], bg, g, aug_mode, order)
            yb = torch.from_numpy(ytr[b.numpy()])
            logits, _ = net(xb)
            loss = (F.cross_entropy(logits, yb, reduction="none") * wtr[b]).mean()
            opt.zero_grad()
            loss.backward()
            opt.step()
            steps += 1
            if ema is not None:
                ema_update(ema, net, min(ema_decay, (1 + steps) / (10 + steps)))
            tl += float(loss) * len(b)
            tc += int((logits.argmax(1) == yb).sum())
            tn += len(b)
        sched.step()
        h = {"epoch": ep, "train_loss": tl / max(tn, 1), "train_acc": tc / max(tn, 1), "seconds": round(time.time() - t0, 1)}
        judged = ema if ema is not None else net
        if len(xva):
            pv, _ = predict(judged, xva)
            h["val_loss"], h["val_acc"] = balanced_val(pv, yva, val_part_ids, len(classes))
            if h["val_loss"] < best[0] - 1e-4:
                best = (h["val_loss"], {k: v.clone() for k, v in judged.state_dict().items()}, ep)
        hist.append(h)
        say(f"epoch {ep:3d}/{epochs}  train loss {h['train_loss']:.4f} acc {h['train_acc']:.3f}" +
            (f"  val loss {h['val_loss']:.4f} acc {h['val_acc']:.3f}" if len(xva) else "") + f"  ({h['seconds']} s)")
        if cfg.get("keep", "best") == "best" and len(xva) and ep - best[2] >= patience and ep < epochs:
            say(f"early stop: validation loss has not improved for {patience} epochs; keeping epoch {best[2]}")
            break
    # keep "best": the epoch of lowest validation loss; "last": the end of the cosine schedule (when the
    # validation set is too small for its loss to pick an epoch better than noise)
    keep = cfg.get("keep", "best")
    if keep == "best" and best[1] is not None:
        net.load_state_dict(best[1])
    elif ema is not None:
        net.load_state_dict(ema.state_dict())
    kept_epoch = best[2] if keep == "best" and best[1] is not None else len(hist)

    # operating point and OOD reference, on validation data (never test data)
    ptr, ftr = predict(net, xtr)
    pva, fva = predict(net, xva)
    if protocol != "augment-then-split":
        part_tr, part_va, val_weak = part_indices(train_parts, val_parts)
    else:
        part_tr, part_va, val_weak = None, None, np.zeros(len(yva), bool)
    op = operating_point(classes, positive, pva.numpy(), yva, val_weak, ftr, ytr, fva, part_tr, part_va)

    # export
    onnx_path = os.path.join(out_dir, name + ".onnx")
    net.eval()
    exp = nets.Exported(net).eval()
    dummy = torch.zeros(1, 3, size, size)
    torch.onnx.export(exp, dummy, onnx_path, opset_version=13, input_names=["input"], output_names=["prob", "feature"],
                      dynamic_axes={"input": {0: "batch"}, "prob": {0: "batch"}, "feature": {0: "batch"}})
    curves = name + "-curves.png"
    save_curves(hist, os.path.join(out_dir, curves), cfg.get("title", f"{name}: {arch}, seed {seed}"))

    # predictions on the test part (the Go evaluation is the one reported; these serve the paper protocol)
    if len(xte):
        pte, fte = predict(net, xte)
        dte = ood_distance(fte.numpy(), [np.array(m) for m in op["ood"]["class_means"]], np.array(op["ood"]["variance"]))
        with open(os.path.join(out_dir, name + "-predictions.csv"), "w", newline="") as f:
            w = csv.writer(f)
            w.writerow(["set", "input", "group", "copy", "label", "class"] + [f"p_{c}" for c in classes] + ["ood_distance"])
            for (pname, r, c), yi, pr, di in zip(test_meta, yte, pte.numpy(), dte):
                w.writerow([pname, r["input"], r["group"], c, r["label"], classes[yi]] + [f"{v:.6f}" for v in pr] + [f"{di:.4f}"])

    manifest = {
        "format": MANIFEST_FORMAT,
        "task": cfg.get("task", "detection"),
        "provisional": bool(cfg.get("provisional", False)),
        "description": cfg.get("description", ""),
        "architecture": arch,
        "parameters": nets.n_params(net),
        "onnx": name + ".onnx",
        "onnx_sha256": sha256(onnx_path),
        "onnx_bytes": os.path.getsize(onnx_path),
        "opset": 13,
        "input_name": "input",
        "output_name": "prob",
        "feature_name": "feature",
        "labels": classes,
        "positive_label": positive,
        "input": inp,
        "segmentation_version": spec["segmentation_version"],
        "operating_point": op,
        "training": {
            "data": [{"dir": os.path.relpath(p.dir, cfg.get("relative_to", os.getcwd())), "name": p.name, "inputs": len(p),
                      "per_class": {classes[c]: int((p.y == c).sum()) for c in range(len(classes))}, "per_epoch": p.per_epoch,
                      "weight": p.weight} for p in train_parts],
            "validation": [{"name": p.name, "inputs": len(p)} for p in val_parts],
            "split": cfg.get("split", ""),
            "protocol": protocol,
            "augment": aug_mode,
            "seed": seed,
            "threads": threads,
            "epochs_run": len(hist),
            "epoch_kept": kept_epoch,
            "optimizer": f"Adam lr {lr} weight decay (L2) {wd}, cosine schedule, batch {batch}" +
                         (f", weights averaged (EMA, decay {ema_decay})" if ema is not None else ""),
            "early_stopping": (f"validation loss, patience {patience}" if len(xva) else "none (no validation data)") if keep == "best" else "none: the last epoch of the cosine schedule is kept",
            "seconds": round(time.time() - t_start, 1),
            "curves": curves,
            "history": hist,
        },
        "metrics": cfg.get("metrics", {}),
        "created": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "code_version": git_version(),
    }
    if len(xva):
        yv = yva
        manifest["validation_accuracy"] = float((pva.argmax(1).numpy() == yv).mean())
    with open(os.path.join(out_dir, name + ".json"), "w") as f:
        json.dump(manifest, f, indent=1)
        f.write("\n")
    if cfg.get("parity"):
        write_parity(cfg["parity"], exp, out_dir, name, order, op["ood"])
        say(f"wrote the parity fixture {cfg['parity']['out']}")
    say(f"wrote {onnx_path} ({manifest['onnx_bytes']:,} bytes) and {name}.json in {manifest['training']['seconds']} s")


def write_parity(pcfg, exp, out_dir, name, order, ood):
    """PyTorch eager outputs on inputs Go prepared from the CC-BY sample images: the Go path must reproduce them
    within 1e-4 (model/net_test.go). The inputs are copied beside the model (RGB only; they are small)."""
    rows = read_index(pcfg["dir"])
    fixture_dir = os.path.join(out_dir, "parity", name)
    os.makedirs(fixture_dir, exist_ok=True)
    names, xs = [], []
    for r in rows:
        im = cv2.imread(os.path.join(pcfg["dir"], r["input"]), cv2.IMREAD_UNCHANGED)
        bgr = np.ascontiguousarray(im[:, :, :3])
        rel = os.path.join("parity", name, os.path.basename(r["input"]))
        cv2.imwrite(os.path.join(out_dir, rel), bgr)
        names.append(rel)
        x, _ = to_tensor(bgr[None, :, :, ::-1].copy(), im[None, :, :, 3].copy(), order)
        xs.append(x)
    x = torch.cat(xs)
    with torch.no_grad():
        prob, feat = exp.eval()(x)
    d = ood_distance(feat.numpy(), [np.array(m) for m in ood["class_means"]], np.array(ood["variance"]))
    with open(os.path.join(out_dir, "parity", name + ".json"), "w") as fh:
        json.dump({"manifest": name + ".json", "inputs": names, "probs": prob.numpy().tolist(),
                   "features": feat.numpy().tolist(), "ood_distance": d.tolist(),
                   "note": "PyTorch eager outputs on inputs Go prepared from samples/ (CC BY images)"}, fh)
        fh.write("\n")


def part_indices(train_parts, val_parts):
    """Per input, the index of its training set (site): for the training inputs, and for the validation inputs
    through their part's name ("<name>-val"; -1 when it names no training set); and per validation input
    whether its label is weak (a field's label on its cells)."""
    names = [p.name for p in train_parts]
    part_tr = np.concatenate([np.full(len(p), i) for i, p in enumerate(train_parts)])
    if not val_parts:
        return part_tr, np.zeros(0, int), np.zeros(0, bool)
    part_va = np.concatenate([np.full(len(p), names.index(p.name[:-4]) if p.name.endswith("-val") and p.name[:-4] in names else -1)
                              for p in val_parts])
    val_weak = np.concatenate([np.full(len(p), p.weak) for p in val_parts])
    return part_tr, part_va, val_weak


def operating_point(classes, positive, pva, yva, val_weak, ftr, ytr, fva, part_train=None, part_val=None):
    """The manifest's operating_point from validation outputs: the detection threshold, the uncertainty band and
    the false-positive rate on individually labelled validation cells (weakly labelled field cells only when
    there is nothing else), and the OOD reference on all of them."""
    pos = classes.index(positive) if positive in classes else None
    if len(yva):
        clean = ~val_weak if (~val_weak).any() else np.ones(len(yva), bool)
        if pos is not None and len(classes) == 2:
            op = choose_operating_point(pva[clean, pos], yva[clean], pos)
        else:
            op = choose_multiclass_point(pva[clean], yva[clean])
        op["chosen_on"] = "validation" + ("" if clean.all() else " (individually labelled cells only)")
    else:
        op = ({"blast_threshold": 0.5, "uncertain_low": 0.3, "uncertain_high": 0.7, "chosen_on": "defaults (no validation data)"}
              if pos is not None else {"min_confidence": 0.5, "chosen_on": "defaults (no validation data)"})
    op["ood"] = ood_reference(torch.as_tensor(ftr), ytr, torch.as_tensor(fva) if len(yva) else None, len(classes),
                              part_train=part_train, part_val=part_val)
    return op


def recalibrate(cfg_path, manifest_path):
    """Recompute a trained model's operating point with this code's rules, running its ONNX file through
    OpenCV's dnn (the device's engine) on the training and validation inputs of its config; rewrite the
    manifest. The weights and the ONNX file are untouched."""
    with open(cfg_path) as f:
        cfg = json.load(f)
    with open(manifest_path) as f:
        m = json.load(f)
    classes = cfg["classes"]
    train_parts = [Part(c, classes) for c in cfg["train"]]
    val_parts = [Part(c, classes) for c in cfg.get("val", [])]
    net = cv2.dnn.readNet(os.path.join(os.path.dirname(manifest_path), m["onnx"]))
    order = m["input"]["channel_order"]

    def run(parts):
        probs, feats = [], []
        for p in parts:
            bgr = p.rgb[:, :, :, ::-1] if order == "RGB" else p.rgb
            for i in range(0, len(p), 64):
                imgs = [np.ascontiguousarray(x) for x in bgr[i:i + 64]]
                blob = cv2.dnn.blobFromImages(imgs, m["input"]["scale"], swapRB=(order == "RGB"))
                net.setInput(blob)
                pr, fe = net.forward([m["output_name"], m.get("feature_name", "feature")])
                probs.append(pr)
                feats.append(fe.reshape(len(imgs), -1))
        if not probs:
            return np.zeros((0, len(classes)), np.float32), np.zeros((0, 1), np.float32)
        return np.concatenate(probs), np.concatenate(feats)
    ptr, ftr = run(train_parts)
    pva, fva = run(val_parts)
    ytr = np.concatenate([p.y for p in train_parts])
    yva = np.concatenate([p.y for p in val_parts]) if val_parts else np.zeros(0, np.int64)
    part_tr, part_va, val_weak = part_indices(train_parts, val_parts)
    m["operating_point"] = operating_point(classes, cfg.get("positive"), pva, yva, val_weak, ftr, ytr, fva, part_tr, part_va)
    m["operating_point"]["recalibrated"] = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
    with open(manifest_path, "w") as f:
        json.dump(m, f, indent=1)
        f.write("\n")
    # a parity fixture beside the model records OOD distances under the old reference: recompute them from
    # its (unchanged) PyTorch features
    stem = os.path.splitext(os.path.basename(manifest_path))[0]
    fx_path = os.path.join(os.path.dirname(manifest_path), "parity", stem + ".json")
    if os.path.exists(fx_path):
        with open(fx_path) as f:
            fx = json.load(f)
        o = m["operating_point"]["ood"]
        fx["ood_distance"] = ood_distance(np.array(fx["features"]), [np.array(c) for c in o["class_means"]], np.array(o["variance"])).tolist()
        with open(fx_path, "w") as f:
            json.dump(fx, f)
            f.write("\n")
    op = {k: v for k, v in m["operating_point"].items() if k != "ood"}
    print(f"{manifest_path}: {op}")


def choose_multiclass_point(probs, y, target_error=0.05):
    """Subtype models: the smallest top-probability below which a cell's subtype is withheld as uncertain,
    such that the validation error above it is at most target_error (capped at 0.9)."""
    top = probs.max(1)
    pred = probs.argmax(1)
    thr = 0.9
    for t in np.arange(0.0, 0.901, 0.01):
        keep = top >= t
        if keep.sum() == 0:
            break
        if (pred[keep] != y[keep]).mean() <= target_error:
            thr = float(t)
            break
    return {"min_confidence": round(thr, 4), "uncertain_target_error": target_error,
            "validation_uncertain_share": float((top < thr).mean())}


if __name__ == "__main__":
    main()
