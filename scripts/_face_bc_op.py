"""Operating point of the (compressed) face detector on the non-test videos.

Scales from ``sd.optimize_scales`` on ``--train-stream`` (bikes) and uniform scales, each also
multiplied by the ``--scale-down`` factors; the cheapest point (synops per frame of the
fixed-point event simulation) within ``--max-rel-err`` of the net's own float ANN on
``--choose-stream`` (bigbuckbunny) is chosen (``pareto.sweep`` / ``pareto.pick``). Carphone is
never used here.
"""

from __future__ import annotations

import argparse
from typing import Any

import numpy as np
import torch
from torch import nn
from tqdm.auto import tqdm

__all__ = ["FRAME_SHAPE", "choose_operating_point", "load_video"]

#: Frame shape the detector is run on (the demo's: gray QCIF).
FRAME_SHAPE = (1, 144, 176)


def load_video(name: str, limit: int | None = None) -> np.ndarray:
    """Gray frames ``[T, 1, 144, 176]`` in [0, 1] of an embedded video."""
    from sigmadelta.datasets import open_source

    kw = {} if limit is None else {"limit": limit}
    return open_source(name, size=FRAME_SHAPE[1:], gray=True, **kw).to_array().astype(np.float32)


def _scaled_down(pareto, model: nn.Module, test: np.ndarray, points: list[dict], factors: str,
                 bits: dict[str, int]) -> list[dict]:
    """Every optimised point with all its scales multiplied by each factor in ``factors``
    (coarser: fewer events, more error), measured on ``test`` like the sweep's points."""
    with torch.no_grad():
        ann = model(torch.as_tensor(test)).double().numpy()
    out = []
    for p in [p for p in points if p["method"] == "optimised"]:
        for f in pareto._floats(factors):
            values = {n: float(v) * f for n, v in p["values"].items()}
            m = pareto.evaluate(model, FRAME_SHAPE, values, "herding", test, ann, None, bits)
            tqdm.write(f"lam={p['param']:g} x{f:g}: {m['synops_per_frame']:.0f} synops/frame, "
                       f"rel err {m['rel_err']:.5f}")
            out.append({**p, **m, "method": "optimised", "factor": f, "values": values})
    return out


def choose_operating_point(model: nn.Module, bits: dict[str, int] | None,
                           args: argparse.Namespace) -> dict[str, Any]:
    """Cheapest scales within ``--max-rel-err`` on ``--choose-stream`` (pareto.py's sweep);
    ``bits`` None: float weights (the uncompressed detector)."""
    import pareto

    train = load_video(args.train_stream)
    test = load_video(args.choose_stream)
    pargs = pareto.parse_args(["--lams", args.lams, "--uniform", args.uniform,
                               "--levels", "", "--epochs", str(args.scale_epochs)])
    pargs.weight_bits = bits
    points, meta = pareto.sweep(pargs, model, FRAME_SHAPE, train, test, None)
    points += _scaled_down(pareto, model, test, points, args.scale_down, bits)
    op = pareto.pick(points, None, args.max_rel_err)
    tqdm.write(pareto._table(points))
    if op is None:
        raise RuntimeError(f"no operating point within rel err {args.max_rel_err} on "
                           f"{args.choose_stream}")
    return {
        "chosen_by": args.choose_command,
        "method": f"{op['method']} scales, {'lam' if op['method'] == 'optimised' else 'k'}="
                  f"{op['param']:g} (optimised on {args.train_stream})"
                  + (f", all scaled by {op['factor']:g}" if "factor" in op else ""),
        "choose_stream": args.choose_stream,
        "train_stream": args.train_stream,
        "max_rel_err": args.max_rel_err,
        "scales": {n: round(float(v), 4) for n, v in op["values"].items()},
        **({"weight_bits": dict(bits)} if bits else {}),
        "relative_error": round(op["rel_err"], 5),
        "decision_agreement": round(op["agree"], 4),
        "synops_per_frame": round(op["synops_per_frame"]),
        "dense_macs_per_frame": round(meta["dense_macs_per_frame"]),
    }
