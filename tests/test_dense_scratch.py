"""Pixel convs of one program with the same padded-input layout share the dense path's
scratch buffer (``assemble.share_dense_scratch``): outputs and counters as with a buffer
each, on every path and when the path switches mid-stream; two-stage runs keep the
stages' buffers apart."""

import numpy as np
import pytest
import torch
import torch.nn as nn
from test_recompute import _Busy, _video

import sigmadelta as sd
import sigmadelta.assemble as assemble
from sigmadelta.weightops import PixelConvOp

#: a path mode per frame: every path, switching mid-stream
MODES = ["dense", "scatter", "dense", "gemm", "dense", "dense", "auto", "scatter"]


class _Twin(nn.Module):
    """Three 3x3 convs on 8 channels at one size (one layout) and a 1x1 after them."""

    def __init__(self):
        super().__init__()
        self.a = nn.Conv2d(3, 8, 3, padding=1)
        self.b = nn.Conv2d(8, 8, 3, padding=1)
        self.c = nn.Conv2d(8, 8, 3, padding=1)
        self.d = nn.Conv2d(8, 4, 1)

    def forward(self, x):
        y = torch.relu(self.a(x))
        y = torch.relu(self.b(y)) + y
        return self.d(torch.relu(self.c(y)))


def _stream(net, frames, dtype, **kw):
    sim = sd.Simulator(net, dtype=dtype, **kw)
    outs, stats = [], []
    for f, m in zip(frames, MODES, strict=True):
        sim.set_conv_path(m)
        outs.append(sim.step(f))
        stats.append(sim.last_stats.copy())
    return sim, np.stack(outs), np.stack(stats)


def _buffers(sim):
    return {op.node.name: op.dense_bufs[0] for op in sim._weight_ops if isinstance(op, PixelConvOp)}


@pytest.mark.parametrize("model", [_Twin, _Busy])
@pytest.mark.parametrize("dtype,weight_bits", [(np.float32, None), (np.float64, None), (np.float64, 8)])
def test_shared_scratch_keeps_outputs_and_counters(monkeypatch, model, dtype, weight_bits):
    torch.manual_seed(0)
    frames = _video()
    net = sd.convert(model().eval(), frames.shape[1:], scale=32.0, weight_bits=weight_bits)
    shared, out, stats = _stream(net, frames, dtype)
    monkeypatch.setattr(assemble, "SHARE_DENSE_SCRATCH", False)
    alone, out0, stats0 = _stream(net, frames, dtype)
    bufs, bufs0 = _buffers(shared), _buffers(alone)
    assert len({id(b) for b in bufs0.values()}) == len(bufs0)  # apart: one buffer each
    if model is _Twin:  # b, c (8 channels in, padding 1, same size) share one; a (3 in) not
        assert bufs["b"] is bufs["c"] and bufs["a"] is not bufs["b"]
    else:  # _Busy: b and c read the same 8-channel map
        assert bufs["b"] is bufs["c"] and bufs["a"] is not bufs["b"] and bufs["d"] is not bufs["b"]
    np.testing.assert_array_equal(out, out0)  # the same operations in the same order
    np.testing.assert_array_equal(stats, stats0)
    ref = sd.reference(net, frames, progress=False)
    assert np.abs(out - ref).max() / np.ptp(ref) <= (1e-4 if dtype == np.float32 else 1e-6)
    used = [p for p in shared.conv_paths.values()]
    assert all(p["dense"] >= 3 for p in used)  # the dense path ran, mid-stream too


def test_two_stages_keep_their_buffers_apart():
    torch.manual_seed(0)
    frames = _video()
    net = sd.convert(_Twin().eval(), frames.shape[1:], scale=32.0)
    one = sd.Simulator(net, dtype=np.float32)
    one.set_conv_path("dense")
    ref = one.run(frames, progress=False)
    two = sd.Simulator(net, dtype=np.float32, stages=2, cut="add", chunk=3)
    two.set_conv_path("dense")
    res = two.run(frames, progress=False)
    np.testing.assert_array_equal(res.outputs, ref.outputs)
    st = two._stages
    at_a = {a.ctypes.data for a in st.a.F}  # the arrays of each stage's table, by address
    at_b = {a.ctypes.data for a in st.b.F}
    mem = {k: v.ctypes.data for k, v in _buffers(two).items()}
    assert mem["c"] in at_b and mem["c"] not in at_a  # b runs in stage A, c in B
    assert mem["b"] in at_a and mem["b"] not in at_b
