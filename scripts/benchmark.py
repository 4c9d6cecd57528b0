"""Wall-clock benchmark: event-driven ``sd.simulate`` against dense torch at batch 1.

Both sides run in this process on the same frames, network and thread count
(``torch.set_num_threads(n)`` and ``numba.set_num_threads(n)``). Per weight layer::

    kernel efficiency = (synops / s of the layer's event step: encode + scatter + listing)
                        / (MACs / s of the same layer's dense torch op)

End to end: op reduction (dense MACs / synops), wall-clock speedup (dense time /
event time), their ratio, frames per second, peak memory, Numba first-call
(compile or cache load) time. ``--micro``: one 3x3 conv, C_in = C_out in {16, 32, 64},
random 5 % of the input neurons change per frame (``--activity 0.01,0.05,0.2`` sweeps,
``--plot sweep.png`` draws speedup and efficiency against it; ``scripts/_micro.py``); beside
it, the rate of the bare scatter (:func:`bare_scatter`: the multiply-adds alone, no encoding
or listing) on the same events, which bounds any event scatter on this machine.
``--micro-pattern neuron,pixel,channels``: random neurons, whole pixels or a quarter of a
pixel's channels change. ``--zoo``: networks in common styles (``scripts/_netzoo.py``) on 64x64
frames of bikes, ``--dtype float32,float64``, ``--conv-path scatter,auto`` to compare paths.
BLAS is limited to ``--threads`` for torch's side; the event side's runs hold it at one thread
(the engine's ``blas_threads=1`` default: each stream's frame loop is one thread).
``--streams 1,2``: throughput of ``sd.simulate_batch`` with that many streams on as
many threads. ``--many 8 --workers 1,2``: ``sd.simulate_many`` on 1 and 2 processes (_many.py).

Examples
--------
python scripts/benchmark.py --video carphone --frames 60
python scripts/benchmark.py --micro --dtype float32
python scripts/benchmark.py --micro --dtype float32 --activity 0.005,0.01,0.02,0.05,0.1,0.2 --plot sweep.png
python scripts/benchmark.py --zoo --frames 30 --dtype float32,float64 --scale 32 --conv-path scatter,auto
python scripts/benchmark.py --net demo.h5 --video carphone --streams 1,2 --json
python scripts/benchmark.py --many 8 --workers 1,2 --frames 120
python scripts/benchmark.py --netx pilotnet_sdnn.net --video carphone --lava-python /path/to/py310/bin/python

``--netx FILE``: a lava-dl netx network, ``timing="pipelined"``, on the video decoded at the
network's input size, times ``--input-scale`` (default 64: Lava's 6 fractional bits) and
rounded; our time per step against Lava's fixed-point CPU simulation on the same frames, when
Lava imports in this process or ``--lava-python`` names an interpreter that has it
(``scripts/lava_ground_truth.py --time``, a child process per pass). The two sides alternate,
pass for pass; each keeps its best pass. Ours runs with ``stages=1`` and ``stages=2`` (two threads,
the network cut at a cut node: :mod:`sigmadelta.stages`), alternating too.
"""

from __future__ import annotations

import argparse
import functools
import importlib
import importlib.util
import json
import resource
import sys
import time
import tracemalloc
from pathlib import Path

import numba
import numpy as np
import torch
import torch.nn as nn
from threadpoolctl import threadpool_limits

import sigmadelta as sd
from sigmadelta import graph as g
from sigmadelta.dense import dense_node
from sigmadelta.loaders import load_torch_model

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _costs import calibrate_args, micro_from_args  # noqa: E402
from _many import many_from_args  # noqa: E402
from _micro import bare_scatter, bench_micro, plot_micro  # noqa: E402
from _netx import bench_netx  # noqa: E402
from _netzoo import ZOO, zoo_from_args  # noqa: E402

__all__ = ["main", "synthetic_model", "synthetic_frames", "DenseRunner", "bench_network",
           "bench_micro", "plot_micro", "bench_streams", "serial_fraction", "bare_scatter"]


def synthetic_model(c_in: int = 1) -> nn.Module:
    """conv c_in->16 s2, 16->32 s2, 32->32, 32->1 (3x3, ReLU), fixed seed."""
    torch.manual_seed(0)
    return nn.Sequential(
        nn.Conv2d(c_in, 16, 3, stride=2, padding=1), nn.ReLU(),
        nn.Conv2d(16, 32, 3, stride=2, padding=1), nn.ReLU(),
        nn.Conv2d(32, 32, 3, padding=1), nn.ReLU(), nn.Conv2d(32, 1, 3, padding=1),
    ).eval()


def synthetic_frames(shape: tuple[int, ...], t: int, seed: int = 0) -> np.ndarray:
    """A static texture with a bright square drifting over it (~5-10 % of pixels change)."""
    rng = np.random.default_rng(seed)
    base = rng.random(shape).astype(np.float32) * 0.5
    h, w = shape[-2:]
    side = max(2, min(h, w) // 4)
    frames = []
    for k in range(t):
        f = base.copy()
        y, x = (k * 2) % max(1, h - side), (k * 3) % max(1, w - side)
        f[..., y:y + side, x:x + side] += 0.5
        frames.append(f)
    return np.stack(frames)


class DenseRunner:
    """Run a converted network densely with torch ops in ``dtype`` (float32: the model a user
    has), batch 1, node by node."""

    def __init__(self, net: g.Network, dtype=np.float32):
        self.net, self.dtype = net, np.dtype(dtype)
        self.params = {}
        for i, n in enumerate(net.nodes):
            if isinstance(n, (g.Conv, g.Dense)):
                self.params[i] = (torch.from_numpy(np.asarray(n.weight, self.dtype)),
                                  torch.from_numpy(np.asarray(n.bias, self.dtype)))

    def node(self, i: int, ins: list[torch.Tensor]) -> torch.Tensor:
        """Dense output of node ``i`` (with a batch axis) from its inputs."""
        return dense_node(self.net.nodes[i], ins, *self.params.get(i, (None, None)))

    def run(self, frame: torch.Tensor, layer_seconds: np.ndarray | None = None) -> torch.Tensor:
        """One frame; if ``layer_seconds`` is given, add each weight layer's op time to it."""
        vals: list[torch.Tensor] = [frame[None]]
        j = 0
        for i in range(1, len(self.net.nodes)):
            ins = [vals[k] for k in self.net.nodes[i].inputs]
            if layer_seconds is not None and i in self.params:
                t0 = time.perf_counter()
                vals.append(self.node(i, ins))
                layer_seconds[j] += time.perf_counter() - t0
                j += 1
            else:
                vals.append(self.node(i, ins))
        return vals[self.net.output]


class _DenseSide:
    """Dense torch, batch 1, frame by frame; ``once()`` times one pass over the stream."""

    def __init__(self, net: g.Network, frames: np.ndarray, dtype=np.float32):
        self.net, self.runner = net, DenseRunner(net, dtype)
        self.x = torch.from_numpy(np.ascontiguousarray(frames, dtype))
        with torch.no_grad():
            for f in self.x[:3]:
                self.runner.run(f)

    def once(self) -> tuple[float, float, np.ndarray]:
        """(wall seconds, thread CPU seconds, per-layer seconds of a second, timed pass)."""
        with torch.no_grad():
            t0, c0 = time.perf_counter(), time.thread_time()
            for f in self.x:
                self.runner.run(f)
            wall, cpu = time.perf_counter() - t0, time.thread_time() - c0
            layers = np.zeros(len(self.net.weight_layers))
            for f in self.x:
                self.runner.run(f, layers)
        return wall, cpu, layers


class _EventSide:
    """``sd.Simulator`` on the same stream; ``once()`` times one pass, then a profiled one."""

    def __init__(self, net: g.Network, frames: np.ndarray, dtype, path: str = "auto"):
        self.net, self.frames, self.dtype, self.path = net, frames, dtype, path
        t0 = time.perf_counter()
        sd.Simulator(net, dtype=dtype).run(frames[:2], progress=False)
        self.first_call = time.perf_counter() - t0
        t0 = time.perf_counter()
        self.sim = sd.Simulator(net, dtype=dtype)  # built once, as for a long stream: not timed
        self.build = time.perf_counter() - t0
        self.sim.set_conv_path(path)

    def once(self) -> tuple[float, float, np.ndarray]:
        self.sim.reset()
        t0, c0 = time.perf_counter(), time.thread_time()
        self.result = self.sim.run(self.frames, progress=False)
        wall, cpu = time.perf_counter() - t0, time.thread_time() - c0
        self.conv_paths = self.sim.conv_paths
        prof = sd.Simulator(self.net, dtype=self.dtype, profile=True)
        prof.set_conv_path(self.path)
        prof.run(self.frames, progress=False)
        return wall, cpu, prof.layer_seconds.copy()

    def traced_peak_mb(self) -> float:
        tracemalloc.start()
        sd.Simulator(self.net, dtype=self.dtype).run(self.frames[:4], progress=False)
        peak = tracemalloc.get_traced_memory()[1]
        tracemalloc.stop()
        return peak / 2**20


def _best(runs: list[tuple[float, float, np.ndarray]]) -> tuple[float, float, np.ndarray]:
    """Best (smallest) wall, CPU and per-layer time over repeats: the machine's noise only adds."""
    return (min(r[0] for r in runs), min(r[1] for r in runs),
            np.min(np.stack([r[2] for r in runs]), axis=0))


def bench_network(net: g.Network, frames: np.ndarray, dtype=np.float64, repeats: int = 3,
                  paths: tuple[str, ...] = ("auto",), dense_dtype: str = "float32") -> dict:
    """Dense torch vs event simulation on one network and stream; see module docstring.

    The two sides alternate, pass for pass, ``repeats`` times, and each keeps its best
    pass, so that both see the same machine load. With several conv ``paths`` (``"scatter"``,
    ``"dense"``, ``"auto"``: :meth:`sd.Simulator.set_conv_path`) an event side per path joins
    the alternation; ``by_path`` gives each one's speedup (best pass) and its spread (the
    speedups of pass ``i``, dense over event, min and max); the other figures are the last path's.
    Dense torch runs in float32 (the model a user has), with ``dense_dtype="same"`` in ``dtype``.
    """
    torch_dtype = np.dtype(dtype) if dense_dtype == "same" else np.dtype(np.float32)
    dense = _DenseSide(net, frames, torch_dtype)
    sides = [_EventSide(net, frames, dtype, p) for p in paths]
    d_runs, p_runs = [], [[] for _ in paths]
    for _ in range(repeats):
        d_runs.append(dense.once())
        for side, runs in zip(sides, p_runs, strict=True):
            runs.append(side.once())
    by_path = {}
    for p, side, runs in zip(paths, sides, p_runs, strict=True):
        ratios = [d[0] / e[0] for d, e in zip(d_runs, runs, strict=True)]
        cpu = [d[1] / e[1] for d, e in zip(d_runs, runs, strict=True)]  # thread CPU time: robust to load
        by_path[p] = {"speedup": min(d[0] for d in d_runs) / min(e[0] for e in runs),
                      "speedup_spread": [min(ratios), max(ratios)],
                      "speedup_cpu": min(d[1] for d in d_runs) / min(e[1] for e in runs),
                      "speedup_cpu_spread": [min(cpu), max(cpu)],
                      "event_fps": len(frames) / min(e[0] for e in runs),
                      "conv_paths": side.conv_paths}
    event, e_runs = sides[-1], p_runs[-1]
    dense_s, dense_cpu, dense_layers = _best(d_runs)
    ev_s, ev_cpu, ev_layers = _best(e_runs)
    ev = {"seconds": ev_s, "cpu_seconds": ev_cpu, "layer_seconds": ev_layers,
          "stats": event.result.stats, "first_call_s": event.first_call, "build_s": event.build,
          "traced_peak_mb": event.traced_peak_mb()}
    st, t = ev["stats"], len(frames)
    macs = net.dense_macs()
    synops = st.synops.sum(0)
    layers = []
    for j, name in enumerate(net.layer_names):
        syn_rate = synops[j] / max(ev["layer_seconds"][j], 1e-12)
        mac_rate = macs[j] * t / max(dense_layers[j], 1e-12)
        layers.append({"layer": name, "synops_per_frame": float(synops[j] / t),
                       "dense_macs_per_frame": int(macs[j]), "event_ms_per_frame":
                       1e3 * ev["layer_seconds"][j] / t, "dense_ms_per_frame":
                       1e3 * dense_layers[j] / t, "gsynops_per_s": syn_rate / 1e9,
                       "dense_gmacs_per_s": mac_rate / 1e9, "kernel_efficiency": syn_rate / mac_rate})
    reduction = float(macs.sum() * t / max(synops.sum(), 1))
    speedup = dense_s / ev["seconds"]
    return {"frames": t, "dtype": np.dtype(dtype).name, "dense_dtype": torch_dtype.name, "layers": layers,
            "op_reduction": reduction, "speedup": speedup, "speedup_over_reduction":
            speedup / reduction, "event_fps": t / ev["seconds"], "dense_fps": t / dense_s,
            "speedup_cpu_time": dense_cpu / ev["cpu_seconds"],
            "numba_first_call_s": ev["first_call_s"], "simulator_build_s": ev["build_s"],
            "traced_peak_mb": ev["traced_peak_mb"], "by_path": by_path,
            "maxrss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}


def bench_streams(net: g.Network, frames: np.ndarray, streams: list[int], dtype=np.float64,
                  repeats: int = 3, min_frames: int = 400) -> list[dict]:
    """Frames per second of ``sd.simulate_batch`` with n streams on n threads.

    Each stream is the clip played back to back up to ``min_frames`` frames: a run of
    a tenth of a second alone on the machine gets boosted clocks that two busy cores
    do not, which would understate the scaling. The stream counts alternate within
    each repeat and each keeps its median run.
    """
    frames = np.concatenate([frames] * max(1, -(-min_frames // len(frames))))
    sd.simulate_batch(net, [frames[:2]] * max(streams), workers=max(streams), dtype=dtype)
    runs: dict[int, list[tuple[float, float]]] = {n: [] for n in streams}
    for _ in range(repeats):
        for n in streams:
            t0, c0 = time.perf_counter(), time.process_time()
            sd.simulate_batch(net, [frames] * n, workers=n, dtype=dtype)
            runs[n].append((time.perf_counter() - t0, time.process_time() - c0))
    out, base = [], None
    for n in streams:
        wall, cpu = sorted(runs[n])[len(runs[n]) // 2]
        fps = n * len(frames) / wall
        base = fps if base is None else base
        out.append({"streams": n, "fps": fps, "scaling": fps / base, "cpu_over_wall": cpu / wall,
                    "frames_per_stream": len(frames)})
    return out


def serial_fraction(net: g.Network, frames: np.ndarray, dtype=np.float64) -> dict:
    """Share of a frame spent outside the GIL-free kernels (the Python frame loop).

    Measured as the per-frame time of a static stream (the first frame repeated:
    no events, so nearly only the Python loop and kernel dispatch run) over the
    per-frame time of the real stream; it bounds the thread scaling (Amdahl).
    """
    static = np.repeat(frames[:1], len(frames), axis=0)
    times = {}
    for name, x in (("static", static), ("stream", frames)):
        sim = sd.Simulator(net, dtype=dtype)
        sim.step(x[0])
        t0 = time.perf_counter()
        sim.run(x[1:], progress=False)
        times[name] = (time.perf_counter() - t0) / (len(x) - 1)
    frac = times["static"] / times["stream"]
    return {"static_ms_per_frame": 1e3 * times["static"], "stream_ms_per_frame":
            1e3 * times["stream"], "serial_fraction": frac, "amdahl_2_threads": 2 / (1 + frac)}


def _network_and_frames(args) -> tuple[g.Network, np.ndarray, str]:
    """The network (``--net``, ``--model`` or synthetic) and the stream (video or synthetic)."""
    frames = None
    if args.video:
        from sigmadelta.datasets import open_source

        frames = np.stack(list(open_source(args.video, limit=args.frames))).astype(np.float32)
    if args.net:
        net, what = sd.load(args.net), args.net
    elif args.model and ":" not in args.model:  # a shipped model at its recorded operating point
        from sigmadelta.models import load_pretrained, pretrained_info

        info = pretrained_info(args.model)
        scale = info.get("operating_point", {}).get("scales", 32.0)
        net = sd.convert(load_pretrained(args.model), tuple(info["input_shape"]), scale=scale)
        what = f"{args.model} (pretrained)"
    else:
        shape = tuple(args.input_shape) if args.input_shape else (
            frames.shape[1:] if frames is not None else (1, 144, 176))
        model = load_torch_model(args.model) if args.model else synthetic_model(shape[0])
        what = args.model or "synthetic 4-layer conv"
        scale = [float(s) for s in args.scale.split(",")]
        net = sd.convert(model, shape, scale=scale[0] if len(scale) == 1 else scale)
    if frames is None:
        frames = synthetic_frames(net.input_shape, args.frames)
    if frames.shape[1:] != tuple(net.input_shape):
        sys.exit(f"frames have shape {frames.shape[1:]}, the network expects {net.input_shape}")
    return net, frames, what


def _print_network(r: dict, what: str) -> None:
    print(f"network: {what}; {r['frames']} frames; dtype {r['dtype']}")
    print(f"{'layer':>8} {'synops/fr':>11} {'MACs/fr':>11} {'event ms':>9} {'dense ms':>9} "
          f"{'Gsyn/s':>7} {'GMAC/s':>7} {'eff':>6}")
    for L in r["layers"]:
        print(f"{L['layer']:>8} {L['synops_per_frame']:11.4g} {L['dense_macs_per_frame']:11.4g} "
              f"{L['event_ms_per_frame']:9.3f} {L['dense_ms_per_frame']:9.3f} "
              f"{L['gsynops_per_s']:7.2f} {L['dense_gmacs_per_s']:7.2f} {L['kernel_efficiency']:6.3f}")
    print(f"op reduction {r['op_reduction']:.2f}x  wall-clock speedup {r['speedup']:.2f}x  "
          f"ratio {r['speedup_over_reduction']:.2f}  event {r['event_fps']:.1f} fps  "
          f"dense {r['dense_fps']:.1f} fps")
    for p, b in r["by_path"].items():
        print(f"conv path {p}: speedup {b['speedup']:.2f}x (passes {b['speedup_spread'][0]:.2f}-"
              f"{b['speedup_spread'][1]:.2f}x; thread CPU time {b['speedup_cpu']:.2f}x, "
              f"{b['speedup_cpu_spread'][0]:.2f}-{b['speedup_cpu_spread'][1]:.2f}x), "
              f"event {b['event_fps']:.1f} fps; frames by path "
              f"{b['conv_paths']}")
    print(f"speedup in thread CPU time (robust to other load on the machine) "
          f"{r['speedup_cpu_time']:.2f}x")
    print(f"numba first call {r['numba_first_call_s']:.2f} s; Simulator build "
          f"{1e3 * r['simulator_build_s']:.1f} ms; peak traced {r['traced_peak_mb']:.1f} MiB; "
          f"maxrss {r['maxrss_mb']:.0f} MiB")


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--net", help="a converted network (.h5)")
    p.add_argument("--model", help="module:factory returning a torch model, or a shipped model name "
                                    "(e.g. face_detector, at its recorded operating point)")
    p.add_argument("--input-shape", type=int, nargs="+", help="C H W (with --model)")
    p.add_argument("--scale", default="8,16,16,16", help="herding scale(s), comma separated")
    p.add_argument("--video", help="embedded name or video path (default: synthetic frames)")
    p.add_argument("--frames", type=int, default=60)
    p.add_argument("--dtype", default="float64",
                   help="float64 or float32 (--zoo: a comma list, e.g. float32,float64)")
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--streams", default="", help="e.g. 1,2: simulate_batch scaling")
    p.add_argument("--micro", action="store_true", help="single-conv kernel efficiency")
    p.add_argument("--micro-hw", type=int, nargs=2, default=(64, 64))
    p.add_argument("--micro-channels", default="16,32,64",
                   help="--micro: C (C_in = C_out), C_in:C_out or C_in:C_out:H[xW] (own map size), "
                        "separated by commas")
    p.add_argument("--micro-kernel", type=int, choices=(1, 3), default=3,
                   help="--micro: the conv's kernel size (1: fits PATH_COSTS_1X1 with --fit-costs)")
    p.add_argument("--activity", default="0.05",
                   help="--micro: share of input neurons changed per frame; a comma list sweeps")
    p.add_argument("--micro-pattern", default="neuron",
                   help="--micro: how inputs change: neuron (random neurons), pixel (whole pixels), "
                        "channels (25%% of a pixel's channels); a comma list runs each")
    p.add_argument("--fit-costs", action="store_true",
                   help="--micro with --conv-path scatter,dense,gemm: fit the conv path chooser's "
                        "cost model (sigmadelta.kernels.PATH_COSTS) and print it")
    p.add_argument("--save-costs", action="store_true",
                   help="--micro --fit-costs or --calibrate: save the fit as this CPU's cost table "
                        "(per-user cache; sigmadelta.kernels.path_cost_table() then uses it)")
    p.add_argument("--calibrate", action="store_true",
                   help="fit every cost table of the chooser (3x3 and 1x1, float32 and float64) at "
                        "the busy points and print it (scripts/_costs.py); with --save-costs")
    p.add_argument("--plot", help="--micro: write a PNG of speedup and efficiency against activity")
    p.add_argument("--zoo", nargs="?", const=",".join(ZOO), default=None,
                   help="networks in common styles against dense torch (3x64x64, --video, default "
                        "bikes; --dtype float32,float64); a comma list picks some: " + ", ".join(ZOO))
    p.add_argument("--many", type=int, default=0, help="N: sd.simulate_many of N video streams")
    p.add_argument("--workers", default="1,2", help="--many: worker processes to compare, e.g. 1,2")
    p.add_argument("--dask-defaults", action="store_true",
                   help="--many: LocalClusters with dask's own configuration (default: "
                        "sigmadelta.many.LEAN_CONFIG)")
    p.add_argument("--bar", action="store_true",
                   help="--many: with the progress bar (its frame reports from the workers)")
    p.add_argument("--conv-path", default="auto",
                   help="conv layers' path(s): auto, scatter, dense, gemm (gather-GEMM-scatter); "
                        "comma separated to compare them in one run (e.g. scatter,auto)")
    p.add_argument("--dense-dtype", choices=("float32", "same"), default="float32",
                   help="dense torch's dtype: float32 (the model a user has; default) or the same "
                        "as the event side's --dtype (a network, --zoo or --micro)")
    p.add_argument("--json", action="store_true", help="print one JSON object only")
    p.add_argument("--netx", help="a lava-dl netx file: our time per step against Lava's")
    p.add_argument("--lava-python", help="--netx: a Python with lava-nc and lava-dl, to time Lava")
    p.add_argument("--input-scale", type=float, default=64.0,
                   help="--netx: frames in [0, 1] times this, rounded (Lava's integer input)")
    return p


def main(argv: list[str] | None = None) -> dict:
    args = _parser().parse_args(argv)
    torch.set_num_threads(args.threads)
    torch.set_flush_denormal(True)  # sd.convert flushed the weights; torch's activations too
    numba.set_num_threads(min(args.threads, numba.config.NUMBA_NUM_THREADS))
    importlib.import_module("scipy.linalg.cython_blas")  # the BLAS the dense conv path's GEMM
    threadpool_limits(args.threads)  # calls (loaded first, so that the limit reaches it)
    dtypes = [np.dtype(d) for d in args.dtype.split(",") if d in ("float32", "float64")]
    if len(dtypes) != len(args.dtype.split(",")) or (len(dtypes) > 1 and args.zoo is None
                                                      and not args.micro):
        sys.exit(f"--dtype: float32 or float64 (a comma list with --zoo or --micro), got {args.dtype!r}")
    dtype = dtypes[0]
    out: dict = {"threads": args.threads}
    paths = tuple(args.conv_path.split(","))
    if not paths or any(p not in ("auto", "scatter", "dense", "gemm") for p in paths):
        sys.exit(f"--conv-path: auto, scatter, dense or gemm (comma separated), got {args.conv_path!r}")
    if args.many:
        out["many"] = many_from_args(args, _network_and_frames, dtype)
    elif args.netx:
        out["netx"] = r = bench_netx(args)
        if not args.json:
            sp = r.get("speedup_passes", [])
            lava = (f"; Lava fixed point {r['lava_ms_per_step']:.1f} ms per step: "
                    f"{r['speedup_over_lava']:.0f}x faster (best against best; pass by pass "
                    f"{min(sp):.0f}-{max(sp):.0f}x)" if "lava_ms_per_step" in r else
                    " (Lava not available: --lava-python)")
            print(f"{r['netx']}: {r['frames']} frames, {r['ms_per_step']:.3f} ms per step (pipelined, "
                  f"op reduction {r['op_reduction']:.1f}x){lava}; load average "
                  + ", ".join(f"{v:.1f}" for v in r["load_average"]))
            sp2 = r.get("speedup_passes_stages2", [])
            print(f"stages=2 (cut at {r['stages2_cut']!r}): {r['ms_per_step_stages2']:.3f} ms per step"
                  + (f"; {r['speedup_over_lava_stages2']:.0f}x faster than Lava (pass by pass "
                     f"{min(sp2):.0f}-{max(sp2):.0f}x)" if sp2 else ""))
    elif args.zoo is not None:
        out["zoo"] = zoo_from_args(args, dtypes, functools.partial(bench_network,
                                                                   dense_dtype=args.dense_dtype), paths)
    elif args.calibrate:
        out.update(calibrate_args(args))
    elif args.micro:
        out.update(micro_from_args(args, dtypes, paths))
    else:
        net, frames, what = _network_and_frames(args)
        out["network"] = bench_network(net, frames, dtype, args.repeats, paths, args.dense_dtype)
        if not args.json:
            _print_network(out["network"], what)
        if args.streams:
            out["streams"] = bench_streams(net, frames, [int(s) for s in args.streams.split(",")],
                                           dtype, args.repeats)
            out["serial"] = serial_fraction(net, frames, dtype)
            if not args.json:
                for s in out["streams"]:
                    print(f"streams {s['streams']}: {s['fps']:.1f} fps, {s['scaling']:.2f}x "
                          f"(process cpu / wall {s['cpu_over_wall']:.2f}; "
                          f"{s['frames_per_stream']} frames per stream)")
                f = out["serial"]
                print(f"python loop share {f['serial_fraction']:.3f} of a frame "
                      f"({f['static_ms_per_frame']:.3f} of {f['stream_ms_per_frame']:.3f} ms): "
                      f"2-thread bound {f['amdahl_2_threads']:.2f}x")
    if args.json:
        print(json.dumps(out, indent=1))
    return out


if __name__ == "__main__":
    main()
