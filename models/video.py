"""Small fully convolutional face detector for per-frame video tasks.

The network is a sliding-window face / non-face classifier in the spirit of
Vaillant, Monrocq & Le Cun, "Original approach for the localisation of objects in
images" (IEE Proc. Vision, Image and Signal Processing, 1994) and of the
fully convolutional detector of Sermanet et al., "OverFeat" (ICLR 2014): a CNN
trained on fixed-size 25x25 patches (scikit-image's ``lfw_subset`` faces against
non-face patches) whose last layer is a convolution, so that applied to a whole
frame it yields a map of face logits, one per 4x4-pixel cell (at the 25x25 scale).

The first layer is a stride-2 convolution with few channels and every hidden layer is
a ReLU, so that on slowly changing video most units stay constant from frame to frame
(cheap for a sigma-delta / event-driven simulation).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
from torch import nn

__all__ = [
    "FACE_PATCH",
    "face_detector",
    "face_decision",
    "cell_to_pixel",
    "receptive_field",
    "cell_centre",
    "face_hits",
]

#: Side of the square training patches (pixels at the detector's own scale).
FACE_PATCH = 25
#: Receptive field (pixels, at the detector's own scale) of one output cell.
_RF = 23
#: Output cell stride (pixels, at the detector's own scale).
_STRIDE = 4


def face_detector(pool: int = 2, channels: Sequence[int] = (8, 24, 48)) -> nn.Sequential:
    """Build the fully convolutional face detector.

    Architecture (no padding anywhere)::

        AvgPool2d(pool)           # downscale the frame (Identity when pool == 1)
        Conv2d(1 -> c1, 3x3, stride 2)  ReLU
        Conv2d(c1 -> c2, 3x3, stride 2) ReLU
        Conv2d(c2 -> c3, 3x3)           ReLU
        Conv2d(c3 -> 1, 3x3)            # face logit map

    Default widths (8, 24, 48): about 3.8 M multiply-accumulates per 144x176 frame
    with ``pool=2``. A 25x25 patch (after pooling) maps to a 1x1 logit; each output cell sees a 23x23
    window, and cells are 4 pixels apart (``4 * pool`` pixels of the input frame).
    With ``pool=2`` a QCIF 144x176 frame is analysed at 72x88, where the face of a
    head-and-shoulders video (~50 px) matches the ~25 px training faces; the output
    map is 13x17. The layer indices do not depend on ``pool``, so one state dict
    serves every ``pool``. The pooling is a fixed average (no weights).

    Parameters
    ----------
    pool : int, optional
        Average-pooling factor applied to the input frame first (1 disables it).
    channels : sequence of 3 int, optional
        Widths of the three hidden convolutions.

    Returns
    -------
    torch.nn.Sequential
        Input ``(N, 1, H, W)`` grayscale in [0, 1]; output ``(N, 1, H', W')`` logits
        (positive means "face"; no sigmoid inside the model).
    """
    c1, c2, c3 = (int(c) for c in channels)
    first: nn.Module = nn.AvgPool2d(pool) if pool > 1 else nn.Identity()
    return nn.Sequential(
        first,
        nn.Conv2d(1, c1, 3, stride=2),
        nn.ReLU(),
        nn.Conv2d(c1, c2, 3, stride=2),
        nn.ReLU(),
        nn.Conv2d(c2, c3, 3),
        nn.ReLU(),
        nn.Conv2d(c3, 1, 3),
    )


def face_decision(logit_map: torch.Tensor | np.ndarray) -> tuple[int, int, bool]:
    """Per-frame decision from a face-logit map.

    Parameters
    ----------
    logit_map : torch.Tensor or numpy.ndarray
        Logits of one frame, shape ``(H, W)``, ``(1, H, W)`` or ``(1, 1, H, W)``.

    Returns
    -------
    row, col : int
        Cell of the maximum logit (row-major first maximum on ties).
    present : bool
        Whether that maximum logit is above 0 (face probability above 1/2).
    """
    if isinstance(logit_map, torch.Tensor):
        arr = logit_map.detach().cpu().numpy()
    else:
        arr = np.asarray(logit_map)
    while arr.ndim > 2 and arr.shape[0] == 1:
        arr = arr[0]
    if arr.ndim != 2:
        raise ValueError(f"expected the logit map of one frame, got shape {arr.shape}")
    row, col = np.unravel_index(int(np.argmax(arr)), arr.shape)
    return int(row), int(col), bool(arr[row, col] > 0)


def cell_to_pixel(row: int, col: int, pool: int = 2) -> tuple[float, float, float]:
    """Map an output cell to its window in input-frame pixel coordinates.

    Parameters
    ----------
    row, col : int
        Output cell (e.g. from :func:`face_decision`).
    pool : int, optional
        The ``pool`` the detector was built with.

    Returns
    -------
    y, x : float
        Centre of the cell's receptive field (pixel coordinates of the input frame).
    size : float
        Side of the receptive field in input-frame pixels.
    """
    offset = pool * (_RF - 1) / 2 + (pool - 1) / 2
    step = pool * _STRIDE
    return row * step + offset, col * step + offset, float(pool * _RF)


def _pair(v) -> tuple[int, int]:
    return (int(v), int(v)) if np.ndim(v) == 0 else (int(v[0]), int(v[1]))


def receptive_field(model: nn.Module) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Geometry of the output cells of a chain of convolutions and poolings.

    Walks the modules of ``model`` in order (``Conv2d``, ``AvgPool2d``, ``MaxPool2d`` move the
    geometry; pointwise modules such as ReLU and Identity do not). Per axis, with kernel ``k``,
    stride ``s``, padding ``p`` and dilation ``d`` of each such layer, starting from
    ``start = 0, size = 1, jump = 1``::

        start <- start + ((k - 1) d / 2 - p) jump
        size  <- size + (k - 1) d jump
        jump  <- jump s

    so output cell ``(r, c)`` is centred on input pixel ``start + (r, c) * jump`` (pixel-index
    coordinates: pixel ``i`` has its centre at ``i``) and sees ``size`` pixels per axis.

    Parameters
    ----------
    model : torch.nn.Module
        A (nested) ``nn.Sequential`` such as :func:`face_detector`.

    Returns
    -------
    start, jump, size : numpy.ndarray
        Each of shape ``(2,)`` (rows, columns), in input-frame pixels.
    """
    start, jump, size = np.zeros(2), np.ones(2), np.ones(2)
    for mod in model.modules():
        if isinstance(mod, nn.Conv2d):
            k, s, p, d = (_pair(v) for v in (mod.kernel_size, mod.stride, mod.padding,
                                               mod.dilation))
        elif isinstance(mod, nn.AvgPool2d | nn.MaxPool2d):
            stride = mod.stride if mod.stride is not None else mod.kernel_size
            dil = getattr(mod, "dilation", 1)
            k, s, p, d = (_pair(v) for v in (mod.kernel_size, stride, mod.padding, dil))
        else:
            continue
        k, s, p, d = (np.asarray(v, float) for v in (k, s, p, d))
        start = start + ((k - 1) * d / 2 - p) * jump
        size = size + (k - 1) * d * jump
        jump = jump * s
    return start, jump, size


def cell_centre(row: int, col: int, model: nn.Module) -> tuple[float, float]:
    """Input-pixel centre ``(y, x)`` of output cell ``(row, col)`` (see :func:`receptive_field`)."""
    start, jump, _ = receptive_field(model)
    return float(start[0] + row * jump[0]), float(start[1] + col * jump[1])


def face_hits(logit_maps, boxes, model: nn.Module) -> np.ndarray:
    """Per frame: does the centre of the decision cell (the map's maximum) lie in the box?

    Parameters
    ----------
    logit_maps : array-like
        ``T`` logit maps of ``model`` (``(T, H, W)``, ``(T, 1, H, W)``).
    boxes : sequence
        ``T`` boxes ``[x0, y0, x1, y1]`` (columns ``x0 .. x1 - 1``, rows ``y0 .. y1 - 1``) or
        None, e.g. :func:`sigmadelta.datasets.face_boxes`.
    model : torch.nn.Module
        The detector that made the maps (its geometry maps cells to pixels).

    Returns
    -------
    numpy.ndarray
        ``(T,)`` float: 1.0 hit, 0.0 miss, NaN where the frame has no box (``np.nanmean``
        gives the hit rate on frames with a box).
    """
    maps = np.asarray(logit_maps.detach().cpu().numpy() if isinstance(logit_maps, torch.Tensor)
                      else logit_maps)
    maps = maps.reshape(len(maps), *maps.shape[-2:])
    if len(maps) != len(boxes):
        raise ValueError(f"{len(maps)} logit maps but {len(boxes)} boxes")
    from sigmadelta.datasets.annotations import in_box

    start, jump, _ = receptive_field(model)
    out = np.full(len(maps), np.nan)
    for t, (m, box) in enumerate(zip(maps, boxes, strict=True)):
        if box is None:
            continue
        r, c = np.unravel_index(int(np.argmax(m)), m.shape)
        y, x = start + np.array([r, c]) * jump
        out[t] = float(in_box(y, x, box))
    return out
