"""Moving digits videos (Moving MNIST style).

:class:`MovingDigits` synthesises bouncing-digit videos from scikit-learn's
digits or MNIST; :class:`MovingMNISTNpy` reads the published Moving MNIST file
``mnist_test_seq.npy`` (``uint8`` ``[20, 10000, 64, 64]``, time major).
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from pathlib import Path

import numpy as np

from .base import FrameSource, SourceError, check_finite, frame_range
from .digits import load_digits

__all__ = ["MovingDigits", "MovingMNISTNpy", "bounce_trajectories", "resize_bilinear"]


def resize_bilinear(image: np.ndarray, size: int) -> np.ndarray:
    """Resize a 2-D image to ``size x size`` with bilinear interpolation.

    Parameters
    ----------
    image : numpy.ndarray
        2-D image.
    size : int
        Output height and width.

    Returns
    -------
    numpy.ndarray
        ``float32`` image ``[size, size]``.
    """
    img = np.asarray(image, dtype=np.float32)
    for axis in (0, 1):
        n = img.shape[axis]
        pos = np.clip((np.arange(size) + 0.5) * n / size - 0.5, 0, n - 1)
        lo = np.floor(pos).astype(int)
        hi = np.minimum(lo + 1, n - 1)
        w = (pos - lo).astype(np.float32)
        shape = (-1, 1) if axis == 0 else (1, -1)
        a, b = np.take(img, lo, axis=axis), np.take(img, hi, axis=axis)
        img = a + (b - a) * w.reshape(shape)
    return img


def bounce_trajectories(
    rng: np.random.Generator, n_frames: int, n_objects: int, extent: int,
    speed: tuple[float, float] = (2.0, 4.0),
) -> np.ndarray:
    """Top-left positions of objects moving at constant speed inside a box.

    Objects start uniformly in ``[0, extent]^2`` with a uniformly random
    direction and a speed drawn from ``speed`` (pixels per frame), and reflect
    off the walls.

    Returns
    -------
    numpy.ndarray
        ``int64`` array ``[n_frames, n_objects, 2]`` of (row, column), each in
        ``[0, extent]``.
    """
    pos = rng.uniform(0, extent, size=(n_objects, 2))
    angle = rng.uniform(0, 2 * np.pi, size=n_objects)
    vel = rng.uniform(*speed, size=(n_objects, 1)) * np.stack([np.sin(angle), np.cos(angle)], 1)
    out = np.empty((n_frames, n_objects, 2), dtype=np.int64)
    for t in range(n_frames):
        out[t] = np.clip(np.rint(pos), 0, extent)
        pos = pos + vel
        low, high = pos < 0, pos > extent
        pos = np.where(low, -pos, np.where(high, 2 * extent - pos, pos))
        vel = np.where(low | high, -vel, vel)
    return out


class MovingDigits(FrameSource):
    """Video of digits bouncing inside a square canvas.

    Parameters
    ----------
    n_frames : int, default 200
        Length of the video.
    canvas : int, default 64
        Height and width of the frames.
    n_digits : int, default 2
        Number of distinct digits, combined with a pixel-wise maximum.
    seed : int, default 0
        Seed of the digit choice and trajectories; equal seeds give equal videos.
    source : str or Path, default "digits"
        ``"digits"`` (scikit-learn 8x8) or an MNIST IDX folder.
    split : {"train", "test"}, default "test"
        Split the digits are drawn from.
    digit_size : int, optional
        Side of a digit on the canvas (default: 3x for 8x8 digits, i.e. 24,
        native size for MNIST); digits are resized bilinearly.
    speed : (float, float), default (2.0, 4.0)
        Range of speeds in pixels per frame.

    Attributes
    ----------
    digit_labels : numpy.ndarray
        ``int64`` array ``[n_frames, n_digits]`` of the classes on screen.
    labels : numpy.ndarray
        Class of the first digit at each frame.
    positions : numpy.ndarray
        ``[n_frames, n_digits, 2]`` top-left (row, column) of each digit.
    """

    def __init__(
        self,
        n_frames: int = 200,
        canvas: int = 64,
        n_digits: int = 2,
        seed: int = 0,
        source: str | Path = "digits",
        *,
        split: str = "test",
        digit_size: int | None = None,
        speed: tuple[float, float] = (2.0, 4.0),
        name: str = "moving-digits",
    ) -> None:
        if n_frames < 1:
            raise ValueError(f"n_frames must be >= 1, got {n_frames}")
        if n_digits < 1:
            raise ValueError(f"n_digits must be >= 1, got {n_digits}")
        data = load_digits(source, split)
        native = data.images.shape[1]
        size = int(digit_size) if digit_size else (3 * native if native < 16 else native)
        if not 1 <= size < canvas:
            raise ValueError(f"digit_size {size} must be >= 1 and smaller than canvas {canvas}")
        if n_digits > len(data.images):
            raise ValueError(f"n_digits={n_digits} exceeds the {len(data.images)} digits available")
        rng = np.random.default_rng(seed)
        pick = rng.choice(len(data.images), size=n_digits, replace=False)
        self.digits = [
            np.clip(resize_bilinear(data.images[i] * data.scale, size), 0, 1) for i in pick
        ]
        self.digit_size = size
        self.positions = bounce_trajectories(rng, int(n_frames), n_digits, canvas - size, speed)
        self.digit_labels = np.tile(data.labels[pick], (int(n_frames), 1))
        self.labels = self.digit_labels[:, 0].copy()
        self.frame_shape = (1, int(canvas), int(canvas))
        self.name = name

    def __len__(self) -> int:
        return len(self.positions)

    def __iter__(self) -> Iterator[np.ndarray]:
        s = self.digit_size
        for pos in self.positions:
            frame = np.zeros(self.frame_shape, dtype=np.float32)
            for digit, (r, c) in zip(self.digits, pos, strict=True):
                window = frame[0, r : r + s, c : c + s]
                np.maximum(window, digit, out=window)
            yield frame


class MovingMNISTNpy(FrameSource):
    """Frames of the Moving MNIST file, one or several sequences concatenated.

    Parameters
    ----------
    path : str or Path
        ``mnist_test_seq.npy`` or any ``uint8`` array of sequences; memory-mapped.
    sequences : int, slice or iterable of int, optional
        Sequences to play, in this order (default: all).
    time_major : bool, default True
        Layout ``[T, N, H, W]`` (the published file); ``False`` for ``[N, T, H, W]``.
    start, stride, limit : int
        Frame selection over the concatenated frames.

    Attributes
    ----------
    sequence_ids : numpy.ndarray
        Sequence index of each yielded frame.
    sequence_length : int
        Frames per sequence.
    """

    def __init__(
        self,
        path: str | Path,
        sequences: int | slice | Iterable[int] | None = None,
        *,
        time_major: bool = True,
        start: int = 0,
        stride: int = 1,
        limit: int | None = None,
        name: str | None = None,
    ) -> None:
        self.path = Path(path)
        if not self.path.is_file():
            raise FileNotFoundError(f"no such Moving MNIST file: {self.path}")
        try:
            arr = np.load(self.path, mmap_mode="r", allow_pickle=False)
        except (ValueError, OSError, EOFError) as exc:
            raise SourceError(f"cannot read {self.path} as a .npy array: {exc}") from exc
        if arr.ndim != 4 or arr.dtype.kind not in "uif":
            raise SourceError(
                f"{self.path}: expected a numeric array [T, N, H, W], got shape {arr.shape} "
                f"dtype {arr.dtype}"
            )
        self._array = arr if time_major else arr.transpose(1, 0, 2, 3)
        length, count = self._array.shape[:2]
        self.sequence_length = int(length)
        self._seqs = self._select(sequences, count)
        self._range = frame_range(length * len(self._seqs), start, stride, limit)
        if len(self._range) == 0:
            raise SourceError(f"{self.path} yields no frames with this selection")
        self._scale = np.float32(1 / 255 if arr.dtype == np.uint8 else 1)
        self.sequence_ids = self._seqs[np.asarray(self._range) // length]
        self.frame_shape = (1, *(int(d) for d in self._array.shape[2:]))
        self.name = name or self.path.stem
        self.labels = None

    def _select(self, sequences: object, count: int) -> np.ndarray:
        if sequences is None:
            seqs = np.arange(count)
        elif isinstance(sequences, slice):
            seqs = np.arange(count)[sequences]
        else:
            seqs = np.atleast_1d(np.asarray(sequences, dtype=np.int64))
        if seqs.size == 0 or seqs.min() < 0 or seqs.max() >= count:
            raise ValueError(
                f"sequences {sequences!r} not within the {count} sequences of {self.path}"
            )
        return seqs.astype(np.int64)

    def __len__(self) -> int:
        return len(self._range)

    def __iter__(self) -> Iterator[np.ndarray]:
        length = self.sequence_length
        for k in self._range:
            raw = self._array[k % length, self._seqs[k // length]]
            frame = np.asarray(raw, dtype=np.float32) * self._scale
            if self._array.dtype.kind == "f":
                check_finite(frame, k, str(self.path))
            yield np.ascontiguousarray(frame.reshape(self.frame_shape))
