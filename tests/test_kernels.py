"""Every Numba kernel against its slow NumPy twin, on random inputs."""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from sigmadelta import kernels as K
from sigmadelta.kernels import numpy_twins as T


def _touched(rng, n, frac=0.4):
    idx = np.flatnonzero(rng.random(n) < frac).astype(np.int64)
    touched = np.zeros(n, np.int64)
    touched[: len(idx)] = idx
    return touched, np.array([len(idx)], np.int64)


def _both(fn_name, *args):
    """Run kernel and twin on deep copies of the arguments; return (results, arg copies)."""
    a = [x.copy() if isinstance(x, np.ndarray) else x for x in args]
    b = [x.copy() if isinstance(x, np.ndarray) else x for x in args]
    return getattr(K, fn_name)(*a), a, getattr(T, fn_name)(*b), b


def _listed(touched, count):
    return sorted(touched[: count[0]].tolist())


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
])
def test_conv_scatter(geom):
    h, w, c_in, c_out, k, stride, padding, dilation, groups = geom
    rng = np.random.default_rng(2)
    h_out = (h + 2 * padding[0] - dilation[0] * (k - 1) - 1) // stride[0] + 1
    w_out = (w + 2 * padding[1] - dilation[1] * (k - 1) - 1) // stride[1] + 1
    cg = c_out // groups
    w_cl = rng.normal(size=(k, k, c_in, cg))
    n_ev = 25
    ev_idx = rng.choice(h * w * c_in, n_ev, replace=False).astype(np.int64)
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


@pytest.mark.parametrize("fn,alpha,lo,hi", [(0, 0, 0, 0), (1, 0.1, 0, 0), (2, 0, -0.5, 0.7), (3, 0, 0, 0)])
def test_activation_update(fn, alpha, lo, hi):
    rng = np.random.default_rng(3)
    x, y = rng.normal(size=20), rng.normal(size=20)
    touched, count = _touched(rng, 20)
    _, a, _, b = _both("activation_update", x, y, touched, count, fn, alpha, lo, hi)
    np.testing.assert_array_equal(a[1], b[1])


def test_add_update():
    rng = np.random.default_rng(4)
    ta, ca = _touched(rng, 30)
    tb, cb = _touched(rng, 30)
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


@pytest.mark.parametrize("is_max", [True, False])
@pytest.mark.parametrize("kernel,stride,padding", _POOL_GEOMS)
def test_pool_update(is_max, kernel, stride, padding):
    rng = np.random.default_rng(6)
    h, w, c = 7, 5, 3
    t, cnt = _touched(rng, h * w * c, 0.2)
    _check_pool(rng, h, w, c, kernel, stride, padding, is_max, t, cnt)


@pytest.mark.parametrize("is_max", [True, False])
@pytest.mark.parametrize("c", [1, 3])
@pytest.mark.parametrize("kernel,stride,padding", _POOL_GEOMS[:2] + _POOL_GEOMS[3:])
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


def _pixel_case(h, w, c_in, c_out, k, stride, padding, herding, seed, dtype=np.float64):
    """Arguments of conv_layer_step for a random layer and a random, pixel-ordered touched list."""
    rng = np.random.default_rng(seed)
    h_out = (h + 2 * padding[0] - k[0]) // stride[0] + 1
    w_out = (w + 2 * padding[1] - k[1]) // stride[1] + 1
    n_in, n_pix = h * w * c_in, h_out * w_out
    w_cl = rng.normal(size=(*k, c_in, c_out)).astype(dtype)
    w_run = K.run_layout(w_cl, stride)
    geom = K.make_geom((h, w), (h_out, w_out), stride, padding, k, c_out)
    touched, count = _touched(rng, n_in, 0.3)
    x = rng.normal(size=n_in).astype(dtype)
    memory = (np.rint(4 * rng.normal(size=n_in)) if herding else rng.normal(size=n_in)).astype(dtype)
    param = 4.0 if herding else 0.3
    rows = np.flatnonzero(rng.random(h * w) < 0.3).astype(np.int64)
    return (x, touched, count, rows, np.array([len(rows)], np.int64), False, memory, herding, param,
            0.25 if herding else 1.0, w_run, rng.normal(size=n_pix * c_out).astype(dtype), geom,
            np.zeros(n_in, np.int64), np.zeros(n_in, dtype), np.zeros(n_in, np.int64),
            np.zeros(n_in + 1, np.int64), np.zeros(c_in, dtype), np.zeros(n_pix + 1, np.int64),
            np.zeros(1, np.int64), np.full(n_pix, -1, np.int64), 5, False, True,
            np.zeros(n_pix * c_out, np.int64), np.zeros(1, np.int64), *K.make_map(geom, w_cl)), w_cl


# argument positions in conv_layer_step
_X, _MEM, _Z, _PRIME, _OT = 0, 6, 11, 22, 24


def test_run_layout_roundtrip():
    rng = np.random.default_rng(9)
    for stride, k in [((1, 1), (3, 3)), ((2, 2), (3, 3)), ((2, 3), (5, 4)), ((3, 3), (2, 2))]:
        w_cl = rng.normal(size=(*k, 3, 4))
        geom = K.make_geom((9, 9), (3, 3), stride, (1, 1), k, 4)
        np.testing.assert_array_equal(T._from_run(K.run_layout(w_cl, stride), geom), w_cl)


@pytest.mark.parametrize("herding", [True, False])
def test_encode_pixels_and_rows(herding):
    args, _ = _pixel_case(6, 7, 5, 3, (3, 3), (1, 1), (1, 1), herding, 11)
    x, touched, count, rows, row_count, _, memory, herding, param = args[:9]
    bufs = args[13:17]
    for name, call in [("encode_pixels", (x, touched, count, memory, herding, param, 5, *bufs)),
                       ("encode_rows", (x, rows, row_count, 5, memory, herding, param, *bufs))]:
        ra, a, rb, b = _both(name, *call)
        assert ra == rb
        n_px, n_ev = ra
        for i in range(len(call)):
            if i in (7, 8) or (name == "encode_pixels" and i == 3) or (name == "encode_rows" and i == 4):
                np.testing.assert_array_equal(a[i][:n_ev], b[i][:n_ev])
        np.testing.assert_array_equal(a[9][:n_px], b[9][:n_px])
        np.testing.assert_array_equal(a[10][:n_px + 1], b[10][:n_px + 1])


@pytest.mark.parametrize("geom", [
    # (h, w, c_in, c_out, kernel, stride, padding)
    (7, 9, 4, 6, (3, 3), (1, 1), (1, 1)),
    (8, 8, 3, 4, (3, 3), (2, 2), (1, 0)),
    (9, 7, 2, 5, (5, 4), (2, 3), (2, 1)),
    (6, 6, 3, 5, (1, 1), (1, 1), (0, 0)),
    (10, 10, 2, 3, (2, 2), (3, 3), (0, 0)),
    (9, 11, 1, 8, (3, 3), (2, 2), (0, 0)),  # one input channel: encode_scatter_1ch
    (8, 7, 1, 3, (3, 2), (1, 2), (1, 1)),
])
@pytest.mark.parametrize("herding", [True, False])
@pytest.mark.parametrize("in_rows", [False, True])
def test_conv_layer_step_and_scatter_pixels(geom, herding, in_rows):
    args, _ = _pixel_case(*geom, herding, 12)
    args = list(args)
    args[5] = in_rows
    ra, a, rb, b = _both("conv_layer_step", *args)
    assert ra[0] == rb[0] and ra[1] == rb[1] and ra[3] == rb[3]
    assert ra[2] == pytest.approx(rb[2])
    np.testing.assert_allclose(a[_Z], b[_Z], rtol=1e-12, atol=1e-12)
    np.testing.assert_array_equal(a[_MEM], b[_MEM])
    assert _listed(a[_OT], a[_OT + 1]) == _listed(b[_OT], b[_OT + 1])
    assert ra[3] == a[_OT + 1][0]
    np.testing.assert_array_equal(a[_OT + 2], b[_OT + 2])  # one channel: the events remembered
    # the pixel scatter equals the flat per-event conv_scatter
    fresh, _ = _pixel_case(*geom, herding, 12)
    if not in_rows:
        n_px, _ = K.encode_pixels(*fresh[:3], *fresh[6:9], geom[2], *fresh[13:17])
        sa = K.conv_scatter_pixels(fresh[15], fresh[16], n_px, fresh[13], fresh[14], fresh[9],
                                   *fresh[10:13], *fresh[17:22])
        assert sa[0] == ra[1]
        np.testing.assert_allclose(fresh[_Z], a[_Z], rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("frac,scan", [(0.002, False), (0.9, True)])
def test_scatter_pixels_listing_by_scan_and_by_append(frac, scan):
    """Few events: listed as reached; many: stamped, then listed by one scan. Same set."""
    rng = np.random.default_rng(4)
    h, w, c_in, c_out = 40, 41, 3, 5
    geom = K.make_geom((h, w), (h, w), (1, 1), (1, 1), (3, 3), c_out)
    w_run = K.run_layout(rng.normal(size=(3, 3, c_in, c_out)), (1, 1))
    touched, count = _touched(rng, h * w * c_in, frac)
    n = count[0]
    ev_ch, ev_val = np.zeros(h * w * c_in, np.int64), np.zeros(h * w * c_in)
    px_list, px_start = np.zeros(h * w * c_in, np.int64), np.zeros(h * w * c_in + 1, np.int64)
    n_px, _ = K.encode_pixels(rng.normal(size=h * w * c_in) * 3, touched, count,
                              np.zeros(h * w * c_in), True, 4.0, c_in, ev_ch, ev_val, px_list,
                              px_start)
    args = (px_list, px_start, n_px, ev_ch, ev_val, 0.25, w_run, np.zeros(h * w * c_out), geom,
            np.zeros(c_in), np.zeros(h * w + 1, np.int64), np.zeros(1, np.int64),
            np.full(h * w, -1, np.int64), 3)
    assert (8 * n_px * 9 > h * w) == scan and n > 0  # the kernel's rule for scanning
    ra, a, rb, b = _both("conv_scatter_pixels", *args)
    assert ra[0] == rb[0]
    np.testing.assert_allclose(a[7], b[7], rtol=1e-12, atol=1e-12)
    assert _listed(a[10], a[11]) == _listed(b[10], b[11])
    listed = a[10][: a[11][0]]
    assert len(set(listed.tolist())) == len(listed)  # no pixel twice


def test_conv_layer_step_float32_prime_no_expand():
    args, _ = _pixel_case(7, 9, 4, 6, (3, 3), (1, 1), (1, 1), True, 13, np.float32)
    args = list(args)
    args[_PRIME] = True
    ra, a, rb, b = _both("conv_layer_step", *args)
    assert ra[:2] == rb[:2]
    np.testing.assert_allclose(a[_Z], b[_Z], rtol=1e-5, atol=1e-5)
    assert _listed(a[_OT], a[_OT + 1]) == list(range(len(a[_Z])))
    args[_PRIME + 1] = False  # no neuron listing: only the pixel list
    ra, a, _, _ = _both("conv_layer_step", *args)
    assert a[_OT + 1][0] == 0 and ra[3] == len(a[_Z])
    assert sorted(a[18][: a[19][0]].tolist()) == list(range(63))


@pytest.mark.parametrize("fn,alpha,lo,hi", [(0, 0, 0, 0), (1, 0.1, 0, 0), (2, 0, -0.5, 0.7), (3, 0, 0, 0)])
def test_activation_rows(fn, alpha, lo, hi):
    rng = np.random.default_rng(14)
    x, y = rng.normal(size=30), rng.normal(size=30)
    rows = np.array([0, 3, 4, 9], np.int64)
    _, a, _, b = _both("activation_rows", x, y, rows, np.array([3]), 3, fn, alpha, lo, hi)
    np.testing.assert_array_equal(a[1], b[1])
    assert np.array_equal(a[1][27:], y[27:])  # pixel 9 is not listed (row_count 3)


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


@pytest.mark.parametrize("herding", [True, False])
@pytest.mark.parametrize("frac", [0.01, 0.7])
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_encode_scatter_1ch_matches_twin(herding, frac, dtype):
    """One input channel in one pass == encode_pixels + conv_scatter_pixels (twins)."""
    rng = np.random.default_rng(8)
    h, w, c_out = 30, 31, 8
    geom = K.make_geom((h, w), (14, 15), (2, 2), (0, 0), (3, 3), c_out)
    w_run = K.run_layout(rng.normal(size=(3, 3, 1, c_out)).astype(dtype), (2, 2))
    pixels, count = _touched(rng, h * w, frac)
    x = (rng.normal(size=h * w) * 2).astype(dtype)
    memory = (np.rint(4 * rng.normal(size=h * w)) if herding else rng.normal(size=h * w))
    args = (x, pixels, count, memory.astype(dtype), herding, 4.0 if herding else 0.3,
            0.25 if herding else 1.0, w_run, rng.normal(size=14 * 15 * c_out).astype(dtype), geom,
            np.zeros(14 * 15 + 1, np.int64), np.zeros(1, np.int64), np.full(14 * 15, -1, np.int64),
            2)
    ra, a, rb, b = _both("encode_scatter_1ch", *args)
    assert ra[0] == rb[0] and ra[1] == rb[1] and ra[2] == pytest.approx(rb[2])
    tol = 1e-12 if dtype == np.float64 else 1e-5
    np.testing.assert_allclose(a[8], b[8], rtol=tol, atol=tol)
    np.testing.assert_array_equal(a[3], b[3])
    assert _listed(a[10], a[11]) == _listed(b[10], b[11])


@pytest.mark.parametrize("geom", [
    # (h, w, c_out, kernel, stride, padding)
    (30, 31, 8, (3, 3), (2, 2), (0, 0)),
    (12, 13, 16, (3, 3), (1, 1), (1, 1)),
    (11, 9, 4, (5, 3), (2, 1), (2, 0)),
    (10, 12, 8, (2, 2), (3, 2), (1, 1)),
])
@pytest.mark.parametrize("herding", [True, False])
@pytest.mark.parametrize("frac", [0.02, 0.8])
@pytest.mark.parametrize("dtype", [np.float64, np.float32, np.int64])
def test_encode_map_1ch_matches_twin_and_scatter(geom, herding, frac, dtype):
    """Spike map + gather == its twin (a loop over output pixels) == the one-channel scatter:
    same z (bit for bit: the taps are added in the scatter's order), memory, counters, list."""
    h, w, c_out, k, stride, pad = geom
    h_out, w_out = (h + 2 * pad[0] - k[0]) // stride[0] + 1, (w + 2 * pad[1] - k[1]) // stride[1] + 1
    if dtype == np.float32 and c_out % 8:
        c_out = 8  # the map needs whole SIMD vectors per output pixel
    rng = np.random.default_rng(c_out + k[0])
    g = K.make_geom((h, w), (h_out, w_out), stride, pad, k, c_out)
    w_cl = rng.normal(size=(*k, 1, c_out)) * (20 if dtype == np.int64 else 1)
    w_cl = w_cl.astype(dtype)
    mgeom, smap, wtap = K.make_map(g, w_cl)
    assert len(mgeom) and prefer_first_frame(mgeom, h_out * w_out)
    pixels, count = _touched(rng, h * w, frac)
    fixed = dtype == np.int64
    x = (rng.normal(size=h * w) * 2)
    memory = np.rint(4 * rng.normal(size=h * w)) if herding else rng.normal(size=h * w)
    if fixed:  # integer weights take integer spikes (threshold: integer inputs)
        x, memory = np.rint(4 * x), np.rint(memory)
    param, gain = (4.0 if herding else 0.3), (1 if fixed else (0.25 if herding else 1.0))
    sdt = np.float64 if fixed else dtype
    z0 = (rng.normal(size=h_out * w_out * c_out) * (100 if fixed else 1)).astype(dtype)
    lists = (np.zeros(h_out * w_out + 1, np.int64), np.zeros(1, np.int64),
             np.full(h_out * w_out, -1, np.int64))
    args = (x.astype(sdt), pixels, count, memory.astype(sdt), herding, param, gain, wtap, z0,
            g, mgeom, smap, *lists, 3)
    ra, a, rb, b = _both("encode_map_1ch", *args)
    sc = [v.copy() if isinstance(v, np.ndarray) else v for v in args]
    sc[7] = K.run_layout(w_cl, stride)
    del sc[10:12]
    rs = K.encode_scatter_1ch(*sc)
    assert ra[:2] == rb[:2] == rs[:2] and ra[2] == pytest.approx(rb[2]) == pytest.approx(rs[2])
    np.testing.assert_array_equal(a[8], sc[8])  # the scatter's z, bit for bit
    tol = 1e-5 if dtype == np.float32 else 1e-12
    np.testing.assert_allclose(a[8], b[8], rtol=tol, atol=tol)
    np.testing.assert_array_equal(a[3], b[3])
    assert _listed(a[12], a[13]) == _listed(b[12], b[13]) == _listed(sc[10], sc[11])
    assert not a[11].any()  # the map is left clear for the next frame


def prefer_first_frame(mgeom, n_out):
    """The map path is taken with no last frame, then only after dense frames."""
    first = K.prefer_map(mgeom, n_out)
    m = mgeom.copy()
    m[1] = n_out // 10
    sparse = K.prefer_map(m, n_out)
    m[1] = n_out
    return first and not sparse and K.prefer_map(m, n_out) and not K.prefer_map(m[:0], n_out)
