"""Pointwise activations: the kernel against its NumPy twin, the twin against PyTorch."""

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from sigmadelta import graph as g
from sigmadelta import kernels as K
from sigmadelta.kernels import numpy_twins as T
from sigmadelta.kernels.elementwise import ROWS_FULL_ABOVE

# name -> (alpha, lo, hi, the PyTorch function)
CASES = {
    "relu": (0.0, 0.0, 0.0, F.relu),
    "leaky": (0.1, 0.0, 0.0, lambda x: F.leaky_relu(x, 0.1)),
    "clip": (0.0, -0.5, 0.7, lambda x: x.clamp(-0.5, 0.7)),
    "identity": (0.0, 0.0, 0.0, lambda x: x),
    "sigmoid": (0.0, 0.0, 0.0, torch.sigmoid),
    "tanh": (0.0, 0.0, 0.0, torch.tanh),
    "gelu": (0.0, 0.0, 0.0, F.gelu),
    "gelu_tanh": (0.0, 0.0, 0.0, lambda x: F.gelu(x, approximate="tanh")),
    "silu": (0.0, 0.0, 0.0, F.silu),
    "hardswish": (0.0, 0.0, 0.0, F.hardswish),
    "hardsigmoid": (0.0, 0.0, 0.0, F.hardsigmoid),
    "elu": (0.7, 0.0, 0.0, lambda x: F.elu(x, 0.7)),
    "softplus": (2.0, 0.0, 3.0, lambda x: F.softplus(x, 2.0, 3.0)),
    "mish": (0.0, 0.0, 0.0, F.mish),
}


def test_every_activation_has_a_case():
    assert set(CASES) == set(g.ACTIVATIONS)


def _x(n=64):
    rng = np.random.default_rng(5)
    return np.concatenate([rng.normal(scale=3, size=n - 8), [-800, -30, -3, -1e-9, 0, 2.5, 30, 800]])


@pytest.mark.parametrize("name", sorted(CASES))
def test_twin_equals_pytorch(name):
    alpha, lo, hi, f = CASES[name]
    x = _x()
    got = T._pointwise(x, g.ACTIVATIONS.index(name), alpha, lo, hi)
    np.testing.assert_allclose(got, f(torch.from_numpy(x)).numpy(), rtol=1e-12, atol=1e-15)


@pytest.mark.parametrize("name", sorted(CASES))
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_kernels_equal_twin(name, dtype):
    alpha, lo, hi, _ = CASES[name]
    fn = g.ACTIVATIONS.index(name)
    x = _x().astype(dtype)
    rng = np.random.default_rng(6)
    touched = np.sort(rng.choice(len(x), 40, replace=False)).astype(np.int64)
    count = np.array([37], np.int64)
    y_k, y_t = np.full_like(x, 9.0), np.full_like(x, 9.0)
    K.activation_update(x, y_k, touched, count, fn, alpha, lo, hi, 1)
    T.activation_update(x, y_t, touched, count, fn, alpha, lo, hi, 1)
    tol = 1e-12 if dtype == np.float64 else 2e-6
    np.testing.assert_allclose(y_k, y_t, rtol=tol, atol=tol)
    untouched = np.setdiff1d(np.arange(len(x)), touched[:37])
    if fn <= 3:  # a cheap f on a busy list (37 of 64 > FULL_PASS_ABOVE): every neuron, f(x)
        assert 37 > K.FULL_PASS_ABOVE * len(x)
        np.testing.assert_allclose(y_k[untouched], T._pointwise(x[untouched], fn, alpha, lo, hi),
                                   rtol=tol, atol=tol)
    else:
        assert (y_k[untouched] == 9.0).all()
    rows, c = np.array([0, 3, 7, 1, 2, 6, 5], np.int64), 8  # pixels of 8 channels
    for n_rows in (3, 6):  # 24 and 48 of 64 neurons: below and above ROWS_FULL_ABOVE
        y_k, y_t = np.full_like(x, 9.0), np.full_like(x, 9.0)
        K.activation_rows(x, y_k, rows, np.array([n_rows]), c, fn, alpha, lo, hi, 1)
        T.activation_rows(x, y_t, rows, np.array([n_rows]), c, fn, alpha, lo, hi, 1)
        np.testing.assert_allclose(y_k, y_t, rtol=tol, atol=tol)
        if fn <= 3 and n_rows * c > ROWS_FULL_ABOVE * len(x):  # busy: every neuron, f(x)
            np.testing.assert_allclose(y_k[40:48], T._pointwise(x[40:48], fn, alpha, lo, hi),
                                       rtol=tol, atol=tol)
        else:
            assert (y_k[40:48] == 9.0).all()  # pixel 5 is not listed


@pytest.mark.parametrize("name", sorted(CASES))
def test_kernels_without_the_smooth_codes(name):
    """Compiled with ``smooth`` None, the kernels run the cheap codes (relu, leaky, clip,
    identity: up to K.CHEAP_MAX) as the twin does, and refuse every other one."""
    alpha, lo, hi, _ = CASES[name]
    fn, x = g.ACTIVATIONS.index(name), _x()
    touched, count = np.arange(len(x), dtype=np.int64)[::3].copy(), np.array([5], np.int64)
    rows = np.array([0, 3, 7, 5], np.int64)
    calls = (("activation_update", (touched, count)), ("activation_rows", (rows, np.array([3]), 8)))
    for kernel, lists in calls:
        if fn > K.CHEAP_MAX:
            with pytest.raises(RuntimeError, match="compiled without"):
                getattr(K, kernel)(x, np.zeros_like(x), *lists, fn, alpha, lo, hi, None)
            continue
        y_k, y_t = np.full_like(x, 9.0), np.full_like(x, 9.0)
        getattr(K, kernel)(x, y_k, *lists, fn, alpha, lo, hi, None)
        getattr(T, kernel)(x, y_t, *lists, fn, alpha, lo, hi, None)
        np.testing.assert_allclose(y_k, y_t, rtol=1e-12, atol=1e-15)
        assert (y_k != 9.0).any()


@pytest.mark.parametrize("per_channel", [True, False])
def test_mul_update_equals_twin(per_channel):
    rng = np.random.default_rng(7)
    c, n = 4, 24  # 6 pixels of 4 channels
    a, b = rng.normal(size=n), rng.normal(size=c if per_channel else n)
    ta = np.array([1, 5, 6, 0, 0], np.int64)
    tb = np.array([2, 0, 0, 0], np.int64) if per_channel else np.array([5, 9, 0, 0], np.int64)
    out = []
    for mod in (K, T):
        y, touched, count, stamp = np.zeros(n), np.zeros(n, np.int64), np.zeros(1, np.int64), np.full(n, -1)
        mod.mul_update(a, b, y, ta, np.array([3]), tb, np.array([1 if per_channel else 2]), c,
                       per_channel, touched, count, stamp, 3)
        out.append((y, sorted(touched[: count[0]].tolist())))
    np.testing.assert_array_equal(out[0][0], out[1][0])
    assert out[0][1] == out[1][1]
    expect = {1, 5, 6} | ({2, 6, 10, 14, 18, 22} if per_channel else {5, 9})
    assert set(out[0][1]) == expect
    i = np.array(sorted(expect))
    np.testing.assert_allclose(out[0][0][i], a[i] * (b[i % c] if per_channel else b[i]))


def test_upsample_update_equals_twin():
    rng = np.random.default_rng(8)
    c, h, w, sh, sw = 3, 2, 4, 2, 3
    x = rng.normal(size=h * w * c)
    ti = np.array([0, 4, 23, 13, 0], np.int64)
    out = []
    for mod in (K, T):
        y, touched, count = np.zeros(h * sh * w * sw * c), np.zeros(h * sh * w * sw * c, np.int64), \
            np.zeros(1, np.int64)
        mod.upsample_update(x, ti, np.array([4]), w, c, sh, sw, y, touched, count)
        out.append((y, sorted(touched[: count[0]].tolist())))
    np.testing.assert_array_equal(out[0][0], out[1][0])
    assert out[0][1] == out[1][1] and len(out[0][1]) == 4 * sh * sw
    full_t = np.arange(len(x), dtype=np.int64)  # against PyTorch: every neuron touched
    y, touched, count = np.zeros(h * sh * w * sw * c), np.zeros(h * sh * w * sw * c, np.int64), \
        np.zeros(1, np.int64)
    K.upsample_update(x, full_t, np.array([len(x)]), w, c, sh, sw, y, touched, count)
    ref = F.interpolate(torch.from_numpy(x.reshape(1, h, w, c)).permute(0, 3, 1, 2), scale_factor=(sh, sw))
    np.testing.assert_array_equal(y.reshape(h * sh, w * sw, c), ref[0].permute(1, 2, 0).numpy())
