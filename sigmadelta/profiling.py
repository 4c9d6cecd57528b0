"""Per-op timing of a :class:`~sigmadelta.engine.Simulator` built with ``profile=True``.

:func:`run_profiled` runs the compiled loop (:func:`sigmadelta.program.run_frames`) one
op at a time and adds each op's wall-clock seconds to the Simulator's ``node_seconds``
(node ``i``) and ``layer_seconds`` (weight layer ``j``), less the cost of an empty call.
"""

from __future__ import annotations

import time

import numpy as np

from .program import run_frames

__all__ = ["run_profiled", "call_seconds"]


def run_profiled(sim, x: np.ndarray, stats: np.ndarray, out: np.ndarray) -> int:
    """:func:`run_frames` op by op over ``x``, adding each op's wall-clock time to
    ``sim.node_seconds``; returns the frames completed.

    The cost of one empty call (measured once: median of 25) is subtracted from
    every op's time, so that the times are the kernels' own.
    """
    p, clock, n_rows = sim._prog, time.perf_counter, len(sim._prog.code)
    call = call_seconds(sim, x[:1], stats[:1], out[:1])
    for t in range(len(x)):
        for r in range(n_rows):
            t0 = clock()
            done = run_frames(p.code, p.par, p.F, p.I, p.D, x[t:t + 1], sim.frame_no + t, r, r + 1,
                              stats[t:t + 1], out[t:t + 1], p.out_slot if r == n_rows - 1 else -1,
                              sim._status, *sim._flags)
            sim.node_seconds[p.row_op[r]] += max(clock() - t0 - call, 0.0)
            if not done:
                return t
    layer = [k for k, op in enumerate(sim._ops) if any(op is w for w in sim._weight_ops)]
    sim.layer_seconds[:] = sim.node_seconds[layer]
    return len(x)


def call_seconds(sim, x: np.ndarray, stats: np.ndarray, out: np.ndarray) -> float:
    """Median wall-clock seconds of a call of :func:`run_frames` that runs no op (kept in
    ``sim._call``)."""
    if sim._call is None:
        p, times = sim._prog, []
        for _ in range(25):
            t0 = time.perf_counter()
            run_frames(p.code, p.par, p.F, p.I, p.D, x, 1, 0, 0, stats, out, -1, sim._status, *sim._flags)
            times.append(time.perf_counter() - t0)
        sim._call = float(np.median(times))
    return sim._call
