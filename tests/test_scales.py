"""Scale optimisation: the rounding net, its gradient, the optimiser and the calibrations."""

import numpy as np
import pytest
import torch
import torch.nn as nn
from _zoo import make, smooth_stream

import sigmadelta as sd
from sigmadelta import graph as g
from sigmadelta.scales import (
    RoundingNet,
    calibrate_percentile,
    fan_out,
    optimize_scales,
    scale_objective,
    uniform_scales,
)


@pytest.fixture(autouse=True)
def _one_thread():
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


def _tiny():
    torch.manual_seed(0)
    return nn.Sequential(nn.Linear(6, 10), nn.ReLU(), nn.Linear(10, 8), nn.ReLU(), nn.Linear(8, 4)), (6,)


def _stream(shape, t=12, seed=0):
    """A smooth random walk: small changes between frames, so costs depend on the scale."""
    rng = np.random.default_rng(seed)
    x = rng.uniform(0, 1, shape) + np.cumsum(rng.normal(0, 0.05, (t, *shape)), axis=0)
    return x.astype(np.float64)


@pytest.mark.parametrize("name", ["linear", "conv_stride_pad_dil", "residual", "concat", "avgpool_adaptive"])
def test_rounding_net_is_the_dense_reference(name):
    model, shape = make(name)
    frames = smooth_stream(shape, t=6)
    k = calibrate_percentile(model, frames, shape, levels=16)
    net = sd.convert(model, shape, scale=k)
    rn = RoundingNet(net, init=[k[n] for n in net.layer_names], dtype=torch.float64)
    with torch.no_grad():
        y, cost = rn(torch.as_tensor(frames))
    np.testing.assert_allclose(y.numpy(), sd.reference(net, frames, progress=False), atol=1e-10)
    real = sd.simulate(net, frames, progress=False).stats.synops[1:].mean(0)
    assert cost.shape == (len(net.layer_names),)
    assert np.all(cost.numpy() <= 2 * real + 50) and np.all(real <= 2 * cost.numpy() + 50)


@pytest.mark.parametrize("name", ["conv_stride_pad_dil", "conv_groups_depthwise", "linear"])
def test_fan_out_is_in_bounds_fan_out(name):
    model, shape = make(name)
    net = sd.convert(model, shape, scale=1e6)  # every changed input neuron spikes
    frames = np.stack([np.zeros(shape), np.full(shape, 0.5)])
    res = sd.simulate(net, frames, progress=False)
    for j, layer in enumerate(net.weight_layers):
        fan = fan_out(layer, net.nodes[layer.inputs[0]].shape)
        x = sd.Reference(net)
        x.step(frames[0])
        a0 = x.values[layer.inputs[0]][0].numpy()
        x.step(frames[1])
        changed = x.values[layer.inputs[0]][0].numpy() != a0
        assert res.stats.synops[1, j] == fan.numpy()[changed].sum()
        if isinstance(layer, g.Dense):
            assert fan.sum() == layer.dense_macs()


def _objective(rn, x, ref, lam, loss, norm):
    return rn.objective(x, ref, lam, loss, norm)[0]


@pytest.mark.parametrize("quantizer,per,loss,cost", [
    ("herding", "layer", "kl", "soft"), ("herding", "unit", "l2", "synops"),
    ("herding", "layer", "l1", "additions"), ("threshold", "layer", "l1", "soft"),
    ("threshold", "unit", "kl", "soft"),
])
def test_gradient_matches_finite_differences_with_frozen_noise(quantizer, per, loss, cost):
    """Autograd of the straight-through surrogate == central differences of the same
    surrogate with the rounding residuals e frozen at the evaluation point."""
    model, shape = _tiny()
    x = torch.as_tensor(_stream(shape, t=10))
    net = sd.convert(model, shape)
    init = [7.0, 5.0, 9.0] if quantizer == "herding" else [0.04, 0.06, 0.05]
    rn = RoundingNet(net, quantizer, per, init, cost=cost, dtype=torch.float64)
    with torch.no_grad():
        ref = rn(x, quantize=False)[0]
        rn(x)
    rn.frozen_noise = list(rn.last_noise)
    obj = _objective(rn, x, ref, 0.3, loss, 1.0)
    grads = torch.autograd.grad(obj, list(rn.log_q))
    eps = 1e-6
    checked = 0
    for p, gr in zip(rn.log_q, grads, strict=True):
        flat = p.data.view(-1)
        for i in range(0, flat.numel(), max(flat.numel() // 4, 1)):
            old = float(flat[i])
            with torch.no_grad():
                flat[i] = old + eps
                up = float(_objective(rn, x, ref, 0.3, loss, 1.0))
                flat[i] = old - eps
                down = float(_objective(rn, x, ref, 0.3, loss, 1.0))
                flat[i] = old
            fd = (up - down) / (2 * eps)
            assert abs(fd - float(gr.view(-1)[i])) <= 1e-6 + 1e-5 * abs(fd), (i, fd, gr.view(-1)[i])
            checked += 1
    assert checked >= 3 and any(float(gr.abs().sum()) > 0 for gr in grads)


def test_optimiser_lowers_the_objective():
    model, shape = _tiny()
    frames = _stream(shape, t=40)
    init = {n: 8.0 for n in sd.convert(model, shape).layer_names}
    before = scale_objective(model, frames, shape, init, lam=0.1)
    hist = []
    k = optimize_scales(model, frames, shape, lam=0.1, init=init, epochs=15, window=10, history=hist,
                        progress=False)
    after = scale_objective(model, frames, shape, k, lam=0.1)
    assert after["objective"] < 0.9 * before["objective"]
    assert hist[-1]["objective"] < hist[0]["objective"]


def test_larger_lambda_gives_fewer_real_synops():
    model, shape = make("conv")
    frames = smooth_stream(shape, t=16)
    synops = []
    for lam in (0.0, 1.0):
        k = optimize_scales(model, frames, shape, lam=lam, loss="l2", init=16.0, epochs=15, window=8,
                            progress=False)
        res = sd.simulate(sd.convert(model, shape, scale=k), frames, progress=False)
        synops.append(res.stats.synops[1:].sum())
    assert synops[1] < 0.8 * synops[0]


@pytest.mark.parametrize("quantizer", ["herding", "threshold"])
def test_returned_values_are_accepted_by_convert(quantizer):
    model, shape = make("residual")
    frames = smooth_stream(shape, t=6)
    v = optimize_scales(model, frames, shape, lam=0.1, loss="l2", epochs=1, quantizer=quantizer,
                        progress=False)
    net = sd.convert(model, shape)
    assert list(v) == net.layer_names and all(isinstance(x, float) and x > 0 for x in v.values())
    kw = {"scale": v} if quantizer == "herding" else {"quantizer": "threshold", "threshold": v}
    sd.simulate(sd.convert(model, shape, **kw), frames, progress=False)


def test_per_unit_shapes_and_uniform_units_match_per_layer():
    model, shape = make("residual")
    frames = smooth_stream(shape, t=6)
    net = sd.convert(model, shape)
    v = optimize_scales(model, frames, shape, lam=0.1, loss="l2", per="unit", epochs=1, progress=False)
    for layer in net.weight_layers:
        assert v[layer.name].shape == net.nodes[layer.inputs[0]].shape
        assert np.all(v[layer.name] > 0)
    x = torch.as_tensor(frames)
    a = RoundingNet(net, per="layer", init=[10.0] * 4, dtype=torch.float64)
    b = RoundingNet(net, per="unit", init=[10.0] * 4, dtype=torch.float64)
    with torch.no_grad():
        (ya, ca), (yb, cb) = a(x), b(x)
    torch.testing.assert_close(ya, yb)
    torch.testing.assert_close(ca, cb)


def test_percentile_and_uniform_calibrations():
    model, shape = make("concat")
    frames = smooth_stream(shape, t=6)
    net = sd.convert(model, shape)
    k32 = calibrate_percentile(model, frames, shape, percentile=99.9, levels=32)
    k64 = calibrate_percentile(net, frames, levels=64)
    assert list(k32) == net.layer_names
    assert all(v > 0 and np.isfinite(v) for v in k32.values())
    for n in k32:
        assert k64[n] == pytest.approx(2 * k32[n])
    sd.convert(model, shape, scale=k32)
    assert uniform_scales(model, shape, 8.0) == {n: 8.0 for n in net.layer_names}
    assert uniform_scales(net, k=4) == {n: 4.0 for n in net.layer_names}


@pytest.mark.parametrize("kwargs,match", [
    (dict(lam=-0.1), "lam"),
    (dict(lam=float("nan")), "lam"),
    (dict(loss="mse"), "loss"),
    (dict(per="channel"), "per"),
    (dict(quantizer="sign"), "quantizer"),
    (dict(epochs=0), "epochs"),
    (dict(lr=0.0), "lr"),
    (dict(init=-1.0), "init"),
    (dict(frames=np.zeros((1, 6))), "at least 2 frames"),
    (dict(frames=np.zeros((4, 5))), "shape"),
    (dict(frames=np.full((4, 6), np.nan)), "NaN"),
])
def test_invalid_arguments_raise_clear_errors(kwargs, match):
    model, shape = _tiny()
    args = dict(frames=_stream(shape, t=4), lam=0.1, epochs=1, progress=False)
    args.update(kwargs)
    with pytest.raises(ValueError, match=match):
        optimize_scales(model, input_shape=shape, **args)


def test_kl_needs_a_vector_output_and_percentile_checks_arguments():
    model, shape = make("conv_stride_pad_dil")
    frames = smooth_stream(shape, t=4)
    if len(sd.convert(model, shape).output_shape) != 1:
        with pytest.raises(ValueError, match="kl"):
            optimize_scales(model, frames, shape, lam=0.1, loss="kl", epochs=1, progress=False)
    with pytest.raises(ValueError, match="percentile"):
        calibrate_percentile(model, frames, shape, percentile=0)
    with pytest.raises(ValueError, match="levels"):
        calibrate_percentile(model, frames, shape, levels=-1)
    with pytest.raises(ValueError, match="input_shape"):
        uniform_scales(model, None, 4.0)


def test_per_unit_scales_run_in_the_engine():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Conv2d(1, 3, 3, padding=1), nn.ReLU(), nn.Flatten(), nn.Linear(3 * 36, 4))
    rng = np.random.default_rng(0)
    frames = (0.5 + 0.2 * np.sin(0.3 * np.arange(16)[:, None, None, None]
                                 + rng.random((1, 1, 6, 6)) * 6)).astype(np.float32)
    scales = sd.optimize_scales(model, frames, (1, 6, 6), lam=0.1, loss="l2", per="unit", epochs=2,
                                progress=False)
    net = sd.convert(model, (1, 6, 6), scale=scales)
    res = sd.simulate(net, frames, progress=False)
    ref = sd.reference(net, frames, progress=False)
    assert np.abs(res.outputs - ref).max() <= 1e-4 * max(np.ptp(ref), 1e-9)
