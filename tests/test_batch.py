"""Several streams at once: batch results equal the per-stream results exactly."""

import numpy as np
import pytest
import torch
from _zoo import make, smooth_stream

import sigmadelta as sd
from sigmadelta.fixedpoint import quantize_weights


@pytest.fixture(scope="module")
def setup():
    model, shape = make("conv")
    net = sd.convert(model, shape, scale=32.0)
    clips = np.stack([smooth_stream(shape, t=6, seed=s) for s in range(3)])
    return net, clips


def _same(a: sd.Result, b: sd.Result) -> None:
    np.testing.assert_array_equal(a.outputs, b.outputs)
    for counter in ("events", "synops", "additions", "neuron_updates"):
        np.testing.assert_array_equal(getattr(a.stats, counter), getattr(b.stats, counter))


@pytest.mark.parametrize("workers", [1, 2])
def test_simulate_batch_equals_streams(setup, workers):
    net, clips = setup
    single = [sd.simulate(net, c, progress=False) for c in clips]
    batch = sd.simulate_batch(net, list(clips), workers=workers)
    assert len(batch) == len(clips)
    for a, b in zip(batch, single, strict=True):
        _same(a, b)


def test_simulate_detects_batch_array(setup):
    net, clips = setup
    single = [sd.simulate(net, c, progress=False) for c in clips]
    for frames in (clips, torch.from_numpy(clips)):
        batch = sd.simulate(net, frames, workers=2)
        assert isinstance(batch, list) and len(batch) == len(clips)
        for a, b in zip(batch, single, strict=True):
            _same(a, b)


def test_batch_float32_and_fixed_point(setup):
    net, clips = setup
    single = [sd.simulate(net, c, progress=False, dtype=np.float32) for c in clips]
    for a, b in zip(sd.simulate_batch(net, clips, dtype=np.float32), single, strict=True):
        _same(a, b)
    model, shape = make("conv")
    fixed = quantize_weights(sd.convert(model, shape, scale=32.0), 8)
    single = [sd.simulate(fixed, c, progress=False) for c in clips]
    for a, b in zip(sd.simulate_batch(fixed, clips), single, strict=True):
        _same(a, b)


def test_batch_errors(setup):
    net, clips = setup
    with pytest.raises(ValueError, match="no streams"):
        sd.simulate_batch(net, [])
    with pytest.raises(ValueError, match="record"):
        sd.simulate(net, clips, record="x.h5")
    with pytest.raises(ValueError, match="shape"):
        sd.simulate_batch(net, [clips[0], clips[1][:, :1]])
