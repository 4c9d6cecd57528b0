"""A depthwise conv that lists its pixel-listed input's neurons itself (``ConvOp.lazy``).

A 1x1 conv (or a residual add by rows) whose only neuron-list reader is a float depthwise
conv lists no neurons; the depthwise layer takes its touched count from the pixel rows and
lists the neurons on the frames it scatters. Against the same network with the neurons
listed by their producers: the same outputs bit for bit and the same counters, path by path,
switching paths mid-stream, and in two stages at every cut node.
"""

import numpy as np
import pytest
import torch
from test_depthwise import _Depthwise
from test_recompute import _run, _video

import sigmadelta as sd
from sigmadelta import ops
from sigmadelta.stages import cut_nodes
from sigmadelta.stats import MEASURED

SCHEDULES = {"scatter": ["scatter"] * 8, "dense": ["dense"] * 8, "auto": ["auto"] * 8,
             "switching": ["dense", "scatter", "scatter", "dense", "auto", "scatter", "dense", "scatter"]}


def _net(weight_bits=None):
    torch.manual_seed(1)
    frames = _video()
    return sd.convert(_Depthwise().eval(), frames.shape[1:], scale=32.0, weight_bits=weight_bits), frames


def _lazy_layers(net, dtype) -> set:
    sim = sd.Simulator(net, dtype=dtype)
    return {net.nodes[j].name for j, op in enumerate(sim._ops) if getattr(op, "lazy", False)}


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_lazy_listing_keeps_outputs_and_counters(monkeypatch, dtype):
    net, frames = _net()
    # dw1 reads the stem's relu (a pixel conv), dw2 a residual add by rows; dw3 a depthwise conv
    assert _lazy_layers(net, dtype) == {"dw1", "dw2"}
    lazy = {k: _run(net, frames, modes, dtype) for k, modes in SCHEDULES.items()}
    monkeypatch.setattr(ops, "_lists_lazily", lambda op: False)
    assert _lazy_layers(net, dtype) == set()
    ref = sd.reference(net, frames, progress=False)
    for k, modes in SCHEDULES.items():
        out, stats, paths = _run(net, frames, modes, dtype)
        np.testing.assert_array_equal(lazy[k][0], out, err_msg=k)
        np.testing.assert_array_equal(lazy[k][1], stats, err_msg=k)
        assert lazy[k][2] == paths, k
        tol = 1e-4 if dtype == np.float32 else 1e-9
        assert np.abs(out - ref).max() <= tol * np.ptp(ref), k
    for name in ("dw1", "dw2"):  # both paths ran on the lazy layers
        assert lazy["switching"][2][name]["scatter"] >= 4 and lazy["switching"][2][name]["dense"] >= 3


def test_fixed_point_depthwise_keeps_its_producers_listing():
    """A fixed-point depthwise layer checks its touched inputs before choosing a path: not lazy."""
    net, _ = _net(weight_bits=8)
    assert _lazy_layers(net, np.float64) == set()


@pytest.mark.parametrize("path", ["scatter", "auto"])
def test_lazy_listing_in_two_stages(path):
    """stages=2 at every cut node against one stage, the depthwise layers on ``path``."""
    net, frames = _net()
    one = sd.Simulator(net, dtype=np.float32)
    one.set_conv_path(path)
    ref = one.run(frames, progress=False)
    for c in cut_nodes(net):
        two = sd.Simulator(net, dtype=np.float32, stages=2, cut=net.nodes[c].name, chunk=3)
        two.set_conv_path(path)
        res = two.run(frames, progress=False)
        np.testing.assert_array_equal(res.outputs, ref.outputs, err_msg=f"cut {c}")
        for counter in MEASURED:
            np.testing.assert_array_equal(getattr(res.stats, counter), getattr(ref.stats, counter),
                                          err_msg=f"cut {c}: {counter}")
