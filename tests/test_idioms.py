"""Idioms written in forward convert (the zoo runs them end to end); what does not convert says
what to write instead. Layer labels and the JSON report name what they hold."""

import json

import numpy as np
import pytest
import torch
import torch.nn as nn
import torch.nn.functional as F
from _zoo import ann, make, smooth_stream

import sigmadelta as sd
from sigmadelta.graph import layer_label


class Lambda(nn.Module):
    """conv -> relu -> f(x) -> (flatten) -> linear, for one idiom ``f``."""

    def __init__(self, f, head=True):
        super().__init__()
        self.conv, self.f = nn.Conv2d(2, 4, 3), f
        self.fc = nn.Linear(4 * 6 * 6, 3) if head else nn.Identity()

    def forward(self, x):
        return self.fc(self.f(F.relu(self.conv(x))))


def _convert(model, shape=(2, 8, 8), **kw):
    torch.manual_seed(0)
    return sd.convert(model.eval(), shape, **kw)


@pytest.mark.parametrize("f", [
    lambda x: x.view(x.size(0), -1), lambda x: x.view(-1, 144), lambda x: x.reshape(x.shape[0], -1),
    lambda x: x.flatten(1), lambda x: torch.reshape(x, (1, -1)), lambda x: x.contiguous().view(1, 144),
])
def test_flatten_idioms_become_one_flatten(f):
    torch.manual_seed(0)
    net = _convert(Lambda(f))
    assert [n.kind for n in net.nodes] == ["input", "conv", "activation", "flatten", "dense"]


def test_folded_constants_add_no_layer_and_unfoldable_ones_are_exact():
    model, shape = make("constant_arithmetic")
    net = sd.convert(model, shape, scale=4096.0)
    # a*0.5+3 folds into a; 1-b and 0.5*() into b; -fc()+1 into fc; /6 after relu6 and
    # .sub(0.1).mul(2.0) after relu are affine layers of their own (depthwise 1x1)
    assert net.layer_names == ["a", "truediv", "b", "sub_1", "fc"]
    dw = net.nodes[net.layer_names.index("truediv") + 1]
    layer = [n for n in net.weight_layers if n.name == "truediv"][0]
    assert layer.groups == 4 and np.allclose(layer.weight.ravel(), 1 / 6) and dw is not None
    frames = smooth_stream(shape, t=4)
    np.testing.assert_allclose(sd.reference(net, frames, progress=False), ann(model, frames),
                               atol=2e-3)


def test_constant_not_folded_into_a_layer_read_elsewhere():
    class Both(nn.Module):
        def __init__(self):
            super().__init__()
            self.a, self.fc = nn.Linear(4, 4), nn.Linear(8, 2)

        def forward(self, x):
            y = self.a(x)
            return self.fc(torch.cat([y, y * 0.5], 1))

    torch.manual_seed(0)
    model = Both().eval()
    net = sd.convert(model, (4,), scale=4096.0)
    assert net.layer_names == ["a", "mul", "fc"]
    x = np.random.default_rng(0).random((3, 4)).astype(np.float32)
    np.testing.assert_allclose(sd.reference(net, x, progress=False), ann(model, x), atol=1e-3)


def test_conv1d_stream_takes_frames_of_c_by_l(tmp_path):
    model, shape = make("conv1d")
    net = sd.convert(model, shape, scale=64.0)
    assert net.input_shape == (3, 20) and net.nodes[0].shape == (3, 1, 20)
    assert layer_label(net.weight_layers[1]) == "c2 1x3/2 dil2 6->6 g2"
    sd.save(net, tmp_path / "n.h5")
    assert sd.load(tmp_path / "n.h5").input_shape == (3, 20)
    with pytest.raises(ValueError, match=r"expected \[T, 3, 20\]"):
        sd.simulate(net, np.zeros((2, 3, 1, 20), np.float32), progress=False)


def test_conv_transpose1d_is_a_transposed_conv_of_height_1():
    """Its output length (output_padding included) is torch's; parity with sd.reference and the
    torch model is in test_parity (zoo entry ``conv_transpose1d``)."""
    model, shape = make("conv_transpose1d")
    net = sd.convert(model, shape, scale=64.0)
    ups = [n for n in net.nodes if isinstance(n, sd.graph.ConvTranspose)]
    assert [n.shape for n in ups] == [(4, 1, 18), (2, 1, 20)]
    assert (ups[0].stride, ups[0].padding, ups[0].output_padding, ups[0].groups) == ((1, 2), (0, 1),
                                                                                      (0, 1), 2)
    assert ups[1].dilation == (1, 2)


@pytest.mark.parametrize("f, match", [
    (lambda x: x.view(x.size(0), 2, -1), r"torch\.flatten\(x, 1\)"),
    (lambda x: x.squeeze(), "batch axis"),
    (lambda x: x * F.adaptive_avg_pool2d(x, (1, 6)), r"per-channel\s+gate of shape \(C, 1, 1\)"),
    (lambda x: F.selu(x), "supported activations: ReLU"),
    (lambda x: x - x, "x - y of two tensors"),
    (lambda x: x.mean(1), "global average"),
    (lambda x: 6 / x, "reciprocal"),
    (lambda x: x[:, :2], "slicing"),
    (lambda x: x.permute(0, 2, 3, 1), r"torch\.flatten\(x, 1\)"),
    (lambda x: x + x.size(1), "size of a tensor"),
    (lambda x: F.max_pool2d(x, 2, ceil_mode=True), "ceil_mode"),
    (lambda x: F.adaptive_avg_pool2d(x, 4), "not a divisor"),
    (lambda x: nn.functional.interpolate(x, scale_factor=2, mode="bicubic"),
     "bicubic upsampling is not supported .modes 'nearest' and 'bilinear' are"),
    (lambda x: nn.functional.interpolate(x, scale_factor=2, mode="bilinear", antialias=True),
     "antialias=False"),
    (lambda x: x.chunk(2, dim=2)[0], r"only along channels \(dim=1\)"),
    (lambda x: x.transpose(1, 2), r"torch\.flatten\(x, 1\)"),
    (lambda x: F.relu(x.view(1, 2, -1, 6, 6)), "grouped channel view"),
    (lambda x: nn.functional.interpolate(x, scale_factor=1.5), "not an integer factor"),
])
def test_unsupported_idioms_say_what_to_write(f, match):
    with pytest.raises(sd.UnsupportedLayerError, match=match):
        _convert(Lambda(f, head=False))


def test_linear_on_a_feature_map_says_flatten_first():
    model = nn.Sequential(nn.Conv2d(2, 4, 3), nn.Linear(6, 3))
    with pytest.raises(sd.UnsupportedLayerError, match=r"Flatten first: torch\.flatten\(x, 1\)"):
        sd.convert(model, (2, 8, 8))


def test_unsupported_modules_carry_a_hint():
    for mod, match in ((nn.SELU(), "SELU is not supported .supported activations: ReLU"),
                       (nn.LayerNorm(4), "BatchNorm, which folds"),
                       (nn.Softmax(1), "apply softmax to res.outputs")):
        with pytest.raises(sd.UnsupportedLayerError, match=match):
            sd.convert(nn.Sequential(nn.Linear(4, 4), mod), (4,))


def test_wrong_input_shape_is_one_clear_value_error():
    model = nn.Sequential(nn.Conv2d(3, 4, 3), nn.Flatten(), nn.Linear(4 * 6 * 6, 2))
    with pytest.raises(ValueError, match=r"input_shape \(1, 8, 8\).*expected input\[1, 1, 8, 8\] "
                                         r"to have 3 channels") as e:
        sd.convert(model, (1, 8, 8))
    assert e.value.__cause__ is None and e.value.__suppress_context__
    assert "While executing" not in str(e.value) and "\n" not in str(e.value)
    with pytest.raises(ValueError, match=r"\(N,\), \(C, L\) or \(C, H, W\)"):
        sd.convert(model, (1, 3, 8, 8))


def test_layer_labels_say_what_each_layer_is():
    net = sd.convert(nn.Sequential(nn.Conv2d(1, 8, 3, stride=2), nn.ReLU(),
                                   nn.Conv2d(8, 8, 3, padding=1, groups=8), nn.ReLU(),
                                   nn.Conv2d(8, 4, (3, 1), stride=(2, 1)), nn.Flatten(),
                                   nn.Linear(4 * 2 * 5, 3)), (1, 11, 12))
    assert net.layer_labels == ["conv1 3x3/2 1->8", "conv2 3x3 8->8 dw", "conv3 3x1/2x1 8->4", "fc1 40->3"]
    assert layer_label(net.nodes[2]) == "1 (activation)"


def test_summary_rows_keep_long_module_paths_whole():
    inner = nn.Sequential(nn.Conv2d(2, 4, 3, padding=1), nn.ReLU())
    model = nn.Sequential(nn.Sequential(nn.Sequential(inner, nn.Sequential(nn.Conv2d(4, 4, 1)))))
    net = sd.convert(model, (2, 6, 6))
    res = sd.simulate(net, smooth_stream((2, 6, 6), t=3), progress=False)
    text = res.stats.summary()
    assert "0.0.0.0 3x3 2->4" in text and "0.0.1.0 1x1 4->4" in text
    rows = [ln.split()[0] for ln in text.splitlines()[3:5]]
    assert rows == ["0.0.0.0", "0.0.1.0"]


def test_json_report_names_units_and_basis(tmp_path):
    model, shape = make("conv")
    frames = smooth_stream(shape, t=5)
    st = sd.simulate(sd.convert(model, shape), frames, progress=False).stats
    rep = json.loads(json.dumps(st.report()))
    t = st.n_frames
    assert rep["frames"] == t == 5
    assert rep["synops_per_frame"] == pytest.approx(st.synops.sum() / t)
    for k, total in st.energy().items():
        assert rep["energy_J_total"][k] == pytest.approx(total)
        assert rep["energy_J_per_frame"][k] == pytest.approx(total / t)
    assert rep["energy_J"] == rep["energy_J_total"]  # the earlier name, a run total
    assert [lay["label"] for lay in rep["layers"]] == ["conv1 3x3 2->4", "fc1 144->3"]
    assert sum(lay["dense_macs_per_frame"] for lay in rep["layers"]) == rep["dense_macs_per_frame"]
    assert rep["energy_pJ_per_op"]["fp32_mac"] == 4.6
