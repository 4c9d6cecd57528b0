"""Time the first sd.simulate of a small conv net (what a fresh clone's first run compiles).

Run with an empty Numba cache to measure the compile, e.g.::

    NUMBA_CACHE_DIR=$(mktemp -d) python scripts/first_run.py

Prints wall and CPU seconds (CPU time varies less on a shared machine) and the load average.
"""

import os
import time

import numpy as np
import torch.nn as nn

import sigmadelta as sd


def main() -> None:
    model = nn.Sequential(nn.Conv2d(1, 8, 3, stride=2), nn.ReLU(), nn.Conv2d(8, 8, 3, padding=1),
                          nn.ReLU(), nn.Flatten(), nn.Linear(8 * 7 * 7, 4))
    net = sd.convert(model, (1, 16, 16))
    frames = np.random.default_rng(0).random((5, 1, 16, 16)).astype(np.float32)
    wall, cpu = time.perf_counter(), time.process_time()
    sd.simulate(net, frames)
    print(f"first simulate {time.perf_counter() - wall:.1f} s wall, {time.process_time() - cpu:.1f} s "
          f"cpu, load {os.getloadavg()[0]:.1f}")


if __name__ == "__main__":
    main()
