"""Streams named by a string, as :func:`sigmadelta.simulate_many` takes them.

A source is given as text, and every worker opens it itself (no frames travel
between machines):

* an embedded name: ``"carphone"``, ``"bikes"``, ``"bigbuckbunny"``, ``"temporal-digits"``, ...
* a video file: ``"clips/a.mp4"`` (decoded at the network's input size, gray for one channel);
* a NumPy file ``"frames.npy"`` ``[T, *input_shape]`` (memory-mapped);
* an HDF5 dataset ``"data.h5:/frames"`` (or ``"data.h5"`` for its dataset ``frames``);
* a glob ``"clips/*.mp4"``: one stream per file it matches (:func:`expand`).

The library does not open them itself: it never imports ``sigmadelta.datasets``. The
opener, ``opener(spec, input_shape, limit) -> frames``, is found through the entry point
``default`` of the group ``sigmadelta.sources`` (:func:`default_opener`), which the
package declares as :func:`sigmadelta.datasets.streams.open_stream`; any other opener can
be passed to :func:`sigmadelta.simulate_many` instead.
"""

from __future__ import annotations

import glob
import os
from pathlib import Path

__all__ = ["expand", "resolve", "split_hdf5", "default_opener", "ENTRY_POINTS", "HDF5_SUFFIXES"]

HDF5_SUFFIXES = (".h5", ".hdf5", ".hdf")
_GLOB_CHARS = "*?["
ENTRY_POINTS = "sigmadelta.sources"


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


def default_opener():
    """The installed source opener: the entry point ``default`` of ``sigmadelta.sources``.

    Raises
    ------
    LookupError
        No opener is installed (a broken installation): pass ``opener=`` instead.
    """
    from importlib.metadata import entry_points

    for ep in entry_points(group=ENTRY_POINTS):
        if ep.name == "default":
            return ep.load()
    raise LookupError(f"no source opener is installed (entry point 'default' of {ENTRY_POINTS!r}; "
                      f"reinstall sigmadelta), or pass opener=")
