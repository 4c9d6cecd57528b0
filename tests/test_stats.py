"""Accounting against brute-force counts, and the cost of frames that do not change."""

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from _zoo import make, smooth_stream

import sigmadelta as sd
from sigmadelta import graph as g


def _fanout(layer, in_shape):
    """In-bounds fan-out of every input neuron (PyTorch layout), by convolving ones."""
    if isinstance(layer, g.Dense):
        return np.full(in_shape, layer.weight.shape[0], float)
    ones = torch.ones(layer.weight.shape, dtype=torch.float64)
    n = int(np.prod(in_shape))
    eye = torch.eye(n, dtype=torch.float64).reshape(n, *in_shape)
    out = F.conv2d(eye, ones, stride=layer.stride, padding=layer.padding, dilation=layer.dilation,
                   groups=layer.groups)
    return out.reshape(n, -1).sum(1).numpy().reshape(in_shape)


@pytest.mark.parametrize("name", ["linear", "conv_stride_pad_dil", "conv_groups_depthwise", "residual"])
def test_counts_match_brute_force(name):
    model, shape = make(name)
    frames = smooth_stream(shape, t=8)
    net = sd.convert(model, shape, scale=20.0)
    res = sd.simulate(net, frames, progress=False)
    ref = sd.Reference(net)
    layers = [(i, n) for i, n in enumerate(net.nodes) if isinstance(n, (g.Dense, g.Conv))]
    fan = [_fanout(n, net.nodes[n.inputs[0]].shape) for _, n in layers]
    prev = [np.zeros(net.nodes[n.inputs[0]].shape) for _, n in layers]
    for t, frame in enumerate(frames):
        ref.step(frame)
        for j, (_, layer) in enumerate(layers):
            x = ref.values[layer.inputs[0]][0].numpy()
            q = np.rint(layer.scale * x)
            s = q - prev[j]
            prev[j] = q
            assert res.stats.events[t, j] == np.count_nonzero(s)
            assert res.stats.synops[t, j] == fan[j][s != 0].sum()
            assert res.stats.additions[t, j] == (np.abs(s) * fan[j]).sum()
    assert np.all(res.stats.dense_macs == net.dense_macs())


def test_unchanging_frames_cost_nothing():
    model, shape = make("residual")
    frames = smooth_stream(shape, t=6)
    frames = np.concatenate([frames, np.repeat(frames[-1:], 4, axis=0)])
    for kw in (dict(scale=32.0), dict(quantizer="threshold", threshold=0.02)):
        res = sd.simulate(sd.convert(model, shape, **kw), frames, progress=False)
        for counter in ("events", "synops", "additions", "neuron_updates"):
            assert getattr(res.stats, counter)[6:].sum() == 0, counter
        assert res.stats.synops[:6].sum() > 0
        np.testing.assert_array_equal(res.outputs[6:], np.repeat(res.outputs[5:6], 4, axis=0))


def test_first_frame_sends_everything_then_only_changes():
    model, shape = make("conv")
    frames = smooth_stream(shape, t=5, moving=0.1)
    res = sd.simulate(sd.convert(model, shape, scale=32.0), frames, progress=False)
    assert res.stats.neuron_updates[0, 0] == 4 * 6 * 6
    assert res.stats.neuron_updates[1:, 0].max() < 4 * 6 * 6


def test_summary_and_energy():
    model, shape = make("linear")
    res = sd.simulate(sd.convert(model, shape), smooth_stream(shape), progress=False)
    s = res.stats
    text = s.summary()
    assert "total" in text and "energy" in text and "reduction" in text
    for name in s.layer_names:
        assert name in text
    e = s.energy()
    assert e["dense_fp32_mac"] == pytest.approx(s.dense_macs.sum() * 4.6e-12)
    assert e["sigma_delta_fp32"] == pytest.approx(s.synops.sum() * 0.9e-12)
    assert e["sigma_delta_int32"] == pytest.approx(s.synops.sum() * 0.1e-12)
    assert s.total_reduction() == pytest.approx(s.dense_macs.sum() / s.synops.sum())
