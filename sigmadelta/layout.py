"""The engine's memory layout: a node's state arrays and the channels-last conversions.

A node of shape ``(C, H, W)`` keeps its value channels-last, flattened from
``[H, W, C]``, so that a conv event updates a contiguous row of output channels;
a vector node ``(N,)`` is stored as is.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np

from . import graph as g
from . import kernels as K

__all__ = ["NodeState", "grid", "pair", "to_internal", "to_torch_layout", "fan_out"]


class NodeState(NamedTuple):
    """A node's output: ``value`` [N] and the neurons touched this frame.

    A pixel conv layer (and the activations sharing its list) also lists its touched
    *pixels*: ``rows[:row_count[0]]``, each standing for the ``row_len`` channels
    ``p*row_len + j``. Where ``row_len > 0`` the pixel list is always valid and the
    neuron list is filled only if some consumer needs it (see :func:`build_ops`).
    """

    value: np.ndarray  # float [N], channels-last
    touched: np.ndarray  # int64 [N]: touched[:count[0]] lists this frame's neurons
    count: np.ndarray  # int64 [1]
    stamp: np.ndarray  # int64 [N]: frame number at which a neuron was last listed
    rows: np.ndarray | None = None  # int64 [H*W + 1]: touched pixels (row_len > 0 only; +1 spare)
    row_count: np.ndarray | None = None  # int64 [1]
    row_len: int = 0  # channels per listed pixel; 0: no pixel list

def grid(shape: tuple[int, ...]) -> tuple[np.ndarray, int]:
    """``(H, W)`` as an int64 array and the channel count ``C`` of a node shape."""
    if len(shape) == 3:
        return np.array(shape[1:], dtype=np.int64), int(shape[0])
    return np.array((1, 1), dtype=np.int64), int(shape[0])


def to_internal(x: np.ndarray) -> np.ndarray:
    """PyTorch layout ``[C, H, W]`` (or ``[N]``) to the engine's flat channels-last."""
    return x.transpose(1, 2, 0).ravel() if x.ndim == 3 else x.ravel()


def to_torch_layout(value: np.ndarray, shape: tuple[int, ...]) -> np.ndarray:
    """The engine's flat channels-last value (last axis; leading axes kept) in PyTorch layout."""
    lead = value.shape[:-1]
    if len(shape) == 3:
        c, h, w = shape
        return np.moveaxis(value.reshape(*lead, h, w, c), -1, -3)
    return value.reshape(*lead, *shape)

def pair(v) -> np.ndarray:
    return np.asarray(v, dtype=np.int64).reshape(2)

def _convt_axis_fan(n_in: int, n_out: int, k: int, s: int, p: int, d: int) -> np.ndarray:
    """Per input position along one transposed-conv axis: the taps landing inside the output."""
    o = np.arange(n_in)[:, None] * s - p + d * np.arange(k)[None, :]
    return ((o >= 0) & (o < n_out)).sum(1)


def fan_out(node: g.Dense | g.Conv, in_shape: tuple[int, ...]) -> np.ndarray:
    """In-bounds fan-out of every input neuron, channels-last flat (synops per unit event)."""
    if isinstance(node, g.Dense):
        return np.full(int(np.prod(in_shape)), node.weight.shape[0], np.float64)
    if isinstance(node, g.ConvTranspose):  # input i reaches output i*s - p + t*d, tap t < k
        ty, tx = (_convt_axis_fan(in_shape[1 + a], node.shape[1 + a], node.weight.shape[2 + a],
                                  node.stride[a], node.padding[a], node.dilation[a]) for a in (0, 1))
        per_pixel = ty[:, None] * tx[None, :] * node.weight.shape[1]
        return np.repeat(per_pixel.ravel(), in_shape[0]).astype(np.float64)
    stride, padding, dilation = pair(node.stride), pair(node.padding), pair(node.dilation)
    kernel = node.weight.shape[2:]
    ty, tx = (K.axis_fan(in_shape[1 + a], node.shape[1 + a], kernel[a], stride[a], padding[a],
                         dilation[a]) for a in (0, 1))
    per_pixel = ty[:, None] * tx[None, :] * (node.weight.shape[0] // node.groups)
    return np.repeat(per_pixel.ravel(), in_shape[0]).astype(np.float64)
