"""Operating point of the (compressed) face detector on the non-test videos.

Scales from ``sd.optimize_scales`` on ``--train-stream`` (bikes) and uniform scales, each also
multiplied by the ``--scale-down`` factors; the cheapest point (synops per frame of the
fixed-point event simulation) within ``--max-rel-err`` of the net's own float ANN on
``--choose-stream`` (bigbuckbunny) is chosen (``pareto.sweep`` / ``pareto.pick``). Carphone is
never used here.

Regret guard (``--min-regret``, off by default so that older commands choose as before). The
relative-error bound alone does not protect the decision: a frame's regret is
``r_t = max_i a_t[i] - a_t[argmax_i y_t[i]]`` (``a`` the net's own float ANN, ``y`` the event
simulation; ``sigmadelta.fidelity``), and it exceeds ``delta`` only on frames where the ANN's
top cells are nearly tied (top-two gap of a few ``delta``) and the event error there is larger
than the gap. Bigbuckbunny has almost no such frames (no frame of the compressed detector's ANN
with a top-two gap under 2 delta), so a bound on bigbuckbunny alone cannot see this failure;
bikes has them about as often as any face video (6% of frames). With the guard, the cheapest
point within ``--max-rel-err`` on ``--choose-stream`` is taken only if, pooled over the frames
of ``--guard-streams`` (bigbuckbunny and bikes),

    mean_t [ r_t <= delta_v  and  (max y_t > 0) == (max a_t > 0) ]  >=  --min-regret

with ``delta_v`` each stream's own ``fidelity.calibrate_delta`` (one gray level of noise) times
``--guard-delta``; otherwise the next cheapest point within the bound is tried. The margin is
stated in the two flags: ``--min-regret 0.995 --guard-delta 1`` asks for half a point more than
the 99% target on the non-test frames.

Per-layer refinement (``--per-layer``, off by default): the guarded point is the start of a
coordinate descent over one multiplier per layer (``_face_bc_layers``): cheapest synops pooled
over the guard streams, relative error within ``--max-rel-err`` on each of them, pooled regret
agreement ``>= --min-regret`` (``--err-bound pooled``: the error bound on the guard streams'
frames pooled instead of on each).

``--guard-streams bigbuckbunny,bikes,face-pan`` adds ``_face_pan``'s synthetic video (training
faces of ``lfw_subset`` drifting, zooming and turning over bikes / bigbuckbunny backgrounds, 300
frames) to the guard: it holds the near ties *on a face* that the two videos lack. The default
stays ``bigbuckbunny,bikes`` so that recorded commands choose as before. ``face-pan:S`` is the
same video drawn with seed ``S`` (``face-pan`` is seed 0).

``--guard-kind expected`` (default ``count``) bounds the *expected* pooled regret agreement of
``_face_guard`` instead of the counted one: each guard frame's failure probability from its
top-two gap and the event perturbation of the top-two difference pooled over all guard frames,
a figure that moves smoothly with the scales (the rule it serves: ``docs/face_bc_guard.md``).
"""

from __future__ import annotations

import argparse
from typing import Any

import numpy as np
import torch
from torch import nn
from tqdm.auto import tqdm

__all__ = ["FRAME_SHAPE", "add_guard_args", "choose_operating_point", "choose_command",
           "load_video", "regret_guard"]

#: Frame shape the detector is run on (the demo's: gray QCIF).
FRAME_SHAPE = (1, 144, 176)


def load_video(name: str, limit: int | None = None) -> np.ndarray:
    """Gray frames ``[T, 1, 144, 176]`` in [0, 1] of an embedded video, or of the synthetic
    face video ``face-pan`` (``_face_pan``: 6 shots of 50 frames, seed 0; ``face-pan:S`` seed
    ``S``; guard only)."""
    from sigmadelta.datasets import open_source

    if name == "face-pan" or name.startswith("face-pan:"):
        from _face_pan import face_pan_frames

        seed = int(name.partition(":")[2] or 0)
        return face_pan_frames(seed, segments=6, frames_per_segment=50)["frames"][:limit]

    kw = {} if limit is None else {"limit": limit}
    return open_source(name, size=FRAME_SHAPE[1:], gray=True, **kw).to_array().astype(np.float32)


def add_guard_args(p: argparse.ArgumentParser) -> None:
    """The regret guard's flags (see the module docstring)."""
    p.add_argument("--min-regret", type=float, default=0.0,
                   help="regret agreement the chosen point needs on --guard-streams (0: off)")
    p.add_argument("--guard-delta", type=float, default=1.0,
                   help="regret tolerance of the guard, times each stream's calibrated delta")
    p.add_argument("--guard-streams", default="bigbuckbunny,bikes",
                   help="non-test videos the regret guard pools (also face-pan: a synthetic "
                        "face in front of a moving camera, _face_pan)")
    p.add_argument("--guard-kind", choices=("count", "expected"), default="count",
                   help="count failing guard frames, or their expectation under the pooled "
                        "perturbation of the top-two difference (_face_guard)")
    from _face_bc_layers import add_layer_args

    add_layer_args(p)


def choose_command(args: argparse.Namespace) -> str:
    """The ``--choose-only`` command that chooses this operating point again (recorded)."""
    guard = "" if not args.min_regret else (
        f" --min-regret {args.min_regret:g} --guard-delta {args.guard_delta:g}"
        f" --guard-streams {args.guard_streams}"
        + ("" if getattr(args, "guard_kind", "count") == "count"
           else f" --guard-kind {args.guard_kind}"))
    if getattr(args, "per_layer", False):
        guard += f" --per-layer --layer-step {args.layer_step:g} --max-moves {args.max_moves}"
        if getattr(args, "err_bound", "each") != "each":
            guard += f" --err-bound {args.err_bound}"
    return (f"python scripts/train_face_bc.py --choose-only --out {args.out} --name {args.name} "
            f"--max-rel-err {args.max_rel_err:g}"
            + (f" --scale-down {args.scale_down}" if args.scale_down else "") + guard)


def regret_guard(model: nn.Module, streams: dict[str, np.ndarray], values: dict[str, float],
                 bits: dict[str, int] | None, delta_mult: float) -> dict[str, Any]:
    """Pooled regret agreement of the event simulation with ``values`` on ``streams``.

    ``streams`` maps a video name to ``(frames, ann outputs [T, cells], delta)``; a frame agrees
    when its regret is ``<= delta_mult * delta`` of its stream and face presence (``max > 0``)
    matches. Returns the pooled agreement and the failures per stream.
    """
    import sigmadelta as sd
    from sigmadelta import fidelity

    net = sd.convert(model, FRAME_SHAPE, scale=values, weight_bits=bits)
    fails, frames = {}, 0
    for name, (x, a, delta) in streams.items():
        y = np.asarray(sd.simulate(net, x, progress=False).outputs, np.float64).reshape(a.shape)
        ok = ((fidelity.regret(y, a) <= delta_mult * delta)
              & ((y.max(1) > 0) == (a.max(1) > 0)))
        fails[name] = int((~ok).sum())
        frames += len(a)
    return {"regret_agreement": 1.0 - sum(fails.values()) / frames, "failures": fails,
            "frames": frames}


def _guard_streams(model: nn.Module, names: str) -> dict[str, tuple]:
    """Frames, ANN outputs and calibrated delta of each guard video."""
    from sigmadelta import fidelity

    out = {}
    for name in names.split(","):
        x = load_video(name)
        with torch.no_grad():
            a = model(torch.from_numpy(x)).double().numpy().reshape(len(x), -1)
        out[name] = (x, a, fidelity.calibrate_delta(model, x))
    return out


def _pick_guarded(pareto, model: nn.Module, points: list[dict], bits: dict[str, int] | None,
                  args: argparse.Namespace, streams: dict[str, tuple] | None) -> dict | None:
    """The cheapest point within ``--max-rel-err`` that passes the regret guard; with
    ``--per-layer`` also within ``--max-rel-err`` on every guard stream (the search's start
    must be feasible for the search)."""
    per_layer = getattr(args, "per_layer", False)
    expected = getattr(args, "guard_kind", "count") == "expected"
    if not getattr(args, "min_regret", 0.0) and not per_layer:
        return pareto.pick(points, None, args.max_rel_err)
    ok = sorted((p for p in points if p["rel_err"] <= args.max_rel_err),
                key=lambda p: p["synops_per_frame"])
    for p in ok:
        if per_layer or expected:
            from _face_bc_layers import feasible, guard_record, measure

            m = measure(model, streams, p["values"], bits, args.guard_delta)
            g = guard_record(m)
            passes = (feasible(m, args) if per_layer
                      else g["expected_regret_agreement"] >= args.min_regret)
        else:
            g = regret_guard(model, streams, p["values"], bits, args.guard_delta)
            passes = g["regret_agreement"] >= args.min_regret
        tqdm.write(f"guard {p['method']} {p['param']:g} x{p.get('factor', 1):g}: "
                   f"{p['synops_per_frame']:.0f} synops/frame, regret agreement "
                   f"{g['regret_agreement']:.4f} (failures {g['failures']})"
                   + (f", expected {g['expected_regret_agreement']:.4f}" if expected else "")
                   + (f", rel err {[round(q['rel_err'], 5) for q in m['streams'].values()]}"
                      if per_layer else ""))
        if passes:
            p["guard"] = {**g, "kind": getattr(args, "guard_kind", "count"),
                          "min_regret": args.min_regret, "delta_mult": args.guard_delta,
                          "delta": {n: round(s[2], 5) for n, s in streams.items()}}
            return p
    return None


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
    tqdm.write(pareto._table(points))
    streams = None
    if getattr(args, "min_regret", 0.0) or getattr(args, "per_layer", False):
        streams = _guard_streams(model, args.guard_streams)
    op = _pick_guarded(pareto, model, points, bits, args, streams)
    if op is not None and getattr(args, "per_layer", False):
        op = _refine(pareto, model, op, streams, bits, test, args)
    if op is None:
        raise RuntimeError(f"no operating point within rel err {args.max_rel_err} on "
                           f"{args.choose_stream}"
                           + (f" passing the regret guard ({args.min_regret:g} on "
                              f"{args.guard_streams})" if getattr(args, "min_regret", 0) else ""))
    return {
        "chosen_by": args.choose_command,
        "method": f"{op['method']} scales, {'lam' if op['method'] == 'optimised' else 'k'}="
                  f"{op['param']:g} (optimised on {args.train_stream})"
                  + (f", all scaled by {op['factor']:g}" if "factor" in op else "")
                  + (", then per layer (_face_bc_layers)" if "per_layer" in op else ""),
        "choose_stream": args.choose_stream,
        "train_stream": args.train_stream,
        "max_rel_err": args.max_rel_err,
        "scales": {n: round(float(v), 4) for n, v in op["values"].items()},
        **({"weight_bits": dict(bits)} if bits else {}),
        "relative_error": round(op["rel_err"], 5),
        "decision_agreement": round(op["agree"], 4),
        "synops_per_frame": round(op["synops_per_frame"]),
        "dense_macs_per_frame": round(meta["dense_macs_per_frame"]),
        **({"regret_guard": op["guard"]} if "guard" in op else {}),
        **({"per_layer": op["per_layer"]} if "per_layer" in op else {}),
    }


def _refine(pareto, model: nn.Module, op: dict, streams: dict[str, tuple],
            bits: dict[str, int] | None, test: np.ndarray, args: argparse.Namespace) -> dict:
    """``--per-layer``: the per-layer search from the chosen point; the result measured on
    ``--choose-stream`` like every other point, its guard record from the search."""
    from _face_bc_layers import per_layer_search

    values, rec = per_layer_search(model, streams, op["values"], bits, args)
    with torch.no_grad():
        ann = model(torch.as_tensor(test)).double().numpy()
    m = pareto.evaluate(model, FRAME_SHAPE, values, "herding", test, ann, None, bits)
    from _face_bc_layers import guard_record

    guard = {**guard_record(rec["measured"]), "kind": getattr(args, "guard_kind", "count"),
             "min_regret": args.min_regret, "delta_mult": args.guard_delta,
             "delta": {n: round(s[2], 5) for n, s in streams.items()}}
    rec["start_scales"] = {n: round(float(v), 4) for n, v in op["values"].items()}
    return {**op, **m, "values": values, "guard": guard, "per_layer": rec}
