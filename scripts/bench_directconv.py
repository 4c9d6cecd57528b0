"""The dense path's conv kernels against torch's, one conv at a time: A/B in one process.

For each shape (``C_in:C_out:HW:k:stride``, square maps, padding ``k // 2``) and dtype: the
register-blocked direct conv (:func:`sigmadelta.kernels.direct_conv`, every block: ``d1``
16x1, ``d2`` 8x2, ``d4`` 4x4 pixels x vectors; ``*`` marks the one
:func:`sigmadelta.kernels.direct_vectors` picks), im2col + BLAS
(:func:`sigmadelta.kernels.conv_gemm`) and torch's ``F.conv2d`` in float32 (one thread,
denormals flushed), alternating call for call over 4 different inputs (ReLU of normal noise,
weights of unit gain), ``--passes`` times; thread CPU time per call and the ratio
torch / kernel (above 1: faster than torch)::

    python scripts/bench_directconv.py 16:16:64:3:1,32:32:64:3:1,64:64:64:3:1 --passes 5
"""

import argparse
import importlib
import os
import time

import numpy as np
import torch
import torch.nn.functional as F
from threadpoolctl import threadpool_limits

from sigmadelta import kernels as K


def _case(c_in, c_out, hw, k, s, dtype, rng):
    """Padded inputs (channels last, flat), weights, bias, output and im2col scratch."""
    p = k // 2
    ho = (hw + 2 * p - k) // s + 1
    geom = K.make_geom((hw, hw), (ho, ho), (s, s), (p, p), (k, k), c_out)
    frames = [np.maximum(rng.normal(0, 1, (hw, hw, c_in)), 0).astype(dtype) for _ in range(4)]
    padded = []
    for fr in frames:
        P = np.zeros((hw + 2 * p, hw + 2 * p, c_in), dtype)
        P[p:p + hw, p:p + hw] = fr
        padded.append(P.ravel())
    w = (rng.normal(0, 1, (k, k, c_in, c_out)) / np.sqrt(k * k * c_in)).astype(dtype)
    bias = np.tile(rng.normal(0, 0.1, c_out), ho * ho).astype(dtype)  # per channel, as a layer's
    cols = np.zeros(K.gemm_rows(ho * ho, k * k * c_in, np.dtype(dtype).itemsize) * k * k * c_in, dtype)
    tx = [torch.from_numpy(fr.transpose(2, 0, 1)[None].astype(np.float32).copy()) for fr in frames]
    tw = torch.from_numpy(w.transpose(3, 2, 0, 1).astype(np.float32).copy())
    return geom, padded, w, bias, np.zeros(ho * ho * c_out, dtype), cols, tx, tw, p


def bench(shape, dtype, passes, rng) -> dict:
    """Thread CPU ms per call of each kernel on one shape (see module docstring)."""
    c_in, c_out, hw, k, s = shape
    geom, Ps, w, bias, z, cols, tx, tw, p = _case(c_in, c_out, hw, k, s, dtype, rng)
    chosen = K.direct_vectors(geom, c_in, np.dtype(dtype).itemsize)
    fns = {"torch": lambda i: F.conv2d(tx[i], tw, padding=p, stride=s),
           "gemm": lambda i: K.conv_gemm(Ps[i], w, z, bias, True, cols, geom, c_in)}
    for nv in (1, 2, 4):
        fns[f"d{nv}" + "*" * (nv == chosen)] = (
            lambda i, nv=nv: K.direct_conv(Ps[i], w, z, bias, True, geom, c_in, nv))
    for f in fns.values():
        f(0)  # compile
    threadpool_limits(1)  # the BLAS loaded by the compile included
    cpu = dict.fromkeys(fns, 0.0)
    for _ in range(passes):
        for name, f in fns.items():
            for i in range(len(Ps)):
                t0 = time.thread_time()
                f(i)
                cpu[name] += time.thread_time() - t0
    return {name: 1e3 * t / (passes * len(Ps)) for name, t in cpu.items()}


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("shapes", help="C_in:C_out:HW:k:stride, comma separated")
    ap.add_argument("--dtype", default="float32,float64")
    ap.add_argument("--passes", type=int, default=5)
    args = ap.parse_args(argv)
    torch.set_num_threads(1)
    torch.set_flush_denormal(True)
    importlib.import_module("scipy.linalg.cython_blas")
    rng = np.random.default_rng(0)
    for text in args.shapes.split(","):
        shape = tuple(int(v) for v in text.split(":"))
        for dt in args.dtype.split(","):
            ms = bench(shape, np.dtype(dt), args.passes, rng)
            line = " ".join(f"{n} {v:.3f} ms ({ms['torch'] / v:.2f}x)" for n, v in ms.items())
            print(f"{text} {dt}: {line}", flush=True)
    print("load average", " ".join(f"{v:.1f}" for v in os.getloadavg()))


if __name__ == "__main__":
    main()
