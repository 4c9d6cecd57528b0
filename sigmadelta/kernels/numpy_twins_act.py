"""NumPy twins of the activation kernels of :mod:`.elementwise`, of its residual add by
pixel rows and of the global pooling by rows of :mod:`.pool` (see
:mod:`sigmadelta.kernels.numpy_twins`, which re-exports them; same signatures as the kernels)."""

import math

import numpy as np

from .elementwise import ADD_FULL_ABOVE, CHEAP_MAX, FULL_PASS_ABOVE, ROWS_FULL_ABOVE

__all__ = ["activation_update", "activation_rows", "add_rows", "global_pool_rows"]


def _pointwise(v, fn, alpha, lo, hi):
    v = np.asarray(v, np.float64)
    with np.errstate(over="ignore"):
        sig = 1 / (1 + np.exp(-v))
        sp = np.log1p(np.exp(alpha * v)) / alpha if alpha else v
        sp1 = np.where(v > 20, v, np.log1p(np.exp(v)))
        erf = np.vectorize(math.erf)(v / math.sqrt(2)) if v.size else v
        return {0: lambda: np.maximum(v, 0), 1: lambda: np.where(v > 0, v, alpha * v),
                2: lambda: np.clip(v, lo, hi), 3: lambda: v, 4: lambda: sig, 5: lambda: np.tanh(v),
                6: lambda: 0.5 * v * (1 + erf),
                7: lambda: 0.5 * v * (1 + np.tanh(math.sqrt(2 / math.pi) * (v + 0.044715 * v ** 3))),
                8: lambda: v * sig, 9: lambda: v * np.clip(v + 3, 0, 6) / 6,
                10: lambda: np.clip(v + 3, 0, 6) / 6,
                11: lambda: np.where(v > 0, v, alpha * (np.exp(v) - 1)),
                12: lambda: np.where(alpha * v > hi, v, sp), 13: lambda: v * np.tanh(sp1)}[fn]()


def _check_cheap(fn, smooth):
    if smooth is None and fn > CHEAP_MAX:  # a smooth code the kernel was compiled without
        raise RuntimeError("sigmadelta: a smooth activation in a frame loop compiled without them")


def activation_update(x, y, touched, count, fn, alpha, lo, hi, smooth):
    _check_cheap(fn, smooth)
    idx = touched[: count[0]]
    if fn <= CHEAP_MAX and len(idx) > FULL_PASS_ABOVE * len(x):  # busy: every neuron (y = f(x) holds)
        idx = np.arange(len(x))
    y[idx] = _pointwise(x[idx], fn, alpha, lo, hi)


def activation_rows(x, y, rows, row_count, c, fn, alpha, lo, hi, smooth):
    _check_cheap(fn, smooth)
    idx = (rows[: row_count[0], None] * c + np.arange(c)).ravel()
    if len(idx) == len(x) or (fn <= CHEAP_MAX and len(idx) > ROWS_FULL_ABOVE * len(x)):  # every neuron
        idx = np.arange(len(x))
    y[idx] = _pointwise(x[idx], fn, alpha, lo, hi)


def add_rows(a, b, y, rows_a, count_a, rows_b, count_b, c, rows, row_count, expand, touched, count,
             pstamp, frame):
    ra, rb = rows_a[: count_a[0]], rows_b[: count_b[0]]
    px = np.union1d(ra, rb).astype(np.int64)
    idx = (px[:, None] * c + np.arange(c)).ravel().astype(np.int64)
    busy = (len(ra) + len(rb)) * c > ADD_FULL_ABOVE * len(y)
    done = np.arange(len(y)) if busy else idx
    y[done] = a[done] + b[done]  # busy: every neuron (the engine keeps y = a + b on all)
    pstamp[px] = frame
    rows[: len(px)] = px
    row_count[0] = len(px)
    if expand:
        touched[: len(idx)] = idx
        count[0] = len(idx)


def global_pool_rows(x, row_count, c, is_max, y, touched, count, stamp, frame, acc):
    out = np.zeros(0, np.int64)
    if row_count[0] > 0:
        xs = x.reshape(-1, c).astype(np.float64)
        v = xs.max(0) if is_max else np.array([math.fsum(col) for col in xs.T]) / len(xs)
        out = np.flatnonzero(stamp[:c] != frame)
        y[out] = v[out]
        stamp[out] = frame
    touched[: len(out)] = out
    count[0] = len(out)
