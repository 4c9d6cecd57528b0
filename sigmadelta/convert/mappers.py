"""Mappers from PyTorch modules and functions to :mod:`sigmadelta.graph` nodes.

Each mapper has the signature ``mapper(ctx, fx_node, target) -> int`` and
returns the index of the graph node that now holds the fx node's value: a new
node, or the index of its input for value-preserving layers (Identity, Dropout,
BatchNorm folded into the preceding weight layer, reshapes that keep the layout).
``MODULE_MAPPERS`` is keyed by the exact ``torch.nn`` type, ``FUNCTION_MAPPERS``
by function and ``METHOD_MAPPERS`` by tensor method name; the idioms written in
``forward`` (flatten by view/reshape, functional pooling, constant arithmetic,
Conv1d, upsampling) live in :mod:`sigmadelta.convert.idioms`, channel shuffle and
chunk/split in :mod:`sigmadelta.convert.routing`. Anything else is an error
naming the module path and type, with what to write instead where ``HINTS`` knows.
"""

from __future__ import annotations

import operator

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

from .. import graph as g
from ._util import UnsupportedLayerError, arg, pair, to_np, torch_shape
from .idioms import (  # the forward idioms (flatten by view, functional pooling, ...)
    ARITH_FUNCTIONS,
    ARITH_METHODS,
    FLATTEN_HINT,
    SIZE_FUNCTIONS,
    adaptive_pool,
    affine,
    arith,
    conv1d,
    conv_padding,
    conv_transpose1d,
    make_pool,
    mean,
    pool_fn,
    reshape,
    upsample,
)
from .routing import channel_shuffle, contiguous, fold_permutation, getitem, permute, split, transpose

__all__ = ["MODULE_MAPPERS", "FUNCTION_MAPPERS", "METHOD_MAPPERS", "UnsupportedLayerError", "HINTS"]

_np, _pair = to_np, pair


# ---------------------------------------------------------------- weight layers
def _linear(ctx, node, m: nn.Linear) -> int:
    in_shape = ctx.nodes[ctx.env[node.args[0].name]].shape
    if len(in_shape) != 1:
        raise UnsupportedLayerError(
            f"{ctx.path(node)} (Linear): its input has shape {in_shape}, and PyTorch applies Linear "
            f"to the last axis only; sigmadelta's fully connected layers take a flat input. "
            f"Flatten first: torch.flatten(x, 1) or nn.Flatten() before it")
    return ctx.add(g.Dense, node, weight=_np(m.weight), bias=_np(m.bias, m.out_features))


def _conv2d(ctx, node, m: nn.Conv2d) -> int:
    src, weight = ctx.env[node.args[0].name], _np(m.weight)
    if m.groups == 1:  # after a channel shuffle: permute the weights' input channels instead
        src, weight = fold_permutation(ctx, src, weight, 1)
    return ctx.add(g.Conv, node, inputs=(src,), weight=weight, bias=_np(m.bias, m.out_channels),
                   stride=_pair(m.stride), padding=conv_padding(m, node.target, 2),
                   dilation=_pair(m.dilation), groups=int(m.groups))


def _conv_transpose2d(ctx, node, m: nn.ConvTranspose2d) -> int:
    """``ConvTranspose2d``; ``output_padding`` (or a call's ``output_size``) from the traced shape."""
    if m.padding_mode != "zeros":
        raise UnsupportedLayerError(f"{node.target} (ConvTranspose2d): padding_mode="
                                    f"{m.padding_mode!r}; only 'zeros'")
    _, h, w = ctx.nodes[ctx.env[node.args[0].name]].shape
    _, oh, ow = torch_shape(node)
    (kh, kw), s, p, d = m.kernel_size, _pair(m.stride), _pair(m.padding), _pair(m.dilation)
    out_pad = tuple(o - ((n - 1) * s[a] - 2 * p[a] + d[a] * (k - 1) + 1)
                    for a, (o, n, k) in enumerate(((oh, h, kh), (ow, w, kw))))
    src, weight = ctx.env[node.args[0].name], _np(m.weight)
    if m.groups == 1:  # after a channel shuffle: permute the weights' input channels instead
        src, weight = fold_permutation(ctx, src, weight, 0)
    return ctx.add(g.ConvTranspose, node, inputs=(src,), weight=weight, bias=_np(m.bias, m.out_channels),
                   stride=s, padding=p, output_padding=out_pad, dilation=d, groups=int(m.groups))


_conv_transpose2d.accepts_sizes = True  # up(x, output_size=y.shape[-2:]): the traced shape


def _batchnorm(ctx, node, m) -> int:
    """``y = gamma*(z - mean)/sqrt(var + eps) + beta``: folded into the weight layer right
    before when it alone reads it, else an affine weight layer (see ``idioms.affine``)."""
    if m.running_mean is None:
        raise UnsupportedLayerError(f"{node.target}: BatchNorm without running statistics "
                                    "(track_running_stats=False)")
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
    return affine(ctx, node, ctx.env[node.args[0].name], s, t)


# ---------------------------------------------------------------- elementwise
def _alias(ctx, node, m=None) -> int:
    return ctx.env[node.args[0].name]


def _act(fn: str, **kw):
    def mapper(ctx, node, m=None) -> int:
        return ctx.add(g.Activation, node, fn=fn, **kw)
    return mapper


def _leaky(ctx, node, m) -> int:
    slope = m.negative_slope if m is not None else arg(node, 1, "negative_slope", 0.01)
    return ctx.add(g.Activation, node, fn="leaky", alpha=float(slope))


def _hardtanh(ctx, node, m) -> int:
    if m is not None:
        lo, hi = m.min_val, m.max_val
    else:
        lo, hi = arg(node, 1, "min_val", -1.0), arg(node, 2, "max_val", 1.0)
    return ctx.add(g.Activation, node, fn="clip", lo=float(lo), hi=float(hi))


def _gelu(ctx, node, m) -> int:
    approx = m.approximate if m is not None else arg(node, 1, "approximate", "none")
    return ctx.add(g.Activation, node, fn="gelu_tanh" if approx == "tanh" else "gelu")


def _elu(ctx, node, m) -> int:
    alpha = m.alpha if m is not None else arg(node, 1, "alpha", 1.0)
    return ctx.add(g.Activation, node, fn="elu", alpha=float(alpha))


def _softplus(ctx, node, m) -> int:
    if m is not None:
        beta, thr = m.beta, m.threshold
    else:
        beta, thr = arg(node, 1, "beta", 1.0), arg(node, 2, "threshold", 20.0)
    return ctx.add(g.Activation, node, fn="softplus", alpha=float(beta), hi=float(thr))


_POINTWISE = {  # activation name -> module type, functions and tensor method names
    "sigmoid": (nn.Sigmoid, (torch.sigmoid, F.sigmoid), ("sigmoid",)),
    "tanh": (nn.Tanh, (torch.tanh, F.tanh), ("tanh",)),
    "silu": (nn.SiLU, (F.silu,), ()),
    "hardswish": (nn.Hardswish, (F.hardswish,), ()),
    "hardsigmoid": (nn.Hardsigmoid, (F.hardsigmoid,), ()),
    "mish": (nn.Mish, (F.mish,), ()),
}


# ---------------------------------------------------------------- shape ops
def _flatten(ctx, node, m=None) -> int:
    if m is not None:
        start, end = m.start_dim, m.end_dim
    else:
        start, end = arg(node, 1, "start_dim", 0), arg(node, 2, "end_dim", -1)
    if start != 1 or end != -1:
        return reshape(ctx, node)  # flatten(x) with batch 1, flatten(2), ...: by its shapes
    src = ctx.env[node.args[0].name]
    if len(ctx.nodes[src].shape) == 1:
        return src
    return ctx.add(g.Flatten, node)


def _pool(op: str):
    def mapper(ctx, node, m) -> int:
        extra = (dict(dilation=m.dilation, return_indices=m.return_indices) if op == "max" else
                 dict(count_include_pad=m.count_include_pad, divisor_override=m.divisor_override))
        return make_pool(ctx, node, op, m.kernel_size, m.stride, m.padding,
                           ceil_mode=m.ceil_mode, **extra)
    return mapper


def _add(ctx, node, m=None) -> int:
    lhs, rhs = arg(node, 0, "input"), arg(node, 1, "other")
    if not (isinstance(lhs, torch.fx.Node) and isinstance(rhs, torch.fx.Node)):
        return arith("add")(ctx, node)  # x + 3: constant arithmetic
    if arg(node, 2, "alpha", 1) != 1:
        raise UnsupportedLayerError(f"{ctx.path(node)}: torch.add with alpha; write x + y")
    a, b = ctx.env[lhs.name], ctx.env[rhs.name]
    if ctx.nodes[a].shape != ctx.nodes[b].shape:
        raise UnsupportedLayerError(f"{ctx.path(node)}: addition with broadcasting "
                                    f"{ctx.nodes[a].shape} + {ctx.nodes[b].shape}")
    return ctx.add(g.Add, node, inputs=(a, b))


def _cat(ctx, node, m=None) -> int:
    tensors = arg(node, 0, "tensors")
    dim = arg(node, 1, "dim", 0)
    idx = tuple(ctx.env[t.name] for t in tensors)
    nd = len(torch_shape(tensors[0])) + 1
    if dim % nd != 1:
        raise UnsupportedLayerError(f"{ctx.path(node)}: torch.cat only along channels (dim=1)")
    return ctx.add(g.Concat, node, inputs=idx)


_RESHAPE = reshape
MODULE_MAPPERS = {
    nn.Linear: _linear,
    nn.Conv2d: _conv2d,
    nn.ChannelShuffle: channel_shuffle,
    nn.ConvTranspose2d: _conv_transpose2d,
    nn.Conv1d: conv1d,
    nn.ConvTranspose1d: conv_transpose1d,
    nn.BatchNorm1d: _batchnorm,
    nn.BatchNorm2d: _batchnorm,
    nn.ReLU: _act("relu"),
    nn.LeakyReLU: _leaky,
    nn.ReLU6: _act("clip", lo=0.0, hi=6.0),
    nn.Hardtanh: _hardtanh,
    nn.GELU: _gelu,
    nn.ELU: _elu,
    nn.Softplus: _softplus,
    **{mod: _act(fn) for fn, (mod, _, _) in _POINTWISE.items()},
    nn.Upsample: upsample,
    nn.UpsamplingNearest2d: upsample,
    nn.UpsamplingBilinear2d: upsample,
    nn.Identity: _alias,
    nn.Dropout: _alias,
    nn.Dropout1d: _alias,
    nn.Dropout2d: _alias,
    nn.AlphaDropout: _alias,
    nn.Flatten: _flatten,
    nn.AvgPool1d: _pool("avg"),
    nn.AvgPool2d: _pool("avg"),
    nn.MaxPool1d: _pool("max"),
    nn.MaxPool2d: _pool("max"),
    nn.AdaptiveAvgPool1d: adaptive_pool("avg"),
    nn.AdaptiveAvgPool2d: adaptive_pool("avg"),
    nn.AdaptiveMaxPool1d: adaptive_pool("max"),
    nn.AdaptiveMaxPool2d: adaptive_pool("max"),
}

FUNCTION_MAPPERS = {
    F.relu: _act("relu"),
    torch.relu: _act("relu"),
    F.relu6: _act("clip", lo=0.0, hi=6.0),
    F.leaky_relu: _leaky,
    F.hardtanh: _hardtanh,
    F.gelu: _gelu,
    F.elu: _elu,
    F.softplus: _softplus,
    **{f: _act(fn) for fn, (_, funcs, _) in _POINTWISE.items() for f in funcs},
    F.dropout: _alias,
    F.interpolate: upsample,
    F.upsample: upsample,
    F.adaptive_avg_pool1d: adaptive_pool("avg"),
    F.adaptive_avg_pool2d: adaptive_pool("avg"),
    F.adaptive_max_pool1d: adaptive_pool("max"),
    F.adaptive_max_pool2d: adaptive_pool("max"),
    F.avg_pool1d: pool_fn("avg"),
    F.avg_pool2d: pool_fn("avg"),
    F.max_pool1d: pool_fn("max"),
    F.max_pool2d: pool_fn("max"),
    torch.mean: mean,
    torch.flatten: _flatten,
    torch.reshape: _RESHAPE,
    torch.squeeze: _RESHAPE,
    torch.unsqueeze: _RESHAPE,
    operator.add: _add,
    torch.add: _add,
    torch.cat: _cat,
    torch.concat: _cat,
    operator.getitem: getitem(SIZE_FUNCTIONS),  # parts of a chunk/split; x.shape[0], x.size(0)
    torch.chunk: split,
    torch.split: split,
    torch.transpose: transpose,
    torch.permute: permute,
    F.channel_shuffle: channel_shuffle,
    torch.channel_shuffle: channel_shuffle,
    getattr: SIZE_FUNCTIONS,  # x.shape
    **{f: arith(kind) for f, kind in ARITH_FUNCTIONS.items()},
}

METHOD_MAPPERS = {
    "relu": _act("relu"),
    **{name: _act(fn) for fn, (_, _, names) in _POINTWISE.items() for name in names},
    "flatten": _flatten,
    "add": _add,
    "mean": mean,
    "view": _RESHAPE,
    "reshape": _RESHAPE,
    "squeeze": _RESHAPE,
    "unsqueeze": _RESHAPE,
    "size": SIZE_FUNCTIONS,
    "dim": SIZE_FUNCTIONS,
    "contiguous": contiguous,
    "chunk": split,
    "split": split,
    "transpose": transpose,
    "permute": permute,
    **{name: arith(kind) for name, kind in ARITH_METHODS.items()},
}

HINTS = {  # type or function name -> what to write instead / why not
    **{n: "is not supported (supported activations: ReLU, LeakyReLU, ReLU6, Hardtanh, Sigmoid, "
       "Tanh, GELU, SiLU, Hardswish, Hardsigmoid, ELU, Softplus, Mish)"
       for n in ("SELU", "CELU", "PReLU", "RReLU", "GLU", "Softsign", "Tanhshrink", "LogSigmoid",
                 "selu", "celu", "prelu", "rrelu", "glu", "softsign", "logsigmoid")},
    **{n: "(a normalisation over the whole frame) is not supported; use BatchNorm, which folds"
       for n in ("LayerNorm", "GroupNorm", "InstanceNorm2d", "layer_norm", "group_norm")},
    "ConvTranspose3d": "is not supported (ConvTranspose2d and ConvTranspose1d are)",
    "Softmax": "is not supported; return the logits and apply softmax to res.outputs",
    "softmax": "is not supported; return the logits and apply softmax to res.outputs",
    "view": f"only flattens; {FLATTEN_HINT}",
    "getitem": "(slicing a tensor) is not supported",
}
