"""Bad input gets a clear error, raised before any work."""

import numpy as np
import pytest
import torch.nn as nn
from _zoo import make, smooth_stream

import sigmadelta as sd


@pytest.fixture(scope="module")
def net():
    model, shape = make("conv")
    return sd.convert(model, shape)


def test_wrong_frame_shape(net):
    with pytest.raises(ValueError, match="shape"):
        sd.simulate(net, np.zeros((3, 2, 8, 9), np.float32))
    with pytest.raises(ValueError, match="frame 1 has shape"):
        sd.simulate(net, [np.zeros((2, 8, 8), np.float32), np.zeros((2, 8, 9), np.float32)])
    with pytest.raises(ValueError, match="shape"):
        sd.Simulator(net).step(np.zeros((8, 8), np.float32))


def test_wrong_dtype(net):
    with pytest.raises(TypeError, match="uint8"):
        sd.simulate(net, np.zeros((3, 2, 8, 8), np.uint8))
    with pytest.raises(TypeError, match="dtype"):
        sd.simulate(net, [np.zeros((2, 8, 8), np.int64)])


@pytest.mark.parametrize("bad,word", [(np.nan, "NaN"), (np.inf, "Inf")])
def test_nan_inf(net, bad, word):
    frames = smooth_stream((2, 8, 8), t=4)
    frames[2, 1, 3, 3] = bad
    with pytest.raises(ValueError, match=f"frame 2 contains {word}"):
        sd.simulate(net, frames)
    with pytest.raises(ValueError, match=word):
        sd.reference(net, frames)


def test_empty_stream(net):
    with pytest.raises(ValueError, match="empty"):
        sd.simulate(net, np.zeros((0, 2, 8, 8), np.float32))
    with pytest.raises(ValueError, match="empty"):
        sd.simulate(net, iter([]))


@pytest.mark.parametrize("scale", [0.0, -1.0, float("nan"), [1.0, 0.0], {"0": 2.0, "3": -2.0}])
def test_bad_scale(scale):
    model, shape = make("conv")
    with pytest.raises(ValueError, match="scale"):
        sd.convert(model, shape, scale=scale)


def test_bad_scale_spec_and_quantizer():
    model, shape = make("conv")
    with pytest.raises(ValueError, match="2 weight layers"):
        sd.convert(model, shape, scale=[1.0, 2.0, 3.0])
    with pytest.raises(ValueError, match="unknown layers"):
        sd.convert(model, shape, scale={"0": 1.0, "9": 2.0})
    with pytest.raises(ValueError, match="quantizer"):
        sd.convert(model, shape, quantizer="magic")
    with pytest.raises(ValueError, match="threshold"):
        sd.convert(model, shape, quantizer="threshold")
    with pytest.raises(ValueError, match="threshold"):
        sd.convert(model, shape, quantizer="threshold", threshold=-0.1)
    with pytest.raises(ValueError, match="input_shape"):
        sd.convert(model, (3, 8, 8))


def test_unsupported_layer_names_path_and_type():
    model = nn.Sequential(nn.Linear(4, 4), nn.Sequential(nn.ReLU(), nn.SELU()), nn.Linear(4, 2))
    with pytest.raises(sd.UnsupportedLayerError, match=r"'1\.1'.*SELU"):
        sd.convert(model, (4,))
    with pytest.raises(sd.UnsupportedLayerError, match="ceil_mode"):
        sd.convert(nn.Sequential(nn.Conv2d(1, 2, 3), nn.MaxPool2d(2, ceil_mode=True)), (1, 9, 9))
    with pytest.raises(sd.UnsupportedLayerError, match="BatchNorm without running statistics"):
        sd.convert(nn.Sequential(nn.Conv2d(1, 2, 3), nn.ReLU(),
                                 nn.BatchNorm2d(2, track_running_stats=False)), (1, 9, 9))
    with pytest.raises(sd.UnsupportedLayerError, match="no Linear or Conv2d"):
        sd.convert(nn.Sequential(nn.ReLU()), (4,))
