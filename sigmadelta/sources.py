"""Streams named by a string, as :func:`sigmadelta.simulate_many` takes them.

A source is given as text, and every worker opens it itself (no frames travel
between machines):

* an embedded name: ``"carphone"``, ``"bikes"``, ``"bigbuckbunny"``, ``"temporal-digits"``, ...
* a video file: ``"clips/a.mp4"`` (decoded at the network's input size, gray for one channel);
* a NumPy file ``"frames.npy"`` ``[T, *input_shape]`` (memory-mapped);
* an HDF5 dataset ``"data.h5:/frames"`` (or ``"data.h5"`` for its dataset ``frames``);
* a glob ``"clips/*.mp4"``: one stream per file it matches (:func:`expand`).

Opening goes through ``sigmadelta.datasets`` (imported when a stream is opened, like
the demo imports the models), so the library keeps no second set of readers.
"""

from __future__ import annotations

import glob
import os
from pathlib import Path

__all__ = ["expand", "resolve", "open_stream", "split_hdf5", "HDF5_SUFFIXES"]

HDF5_SUFFIXES = (".h5", ".hdf5", ".hdf")
_GLOB_CHARS = "*?["


def expand(sources) -> list[str]:
    """The sources as given, each glob pattern replaced by the files it matches (sorted).

    Raises
    ------
    ValueError
        No sources, a source given twice, or a source that is not a string / path.
    FileNotFoundError
        A glob pattern that matches no file.
    """
    if isinstance(sources, (str, os.PathLike)):
        sources = [sources]
    out: list[str] = []
    for spec in sources:
        if not isinstance(spec, (str, os.PathLike)):
            raise ValueError(f"a source must be a name or a path (str), got {type(spec).__name__}: "
                             f"workers open their sources themselves, so arrays are not taken")
        spec = os.fspath(spec)
        if any(c in spec for c in _GLOB_CHARS) and not os.path.exists(spec):
            matches = sorted(glob.glob(spec))
            if not matches:
                raise FileNotFoundError(f"the pattern {spec!r} matches no file")
            out += matches
        else:
            out.append(spec)
    if not out:
        raise ValueError("no streams to simulate")
    seen: set[str] = set()
    twice = [s for s in out if s in seen or seen.add(s)]
    if twice:
        raise ValueError(f"source(s) given more than once: {sorted(set(twice))}")
    return out


def split_hdf5(spec: str) -> tuple[str, str] | None:
    """``"data.h5:/frames"`` -> ``("data.h5", "/frames")``; None if ``spec`` names no dataset."""
    if os.path.exists(spec) or ":" not in spec:
        return None
    path, _, dataset = spec.rpartition(":")
    if Path(path).suffix.lower() in HDF5_SUFFIXES and dataset:
        return path, dataset
    return None


def resolve(spec: str) -> str:
    """``spec`` with a local file made absolute (``"clips/a.mp4"`` -> ``"/data/clips/a.mp4"``,
    ``"d.h5:/x"`` -> ``"/data/d.h5:/x"``), so that a worker started elsewhere finds it on a
    file system mounted at the same place; embedded names and anything else unchanged."""
    if os.path.exists(spec):
        return os.path.abspath(spec)
    h5 = split_hdf5(spec)
    if h5 is not None and os.path.exists(h5[0]):
        return f"{os.path.abspath(h5[0])}:{h5[1]}"
    return spec


def open_stream(spec: str, input_shape: tuple[int, ...], limit: int | None = None):
    """Open one source (see the module docstring) as frames of ``input_shape``.

    Parameters
    ----------
    spec : str
        Embedded name, video / ``.npy`` / HDF5 path, or ``file.h5:/dataset``.
    input_shape : tuple of int
        The network's input; a video is decoded at this size (gray if one channel).
    limit : int, optional
        At most this many frames.

    Returns
    -------
    sigmadelta.datasets.FrameSource
        A re-iterable stream of ``float32`` frames.

    Raises
    ------
    ValueError
        Frames whose shape is not ``input_shape`` (the message names the source).
    """
    from sigmadelta.datasets import HDF5Source, VideoSource, open_source

    shape = tuple(int(s) for s in input_shape)
    kw = {"limit": int(limit)} if limit else {}
    h5 = split_hdf5(spec)
    if h5 is not None:
        src = HDF5Source(h5[0], h5[1], **kw)
    else:
        src = open_source(spec, **kw)
        if isinstance(src, VideoSource) and len(shape) == 3 and src.frame_shape != shape:
            src = open_source(spec, size=shape[1:], gray=shape[0] == 1, **kw)
    if tuple(src.frame_shape) != shape:
        raise ValueError(f"{spec}: frames of shape {tuple(src.frame_shape)}, the network expects {shape}")
    return src
