"""A zoo network node by node: the event engine against dense torch, in thread CPU time.

The event side is ``sd.Simulator(net, profile=True)`` with the profiler's clock set to
``time.thread_time`` (CPU time of the calling thread, robust to other work on the machine);
the dense side is torch in float32 (one thread, batch 1) run node by node as
``scripts/benchmark.py`` runs it (``DenseRunner.node``), each call timed by the same clock.
Both run ``--repeats`` passes over ``--frames`` frames of ``--video`` at 64x64 (the zoo's
setup, ``scripts/_netzoo.py``), after a warm-up pass. Per node: microseconds per frame of
each side and the ratio torch / event (above 1: the event engine is faster)::

    python scripts/profile_nodes.py mobilenet_v2 --frames 30 --dtype float32 --scale 32

``--model NAME --video VIDEO`` (instead of a zoo network): a shipped model at its recorded
operating point on the video at its own size, loaded as ``scripts/benchmark.py`` loads it::

    python scripts/profile_nodes.py --model face_detector --video carphone --frames 60
"""

import argparse
import os
import sys
import time

import numpy as np
import torch
from threadpoolctl import threadpool_limits

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from _netzoo import SHAPE, zoo_model  # noqa: E402
from benchmark import DenseRunner, _network_and_frames  # noqa: E402
from sigmadelta.datasets import open_source  # noqa: E402

import sigmadelta as sd  # noqa: E402
import sigmadelta.profiling as profiling  # noqa: E402


def event_seconds(net, frames: np.ndarray, dtype, repeats: int, path: str = "auto") -> np.ndarray:
    """Thread CPU seconds per frame of each node of the event engine."""
    profiling.time.perf_counter = time.thread_time  # the profiler reads this module's clock
    sim = sd.Simulator(net, dtype=dtype, profile=True)
    sim.set_conv_path(path)
    sim.run(frames, progress=False)  # compile and warm up
    sim.node_seconds[:] = 0.0
    for _ in range(repeats):
        sim.run(frames, progress=False)
    return np.asarray(sim.node_seconds) / (repeats * len(frames))


def torch_seconds(net, frames: np.ndarray, repeats: int) -> np.ndarray:
    """Thread CPU seconds per frame of each node of dense torch (float32, batch 1)."""
    runner, x = DenseRunner(net), torch.from_numpy(frames)
    secs = np.zeros(len(net.nodes))
    with torch.no_grad():
        for rep in range(repeats + 1):  # the first pass warms up
            for f in x:
                vals = [f[None]]
                for i in range(1, len(net.nodes)):
                    ins = [vals[k] for k in net.nodes[i].inputs]
                    t0 = time.thread_time()
                    vals.append(runner.node(i, ins))
                    if rep:
                        secs[i] += time.thread_time() - t0
    return secs / (repeats * len(frames))


def describe(node) -> str:
    """Kind, weight shape and stride of a node, for the table."""
    text = type(node).__name__
    if getattr(node, "weight", None) is not None:
        text += " " + "x".join(str(v) for v in np.shape(node.weight))
    if hasattr(node, "stride"):
        text += f" /{node.stride[0]}"
    return text


def load(ap: argparse.ArgumentParser, args) -> tuple:
    """(network, frames): a zoo network at 64x64, or ``--model`` as the benchmark loads it."""
    if (args.network is None) == (args.model is None):
        ap.error("name a zoo network or --model, not both")
    if args.model:
        args.net = None
        net, frames, _ = _network_and_frames(args)
        return net, frames
    frames = np.stack(list(open_source(args.video, size=(64, 64), gray=False,
                                       limit=args.frames))).astype(np.float32)
    calib = np.stack(list(open_source("bigbuckbunny", size=(64, 64), gray=False, limit=16)))
    return sd.convert(zoo_model(args.network, calib), SHAPE, scale=args.scale), frames


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("network", nargs="?", help="a zoo network (scripts/_netzoo.py)")
    ap.add_argument("--model", help="a shipped model (instead of a zoo network)")
    ap.add_argument("--frames", type=int, default=30)
    ap.add_argument("--video", default="bikes")
    ap.add_argument("--conv-path", default="auto", help="auto, scatter, dense or gemm")
    ap.add_argument("--dtype", default="float32")
    ap.add_argument("--scale", type=float, default=32.0)
    ap.add_argument("--repeats", type=int, default=3)
    args = ap.parse_args(argv)
    torch.set_num_threads(1)
    torch.set_flush_denormal(True)
    threadpool_limits(1)
    net, frames = load(ap, args)
    ev = event_seconds(net, frames, np.dtype(args.dtype), args.repeats, args.conv_path)
    tn = torch_seconds(net, frames, args.repeats)
    print(f"{'node':>4} {'':28} {'event us':>9} {'torch us':>9} {'torch/event':>11}")
    for i, node in enumerate(net.nodes):
        print(f"{i:4d} {describe(node):28} {1e6 * ev[i]:9.1f} {1e6 * tn[i]:9.1f} "
              f"{tn[i] / max(ev[i], 1e-12):11.2f}")
    print(f"{'all':>4} {'':28} {1e6 * ev.sum():9.1f} {1e6 * tn.sum():9.1f} {tn.sum() / ev.sum():11.2f}")
    print("load average", " ".join(f"{v:.1f}" for v in os.getloadavg()))


if __name__ == "__main__":
    main()
