"""The event-driven simulation equals the dense reference on every frame, for every layer type."""

import numpy as np
import pytest
from _zoo import ZOO, ann, make, smooth_stream

import sigmadelta as sd


def _rel_err(a, b):
    return np.abs(a - b).max() / max(np.ptp(b), 1e-12)


@pytest.mark.parametrize("name", sorted(ZOO))
@pytest.mark.parametrize("quant", ["herding", "threshold"])
def test_simulate_equals_reference(name, quant):
    model, shape = make(name)
    frames = smooth_stream(shape)
    kw = dict(scale=64.0) if quant == "herding" else dict(quantizer="threshold", threshold=0.01)
    net = sd.convert(model, shape, **kw)
    res = sd.simulate(net, frames, progress=False)
    ref = sd.reference(net, frames, progress=False)
    assert res.outputs.shape == ref.shape == (len(frames), *net.output_shape)
    assert _rel_err(res.outputs, ref) <= 1e-4
    assert res.stats.synops.shape == (len(frames), len(net.weight_layers))
    assert res.stats.synops[1:].sum() < res.stats.dense_macs[1:].sum()


@pytest.mark.parametrize("name", sorted(ZOO))
def test_fine_herding_approaches_ann(name):
    model, shape = make(name)
    frames = smooth_stream(shape, t=6)
    expected = ann(model, frames)
    errs = []
    for k in (16.0, 4096.0):
        net = sd.convert(model, shape, scale=k)
        errs.append(_rel_err(sd.simulate(net, frames, progress=False).outputs, expected))
    assert errs[1] < 2e-3
    assert errs[1] < errs[0]


def test_stream_in_pieces_equals_whole():
    model, shape = make("residual")
    frames = smooth_stream(shape, t=10)
    net = sd.convert(model, shape, scale=32.0)
    whole = sd.simulate(net, frames, progress=False).outputs
    sim = sd.Simulator(net)
    first = sim.run(frames[:4], progress=False).outputs
    rest = np.stack([sim.step(f) for f in frames[4:]])
    np.testing.assert_array_equal(np.concatenate([first, rest]), whole)
    sim.reset()
    np.testing.assert_array_equal(sim.run(frames, progress=False).outputs, whole)


def test_iterable_and_torch_frames():
    import torch

    model, shape = make("conv")
    frames = smooth_stream(shape, t=5)
    net = sd.convert(model, shape)
    a = sd.simulate(net, frames, progress=False).outputs
    b = sd.simulate(net, (f for f in frames), progress=False).outputs
    c = sd.simulate(net, torch.from_numpy(frames), progress=False).outputs
    np.testing.assert_array_equal(a, b)
    np.testing.assert_array_equal(a, c)


def test_per_layer_scales_by_list_and_dict():
    model, shape = make("linear")
    frames = smooth_stream(shape)
    net1 = sd.convert(model, shape, scale=[8.0, 100.0])
    net2 = sd.convert(model, shape, scale={"0": 8.0, "2": 100.0})
    assert [n.scale for n in net1.weight_layers] == [8.0, 100.0]
    np.testing.assert_array_equal(sd.simulate(net1, frames, progress=False).outputs,
                                  sd.simulate(net2, frames, progress=False).outputs)


@pytest.mark.parametrize("name", ["linear", "conv_stride_pad_dil", "conv_groups_depthwise", "residual",
                                  "decoder"])
def test_per_unit_scales(name):
    model, shape = make(name)
    frames = smooth_stream(shape)
    base = sd.convert(model, shape)
    rng = np.random.default_rng(0)
    scales = {n.name: rng.uniform(8, 64, base.nodes[n.inputs[0]].shape) for n in base.weight_layers}
    net = sd.convert(model, shape, scale=scales)
    res = sd.simulate(net, frames, progress=False)
    assert _rel_err(res.outputs, sd.reference(net, frames, progress=False)) <= 1e-4
    # one scale per unit equal everywhere is the per-layer scale, events and additions included
    flat = sd.convert(model, shape, scale={k: np.full_like(v, 20.0) for k, v in scales.items()})
    one = sd.simulate(sd.convert(model, shape, scale=20.0), frames, progress=False)
    same = sd.simulate(flat, frames, progress=False)
    np.testing.assert_allclose(same.outputs, one.outputs, rtol=0, atol=1e-9)
    for c in ("events", "synops", "additions"):
        np.testing.assert_array_equal(getattr(same.stats, c), getattr(one.stats, c))
