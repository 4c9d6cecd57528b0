"""The micro benchmark of scripts/benchmark.py: one 3x3 (or 1x1) conv, event step against torch.

Beside the engine's conv step it times the bare scatter on the same kind of random
events (:func:`bare_scatter`: the multiply-adds alone, per event and kernel row one
load, add and store of an output row; no encoding, bounds or listing). Its rate over
torch's bounds what an event scatter can reach on the machine.
"""

from __future__ import annotations

import contextlib
import copy
import itertools
import time
import types

import numba
import numpy as np
import torch
import torch.nn as nn

import sigmadelta as sd
import sigmadelta.profiling as sd_profiling
from sigmadelta.kernels.paths import FIT_PIXEL_SHARE

__all__ = ["bench_micro", "micro_shape", "plot_micro", "print_micro", "bare_scatter", "fit_costs",
           "fit_pixel_costs", "print_costs", "PATTERNS", "PIXEL_SHARE"]


#: how the input changes from frame to frame in the micro benchmark
PATTERNS = ("neuron", "pixel", "channels")


def _micro_frames(shape, t: int, activity: float, seed: int, pattern: str = "neuron") -> np.ndarray:
    """``t`` frames of shape ``(C, H, W)``; each changes a share ``activity`` of the neurons.

    ``neuron``: that many random neurons; ``pixel``: that share of the pixels, all channels
    (whole-pixel changes); ``channels``: four times that share of the pixels, a random 25 %
    of their channels each.
    """
    rng = np.random.default_rng(seed)
    c, n = shape[0], int(np.prod(shape))
    n_px = n // c
    frames = [rng.random(shape).astype(np.float32)]
    for _ in range(t - 1):
        f = frames[-1].copy()
        if pattern == "neuron":
            mask = np.zeros(n, bool)
            mask[rng.choice(n, int(round(activity * n)), replace=False)] = True
        else:
            share = activity if pattern == "pixel" else min(1.0, 4 * activity)
            px = np.zeros(n_px, bool)
            px[rng.choice(n_px, int(round(share * n_px)), replace=False)] = True
            ch = np.ones((c, n_px), bool) if pattern == "pixel" else rng.random((c, n_px)) < 0.25
            mask = (ch & px[None]).ravel()
        f.reshape(-1)[mask] += rng.normal(0, 0.5, int(mask.sum())).astype(np.float32)
        frames.append(f)
    return np.stack(frames)


@numba.njit(cache=True, nogil=True)
def bare_scatter(pix, ch, val, w_run, z, w_img, c_out):
    """The scatter alone: ``z[row] += v * w_run[ky, c, :]`` for every event and kernel row.

    A 3x3, stride-1 conv without any bookkeeping (no encoding, no bounds, no listing):
    per event at interior pixel ``p`` and kernel row ``ky``, one contiguous multiply-add
    of ``3*C_out`` values into the output row starting at pixel ``p + (1-ky)*W - 1``.
    Its rate bounds what any event scatter can reach on this machine.
    """
    n3, c_in, wf = 3 * c_out, w_run.shape[1], w_run.reshape(w_run.size)
    for e in range(pix.shape[0]):
        v = val[e]
        for ky in range(3):
            zb = numba.uint64((pix[e] + (1 - ky) * w_img - 1) * c_out)  # unsigned: SIMD loop
            wb = numba.uint64((ky * c_in + ch[e]) * n3)
            for j in range(numba.uint64(n3)):
                z[zb + j] += v * wf[wb + j]



def _bare_events(c: int, hw: tuple[int, int], activity: float, frames: int, seed: int):
    """Weights, output and per-frame random interior events (by pixel) for :func:`bare_scatter`."""
    rng = np.random.default_rng(seed)
    h, w = hw
    w_run = rng.normal(size=(3, c, 3 * c)).astype(np.float32)
    n = int(round(activity * h * w * c))
    inner = np.array([y * w + x for y in range(1, h - 1) for x in range(1, w - 1)])
    evs = []
    for _ in range(frames):
        key = np.sort(rng.choice(len(inner) * c, n, replace=False))  # by pixel, as the engine
        evs.append((inner[key // c].astype(np.int64), (key % c).astype(np.int64),
                    rng.choice([-1.0, 1.0], n).astype(np.float32)))
    return w_run, np.zeros(h * w * c, np.float32), evs, n


@contextlib.contextmanager
def _thread_clock():
    """While open, the engine's profiler (which reads ``time.perf_counter``) times every op
    in the calling thread's CPU time (``time.thread_time``) instead of the wall clock."""
    real = sd_profiling.time
    names = {k: getattr(time, k) for k in dir(time) if not k.startswith("_")}
    sd_profiling.time = types.SimpleNamespace(**{**names, "perf_counter": time.thread_time})
    try:
        yield
    finally:
        sd_profiling.time = real


def _profiled(net, x, dtype, path) -> sd.Simulator:
    """A profiled simulator after running ``x`` by conv path ``path`` (the first frame, which
    sends every input, is not counted in ``node_seconds`` / ``layer_seconds``)."""
    sim = sd.Simulator(net, dtype=dtype, profile=True)
    sim.set_conv_path(path)
    sim.step(x[0])
    sim.node_seconds[:] = 0
    sim.run(x[1:], progress=False)
    return sim


def _micro_once(net, x, dtype, conv, xt, bare, path="auto") -> tuple:
    """One pass of each side over the frames after the first: event layer seconds (profiled,
    wall clock), dense torch seconds (wall), bare scatter seconds, event seconds of the whole
    frame (input too, profiled), the frames each conv path ran, then the event layer's and
    torch's thread CPU seconds (a second profiled run, timed by :func:`_thread_clock`). Under
    load from other processes the CPU times hold: a pass that loses the core for a while loses
    wall-clock time, not CPU time."""
    sim = _profiled(net, x, dtype, path)
    with _thread_clock():
        cpu_event = float(_profiled(net, x, dtype, path).layer_seconds[0])
    with torch.no_grad():
        t0, c0 = time.perf_counter(), time.thread_time()
        for _ in range(len(x) - 1):
            conv(xt)
        t_dense, cpu_dense = time.perf_counter() - t0, time.thread_time() - c0
    w_run, z, evs, _ = bare
    t0 = time.perf_counter()
    for e in evs:
        bare_scatter(*e, w_run, z, xt.shape[-1], w_run.shape[1])
    return (float(sim.layer_seconds[0]), t_dense, time.perf_counter() - t0,
            float(sim.node_seconds.sum()), next(iter(sim.conv_paths.values())), cpu_event, cpu_dense)


def micro_shape(spec, hw: tuple[int, int]) -> tuple[int, int, tuple[int, int]]:
    """``(C_in, C_out, (H, W))`` of one entry of :func:`bench_micro`'s ``channels``: ``C``
    (``C_in = C_out = C`` at ``hw``), ``(C_in, C_out)`` or ``(C_in, C_out, (H, W))``."""
    if isinstance(spec, (int, np.integer)):
        return int(spec), int(spec), tuple(hw)
    c_in, c_out, *rest = spec
    return int(c_in), int(c_out), tuple(rest[0]) if rest else tuple(hw)


def bench_micro(channels=(16, 32, 64), hw=(64, 64), activity: float = 0.05, frames: int = 30,
                dtype=np.float64, repeats: int = 5, paths=("auto",), pattern: str = "neuron",
                kernel: int = 3, dense_dtype: str = "float32") -> list[dict]:
    """One ``kernel`` x ``kernel`` conv (3 or 1; C_in = C_out = C, stride 1, padding
    ``kernel // 2``) at ``activity``: event step vs torch conv2d. An entry of ``channels``
    may also name ``(C_in, C_out)`` or ``(C_in, C_out, (H, W))`` (:func:`micro_shape`: a
    zoo net's 1x1 projection at its own map size, e.g. ``(96, 24, (16, 16))``); the rows'
    ``channels`` is ``C_in``, ``c_out`` and ``hw`` the rest.

    The input changes by ``pattern`` (:func:`_micro_frames`: random neurons, whole pixels
    or a quarter of the channels of random pixels).

    Event pass, dense pass and bare scatter alternate ``repeats`` times, once per conv path
    of ``paths`` (:meth:`sd.Simulator.set_conv_path`); each keeps its best; one row per
    channel count and path, with ``speedup_spread`` (min and max of the per-pass speedups).
    Per channel count: rates, ``kernel_efficiency = (synops/s) / (dense MACs/s)``, the
    layer's wall-clock ``speedup = dense time / event time`` (about efficiency / activity)
    and ``frame_speedup``, the same with the event side's input loading counted too;
    ``speedup_cpu`` (spread ``speedup_cpu_spread``): the same in thread CPU time (torch's over
    the event layer's), the figure to trust under load. Torch runs float32 (the model a user
    has), with ``dense_dtype="same"`` in ``dtype``; the rows' ``dense_dtype`` says which.
    """
    if kernel not in (1, 3):
        raise ValueError(f"bench_micro: kernel 1 or 3, got {kernel!r}")
    out = []
    torch_dtype = torch.float64 if dense_dtype == "same" and np.dtype(dtype) == np.float64 else torch.float32
    for spec in channels:
        c, c_out, hw_c = micro_shape(spec, hw)
        torch.manual_seed(c)
        conv = nn.Conv2d(c, c_out, kernel, padding=kernel // 2).eval()
        shape = (c, *hw_c)
        net = sd.convert(conv, shape, scale=16.0)
        x = _micro_frames(shape, frames, activity, c, pattern)
        conv_t = copy.deepcopy(conv).to(torch_dtype)
        xt = torch.from_numpy(x[0])[None].to(torch_dtype)
        bare = _bare_events(c, hw_c, activity, frames - 1, c)
        _micro_once(net, x[:3], dtype, conv_t, xt, (*bare[:2], bare[2][:1], bare[3]))  # warm up
        by_path = {p: [] for p in paths}
        for _ in range(repeats):
            for p in paths:
                by_path[p].append(_micro_once(net, x, dtype, conv_t, xt, bare, p))
        res = sd.Simulator(net, dtype=dtype).run(x, progress=False)
        changed = (np.diff(x, axis=0) != 0).any(axis=1).sum() / (frames - 1)  # pixels per frame
        for p, runs in by_path.items():
            row = _micro_row(net, res, runs, c, hw_c, activity, frames, bare[3], x[0].size, p)
            out.append({**row, "pattern": pattern, "dtype": np.dtype(dtype).name, "kernel": kernel,
                        "c_out": c_out, "changed_pixels": float(changed),
                        "dense_dtype": str(torch_dtype).removeprefix("torch.")})
    return out


def _micro_row(net, res, runs, c, hw, activity, frames, n_bare, n_in, path) -> dict:
    """One row of :func:`bench_micro` from the passes ``runs`` of one conv path."""
    t_ev, t_dense, t_bare, t_frame = (min(r[k] for r in runs) / (frames - 1) for k in range(4))
    ratios = [r[1] / r[0] for r in runs]
    cpu_ratios = [r[6] / r[5] for r in runs]
    cpu_event, cpu_dense = (min(r[k] for r in runs) / (frames - 1) for k in (5, 6))
    synops = int(res.stats.synops[1:].sum()) / (frames - 1)
    events = int(res.stats.events[1:].sum()) / (frames - 1)
    macs = int(net.dense_macs()[0])
    syn_rate, mac_rate, bare_rate = synops / t_ev, macs / t_dense, n_bare * 9 * c / t_bare
    return {"channels": c, "hw": list(hw), "activity": activity, "path": path,
            "conv_paths": runs[-1][4], "event_rate": events / n_in,
            "op_reduction": macs / max(synops, 1),
            "speedup": t_dense / t_ev, "speedup_spread": [min(ratios), max(ratios)],
            "speedup_cpu": cpu_dense / cpu_event, "speedup_cpu_spread": [min(cpu_ratios), max(cpu_ratios)],
            "event_cpu_ms": 1e3 * cpu_event, "dense_cpu_ms": 1e3 * cpu_dense,
            "frame_ms": 1e3 * t_frame, "frame_speedup": t_dense / t_frame,
            "bare_gsynops_per_s": bare_rate / 1e9, "bare_efficiency": bare_rate / mac_rate,
            "share_of_bare": syn_rate / bare_rate,
            "event_ms_per_frame": 1e3 * t_ev, "dense_ms": 1e3 * t_dense,
            "gsynops_per_s": syn_rate / 1e9, "dense_gmacs_per_s": mac_rate / 1e9,
            "kernel_efficiency": syn_rate / mac_rate}


#: :func:`fit_costs` prices the scatter's synop at this share of ``C_in`` events per pixel with
#: events (its time per pixel spread over that pixel's synops): the zoo nets' layers ran 0.37-0.99
#: events per touched input, most 0.4-0.6 (:data:`sigmadelta.kernels.FIRST_EVENT_SHARE`)
PIXEL_SHARE = FIT_PIXEL_SHARE


def _scatter_cost(runs: list[tuple[float, float, float]], fan: float, c: int) -> float:
    """ns per synop of the scatter from ``(ns, synops, pixels with events)`` per row: the least
    squares ``ns = a * synops + b * pixels`` (a cost per synop and one per pixel with events),
    priced at :data:`PIXEL_SHARE` ``* c`` events per pixel of ``fan`` synops each:
    ``a + b / (fan * PIXEL_SHARE * c)``. The median of ``ns / synops`` where the rows cannot
    separate the two (fewer than 3, or a negative term)."""
    t, syn, _ = np.array(runs, float).T
    ab = _scatter_fit(runs)
    return float(ab[0] + ab[1] / (fan * PIXEL_SHARE * c)) if ab else float(np.median(t / syn))


def _scatter_fit(runs: list[tuple[float, float, float]]) -> tuple[float, float] | None:
    """``(a, b)`` of the least squares ``ns = a * synops + b * pixels`` over ``(ns, synops,
    pixels with events)`` rows; None where the rows cannot separate them (fewer than 3, or a
    negative term)."""
    t, syn, px = np.array(runs, float).T
    if len(t) < 3:
        return None
    (a, b), *_ = np.linalg.lstsq(np.stack([syn, px], 1), t, rcond=None)
    return (float(a), float(b)) if a > 0 and b >= 0 else None


def fit_pixel_costs(rows: list[dict]) -> dict:
    """The scatter's ns per pixel with events (``b`` of :func:`_scatter_cost`'s fit), from the
    forced-scatter rows of a micro sweep: ``{itemsize: {C: b}}`` where the rows separate it,
    the figure behind ``sigmadelta.kernels.paths.SCATTER_PIXEL_NS``."""
    table: dict = {}
    for r in rows:
        if r["path"] == "scatter":
            ms = r["event_cpu_ms"] if "event_cpu_ms" in r else r["event_ms_per_frame"]
            macs = r["dense_gmacs_per_s"] * r["dense_ms"] * 1e6
            key = (np.dtype(r["dtype"]).itemsize, r["channels"])
            table.setdefault(key, []).append((ms * 1e6, macs / r["op_reduction"], r["changed_pixels"]))
    out: dict = {}
    for (size, c), runs in sorted(table.items()):
        ab = _scatter_fit(runs)
        if ab:
            out.setdefault(size, {})[c] = round(ab[1], 1)
    return out


def fit_costs(rows: list[dict]) -> dict:
    """The chooser's cost model (``sigmadelta.kernels.PATH_COSTS``) from forced-path rows.

    Per dtype item size, channel count and path, from the event layer's time (its thread CPU
    time where the rows have it, else its wall-clock time) per unit of work, in ns: the dense
    recompute per dense multiply-add of the layer and gather-GEMM-scatter per multiply-add of
    its GEMM (``C_in * k*k * C_out`` per changed pixel, ``k`` the row's ``kernel``: every
    changed pixel has events here), each the median over the rows (activities, patterns;
    gather-GEMM-scatter over the whole-pixel rows where there are any: it competes only where
    events come by whole pixels, and there it costs more per multiply-add than where every
    pixel has events: float32, 3x3, C=32, 0.12-0.13 ns against 0.08-0.11, so the median of
    all patterns, 0.09, took it at 47.5% whole pixels where the dense path ran 1.45x as fast); the
    scatter per synop from a cost per synop and one per pixel with events
    (:func:`_scatter_cost`; on a 2-vCPU Intel Xeon VM, float32, 3x3: 0.09-0.13 ns per synop and
    90-130 ns per pixel, so at C=16 a synop costs 0.38 ns at 3.8 events per pixel and 0.20 at
    15; one median over the patterns, 3-61 events per pixel, does not see it). Returns ``{itemsize:
    {C: (scatter, dense, gemm)}}`` (rows of one kernel size: ``PATH_COSTS``, or
    ``PATH_COSTS_1X1`` from 1x1 rows); paths not measured are left out.
    """
    table: dict = {}
    for r in rows:
        ms = r["event_cpu_ms"] if "event_cpu_ms" in r else r["event_ms_per_frame"]
        c, ns, k = r["channels"], ms * 1e6, r.get("kernel", 3)
        c_out = r.get("c_out", c)
        macs = r["dense_gmacs_per_s"] * r["dense_ms"] * 1e6
        work = {"scatter": (macs / r["op_reduction"], r["changed_pixels"]), "dense": (macs,),
                "gemm": (r["changed_pixels"] * c * k**2 * c_out,)}.get(r["path"])
        if work and work[0]:
            key = (np.dtype(r["dtype"]).itemsize, c, k, c_out)
            path = "gemm_pixel" if r["path"] == "gemm" and r.get("pattern") == "pixel" else r["path"]
            table.setdefault(key, {}).setdefault(path, []).append((ns, *work))
    out: dict = {}
    for (size, c, k, c_out), by_path in sorted(table.items()):
        if all(p in by_path for p in ("scatter", "dense")) and ("gemm" in by_path or "gemm_pixel" in by_path):
            scatter = _scatter_cost(by_path["scatter"], k * k * c_out, c)
            dense, gemm = (float(np.median([ns / w for ns, w in by_path[p]]))
                           for p in ("dense", "gemm_pixel" if "gemm_pixel" in by_path else "gemm"))
            out.setdefault(size, {})[c] = tuple(round(v, 4) for v in (scatter, dense, gemm))
    return out


def print_costs(table: dict, name: str = "PATH_COSTS") -> None:
    """The fitted table in the form of ``PATH_COSTS`` (named ``name``)."""
    print(f"{name} = {{")
    for size, by_c in table.items():
        print(f"    {size}: {{" + ", ".join(f"{c}: {v}" for c, v in by_c.items()) + "},")
    print("}")


def plot_micro(rows: list[dict], path: str) -> str:
    """PNG of a micro sweep: wall-clock speedup and kernel efficiency against input activity.

    One panel per change pattern: the event layer's speedup over dense torch (thread CPU
    time, ``speedup_cpu``; the wall clock for rows without it) per channel count, conv path
    and dtype (float64: open markers), beside the op reduction (the speedup
    at efficiency 1), 1x and 0.85x. Last panel: kernel efficiency (first pattern) and the
    bare-scatter ceiling.
    Returns the path written.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    patterns = [pt for pt in PATTERNS if any(r.get("pattern", "neuron") == pt for r in rows)]
    fig, ax = plt.subplots(1, len(patterns) + 1, figsize=(5.5 * (len(patterns) + 1), 4.8))
    colors = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    paths = sorted({r.get("path", "auto") for r in rows})
    marks = {"auto": "o-", "scatter": "x--", "dense": "^-.", "gemm": "s:"}
    dtypes = sorted({r.get("dtype", "float64") for r in rows})  # float32 filled, float64 open
    for k, c in enumerate(sorted({r["channels"] for r in rows})):
        col = colors[k % len(colors)]
        for i, pt in enumerate(patterns):
            for p, dt in itertools.product(paths, dtypes):
                rs = sorted((r for r in rows if r["channels"] == c and r.get("path", "auto") == p
                             and r.get("pattern", "neuron") == pt and r.get("dtype", "float64") == dt),
                            key=lambda r: r["activity"])
                if not rs:
                    continue
                a = [100 * r["event_rate"] for r in rs]
                torch_dt = rs[0].get("dense_dtype", "float32")
                style = {"color": col, "mfc": col if dt == "float32" else "none",
                         "label": f"C={c} {p}" + (f" {dt}" if len(dtypes) > 1 else "")
                         + (f" (torch {torch_dt})" if torch_dt != "float32" else "")}
                ax[i].loglog(a, [r.get("speedup_cpu", r["speedup"]) for r in rs], marks[p], **style)
                if i == 0:
                    ax[-1].semilogx(a, [r["kernel_efficiency"] for r in rs], marks[p], **style)
            ax[i].loglog(a, [r["op_reduction"] for r in rs], ":", color=col, lw=0.8,
                         label=f"C={c} op reduction")
            if i == 0:
                ax[-1].semilogx(a, [r["bare_efficiency"] for r in rs], ":", color=col, lw=0.8,
                                label=f"C={c} bare scatter")
    for i, pt in enumerate(patterns):
        ax[i].axhline(1, color="k", lw=0.8)
        ax[i].axhline(0.85, color="r", lw=0.8, ls="--")
        ax[i].set(xlabel="input neurons that spike per frame (%)", ylabel="torch CPU time / event CPU time",
                  title=f"3x3 conv, one thread, {pt} changes:\nspeedup over torch (red: 0.85x)")
    ax[-1].set(xlabel="input neurons that spike per frame (%)", ylabel="(synops/s) / (dense MACs/s)",
               title=f"kernel efficiency ({patterns[0]} changes)")
    for a in ax:
        a.grid(True, which="both", alpha=0.3)
        a.legend(fontsize=6)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path


def print_micro(rows: list[dict]) -> None:
    """One line per row of :func:`bench_micro`."""
    for m in rows:
        print(f"micro C={m['channels']:3d} {m['hw']} {m['pattern']} events {m['event_rate']:.3f} "
              f"path {m['path']} (frames by path {m['conv_paths']}): speedup "
              f"{m['speedup']:.2f}x (passes {m['speedup_spread'][0]:.2f}-"
              f"{m['speedup_spread'][1]:.2f}x; thread CPU time {m['speedup_cpu']:.2f}x, "
              f"{m['speedup_cpu_spread'][0]:.2f}-{m['speedup_cpu_spread'][1]:.2f}x), "
              f"{m['frame_speedup']:.2f}x with input (op reduction "
              f"{m['op_reduction']:.1f}x); event "
              f"{m['event_ms_per_frame']:.3f} ms/frame {m['gsynops_per_s']:.2f} Gsyn/s; dense "
              f"{m['dense_ms']:.3f} ms {m['dense_gmacs_per_s']:.2f} GMAC/s; "
              f"efficiency {m['kernel_efficiency']:.3f}; bare scatter "
              f"{m['bare_gsynops_per_s']:.2f} Gsyn/s (efficiency ceiling "
              f"{m['bare_efficiency']:.3f}), engine at {m['share_of_bare']:.2f} of it")
