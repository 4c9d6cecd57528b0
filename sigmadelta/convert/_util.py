"""Small helpers shared by the mapper modules: the error type, array and argument access."""

from __future__ import annotations

import numpy as np
import torch

__all__ = ["UnsupportedLayerError", "to_np", "pair", "arg", "torch_shape"]


class UnsupportedLayerError(TypeError):
    """A module, function or argument the converter cannot map exactly."""


def to_np(t: torch.Tensor | None, n: int = 0) -> np.ndarray:
    """A float32 copy of a parameter tensor (zeros of length ``n`` for a missing bias)."""
    if t is None:
        return np.zeros(n, np.float32)
    return t.detach().cpu().numpy().astype(np.float32).copy()


def pair(v) -> tuple[int, int]:
    """``k`` or ``(kh, kw)`` as a pair of ints."""
    if isinstance(v, (list, tuple)) and len(v) == 1:
        v = v[0]
    return (int(v), int(v)) if isinstance(v, int) else (int(v[0]), int(v[1]))


def arg(node, i: int, name: str, default=None):
    """Argument ``name`` of a call: by keyword, else positional ``i``, else ``default``."""
    if name in node.kwargs:
        return node.kwargs[name]
    return node.args[i] if len(node.args) > i else default


def torch_shape(fx_node) -> tuple[int, ...]:
    """The shape, without the batch axis, that PyTorch gives an fx node's value."""
    return tuple(int(s) for s in fx_node.meta["tensor_meta"].shape[1:])
