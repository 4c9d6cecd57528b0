"""The :class:`FrameSource` interface shared by every stream of frames.

A frame source is a re-iterable stream of ``float32`` frames of one fixed
shape (channels first, without the time axis).  The simulator, the command line
and the scripts consume nothing else, so anything that yields frames (a video
file, an HDF5 dataset, a NumPy array, a synthetic generator) is wrapped in a
subclass of :class:`FrameSource`.
"""

from __future__ import annotations

import math
import operator
from collections.abc import Iterator

import numpy as np

__all__ = [
    "FrameSource",
    "MissingDependencyError",
    "SourceEndedEarlyWarning",
    "SourceError",
    "check_finite",
    "frame_range",
    "validate_labels",
]


class SourceError(ValueError):
    """A source of frames cannot be opened or read.

    Raised for corrupt or unreadable files, files without usable frames, frames
    with non-finite values and other problems of the data itself.  The message
    always names the offending file (or array) and the problem.
    """


class SourceEndedEarlyWarning(UserWarning):
    """A source gave fewer frames than it announced (e.g. a truncated video file).

    The message names the source, the frames it gave and the frames it announced.
    """


class MissingDependencyError(ImportError):
    """An optional package needed by a source is not installed.

    The message names the ``pip install`` command that provides it.
    """


class FrameSource:
    """Base class of re-iterable streams of frames.

    Subclasses set :attr:`frame_shape`, :attr:`name` and :attr:`labels` in
    their constructor and implement :meth:`__iter__` and :meth:`__len__`.

    Attributes
    ----------
    frame_shape : tuple of int
        Shape of one frame, channels first and without time: ``(C, H, W)`` for
        images and video, ``(D,)`` for vectors.
    name : str
        Short human-readable name (file stem or embedded source name).
    labels : numpy.ndarray or None
        Optional ``int64`` array ``[len(self)]`` of per-frame labels, aligned
        with the frames actually yielded (after start/stride/limit).

    Notes
    -----
    Iterating yields C-contiguous ``float32`` arrays of exactly
    :attr:`frame_shape`; image values lie in ``[0, 1]``.  Every call to
    ``iter()`` restarts from the first frame.
    """

    frame_shape: tuple[int, ...] = ()
    name: str = ""
    labels: np.ndarray | None = None

    def __iter__(self) -> Iterator[np.ndarray]:
        raise NotImplementedError

    def __len__(self) -> int:
        raise TypeError(f"{type(self).__name__} {self.name!r} has no known length")

    @property
    def n_features(self) -> int:
        """Number of values in one frame (product of :attr:`frame_shape`)."""
        return math.prod(self.frame_shape)

    def to_array(self, max_frames: int | None = None) -> np.ndarray:
        """Read frames into one ``float32`` array ``[T, *frame_shape]``.

        Parameters
        ----------
        max_frames : int, optional
            Stop after this many frames (all frames when omitted).

        Returns
        -------
        numpy.ndarray
            The frames stacked along a new leading time axis.
        """
        frames = []
        for i, frame in enumerate(self):
            if max_frames is not None and i >= max_frames:
                break
            frames.append(frame)
        if not frames:
            return np.zeros((0, *self.frame_shape), dtype=np.float32)
        return np.stack(frames)

    def __repr__(self) -> str:
        try:
            n = str(len(self))
        except TypeError:
            n = "?"
        return (
            f"{type(self).__name__}(name={self.name!r}, frames={n}, "
            f"frame_shape={self.frame_shape})"
        )


def _as_int(value: object, what: str) -> int:
    try:
        return operator.index(value)  # rejects floats and bools-as-intent alike
    except TypeError:
        raise TypeError(f"{what} must be an integer, got {value!r}") from None


def frame_range(total: int, start: int = 0, stride: int = 1, limit: int | None = None) -> range:
    """Indices of the frames kept from a stream of ``total`` frames.

    Parameters
    ----------
    total : int
        Number of frames in the underlying stream.
    start : int, default 0
        Index of the first frame kept.
    stride : int, default 1
        Keep every ``stride``-th frame from ``start`` on.
    limit : int, optional
        Keep at most this many frames; must be at least 1 when given.

    Returns
    -------
    range
        The kept indices, possibly empty when ``start >= total``.

    Raises
    ------
    ValueError
        If ``start < 0``, ``stride < 1`` or ``limit < 1``.
    """
    start = _as_int(start, "start")
    stride = _as_int(stride, "stride")
    if start < 0:
        raise ValueError(f"start must be >= 0, got {start}")
    if stride < 1:
        raise ValueError(f"stride must be >= 1, got {stride}")
    r = range(start, max(int(total), start), stride)
    if limit is not None:
        limit = _as_int(limit, "limit")
        if limit < 1:
            raise ValueError(f"limit must be >= 1, got {limit}")
        r = r[:limit]
    return r


def check_finite(frame: np.ndarray, index: int, name: str) -> None:
    """Raise :class:`SourceError` if ``frame`` holds NaN or infinite values.

    Parameters
    ----------
    frame : numpy.ndarray
        The frame to check.
    index : int
        Index of the frame in the underlying stream, used in the message.
    name : str
        Name of the source, used in the message.
    """
    if not np.isfinite(frame).all():
        bad = "NaN" if np.isnan(frame).any() else "infinite values"
        raise SourceError(f"{name}: frame {index} contains {bad}")


def validate_labels(labels: object, total: int, name: str) -> np.ndarray:
    """Check per-frame labels and return them as a 1-D ``int64`` array.

    Parameters
    ----------
    labels : array_like
        One integer label per frame of the underlying stream.
    total : int
        Number of frames in the underlying stream.
    name : str
        Name of the source, used in messages.

    Returns
    -------
    numpy.ndarray
        ``int64`` array of shape ``[total]``.
    """
    arr = np.asarray(labels)
    if arr.ndim != 1 or arr.shape[0] != total:
        raise SourceError(
            f"{name}: labels must have shape ({total},) (one per frame), got {arr.shape}"
        )
    if arr.dtype.kind not in "iub":
        if arr.dtype.kind == "f" and np.all(np.isfinite(arr)) and np.all(arr == np.round(arr)):
            return arr.astype(np.int64)
        raise SourceError(f"{name}: labels must be integers, got dtype {arr.dtype}")
    return arr.astype(np.int64, copy=False)
