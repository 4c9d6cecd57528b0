"""Report (never choose) the face detectors on the carphone test video.

For the shipped ``face_detector`` and the Bayesian-compressed ``face_detector_bc``: the float
ANN and the event simulation at each checkpoint's stored ``operating_point`` (scales and, for
the compressed net, fixed-point ``weight_bits``), on the 120 gray 144x176 carphone frames the
demo uses. Per network:

* synops per frame and the reduction against the *uncompressed* detector's dense MACs;
* relative output error ``||y - y_ann|| / ||y_ann||`` and PSNR (peak = range of ``y_ann``)
  against its own float ANN;
* regret agreement against its own ANN: frame ``t`` agrees when
  ``a_t[argmax s_t] >= max a_t - delta`` and face presence (``max > 0``) matches, with
  ``delta`` the ANN's own median change of its maximum logit under one gray level of input
  noise (``sigma = 1/255``), measured here;
* face hits: on frames with an independent face box (``sigmadelta.datasets.face_boxes``), the
  share whose decision-cell centre lies inside the box, for the ANN and the event simulation.

Example::

    python scripts/face_bc_report.py --out out/face_bc_report.json
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

import sigmadelta as sd

__all__ = ["calibrate_delta", "main", "measure", "regret_agreement"]

MODELS = ("face_detector", "face_detector_bc")


def calibrate_delta(model: nn.Module, frames: np.ndarray, sigma: float = 1 / 255,
                    seed: int = 0) -> float:
    """Median over frames of ``|max a(x + n) - max a(x)|``, ``n ~ N(0, sigma^2)``."""
    gen = torch.Generator().manual_seed(seed)
    x = torch.from_numpy(frames)
    with torch.no_grad():
        a = model(x).flatten(1).amax(1)
        b = model(x + sigma * torch.randn(x.shape, generator=gen)).flatten(1).amax(1)
    return float(np.median(np.abs((b - a).numpy())))


def regret_agreement(ann: np.ndarray, out: np.ndarray, delta: float) -> float:
    """Share of frames where ``out``'s argmax cell is within ``delta`` of ``ann``'s max logit
    (ANN logits) and face presence (``max > 0``) matches."""
    a, s = ann.reshape(len(ann), -1), out.reshape(len(out), -1)
    chosen = a[np.arange(len(a)), s.argmax(1)]
    ok = (chosen >= a.max(1) - delta) & ((a.max(1) > 0) == (s.max(1) > 0))
    return float(ok.mean())


def measure(name: str, frames: np.ndarray, boxes, dense_macs: float, delta: float | None = None
            ) -> dict[str, Any]:
    """Every figure of one checkpoint at its stored operating point on ``frames``."""
    from sigmadelta.models import face_hits, load_pretrained, pretrained_info

    info = pretrained_info(name)
    model = load_pretrained(name)
    op = info["operating_point"]
    bits = op.get("weight_bits")
    net = sd.convert(model, info["input_shape"], scale=op["scales"], weight_bits=bits)
    res = sd.simulate(net, frames, progress=True)
    y = np.asarray(res.outputs, np.float64)
    with torch.no_grad():
        ann = model(torch.from_numpy(frames)).double().numpy().reshape(y.shape)
    delta = calibrate_delta(model, frames) if delta is None else delta
    err = y - ann
    synops = float(res.stats.per_frame()["synops"])
    n_w = sum(m.weight.numel() for m in model.modules() if isinstance(m, nn.Conv2d))
    row = {
        "model": name, "channels": info["kwargs"]["channels"], "weights": n_w,
        "bits": "-".join(str(bits[n]) for n in net.layer_names) if bits else "32 (float)",
        "dense_macs_per_frame": float(net.dense_macs().sum()),
        "synops_per_frame": synops, "reduction_vs_uncompressed_dense": dense_macs / synops,
        "rel_err": float(np.linalg.norm(err) / np.linalg.norm(ann)),
        "psnr_db": float(10 * np.log10(np.ptp(ann) ** 2 / np.mean(err ** 2))),
        "delta": delta, "regret_agreement": regret_agreement(ann, y, delta),
        "strict_agreement": float(np.mean(ann.reshape(len(y), -1).argmax(1)
                                          == y.reshape(len(y), -1).argmax(1))),
        "hit_rate_ann": float(np.nanmean(face_hits(ann, boxes, model))),
        "hit_rate_sd": float(np.nanmean(face_hits(y, boxes, model))),
        "operating_point_chosen_by": op.get("chosen_by"),
    }
    if bits:
        sim_ref = sd.reference(net, frames, progress=False)
        row["bit_exact_vs_reference"] = bool(np.array_equal(np.asarray(res.outputs), sim_ref))
    return row


def _table(rows: list[dict[str, Any]]) -> str:
    cols = [("model", "{}"), ("channels", "{}"), ("bits", "{}"), ("synops_per_frame", "{:.4g}"),
            ("reduction_vs_uncompressed_dense", "{:.1f}x"), ("rel_err", "{:.4f}"),
            ("psnr_db", "{:.1f}"), ("regret_agreement", "{:.3f}"), ("strict_agreement", "{:.3f}"),
            ("hit_rate_ann", "{:.3f}"), ("hit_rate_sd", "{:.3f}")]
    lines = ["| " + " | ".join(c for c, _ in cols) + " |", "|" + "---|" * len(cols)]
    for r in rows:
        lines.append("| " + " | ".join(f.format(r[c]) for c, f in cols) + " |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> list[dict[str, Any]]:
    """Command-line entry point; returns one row per checkpoint."""
    from sigmadelta.datasets import face_boxes, open_source

    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--models", nargs="+", default=list(MODELS))
    p.add_argument("--out", default="out/face_bc_report.json")
    args = p.parse_args(argv)
    torch.set_num_threads(1)
    torch.set_flush_denormal(True)
    boxes = face_boxes("carphone")
    frames = open_source("carphone", size=boxes.frame_shape[1:], gray=True).to_array()
    from sigmadelta.models import load_pretrained, pretrained_info

    shipped = load_pretrained("face_detector")
    dense = float(sd.convert(shipped, pretrained_info("face_detector")["input_shape"])
                  .dense_macs().sum())
    rows = [measure(name, frames, boxes, dense) for name in args.models]
    print(f"carphone, {len(frames)} frames, face box on {boxes.found}; uncompressed dense MACs "
          f"{dense:.4g}/frame")
    print(_table(rows))
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps({"frames": len(frames), "boxes": boxes.found,
                               "uncompressed_dense_macs": dense, "rows": rows}, indent=2) + "\n")
    return rows


if __name__ == "__main__":
    main()
