"""stages=2: a network cut at a cut node runs as two programs in two threads
(sigmadelta.stages). Every output, counter, path choice and error must be the single-stage
run's, at every cut node, in both timings, for float32/float64, the lava encoders and fixed point."""

import pathlib

import numpy as np
import pytest
import torch.nn as nn
from _zoo import make, smooth_stream

import sigmadelta as sd
import sigmadelta.stages as staging
from sigmadelta.fixedpoint import AccumulatorOverflowError
from sigmadelta.numeric import NumericOverflowError
from sigmadelta.stages import choose_cut, cut_nodes
from sigmadelta.stats import MEASURED

DATA = pathlib.Path(__file__).parent / "data" / "lava"


def _truth(name: str, run: str):
    d = np.load(DATA / f"{name}.npz")
    return d[f"{run}_frames"].astype(np.float64), d[f"{run}_out"]


def _assert_same(one: sd.Result, two: sd.Result) -> None:
    np.testing.assert_array_equal(two.outputs, one.outputs)
    for counter in MEASURED:
        np.testing.assert_array_equal(getattr(two.stats, counter), getattr(one.stats, counter),
                                      err_msg=counter)


def _every_cut(net, frames, timing="frame", dtype=np.float64, chunk=5):
    """stages=2 at every cut node (a chunk that does not divide the stream, and the stream fed
    in two calls) against stages=1; the conv paths taken too."""
    one = sd.Simulator(net, dtype=dtype, timing=timing)
    ref = one.run(frames, progress=False)
    cuts = cut_nodes(net, timing)
    assert cuts
    for c in cuts:
        two = sd.Simulator(net, dtype=dtype, timing=timing, stages=2, cut=net.nodes[c].name, chunk=chunk)
        k = len(frames) // 2
        a, b = two.run(frames[:k], progress=False), two.run(frames[k:], progress=False)
        np.testing.assert_array_equal(np.concatenate([a.outputs, b.outputs]), ref.outputs)
        for counter in MEASURED:
            both = np.concatenate([getattr(a.stats, counter), getattr(b.stats, counter)])
            np.testing.assert_array_equal(both, getattr(ref.stats, counter), err_msg=f"cut {c}: {counter}")
        assert two.conv_paths == one.conv_paths
        two.reset()  # a second stream on the same Simulator
        _assert_same(ref, two.run(frames, progress=False))
    return ref


@pytest.mark.parametrize("name", ["conv", "dense", "sdnn", "exported"])
def test_lava_ground_truth_through_two_stages(name):
    """The netx files of tests/data/lava, pipelined: Lava's own output sink, step by step,
    and at every cut node the single-stage outputs and counters."""
    net = sd.load_netx(DATA / f"{name}.net")
    for run in ("held", "changing"):
        frames, truth = _truth(name, run)
        res = sd.simulate(net, frames, timing="pipelined", stages=2, progress=False)
        np.testing.assert_array_equal(res.outputs, truth)
    _every_cut(net, frames, timing="pipelined")
    _every_cut(net, frames, timing="frame")


@pytest.mark.parametrize("name,quantizer,dtype", [
    ("conv", "herding", np.float32), ("conv", "herding", np.float64),
    ("bn2d_maxpool", "threshold", np.float32), ("bn2d_maxpool", "threshold", np.float64),
    ("conv_groups_depthwise", "herding", np.float64), ("gray_first_conv", "threshold", np.float64),
    ("avgpool_adaptive", "herding", np.float64), ("residual", "herding", np.float64),
    ("linear", "threshold", np.float64)])
def test_converted_nets_every_cut(name, quantizer, dtype):
    model, shape = make(name)
    kw = {"threshold": 0.02} if quantizer == "threshold" else {}
    net = sd.convert(model, shape, quantizer=quantizer, **kw)
    _every_cut(net, smooth_stream(shape, t=13).astype(dtype), dtype=dtype)


def test_fixed_point_every_cut():
    model, shape = make("conv")
    net = sd.convert(model, shape, scale=16.0, weight_bits=8)
    assert all(n.weight_bits == 8 for n in net.weight_layers)
    _every_cut(net, smooth_stream(shape, t=11))


@pytest.mark.parametrize("timing,dtype", [("frame", np.float32), ("pipelined", np.float64)])
def test_input_fused_with_its_pooling_every_cut(timing, dtype):
    """An input run with its pooling (kernels.input_pool): apart when cut at the input, fused in
    the first stage when cut after the pooling."""
    model = nn.Sequential(nn.MaxPool2d(2), nn.Conv2d(3, 4, 3, padding=1), nn.ReLU(), nn.Flatten(),
                          nn.Linear(4 * 5 * 6, 3))
    net = sd.convert(model, (3, 10, 12), scale=8.0)
    _every_cut(net, smooth_stream((3, 10, 12), t=11).astype(dtype), timing=timing, dtype=dtype)


def test_step_and_live_stream_are_the_array_run():
    """One frame at a time (A then B in one thread) and an iterable of frames."""
    net = sd.load_netx(DATA / "sdnn.net")
    frames, truth = _truth("sdnn", "changing")
    sim = sd.Simulator(net, timing="pipelined", stages=2)
    np.testing.assert_array_equal(np.stack([sim.step(f) for f in frames[:6]]), truth[:6])
    live = sd.Simulator(net, timing="pipelined", stages=2).run(iter(list(frames)), progress=False)
    np.testing.assert_array_equal(live.outputs, truth)


@pytest.mark.parametrize("timing", ["pipelined", "frame"])
def test_a_ring_of_two_snapshots(monkeypatch, timing):
    """A ring shorter than the chunk: A waits for B to free a slot, every second frame."""
    monkeypatch.setattr(staging, "RING_FRAMES", (2, 2))
    net = sd.load_netx(DATA / "sdnn.net")
    frames, truth = _truth("sdnn", "changing")
    sim = sd.Simulator(net, timing=timing, stages=2)
    assert sim.chunk >= len(frames) > 2
    res = sim.run(frames, progress=False)
    assert len(sim._stages._snaps[0]) == 2
    _assert_same(sd.simulate(net, frames, timing=timing, progress=False), res)
    if timing == "pipelined":
        np.testing.assert_array_equal(res.outputs, truth)


@pytest.mark.parametrize("path", ["dense", "scatter"])
def test_conv_path_choice_reaches_both_stages(path):
    """set_conv_path after the stages are built: the same paths, outputs and counters."""
    model, shape = make("bn2d_maxpool")
    net = sd.convert(model, shape)
    frames = smooth_stream(shape, t=9).astype(np.float64)
    sims = [sd.Simulator(net), sd.Simulator(net, stages=2, cut=net.nodes[2].name, chunk=4)]
    for sim in sims:
        sim.set_conv_path(path)
    one, two = (sim.run(frames, progress=False) for sim in sims)
    _assert_same(one, two)
    assert sims[1].conv_paths == sims[0].conv_paths
    assert any(p[path] > 0 for p in sims[1].conv_paths.values())


def test_recording_is_the_single_stage_recording(tmp_path):
    net = sd.load_netx(DATA / "conv.net")
    frames, _ = _truth("conv", "changing")
    sd.simulate(net, frames, timing="pipelined", record=tmp_path / "one.h5", progress=False)
    sd.simulate(net, frames, timing="pipelined", stages=2, record=tmp_path / "two.h5", progress=False)
    (s1, o1, c1), (s2, o2, c2) = sd.read_run(tmp_path / "one.h5"), sd.read_run(tmp_path / "two.h5")
    np.testing.assert_array_equal(o2, o1)
    assert c1 and c2
    for counter in MEASURED:
        np.testing.assert_array_equal(getattr(s2, counter), getattr(s1, counter))


def test_the_default_cut_balances_the_work():
    """A chain of equal layers is cut in its middle; the input alone is a cut (A loads the frames)."""
    model = nn.Sequential(*[m for _ in range(4) for m in (nn.Linear(32, 32), nn.ReLU())])
    net = sd.convert(model, (32,))
    node, lag = choose_cut(net)
    assert net.nodes[node].name in ("2", "3") and lag == 0  # the 2nd layer or its relu: 2 layers a side
    assert 0 in cut_nodes(net)
    pipelined = cut_nodes(net, "pipelined")
    # the input and a relu are read a step later (by a weight layer); a layer is no cut: its relu
    # reads the list they share in the same step, the next layer a step later
    assert pipelined[0] == 1 and pipelined[2] == 1 and 1 not in pipelined


def test_overflow_in_the_first_stage_is_the_single_stage_error(tmp_path):
    """A fixed-point overflow in stage A: same error (frame, layer), same frames recorded."""
    model, shape = make("linear")
    frames = smooth_stream(shape, t=9)
    frames[6:] *= 400.0
    net = sd.convert(model, shape, scale=16.0, weight_bits=8)
    for layer in net.weight_layers:
        layer.acc_bits = 16
    errors = []
    for stages in (1, 2):
        sim = sd.Simulator(net, stages=stages, cut="1" if stages == 2 else None, chunk=4)
        with pytest.raises(AccumulatorOverflowError) as e:
            sim.run(frames, record=tmp_path / f"{stages}.h5", progress=False)
        errors.append((str(e.value), sim.frame_no, sd.read_run(tmp_path / f"{stages}.h5")[1]))
    assert "frame 6" in errors[0][0] and "layer '0'" in errors[0][0]
    assert errors[1][:2] == errors[0][:2]
    np.testing.assert_array_equal(errors[1][2], errors[0][2])


def test_overflow_in_the_second_stage_is_the_single_stage_error():
    """Lava's 24-bit step sum wraps in the second conv of conv_wrap (stage B, cut before it):
    the same NumericOverflowError, frame and layer; then the Simulator needs a reset."""
    net = sd.load_netx(DATA / "conv.net")
    frames = np.load(DATA / "conv_wrap.npz")["frames"].astype(np.float64)
    one = sd.Simulator(net, timing="pipelined")
    with pytest.raises(NumericOverflowError) as e1:
        one.run(frames, progress=False)
    for c in cut_nodes(net, "pipelined"):
        two = sd.Simulator(net, timing="pipelined", stages=2, cut=net.nodes[c].name, chunk=4)
        with pytest.raises(NumericOverflowError) as e2:
            two.run(frames, progress=False)
        assert str(e2.value) == str(e1.value) and two.frame_no == one.frame_no
        with pytest.raises(RuntimeError, match="reset"):
            two.step(frames[0])


def test_bad_stages_are_refused():
    model, shape = make("residual")
    net = sd.convert(model, shape)
    inside = [i for i in range(1, len(net.nodes) - 1) if i not in cut_nodes(net)]
    assert inside  # the residual branch holds nodes that are not cut nodes
    with pytest.raises(ValueError, match="not a cut node"):
        sd.Simulator(net, stages=2, cut=net.nodes[inside[0]].name)
    with pytest.raises(ValueError, match="stages must be 1"):
        sd.Simulator(net, stages=3)
    with pytest.raises(ValueError, match="with stages=1 leave it out"):
        sd.Simulator(net, cut=net.nodes[1].name)
    with pytest.raises(ValueError, match="profile=True"):
        sd.Simulator(net, stages=2, profile=True)
    with pytest.raises(ValueError, match="one stream"):
        sd.simulate(net, np.zeros((2, 3, *shape), np.float32), stages=2)


@pytest.mark.parametrize("cut", ["input", "0", "1"])
def test_numeric_overflow_is_the_single_stage_error(cut):
    """A value leaves float64 at frame 3 (in stage A or B): the same NumericOverflowError."""
    model, shape = make("linear")
    net = sd.convert(model, shape)
    frames = smooth_stream(shape, t=6).astype(np.float64)
    frames[3, 2] = 1e307
    messages = []
    for sim in (sd.Simulator(net), sd.Simulator(net, stages=2, cut=cut)):
        with pytest.raises(NumericOverflowError, match="at frame 3") as e:
            sim.run(frames, progress=False)
        messages.append((str(e.value), sim.frame_no))
    assert messages[1] == messages[0]
