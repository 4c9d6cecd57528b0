"""Transposed convolution, bilinear resampling and channel routing: kernels against their NumPy
twins and PyTorch, converted networks against the torch model and the dense reference."""

import numpy as np
import pytest
import torch
import torch.nn as nn
import torch.nn.functional as F
from _twins import both
from _zoo import smooth_stream

import sigmadelta as sd
from sigmadelta import graph as g
from sigmadelta.layout import fan_out
from sigmadelta.ops import GatherOp, ResampleOp, build_ops

# (h, w, c_in, c_out, k, stride, padding, output_padding, dilation, groups)
CONVT = [(4, 5, 3, 4, 3, (2, 2), (1, 1), (1, 1), (1, 1), 1),
         (3, 3, 4, 6, 2, (2, 3), (0, 1), (0, 2), (1, 1), 2),
         (5, 4, 2, 2, 3, (1, 1), (2, 0), (0, 0), (2, 1), 2),
         (3, 4, 2, 3, 4, (3, 2), (1, 1), (2, 1), (2, 2), 1)]


def _convt_node(geom, rng):
    h, w, c_in, c_out, k, s, p, op, d, groups = geom
    out = tuple((n - 1) * s[a] - 2 * p[a] + d[a] * (k - 1) + op[a] + 1 for a, n in enumerate((h, w)))
    return g.ConvTranspose(name="t", inputs=(0,), shape=(c_out, *out), stride=s, padding=p,
                           output_padding=op, dilation=d, groups=groups,
                           weight=rng.normal(size=(c_in, c_out // groups, k, k)).astype(np.float32),
                           bias=np.zeros(c_out, np.float32))


def _scatter_args(node, in_shape, ev_idx, ev_val, dtype=np.float64):
    c_out, h_out, w_out = node.shape
    n_pg = h_out * w_out * node.groups
    w_cl = np.ascontiguousarray(node.weight.transpose(2, 3, 0, 1), dtype)
    return (ev_idx, ev_val.astype(dtype), len(ev_idx), 1 if dtype == np.int64 else 0.5, w_cl,
            np.zeros(h_out * w_out * c_out, dtype), np.array(in_shape[1:]), np.array([h_out, w_out]),
            np.array(node.stride), np.array(node.padding), np.array(node.dilation), node.groups,
            np.zeros(n_pg, np.int64), np.zeros(1, np.int64), np.full(n_pg, -1, np.int64), 3)


@pytest.mark.parametrize("geom", CONVT)
@pytest.mark.parametrize("dtype", [np.float64, np.int64])
def test_convt_scatter_equals_twin(geom, dtype):
    rng = np.random.default_rng(1)
    node = _convt_node(geom, rng)
    if dtype == np.int64:
        node.weight = np.rint(node.weight * 10).astype(np.float32)
    n_in = geom[0] * geom[1] * geom[2]
    ev_idx = rng.choice(n_in, n_in // 2, replace=False).astype(np.int64)
    ev_val = rng.normal(size=len(ev_idx)) * (10 if dtype == np.int64 else 1)
    if dtype == np.int64:
        ev_val = np.rint(ev_val)
    ra, a, rb, b = both("convt_scatter", *_scatter_args(node, (geom[2], geom[0], geom[1]), ev_idx, ev_val,
                                                              dtype))
    assert ra[0] == rb[0] and ra[1] == pytest.approx(rb[1])
    np.testing.assert_allclose(a[5], b[5], rtol=1e-12, atol=1e-12)
    assert sorted(a[12][: a[13][0]]) == sorted(b[12][: b[13][0]])


@pytest.mark.parametrize("geom", CONVT)
def test_convt_scatter_of_every_input_is_torchs_conv_transpose(geom):
    """All inputs as events: z is F.conv_transpose2d of the input; synops the in-bounds fan-out."""
    rng = np.random.default_rng(2)
    node = _convt_node(geom, rng)
    h, w, c_in = geom[:3]
    x = rng.normal(size=(c_in, h, w))
    ev_idx = np.arange(h * w * c_in, dtype=np.int64)
    args = _scatter_args(node, (c_in, h, w), ev_idx, x.transpose(1, 2, 0).ravel() * 2)  # gain 0.5
    from sigmadelta import kernels as K
    synops, _ = K.convt_scatter(*args)
    ref = F.conv_transpose2d(torch.from_numpy(x[None]), torch.from_numpy(node.weight.astype(np.float64)),
                             stride=node.stride, padding=node.padding, output_padding=node.output_padding,
                             groups=node.groups, dilation=node.dilation)[0]
    np.testing.assert_allclose(args[5].reshape(node.shape[1], node.shape[2], -1), ref.permute(1, 2, 0),
                               rtol=1e-10, atol=1e-10)
    assert synops == fan_out(node, (c_in, h, w)).sum()


RESIZES = [((3, 4), dict(scale_factor=2, align_corners=False)),
           ((5, 3), dict(scale_factor=(1.5, 2.25), align_corners=False)),
           ((6, 7), dict(scale_factor=0.6, align_corners=False)),
           ((4, 5), dict(size=(9, 4), align_corners=False)),
           ((4, 5), dict(size=(9, 11), align_corners=True)),
           ((1, 3), dict(size=(1, 7), align_corners=True))]


def _resample_op(hw, kw, c=3):
    x = torch.zeros(1, c, *hw)
    out = F.interpolate(x, mode="bilinear", **kw).shape[1:]
    sf = kw.get("scale_factor")
    sh, sw = (0.0, 0.0) if sf is None or kw["align_corners"] else (
        sf if isinstance(sf, tuple) else (sf, sf))
    node = g.Resample(name="r", inputs=(0,), shape=tuple(out), align_corners=kw["align_corners"],
                      scale_h=float(sh), scale_w=float(sw))
    net = g.Network(nodes=[g.Input(name="in", inputs=(), shape=(c, *hw)), node], output=1).validate()
    ops, states, _ = build_ops(net)
    return net, ops[1], states


@pytest.mark.parametrize("hw, kw", RESIZES)
def test_pixel_map_of_every_input_is_torchs_bilinear(hw, kw):
    net, op, states = _resample_op(hw, kw)
    assert isinstance(op, ResampleOp)
    x = np.random.default_rng(3).normal(size=(3, *hw))
    xi = x.transpose(1, 2, 0).ravel()
    n = len(xi)
    args = (xi, np.arange(n, dtype=np.int64), np.array([n]), 3, op.out_start, op.out_pix, op.in_start,
            op.in_pix, op.in_w, np.zeros(net.nodes[1].size), np.zeros(net.nodes[1].size, np.int64),
            np.zeros(1, np.int64), np.full(net.nodes[1].size, -1, np.int64), 0)
    ra, a, rb, b = both("pixel_map_update", *args)
    ref = F.interpolate(torch.from_numpy(x[None]), mode="bilinear", **kw)[0].permute(1, 2, 0).numpy()
    np.testing.assert_allclose(a[9], ref.ravel(), rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(b[9], ref.ravel(), rtol=1e-12, atol=1e-12)
    assert a[11][0] == b[11][0] == net.nodes[1].size


@pytest.mark.parametrize("hw, kw", RESIZES)
def test_pixel_map_lists_and_recomputes_only_what_a_touched_input_reaches(hw, kw):
    net, op, _ = _resample_op(hw, kw)
    rng = np.random.default_rng(4)
    n_in, n_out = net.nodes[0].size, net.nodes[1].size
    x = rng.normal(size=n_in)
    touched = np.sort(rng.choice(n_in, max(1, n_in // 4), replace=False)).astype(np.int64)
    y0 = rng.normal(size=n_out)  # stale values: only the listed outputs may change
    args = (x, touched, np.array([len(touched)]), 3, op.out_start, op.out_pix, op.in_start, op.in_pix,
            op.in_w, y0, np.zeros(n_out, np.int64), np.zeros(1, np.int64), np.full(n_out, -1, np.int64), 5)
    ra, a, rb, b = both("pixel_map_update", *args)
    la, lb = sorted(a[10][: a[11][0]]), sorted(b[10][: b[11][0]])
    assert la == lb and len(la) == len(set(la))
    np.testing.assert_allclose(a[9], b[9], rtol=1e-12, atol=1e-12)
    unlisted = np.setdiff1d(np.arange(n_out), la)
    np.testing.assert_array_equal(a[9][unlisted], y0[unlisted])


def test_gather_update_equals_twin_and_routes_channels():
    rng = np.random.default_rng(5)
    c_in, px = 6, 7
    src = np.array([4, 1, 5, 0])  # a selection in a new order
    node = g.Gather(name="g", inputs=(0,), shape=(4, 1, px), src=src)
    op = GatherOp(node, [None], None, (c_in, 1, px))
    x = rng.normal(size=c_in * px)
    touched = np.sort(rng.choice(c_in * px, 20, replace=False)).astype(np.int64)
    args = (x, touched, np.array([20]), c_in, op.dst, 4, np.zeros(4 * px), np.zeros(4 * px, np.int64),
            np.zeros(1, np.int64))
    ra, a, rb, b = both("gather_update", *args)
    assert sorted(a[7][: a[8][0]]) == sorted(b[7][: b[8][0]])
    np.testing.assert_array_equal(a[6], b[6])
    full = (x, np.arange(c_in * px), np.array([c_in * px]), c_in, op.dst, 4, np.zeros(4 * px),
            np.zeros(4 * px, np.int64), np.zeros(1, np.int64))
    _, a, _, _ = both("gather_update", *full)
    np.testing.assert_array_equal(a[6].reshape(px, 4), x.reshape(px, c_in)[:, src])


def _run(model, shape, t=5, **kw):
    frames = smooth_stream(shape, t=t)
    net = sd.convert(model.eval(), shape, scale=256.0, **kw)
    res = sd.simulate(net, frames, progress=False)
    ref = sd.reference(net, frames, progress=False)
    with torch.no_grad():
        ann = model(torch.from_numpy(frames)).numpy()
    return net, res, ref, ann


def _rel(a, b):
    return np.abs(a - b).max() / max(np.ptp(b), 1e-12)


class _OutputSize(nn.Module):
    def __init__(self):
        super().__init__()
        self.a, self.up = nn.Conv2d(2, 3, 3, stride=2, padding=1), nn.ConvTranspose2d(3, 2, 3, 2, 1)

    def forward(self, x):
        return self.up(F.relu(self.a(x)), output_size=x.shape[-2:])  # output_padding from the size


def _grouped_transposed():
    return nn.Sequential(nn.Conv2d(2, 4, 3), nn.ReLU(), nn.ConvTranspose2d(4, 4, 3, groups=4, bias=False),
                         nn.BatchNorm2d(4), nn.Hardswish(),
                         nn.ConvTranspose2d(4, 2, (2, 3), stride=(1, 2), padding=(0, 1), dilation=(2, 1)))


# The models are built inside the test, after seeding: built at collection time their weights would
# depend on whatever else drew from torch's generator first, and the fidelity bound with them.
@pytest.mark.parametrize("make_model", [_OutputSize, _grouped_transposed])
def test_transposed_convs_equal_torch_and_the_reference(make_model):
    torch.manual_seed(0)
    net, res, ref, ann = _run(make_model(), (2, 8, 8))
    assert any(isinstance(n, g.ConvTranspose) for n in net.nodes)
    assert _rel(res.outputs, ref) <= 1e-9 and _rel(ref, ann) < 0.02
    assert res.stats.synops[1:].sum() < res.stats.dense_macs[1:].sum()


class _ShuffleThenConv(nn.Module):
    def __init__(self):
        super().__init__()
        self.a, self.b = nn.Conv2d(2, 6, 3, padding=1), nn.Conv2d(6, 4, 3, padding=1)
        self.t = nn.ConvTranspose2d(6, 2, 2, stride=2)

    def forward(self, x):
        y = F.channel_shuffle(F.relu(self.a(x)), 3)
        return torch.cat([self.b(y), F.avg_pool2d(self.t(y), 2)], 1)


def test_a_shuffle_read_only_by_weight_layers_is_folded_into_their_weights():
    torch.manual_seed(0)
    net, res, ref, ann = _run(_ShuffleThenConv(), (2, 6, 6))
    assert not any(isinstance(n, g.Gather) for n in net.nodes)  # routing left: none
    assert _rel(res.outputs, ref) <= 1e-9 and _rel(ref, ann) < 0.02


def test_new_kinds_name_themselves_and_round_trip(tmp_path):
    from _zoo import make
    for name in ("decoder", "routing"):
        model, shape = make(name)
        net = sd.convert(model, shape)
        sd.save(net, tmp_path / f"{name}.h5")
        back = sd.load(tmp_path / f"{name}.h5")
        frames = smooth_stream(shape, t=3)
        np.testing.assert_array_equal(sd.reference(back, frames, progress=False),
                                      sd.reference(net, frames, progress=False))
    labels = sd.convert(make("decoder")[0], make("decoder")[1]).layer_labels
    assert "up1 3x3/2 4->4 transposed g2" in labels and "up2 2x2 dil2 4->3 transposed" in labels


class _Up(nn.Module):
    def __init__(self, up):
        super().__init__()
        self.c, self.up = nn.Conv2d(2, 3, 3), up

    def forward(self, x):
        return self.up(F.relu(self.c(x)))


@pytest.mark.parametrize("up, shape", [
    (nn.Upsample(scale_factor=(1.5, 2.5), mode="bilinear"), (3, 10, 15)),
    (nn.UpsamplingBilinear2d(scale_factor=2), (3, 14, 12)),  # align_corners=True
    (nn.Upsample(size=(5, 9), mode="bilinear", align_corners=True), (3, 5, 9)),
    (lambda x: F.interpolate(x, scale_factor=1.7, mode="bilinear", recompute_scale_factor=True), (3, 11, 10)),
    (lambda x: F.interpolate(x, None, 1.3, "bilinear"), (3, 9, 7)),
    (nn.Upsample(scale_factor=0.5, mode="bilinear"), (3, 3, 3)),
])
def test_every_bilinear_form_converts_to_what_torch_computes(up, shape):
    from sigmadelta.dense import evaluate
    torch.manual_seed(0)
    model = _Up(up).eval()
    net = sd.convert(model, (2, 9, 8))
    assert isinstance(net.nodes[-1], g.Resample) and net.nodes[-1].shape == shape
    x = torch.rand(3, 2, 9, 8)
    np.testing.assert_allclose(evaluate(net, x.double()).numpy(), model(x).detach().numpy(), atol=1e-6)
