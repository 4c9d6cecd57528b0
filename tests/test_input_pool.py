"""An input whose only consumer is a pooling runs as one op (sigmadelta.kernels.input_pool):
the kernel against its NumPy twin, and whole networks fused against unfused (same outputs and
counters), in both timings, float32/float64, and through two stages."""

import numpy as np
import pytest
import torch.nn as nn
from _zoo import smooth_stream

import sigmadelta as sd
import sigmadelta.assemble as assemble
from sigmadelta import kernels as K
from sigmadelta.kernels import numpy_twins as T
from sigmadelta.program import INP
from sigmadelta.slots import INPUT, KIND
from sigmadelta.stats import MEASURED

GEOMS = [((2, 2), (2, 2), (0, 0)), ((3, 3), (2, 2), (1, 1)), ((2, 2), (1, 1), (0, 0)),
         ((3, 2), (2, 3), (1, 0))]


def _stream(shape, dtype, t=9):
    """Smooth frames, a repeated frame (nothing changes) and one with a few changed pixels
    (below the 1/32 that switches pooling to its scan)."""
    frames = smooth_stream(shape, t=t).astype(dtype)
    frames[3] = frames[2]
    frames[5] = frames[4]
    frames[5].flat[::97] += 0.5
    return frames


def _load_then_pool(frame, value, touched_in, count_in, in_hw, c, out_hw, kernel, stride, padding,
                    is_max, y, touched, count, stamp, frame_no, hit, prime):
    """The unfused ops' kernels, one after the other."""
    K.load_frame(frame, c, value, np.zeros(0, value.dtype), np.zeros(0, np.int64), touched_in, count_in,
                 prime)
    K.pool_update(value, touched_in, count_in, in_hw, c, out_hw, kernel, stride, padding, is_max, y,
                  touched, count, stamp, frame_no, hit)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("is_max", [True, False])
@pytest.mark.parametrize("c", [1, 3])
@pytest.mark.parametrize("kernel,stride,padding", GEOMS)
def test_input_pool_matches_load_then_pool(dtype, is_max, c, kernel, stride, padding):
    """Against the unfused kernels bit for bit, and the twin (whose float32 sums round
    differently): values, pooled outputs, list (same order), stamps; the flags left clear.
    9x11: an odd map (the 2x2 windows leave the last row and column out)."""
    h, w = 9, 11
    h_out = (h + 2 * padding[0] - kernel[0]) // stride[0] + 1
    w_out = (w + 2 * padding[1] - kernel[1]) // stride[1] + 1
    n_in, n_out = h * w * c, h_out * w_out * c
    geom = (np.array([h, w]), c, np.array([h_out, w_out]), np.array(kernel), np.array(stride),
            np.array(padding), is_max)
    sides = [[np.zeros(n_in, dtype), np.zeros(n_in, np.int64), np.zeros(1, np.int64), np.zeros(n_out, dtype),
              np.zeros(n_out, np.int64), np.zeros(1, np.int64), np.full(n_out, -1, np.int64),
              np.zeros(n_in, np.uint8)] for _ in range(3)]
    for t, frame in enumerate(_stream((c, h, w), dtype)):
        for fn, (value, t_in, c_in, y, touched, count, stamp, hit) in zip(
                (K.input_pool, _load_then_pool, T.input_pool), sides, strict=True):
            fn(frame.ravel(), value, t_in, c_in, *geom, y, touched, count, stamp, t, hit, t == 0)
        a = sides[0]
        assert not a[7].any()
        np.testing.assert_array_equal(a[0], frame.reshape(c, -1).T.ravel())
        for b in sides[1:]:
            np.testing.assert_array_equal(a[0], b[0])
            np.testing.assert_array_equal(a[6], b[6])
            assert a[5][0] == b[5][0]
        b = sides[1]  # the same list in the same order; the twin lists in increasing order
        assert a[4][:a[5][0]].tolist() == b[4][:b[5][0]].tolist()
        assert sorted(a[4][:a[5][0]].tolist()) == sides[2][4][:sides[2][5][0]].tolist()
        np.testing.assert_array_equal(a[3], sides[1][3])
        np.testing.assert_allclose(a[3], sides[2][3], rtol=1e-6)


def _nets():
    """(model, input shape): an average and a max pooling first, 1 and 3 channels, strides."""
    def head(c_in, hw):
        return [nn.Conv2d(c_in, 4, 3, padding=1), nn.ReLU(), nn.Flatten(), nn.Linear(4 * hw, 3)]
    return {
        "avg2_gray": (nn.Sequential(nn.AvgPool2d(2), *head(1, 5 * 6)), (1, 10, 13)),
        "max2_rgb": (nn.Sequential(nn.MaxPool2d(2), *head(3, 5 * 6)), (3, 10, 12)),
        "avg3s2p1_rgb": (nn.Sequential(nn.AvgPool2d(3, stride=2, padding=1), *head(3, 5 * 6)), (3, 10, 12)),
        "max2s1_gray": (nn.Sequential(nn.MaxPool2d(2, stride=1), *head(1, 9 * 11)), (1, 10, 12)),
    }


def _run(net, frames, fuse, monkeypatch, **kw):
    monkeypatch.setattr(assemble, "FUSE_INPUT_POOL", fuse)
    sim = sd.Simulator(net, **kw)
    if kw.get("stages", 1) == 1:  # the input's row runs the pooling only where fused
        code = sim._prog.code
        assert (code[code[:, KIND] == INPUT][0, INP.fused] != 0) == fuse
    return sim.run(frames, progress=False)


def _same(a, b):
    np.testing.assert_array_equal(a.outputs, b.outputs)
    for counter in MEASURED:
        np.testing.assert_array_equal(getattr(a.stats, counter), getattr(b.stats, counter), err_msg=counter)


@pytest.mark.parametrize("name", sorted(_nets()))
@pytest.mark.parametrize("timing,dtype", [("frame", np.float32), ("frame", np.float64),
                                          ("pipelined", np.float64)])
def test_fused_network_is_the_unfused_one(monkeypatch, name, timing, dtype):
    model, shape = _nets()[name]
    net = sd.convert(model, shape, scale=8.0)
    frames = _stream(shape, dtype, t=11)
    kw = {"dtype": dtype, "timing": timing}
    ref = _run(net, frames, False, monkeypatch, **kw)
    _same(ref, _run(net, frames, True, monkeypatch, **kw))
    _same(ref, _run(net, frames, True, monkeypatch, profile=True, **kw))  # row by row


@pytest.mark.parametrize("timing", ["frame", "pipelined"])
def test_two_stages_at_every_cut_are_the_unfused_run(monkeypatch, timing):
    """stages=2 cut at the input (no fusion: the pooling runs in the second stage) or after the
    pooling (fused in the first)."""
    model, shape = _nets()["avg2_gray"]
    net = sd.convert(model, shape, scale=8.0)
    frames = _stream(shape, np.float32, t=11)
    ref = _run(net, frames, False, monkeypatch, dtype=np.float32, timing=timing)
    cuts = sd.stages.cut_nodes(net, timing)
    assert 0 in cuts and 1 in cuts
    for c in cuts:
        monkeypatch.setattr(assemble, "FUSE_INPUT_POOL", True)
        two = sd.Simulator(net, dtype=np.float32, timing=timing, stages=2, cut=net.nodes[c].name,
                           chunk=4)
        code = two._stages.a.code  # fused in the first stage unless cut at the input
        assert (code[code[:, KIND] == INPUT][0, INP.fused] != 0) == (c != 0)
        _same(ref, two.run(frames, progress=False))
