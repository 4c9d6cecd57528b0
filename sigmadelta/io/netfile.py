"""Versioned HDF5 file of a converted network.

Layout (format version 1)::

    /                      attrs: format="sigmadelta-network", format_version=1,
                                  sigmadelta_version, output (index of the output node)
    /layers/0000_<name>    attrs: type (node kind), name, inputs, shape, and every
                                  scalar/tuple parameter (quantizer, scale, stride, ...)
                           datasets: every array parameter (weight, bias)

A file written by a newer format version, or any HDF5 file that is not a
sigmadelta network, is refused with :class:`FormatError`.
"""

from __future__ import annotations

import os

import h5py
import numpy as np

from .._version import __version__
from ..graph import NODE_TYPES, Network, NetworkError

__all__ = ["save", "load", "FORMAT_VERSION", "FormatError", "open_checked", "open_hdf5"]

FORMAT = "sigmadelta-network"
FORMAT_VERSION = 1


class FormatError(ValueError):
    """The file is not a sigmadelta HDF5 file of a version this release can read."""


def save(net: Network, path: str | os.PathLike) -> None:
    """Write ``net`` to ``path`` (HDF5). The file is written to a temporary name first
    and moved into place, so an existing file is never left half-overwritten."""
    path = os.fspath(path)
    if os.path.isdir(path):
        raise IsADirectoryError(f"cannot save the network to {path}: it is a directory")
    tmp = path + ".tmp"
    try:
        _write(net, tmp)
        os.replace(tmp, path)
    except BaseException as e:
        if os.path.isfile(tmp):
            os.remove(tmp)
        if isinstance(e, OSError):
            raise OSError(f"cannot save the network to {path}: {e}") from None
        raise


def _write(net: Network, tmp: str) -> None:
    with h5py.File(tmp, "w") as f:
        f.attrs.update(format=FORMAT, format_version=FORMAT_VERSION,
                       sigmadelta_version=__version__, output=net.output)
        layers = f.create_group("layers")
        for i, node in enumerate(net.nodes):
            grp = layers.create_group(f"{i:04d}_{node.name.replace('/', '_')}")
            grp.attrs.update(type=node.kind, name=node.name, inputs=np.array(node.inputs, np.int64),
                             shape=np.array(node.shape, np.int64))
            for key, val in node.params().items():
                if isinstance(val, np.ndarray):
                    grp.create_dataset(key, data=val)
                else:
                    grp.attrs[key] = np.array(val) if isinstance(val, tuple) else val


def _node_from_group(grp: h5py.Group):
    kind = str(grp.attrs["type"])
    if kind not in NODE_TYPES:
        raise FormatError(f"layer {grp.name} has unknown type {kind!r}")
    cls = NODE_TYPES[kind]
    kw = {}
    defaults = cls(name="", inputs=(), shape=()).params()
    for key, default in defaults.items():
        if isinstance(default, np.ndarray) or key in grp:  # arrays (also per-unit scales)
            kw[key] = np.asarray(grp[key][()])
        elif key in grp.attrs:
            val = grp.attrs[key]
            if isinstance(default, tuple):
                val = tuple(int(v) for v in val)
            elif isinstance(default, str):
                val = str(val)
            else:
                val = type(default)(val)
            kw[key] = val
    return cls(name=str(grp.attrs["name"]), inputs=tuple(int(v) for v in grp.attrs["inputs"]),
               shape=tuple(int(v) for v in grp.attrs["shape"]), **kw)


def open_hdf5(path: str | os.PathLike, what: str, error: type[Exception] = FormatError) -> h5py.File:
    """Open an existing HDF5 file for reading.

    Raises FileNotFoundError (no such file) or ``error`` (not HDF5, or truncated).
    """
    path = os.fspath(path)
    if not os.path.exists(path):
        raise FileNotFoundError(f"no such {what} file: {path}")
    try:
        return h5py.File(path, "r")
    except OSError as e:
        raise error(f"{path} is not an HDF5 file or is truncated ({e})") from None


def open_checked(path: str | os.PathLike, fmt: str, what: str) -> h5py.File:
    """Open an HDF5 file for reading whose root ``format`` attribute is ``fmt``.

    Raises FileNotFoundError (no such file) or FormatError (not HDF5, or not ``what``).
    """
    f = open_hdf5(path, what)
    if f.attrs.get("format") != fmt:
        f.close()
        raise FormatError(f"{os.fspath(path)} is not a sigmadelta {what} file (no format={fmt!r})")
    return f


def load(path: str | os.PathLike) -> Network:
    """Read a network written by :func:`save`.

    Raises
    ------
    FileNotFoundError
        No such file.
    FormatError
        Not HDF5, not a sigmadelta network, a newer format version, or a network that
        does not pass :meth:`~sigmadelta.graph.Network.validate` (shapes, NaN weights,
        scales, quantizer, node indices), naming the layer.
    """
    path = os.fspath(path)
    with open_checked(path, FORMAT, "network") as f:
        if "format_version" not in f.attrs or "output" not in f.attrs or "layers" not in f:
            raise FormatError(f"{path} is corrupt: it lacks format_version, output or /layers")
        try:
            version = int(f.attrs["format_version"])
        except (TypeError, ValueError):
            raise FormatError(
                f"{path}: format_version {f.attrs['format_version']!r} is not a number") from None
        if version > FORMAT_VERSION:
            raise FormatError(
                f"{path} has format version {version}, newer than this sigmadelta reads "
                f"({FORMAT_VERSION}); upgrade sigmadelta"
            )
        try:
            nodes = [_node_from_group(f["layers"][k]) for k in sorted(f["layers"])]
        except KeyError as e:
            raise FormatError(f"{path} is corrupt: missing {e}") from None
        except (TypeError, ValueError) as e:
            raise FormatError(f"{path} is corrupt: {e}") from None
        try:
            return Network(nodes=nodes, output=int(f.attrs["output"]))
        except (NetworkError, TypeError, ValueError) as e:
            raise FormatError(f"{path} is not a valid network: {e}") from None
