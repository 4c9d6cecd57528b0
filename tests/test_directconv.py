"""The register-blocked direct conv of the float dense path (``kernels/directconv.py``).

The kernel against its NumPy twin (every block, bias or not, tails of pixels and channels,
strides, kernel sizes), the dense layer that uses it against its twin and the scatter, and
whole networks forced onto the dense path against ``sd.reference`` with the scatter's
counters, at shapes where the direct conv is the one that runs.
"""

import numpy as np
import pytest
import torch
import torch.nn as nn
from _twins import (
    check_dense_against_twin_and_scatter,
    check_whole_conv_against_twin,
    conv_geom,
    params,
)
from test_recompute import _dense_case, _lava_case, _run, _video

import sigmadelta as sd
from sigmadelta import kernels as K

#: (h, w, c_in, c_out, kernel, stride, padding): rows wider and narrower than a block,
#: C_out a whole number of vectors or not, stride 1 and 2, non-square kernels
SHAPES = [(6, 20, 5, 16, (3, 3), (1, 1), (1, 1)), (5, 37, 3, 40, (3, 3), (1, 1), (1, 1)),
          (7, 33, 4, 64, (3, 3), (2, 2), (1, 1)), (4, 9, 6, 32, (3, 3), (1, 1), (1, 1)),
          (8, 23, 3, 7, (5, 3), (2, 1), (2, 1)), (5, 18, 2, 96, (1, 3), (1, 2), (0, 1)),
          (3, 3, 3, 24, (3, 3), (1, 1), (1, 1))]



@pytest.mark.parametrize("shape", SHAPES)
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("nv", [1, 2, 4])
def test_direct_conv_matches_twin(shape, dtype, nv):
    """Every block (``nv`` vectors) on every shape, bias or not: the twin's sums up to rounding,
    the whole of ``z`` written (it starts as NaN)."""
    check_whole_conv_against_twin("direct_conv", shape, dtype, seed=shape[3] + nv, nv=nv)


def test_direct_conv_equals_gemm_on_integers():
    """Integer inputs and weights (sums exact in float64, as a ``"lava"`` layer's): the direct
    conv and the GEMM give the same ``z`` bit for bit."""
    geom, n_out = conv_geom(9, 26, 32, (3, 3), (1, 1), (1, 1))
    rng = np.random.default_rng(3)
    P = np.rint(50 * rng.normal(size=11 * 28 * 6))
    w_cl = np.rint(20 * rng.normal(size=(3, 3, 6, 32)))
    bias = np.tile(np.rint(100 * rng.normal(size=32)), n_out)
    za, zb = np.zeros(n_out * 32), np.zeros(n_out * 32)
    K.direct_conv(P, w_cl, za, bias, True, geom, 6, K.direct_vectors(geom, 6, 8))
    K.conv_gemm(P, w_cl, zb, bias, True, np.zeros(64 * 54), geom, 6)
    np.testing.assert_array_equal(za, zb)


@pytest.mark.parametrize("h,w,sy,c", [(9, 37, 1, 16), (10, 16, 2, 16), (5, 20, 1, 16), (6, 13, 1, 32),
                                      (7, 8, 2, 32)])
def test_fixed_shape_rows_equal_general_block(h, w, sy, c):
    """A float32 3x3 ``c`` -> ``c`` layer (``fixed_channels``: 16, 32) runs its block with
    the shape fixed: the general block's ``z`` bit for bit (the same sums in the same order),
    bias or not, rows that are and are not whole blocks, strides 1 and 2 along y; and the
    twin's sums. Other shapes and float64 keep the general block."""
    from sigmadelta.kernels import directconv as dc

    geom, n_out = conv_geom(h, w, c, (3, 3), (sy, 1), (1, 1))
    nv = K.direct_vectors(geom, c, 4)
    assert dc.fixed_channels(geom, c, 4) == c and dc.fixed_channels(geom, c, 8) == 0
    assert dc.fixed_channels(geom, c // 2, 4) == 0
    assert dc.fixed_channels(conv_geom(h, w, 64, (3, 3), (sy, 1), (1, 1))[0], 64, 4) == 0
    rng = np.random.default_rng(h * w)
    P = rng.normal(size=(h + 2) * (w + 2) * c).astype(np.float32)
    w_cl = rng.normal(size=(3, 3, c, c)).astype(np.float32)
    bias = np.tile(rng.normal(size=c), n_out).astype(np.float32)
    for use_bias in (True, False):
        za, zb = np.full(n_out * c, np.nan, np.float32), np.full(n_out * c, np.nan, np.float32)
        K.direct_conv(P, w_cl, za, bias, use_bias, geom, c, nv)
        dc._conv_rows(P, w_cl.reshape(-1), zb, bias, use_bias, geom, c, c, nv)
        assert not np.isnan(za).any()
        np.testing.assert_array_equal(za, zb)
    check_whole_conv_against_twin("direct_conv", (h, w, c, c, (3, 3), (sy, 1), (1, 1)), np.float32,
                                  seed=h, nv=nv)


@pytest.mark.parametrize("hw,c_out,itemsize,nv", [
    ((64, 64), 16, 4, 1), ((64, 64), 32, 4, 2), ((64, 64), 64, 4, 4), ((16, 16), 128, 4, 2),
    ((64, 64), 16, 8, 2), ((64, 64), 32, 8, 4), ((16, 16), 128, 8, 4), ((64, 64), 48, 4, 1),
    ((4, 4), 128, 4, 4), ((8, 8), 16, 4, 0), ((2, 2), 64, 4, 0)])
def test_direct_vectors_rule(hw, c_out, itemsize, nv):
    """The block per shape: 4x4 where the vectors come in fours (float32: exactly four), 8x2
    for an even count, 16x1 for rows of 16 or more, else the GEMM (0); 1x1 kernels: the GEMM."""
    geom, _ = conv_geom(*hw, c_out, (3, 3), (1, 1), (1, 1))
    assert K.direct_vectors(geom, 8, itemsize) == nv
    geom1, _ = conv_geom(*hw, c_out, (1, 1), (1, 1), (0, 0))
    assert K.direct_vectors(geom1, 8, itemsize) == 0


#: dense layers the direct conv runs (rows of 16 or more, or 4x4 blocks)
WIDE = [(6, 20, 5, 16, (3, 3), (1, 1), (1, 1)), (5, 34, 4, 24, (3, 3), (2, 2), (1, 1)),
        (4, 8, 3, 64, (3, 3), (1, 1), (1, 1)), (5, 18, 16, 16, (3, 3), (1, 1), (1, 1))]


@pytest.mark.parametrize("geom", WIDE)
@pytest.mark.parametrize("herding,dtype", [(True, np.float32), (True, np.float64), (False, np.float64)])
def test_dense_layer_direct_matches_twin_and_scatter(geom, herding, dtype):
    """``conv_layer_dense`` where the direct conv runs: ``z`` as the twin's and the scatter's
    (up to rounding), the same memory, counters and listings."""
    case = _dense_case(geom, herding, 4, dtype)
    g = case["geom"]
    assert K.direct_vectors(g, case["c_in"], np.dtype(dtype).itemsize) > 0
    check_dense_against_twin_and_scatter(case, dtype)


@pytest.mark.parametrize("geom", WIDE)
def test_lava_dense_direct_bit_for_bit(geom):
    """A ``"lava"`` layer's dense path through the direct conv: ``z`` bit for bit the scatter's
    (integer sums, exact in float64 in any order)."""
    case = _lava_case(geom, 12, 0)
    case["touched"][:] = np.arange(len(case["x"]))
    case["count"][0] = len(case["x"])
    case["prime"] = True
    assert K.direct_vectors(case["geom"], case["c_in"], 8) > 0
    scatter = {k: v.copy() if isinstance(v, np.ndarray) else v for k, v in case.items()}
    ra = K.conv_layer_dense(*(case.get(n) for n in params("conv_layer_dense")))
    rs = K.conv_layer_step(*(scatter[n] for n in params("conv_layer_step")))
    assert ra[0] > 0 and (ra[0], ra[1], ra[3]) == (rs[0], rs[1], rs[3])
    np.testing.assert_array_equal(case["z"], scatter["z"])


class _Wide(nn.Module):
    """3x3 convs of 16-64 channels at 24x32 (blocks 16x1, 8x2, 4x4; 16 -> 16 channels with the
    shape fixed), stride 2, a residual add."""

    def __init__(self):
        super().__init__()
        self.a = nn.Conv2d(3, 32, 3, padding=1)
        self.b = nn.Conv2d(32, 32, 3, padding=1)
        self.c = nn.Conv2d(32, 64, 3, stride=2, padding=1)
        self.d = nn.Conv2d(64, 16, 3, padding=1)
        self.e = nn.Conv2d(16, 16, 3, padding=1)

    def forward(self, x):
        y = torch.relu(self.a(x))
        y = torch.relu(self.b(y)) + y
        return self.e(torch.relu(self.d(torch.relu(self.c(y)))))


@pytest.mark.slow
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_wide_net_dense_equals_reference_and_scatter(dtype):
    """A network whose dense layers all run the direct conv, forced dense on every frame:
    outputs as ``sd.reference``'s (up to float rounding), counters identical to the scatter's."""
    torch.manual_seed(1)
    frames = _video(6)
    net = sd.convert(_Wide().eval(), frames.shape[1:], scale=32.0)
    ref = sd.reference(net, frames, progress=False)
    t = len(frames)
    dense, d_stats, paths = _run(net, frames, ["dense"] * t, dtype)
    scatter, s_stats, _ = _run(net, frames, ["scatter"] * t, dtype)
    tol = 1e-4 if dtype == np.float32 else 1e-6
    for out in (dense, scatter):
        assert np.abs(out - ref).max() / np.ptp(ref) <= tol
    np.testing.assert_array_equal(d_stats, s_stats)
    assert all(p == {q: t * (q == "dense") for q in p} for p in paths.values())
