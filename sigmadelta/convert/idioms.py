"""Mappers for the idioms people write in ``forward`` that map onto existing node kinds.

* reshapes that only flatten (``x.view(x.size(0), -1)``, ``x.view(-1, N)``,
  ``x.reshape(x.shape[0], -1)``, ``squeeze``/``unsqueeze`` of unit axes): a
  :class:`~sigmadelta.graph.Flatten`, or nothing when the layout does not change;
* functional pooling (``F.max_pool2d``, ``F.avg_pool2d``, adaptive pooling to a
  divisor) and the global mean ``x.mean((2, 3))``: a :class:`~sigmadelta.graph.Pool`
  (and a Flatten without ``keepdim``); the 1-D forms on ``(C, L)`` tensors;
* constant arithmetic ``y = a*x + b`` (``x * 0.5``, ``x / 6``, ``x + 3``, ``-x``)
  and BatchNorm: folded into the weight layer right before when ``x`` is its
  output and nothing else reads it (``W <- a*W``, ``bias <- a*bias + b``), else a
  weight layer of its own that computes ``a*x + b`` exactly (a depthwise 1x1 conv,
  or a diagonal Dense on vectors), which receives spikes like any weight layer;
* ``Conv1d`` as a conv of height 1: a ``(C, L)`` tensor is held as ``(C, 1, L)``;
  ``ConvTranspose1d`` likewise as a transposed conv of height 1.
"""

from __future__ import annotations

import operator

import numpy as np
import torch
import torch.fx

from .. import graph as g
from ._util import UnsupportedLayerError, arg, pair, to_np, torch_shape
from .routing import grouped_view

__all__ = ["reshape", "upsample", "make_pool", "pool_fn", "adaptive_pool", "mean", "arith", "affine",
           "conv1d", "conv_transpose1d", "conv_padding", "SIZE_FUNCTIONS"]

FLATTEN_HINT = "use torch.flatten(x, 1) (or x.view(x.size(0), -1))"


def _src(ctx, node) -> int:
    return ctx.env[node.args[0].name]


# ---------------------------------------------------------------- reshapes
def reshape(ctx, node, m=None) -> int:
    """``view``/``reshape``/``squeeze``/``unsqueeze``: flatten, or keep the layout."""
    out = tuple(int(s) for s in node.meta["tensor_meta"].shape)
    routed = grouped_view(ctx, node, out)  # a step of a channel shuffle (convert.routing)
    if routed is not False:
        return routed
    src = _src(ctx, node)
    in_t = torch_shape(node.args[0])
    what = node.target if isinstance(node.target, str) else node.target.__name__
    if out and out[0] == 1:  # the batch axis is kept (shapes are traced with batch 1)
        rest = out[1:]
        if rest == (int(np.prod(in_t)),):
            return src if len(ctx.nodes[src].shape) == 1 else ctx.add(g.Flatten, node, inputs=(src,))
        if 1 <= len(rest) <= 3 and ctx.internal(rest) == ctx.nodes[src].shape:
            return src  # only unit axes added or removed: the same values in the same order
    hint = " (x.squeeze() also drops the batch axis)" if what == "squeeze" else ""
    raise UnsupportedLayerError(
        f"{ctx.path(node)}: .{what}() from {in_t} to {out[1:]} (batch axis excluded){hint}: only "
        f"flattening [C, H, W] into features is supported; {FLATTEN_HINT}")


reshape.accepts_sizes = True  # its shape arguments may be x.size(0) / x.shape[0]


def _sizes(ctx, node, m=None) -> None:
    """``x.size()``, ``x.shape``, ``x.dim()`` and indexing into them: not tensors."""
    if node.target is operator.getitem and ctx.env.get(node.args[0].name) is not None:
        raise UnsupportedLayerError(
            f"cannot convert '{node.name}': indexing or slicing a tensor (x[...]) is not supported; "
            f"to take channels apart use x.split(sizes, dim=1) or x.chunk(n, dim=1)")
    return None


_sizes.accepts_sizes = True
SIZE_FUNCTIONS = _sizes


# ---------------------------------------------------------------- pooling
def _axes(ctx, node, v, fill: int = 1) -> tuple[int, int]:
    """A pooling size as (h, w); on ``(C, L)`` tensors (held as ``(C, 1, L)``) ``(fill, v)``."""
    if len(torch_shape(node.args[0])) == 2:
        return (fill, int(v[0] if isinstance(v, (list, tuple)) else v))
    return pair(v)


def make_pool(ctx, node, op: str, kernel, stride, padding, dilation=1, ceil_mode=False,
              count_include_pad=True, divisor_override=None, return_indices=False) -> int:
    """A :class:`~sigmadelta.graph.Pool`, or an error naming the unsupported option."""
    path = ctx.path(node)
    if ceil_mode:
        raise UnsupportedLayerError(f"{path}: ceil_mode=True is not supported; pad the input or "
                                    "choose a kernel that divides it")
    if op == "max" and (_axes(ctx, node, dilation) != (1, 1) or return_indices):
        raise UnsupportedLayerError(f"{path}: max pooling with dilation/return_indices")
    if op == "avg" and divisor_override is not None:
        raise UnsupportedLayerError(f"{path}: avg pooling with divisor_override")
    k = _axes(ctx, node, kernel)
    pad = _axes(ctx, node, padding, fill=0)
    if op == "avg" and not count_include_pad and pad != (0, 0):
        raise UnsupportedLayerError(f"{path}: count_include_pad=False with padding")
    s = _axes(ctx, node, stride if stride not in (None, [], ()) else kernel)
    return ctx.add(g.Pool, node, op=op, kernel=k, stride=s, padding=pad)


def pool_fn(op: str):
    """``F.max_pool2d(x, k, stride, padding, dilation, ceil_mode, return_indices)`` /
    ``F.avg_pool2d(x, k, stride, padding, ceil_mode, count_include_pad, divisor_override)``
    (and the 1-D forms)."""
    def mapper(ctx, node, m=None) -> int:
        kw = dict(kernel=arg(node, 1, "kernel_size"), stride=arg(node, 2, "stride"),
                  padding=arg(node, 3, "padding", 0))
        if op == "max":
            kw.update(dilation=arg(node, 4, "dilation", 1), ceil_mode=arg(node, 5, "ceil_mode", False),
                      return_indices=arg(node, 6, "return_indices", False))
        else:
            kw.update(ceil_mode=arg(node, 4, "ceil_mode", False),
                      count_include_pad=arg(node, 5, "count_include_pad", True),
                      divisor_override=arg(node, 6, "divisor_override"))
        return make_pool(ctx, node, op, **kw)
    return mapper


def adaptive_pool(op: str):
    """``AdaptiveAvgPool``/``AdaptiveMaxPool`` (module or functional) to a divisor of the input."""
    def mapper(ctx, node, m=None) -> int:
        size = m.output_size if m is not None else arg(node, 1, "output_size")
        _, h, w = ctx.nodes[_src(ctx, node)].shape
        if len(torch_shape(node.args[0])) == 2:
            oh, ow = 1, int(size[0] if isinstance(size, (list, tuple)) else size)
        else:
            oh, ow = (1, 1) if size is None else (size, size) if isinstance(size, int) else size
            oh, ow = (h if oh is None else int(oh)), (w if ow is None else int(ow))  # None: keep
        if h % oh or w % ow:
            raise UnsupportedLayerError(
                f"{ctx.path(node)}: adaptive pooling to {oh}x{ow} from {h}x{w} (not a divisor); "
                f"use a fixed kernel (F.{op}_pool2d) or an input size it divides")
        return ctx.add(g.Pool, node, op=op, kernel=(h // oh, w // ow), stride=(h // oh, w // ow))
    return mapper


def mean(ctx, node, m=None) -> int:
    """``x.mean((2, 3))`` / ``torch.mean(x, dim=[2, 3], keepdim=...)``: global average pooling."""
    src = _src(ctx, node)
    in_t = torch_shape(node.args[0])
    dims = arg(node, 1, "dim")
    keep = bool(arg(node, 2, "keepdim", False))
    nd = len(in_t) + 1
    dims = [dims] if isinstance(dims, int) else list(dims or [])
    if nd not in (3, 4) or sorted(d % nd for d in dims) != list(range(2, nd)):
        raise UnsupportedLayerError(
            f"{ctx.path(node)}: mean over dims {tuple(dims)} of a {in_t} tensor; only the mean over "
            f"all spatial axes (global average pooling) is supported: x.mean((2, 3)) or "
            f"F.adaptive_avg_pool2d(x, 1)")
    c, h, w = ctx.nodes[src].shape
    p = ctx.add(g.Pool, node, inputs=(src,), shape=(c, 1, 1), op="avg", kernel=(h, w), stride=(h, w))
    if keep:
        return p
    return ctx.add(g.Flatten, node, inputs=(p,), shape=(c,), name=ctx.path(node) + ".flatten")


# ---------------------------------------------------------------- constant arithmetic
def _number(v) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool)


_SYMBOL = {"add": "+", "sub": "-", "mul": "*", "div": "/"}


def _coefficients(ctx, node, kind: str):
    """``(x, a, b)`` with ``y = a*x + b`` for a call with one tensor and one number."""
    if kind == "neg":
        return node.args[0], -1.0, 0.0
    lhs, rhs = arg(node, 0, "input"), arg(node, 1, "other")
    alpha = arg(node, 2, "alpha", 1)
    if kind == "div" and arg(node, 2, "rounding_mode") is not None:
        raise UnsupportedLayerError(f"{ctx.path(node)}: division with rounding_mode")
    tensors = [v for v in (lhs, rhs) if isinstance(v, torch.fx.Node)]
    if len(tensors) == 2:
        raise UnsupportedLayerError(
            f"{ctx.path(node)}: x {_SYMBOL[kind]} y of two tensors is not supported; residual sums "
            f"x + y are")
    const = rhs if tensors and lhs is tensors[0] else lhs
    if not tensors or not _number(const) or not _number(alpha):
        raise UnsupportedLayerError(
            f"{ctx.path(node)}: {kind} with {type(const).__name__} operands; only a tensor and a "
            f"constant number (x * 0.5, x / 6, x + 3) or two tensors x + y convert")
    c, first = float(const), lhs is tensors[0]
    if kind == "mul":
        return tensors[0], c, 0.0
    if kind == "div":
        if not first:
            raise UnsupportedLayerError(f"{ctx.path(node)}: {c:g} / x (a reciprocal) is not affine")
        return tensors[0], 1.0 / c, 0.0
    if kind == "add":
        return tensors[0], 1.0, c * (alpha if first else 1.0)
    return (tensors[0], 1.0, -c * alpha) if first else (tensors[0], -float(alpha), c)


def arith(kind: str):
    """``x * c``, ``c * x``, ``x / c``, ``x + c``, ``x - c``, ``c - x``, ``-x`` (operators,
    ``torch.mul``/``div``/``add``/``sub`` and the tensor methods); ``x + y`` of two tensors
    goes to ``tensor_add``."""
    def mapper(ctx, node, m=None) -> int:
        if kind == "mul" and all(isinstance(v, torch.fx.Node) for v in node.args[:2]) \
                and len(node.args) >= 2:
            return product(ctx, node, node.args[0], node.args[1])
        x, a, b = _coefficients(ctx, node, kind)
        return affine(ctx, node, ctx.env[x.name], a, b)
    return mapper


def product(ctx, node, lhs, rhs) -> int:
    """``x * y`` of two changing tensors: a :class:`~sigmadelta.graph.Mul`, the second
    input the one that is broadcast (a ``(C, 1, 1)`` gate, as squeeze-and-excitation)."""
    a, b = ctx.env[lhs.name], ctx.env[rhs.name]
    sa, sb = ctx.nodes[a].shape, ctx.nodes[b].shape
    if len(sa) == 3 and sa != sb and sa == (sb[0], 1, 1):
        a, b, sa, sb = b, a, sb, sa
    if sa != sb and not (len(sa) == 3 and sb == (sa[0], 1, 1)):
        raise UnsupportedLayerError(
            f"{ctx.path(node)}: x * y of shapes {sa} and {sb}; only equal shapes or a per-channel "
            f"gate of shape (C, 1, 1) (squeeze-and-excitation) convert")
    return ctx.add(g.Mul, node, inputs=(a, b), shape=sa)


ARITH_FUNCTIONS = {
    operator.mul: "mul", torch.mul: "mul", operator.truediv: "div", torch.div: "div",
    operator.sub: "sub", torch.sub: "sub", operator.neg: "neg", torch.neg: "neg",
}
ARITH_METHODS = {"mul": "mul", "div": "div", "sub": "sub", "neg": "neg"}


def affine(ctx, node, src: int, a, b) -> int:
    """``y = a*x + b`` (``a``, ``b`` numbers or one per channel) on the value of node ``src``.

    Folded into the weight layer ``src`` when nothing else reads its output
    (``W <- a*W``, ``bias <- a*bias + b`` per output channel), else a weight layer of
    its own computing exactly ``a*x + b``: a depthwise 1x1 conv (``[C, H, W]``) or a
    diagonal Dense (vectors). Returns the index of the node holding ``y``.
    """
    prod = ctx.nodes[src]
    c = prod.shape[0]
    a = np.broadcast_to(np.asarray(a, np.float64), (c,))
    b = np.broadcast_to(np.asarray(b, np.float64), (c,))
    if (a == 1).all() and (b == 0).all():  # x * 1, x + 0 (sum() starts from 0)
        return src
    if isinstance(prod, g.WEIGHT_KINDS) and ctx.sole_consumer(src, node):
        if isinstance(prod, g.ConvTranspose):  # [in, out/groups, kh, kw]: output j of group gi
            c_in, cg = prod.weight.shape[:2]
            w = prod.weight.reshape(prod.groups, c_in // prod.groups, cg, -1)
            w = w * a.reshape(prod.groups, 1, cg, 1)
            prod.weight = w.reshape(prod.weight.shape).astype(np.float32)
        else:
            shape = (-1,) + (1,) * (prod.weight.ndim - 1)
            prod.weight = (prod.weight * a.reshape(shape)).astype(np.float32)
        prod.bias = (prod.bias * a + b).astype(np.float32)
        return src
    if len(prod.shape) == 1:
        return ctx.add(g.Dense, node, inputs=(src,), shape=prod.shape,
                       weight=np.diag(a).astype(np.float32), bias=b.astype(np.float32))
    return ctx.add(g.Conv, node, inputs=(src,), shape=prod.shape,
                   weight=a.reshape(c, 1, 1, 1).astype(np.float32), bias=b.astype(np.float32),
                   groups=c)


# ---------------------------------------------------------------- upsampling
def upsample(ctx, node, m=None) -> int:
    """``nn.Upsample`` / ``F.interpolate``: mode "nearest" by integer factors, or "bilinear"
    (any size or scale factor, ``align_corners`` either way) as a :class:`~sigmadelta.graph.Resample`."""
    if m is not None:
        mode, align, sf = m.mode, m.align_corners, m.scale_factor
        recompute, antialias = m.recompute_scale_factor, False
        if type(m).__name__ == "UpsamplingBilinear2d":
            mode, align = "bilinear", True
    else:
        mode, align = arg(node, 3, "mode", "nearest"), arg(node, 4, "align_corners")
        sf, recompute = arg(node, 2, "scale_factor"), arg(node, 5, "recompute_scale_factor")
        antialias = arg(node, 6, "antialias", False)
    if mode == "bilinear":
        return _bilinear(ctx, node, bool(align), None if recompute else sf, antialias)
    if mode not in ("nearest", "nearest-exact"):
        raise UnsupportedLayerError(
            f"{ctx.path(node)}: {mode} upsampling is not supported (modes 'nearest' and "
            f"'bilinear' are); use mode='bilinear' or mode='nearest'")
    src = _src(ctx, node)
    _, h, w = ctx.nodes[src].shape
    _, oh, ow = ctx.internal(node.meta["tensor_meta"].shape[1:], ctx.path(node))
    if oh % h or ow % w:
        raise UnsupportedLayerError(
            f"{ctx.path(node)}: upsampling {h}x{w} to {oh}x{ow} (not an integer factor)")
    return ctx.add(g.Upsample, node, scale=(oh // h, ow // w))


upsample.accepts_sizes = True  # size=x.shape[-2:]: the traced output shape is what it reads


def _bilinear(ctx, node, align: bool, sf, antialias) -> int:
    """Bilinear resampling; the model's scale factor sets PyTorch's source coordinates unless
    ``align_corners`` (or ``recompute_scale_factor``) makes them the sizes' ratio."""
    if antialias:
        raise UnsupportedLayerError(f"{ctx.path(node)}: bilinear interpolation with antialias=True "
                                    f"is not supported; use antialias=False")
    if len(torch_shape(node.args[0])) != 3:
        raise UnsupportedLayerError(f"{ctx.path(node)}: bilinear interpolation of a "
                                    f"{torch_shape(node.args[0])} tensor; only [C, H, W] images")
    sh, sw = (0.0, 0.0) if sf is None or align else (
        (float(sf[0]), float(sf[1])) if isinstance(sf, (list, tuple)) else (float(sf),) * 2)
    return ctx.add(g.Resample, node, align_corners=align, scale_h=sh, scale_w=sw)


# ---------------------------------------------------------------- Conv1d
def conv_padding(m, path: str, nd: int) -> tuple[int, ...]:
    """Zero padding of a Conv1d/Conv2d module, per spatial axis."""
    kind = type(m).__name__
    if m.padding_mode != "zeros":
        raise UnsupportedLayerError(f"{path} ({kind}): padding_mode={m.padding_mode!r}; only 'zeros'")
    if m.padding == "valid":
        return (0,) * nd
    if m.padding == "same":
        tot = [d * (k - 1) for d, k in zip(m.dilation, m.kernel_size, strict=True)]
        if any(t % 2 for t in tot):
            raise UnsupportedLayerError(f"{path} ({kind}): asymmetric 'same' padding")
        return tuple(t // 2 for t in tot)
    return tuple(int(p) for p in m.padding)


def conv1d(ctx, node, m) -> int:
    """``Conv1d`` on ``(C, L)`` as a conv of height 1 on ``(C, 1, L)``."""
    (pad,) = conv_padding(m, node.target, 1)
    return ctx.add(g.Conv, node, weight=to_np(m.weight)[:, :, None, :],
                   bias=to_np(m.bias, m.out_channels), stride=(1, int(m.stride[0])),
                   padding=(0, pad), dilation=(1, int(m.dilation[0])), groups=int(m.groups))


def conv_transpose1d(ctx, node, m) -> int:
    """``ConvTranspose1d`` on ``(C, L)`` as a transposed conv of height 1 on ``(C, 1, L)``;
    ``output_padding`` (or a call's ``output_size``) from the traced length."""
    if m.padding_mode != "zeros":
        raise UnsupportedLayerError(f"{node.target} (ConvTranspose1d): padding_mode="
                                    f"{m.padding_mode!r}; only 'zeros'")
    n, out = ctx.nodes[ctx.env[node.args[0].name]].shape[-1], torch_shape(node)[-1]
    (k,), (s,), (p,), (d,) = m.kernel_size, m.stride, m.padding, m.dilation
    out_pad = out - ((n - 1) * s - 2 * p + d * (k - 1) + 1)
    return ctx.add(g.ConvTranspose, node, weight=to_np(m.weight)[:, :, None, :],
                   bias=to_np(m.bias, m.out_channels), stride=(1, int(s)), padding=(0, int(p)),
                   output_padding=(0, int(out_pad)), dilation=(1, int(d)), groups=int(m.groups))


conv_transpose1d.accepts_sizes = True  # up(x, output_size=y.shape[-1:]): the traced length
