"""scripts/benchmark.py --netx: a lava-dl netx network, ``timing="pipelined"``, our event engine
(``stages=1`` and ``stages=2``) against Lava's fixed-point CPU simulation, ms per step, the sides
alternating pass for pass (see benchmark.py's docstring)."""

from __future__ import annotations

import importlib.util
import json
import os
import sys
import time
from pathlib import Path

import numpy as np

import sigmadelta as sd

__all__ = ["bench_netx"]


def _netx_frames(args, shape: tuple[int, ...]) -> np.ndarray:
    from sigmadelta.datasets import open_source

    if len(shape) != 3:
        raise SystemExit("--netx: the network's input must be (C, H, W) to take a video")
    src = open_source(args.video or "carphone", limit=args.frames, size=shape[1:], gray=shape[0] == 1)
    frames = np.stack(list(src)).astype(np.float64)
    if frames.shape[1:] != shape:
        raise SystemExit(f"--netx: the video gives frames {frames.shape[1:]}, the network takes {shape}")
    return np.rint(frames * args.input_scale)


def _lava_pass(path: str, frames: np.ndarray, python: str | None) -> float | None:
    """Lava's ms per step on ``frames``: in this process if Lava imports, else via ``python``."""
    import subprocess
    import tempfile

    script = Path(__file__).resolve().parent / "lava_ground_truth.py"
    if python is None:
        if importlib.util.find_spec("lava") is None:
            return None
        sys.path.insert(0, str(script.parent))
        from lava_ground_truth import time_lava

        return 1e3 * time_lava(path, frames)
    with tempfile.TemporaryDirectory() as tmp:
        npy = Path(tmp) / "frames.npy"
        np.save(npy, frames)
        done = subprocess.run([python, str(script), "--time", path, "--frames-npy", str(npy)],
                              capture_output=True, text=True, check=True)
    return float(json.loads(done.stdout.strip().splitlines()[-1])["lava_ms_per_step"])


def bench_netx(args) -> dict:
    """Our event engine (pipelined) against Lava's fixed-point simulation, ms per step."""
    net = sd.load_netx(args.netx)
    frames = _netx_frames(args, net.input_shape)
    sims = {s: sd.Simulator(net, dtype=np.float64, timing="pipelined", stages=s) for s in (1, 2)}
    for sim in sims.values():  # compile / load the cache
        sim.run(frames[:2], progress=False)
    ours: dict = {1: [], 2: []}
    lava = []
    for _ in range(args.repeats):  # ours with one and with two stages, then Lava, pass by pass
        for s, sim in sims.items():
            sim.reset()
            t0 = time.perf_counter()
            res = sim.run(frames, progress=False)
            ours[s].append(1e3 * (time.perf_counter() - t0) / len(frames))
        ms = _lava_pass(args.netx, frames, args.lava_python)
        if ms is not None:
            lava.append(ms)
    out = {"netx": args.netx, "frames": len(frames), "ms_per_step": min(ours[1]),
           "ms_per_step_passes": ours[1], "ms_per_step_stages2": min(ours[2]),
           "ms_per_step_stages2_passes": ours[2], "stages2_cut": net.nodes[sims[2]._stages.node].name,
           "load_average": list(os.getloadavg()),
           "op_reduction": float(net.dense_macs().sum() * len(frames) / max(res.stats.synops.sum(), 1))}
    if lava:
        ratios = [b / a for a, b in zip(ours[1], lava, strict=True)]  # pass by pass: the sides alternate
        out.update(lava_ms_per_step=min(lava), lava_ms_per_step_passes=lava,
                   speedup_over_lava=min(lava) / min(ours[1]), speedup_passes=ratios,
                   speedup_over_lava_stages2=min(lava) / min(ours[2]),
                   speedup_passes_stages2=[b / a for a, b in zip(ours[2], lava, strict=True)])
    return out
