"""Per-layer scale search for the face detector's operating point, on the non-test videos.

The global rule (``_face_bc_op``) multiplies *all* optimised scales by one factor. Here each
layer ``l`` gets its own multiplier ``g ** -k_l`` (``g = --layer-step``, ``k_l`` an integer,
``k = 0`` the global rule's point; a larger ``k_l`` is a coarser layer: fewer events), and a
coordinate descent looks for the cheapest ``k``:

* cost: synops per frame of the fixed-point event simulation, pooled over the frames of the
  ``--guard-streams`` (bigbuckbunny and bikes);
* feasible: relative error ``||y - a|| / ||a||`` against the net's own float ANN ``<=
  --max-rel-err`` on *each* guard stream (``--err-bound each``, the default) or pooled over
  their frames (``--err-bound pooled``: ``sqrt(sum_v ||y_v - a_v||^2 / sum_v ||a_v||^2)``, the
  error of one stream holding all their frames, as the guard pools its frames), and pooled
  regret agreement ``>= --min-regret``
  (frame ``t`` agrees when ``max a_t - a_t[argmax y_t] <= --guard-delta * delta_v`` and face
  presence ``max > 0`` matches; ``delta_v`` each stream's ``fidelity.calibrate_delta``), or
  with ``--guard-kind expected`` the expected regret agreement of ``_face_guard``
  ``>= --min-regret``;
* moves from ``k``: one layer coarser (``k_i + 1``), or one layer coarser and another finer
  (``k_i + 1, k_j - 1``: spends error where it buys the most synops). Every move is measured;
  the cheapest feasible one that is cheaper than ``k`` is taken; the search stops when none is
  (or after ``--max-moves``).

Carphone is never used. The search starts from a feasible point, so it can only lower the cost.
"""

from __future__ import annotations

import argparse
from typing import Any

import numpy as np
from torch import nn
from tqdm.auto import tqdm

__all__ = ["add_layer_args", "feasible", "guard_record", "measure", "per_layer_search"]


def add_layer_args(p: argparse.ArgumentParser) -> None:
    """The per-layer search's flags (off by default: the global rule alone)."""
    p.add_argument("--per-layer", action="store_true",
                   help="refine the chosen point by a per-layer scale search (_face_bc_layers)")
    p.add_argument("--layer-step", type=float, default=2 ** 0.25,
                   help="ratio between neighbouring per-layer multipliers")
    p.add_argument("--max-moves", type=int, default=30, help="coordinate-descent moves at most")
    p.add_argument("--err-bound", choices=("each", "pooled"), default="each",
                   help="--max-rel-err on each guard stream, or on their frames pooled")


def measure(model: nn.Module, streams: dict[str, tuple], values: dict[str, float],
            bits: dict[str, int] | None, delta_mult: float) -> dict[str, Any]:
    """Synops, relative error and regret failures of the event simulation on each stream.

    ``streams`` maps a video name to ``(frames, ann outputs [T, cells], delta)``. Returns the
    per-stream ``synops_per_frame``, ``rel_err``, ``failures``, ``frames``, ``err_sq``
    (``||y - a||^2``), ``ref_sq`` (``||a||^2``), ``expected_failures``
    (``_face_guard.expected_agreement``), and pooled ``synops_per_frame`` and
    ``regret_agreement`` (frame-weighted), ``rel_err`` (``sqrt(sum err_sq / sum ref_sq)``)
    and ``expected_regret_agreement``.
    """
    from _face_bc_op import FRAME_SHAPE
    from _face_guard import expected_agreement, tie_terms

    import sigmadelta as sd
    from sigmadelta import fidelity

    net = sd.convert(model, FRAME_SHAPE, scale=values, weight_bits=bits)
    per: dict[str, dict[str, float]] = {}
    terms = {}
    for name, (x, a, delta) in streams.items():
        res = sd.simulate(net, x, progress=False)
        y = np.asarray(res.outputs, np.float64).reshape(a.shape)
        ok = ((fidelity.regret(y, a) <= delta_mult * delta)
              & ((y.max(1) > 0) == (a.max(1) > 0)))
        per[name] = {"synops_per_frame": float(res.stats.per_frame()["synops"]),
                     "rel_err": fidelity.relative_error(y, a),
                     "failures": int((~ok).sum()), "frames": len(a),
                     "err_sq": float(np.sum((y - a) ** 2)), "ref_sq": float(np.sum(a ** 2))}
        terms[name] = tie_terms(y, a, delta)
    ex = expected_agreement(terms, delta_mult)
    for name, p in per.items():
        p["expected_failures"] = ex["expected_failures"][name]
    frames = sum(p["frames"] for p in per.values())
    ref_sq = sum(p["ref_sq"] for p in per.values())
    return {"streams": per,
            "rel_err": float(np.sqrt(sum(p["err_sq"] for p in per.values()) / max(ref_sq, 1e-300))),
            "synops_per_frame": sum(p["synops_per_frame"] * p["frames"] for p in per.values())
            / frames,
            "regret_agreement": 1.0 - sum(p["failures"] for p in per.values()) / frames,
            "expected_regret_agreement": ex["expected_regret_agreement"]}


def feasible(m: dict[str, Any], args: argparse.Namespace) -> bool:
    """Within ``--max-rel-err`` on every stream (``--err-bound each``) or pooled (``pooled``),
    and ``--min-regret`` pooled (counted, or expected with ``--guard-kind expected``)."""
    if getattr(args, "err_bound", "each") == "pooled":
        err_ok = m["rel_err"] <= args.max_rel_err
    else:
        err_ok = all(p["rel_err"] <= args.max_rel_err for p in m["streams"].values())
    key = ("expected_regret_agreement" if getattr(args, "guard_kind", "count") == "expected"
           else "regret_agreement")
    return err_ok and m[key] >= args.min_regret


def guard_record(m: dict[str, Any]) -> dict[str, Any]:
    """The guard's figures of a :func:`measure` result (for the checkpoint's JSON)."""
    return {"regret_agreement": m["regret_agreement"],
            "failures": {n: q["failures"] for n, q in m["streams"].items()},
            "frames": sum(q["frames"] for q in m["streams"].values()),
            "expected_regret_agreement": round(m["expected_regret_agreement"], 6),
            "expected_failures": {n: q["expected_failures"] for n, q in m["streams"].items()}}


def _moves(k: tuple[int, ...]) -> list[tuple[int, ...]]:
    """One layer coarser, or one coarser and another finer."""
    out = []
    for i in range(len(k)):
        up = list(k)
        up[i] += 1
        out.append(tuple(up))
        for j in range(len(k)):
            if j != i:
                ex = list(up)
                ex[j] -= 1
                out.append(tuple(ex))
    return out


def per_layer_search(model: nn.Module, streams: dict[str, tuple], start: dict[str, float],
                     bits: dict[str, int] | None, args: argparse.Namespace
                     ) -> tuple[dict[str, float], dict[str, Any]]:
    """Coordinate descent over per-layer multipliers of ``start`` (see the module docstring).

    Returns the chosen scales and a record (multipliers, the measurement, the moves taken).
    """
    names = list(start)
    cache: dict[tuple[int, ...], dict[str, Any]] = {}

    def at(k: tuple[int, ...]) -> dict[str, Any]:
        if k not in cache:
            values = {n: start[n] * args.layer_step ** -k[i] for i, n in enumerate(names)}
            cache[k] = measure(model, streams, values, bits, args.guard_delta)
        return cache[k]

    k = (0,) * len(names)
    if not feasible(at(k), args):
        raise RuntimeError("per-layer search: the start point is not feasible")
    path = [_step_record(k, at(k))]
    for _ in range(args.max_moves):
        cands = [(at(c)["synops_per_frame"], c) for c in _moves(k)]
        better = sorted((s, c) for s, c in cands
                        if s < at(k)["synops_per_frame"] and feasible(at(c), args))
        if not better:
            break
        k = better[0][1]
        path.append(_step_record(k, at(k)))
        tqdm.write(f"per-layer k={k}: {path[-1]}")
    values = {n: start[n] * args.layer_step ** -k[i] for i, n in enumerate(names)}
    return values, {"step": round(args.layer_step, 6),
                    "multipliers": {n: round(args.layer_step ** -k[i], 4)
                                    for i, n in enumerate(names)},
                    "exponents": dict(zip(names, k, strict=True)),
                    "points_measured": len(cache), "measured": at(k), "moves": path}


def _step_record(k: tuple[int, ...], m: dict[str, Any]) -> dict[str, Any]:
    return {"exponents": list(k), "synops_per_frame": round(m["synops_per_frame"]),
            "regret_agreement": round(m["regret_agreement"], 5),
            **({"expected_regret_agreement": round(m["expected_regret_agreement"], 5)}
               if "expected_regret_agreement" in m else {}),
            "rel_err": {n: round(p["rel_err"], 5) for n, p in m["streams"].items()},
            "rel_err_pooled": round(m["rel_err"], 5)}
