"""Tests of ``sigmadelta.datasets``: Temporal MNIST, the digit streams, moving digits."""

from __future__ import annotations

import gzip
from pathlib import Path

import numpy as np
import pytest
from _sources import check_frames as _check_frames
from sigmadelta.datasets import (
    MovingDigits,
    MovingMNISTNpy,
    SourceError,
    TemporalDigits,
    as_source,
    load_digits,
    read_idx,
    temporal_order,
)


# ----------------------------------------------------------------- temporal MNIST
def _brute_force_order(x: np.ndarray, lookahead: int) -> list[int]:
    """Line-by-line transcription of O'Connor & Welling's ``temporalize`` (their
    sigma-delta repository, helpers/temporal_mnist.py), in float64 with plain lists."""
    flat = x.reshape(len(x), -1).astype(np.float64)
    index_buffer = list(range(1, lookahead + 1))
    sample_buffer = [flat[i] for i in range(1, min(lookahead + 1, len(x)))]
    order, current = [], 0
    for i in range(len(x)):
        order.append(current)
        dists = [np.abs(flat[current] - b).sum() for b in sample_buffer]
        closest = int(np.argmin(dists)) if dists else 0  # first minimum: lowest slot
        current = index_buffer[closest]
        more = i + lookahead + 1 < len(x)
        if dists:
            sample_buffer[closest] = flat[i + lookahead + 1] if more else np.full_like(flat[0], np.inf)
            index_buffer[closest] = i + lookahead + 1 if more else -1
    return order


def test_temporal_order_by_hand():
    """Look-ahead 2 on five 2-pixel images; the tie at step 2 goes to the lowest buffer slot.

    step 1: current (1,0); slots [x1=(3,0): 2, x2=(3,3): 5] -> x1; slot 0 <- x3
    step 2: current (3,0); slots [x3=(0,0): 3, x2=(3,3): 3] -> tie, slot 0 -> x3
            (not x2, the earlier sample); slot 0 <- x4
    step 3: current (0,0); slots [x4=(2,2): 4, x2=(3,3): 6] -> x4; nothing left to refill
    step 4: x2
    """
    x = np.array([[1, 0], [3, 0], [3, 3], [0, 0], [2, 2]], dtype=np.uint8)
    assert temporal_order(x, lookahead=2).tolist() == [0, 1, 3, 4, 2]
    assert temporal_order(x.astype(np.float32) / 255, lookahead=2).tolist() == [0, 1, 3, 4, 2]
    # look-ahead 4 holds all: (1,0) -> x3 (1) -> x1 (3) -> x2 (3, tie with x4, lower slot) -> x4
    assert temporal_order(x, lookahead=4).tolist() == [0, 3, 1, 2, 4]


@pytest.mark.parametrize("lookahead", [1, 5, 50])
@pytest.mark.parametrize("kind", ["int", "float"])
def test_temporal_order_matches_definition(lookahead, kind):
    rng = np.random.default_rng(lookahead)
    if kind == "int":
        x = rng.integers(0, 3, size=(80, 2, 3)).astype(np.uint8)  # many ties
    else:
        x = rng.random((80, 6))
    order = temporal_order(x, lookahead=lookahead)
    assert order.dtype == np.int64 and sorted(order.tolist()) == list(range(80))
    assert order.tolist() == _brute_force_order(x, lookahead)


def test_temporal_order_edge_cases():
    assert temporal_order(np.zeros((0, 3))).tolist() == []
    assert temporal_order(np.zeros((1, 3))).tolist() == [0]
    assert temporal_order(np.arange(4)[:, None], lookahead=10).tolist() == [0, 1, 2, 3]
    with pytest.raises(ValueError, match="lookahead must be >= 1"):
        temporal_order(np.zeros((3, 2)), lookahead=0)


def test_temporal_digits_is_smoother_than_original():
    data = load_digits("digits", "test")
    src = TemporalDigits("test")
    frames = _check_frames(src)
    assert frames.shape == (397, 64) and 0 <= frames.min() and frames.max() == 1.0
    np.testing.assert_allclose(frames, data.images[src.order].reshape(397, 64) / 16.0)
    np.testing.assert_array_equal(src.labels, data.labels[src.order])
    original = (data.images.reshape(397, -1) / 16.0).astype(np.float32)
    step = lambda a: np.abs(np.diff(a, axis=0)).sum(axis=1).mean()  # noqa: E731
    assert step(frames) < 0.6 * step(original)
    images = TemporalDigits("train", flatten=False, limit=10)
    assert images.frame_shape == (1, 8, 8) and len(images) == 10 and len(images.labels) == 10


def _write_idx(path: Path, arr: np.ndarray) -> None:
    header = bytes([0, 0, 0x08, arr.ndim]) + np.asarray(arr.shape, ">u4").tobytes()
    payload = header + arr.astype(np.uint8).tobytes()
    if path.suffix == ".gz":
        with gzip.open(path, "wb") as f:
            f.write(payload)
    else:
        path.write_bytes(payload)


def test_mnist_idx_folder(tmp_path):
    rng = np.random.default_rng(3)
    images = rng.integers(0, 256, (30, 28, 28), dtype=np.uint8)
    labels = rng.integers(0, 10, 30)
    _write_idx(tmp_path / "t10k-images-idx3-ubyte.gz", images)
    _write_idx(tmp_path / "t10k-labels.idx1-ubyte", labels)
    np.testing.assert_array_equal(read_idx(tmp_path / "t10k-images-idx3-ubyte.gz"), images)
    src = TemporalDigits("test", source=tmp_path, lookahead=8)
    assert len(src) == 30 and src.frame_shape == (784,)
    np.testing.assert_array_equal(src.labels, labels[src.order])
    np.testing.assert_allclose(src.to_array()[0], images[0].ravel() / 255.0, rtol=1e-6)
    with pytest.raises(FileNotFoundError, match="missing train-images-idx3-ubyte .*"
                                                "train-labels-idx1-ubyte"):
        TemporalDigits("train", source=tmp_path)
    (tmp_path / "bad").write_bytes(b"\x01\x02\x03\x04")
    with pytest.raises(SourceError, match="not an IDX file"):
        read_idx(tmp_path / "bad")


# ------------------------------------------------------------------ moving digits
def test_moving_digits_deterministic_and_on_canvas():
    a = MovingDigits(40, canvas=48, n_digits=3, seed=5)
    fa = _check_frames(a)
    np.testing.assert_array_equal(fa, _check_frames(MovingDigits(40, canvas=48, n_digits=3,
                                                                 seed=5)))
    assert not np.array_equal(fa, MovingDigits(40, canvas=48, n_digits=3, seed=6).to_array())
    assert fa.shape == (40, 1, 48, 48) and fa.min() >= 0 and fa.max() <= 1
    assert a.digit_size == 24 and a.digit_labels.shape == (40, 3) and len(a.labels) == 40
    np.testing.assert_array_equal(a.labels, a.digit_labels[:, 0])
    assert a.positions.min() >= 0 and a.positions.max() <= 48 - 24
    moves = np.abs(np.diff(a.positions, axis=0)).max(axis=(1, 2))
    assert moves.max() <= 5 and (moves > 0).mean() > 0.9  # moving, at bounded speed
    for t in (0, 17, 39):  # every digit is drawn, whole, at its position
        for digit, (r, c) in zip(a.digits, a.positions[t], strict=True):
            assert np.all(fa[t, 0, r : r + 24, c : c + 24] >= digit - 1e-6)
    assert np.isclose(fa.reshape(40, -1).max(axis=1), 1.0, atol=0.05).all()


def test_moving_digits_validation():
    with pytest.raises(ValueError, match="smaller than canvas"):
        MovingDigits(5, canvas=20)
    with pytest.raises(ValueError, match="n_frames must be >= 1"):
        MovingDigits(0)


def test_moving_mnist_npy(tmp_path):
    rng = np.random.default_rng(0)
    seqs = rng.integers(0, 256, (20, 3, 64, 64), dtype=np.uint8)
    path = tmp_path / "mnist_test_seq.npy"
    np.save(path, seqs)
    src = MovingMNISTNpy(path, sequences=[2, 0])
    assert len(src) == 40 and src.frame_shape == (1, 64, 64) and src.labels is None
    frames = _check_frames(src)
    np.testing.assert_allclose(frames[:20, 0], seqs[:, 2] / 255.0, rtol=1e-6)
    np.testing.assert_allclose(frames[20:, 0], seqs[:, 0] / 255.0, rtol=1e-6)
    assert src.sequence_ids.tolist() == [2] * 20 + [0] * 20
    assert len(as_source(path, kind="moving-mnist", sequences=slice(1, None))) == 40
    with pytest.raises(ValueError, match="not within the 3 sequences"):
        MovingMNISTNpy(path, sequences=[3])
