"""The command line for many streams: ``sigmadelta simulate`` with several sources, and
``sigmadelta report`` of a runs directory (used by :mod:`sigmadelta.cli`).

::

    sigmadelta simulate net.h5 carphone bikes clips/*.mp4 -o runs/ --workers 4
    sigmadelta simulate net.h5 clips/*.mp4 -o runs/ --scheduler tcp://host:8786
    sigmadelta report runs/                 # table + runs/report.png
"""

from __future__ import annotations

import argparse
import json
import os

__all__ = ["add_many_arguments", "is_many", "cmd_simulate_many", "cmd_report_runs"]


def add_many_arguments(p: argparse.ArgumentParser) -> None:
    """The options of ``simulate`` that choose and drive a run of many streams."""
    g = p.add_argument_group("many streams (several sources, a glob, -o DIR/, --workers or "
                             "--scheduler: one recording per stream in DIR, on dask.distributed)")
    g.add_argument("--workers", type=int, default=None,
                   help="worker processes of the local cluster (default: one per core)")
    g.add_argument("--scheduler", default=None,
                   help="address of a running dask scheduler, e.g. tcp://host:8786")
    g.add_argument("--overwrite", action="store_true",
                   help="replace the runs in DIR made with another network or settings (so does --force)")
    g.add_argument("--fidelity", action="store_true",
                   help="also compare every stream with the dense reference (relative error, PSNR)")
    p.add_argument("--dtype", choices=["float64", "float32"], default="float64",
                   help="simulator precision (one stream or many)")


def is_many(args) -> bool:
    """Several sources, a glob, a directory as output or a cluster option; options that
    only many streams take are refused for one stream (a ValueError naming them)."""
    out = args.output or ""
    many = (len(args.frames) > 1 or args.workers is not None or args.scheduler is not None
            or out.endswith(("/", os.sep)) or os.path.isdir(out)
            or any(c in args.frames[0] for c in "*?[") and not os.path.exists(args.frames[0]))
    alone = [flag for flag, on in (("--fidelity", args.fidelity), ("--overwrite", args.overwrite)) if on]
    if alone and not many:
        raise ValueError(f"{' and '.join(alone)}: only for many streams (several sources, or "
                         f"-o DIR/)")
    return many


def cmd_simulate_many(args) -> None:
    import sigmadelta as sd

    if args.workers is not None and args.workers < 1:
        raise ValueError(f"--workers must be at least 1, got {args.workers}")
    if args.limit is not None and args.limit < 1:
        raise ValueError(f"--limit must be at least 1 frame, got {args.limit}")
    out = args.output or "runs"
    net = sd.load(args.net)  # scattered to the workers: no shared file system needed for it
    runs = sd.simulate_many(net, args.frames, out=out, client=args.scheduler, workers=args.workers,
                            dtype=args.dtype, limit=args.limit, fidelity=args.fidelity,
                            overwrite=args.overwrite or args.force, progress=not args.quiet)
    print(runs.summary())
    print(f"ran {len(runs.ran)} stream(s), {len(runs) - len(runs.ran)} already complete; wrote {out}")
    if runs.errors:
        raise ValueError(f"{len(runs.errors)} stream(s) failed: " + "; ".join(
            f"{k}: {e}" for k, e in runs.errors.items()))


def cmd_report_runs(args) -> None:
    import sigmadelta as sd
    from sigmadelta.plots import plot_runs

    runs = sd.read_runs(args.run)
    print(runs.summary())
    out = args.output or os.path.join(args.run, "report.png")
    plot_runs(runs, out, title=f"{os.path.basename(os.path.normpath(args.run))}: {len(runs)} streams")
    print(f"wrote {out}")
    if args.json:
        print(json.dumps({"network_hash": runs.manifest["network_hash"],
                          "settings": runs.manifest["settings"], "streams": runs.rows()}))
