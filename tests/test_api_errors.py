"""Bad arguments to the Python API name the parameter, layer or file at fault."""

import numpy as np
import pytest
import torch
import torch.nn as nn
from _zoo import ann, make, smooth_stream

import sigmadelta as sd


def test_convert_none():
    with pytest.raises(TypeError, match="model must be a torch.nn.Module, got NoneType"):
        sd.convert(None, (4,))


def test_scale_none_names_the_layer():
    model, shape = make("conv")
    with pytest.raises(ValueError, match="scale of layer '0' must be a positive number, got None"):
        sd.convert(model, shape, scale=None)
    with pytest.raises(ValueError, match="scale of layer '3' must be a positive number, got None"):
        sd.convert(model, shape, scale=[8.0, None])


def test_adaptive_pool_with_none_keeps_that_axis():
    """``AdaptiveAvgPool2d((None, 1))`` keeps the height and averages the width, as torch does."""
    torch.manual_seed(0)
    model = nn.Sequential(nn.Conv2d(2, 3, 3, padding=1), nn.ReLU(), nn.AdaptiveAvgPool2d((None, 1)),
                          nn.Flatten(), nn.Linear(3 * 8, 4))
    frames = smooth_stream((2, 8, 8), t=5)
    net = sd.convert(model, (2, 8, 8), scale=4096.0)
    assert net.nodes[3].kernel == (1, 8)
    out = sd.simulate(net, frames, progress=False).outputs
    np.testing.assert_allclose(out, sd.reference(net, frames, progress=False), rtol=1e-6, atol=1e-9)
    expected = ann(model, frames)
    assert np.abs(out - expected).max() < 2e-3 * np.ptp(expected)


def test_double_model_names_the_parameter():
    model, shape = make("conv")
    with pytest.raises(TypeError, match=r"parameter '0\.weight' is float64 \(model\.double\(\)\?\)"):
        sd.convert(model.double(), shape)


class TwoInputs(nn.Module):
    def __init__(self):
        super().__init__()
        self.fc = nn.Linear(4, 2)

    def forward(self, x, y):
        return self.fc(x + y)


def test_two_input_model_names_the_inputs():
    with pytest.raises(sd.UnsupportedLayerError, match=r"takes 2 inputs \(x, y\).*one input"):
        sd.convert(TwoInputs(), (4,))


@pytest.mark.parametrize("dtype", [np.int64, np.float16, bool, "complex128", "no-such-type"])
def test_simulate_refuses_other_dtypes_by_name(dtype):
    model, shape = make("conv")
    net = sd.convert(model, shape)
    with pytest.raises(TypeError, match=r"dtype=.* is not supported: .* float32 or float64"):
        sd.simulate(net, smooth_stream(shape, t=3), dtype=dtype, progress=False)


def test_simulate_accepts_float32_and_float64():
    model, shape = make("conv")
    net = sd.convert(model, shape)
    frames = smooth_stream(shape, t=4)
    ref = sd.reference(net, frames, progress=False)
    for dtype, tol in ((np.float64, 1e-9), (np.float32, 1e-4)):
        out = sd.simulate(net, frames, dtype=dtype, progress=False).outputs
        assert np.abs(out - ref).max() <= tol * max(np.ptp(ref), 1.0)
