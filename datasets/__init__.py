"""Sources of temporal streams (installed as ``sigmadelta.datasets``).

Every source is a :class:`FrameSource`: a re-iterable stream of ``float32``
frames of fixed, channels-first shape.  Use :func:`open_source` with an
embedded name (:func:`list_embedded`) or a path, or :func:`as_source` to wrap
arrays and files.

Examples
--------
>>> from sigmadelta.datasets import open_source
>>> src = open_source("carphone", size=(72, 88), limit=30)  # doctest: +SKIP
>>> src.frame_shape, len(src)  # doctest: +SKIP
((1, 72, 88), 30)
"""

from .annotations import FaceBoxes, face_boxes, in_box, list_face_boxes
from .arrays import ArraySource, HDF5Source, NpySource, write_hdf5
from .base import (
    FrameSource,
    MissingDependencyError,
    SourceEndedEarlyWarning,
    SourceError,
    frame_range,
)
from .digits import (
    MNIST_PER_CLASS,
    MNIST_TRAIN_PER_CLASS,
    DigitSet,
    TemporalDigits,
    load_digits,
    load_mnist,
    mnist_arrays,
    read_idx,
    temporal_order,
)
from .embedded import (
    EMBEDDED_VIDEOS,
    as_source,
    embedded_video_path,
    list_embedded,
    open_embedded,
    open_source,
)
from .moving import MovingDigits, MovingMNISTNpy
from .video import VIDEO_EXTENSIONS, VideoSource

__all__ = [
    "EMBEDDED_VIDEOS",
    "MNIST_PER_CLASS",
    "MNIST_TRAIN_PER_CLASS",
    "VIDEO_EXTENSIONS",
    "ArraySource",
    "DigitSet",
    "FaceBoxes",
    "FrameSource",
    "HDF5Source",
    "MissingDependencyError",
    "MovingDigits",
    "MovingMNISTNpy",
    "NpySource",
    "SourceEndedEarlyWarning",
    "SourceError",
    "TemporalDigits",
    "VideoSource",
    "as_source",
    "embedded_video_path",
    "face_boxes",
    "frame_range",
    "in_box",
    "list_embedded",
    "list_face_boxes",
    "load_digits",
    "load_mnist",
    "mnist_arrays",
    "open_embedded",
    "open_source",
    "read_idx",
    "temporal_order",
    "write_hdf5",
]
