"""The dense path's conv for one output channel (``kernels/narrowconv.py``).

The kernel against its NumPy twin (window rows of whole vectors and tails, strides, kernel
sizes, several output channels, bias or not), the rule that picks it, the dense layer that
uses it against its twin and the scatter, and a network whose last conv has one output
channel forced onto the dense path against ``sd.reference`` with the scatter's counters.
"""

import numpy as np
import pytest
import torch
import torch.nn as nn
from _twins import check_dense_against_twin_and_scatter, check_whole_conv_against_twin, conv_geom
from test_recompute import _dense_case, _run, _video

import sigmadelta as sd
from sigmadelta import kernels as K

#: (h, w, c_in, c_out, kernel, stride, padding): rows of whole vectors and with tails, one
#: and several output channels, stride 1 and 2, non-square kernels
SHAPES = [(18, 22, 48, 1, (3, 3), (1, 1), (1, 1)), (7, 9, 5, 1, (3, 3), (1, 1), (1, 1)),
          (9, 13, 16, 3, (3, 3), (2, 2), (1, 1)), (8, 11, 7, 2, (5, 3), (2, 1), (2, 1)),
          (5, 6, 40, 1, (1, 3), (1, 2), (0, 1))]



@pytest.mark.parametrize("shape", SHAPES)
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_narrow_conv_matches_twin(shape, dtype):
    """The twin's sums up to rounding, bias or not, the whole of ``z`` written (it starts as NaN)."""
    check_whole_conv_against_twin("narrow_conv", shape, dtype, seed=shape[2] + shape[3])


def test_narrow_conv_exact_on_integers():
    """Integer inputs and weights (sums exact in float64, as a ``"lava"`` layer's): ``z`` bit
    for bit the GEMM's."""
    geom, n_out = conv_geom(9, 26, 1, (3, 3), (1, 1), (1, 1))
    rng = np.random.default_rng(3)
    P = np.rint(50 * rng.normal(size=11 * 28 * 12))
    w_cl = np.rint(20 * rng.normal(size=(3, 3, 12, 1)))
    bias = np.rint(100 * rng.normal(size=n_out))
    za, zb = np.zeros(n_out), np.zeros(n_out)
    K.narrow_conv(P, w_cl, za, bias, True, geom, 12)
    K.conv_gemm(P, w_cl, zb, bias, True, np.zeros(64 * 108), geom, 12)
    np.testing.assert_array_equal(za, zb)


@pytest.mark.parametrize("c_in,c_out,kw,itemsize,narrow,nv", [
    (48, 1, 3, 4, True, 0), (11, 1, 3, 4, True, 0), (10, 1, 3, 4, False, 0), (6, 1, 3, 8, True, 0),
    (48, 2, 3, 4, False, 0), (48, 8, 3, 4, False, 0), (48, 4, 3, 8, False, 0), (48, 9, 3, 4, False, 1),
    (48, 5, 3, 8, False, 1), (48, 1, 1, 4, False, 0)])
def test_narrow_rule(c_in, c_out, kw, itemsize, narrow, nv):
    """One output channel with window rows of two wide vectors or more: the narrow conv; at most
    half a vector of output channels: never the register blocks (the GEMM, where not narrow)."""
    geom, _ = conv_geom(18, 22, c_out, (kw, kw), (1, 1), (kw // 2, kw // 2))
    assert K.narrow_channels(geom, c_in, itemsize) == narrow
    assert K.direct_vectors(geom, c_in, itemsize) == nv


@pytest.mark.parametrize("herding,dtype", [(True, np.float32), (True, np.float64), (False, np.float64)])
def test_dense_layer_narrow_matches_twin_and_scatter(herding, dtype):
    """``conv_layer_dense`` where the narrow conv runs: ``z`` as the twin's and the scatter's
    (up to rounding), the same memory, counters and listings."""
    case = _dense_case((6, 20, 16, 1, (3, 3), (1, 1), (1, 1)), herding, 4, dtype)
    assert K.narrow_channels(case["geom"], case["c_in"], np.dtype(dtype).itemsize)
    check_dense_against_twin_and_scatter(case, dtype)


class _OneOut(nn.Module):
    """3x3 convs to 16 channels, then to one (a detector's score map), as the demo's last layer."""

    def __init__(self):
        super().__init__()
        self.a = nn.Conv2d(3, 16, 3, stride=2, padding=1)
        self.b = nn.Conv2d(16, 1, 3, padding=1)

    def forward(self, x):
        return self.b(torch.relu(self.a(x)))


@pytest.mark.slow
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_one_output_net_dense_equals_reference_and_scatter(dtype):
    """The network forced dense on every frame (its last conv through the narrow conv):
    outputs as ``sd.reference``'s (up to float rounding), counters identical to the scatter's."""
    torch.manual_seed(2)
    frames = _video(6)
    net = sd.convert(_OneOut().eval(), frames.shape[1:], scale=32.0)
    geom, _ = conv_geom(12, 16, 1, (3, 3), (1, 1), (1, 1))  # the last conv: 24x32 frames halved
    assert K.narrow_channels(geom, 16, np.dtype(dtype).itemsize)
    ref = sd.reference(net, frames, progress=False)
    t = len(frames)
    dense, d_stats, paths = _run(net, frames, ["dense"] * t, dtype)
    scatter, s_stats, _ = _run(net, frames, ["scatter"] * t, dtype)
    tol = 1e-4 if dtype == np.float32 else 1e-6
    for out in (dense, scatter):
        assert np.abs(out - ref).max() / np.ptp(ref) <= tol
    np.testing.assert_array_equal(d_stats, s_stats)
    assert all(p == {q: t * (q == "dense") for q in p} for p in paths.values())
