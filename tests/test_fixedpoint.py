"""Fixed-point weights and integer accumulators: bit-exact simulation, overflow detection."""

import numpy as np
import pytest
from _zoo import make, smooth_stream

import sigmadelta as sd
from sigmadelta.fixedpoint import AccumulatorOverflowError, integer_weights
from sigmadelta.kernels import fixed_point_update
from sigmadelta.kernels import numpy_twins as T


@pytest.mark.parametrize("name", ["linear", "conv_groups_depthwise", "bn2d_maxpool", "avgpool_adaptive",
                                  "residual", "concat", "decoder", "routing"])
def test_bit_exact_against_integer_reference(name):
    model, shape = make(name)
    frames = smooth_stream(shape, t=8)
    net = sd.convert(model, shape, scale=16.0, weight_bits=6)
    for layer in net.weight_layers:
        w_int = integer_weights(layer)
        assert np.abs(w_int).max() == 2 ** 5 - 1
        np.testing.assert_array_equal((w_int * layer.weight_scale).astype(np.float32), layer.weight)
    res = sd.simulate(net, frames, progress=False)
    np.testing.assert_array_equal(res.outputs, sd.reference(net, frames, progress=False))
    # and close to the float-weight network
    ref_float = sd.simulate(sd.convert(model, shape, scale=16.0), frames, progress=False).outputs
    assert np.abs(res.outputs - ref_float).max() < 0.2 * np.ptp(ref_float) + 1e-6


def test_per_layer_bits_and_save_load(tmp_path):
    model, shape = make("linear")
    net = sd.convert(model, shape, weight_bits={"0": 4, "2": 8})
    assert [n.weight_bits for n in net.weight_layers] == [4, 8]
    sd.save(net, tmp_path / "n.h5")
    back = sd.load(tmp_path / "n.h5")
    frames = smooth_stream(shape)
    np.testing.assert_array_equal(sd.simulate(back, frames, progress=False).outputs,
                                  sd.simulate(net, frames, progress=False).outputs)


def test_overflow_is_detected():
    model, shape = make("linear")
    net = sd.convert(model, shape, scale=1e6, weight_bits=12)
    frames = smooth_stream(shape, t=3)
    with pytest.raises(AccumulatorOverflowError, match="layer '0'.*32-bit"):
        sd.simulate(net, frames, progress=False)
    with pytest.raises(AccumulatorOverflowError):
        sd.reference(net, frames, progress=False)
    ok = sd.convert(model, shape, scale=16.0, weight_bits=12)
    sd.simulate(ok, frames, progress=False)


def test_fixed_point_kernel_matches_twin():
    rng = np.random.default_rng(0)
    acc = rng.integers(-300, 300, 20)
    touched = np.arange(20, dtype=np.int64)
    z1, z2 = np.zeros(20), np.zeros(20)
    bias = rng.normal(size=20)
    r1 = fixed_point_update(acc, touched, np.array([20]), 0.01, bias, z1, 255)
    r2 = T.fixed_point_update(acc, touched, np.array([20]), 0.01, bias, z2, 255)
    np.testing.assert_array_equal(z1, z2)
    first = np.flatnonzero((acc > 255) | (acc < -256))
    assert r1 == r2 == (int(first[0]) if len(first) else -1)


def test_bad_weight_bits():
    model, shape = make("linear")
    with pytest.raises(ValueError, match="weight_bits"):
        sd.convert(model, shape, weight_bits=40)
    with pytest.raises(ValueError, match="herding"):
        sd.convert(model, shape, quantizer="threshold", threshold=0.1, weight_bits=8)
