"""Checks of train.py's augmentations that need no data: python3 check_augment.py exits non-zero on a failure.
Run by model's TestAugmentChecks (make model-smoke)."""
import os
import sys

import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import train  # noqa: E402


def check(ok, what):
    if not ok:
        raise SystemExit("check_augment: " + what)


def main():
    g = torch.Generator().manual_seed(3)
    x = torch.rand(6, 3, 12, 12, generator=g)
    err = float((train.lab_to_rgb(train.rgb_to_lab(x)) - x).abs().max())
    check(err < 1e-4, f"Lab round trip is off by {err}")
    # pure colours convert to the textbook values (white L=100, black L=0, grey a=b=0)
    lab = train.rgb_to_lab(torch.tensor([1.0, 0.0, 0.5]).view(3, 1, 1, 1).expand(3, 3, 1, 1).contiguous())
    check(abs(float(lab[0, 0]) - 100) < 0.01 and abs(float(lab[1, 0])) < 0.01, "white and black")
    check(abs(float(lab[2, 1])) < 0.01 and abs(float(lab[2, 2])) < 0.01, "grey is not neutral")

    # restyle_lab with every cell restyled: the mean moves by no more than the shift bounds, the spread
    # grows or shrinks by no more than the gain bounds (up to gamut clipping), and BGR input is treated as RGB
    old = dict(train.RESTYLE)
    train.RESTYLE["p"] = 1.0
    try:
        base = torch.full((64, 3, 16, 16), 0.5)
        base[:, :, 4:12, 4:12] = torch.rand(64, 3, 8, 8, generator=g) * 0.3 + 0.35  # mid-range cell, little clipping
        a = torch.zeros(64, 1, 16, 16)
        a[:, :, 4:12, 4:12] = 1
        out = train.restyle_lab(base, a, g)
        m0 = train.rgb_to_lab(base)[:, :, 4:12, 4:12].mean(dim=(2, 3))
        m1 = train.rgb_to_lab(out)[:, :, 4:12, 4:12].mean(dim=(2, 3))
        moved = (m1 - m0).abs().max(dim=0).values
        bound = torch.tensor(train.RESTYLE["shift"]) + 1.0
        check(bool((moved <= bound).all()), f"mean moved by {moved.tolist()}, bound {bound.tolist()}")
        check(bool((moved >= bound / 3).all()), f"mean barely moved {moved.tolist()}: restyling is not on")
        s0 = train.rgb_to_lab(base)[:, 0, 4:12, 4:12].std(dim=(1, 2))
        s1 = train.rgb_to_lab(out)[:, 0, 4:12, 4:12].std(dim=(1, 2))
        lo, hi = train.RESTYLE["gain"][0]
        r = s1 / s0
        check(bool((r >= lo * 0.95).all() and (r <= hi * 1.05).all()), f"L spread ratio {float(r.min())}-{float(r.max())}")
        bgr = train.restyle_lab(base.flip(1), a, torch.Generator().manual_seed(9), "BGR")
        rgb = train.restyle_lab(base, a, torch.Generator().manual_seed(9), "RGB")
        check(float((bgr.flip(1) - rgb).abs().max()) < 1e-5, "BGR input is not restyled as its RGB twin")
    finally:
        train.RESTYLE.clear()
        train.RESTYLE.update(old)

    # every mode keeps the neutral background and the value range; an unknown mode is refused
    bg = torch.tensor([0.5, 0.5, 0.5])
    for mode in train.AUGMENT_MODES:
        y = train.augment(base, a, bg, torch.Generator().manual_seed(1), mode)
        check(y.shape == base.shape and float(y.min()) >= 0 and float(y.max()) <= 1, f"{mode}: shape or range")
        check(float((y[:, :, 0, 0] - 0.5).abs().max()) < 0.02, f"{mode}: the corner background is not neutral")
    # "wide" restyles: the cells' mean b* spreads far more than under "light"
    same = base[:1].expand_as(base).contiguous()

    def spread(mode):
        y = train.augment(same, a, bg, torch.Generator().manual_seed(2), mode)
        return float(train.rgb_to_lab(y)[:, 2, 6:10, 6:10].mean(dim=(1, 2)).std())
    check(spread("wide") > 2 * spread("light"), f"wide b* spread {spread('wide'):.2f} against light {spread('light'):.2f}")
    try:
        train.augment(base, a, bg, g, "lite")
    except SystemExit:
        pass
    else:
        check(False, "an unknown augmentation was accepted")
    print("check_augment: ok")


if __name__ == "__main__":
    main()
