"""Networks written like the common families convert and simulate equal to the dense reference;
families that need what is not supported yet are refused with an error that says what."""

import numpy as np
import pytest
import torch
from _families import CONVERTS, REFUSED, SHAPE, make
from _zoo import smooth_stream

import sigmadelta as sd


def _rel_err(a, b):
    return np.abs(a - b).max() / max(np.ptp(b), 1e-12)


@pytest.mark.parametrize("name", sorted(CONVERTS))
def test_family_converts_and_simulates_equal_to_reference(name):
    model = make(CONVERTS[name])
    frames = smooth_stream(SHAPE, t=4)
    net = sd.convert(model, SHAPE, scale=256.0)
    res = sd.simulate(net, frames, progress=False)
    ref = sd.reference(net, frames, progress=False)
    assert _rel_err(res.outputs, ref) <= 1e-6
    with torch.no_grad():
        ann = model(torch.from_numpy(frames)).numpy()
    assert _rel_err(ref, ann) < 0.05  # and the reference is the model, up to the scale's rounding
    assert res.stats.synops[1:].sum() < res.stats.dense_macs[1:].sum()


@pytest.mark.parametrize("name", sorted(REFUSED))
def test_family_needing_what_is_not_supported_is_refused_clearly(name):
    factory, match = REFUSED[name]
    with pytest.raises(sd.UnsupportedLayerError, match=match):
        sd.convert(make(factory), SHAPE)
