"""Mappers from PyTorch modules and functions to :mod:`sigmadelta.graph` nodes.

Each mapper has the signature ``mapper(ctx, fx_node, target) -> int`` and
returns the index of the graph node that now holds the fx node's value: a new
node, or the index of its input for value-preserving layers (Identity, Dropout,
BatchNorm folded into the preceding weight layer). ``MODULE_MAPPERS`` is keyed by
the exact ``torch.nn`` type, ``FUNCTION_MAPPERS`` by function and
``METHOD_MAPPERS`` by tensor method name. Anything else is an error naming the
module path and type.
"""

from __future__ import annotations

import operator

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

from .. import graph as g

__all__ = ["MODULE_MAPPERS", "FUNCTION_MAPPERS", "METHOD_MAPPERS", "UnsupportedLayerError"]


class UnsupportedLayerError(TypeError):
    """A module, function or argument the converter cannot map exactly."""


def _np(t: torch.Tensor | None, n: int = 0) -> np.ndarray:
    if t is None:
        return np.zeros(n, np.float32)
    return t.detach().cpu().numpy().astype(np.float32).copy()


def _pair(v) -> tuple[int, int]:
    return (int(v), int(v)) if isinstance(v, int) else (int(v[0]), int(v[1]))


# ---------------------------------------------------------------- weight layers
def _linear(ctx, node, m: nn.Linear) -> int:
    in_shape = ctx.nodes[ctx.env[node.args[0].name]].shape
    if len(in_shape) != 1:
        raise UnsupportedLayerError(
            f"{ctx.path(node)} (Linear): its input has shape {in_shape}, and PyTorch applies Linear "
            f"to the last axis only; sigmadelta's fully connected layers take a flat input. "
            f"Flatten first: torch.flatten(x, 1) or nn.Flatten() before it")
    return ctx.add(g.Dense, node, weight=_np(m.weight), bias=_np(m.bias, m.out_features))


def _conv_padding(m: nn.Conv2d, path: str) -> tuple[int, int]:
    if m.padding_mode != "zeros":
        raise UnsupportedLayerError(f"{path} (Conv2d): padding_mode={m.padding_mode!r}; only 'zeros'")
    if m.padding == "valid":
        return (0, 0)
    if m.padding == "same":
        tot = [d * (k - 1) for d, k in zip(m.dilation, m.kernel_size, strict=True)]
        if any(t % 2 for t in tot):
            raise UnsupportedLayerError(f"{path} (Conv2d): asymmetric 'same' padding")
        return (tot[0] // 2, tot[1] // 2)
    return _pair(m.padding)


def _conv2d(ctx, node, m: nn.Conv2d) -> int:
    return ctx.add(g.Conv, node, weight=_np(m.weight), bias=_np(m.bias, m.out_channels),
                   stride=_pair(m.stride), padding=_conv_padding(m, node.target),
                   dilation=_pair(m.dilation), groups=int(m.groups))


def _batchnorm(ctx, node, m) -> int:
    """Fold ``y = gamma*(z - mean)/sqrt(var + eps) + beta`` into the producer's W and b."""
    src = node.args[0]
    p = ctx.env[src.name]
    prod = ctx.nodes[p]
    if not isinstance(prod, (g.Dense, g.Conv)) or len(src.users) != 1:
        raise UnsupportedLayerError(
            f"{node.target} ({type(m).__name__}): BatchNorm is folded into the weight layer "
            f"right before it, and {src.name!r} is not a weight layer used only by it"
        )
    if m.running_mean is None:
        raise UnsupportedLayerError(f"{node.target}: BatchNorm without running statistics")
    params = [m.running_mean, m.running_var] + ([m.weight, m.bias] if m.affine else [])
    if not all(bool(torch.isfinite(t).all()) for t in params):
        raise ValueError(f"layer '{node.target}' ({type(m).__name__}): running statistics or affine "
                         f"parameters contain NaN or Inf")
    if bool((m.running_var + m.eps <= 0).any()):
        raise ValueError(f"layer '{node.target}' ({type(m).__name__}): running_var + eps must be > 0, "
                         f"min running_var is {float(m.running_var.min())}")
    scale = (m.weight if m.affine else torch.ones_like(m.running_var)) / torch.sqrt(
        m.running_var + m.eps)
    shift = (m.bias if m.affine else torch.zeros_like(m.running_mean)) - m.running_mean * scale
    s, t = _np(scale).astype(np.float64), _np(shift).astype(np.float64)
    shape = (-1,) + (1,) * (prod.weight.ndim - 1)
    prod.weight = (prod.weight * s.reshape(shape)).astype(np.float32)
    prod.bias = (prod.bias * s + t).astype(np.float32)
    return p


# ---------------------------------------------------------------- elementwise
def _alias(ctx, node, m=None) -> int:
    return ctx.env[node.args[0].name]


def _act(fn: str, **kw):
    def mapper(ctx, node, m=None) -> int:
        return ctx.add(g.Activation, node, fn=fn, **kw)
    return mapper


def _leaky(ctx, node, m) -> int:
    slope = m.negative_slope if m is not None else node.kwargs.get(
        "negative_slope", node.args[1] if len(node.args) > 1 else 0.01)
    return ctx.add(g.Activation, node, fn="leaky", alpha=float(slope))


def _hardtanh(ctx, node, m) -> int:
    if m is not None:
        lo, hi = m.min_val, m.max_val
    else:
        lo = node.kwargs.get("min_val", node.args[1] if len(node.args) > 1 else -1.0)
        hi = node.kwargs.get("max_val", node.args[2] if len(node.args) > 2 else 1.0)
    return ctx.add(g.Activation, node, fn="clip", lo=float(lo), hi=float(hi))


# ---------------------------------------------------------------- shape ops
def _flatten(ctx, node, m=None) -> int:
    if m is not None:
        start, end = m.start_dim, m.end_dim
    else:
        start = node.kwargs.get("start_dim", node.args[1] if len(node.args) > 1 else 0)
        end = node.kwargs.get("end_dim", node.args[2] if len(node.args) > 2 else -1)
    if start != 1 or end != -1:
        raise UnsupportedLayerError(f"{ctx.path(node)}: flatten must keep the batch axis "
                                    f"(start_dim=1, end_dim=-1); got {start}, {end}")
    src = ctx.env[node.args[0].name]
    if len(ctx.nodes[src].shape) == 1:
        return src
    return ctx.add(g.Flatten, node)


def _pool(op: str):
    def mapper(ctx, node, m) -> int:
        if m.ceil_mode:
            raise UnsupportedLayerError(f"{node.target}: ceil_mode=True is not supported")
        if op == "max" and (_pair(m.dilation) != (1, 1) or m.return_indices):
            raise UnsupportedLayerError(f"{node.target}: MaxPool2d with dilation/return_indices")
        if op == "avg" and m.divisor_override is not None:
            raise UnsupportedLayerError(f"{node.target}: AvgPool2d divisor_override")
        pad = _pair(m.padding)
        if op == "avg" and not m.count_include_pad and pad != (0, 0):
            raise UnsupportedLayerError(f"{node.target}: count_include_pad=False with padding")
        k = _pair(m.kernel_size)
        stride = _pair(m.stride if m.stride else m.kernel_size)
        return ctx.add(g.Pool, node, op=op, kernel=k, stride=stride, padding=pad)
    return mapper


def _adaptive_avg(ctx, node, m) -> int:
    size = m.output_size if m is not None else node.args[1]
    _, h, w = ctx.nodes[ctx.env[node.args[0].name]].shape
    oh, ow = (1, 1) if size is None else (size, size) if isinstance(size, int) else tuple(size)
    oh, ow = h if oh is None else int(oh), w if ow is None else int(ow)  # None: keep (as torch)
    if h % oh or w % ow:
        raise UnsupportedLayerError(
            f"{ctx.path(node)}: AdaptiveAvgPool2d to {oh}x{ow} from {h}x{w} (not a divisor)")
    return ctx.add(g.Pool, node, op="avg", kernel=(h // oh, w // ow), stride=(h // oh, w // ow))


def _add(ctx, node, m=None) -> int:
    args = [a for a in node.args if isinstance(a, torch.fx.Node)]
    if len(args) != 2 or len(node.args) != 2 or node.kwargs:
        raise UnsupportedLayerError(f"{ctx.path(node)}: only x + y of two tensors is supported")
    a, b = (ctx.env[x.name] for x in args)
    if ctx.nodes[a].shape != ctx.nodes[b].shape:
        raise UnsupportedLayerError(f"{ctx.path(node)}: addition with broadcasting "
                                    f"{ctx.nodes[a].shape} + {ctx.nodes[b].shape}")
    return ctx.add(g.Add, node, inputs=(a, b))


def _cat(ctx, node, m=None) -> int:
    tensors = node.args[0]
    dim = node.kwargs.get("dim", node.args[1] if len(node.args) > 1 else 0)
    idx = tuple(ctx.env[t.name] for t in tensors)
    nd = len(ctx.nodes[idx[0]].shape)
    if dim not in (1, 1 - (nd + 1)):
        raise UnsupportedLayerError(f"{ctx.path(node)}: torch.cat only along channels (dim=1)")
    return ctx.add(g.Concat, node, inputs=idx)


MODULE_MAPPERS = {
    nn.Linear: _linear,
    nn.Conv2d: _conv2d,
    nn.BatchNorm1d: _batchnorm,
    nn.BatchNorm2d: _batchnorm,
    nn.ReLU: _act("relu"),
    nn.LeakyReLU: _leaky,
    nn.ReLU6: _act("clip", lo=0.0, hi=6.0),
    nn.Hardtanh: _hardtanh,
    nn.Identity: _alias,
    nn.Dropout: _alias,
    nn.Dropout1d: _alias,
    nn.Dropout2d: _alias,
    nn.AlphaDropout: _alias,
    nn.Flatten: _flatten,
    nn.AvgPool2d: _pool("avg"),
    nn.MaxPool2d: _pool("max"),
    nn.AdaptiveAvgPool2d: _adaptive_avg,
}

FUNCTION_MAPPERS = {
    F.relu: _act("relu"),
    torch.relu: _act("relu"),
    F.relu6: _act("clip", lo=0.0, hi=6.0),
    F.leaky_relu: _leaky,
    F.hardtanh: _hardtanh,
    F.dropout: _alias,
    F.adaptive_avg_pool2d: _adaptive_avg,
    torch.flatten: _flatten,
    operator.add: _add,
    torch.add: _add,
    torch.cat: _cat,
    torch.concat: _cat,
}

METHOD_MAPPERS = {
    "relu": _act("relu"),
    "flatten": _flatten,
    "add": _add,
}
