"""Streams named by a string, opened at a network's input size (the opener behind
:func:`sigmadelta.simulate_many`, declared as the entry point ``default`` of the group
``sigmadelta.sources``).

* an embedded name: ``"carphone"``, ``"bikes"``, ``"bigbuckbunny"``, ``"temporal-digits"``, ...
* a video file (decoded at the network's input size, gray for one channel);
* a NumPy file ``[T, *input_shape]`` (memory-mapped);
* an HDF5 dataset ``"data.h5:/frames"`` (or ``"data.h5"`` for its dataset ``frames``).
"""

from __future__ import annotations

from sigmadelta.sources import split_hdf5

from .arrays import HDF5Source
from .embedded import open_source
from .video import VideoSource

__all__ = ["open_stream"]


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
