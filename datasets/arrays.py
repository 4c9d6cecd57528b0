"""Frame sources over NumPy arrays, ``.npy`` files and HDF5 datasets.

Arrays are laid out time first, ``[T, *frame]``.  Frames with two axes
``[T, H, W]`` are grayscale images and get a leading channel axis (disable with
``add_channel=False``); frames with one or three axes are used as they are.
``uint8`` data is scaled by ``1/255`` unless another ``scale`` is given.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from pathlib import Path

import h5py
import numpy as np

from .base import FrameSource, SourceError, check_finite, frame_range, validate_labels

__all__ = [
    "FORMAT",
    "FORMAT_VERSION",
    "ArraySource",
    "HDF5Source",
    "NpySource",
    "write_hdf5",
]

#: Value of the ``format`` attribute written by :func:`write_hdf5`.
FORMAT = "sigmadelta-frames"
#: Value of the ``version`` attribute written by :func:`write_hdf5`.
FORMAT_VERSION = 1


def _layout(
    shape: tuple[int, ...], dtype: np.dtype, add_channel: bool, scale: float | None, name: str
) -> tuple[tuple[int, ...], float]:
    """Validate an array layout; return the frame shape and the value scale."""
    if len(shape) < 2 or len(shape) > 4:
        raise SourceError(
            f"{name}: expected an array [T, *frame] with 2 to 4 axes "
            f"([T, D], [T, H, W] or [T, C, H, W]), got shape {shape}"
        )
    if dtype.kind not in "biuf":
        raise SourceError(f"{name}: frames must be numeric (bool, int or float), got dtype {dtype}")
    frame_shape = tuple(int(s) for s in shape[1:])
    if add_channel and len(frame_shape) == 2:
        frame_shape = (1, *frame_shape)
    if scale is None:
        scale = 1.0 / 255.0 if dtype == np.uint8 else 1.0
    return frame_shape, float(scale)


def _no_frames(name: str, total: int, r: range) -> SourceError:
    if total == 0:
        return SourceError(f"{name}: source yields no frames (it is empty)")
    return SourceError(
        f"{name}: source yields no frames (start={r.start} is past its {total} frames)"
    )


class ArraySource(FrameSource):
    """Frames from an array ``[T, *frame]`` held in memory or memory-mapped.

    Parameters
    ----------
    array : array_like
        Frames, time first.  In-memory arrays are checked for NaN/Inf at
        construction; memory-mapped arrays frame by frame while iterating.
    labels : array_like, optional
        One integer label per row of ``array``.
    start, stride, limit : int
        Frame selection, see :func:`~sigmadelta.datasets.base.frame_range`.
    scale : float, optional
        Multiply values by this factor (default ``1/255`` for ``uint8``, else 1).
    add_channel : bool, default True
        Give 2-D frames ``[H, W]`` a leading channel axis.
    name : str, default "array"
        Name used in messages.
    """

    def __init__(
        self,
        array: object,
        *,
        labels: object = None,
        start: int = 0,
        stride: int = 1,
        limit: int | None = None,
        scale: float | None = None,
        add_channel: bool = True,
        name: str = "array",
    ) -> None:
        arr = array if isinstance(array, np.ndarray) else np.asarray(array)
        self.name = name
        self.frame_shape, self.scale = _layout(arr.shape, arr.dtype, add_channel, scale, name)
        self._range = frame_range(arr.shape[0], start, stride, limit)
        if len(self._range) == 0:
            raise _no_frames(name, arr.shape[0], self._range)
        self._lazy_check = _is_mmap(arr)
        if not self._lazy_check and arr.dtype.kind == "f" and not np.isfinite(arr).all():
            bad = np.flatnonzero(~np.isfinite(arr.reshape(arr.shape[0], -1)).all(axis=1))[0]
            raise SourceError(f"{name}: frame {bad} contains NaN or infinite values")
        self._array = arr
        self.labels = None
        if labels is not None:
            self.labels = validate_labels(labels, arr.shape[0], name)[self._range]

    def __len__(self) -> int:
        return len(self._range)

    def __iter__(self) -> Iterator[np.ndarray]:
        arr, check = self._array, self._lazy_check and self._array.dtype.kind == "f"
        for i in self._range:
            frame = self._convert(arr[i])
            if check:
                check_finite(frame, i, self.name)
            yield frame

    def _convert(self, raw: np.ndarray) -> np.ndarray:
        frame = np.asarray(raw, dtype=np.float32).reshape(self.frame_shape)
        if self.scale != 1.0:
            frame = frame * np.float32(self.scale)
        return np.ascontiguousarray(frame)


def _is_mmap(arr: np.ndarray) -> bool:
    base = arr
    while base is not None:
        if isinstance(base, np.memmap):
            return True
        base = getattr(base, "base", None)
        if not isinstance(base, np.ndarray):
            return False
    return False


class NpySource(ArraySource):
    """Frames from a ``.npy`` file, memory-mapped (never loaded whole).

    Parameters
    ----------
    path : str or Path
        The ``.npy`` file holding an array ``[T, *frame]``.
    **kwargs
        Passed to :class:`ArraySource` (``labels``, ``start``, ``stride``, ...).
    """

    def __init__(self, path: str | Path, **kwargs: object) -> None:
        path = Path(path)
        if not path.is_file():
            raise FileNotFoundError(f"no such .npy file: {path}")
        try:
            arr = np.load(path, mmap_mode="r", allow_pickle=False)
        except (ValueError, OSError, EOFError) as exc:
            raise SourceError(f"cannot read {path} as a .npy array: {exc}") from exc
        if not isinstance(arr, np.ndarray):
            raise SourceError(f"{path} does not hold a single array")
        self.path = path
        kwargs.setdefault("name", path.stem)
        super().__init__(arr, **kwargs)


class HDF5Source(FrameSource):
    """Frames from a dataset ``[T, *frame]`` of an HDF5 file, read block-wise.

    Parameters
    ----------
    path : str or Path
        The HDF5 file.
    dataset : str, default "frames"
        Name of the frame dataset.
    labels : str or None, default "labels"
        Name of an optional 1-D label dataset; ignored if it does not exist.
    start, stride, limit : int
        Frame selection, see :func:`~sigmadelta.datasets.base.frame_range`.
    scale, add_channel : see :class:`ArraySource`.
    block_frames : int, optional
        Frames read per HDF5 request (default: the dataset's chunk length, or 64).
    """

    def __init__(
        self,
        path: str | Path,
        dataset: str = "frames",
        *,
        labels: str | None = "labels",
        start: int = 0,
        stride: int = 1,
        limit: int | None = None,
        scale: float | None = None,
        add_channel: bool = True,
        block_frames: int | None = None,
    ) -> None:
        self.path = Path(path)
        self.dataset = dataset
        self.name = self.path.stem
        if not self.path.is_file():
            raise FileNotFoundError(f"no such HDF5 file: {self.path}")
        with self._open() as f:
            if dataset not in f or not isinstance(f[dataset], h5py.Dataset):
                names = ", ".join(sorted(f.keys())) or "none"
                raise SourceError(f"{self.path}: no dataset {dataset!r} (datasets: {names})")
            ds = f[dataset]
            where = f"{self.path}:{dataset}"
            self.frame_shape, self.scale = _layout(ds.shape, ds.dtype, add_channel, scale, where)
            total = ds.shape[0]
            chunk = ds.chunks[0] if ds.chunks else 64
            self.attrs = {k: _plain(v) for k, v in ds.attrs.items()}
            raw_labels = f[labels][()] if labels and labels in f else None
        self._range = frame_range(total, start, stride, limit)
        if len(self._range) == 0:
            raise _no_frames(where, total, self._range)
        self.block_frames = max(1, int(block_frames or chunk))
        self.labels = None
        if raw_labels is not None:
            self.labels = validate_labels(raw_labels, total, where)[self._range]

    def _open(self) -> h5py.File:
        try:
            return h5py.File(self.path, "r")
        except OSError as exc:
            raise SourceError(f"cannot open {self.path} as HDF5: {exc}") from exc

    def __len__(self) -> int:
        return len(self._range)

    def __iter__(self) -> Iterator[np.ndarray]:
        r, step = self._range, self._range.step
        per_block = max(1, self.block_frames // step)
        scale = np.float32(self.scale)
        with self._open() as f:
            ds = f[self.dataset]
            for b in range(0, len(r), per_block):
                sub = r[b : b + per_block]
                block = np.asarray(ds[sub.start : sub.stop : step], dtype=np.float32)
                if self.scale != 1.0:
                    block *= scale
                for k, frame in enumerate(block):
                    check_finite(frame, sub[k], f"{self.path}:{self.dataset}")
                    yield np.ascontiguousarray(frame.reshape(self.frame_shape))


def _plain(value: object) -> object:
    if isinstance(value, bytes):
        return value.decode()
    if isinstance(value, np.generic):
        return value.item()
    return value


def write_hdf5(
    path: str | Path,
    frames: Iterable[np.ndarray] | np.ndarray,
    labels: object = None,
    chunk_frames: int = 64,
    compression: str | None = "gzip",
    dataset: str = "frames",
) -> int:
    """Write frames to an HDF5 file readable by :class:`HDF5Source`.

    Frames are streamed into a resizable, chunked ``float32`` dataset, so an
    iterable (e.g. a :class:`FrameSource` over a long video) never needs to
    fit in memory.

    Parameters
    ----------
    path : str or Path
        Output file (overwritten).
    frames : iterable of numpy.ndarray or numpy.ndarray
        Frames of one common shape; an array is iterated along axis 0.
    labels : array_like, optional
        One integer label per frame, stored as dataset ``labels``.  Taken from
        ``frames.labels`` when ``frames`` is a labelled :class:`FrameSource`.
    chunk_frames : int, default 64
        Frames per HDF5 chunk (and per write).
    compression : {"gzip", "lzf", None}, default "gzip"
        HDF5 compression filter.
    dataset : str, default "frames"
        Name of the frame dataset.

    Returns
    -------
    int
        Number of frames written.
    """
    if compression not in ("gzip", "lzf", None):
        raise ValueError(f"compression must be 'gzip', 'lzf' or None, got {compression!r}")
    if chunk_frames < 1:
        raise ValueError(f"chunk_frames must be >= 1, got {chunk_frames}")
    if labels is None and isinstance(frames, FrameSource):
        labels = frames.labels
    path = Path(path)
    try:
        return _write_frames(path, frames, labels, chunk_frames, compression, dataset)
    except BaseException:
        path.unlink(missing_ok=True)  # never leave a truncated file behind
        raise


def _write_frames(
    path: Path, frames: Iterable[np.ndarray], labels: object, chunk_frames: int,
    compression: str | None, dataset: str,
) -> int:
    n = 0
    with h5py.File(path, "w") as f:
        ds, buf = None, []
        for frame in frames:
            frame = np.asarray(frame, dtype=np.float32)
            check_finite(frame, n, f"write_hdf5({path})")
            if ds is None:
                ds = f.create_dataset(
                    dataset, shape=(0, *frame.shape), maxshape=(None, *frame.shape),
                    dtype=np.float32, chunks=(chunk_frames, *frame.shape), compression=compression,
                )
            elif frame.shape != ds.shape[1:]:
                raise SourceError(
                    f"write_hdf5({path}): frame {n} has shape {frame.shape}, "
                    f"expected {ds.shape[1:]}"
                )
            buf.append(frame)
            n += 1
            if len(buf) == chunk_frames:
                _append(ds, buf)
                buf = []
        if ds is None:
            raise SourceError(f"write_hdf5({path}): no frames to write")
        if buf:
            _append(ds, buf)
        ds.attrs["format"] = FORMAT
        ds.attrs["version"] = FORMAT_VERSION
        f.attrs["format"] = FORMAT
        f.attrs["version"] = FORMAT_VERSION
        if labels is not None:
            f.create_dataset("labels", data=validate_labels(labels, n, str(path)))
    return n


def _append(ds: h5py.Dataset, buf: list[np.ndarray]) -> None:
    t = ds.shape[0]
    ds.resize(t + len(buf), axis=0)
    ds[t:] = np.stack(buf)
