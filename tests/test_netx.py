"""lava-dl netx networks: bit-exact with Lava's fixed-point simulation, and Loihi timing.

The ground truth in tests/data/lava was made by scripts/lava_ground_truth.py with lava-nc 0.10
and lava-dl 0.6: networks exported by lava-dl's own netx export, run in Lava's fixed-point CPU
model (``Loihi2SimCfg(select_tag="fixed_pt")``), Lava's output sink after every step.
"""

import pathlib
import shutil
import sys

import h5py
import numpy as np
import pytest
import torch
import torch.nn as nn
from _zoo import make, smooth_stream

import sigmadelta as sd
from sigmadelta.io.netx import NetxError, lava_dense_weights
from sigmadelta.numeric import NumericOverflowError
from sigmadelta.weightops import PixelConvOp

DATA = pathlib.Path(__file__).parent / "data" / "lava"
# conv: stride 2 / pad 1 and pad (1, 0); dense; sdnn: conv+conv+dense+dense (lava-dl exports);
# exported: a PyTorch network converted here and written by sd.save_netx (see _exported_model)
NETS = ["conv", "dense", "sdnn", "exported"]


def _exported_model():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Conv2d(2, 4, 3, stride=2, padding=1), nn.ReLU(), nn.Conv2d(4, 6, 3),
                          nn.ReLU(), nn.Flatten(), nn.Linear(36, 10), nn.ReLU(),
                          nn.Linear(10, 3, bias=False)).eval()
    return sd.convert(model, input_shape=(2, 8, 10), quantizer="threshold", threshold=0.02)


def _truth(name: str, run: str):
    d = np.load(DATA / f"{name}.npz")
    return d[f"{run}_frames"].astype(np.float64), d[f"{run}_out"]


@pytest.fixture(scope="module", params=NETS)
def lava_net(request):
    return request.param, sd.load_netx(DATA / f"{request.param}.net")


@pytest.mark.parametrize("run", ["held", "changing"])
def test_reference_bit_exact_with_lava(lava_net, run):
    name, net = lava_net
    frames, truth = _truth(name, run)
    assert len(frames) >= 30
    out = sd.reference(net, frames, timing="pipelined", progress=False)
    assert out.shape == truth.shape
    np.testing.assert_array_equal(out, truth)


@pytest.mark.parametrize("run", ["held", "changing"])
def test_event_engine_bit_exact_with_lava(lava_net, run):
    name, net = lava_net
    frames, truth = _truth(name, run)
    res = sd.simulate(net, frames, timing="pipelined", progress=False)
    np.testing.assert_array_equal(res.outputs, truth)
    assert res.stats.synops.shape == (len(frames), len(net.weight_layers))
    assert res.stats.synops.sum() > 0


def test_pixel_path_equals_event_scatter(lava_net, monkeypatch):
    """netx convs run on the pixel conv path; the generic event scatter gives the same outputs
    and the same counters, step by step."""
    name, net = lava_net
    frames, _ = _truth(name, "changing")
    sim = sd.Simulator(net, timing="pipelined")
    convs = [op for op in sim._weight_ops if op.node.kind == "conv"]
    assert (len(convs) > 0 or name == "dense") and all(isinstance(op, PixelConvOp) for op in convs)
    pixel = sim.run(frames, progress=False)
    monkeypatch.setattr(PixelConvOp, "takes", staticmethod(lambda node: False))
    scatter = sd.simulate(net, frames, timing="pipelined", progress=False)
    np.testing.assert_array_equal(pixel.outputs, scatter.outputs)
    for counter in ("events", "synops", "additions", "neuron_updates"):
        np.testing.assert_array_equal(getattr(pixel.stats, counter), getattr(scatter.stats, counter))


@pytest.mark.parametrize("modes", [["dense"], ["auto"], ["dense", "scatter", "scatter", "dense"]])
def test_lava_conv_paths_bit_exact(lava_net, modes):
    """netx convs on the dense path (the exact integer conv of each step's messages), on the
    automatic choice and switching path every few steps: Lava's output on every step, and
    counters identical to the scatter's (the default path of lava convs)."""
    name, net = lava_net
    frames, truth = _truth(name, "changing")
    base = sd.simulate(net, frames, timing="pipelined", progress=False)
    sim = sd.Simulator(net, timing="pipelined")
    assert all(p == {"scatter": 0, "dense": 0, "gemm": 0} for p in sim.conv_paths.values())
    outs, stats = [], []
    for t, f in enumerate(frames):
        sim.set_conv_path(modes[t % len(modes)])
        outs.append(sim.step(f))
        stats.append(sim.last_stats.copy())
    np.testing.assert_array_equal(np.stack(outs), truth)
    for k, counter in enumerate(("events", "synops", "additions", "neuron_updates")):
        np.testing.assert_array_equal(np.stack(stats)[:, k], getattr(base.stats, counter))
    if modes[0] == "dense" and name != "dense":
        assert all(p["dense"] >= len(frames) // 2 for p in sim.conv_paths.values())
    assert all(p["gemm"] == 0 for p in sim.conv_paths.values())  # never chosen for lava convs


def test_lava_conv_default_path_and_inexact_weights():
    """Lava convs scatter unless asked, and never run gather-GEMM-scatter; a conv whose float64
    GEMM could round (huge weights) stays on the scatter: left out when every layer is asked,
    an error when named."""
    net = sd.load_netx(DATA / "conv.net")
    frames, _ = _truth("conv", "changing")
    sim = sd.Simulator(net, timing="pipelined")
    sim.set_conv_path("gemm")  # every layer: the lava convs are left out
    sim.run(frames[:3], progress=False)
    assert all(p == {"scatter": 3, "dense": 0, "gemm": 0} for p in sim.conv_paths.values())
    with pytest.raises(ValueError, match="'1:conv': a 'lava' conv does not run gather-GEMM-scatter"):
        sim.set_conv_path("gemm", layer="1:conv")
    net.nodes[1].weight = net.nodes[1].weight * 2.0 ** 24
    sim = sd.Simulator(net, timing="pipelined")
    sim.set_conv_path("dense")
    sim.run(np.zeros_like(frames[:3]), progress=False)  # (an input would overflow Lava's int32)
    assert sim.conv_paths["1:conv"] == {"scatter": 3, "dense": 0, "gemm": 0}
    assert sim.conv_paths["2:conv"] == {"scatter": 0, "dense": 3, "gemm": 0}
    with pytest.raises(ValueError, match="'1:conv': this 'lava' conv runs the scatter path only"):
        sim.set_conv_path("dense", layer="1:conv")


def test_lava_dense_layers_read_int8_weights(monkeypatch):
    """Dense netx layers read int8 copies of their integer weights: the same outputs and
    counters as the float weights."""
    from sigmadelta import weightops

    net = sd.load_netx(DATA / "sdnn.net")
    frames, truth = _truth("sdnn", "changing")
    big = sd.load_netx(DATA / "sdnn.net")
    big.nodes[6].weight = big.nodes[6].weight * 20  # beyond int8: the float weights
    assert [op.w8 is None for op in sd.Simulator(big)._weight_ops if op.node.kind == "dense"] == [True, False]
    sim = sd.Simulator(net, timing="pipelined")
    dense = [op for op in sim._weight_ops if op.node.kind == "dense"]
    assert dense and all(op.w8 is not None for op in dense)
    res = sim.run(frames, progress=False)
    monkeypatch.setattr(weightops, "int8_weights", lambda w: None)
    plain = sd.Simulator(net, timing="pipelined")
    assert all(op.w8 is None for op in plain._weight_ops if op.node.kind == "dense")
    other = plain.run(frames, progress=False)
    np.testing.assert_array_equal(res.outputs, truth)
    np.testing.assert_array_equal(other.outputs, truth)
    np.testing.assert_array_equal(res.stats.synops, other.stats.synops)


def test_ground_truth_is_not_trivial(lava_net):
    """The changing run moves the output on most steps, and only the pipelined timing fits it."""
    name, net = lava_net
    frames, truth = _truth(name, "changing")
    assert len(np.unique(truth, axis=0)) > len(truth) // 2
    layers = len(net.weight_layers)
    assert np.all(truth[0] == 0) and np.any(truth[layers] != 0)  # a change takes a step per synapse
    frame = sd.reference(net, frames, timing="frame", progress=False)
    assert np.any(frame != truth)


def test_layout_and_shapes():
    net = sd.load_netx(DATA / "sdnn.net")
    assert net.input_shape == (2, 8, 10)  # (C, H, W), PyTorch layout
    assert net.output_shape == (3,)
    kinds = [n.kind for n in net.nodes]
    assert kinds == ["input", "conv", "activation", "conv", "activation", "flatten", "dense",
                     "activation", "dense"]
    conv = net.nodes[1]
    assert conv.stride == (2, 2) and conv.padding == (1, 1) and conv.quantizer == "lava"
    assert conv.scale == 2 ** 12  # input: x << (spike_exp + state_exp)
    with h5py.File(DATA / "sdnn.net") as f:
        np.testing.assert_array_equal(conv.weight, f["layer/1/weight"][()])  # [out, in, kh, kw] as stored
        assert conv.threshold == int(f["layer/0/neuron/vThMant"][()]) << 12
        np.testing.assert_array_equal(conv.bias, np.trunc(f["layer/1/bias"][()]) * 4096)
    c2 = sd.load_netx(DATA / "conv.net").nodes[3]
    assert c2.padding == (1, 0) and c2.shape == (3, 5, 4)


def test_lava_dense_weight_path():
    """Weights netx and Lava keep exactly come back as they are; clipped ones are clipped."""
    rng = np.random.default_rng(0)
    w = rng.integers(-40, 41, (5, 7)).astype(np.float64)
    np.testing.assert_array_equal(lava_dense_weights(w, "t"), w)
    np.testing.assert_array_equal(lava_dense_weights(4 * w, "t"), 4 * w)
    np.testing.assert_array_equal(lava_dense_weights(np.abs(w), "t"), np.abs(w))
    big = w.copy()
    big[0, 0] = 300
    assert lava_dense_weights(big, "t")[0, 0] == 254


def test_frame_and_pipelined_converge_on_held_input():
    """A converted (herding) net: both timings reach the same values; each matches its reference."""
    model, shape = make("conv")
    net = sd.convert(model, input_shape=shape, scale=64.0)
    frames = smooth_stream(shape, t=6)
    held = np.repeat(frames[:1], 8, axis=0)
    layers = len(net.weight_layers)
    for timing in ("frame", "pipelined"):
        sim = sd.simulate(net, frames, timing=timing, progress=False).outputs
        np.testing.assert_allclose(sim, sd.reference(net, frames, timing=timing, progress=False),
                                   rtol=1e-9, atol=1e-9)
    frame = sd.simulate(net, held, timing="frame", progress=False).outputs
    piped = sd.simulate(net, held, timing="pipelined", progress=False).outputs
    assert not np.allclose(frame[0], piped[0])
    np.testing.assert_allclose(frame[layers:], piped[layers:], rtol=1e-9, atol=1e-9)


def test_pipelined_refuses_cross_stage_nodes_in_the_engine():
    model, shape = make("residual")
    net = sd.convert(model, input_shape=shape, scale=32.0)
    with pytest.raises(NotImplementedError, match="pipelined"):
        sd.Simulator(net, timing="pipelined")
    with pytest.raises(ValueError, match="timing"):
        sd.simulate(net, smooth_stream(shape, t=2), timing="loihi")


def test_wrong_frame_layout_is_refused():
    net = sd.load_netx(DATA / "sdnn.net")
    frames, _ = _truth("sdnn", "held")
    with pytest.raises(ValueError):
        sd.simulate(net, frames.transpose(0, 3, 2, 1), timing="pipelined")  # Lava's (W, H, C)


def test_where_lava_would_wrap_the_engine_and_reference_stop(monkeypatch):
    """conv_wrap.npz: Lava's run of conv.net on an input that jumps 1500-fold at step 12. At step
    13 one step's sum of the first conv leaves the 24 bits Lava's Conv holds it in: both stop
    there, and a dense evaluation that does not stop leaves Lava's output two synapses later."""
    net = sd.load_netx(DATA / "conv.net")
    d = np.load(DATA / "conv_wrap.npz")
    frames, truth = d["frames"].astype(np.float64), d["out"]
    sim = sd.Simulator(net, timing="pipelined")
    with pytest.raises(NumericOverflowError, match=r"layer '1:conv' at frame 13: neuron \d+ "
                       r"received -?\d+ in one step, beyond the 24-bit range"):
        sim.run(frames, progress=False)
    assert sim.frame_no == 13
    np.testing.assert_array_equal(sd.simulate(net, frames[:13], timing="pipelined",
                                              progress=False).outputs, truth[:13])
    with pytest.raises(NumericOverflowError, match="24-bit"):
        sd.reference(net, frames, timing="pipelined", progress=False)
    monkeypatch.setattr(sys.modules["sigmadelta.reference"], "_check_lava_step", lambda *a: None)
    free = sd.reference(net, frames, timing="pipelined", progress=False)
    differs = np.any(free.reshape(len(free), -1) != truth.reshape(len(truth), -1), axis=1)
    assert np.flatnonzero(differs)[0] == 13 + len(net.weight_layers) - 1


def test_input_beyond_lava_int32_is_refused():
    """Lava's input neuron shifts the input left by 12 bits in int32: 2**19 does not fit."""
    net = sd.load_netx(DATA / "conv.net")
    frames, _ = _truth("conv", "held")
    frames = frames[:4].copy()
    frames[2, 1, 4, 5] = 2 ** 19
    for timing, at in (("frame", 2), ("pipelined", 3)):  # pipelined: the layer reads it a step later
        with pytest.raises(NumericOverflowError, match=rf"layer '1:conv' at frame {at}: input "
                           r"neuron \d+ sends a = 2147483648, beyond the int32"):
            sd.simulate(net, frames, timing=timing, progress=False)
    frames[2, 1, 4, 5] = 2 ** 19 - 1  # fits the input neuron, but the conv's step sum cannot
    with pytest.raises(NumericOverflowError, match=r"at frame 3: neuron \d+ received -?\d+ in one step"):
        sd.simulate(net, frames, timing="pipelined", progress=False)


def _edited(tmp_path, edit) -> pathlib.Path:
    p = tmp_path / "x.net"
    shutil.copy(DATA / "sdnn.net", p)
    with h5py.File(p, "r+") as f:
        edit(f)
    return p


def _set(f, key, value):
    del f[key]
    f[key] = value


@pytest.mark.parametrize("edit, match", [
    (lambda f: _set(f, "layer/2/type", np.array([b"pool"])),
     r"layer 2: layer type 'pool' is not supported: lava-dl's netx does not run it either"),
    (lambda f: _set(f, "layer/2/type", np.array([b"average"])), r"layer 2: layer type 'average'"),
    (lambda f: _set(f, "layer/4/neuron/type", "CUBA"), r"layer 4: neuron type 'CUBA'"),
    (lambda f: _set(f, "layer/4/neuron/activation", "sigmoid"), r"layer 4: neuron activation"),
    (lambda f: f.__delitem__("layer/1/weight"), r"layer 1: missing field 'weight'"),
    (lambda f: f.__delitem__("layer/4/neuron/vThMant"), r"layer 4: missing field 'vThMant'"),
    (lambda f: _set(f, "layer/2/shape", np.array([6, 3, 3])), r"layer 2: stored shape .* does not chain"),
    (lambda f: _set(f, "layer/4/weight", np.zeros((10, 35), np.float32)), r"layer 4: dense weight"),
    (lambda f: _set(f, "layer/1/weight", f["layer/1/weight"][()] + 0.5), r"layer 1: field 'weight'"),
    (lambda f: f["layer/4/neuron"].create_dataset("refDelay", data=1), r"layer 4: neuron field 'refDelay'"),
    (lambda f: f["layer/4"].create_dataset("delay", data=np.ones(10)), r"layer 4: field 'delay'"),
    (lambda f: f["layer/5/neuron"].__delitem__("sigma_output"), r"last layer must be .*sigma_output"),
])
def test_bad_netx_files(tmp_path, edit, match):
    with pytest.raises(NetxError, match=match):
        sd.load_netx(_edited(tmp_path, edit))


def test_truncated_and_foreign_files(tmp_path):
    data = (DATA / "sdnn.net").read_bytes()
    (tmp_path / "cut.net").write_bytes(data[: len(data) // 2])
    with pytest.raises(NetxError, match="truncated|corrupt|not an HDF5"):
        sd.load_netx(tmp_path / "cut.net")
    model, shape = make("linear")
    sd.save(sd.convert(model, input_shape=shape), tmp_path / "ours.h5")
    with pytest.raises(NetxError, match="not a netx network"):
        sd.load_netx(tmp_path / "ours.h5")
    with pytest.raises(FileNotFoundError):
        sd.load_netx(tmp_path / "missing.net")


def _datasets(path) -> dict:
    out = {}
    with h5py.File(path) as f:
        f.visititems(lambda k, v: out.__setitem__(k, v[()]) if isinstance(v, h5py.Dataset) else None)
    return out


def test_save_netx_writes_the_file_lava_ran(tmp_path):
    """The checked-in exported.net (run by Lava for the ground truth) is what save_netx writes."""
    net = _exported_model()
    sd.save_netx(net, tmp_path / "x.net")
    ours, theirs = _datasets(tmp_path / "x.net"), _datasets(DATA / "exported.net")
    assert ours.keys() == theirs.keys()
    for k in ours:
        np.testing.assert_array_equal(ours[k], theirs[k], err_msg=k)
    w = np.rint(net.weight_layers[0].weight * 64)  # 6 fractional bits
    np.testing.assert_array_equal(theirs["layer/1/weight"], w)
    # Lava's units: inputs round(64 x), the sink holds 2**18 times our output
    frames = smooth_stream((2, 8, 10), t=30)
    ours = sd.reference(net, frames, timing="pipelined", progress=False)
    lava = sd.reference(sd.load_netx(tmp_path / "x.net"), np.rint(64 * frames), timing="pipelined",
                        progress=False) / 2 ** 18
    assert np.corrcoef(ours.ravel(), lava.ravel())[0, 1] > 0.9


def test_round_trip_of_an_imported_network(tmp_path):
    net = sd.load_netx(DATA / "sdnn.net")
    sd.save_netx(net, tmp_path / "rt.net")
    back = sd.load_netx(tmp_path / "rt.net")
    frames, truth = _truth("sdnn", "changing")
    np.testing.assert_array_equal(sd.simulate(back, frames, timing="pipelined", progress=False).outputs,
                                  truth)
    for a, b in zip(net.nodes, back.nodes, strict=True):
        assert a.kind == b.kind and a.shape == b.shape
        for key in ("weight", "bias", "threshold", "scale"):
            if hasattr(a, key):
                np.testing.assert_array_equal(getattr(a, key), getattr(b, key))


@pytest.mark.parametrize("zoo, quantizer, match", [
    ("linear", "herding", r"'herding' quantizer"),
    ("bn2d_maxpool", "threshold", r"\(pool\): lava-dl.s netx loader does not run pool layers"),
    ("residual", "threshold", r"residual|must follow"),
    ("leaky_bn1d_dropout", "threshold", r"'leaky' activation"),
    ("linear", "threshold", r"output layer .* has a bias"),
])
def test_save_netx_refuses_what_netx_cannot_hold(tmp_path, zoo, quantizer, match):
    model, shape = make(zoo)
    net = sd.convert(model, input_shape=shape, quantizer=quantizer,
                     **({"threshold": 0.05} if quantizer == "threshold" else {}))
    with pytest.raises(NetxError, match=match):
        sd.save_netx(net, tmp_path / "x.net")
    assert not (tmp_path / "x.net").exists()


def test_cli_info_simulate_export(tmp_path, capsys):
    from sigmadelta.cli import main

    assert main(["info", str(DATA / "sdnn.net")]) == 0
    assert "lava-dl netx" in capsys.readouterr().out
    frames, truth = _truth("sdnn", "changing")
    np.save(tmp_path / "f.npy", frames.astype(np.float32))
    run = tmp_path / "run.h5"
    assert main(["simulate", str(DATA / "sdnn.net"), str(tmp_path / "f.npy"), "-o", str(run), "-q"]) == 0
    _, outputs, complete = sd.read_run(run)
    assert complete
    np.testing.assert_array_equal(outputs, truth)  # pipelined by default for netx files
    sd.save(_exported_model(), tmp_path / "net.h5")
    assert main(["export", "--netx", str(tmp_path / "net.h5"), "-o", str(tmp_path / "x.net")]) == 0
    assert _datasets(tmp_path / "x.net").keys() == _datasets(DATA / "exported.net").keys()
