"""The glue after a pixel conv over a stream whose lists switch between the walk of the
listed neurons or pixel rows and the one contiguous pass over the whole map, frame by frame
(the thresholds ``FULL_PASS_ABOVE``, ``ROWS_FULL_ABOVE``, ``ADD_FULL_ABOVE``): the engine's
invariants ``y = f(x)`` and ``y = a + b`` on every neuron, and the union listed, each frame,
against NumPy."""

import numpy as np
import pytest

from sigmadelta import kernels as K
from sigmadelta.kernels.elementwise import ADD_FULL_ABOVE, ROWS_FULL_ABOVE

N_PIX, C = 64, 8
#: the fraction of pixels that change each frame: busy and quiet frames in turn
FRACTIONS = [1.0, 0.05, 0.9, 0.2, 1.0, 0.6, 0.1, 0.95, 0.3, 0.55, 0.02, 0.75]
#: (code, alpha, lo, hi) and NumPy's f: relu, leaky relu (``alpha v`` in double, rounded once), clip
FUNCS = {"relu": ((0, 0.0, 0.0, 0.0), lambda v: np.maximum(v, 0)),
         "leaky": ((1, 0.1, 0.0, 0.0),
                   lambda v: np.where(v > 0, v, (0.1 * v.astype(np.float64)).astype(v.dtype))),
         "clip": ((2, 0.0, -0.5, 0.7), lambda v: np.clip(v, np.float32(-0.5), np.float32(0.7)))}


def _changed(rng, frac, shuffled):
    """Pixels that change this frame (each once), ascending or shuffled, in a list with one spare slot."""
    idx = np.flatnonzero(rng.random(N_PIX) < frac) if frac < 1 else np.arange(N_PIX)
    if shuffled:
        idx = rng.permutation(idx)
    rows = np.zeros(N_PIX + 1, np.int64)
    rows[: len(idx)] = idx
    return rows, np.array([len(idx)], np.int64)


def _neurons(rows, count):
    return (rows[: count[0], None] * C + np.arange(C)).ravel()


@pytest.mark.parametrize("name", sorted(FUNCS))
@pytest.mark.parametrize("shuffled", [False, True])
def test_activation_switching_mid_stream(name, shuffled):
    (fn, alpha, lo, hi), f = FUNCS[name]
    rng = np.random.default_rng(3)
    x = rng.normal(size=N_PIX * C).astype(np.float32)
    y_rows, y_list = f(x), f(x)  # the first frame touches all: y = f(x) everywhere
    full = set()
    for frac in FRACTIONS:
        rows, count = _changed(rng, frac, shuffled)
        idx = _neurons(rows, count)
        x[idx] = rng.normal(size=len(idx)).astype(np.float32)
        touched = np.zeros(N_PIX * C, np.int64)
        touched[: len(idx)] = idx
        K.activation_rows(x, y_rows, rows, count, C, fn, alpha, lo, hi, None)
        K.activation_update(x, y_list, touched, np.array([len(idx)], np.int64), fn, alpha, lo, hi, None)
        np.testing.assert_array_equal(y_rows, f(x))
        np.testing.assert_array_equal(y_list, f(x))
        full.add(len(idx) > ROWS_FULL_ABOVE * len(x))
    assert full == {True, False}  # both variants ran, in turn


@pytest.mark.parametrize("expand", [False, True])
@pytest.mark.parametrize("shuffled", [False, True])
def test_add_switching_mid_stream(expand, shuffled):
    rng = np.random.default_rng(5)
    n = N_PIX * C
    a, b = rng.normal(size=n).astype(np.float32), rng.normal(size=n).astype(np.float32)
    y_rows, y_list = a + b, a + b
    pstamp, stamp = np.full(n, -1, np.int64), np.full(n, -1, np.int64)
    busy = set()
    for t, (fa, fb) in enumerate(zip(FRACTIONS, FRACTIONS[3:] + FRACTIONS[:3], strict=True)):
        ra, na = _changed(rng, fa, shuffled)
        rb, nb = _changed(rng, fb, shuffled)
        ia, ib = _neurons(ra, na), _neurons(rb, nb)
        a[ia] += rng.normal(size=len(ia)).astype(np.float32)
        b[ib] -= rng.normal(size=len(ib)).astype(np.float32)
        out_rows, out_rc = np.zeros(N_PIX + 1, np.int64), np.zeros(1, np.int64)
        out_t, out_c = np.zeros(n, np.int64), np.zeros(1, np.int64)
        K.add_rows(a, b, y_rows, ra, na, rb, nb, C, out_rows, out_rc, expand, out_t, out_c, pstamp, t)
        ta, tb = np.zeros(n, np.int64), np.zeros(n, np.int64)
        ta[: len(ia)], tb[: len(ib)] = ia, ib
        lt, lc = np.zeros(n, np.int64), np.zeros(1, np.int64)
        K.add_update(a, b, y_list, ta, np.array([len(ia)]), tb, np.array([len(ib)]), lt, lc, stamp, t)
        np.testing.assert_array_equal(y_rows, a + b)
        np.testing.assert_array_equal(y_list, a + b)
        union = sorted(set(ra[: na[0]].tolist()) | set(rb[: nb[0]].tolist()))
        assert sorted(out_rows[: out_rc[0]].tolist()) == union
        assert sorted(lt[: lc[0]].tolist()) == _neurons(np.array(union, np.int64), [len(union)]).tolist()
        if expand:  # the neurons of the listed rows, row by row
            np.testing.assert_array_equal(out_t[: out_c[0]], _neurons(out_rows, out_rc))
        busy.add((na[0] + nb[0]) * C > ADD_FULL_ABOVE * n)
    assert busy == {True, False}  # both variants ran, in turn


@pytest.mark.parametrize("lo,hi", [(-0.5, 0.7), (0.0, 6.0), (-1e300, 0.1), (0.3, 1e39)])
def test_clip_pass_in_float32_equals_the_double_clip(lo, hi):
    """The contiguous pass clips float32 values between bounds rounded to float32: the same
    values as clipping in double and rounding once, at and around the bounds too."""
    edges = [np.float32(v) for v in (lo, hi) if abs(v) < 3e38]
    near = [np.nextafter(e, t) for e in edges for t in (-np.inf, np.inf)]
    x = np.array(edges + near + [0.0, -0.0, np.inf, -np.inf, 3e38, -3e38, 1e-3], np.float32)
    y = np.zeros_like(x)
    rows, count = np.arange(len(x) + 1, dtype=np.int64), np.array([len(x)], np.int64)
    K.activation_rows(x, y, rows, count, 1, 2, 0.0, lo, hi, None)
    with np.errstate(over="ignore"):  # a bound beyond float32: rounds to infinity
        want = np.clip(x.astype(np.float64), lo, hi).astype(np.float32)
    np.testing.assert_array_equal(y, want)
