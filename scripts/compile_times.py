"""Where the first run's compile goes: CPU seconds per compiled function, or per loop flag.

Runs the small conv net of ``scripts/first_run.py`` once, listening to Numba's compile
events; run it with an empty Numba cache to see the whole compile, e.g.::

    NUMBA_CACHE_DIR=$(mktemp -d) python scripts/compile_times.py

Each function's CPU seconds with its callees (``run_frames`` is the total) and without
them (its own typing, lowering and LLVM; its module links its callees' code in and
optimises it again), the 30 largest.

``--flags``: the compile of the frame loop alone (``run_frames``, no frame run) for that
net's arguments with the flags ``floats pix dense`` (its own weight layers, without the
conv paths ``gemm`` and ``recompute``), with ``pix`` or ``dense`` left out, and with each
other flag of :data:`sigmadelta.program.FLAG_NAMES` added, each in a new process with an
empty cache: the figures behind :data:`sigmadelta.program.COMPILE_SECONDS`.
"""

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from collections import defaultdict

import numpy as np
import torch.nn as nn
from numba.core import event

import sigmadelta as sd


class _Times(event.Listener):
    """CPU seconds per compiled function, with and without its callees."""

    def __init__(self):
        self.total: dict[str, float] = defaultdict(float)
        self.own: dict[str, float] = defaultdict(float)
        self._open: list[list] = []  # [name, start, seconds of callees]

    def on_start(self, e) -> None:
        self._open.append([e.data["dispatcher"].py_func.__qualname__, time.process_time(), 0.0])

    def on_end(self, e) -> None:
        name, t0, inner = self._open.pop()
        sec = time.process_time() - t0
        self.total[name] += sec
        self.own[name] += sec - inner
        if self._open:
            self._open[-1][2] += sec


def _net() -> tuple:
    model = nn.Sequential(nn.Conv2d(1, 8, 3, stride=2), nn.ReLU(), nn.Conv2d(8, 8, 3, padding=1),
                          nn.ReLU(), nn.Flatten(), nn.Linear(8 * 7 * 7, 4))
    frames = np.random.default_rng(0).random((5, 1, 16, 16)).astype(np.float32)
    return sd.convert(model, (1, 16, 16)), frames


def _loop_seconds(names: list[str]) -> float:
    """CPU seconds to compile run_frames for the net's arguments with the flags ``names`` set."""
    from sigmadelta import program as P

    net, frames = _net()
    sim = sd.Simulator(net)
    p, t = sim._prog, len(frames)
    args = (p.code, p.par, p.F, p.I, p.D, frames.reshape(t, -1).astype(np.float64), 0, 0, len(p.code),
            np.zeros((t, 4, len(sim._weight_ops))), np.zeros((t, sim._n_out)), p.out_slot,
            np.zeros(2, np.int64))
    flags = tuple(1 if n in names else None for n in P.FLAG_NAMES)
    sig = tuple(P.run_frames.typeof_pyval(a) for a in args + flags)
    cpu = time.process_time()
    P.run_frames.compile(sig)
    return time.process_time() - cpu


def _per_flag() -> None:
    from sigmadelta import program as P

    ref = ["floats", "pix", "dense"]  # the net's own weight kinds, without gemm and recompute
    configs = {"floats pix dense": ref, "without pix": ["floats", "dense"],
               "without dense": ["floats", "pix"]}
    configs |= {f"+{n}": ref + [n] for n in P.FLAG_NAMES if n not in ref}
    base = None
    for label, names in configs.items():
        env = dict(os.environ, NUMBA_CACHE_DIR=tempfile.mkdtemp())
        out = subprocess.run([sys.executable, __file__, "--loop", json.dumps(names)], env=env,
                             capture_output=True, text=True, check=True).stdout
        sec = float(out.split()[-1])
        base = sec if base is None else base
        print(f"{label:>18}: {sec:5.1f} s cpu, {sec - base:+5.1f} against the first, load "
              f"{os.getloadavg()[0]:.1f}", flush=True)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--flags", action="store_true", help="the loop's compile per flag (subprocesses)")
    ap.add_argument("--loop", help=argparse.SUPPRESS)  # one subprocess of --flags: JSON flag names
    a = ap.parse_args()
    if a.loop is not None:
        print(f"{_loop_seconds(json.loads(a.loop)):.2f}")
        return
    if a.flags:
        _per_flag()
        return
    net, frames = _net()
    times, cpu = _Times(), time.process_time()
    with event.install_listener("numba:compile", times):
        sd.simulate(net, frames, progress=False)
    print(f"first simulate {time.process_time() - cpu:.1f} s cpu, load {os.getloadavg()[0]:.1f}")
    print("  with callees   own  function")
    for name, sec in sorted(times.total.items(), key=lambda kv: -kv[1])[:30]:
        print(f"{sec:14.2f} {times.own[name]:5.2f}  {name}")


if __name__ == "__main__":
    main()
