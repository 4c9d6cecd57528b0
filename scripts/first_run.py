"""Time the first sd.simulate of a small conv net (what a fresh clone's first run compiles).

Run with an empty Numba cache to measure the compile, e.g.::

    NUMBA_CACHE_DIR=$(mktemp -d) python scripts/first_run.py

Prints wall and CPU seconds (CPU time varies less on a shared machine) and the load average.
``--strided``: the second conv at stride 2, where no layer can take gather-GEMM-scatter
(``sigmadelta.kernels.gemm_may_win``), so the loop compiles without it.
"""

import argparse
import os
import time

import numpy as np
import torch.nn as nn

import sigmadelta as sd


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--strided", action="store_true", help="second conv at stride 2 (no GEMM path)")
    stride = 2 if ap.parse_args().strided else 1
    side = 7 if stride == 1 else 4  # the second conv's output (padding 1)
    model = nn.Sequential(nn.Conv2d(1, 8, 3, stride=2), nn.ReLU(), nn.Conv2d(8, 8, 3, stride, padding=1),
                          nn.ReLU(), nn.Flatten(), nn.Linear(8 * side * side, 4))
    net = sd.convert(model, (1, 16, 16))
    frames = np.random.default_rng(0).random((5, 1, 16, 16)).astype(np.float32)
    wall, cpu = time.perf_counter(), time.process_time()
    sd.simulate(net, frames)
    print(f"first simulate {time.perf_counter() - wall:.1f} s wall, {time.process_time() - cpu:.1f} s "
          f"cpu, load {os.getloadavg()[0]:.1f}")


if __name__ == "__main__":
    main()
