"""The cost of ``blas_threads``: the same run with BLAS held at 1 thread and left alone.

Usage::

    python scripts/blas_threads_bench.py --net face_detector --frames 60    # carphone, 144x176
    python scripts/blas_threads_bench.py --net resnet18 --frames 30         # the zoo's, bikes 64x64

Both settings alternate in one process (``--repeats`` passes each, after a warm-up pass of
each). Per setting: the best wall-clock seconds of a pass, the calling thread's CPU seconds
(``time.thread_time``) and the process's (``time.process_time``: BLAS's own threads too),
and the conv paths the layers took. The outputs of both settings are compared.
"""

from __future__ import annotations

import argparse
import time

import numpy as np

import sigmadelta as sd


def network_and_frames(name: str, n: int):
    """face_detector at its operating point on carphone, or a zoo network on bikes at 64x64."""
    from sigmadelta.datasets import open_source

    if name == "face_detector":
        from sigmadelta.models import load_pretrained, pretrained_info

        info = pretrained_info(name)
        net = sd.convert(load_pretrained(name), tuple(info["input_shape"]),
                         scale=info["operating_point"]["scales"])
        return net, np.stack(list(open_source("carphone", limit=n))).astype(np.float32)
    from _netzoo import SHAPE, zoo_model

    calib = np.stack(list(open_source("bigbuckbunny", size=(64, 64), gray=False, limit=16)))
    net = sd.convert(zoo_model(name, calib), SHAPE, scale=32.0)
    frames = np.stack(list(open_source("bikes", size=(64, 64), gray=False, limit=n)))
    return net, frames.astype(np.float32)


def one_pass(net, frames, blas_threads) -> tuple[float, float, float, np.ndarray, dict]:
    """Wall, calling-thread CPU and process CPU seconds of one run, its outputs and paths."""
    sim = sd.Simulator(net, blas_threads=blas_threads)
    w, c, p = time.perf_counter(), time.thread_time(), time.process_time()
    out = sim.run(frames, progress=False).outputs
    return (time.perf_counter() - w, time.thread_time() - c, time.process_time() - p, out,
            sim.conv_paths)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--net", default="face_detector", help="face_detector or a zoo network")
    ap.add_argument("--frames", type=int, default=60)
    ap.add_argument("--repeats", type=int, default=3)
    args = ap.parse_args()
    net, frames = network_and_frames(args.net, args.frames)
    settings = {"1": 1, "None": None}
    best: dict[str, tuple] = {}
    for rep in range(args.repeats + 1):  # pass 0 warms up (compiles, loads BLAS)
        for key, value in settings.items():
            r = one_pass(net, frames, value)
            if rep and (key not in best or r[0] < best[key][0]):
                best[key] = r
    for key, (wall, cpu, proc, _, paths) in best.items():
        dense = sum(p["dense"] + p["gemm"] for p in paths.values())
        print(f"blas_threads={key:>4}: {wall:.3f} s wall, {cpu:.3f} s thread CPU, {proc:.3f} s process "
              f"CPU ({len(frames)} frames; dense/gemm layer-frames {dense})")
    same = np.allclose(best["1"][3], best["None"][3], rtol=1e-9, atol=1e-12)
    print(f"wall None/1: {best['None'][0] / best['1'][0]:.2f}x; process CPU None/1: "
          f"{best['None'][2] / best['1'][2]:.2f}x; outputs equal to rounding: {same}")


if __name__ == "__main__":
    main()
