"""Where the first run's compile goes: CPU seconds per compiled function (inclusive).

Runs the small conv net of ``scripts/first_run.py`` once, listening to Numba's compile
events; run it with an empty Numba cache to see the whole compile, e.g.::

    NUMBA_CACHE_DIR=$(mktemp -d) python scripts/compile_times.py

A function's time includes the functions it compiles on the way (its callees), so
``run_frames`` is the total; the list shows the 30 largest.
"""

import os
import time
from collections import defaultdict

import numpy as np
import torch.nn as nn
from numba.core import event

import sigmadelta as sd


class _Times(event.Listener):
    """CPU seconds per compiled function, callees included."""

    def __init__(self):
        self.total: dict[str, float] = defaultdict(float)
        self._open: list[tuple[str, float]] = []

    def on_start(self, e) -> None:
        self._open.append((e.data["dispatcher"].py_func.__qualname__, time.process_time()))

    def on_end(self, e) -> None:
        name, t0 = self._open.pop()
        self.total[name] += time.process_time() - t0


def main() -> None:
    model = nn.Sequential(nn.Conv2d(1, 8, 3, stride=2), nn.ReLU(), nn.Conv2d(8, 8, 3, padding=1),
                          nn.ReLU(), nn.Flatten(), nn.Linear(8 * 7 * 7, 4))
    net = sd.convert(model, (1, 16, 16))
    frames = np.random.default_rng(0).random((5, 1, 16, 16)).astype(np.float32)
    times, cpu = _Times(), time.process_time()
    with event.install_listener("numba:compile", times):
        sd.simulate(net, frames, progress=False)
    print(f"first simulate {time.process_time() - cpu:.1f} s cpu, load {os.getloadavg()[0]:.1f}")
    for name, sec in sorted(times.total.items(), key=lambda kv: -kv[1])[:30]:
        print(f"{sec:7.2f}  {name}")


if __name__ == "__main__":
    main()
