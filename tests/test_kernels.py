"""Every Numba kernel against its slow NumPy twin, on random inputs (the pixel-conv path and
the spike map: tests/test_kernels_pixel.py)."""

import numpy as np
import pytest
from _twins import both as _both
from _twins import listed as _listed
from _twins import touched_list as _touched
from hypothesis import given, settings
from hypothesis import strategies as st

from sigmadelta import kernels as K
from sigmadelta.kernels import numpy_twins as T


def test_mark_changed_and_touch_all():
    rng = np.random.default_rng(0)
    value = rng.random(50)
    new = value.copy()
    new[[3, 7, 20]] += 0.5
    ra, a, rb, b = _both("mark_changed", value, new, np.zeros(50, np.int64), np.zeros(1, np.int64))
    assert _listed(a[2], a[3]) == _listed(b[2], b[3]) == [3, 7, 20]
    np.testing.assert_array_equal(a[0], new)
    t, c = np.zeros(9, np.int64), np.zeros(1, np.int64)
    K.touch_all(t, c)
    assert _listed(t, c) == list(range(9))


@settings(max_examples=25, deadline=None)
@given(st.integers(0, 2**31), st.floats(0.5, 200))
def test_herding_encode(seed, k):
    rng = np.random.default_rng(seed)
    n = 40
    x = rng.normal(0, 1, n)
    total = np.rint(k * rng.normal(0, 1, n))
    touched, count = _touched(rng, n)
    args = (x, touched, count, total, k, np.zeros(n, np.int64), np.zeros(n))
    na, a, nb, b = _both("herding_encode", *args)
    assert na == nb
    np.testing.assert_array_equal(a[3], b[3])
    np.testing.assert_array_equal(a[5][:na], b[5][:nb])
    np.testing.assert_array_equal(a[6][:na], b[6][:nb])
    # the paper's algebra: after encoding, the running sum equals round(k*x) on touched neurons
    idx = touched[: count[0]]
    np.testing.assert_array_equal(a[3][idx], np.rint(k * x[idx]))


@settings(max_examples=25, deadline=None)
@given(st.integers(0, 2**31), st.floats(0.0, 1.0))
def test_threshold_encode(seed, thr):
    rng = np.random.default_rng(seed)
    n = 40
    x, sent = rng.normal(0, 1, n), rng.normal(0, 1, n)
    touched, count = _touched(rng, n)
    na, a, nb, b = _both("threshold_encode", x, touched, count, sent, thr, np.zeros(n, np.int64),
                         np.zeros(n))
    assert na == nb
    np.testing.assert_array_equal(a[3], b[3])
    np.testing.assert_array_equal(a[6][:na], b[6][:nb])
    assert np.all(np.abs(a[6][:na]) >= thr)


@settings(max_examples=25, deadline=None)
@given(st.integers(0, 2**31), st.sampled_from([0.0, 1.0, 4096.0, 12288.0]), st.sampled_from([1.0, 4096.0]))
def test_lava_encode(seed, thr, k):
    rng = np.random.default_rng(seed)
    n = 40
    x = rng.integers(-300, 300, n).astype(np.float64)
    sent = k * rng.integers(-300, 300, n).astype(np.float64)
    touched, count = _touched(rng, n)
    na, a, nb, b = _both("lava_encode", x, touched, count, sent, k, thr, 6, np.zeros(n, np.int64),
                         np.zeros(n))
    assert na == nb
    np.testing.assert_array_equal(a[3], b[3])
    np.testing.assert_array_equal(a[7][:na], b[7][:nb])
    np.testing.assert_array_equal(a[8][:na], b[8][:nb])
    sent_idx = a[7][:na]
    np.testing.assert_array_equal(a[3][sent_idx], k * x[sent_idx])  # sent neurons now hold a


def test_dense_scatter():
    rng = np.random.default_rng(1)
    w_t = rng.normal(size=(30, 7))
    ev_idx = rng.choice(30, 10, replace=False).astype(np.int64)
    ev_val = rng.integers(-3, 4, 10).astype(float)
    ra, a, rb, b = _both("dense_scatter", ev_idx, ev_val, 10, 0.25, w_t, rng.normal(size=7))
    assert ra[0] == rb[0] == 70
    assert ra[1] == pytest.approx(rb[1])
    np.testing.assert_allclose(a[5], b[5], rtol=1e-12)


@pytest.mark.parametrize("geom", [
    # (h, w, c_in, c_out, k, stride, padding, dilation, groups)
    (7, 9, 4, 6, 3, (1, 1), (1, 1), (1, 1), 1),
    (8, 8, 4, 4, 3, (2, 2), (1, 0), (1, 1), 2),
    (9, 7, 6, 6, 3, (1, 2), (2, 2), (2, 1), 6),   # depthwise, dilated
    (6, 6, 3, 5, 1, (1, 1), (0, 0), (1, 1), 1),
    (10, 10, 2, 3, 5, (3, 3), (2, 2), (1, 1), 1),
    (8, 9, 5, 5, 3, (2, 2), (1, 1), (1, 1), 5),   # depthwise, stride 2
])
@pytest.mark.parametrize("ordered", [False, True])  # by pixel, as the encoders list them, or not
def test_conv_scatter(geom, ordered):
    h, w, c_in, c_out, k, stride, padding, dilation, groups = geom
    rng = np.random.default_rng(2)
    h_out = (h + 2 * padding[0] - dilation[0] * (k - 1) - 1) // stride[0] + 1
    w_out = (w + 2 * padding[1] - dilation[1] * (k - 1) - 1) // stride[1] + 1
    cg = c_out // groups
    w_cl = rng.normal(size=(k, k, c_in, cg))
    n_ev = 25
    ev_idx = rng.choice(h * w * c_in, n_ev, replace=False).astype(np.int64)
    if ordered:
        ev_idx.sort()
    ev_val = rng.normal(size=n_ev)
    n_pg = h_out * w_out * groups
    args = (ev_idx, ev_val, n_ev, 0.5, w_cl, rng.normal(size=h_out * w_out * c_out),
            np.array([h, w]), np.array([h_out, w_out]), np.array(stride), np.array(padding),
            np.array(dilation), groups, np.zeros(n_pg, np.int64), np.zeros(1, np.int64),
            np.full(n_pg, -1, np.int64), 3)
    ra, a, rb, b = _both("conv_scatter", *args)
    assert ra[0] == rb[0]
    assert ra[1] == pytest.approx(rb[1])
    np.testing.assert_allclose(a[5], b[5], rtol=1e-12, atol=1e-12)
    assert _listed(a[12], a[13]) == _listed(b[12], b[13])
    # expand the listed (pixel, group) pairs into neurons
    ta, ca = np.zeros(h_out * w_out * c_out, np.int64), np.zeros(1, np.int64)
    tb, cb = ta.copy(), ca.copy()
    K.expand_pixel_groups(a[12], a[13], groups, cg, ta, ca)
    T.expand_pixel_groups(b[12], b[13], groups, cg, tb, cb)
    assert _listed(ta, ca) == _listed(tb, cb)


def _all_touched(rng, n):
    """Every neuron touched, in a shuffled order (the kernels' contiguous busy path)."""
    return rng.permutation(n).astype(np.int64), np.array([n], np.int64)


@pytest.mark.parametrize("fn,alpha,lo,hi", [(0, 0, 0, 0), (1, 0.1, 0, 0), (2, 0, -0.5, 0.7), (3, 0, 0, 0),
                                            (9, 0, 0, 0)])
@pytest.mark.parametrize("busy", [False, True])
@pytest.mark.parametrize("smooth", [None, 1])
def test_activation_update(fn, alpha, lo, hi, busy, smooth):
    """With ``smooth`` None (the smooth codes compiled out) a cheap code runs the same, a smooth
    one raises, in the kernel and its twin."""
    rng = np.random.default_rng(3)
    x, y = rng.normal(size=20), rng.normal(size=20)
    touched, count = (_all_touched if busy else _touched)(rng, 20)
    if smooth is None and fn > K.CHEAP_MAX:
        for mod in (K, T):
            with pytest.raises(RuntimeError, match="compiled without"):
                mod.activation_update(x, y, touched, count, fn, alpha, lo, hi, smooth)
        return
    _, a, _, b = _both("activation_update", x, y, touched, count, fn, alpha, lo, hi, smooth)
    np.testing.assert_array_equal(a[1], b[1])


@pytest.mark.parametrize("busy", ["", "a", "b"])
def test_add_update(busy):
    rng = np.random.default_rng(4)
    ta, ca = (_all_touched if busy == "a" else _touched)(rng, 30)
    tb, cb = (_all_touched if busy == "b" else _touched)(rng, 30)
    args = (rng.normal(size=30), rng.normal(size=30), rng.normal(size=30), ta, ca, tb, cb,
            np.zeros(30, np.int64), np.zeros(1, np.int64), np.full(30, -1, np.int64), 0)
    _, a, _, b = _both("add_update", *args)
    np.testing.assert_array_equal(a[2], b[2])
    assert _listed(a[7], a[8]) == _listed(b[7], b[8])


def test_concat_and_flatten_update():
    rng = np.random.default_rng(5)
    hw, c_in, c_out, off = 6, 3, 8, 2
    x = rng.normal(size=hw * c_in)
    t, c = _touched(rng, hw * c_in)
    args = (x, t, c, c_in, off, c_out, np.zeros(hw * c_out), np.zeros(hw * c_out, np.int64),
            np.array([0], np.int64))
    _, a, _, b = _both("concat_update", *args)
    np.testing.assert_array_equal(a[6], b[6])
    assert _listed(a[7], a[8]) == _listed(b[7], b[8])
    args = (x, t, c, hw, c_in, np.zeros(hw * c_in), np.zeros(hw * c_in, np.int64),
            np.zeros(1, np.int64))
    _, a, _, b = _both("flatten_update", *args)
    np.testing.assert_array_equal(a[5], b[5])
    assert a[7][0] == b[7][0]
    np.testing.assert_array_equal(a[6][: a[7][0]], b[6][: b[7][0]])  # same list, same order
    # flatten is PyTorch's channels-first order of the channels-last input
    full = np.zeros(hw * c_in)
    K.flatten_update(x, np.arange(hw * c_in), np.array([hw * c_in]), hw, c_in, full,
                     np.zeros(hw * c_in, np.int64), np.zeros(1, np.int64))
    np.testing.assert_array_equal(full, x.reshape(hw, c_in).T.ravel())


def _check_pool(rng, h, w, c, kernel, stride, padding, is_max, t, cnt):
    """pool_update against its twin; returns the kernel's output list in its own order."""
    h_out = (h + 2 * padding[0] - kernel[0]) // stride[0] + 1
    w_out = (w + 2 * padding[1] - kernel[1]) // stride[1] + 1
    n_out = h_out * w_out * c
    args = (rng.normal(size=h * w * c), t, cnt, np.array([h, w]), c, np.array([h_out, w_out]),
            np.array(kernel), np.array(stride), np.array(padding), is_max, np.zeros(n_out),
            np.zeros(n_out, np.int64), np.zeros(1, np.int64), np.full(n_out, -1, np.int64), 1,
            np.zeros(h * w * c, np.uint8))
    _, a, _, b = _both("pool_update", *args)
    assert not a[15].any()  # the mask is left clear for the next frame
    np.testing.assert_allclose(a[10], b[10], rtol=1e-12)
    assert _listed(a[11], a[12]) == _listed(b[11], b[12])
    np.testing.assert_array_equal(a[13], b[13])
    return a[11][: a[12][0]]


_POOL_GEOMS = [((2, 2), (2, 2), (0, 0)), ((3, 3), (2, 1), (1, 1)), ((7, 5), (7, 5), (0, 0)),
               ((2, 3), (3, 2), (1, 0))]
_GLOBAL_POOL = ((16, 18), (16, 18), (0, 0))  # the whole 16x18 map


@pytest.mark.parametrize("is_max", [True, False])
@pytest.mark.parametrize("kernel,stride,padding", _POOL_GEOMS)
def test_pool_update(is_max, kernel, stride, padding):
    rng = np.random.default_rng(6)
    h, w, c = 7, 5, 3
    t, cnt = _touched(rng, h * w * c, 0.2)
    _check_pool(rng, h, w, c, kernel, stride, padding, is_max, t, cnt)


@pytest.mark.parametrize("is_max", [True, False])
@pytest.mark.parametrize("c", [1, 3, 19])  # 19: eight channels at a time, then three (SCAN_CHANNELS_FROM)
@pytest.mark.parametrize("kernel,stride,padding", _POOL_GEOMS[:2] + _POOL_GEOMS[3:] + [_GLOBAL_POOL])
@pytest.mark.parametrize("frac,shuffle", [(0.98, False), (0.3, True), (0.01, True)])
def test_pool_update_dense_and_sparse(is_max, c, kernel, stride, padding, frac, shuffle):
    """Nearly every input touched in ascending order (the video case), a shuffled dense list, and a
    sparse shuffled one; dense lists come out ascending."""
    rng = np.random.default_rng(7)
    h, w = 16, 18
    t, cnt = _touched(rng, h * w * c, frac)
    if shuffle:
        rng.shuffle(t[: cnt[0]])
    out = _check_pool(rng, h, w, c, kernel, stride, padding, is_max, t, cnt)
    if frac > 0.1:
        assert np.all(np.diff(out) > 0)


@pytest.mark.parametrize("is_max", [True, False])
@pytest.mark.parametrize("kernel,stride,padding", _POOL_GEOMS + [_GLOBAL_POOL])
def test_pool_scan_by_channel_blocks_is_bit_identical(is_max, kernel, stride, padding):
    """The blocked scan (eight channels in registers) against the per-channel scan, float32:
    same values bit for bit (same order of taps per channel), same list and stamps."""
    from sigmadelta.kernels.pool import _scan, _scan_channels

    rng = np.random.default_rng(8)
    h, w, c = 16, 18, 19
    h_out = (h + 2 * padding[0] - kernel[0]) // stride[0] + 1
    w_out = (w + 2 * padding[1] - kernel[1]) // stride[1] + 1
    x = rng.normal(size=h * w * c).astype(np.float32)
    hit = (rng.random(h * w * c) < 0.1).astype(np.uint8)
    outs = []
    for scan in (_scan, _scan_channels):
        n_out = h_out * w_out * c
        y, t, st = np.zeros(n_out, np.float32), np.zeros(n_out, np.int64), np.full(n_out, -1, np.int64)
        n = scan(x, hit, h, w, c, h_out, w_out, np.array(kernel), np.array(stride), np.array(padding),
                 is_max, y, t, st, 1)
        outs.append((y, t[:n], st))
    for a, b in zip(*outs, strict=True):
        np.testing.assert_array_equal(a, b)
    assert 0 < len(outs[0][1]) < h_out * w_out * c or kernel == (16, 18)


@pytest.mark.parametrize("is_max", [True, False])
@pytest.mark.parametrize("c", [1, 3])
def test_pool_scan_2x2_is_bit_identical(is_max, c):
    """The branchless 2x2 scan against the general scan, float32, some outputs already stamped
    this frame and some windows without a hit: same values (old ones kept), list and stamps."""
    from sigmadelta.kernels.pool import _scan, _scan_2x2

    rng = np.random.default_rng(9)
    h, w, h_out, w_out = 12, 10, 6, 5
    x = rng.normal(size=h * w * c).astype(np.float32)
    hit = (rng.random(h * w * c) < 0.2).astype(np.uint8)
    n_out = h_out * w_out * c
    y0 = rng.normal(size=n_out).astype(np.float32)
    st0 = np.where(rng.random(n_out) < 0.2, 1, -1).astype(np.int64)
    outs = []
    for scan in ("general", "2x2"):
        y, t, st = y0.copy(), np.zeros(n_out, np.int64), st0.copy()
        if scan == "general":
            two = np.array([2, 2])
            n = _scan(x, hit, h, w, c, h_out, w_out, two, two, np.array([0, 0]), is_max, y, t, st, 1)
        else:
            n = _scan_2x2(x, hit, w, c, h_out, w_out, is_max, y, t, st, 1)
        outs.append((y, t[:n], st))
    for a, b in zip(*outs, strict=True):
        np.testing.assert_array_equal(a, b)
    assert 0 < len(outs[0][1]) < n_out and np.any(outs[0][0] == y0) and np.any(outs[0][0] != y0)


@pytest.mark.parametrize("fn,alpha,lo,hi", [(0, 0, 0, 0), (1, 0.1, 0, 0), (2, 0, -0.5, 0.7), (3, 0, 0, 0)])
@pytest.mark.parametrize("smooth", [None, 1])
def test_activation_rows(fn, alpha, lo, hi, smooth):
    rng = np.random.default_rng(14)
    x, y = rng.normal(size=300), rng.normal(size=300)
    rows = np.array([0, 3, 4, 9], np.int64)  # 3 of 100 pixels listed: under FULL_PASS_ABOVE
    assert 3 * 3 <= K.FULL_PASS_ABOVE * len(x)
    _, a, _, b = _both("activation_rows", x, y, rows, np.array([3]), 3, fn, alpha, lo, hi, smooth)
    np.testing.assert_array_equal(a[1], b[1])
    assert np.array_equal(a[1][27:], y[27:])  # pixel 9 is not listed (row_count 3)
    assert np.array_equal(a[1][:3], T._pointwise(x[:3], fn, alpha, lo, hi))


@pytest.mark.parametrize("fn,alpha,lo,hi", [(0, 0, 0, 0), (2, 0, -0.5, 0.7), (5, 0, 0, 0)])
def test_activation_rows_busy(fn, alpha, lo, hi):
    """Most pixels listed: a cheap f runs over every neuron (the engine keeps y = f(x), so the
    unlisted ones keep their value); another f only on the listed rows."""
    rng = np.random.default_rng(15)
    x = rng.normal(size=60)
    y = T._pointwise(x, fn, alpha, lo, hi)
    x[:57] = rng.normal(size=57)  # pixels 0-18 of 3 channels change and are listed
    rows = np.arange(20, dtype=np.int64)
    _, a, _, b = _both("activation_rows", x, y, rows, np.array([19]), 3, fn, alpha, lo, hi, 1)
    np.testing.assert_allclose(a[1], b[1], rtol=1e-12)
    np.testing.assert_allclose(a[1], T._pointwise(x, fn, alpha, lo, hi), rtol=1e-12)


@pytest.mark.parametrize("fn,alpha,lo,hi", [(0, 0, 0, 0), (2, 0, -0.5, 0.7), (3, 0, 0, 0)])
@pytest.mark.parametrize("smooth", [None, 1])
def test_activation_rows_whole_map(fn, alpha, lo, hi, smooth):
    """Rows that cover every pixel (in any order), or most of them, take one contiguous pass:
    the listed neurons get f(x), the others keep y = f(x) (the engine's invariant)."""
    rng = np.random.default_rng(15)
    x = rng.normal(size=30)
    y = np.zeros(30)
    K.activation_update(x, y, np.arange(30), np.array([30]), fn, alpha, lo, hi, 1)  # y = f(x)
    for n in (10, 8):
        rows = rng.permutation(10)[:n].astype(np.int64)
        x[rows * 3 + 1] += rng.normal(size=n)  # the listed pixels change
        _, a, _, b = _both("activation_rows", x, y, rows, np.array([n]), 3, fn, alpha, lo, hi, smooth)
        np.testing.assert_array_equal(a[1], b[1])
        y = b[1]


def test_herding_encode_units():
    rng = np.random.default_rng(9)
    n = 40
    x, k = rng.normal(size=n), rng.uniform(0.5, 50, n)
    total = np.rint(k * rng.normal(size=n))
    touched, count = _touched(rng, n)
    args = (x, touched, count, total, k, rng.integers(1, 9, n).astype(float), np.zeros(n, np.int64),
            np.zeros(n))
    ra, a, rb, b = _both("herding_encode_units", *args)
    assert ra[0] == rb[0] and ra[1] == pytest.approx(rb[1])
    np.testing.assert_array_equal(a[3], b[3])
    np.testing.assert_allclose(a[7][:ra[0]], b[7][:rb[0]])


@pytest.mark.parametrize("dtype", [np.float32, np.float64, np.int64])
def test_simd_row_update_is_the_scalar_update(dtype):
    """vload / vmul_add / vstore give bit for bit the scalar z + s * w (separate roundings)."""
    from numba import njit

    from sigmadelta.kernels.simd import lanes, vload, vmul_add, vstore

    @njit
    def update(z, s, w, zb, wb, n):
        step = lanes(z.itemsize)
        for o in range(0, n - n % step, step):
            vstore(z, zb + o, vmul_add(vload(z, zb + o), s, w, wb + o))

    rng = np.random.default_rng(0)
    z, w = (rng.normal(size=40) * 7).astype(dtype), (rng.normal(size=40) * 7).astype(dtype)
    s = dtype(3) if dtype == np.int64 else dtype(0.3)
    n = 3 * (32 // np.dtype(dtype).itemsize)
    want = z.copy()
    want[2:2 + n] = want[2:2 + n] + s * w[5:5 + n]
    update(z, s, w, 2, 5, n)
    np.testing.assert_array_equal(z, want)


@pytest.mark.parametrize("dtype", [np.float32, np.float64, np.int64])
def test_simd_wide_vector_product_is_the_scalar_update(dtype):
    """wzero / wmul_add_vv / wstore give bit for bit the scalar ``acc + a[i] * b[j]`` (separate
    roundings), as vmul_add_vv does on narrow vectors."""
    from numba import njit

    from sigmadelta.kernels.simd import wlanes, wmul_add_vv, wstore, wzero

    @njit
    def taps(z, a, b, n_taps):
        step = wlanes(z.itemsize)
        for o in range(0, z.shape[0], step):
            acc = wzero(z)
            for t in range(n_taps):
                acc = wmul_add_vv(acc, a, o + 3 * t, b, o + t)
            wstore(z, o, acc)

    rng = np.random.default_rng(2)
    n, n_taps = 4 * (64 // np.dtype(dtype).itemsize), 5
    a, b = ((rng.normal(size=n + 3 * n_taps) * 7).astype(dtype),
            (rng.normal(size=n + n_taps) * 7).astype(dtype))
    want = np.zeros(n, dtype)
    for t in range(n_taps):
        want = want + a[3 * t:3 * t + n] * b[t:t + n]  # in dtype, one tap at a time
    z = np.zeros(n, dtype)
    taps(z, a, b, n_taps)
    np.testing.assert_array_equal(z, want)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_simd_fma_is_the_exact_sum_on_integers(dtype):
    """vfma (one rounding) gives s * w + z exactly where all are integers below the mantissa,
    and differs from vmul_add's two roundings on inexact values (it is fused)."""
    from numba import njit

    from sigmadelta.kernels.simd import lanes, vfma, vload, vmul_add, vstore

    @njit
    def update(z, s, w, fused):
        for o in range(0, z.shape[0], lanes(z.itemsize)):
            v = vfma(vload(z, o), s, w, o) if fused else vmul_add(vload(z, o), s, w, o)
            vstore(z, o, v)

    rng = np.random.default_rng(1)
    n = 4 * (32 // np.dtype(dtype).itemsize)
    z, w = rng.integers(-2**10, 2**10, n).astype(dtype), rng.integers(-128, 128, n).astype(dtype)
    want = z.astype(np.int64) + 1000 * w.astype(np.int64)
    update(z, dtype(1000), w, True)
    np.testing.assert_array_equal(z.astype(np.int64), want)
    b = rng.normal(size=n).astype(dtype)
    a = -(dtype(1 / 3) * b)  # z = -round(s * w): two roundings give 0, one gives the error
    fused, split = a.copy(), a.copy()
    update(fused, dtype(1 / 3), b, True)
    update(split, dtype(1 / 3), b, False)
    assert not split.any()
    assert fused.any()


@pytest.mark.parametrize("case", ["ok", "step", "sigma", "act", "input"])
def test_lava_range_check(case):
    """Lava's integer widths: one step's sum within +-2**23 (conv), sigma and act within int32,
    the input times k within int32; the first neuron out of range, else -1 and prev = value."""
    rng = np.random.default_rng(5)
    n, lim = 50, 2.0 ** 23
    bias = rng.integers(-5, 5, n) * 4096.0
    prev = bias + rng.integers(-2**30, 2**30, n)
    value = prev + rng.integers(-2**23, 2**23, n)
    x, k = rng.integers(0, 2**19, 20).astype(np.float64), 4096.0
    bad = {"ok": -1, "step": 7, "sigma": 11, "act": 3, "input": -2 - 4}[case]
    if case == "step":
        value[7] = prev[7] + lim  # 2**23 wraps to -2**23
    elif case == "sigma":
        prev[11] = bias[11] + 2.0 ** 31 - 10
        value[11] = prev[11] + 10
    elif case == "act":
        bias[3], prev[3], value[3] = 8192.0, 2.0 ** 31 - 4, 2.0 ** 31  # sigma 2**31 - 8192: fits
    elif case == "input":
        x[4] = 2.0 ** 19
    ra, a, rb, b = _both("lava_range_check", value, prev, bias, lim, x, k)
    assert ra == rb == bad
    np.testing.assert_array_equal(a[1], b[1])
    if bad == -1:
        np.testing.assert_array_equal(a[1], value)


@pytest.mark.parametrize("n_a,n_b", [(0, 3), (5, 4), (20, 15)])  # indexed, busy, busier
def test_busy_glue_passes_keep_values(n_a, n_b):
    """A residual add and a relu on lists of any length give what recomputing the listed
    neurons gives, when ``y = a + b`` and ``y = f(x)`` held before (as the engine keeps
    them): the contiguous busy passes only rewrite the others with their own values."""
    rng = np.random.default_rng(7)
    n = 40
    a, b = rng.normal(size=n).astype(np.float32), rng.normal(size=n).astype(np.float32)
    y = a + b
    ta = np.sort(rng.choice(n, n_a, replace=False)).astype(np.int64)
    tb = np.sort(rng.choice(n, n_b, replace=False)).astype(np.int64)
    a[ta] += rng.normal(size=n_a).astype(np.float32)
    b[tb] += rng.normal(size=n_b).astype(np.float32)
    want = y.copy()
    union = np.union1d(ta, tb)
    want[union] = a[union] + b[union]
    touched, count, stamp = np.zeros(n, np.int64), np.zeros(1, np.int64), np.full(n, -1, np.int64)
    K.add_update(a, b, y, ta, np.array([n_a]), tb, np.array([n_b]), touched, count, stamp, 5)
    np.testing.assert_array_equal(y, want)
    assert sorted(touched[:count[0]]) == list(union)
    r = np.where(y > 0, y, 0).astype(np.float32)  # relu of every neuron: r = f(y) holds
    y[union] += 1.0  # the add's outputs change again; relu on the union
    want_r = r.copy()
    want_r[union] = np.where(y[union] > 0, y[union], 0)
    K.activation_update(y, r, touched, count, 0, 0.0, 0.0, 0.0, None)
    np.testing.assert_array_equal(r, want_r)
