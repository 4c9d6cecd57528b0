"""Annotations stored with the package: independent face boxes of the embedded videos.

``annotations/<video>_faces.json`` holds one box per frame, made once by
``scripts/face_boxes.py`` with OpenCV's frontal-face cascade classifier on exactly the frames
the demo feeds the face detector (gray, ``frame_shape``), never by the project's networks.
A box ``[x0, y0, x1, y1]`` covers the pixel columns ``x0 .. x1 - 1`` and rows ``y0 .. y1 - 1``
of that frame; ``None`` marks a frame where the cascade found no face.
"""

from __future__ import annotations

import json
from importlib import resources

__all__ = ["FaceBoxes", "face_boxes", "in_box", "list_face_boxes"]

_SUFFIX = "_faces.json"


class FaceBoxes(list):
    """Per-frame boxes (a list of ``(x0, y0, x1, y1)`` or ``None``) with their provenance.

    Attributes
    ----------
    video : str
        Embedded video name.
    frame_shape : tuple of int
        ``(C, H, W)`` of the frames the boxes refer to.
    source : str
        How the boxes were made (tool, parameters, command).
    """

    def __init__(self, boxes, video: str, frame_shape, source: str) -> None:
        super().__init__(None if b is None else tuple(int(v) for v in b) for b in boxes)
        self.video, self.frame_shape, self.source = video, tuple(int(s) for s in frame_shape), source

    @property
    def found(self) -> int:
        """Number of frames with a box."""
        return sum(b is not None for b in self)


def _folder():
    return resources.files(__package__).joinpath("annotations")


def list_face_boxes() -> list[str]:
    """Videos with stored face boxes."""
    return sorted(e.name[: -len(_SUFFIX)] for e in _folder().iterdir() if e.name.endswith(_SUFFIX))


def face_boxes(video: str = "carphone") -> FaceBoxes:
    """The stored independent face boxes of an embedded video, one entry per frame.

    Parameters
    ----------
    video : str
        Embedded video name (see :func:`list_face_boxes`).

    Returns
    -------
    FaceBoxes
        A list with one ``(x0, y0, x1, y1)`` or ``None`` per frame, plus ``video``,
        ``frame_shape`` and ``source``.

    Raises
    ------
    KeyError
        If no boxes are stored for ``video``.
    """
    ref = _folder().joinpath(f"{video.lower()}{_SUFFIX}")
    if not ref.is_file():
        raise KeyError(f"no face boxes stored for {video!r}; available: {list_face_boxes()}")
    rec = json.loads(ref.read_text(encoding="utf-8"))
    for key in ("video", "frame_shape", "source", "boxes"):
        if key not in rec:
            raise ValueError(f"{ref.name}: missing field {key!r}")
    for i, b in enumerate(rec["boxes"]):
        if b is not None and (len(b) != 4 or not (b[0] < b[2] and b[1] < b[3])):
            raise ValueError(f"{ref.name}: frame {i}: box {b} is not [x0, y0, x1, y1], x0<x1, y0<y1")
    return FaceBoxes(rec["boxes"], rec["video"], rec["frame_shape"], rec["source"])


def in_box(y: float, x: float, box) -> bool:
    """Whether the point ``(y, x)`` lies inside ``box``.

    The point is in pixel-index coordinates (pixel ``(i, j)`` has its centre at ``(i, j)`` and
    covers ``[i - 1/2, i + 1/2] x [j - 1/2, j + 1/2]``), so the box ``[x0, y0, x1, y1]``
    (columns ``x0 .. x1 - 1``, rows ``y0 .. y1 - 1``) is the closed region
    ``x0 - 1/2 <= x <= x1 - 1/2``, ``y0 - 1/2 <= y <= y1 - 1/2``. ``None`` contains nothing.
    """
    if box is None:
        return False
    x0, y0, x1, y1 = box
    return bool(x0 - 0.5 <= x <= x1 - 0.5 and y0 - 0.5 <= y <= y1 - 0.5)
