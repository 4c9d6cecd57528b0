"""The dense path's conv for a few output channels (``kernels/smallconv.py``).

The kernel against its NumPy twin (blocks of four pixels and row tails, strides, kernel
sizes, one and several input channels, bias or not), exact on integers as the GEMM, the rule
that picks it, and the dense layer that uses it (through ``conv_gemm``) against its twin and
the scatter.
"""

import numpy as np
import pytest
from _twins import check_dense_against_twin_and_scatter, check_whole_conv_against_twin, conv_geom
from test_recompute import _dense_case

from sigmadelta import kernels as K

#: (h, w, c_in, c_out, kernel, stride, padding): the demo's layer 1 (1 -> 8, stride 2), rows
#: of 4k pixels and with tails, fewer output channels than lanes, non-square kernels
SHAPES = [(72, 88, 1, 8, (3, 3), (2, 2), (1, 1)), (9, 13, 3, 5, (3, 3), (1, 1), (1, 1)),
          (8, 11, 7, 4, (5, 3), (2, 1), (2, 1)), (6, 7, 16, 8, (1, 3), (1, 2), (0, 1))]


@pytest.mark.parametrize("shape", SHAPES)
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_small_conv_matches_twin(shape, dtype):
    """The twin's sums up to rounding, bias or not, the whole of ``z`` written (it starts as NaN);
    at most one short vector of output channels (8 float32, 4 float64 lanes)."""
    h, w, c_in, c_out, k, stride, padding = shape
    c_out = min(c_out, 32 // np.dtype(dtype).itemsize)
    check_whole_conv_against_twin("small_conv", (h, w, c_in, c_out, k, stride, padding), dtype,
                                  seed=c_in + c_out)


def test_small_conv_exact_on_integers():
    """Integer inputs and weights (sums exact in float64): ``z`` bit for bit the BLAS GEMM's
    (``np.dot`` of the im2col rows, as ``conv_gemm`` ran before it took this kernel)."""
    geom, n_out = conv_geom(9, 26, 4, (3, 3), (1, 1), (1, 1))
    rng = np.random.default_rng(3)
    P = np.rint(50 * rng.normal(size=11 * 28 * 3))
    w_cl = np.rint(20 * rng.normal(size=(3, 3, 3, 4)))
    bias = np.rint(100 * rng.normal(size=n_out * 4))
    za = np.zeros(n_out * 4)
    K.small_conv(P, w_cl, za, bias, True, geom, 3)
    img = P.reshape(11, 28, 3)
    cols = np.stack([img[y:y + 3, x:x + 3].ravel() for y in range(9) for x in range(26)])
    np.testing.assert_array_equal(za, (cols @ w_cl.reshape(27, 4)).ravel() + bias)


@pytest.mark.parametrize("c_in,c_out,k,itemsize,small", [
    (1, 8, 3, 4, True), (16, 4, 3, 4, True), (17, 8, 3, 4, False), (1, 3, 3, 4, False),
    (1, 9, 3, 4, False), (1, 2, 3, 8, True), (1, 4, 3, 8, True), (1, 5, 3, 8, False),
    (8, 8, 1, 4, False)])
def test_small_rule(c_in, c_out, k, itemsize, small):
    """Half a short vector to a whole one of output channels, up to 16 input channels, a kernel
    larger than 1x1; never where the wide register blocks run."""
    geom, _ = conv_geom(18, 22, c_out, (k, k), (1, 1), (k // 2, k // 2))
    assert K.small_channels(geom, c_in, itemsize) == small
    if small:
        assert K.direct_vectors(geom, c_in, itemsize) == 0
        assert not K.narrow_channels(geom, c_in, itemsize)


@pytest.mark.parametrize("herding,dtype", [(True, np.float32), (True, np.float64), (False, np.float64)])
def test_dense_layer_small_matches_twin_and_scatter(herding, dtype):
    """``conv_layer_dense`` where the small conv runs: ``z`` as the twin's and the scatter's
    (up to rounding), the same memory, counters and listings."""
    case = _dense_case((10, 14, 1, 8 if dtype == np.float32 else 4, (3, 3), (2, 2), (1, 1)),
                       herding, 5, dtype)
    assert K.small_channels(case["geom"], case["c_in"], np.dtype(dtype).itemsize)
    check_dense_against_twin_and_scatter(case, dtype)
