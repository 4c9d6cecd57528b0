"""A/B of the conv path chooser's cost tables on the zoo nets (or the demo net): one process,
the two sides alternating pass for pass, thread CPU time and wall clock, and dense torch.

Side ``old``: the fallback tables (``sigmadelta.kernels.PATH_COSTS`` / ``PATH_COSTS_1X1``,
written to a temporary file and named by ``SIGMADELTA_PATH_COSTS``); side ``new``: the table
this machine picks (``SIGMADELTA_PATH_COSTS=builtin``, or ``--new FILE``). Each side's
simulator is built under its table (the chooser's costs are fixed at build).

python scripts/cost_ab.py --zoo vgg,resnet_block --dtype float32,float64 --passes 4
python scripts/cost_ab.py --model face_detector --video carphone --frames 60 --dtype float32
python scripts/cost_ab.py --zoo resnet_block --dtype float32 --per-layer

``--per-layer``: the chooser's blind spots: per conv layer with paths, the whole net's time with
that layer forced to each path (the others automatic, this machine's table) over the time with
all automatic, alternating pass for pass.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
import sigmadelta as sd  # noqa: E402
from sigmadelta.kernels import costtable  # noqa: E402

__all__ = ["ab"]


def _sim(net, dtype, table: str) -> sd.Simulator:
    """A simulator built under cost table ``table`` (a file or ``builtin``)."""
    before = os.environ.get(costtable.COSTS_ENV)
    os.environ[costtable.COSTS_ENV] = table
    costtable.path_cost_table.cache_clear()
    try:
        return sd.Simulator(net, dtype=dtype)
    finally:
        if before is None:
            os.environ.pop(costtable.COSTS_ENV)
        else:
            os.environ[costtable.COSTS_ENV] = before
        costtable.path_cost_table.cache_clear()


def _timed(fn) -> tuple[float, float]:
    t0, c0 = time.perf_counter(), time.thread_time()
    fn()
    return time.thread_time() - c0, time.perf_counter() - t0


def ab(net, model, frames, dtype, tables: dict, passes: int) -> dict:
    """Per side of ``tables`` (name -> table) and dense torch: thread CPU and wall seconds of
    every pass over ``frames``, the frames per conv path; the sides alternate."""
    sims = {k: _sim(net, dtype, t) for k, t in tables.items()}
    xt = torch.from_numpy(np.ascontiguousarray(frames, np.float32))

    def dense():
        with torch.no_grad():
            for i in range(len(xt)):
                model(xt[i:i + 1])

    def event(sim):
        sim.reset()
        sim.run(frames, progress=False)

    for s in sims.values():
        event(s)  # compile / warm
    dense()
    times = {k: [] for k in [*sims, "torch"]}
    for _ in range(passes):
        for k, s in sims.items():
            times[k].append(_timed(lambda s=s: event(s)))
        times["torch"].append(_timed(dense))
    return {"times": times, "conv_paths": {k: s.conv_paths for k, s in sims.items()}}


def per_layer(net, frames, dtype, passes: int) -> list[tuple]:
    """Per conv layer with paths and per forced path: (layer, path, median over passes of the
    whole net's thread CPU time with that layer forced over all automatic, min, max, frames
    the chooser gave each path)."""
    auto = sd.Simulator(net, dtype=dtype)
    auto.run(frames, progress=False)
    chosen, rows = auto.conv_paths, []
    for layer in chosen:
        sims = {"auto": auto}
        for p in ("scatter", "dense", "gemm"):
            sims[p] = sd.Simulator(net, dtype=dtype)
            try:
                sims[p].set_conv_path(p, layer)
            except ValueError:  # a "lava" layer without gemm
                sims.pop(p)
        t = {k: [] for k in sims}
        for s in sims.values():
            s.run(frames, progress=False)  # warm
        for _ in range(passes):
            for k, s in sims.items():
                s.reset()
                t[k].append(_timed(lambda s=s: s.run(frames, progress=False))[0])
        base = np.array(t["auto"])
        for k in sims:
            if k != "auto":
                r = np.array(t[k]) / base
                rows.append((layer, k, float(np.median(r)), float(r.min()), float(r.max()), chosen[layer]))
    return rows


def _frames(video: str, n: int, size=None) -> np.ndarray:
    from sigmadelta.datasets import open_source

    kw = {"size": size, "gray": False} if size else {}
    return np.stack(list(open_source(video, limit=n, **kw))).astype(np.float32)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--zoo", default="")
    p.add_argument("--model", default="")
    p.add_argument("--video", default="bikes")
    p.add_argument("--frames", type=int, default=30)
    p.add_argument("--dtype", default="float32,float64")
    p.add_argument("--passes", type=int, default=4)
    p.add_argument("--scale", type=float, default=32.0)
    p.add_argument("--per-layer", action="store_true", help="each layer forced to each path")
    p.add_argument("--new", default="builtin", help="the new side's table (default: this CPU's)")
    p.add_argument("--old", default="", help="the old side's table file (default: the fallback)")
    args = p.parse_args()
    torch.set_num_threads(1)
    torch.set_flush_denormal(True)
    with tempfile.TemporaryDirectory() as tmp:
        old = Path(tmp) / "old.json"
        old.write_text(costtable.costs_json("fallback", dict(costtable.KERNELS)))
        tables = {"old": args.old or str(old), "new": args.new}
        for name, net, model, frames in _nets(args):
            for dt in args.dtype.split(","):
                if args.per_layer:
                    for row in per_layer(net, frames, np.dtype(dt), args.passes):
                        print(f"{name} {dt} {row[0]} forced {row[1]}: {row[2]:.3f}x the time of auto "
                              f"(passes {row[3]:.3f}-{row[4]:.3f}); auto took {row[5]}", flush=True)
                    continue
                r = ab(net, model, frames, np.dtype(dt), tables, args.passes)
                _print(name, dt, r)


def _nets(args):
    if args.model:
        from sigmadelta.models import load_pretrained, pretrained_info

        info = pretrained_info(args.model)
        scale = info.get("operating_point", {}).get("scales", 32.0)
        model = load_pretrained(args.model).eval()
        yield args.model, sd.convert(model, tuple(info["input_shape"]), scale=scale), model, _frames(
            args.video, args.frames)
        return
    from _netzoo import SHAPE, zoo_model

    frames = _frames(args.video, args.frames, (64, 64))
    calib = _frames("bigbuckbunny", 16, (64, 64))
    for name in args.zoo.split(","):
        model = zoo_model(name, calib)
        yield name, sd.convert(model, SHAPE, scale=args.scale), model, frames


def _print(name: str, dt: str, r: dict) -> None:
    t = {k: np.array(v) for k, v in r["times"].items()}  # passes x (cpu, wall)
    ratio = t["old"] / t["new"]  # > 1: the new table is faster
    load = ", ".join(f"{v:.1f}" for v in os.getloadavg())
    best = t["old"].min(0) / t["new"].min(0)
    print(f"{name:>20} {dt}: old/new time, best pass against best: thread CPU {best[0]:.3f}x, wall "
          f"{best[1]:.3f}x; pass by pass: thread CPU {np.median(ratio[:, 0]):.3f}x "
          f"(passes {ratio[:, 0].min():.3f}-{ratio[:, 0].max():.3f}), wall {np.median(ratio[:, 1]):.3f}x "
          f"({ratio[:, 1].min():.3f}-{ratio[:, 1].max():.3f}); torch/event CPU: old "
          f"{t['torch'][:, 0].min() / t['old'][:, 0].min():.2f}x new "
          f"{t['torch'][:, 0].min() / t['new'][:, 0].min():.2f}x; load {load}")
    for k, paths in r["conv_paths"].items():
        print(f"    {k}: " + "; ".join(f"{layer} {c}" for layer, c in paths.items()))


if __name__ == "__main__":
    main()
