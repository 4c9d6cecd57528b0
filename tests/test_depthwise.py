"""The dense recompute path of busy depthwise conv layers (:mod:`sigmadelta.kernels.depthwise`).

Kernel against its NumPy twin and against the event scatter (``conv_scatter``) on the same
frame; the engine forced path by path (and switching mid-stream) against ``sd.reference``,
with counters identical to the scatter's.
"""

import numpy as np
import pytest
import torch
import torch.nn as nn
from _twins import both_named, listed, params
from test_recompute import _run, _video

import sigmadelta as sd
from sigmadelta import kernels as K
from sigmadelta.kernels import numpy_twins as T

# (h_in, w_in, channels, channel multiplier, kernel, stride, padding, dilation)
GEOMS = [(7, 9, 5, 1, (3, 3), (1, 1), (1, 1), (1, 1)), (8, 7, 16, 1, (3, 3), (2, 2), (1, 1), (1, 1)),
         (9, 8, 3, 2, (5, 3), (2, 1), (2, 0), (1, 1)), (10, 9, 4, 1, (3, 3), (1, 1), (2, 2), (2, 2)),
         (6, 6, 9, 3, (1, 1), (1, 1), (0, 0), (1, 1)),
         (1, 1, 3, 1, (1, 1), (1, 1), (2, 2), (1, 1)),  # float32: a flag row outgrows the scratch
         # output rows of 4 pixels and more (four at a time, then the rest); 40 channels:
         # whole wide vectors, then a narrow one, then single channels
         (5, 11, 40, 1, (3, 3), (1, 1), (1, 1), (1, 1)), (9, 19, 24, 1, (3, 3), (2, 2), (1, 1), (1, 1))]


def _out(n, k, s, p, d):
    return (n + 2 * p - d * (k - 1) - 1) // s + 1


def _case(geom, herding, seed, dtype, frac=0.5):
    """depthwise_dense's arguments (by name) for a random layer whose ``z`` is consistent
    with its memory (``z = bias + conv(gain * memory)``), so that scatter and recompute agree;
    a fraction ``frac`` of the inputs change (the others keep their encoded value)."""
    h, w, c, cg, (kh, kw), stride, padding, dilation = geom
    ho, wo = (_out(n, k, s, p, d) for n, k, s, p, d in zip((h, w), (kh, kw), stride, padding, dilation,
                                                            strict=True))
    rng = np.random.default_rng(seed)
    fixed = dtype == np.int64
    n_in, n_out = h * w * c, ho * wo * c * cg
    param = 4.0 if herding else 0.3
    x_old = rng.normal(size=n_in)
    mem = np.rint(param * x_old) if herding else x_old.copy()
    x = np.where(rng.random(n_in) < frac, x_old + rng.normal(size=n_in), x_old)
    w_cl = rng.normal(size=(kh, kw, c, cg))
    w_cl = (np.rint(4 * w_cl) if fixed else w_cl).astype(dtype)
    gain = 1 if fixed else (1 / param if herding else 1.0)
    acc = np.int64 if fixed else np.float64
    per_channel = np.zeros(c * cg) if fixed else rng.normal(size=c * cg)  # fixed: unread
    bias = np.tile(per_channel, ho * wo).astype(dtype)  # channels-last, as the engine tiles it
    z = np.zeros(n_out, acc)
    spare = (np.zeros(n_out, np.int64), np.zeros(1, np.int64), np.full(ho * wo * c, -1, np.int64))
    T.conv_scatter(np.arange(n_in), (mem * gain).astype(acc), n_in, 1, w_cl.astype(acc), z, (h, w),
                   (ho, wo), stride, padding, dilation, c, *spare, 0)
    z = (z if fixed else bias + z).astype(dtype)
    sdt = np.float64 if fixed else dtype
    py, px = padding
    n_pad = (h + 2 * py) * (w + 2 * px) * c
    return dict(x=x.astype(sdt), memory=mem.astype(sdt), herding=herding, param=param, gain=gain,
                w_cl=w_cl, bias=bias, use_bias=not fixed, z=z, in_hw=np.array([h, w]),
                out_hw=np.array([ho, wo]), stride=np.array(stride), padding=np.array(padding),
                dilation=np.array(dilation), mem_w=np.zeros(n_pad, dtype),
                flag_w=np.zeros(n_pad, np.uint8), fan_y=K.axis_fan(h, ho, kh, stride[0], py, dilation[0]),
                fan_x=K.axis_fan(w, wo, kw, stride[1], px, dilation[1]), hit=np.zeros(c, np.uint8),
                mag=np.zeros(n_in, dtype),
                pg_list=np.zeros(ho * wo * c, np.int64), pg_count=np.zeros(1, np.int64))


DTYPES = [(True, np.float64), (False, np.float64), (True, np.float32), (True, np.int64)]


@pytest.mark.parametrize("geom", GEOMS)
@pytest.mark.parametrize("herding,dtype", DTYPES)
def test_depthwise_dense_matches_twin(geom, herding, dtype):
    case = _case(geom, herding, 3, dtype)
    ra, a, rb, b = both_named("depthwise_dense", case)
    assert ra[0] == rb[0] and ra[1] == rb[1] and ra[2] == pytest.approx(rb[2])
    tol = 1e-4 if dtype == np.float32 else 1e-10
    np.testing.assert_allclose(a["z"], b["z"], rtol=tol, atol=tol)
    np.testing.assert_array_equal(a["memory"], b["memory"])
    assert listed(a["pg_list"], a["pg_count"]) == listed(b["pg_list"], b["pg_count"])
    assert np.all(np.diff(a["pg_list"][:a["pg_count"][0]]) > 0)  # listed in increasing order
    assert a["flag_w"].sum() == ra[0]  # one flag per event (padding stays 0)


@pytest.mark.parametrize("geom", GEOMS)
@pytest.mark.parametrize("herding,dtype", DTYPES)
@pytest.mark.parametrize("frac", [0.05, 0.5, 1.0])
def test_depthwise_dense_equals_scatter(geom, herding, dtype, frac):
    """Same frame, both paths: same counters, memory and reached (pixel, group) pairs; ``z``
    equal (exactly in fixed point). The scatter encodes the touched inputs only."""
    case = _case(geom, herding, 5, dtype, frac)
    dense = {k: v.copy() if isinstance(v, np.ndarray) else v for k, v in case.items()}
    rd = K.depthwise_dense(*(dense[n] for n in params("depthwise_dense")))
    x, mem, z = case["x"], case["memory"].copy(), case["z"].copy()
    touched = np.arange(len(x), dtype=np.int64)  # every input (untouched ones cannot spike)
    ev_idx, ev_val = np.zeros(len(x), np.int64), np.zeros(len(x), z.dtype)
    count = np.array([len(x)], np.int64)
    if herding:
        n_ev = K.herding_encode(x, touched, count, mem, case["param"], ev_idx, ev_val)
    else:
        n_ev = K.threshold_encode(x, touched, count, mem, case["param"], ev_idx, ev_val)
    c = case["w_cl"].shape[2]
    n_pg = len(case["pg_list"])
    pg = (np.zeros(n_pg, np.int64), np.zeros(1, np.int64), np.full(n_pg, -1, np.int64))
    syn, adds = K.conv_scatter(ev_idx, ev_val, n_ev, case["gain"], case["w_cl"], z, case["in_hw"],
                               case["out_hw"], case["stride"], case["padding"], case["dilation"], c,
                               *pg, 1)
    assert (rd[0], rd[1]) == (n_ev, syn) and rd[2] == pytest.approx(adds)
    np.testing.assert_array_equal(dense["memory"], mem)
    assert listed(dense["pg_list"], dense["pg_count"]) == listed(pg[0], pg[1])
    if dtype == np.int64:
        np.testing.assert_array_equal(dense["z"], z)
    else:
        tol = 1e-4 if dtype == np.float32 else 1e-10
        np.testing.assert_allclose(dense["z"], z, rtol=tol, atol=tol)


class _Depthwise(nn.Module):
    """MobileNet-like: a stem, depthwise 3x3 (stride 1, 2; a channel multiplier of 2; dilation
    2) with pointwise 1x1 convs and a residual add."""

    def __init__(self):
        super().__init__()
        self.stem = nn.Conv2d(3, 8, 3, padding=1)
        self.dw1 = nn.Conv2d(8, 8, 3, padding=1, groups=8)
        self.pw1 = nn.Conv2d(8, 8, 1)
        self.dw2 = nn.Conv2d(8, 16, 3, stride=2, padding=1, groups=8)
        self.dw3 = nn.Conv2d(16, 16, 3, padding=2, dilation=2, groups=16)
        self.pw2 = nn.Conv2d(16, 4, 1)

    def forward(self, x):
        y = torch.relu(self.stem(x))
        y = torch.nn.functional.relu6(self.pw1(torch.relu(self.dw1(y)))) + y
        y = torch.relu(self.dw3(torch.relu(self.dw2(y))))
        return self.pw2(y)


@pytest.mark.parametrize("weight_bits", [None, 8])
def test_depthwise_paths_equal_reference_and_counters(weight_bits):
    torch.manual_seed(1)
    frames = _video()
    net = sd.convert(_Depthwise().eval(), frames.shape[1:], scale=32.0, weight_bits=weight_bits)
    ref = sd.reference(net, frames, progress=False)
    t = len(frames)
    runs = {name: _run(net, frames, modes) for name, modes in [
        ("scatter", ["scatter"] * t), ("dense", ["dense"] * t), ("auto", ["auto"] * t),
        ("switching", ["dense", "scatter", "dense", "dense", "scatter", "auto", "scatter", "dense"])]}
    base_out, base_stats, _ = runs["scatter"]
    for name, (out, stats, _) in runs.items():
        err = np.abs(out - ref).max() / np.ptp(ref)
        assert err <= 1e-6, name
        np.testing.assert_array_equal(stats, base_stats, err_msg=name)
        if weight_bits:  # integer sums: every path gives the same outputs exactly
            np.testing.assert_array_equal(out, base_out, err_msg=name)
    dw = {"dw1", "dw2", "dw3"}
    assert dw <= set(runs["dense"][2])  # the depthwise layers have both paths
    assert all(p == {"scatter": 0, "dense": t, "gemm": 0} for p in runs["dense"][2].values())
    assert all(p == {"scatter": t, "dense": 0, "gemm": 0} for p in runs["scatter"][2].values())
    assert all(runs["switching"][2][n]["dense"] in (4, 5) for n in dw)


def test_depthwise_path_is_only_for_depthwise_layers():
    grouped = nn.Sequential(nn.Conv2d(4, 4, 3, groups=2), nn.ReLU(), nn.Conv2d(4, 4, 3, groups=4))
    net = sd.convert(grouped.eval(), (4, 8, 8))
    sim = sd.Simulator(net)
    assert set(sim.conv_paths) == {net.layer_names[1]}  # groups 2 has one path: the scatter
    sim.set_conv_path("dense")  # every layer that has a dense path; the grouped one scatters
    sim.run(np.random.default_rng(0).random((3, 4, 8, 8)), progress=False)
    assert sim.conv_paths[net.layer_names[1]] == {"scatter": 0, "dense": 3, "gemm": 0}
