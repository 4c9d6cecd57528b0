"""The dense path of busy 1x1 convs (:mod:`sigmadelta.kernels.conv1x1`): the kernel against
its NumPy twin and against the general dense recompute on the same frame; the engine, forced
path by path and switching mid-stream, against ``sd.reference`` with the scatter's counters."""

import numpy as np
import pytest
import torch
import torch.nn as nn
from _twins import both_named, listed, params
from test_recompute import _dense_case, _run, _video

import sigmadelta as sd
from sigmadelta import kernels as K

# (h, w, c_in, c_out, kernel, stride, padding): 1x1, stride 1, no padding
GEOMS = [(6, 6, 2, 3, (1, 1), (1, 1), (0, 0)), (5, 7, 19, 4, (1, 1), (1, 1), (0, 0)),
         (4, 3, 40, 9, (1, 1), (1, 1), (0, 0))]
DTYPES = [(True, np.float64), (False, np.float64), (True, np.float32)]


def _case(geom, herding, dtype, scratch):
    """conv1x1_dense's arguments: ``scratch`` rows of ``|s|`` (0: shorter than one pixel)."""
    case = _dense_case(geom, herding, 11, dtype)
    c_in = case["c_in"]
    x, mem = case["x"], case["memory"]
    quiet = (np.arange(len(x)) // c_in) % 3 == 1  # every third pixel sends no event
    mem[quiet] = np.rint(case["param"] * x[quiet]) if herding else x[quiet]
    case["rowbuf"] = np.zeros(max(scratch * c_in, 1), dtype)
    return case


@pytest.mark.parametrize("geom", GEOMS)
@pytest.mark.parametrize("herding,dtype", DTYPES)
@pytest.mark.parametrize("scratch", [0, 1, 3, 64])
def test_conv1x1_matches_twin(geom, herding, dtype, scratch):
    case = _case(geom, herding, dtype, scratch)
    assert K.conv1x1_ok(case["geom"], case["w_cl"], case["z"])
    ra, a, rb, b = both_named("conv1x1_dense", case)
    assert (ra[0], ra[1], ra[3]) == (rb[0], rb[1], rb[3]) and ra[2] == pytest.approx(rb[2])
    assert ra[0] > 0 and ra[3] < len(case["pg_stamp"])  # some pixels with events, not all
    tol = 1e-4 if dtype == np.float32 else 1e-10
    np.testing.assert_allclose(a["z"], b["z"], rtol=tol, atol=tol)
    for name in ("memory", "mem_w", "pg_stamp"):
        np.testing.assert_array_equal(a[name], b[name])
    assert a["pg_list"][: a["pg_count"][0]].tolist() == listed(b["pg_list"], b["pg_count"])


@pytest.mark.parametrize("geom", GEOMS)
@pytest.mark.parametrize("herding,dtype", DTYPES)
def test_conv1x1_equals_dense_recompute(geom, herding, dtype):
    """Same frame: the same counters, memory, stamps and listing as the general dense path
    (im2col-free GEMM there too), ``z`` equal up to float rounding."""
    case = _case(geom, herding, dtype, 64)
    one = {k: v.copy() if isinstance(v, np.ndarray) else v for k, v in case.items()}
    gen = {k: v.copy() if isinstance(v, np.ndarray) else v for k, v in case.items()}
    r1 = K.conv1x1_dense(*(one[n] for n in params("conv1x1_dense")))
    rg = K.dense_recompute(*(gen[n] for n in params("dense_recompute")[:17]))
    assert (r1[0], r1[1], r1[3]) == (rg[0], rg[1], rg[3]) and r1[2] == pytest.approx(rg[2], rel=1e-12)
    for name in ("memory", "pg_stamp"):
        np.testing.assert_array_equal(one[name], gen[name])
    assert listed(one["pg_list"], one["pg_count"]) == listed(gen["pg_list"], gen["pg_count"])
    np.testing.assert_array_equal(one["mem_w"], gen["mem_w"])
    tol = 1e-5 if dtype == np.float32 else 1e-12
    np.testing.assert_allclose(one["z"], gen["z"], rtol=tol, atol=tol)


def test_conv1x1_ok_only_for_plain_1x1():
    z32, zi = np.zeros(4, np.float32), np.zeros(4, np.int64)
    w = np.zeros(4)
    assert K.conv1x1_ok(K.make_geom((4, 4), (4, 4), (1, 1), (0, 0), (1, 1), 2), w, z32)
    assert not K.conv1x1_ok(K.make_geom((4, 4), (4, 4), (1, 1), (0, 0), (1, 1), 2), w, zi)  # fixed point
    assert not K.conv1x1_ok(K.make_geom((4, 4), (2, 2), (2, 2), (0, 0), (1, 1), 2), w, z32)  # stride 2
    assert not K.conv1x1_ok(K.make_geom((4, 4), (4, 4), (1, 1), (1, 1), (3, 3), 2), w, z32)  # 3x3


class _Pointwise(nn.Module):
    """MobileNet-like: a stem, 1x1 expansion, depthwise 3x3, 1x1 projection with a residual."""

    def __init__(self):
        super().__init__()
        self.stem = nn.Conv2d(3, 8, 3, padding=1)
        self.expand = nn.Conv2d(8, 24, 1)
        self.dw = nn.Conv2d(24, 24, 3, padding=1, groups=24)
        self.project = nn.Conv2d(24, 8, 1)

    def forward(self, x):
        y = torch.relu(self.stem(x))
        return y + self.project(torch.relu(self.dw(torch.relu(self.expand(y)))))


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_conv1x1_path_in_engine_equals_reference(dtype):
    torch.manual_seed(3)
    frames = _video()
    net = sd.convert(_Pointwise().eval(), frames.shape[1:], scale=32.0)
    ref = sd.reference(net, frames, progress=False)
    t = len(frames)
    runs = {name: _run(net, frames, modes, dtype) for name, modes in [
        ("scatter", ["scatter"] * t), ("dense", ["dense"] * t),
        ("switching", ["dense", "scatter", "dense", "auto", "scatter", "dense", "gemm", "dense"])]}
    base_stats = runs["scatter"][1]
    tol = 1e-4 if dtype == np.float32 else 1e-6
    for name, (out, stats, _) in runs.items():
        assert np.abs(out - ref).max() / np.ptp(ref) <= tol, name
        np.testing.assert_array_equal(stats, base_stats, err_msg=name)
    dense_paths = runs["dense"][2]
    assert dense_paths["expand"]["dense"] == t and dense_paths["project"]["dense"] == t


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("param,gain,single", [(8.0, 1 / 8, True), (0.25, 4.0, True),
                                               (6.0, 1 / 6, False), (8.0, 0.1, False)])
def test_conv1x1_single_precision_herding_matches_twin(dtype, param, gain, single):
    """Herding with a power-of-two scale and a float32 gain multiplies in the state's
    precision (:func:`sigmadelta.kernels.quantize.single_exact`): memory, ``gain * memory``,
    counters and listing bit for bit the twin's double-precision ones."""
    from sigmadelta.kernels.quantize import single_exact

    assert single_exact(param, gain) == single
    case = _case(GEOMS[2], True, dtype, 3)
    rng = np.random.default_rng(5)
    x = case["x"].astype(np.float64)
    case["x"] = (x * 7.3 + rng.normal(size=len(x)) * 1e3 * (rng.random(len(x)) < 0.05)).astype(dtype)
    case["memory"] = np.rint(param * case["x"].astype(np.float64) * (rng.random(len(x)) < 0.5)).astype(dtype)
    case.update(param=param, gain=gain)
    q = np.rint(param * case["x"].astype(np.float64))  # in double precision, as the general loop
    ra, a, rb, b = both_named("conv1x1_dense", case)
    assert (ra[0], ra[1], ra[3]) == (rb[0], rb[1], rb[3]) and ra[2] == rb[2]
    assert ra[0] == np.count_nonzero(q - case["memory"])
    np.testing.assert_array_equal(a["memory"], q.astype(dtype))
    expect_w = (q.astype(dtype).astype(np.float64) * gain).astype(dtype)  # one rounding
    np.testing.assert_array_equal(a["mem_w"][: len(q)], expect_w)
    np.testing.assert_array_equal(a["pg_stamp"], b["pg_stamp"])
    assert a["pg_list"][: a["pg_count"][0]].tolist() == listed(b["pg_list"], b["pg_count"])


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("size", [1e4, 3e6])
def test_conv1x1_large_spikes_count_exactly(dtype, size):
    """Herding sums a pixel's ``|s|`` in the state's precision below ``SUM_EXACT`` and in
    float64 from there on: large spikes (a pixel's sum near 4e5 and near 1e9) give the twin's
    events and additions exactly."""
    case = _case(GEOMS[2], True, dtype, 3)
    rng = np.random.default_rng(9)
    n = len(case["x"])
    case["x"] = (rng.integers(-size, size, n) / case["param"] + 0.25 / case["param"]).astype(dtype)
    ra, a, rb, b = both_named("conv1x1_dense", case)
    assert (ra[0], ra[1], ra[3]) == (rb[0], rb[1], rb[3]) and ra[2] == rb[2]
    big = np.abs(np.rint(case["param"] * case["x"].astype(np.float64)) - case["memory"])
    assert (big.reshape(-1, case["c_in"]).sum(1).max() >= K.conv1x1.SUM_EXACT) == (size > 1e5)
    np.testing.assert_array_equal(a["memory"], b["memory"])
