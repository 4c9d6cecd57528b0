"""Checks of one converted-network node against its inputs' shapes (see :mod:`sigmadelta.nodes`).

:func:`check_node`: structure (inputs before the node, arity), the shape, then the kind's own
checks (finite weights of the right shape, known quantizer and function names, scales > 0),
raising :class:`~sigmadelta.nodes.NetworkError` naming the layer.
"""

from __future__ import annotations

import numpy as np

from .nodes import (
    ACTIVATIONS,
    POOL_OPS,
    QUANTIZERS,
    Activation,
    Add,
    Concat,
    Conv,
    ConvTranspose,
    Dense,
    Flatten,
    Gather,
    Input,
    Mul,
    NetworkError,
    Node,
    Pool,
    Resample,
    Upsample,
    _Weighted,
)

__all__ = ["check_node"]


def _fail(node: Node, msg: str):
    raise NetworkError(f"layer {node.name!r} ({node.kind}): {msg}")


def _positive(node: Node, what: str, values, minimum: int = 1) -> tuple[int, ...]:
    vals = tuple(values)
    if not all(isinstance(v, (int, np.integer)) and v >= minimum for v in vals):
        _fail(node, f"{what} must be integers >= {minimum}, got {vals}")
    return tuple(int(v) for v in vals)


def check_node(net, i: int, node: Node) -> None:
    """Structure (inputs before the node, arity), the shape, then the kind's own checks."""
    if not isinstance(node, Node):
        raise NetworkError(f"node {i} is a {type(node).__name__}, not a graph Node")
    if not len(node.shape) or 0 in tuple(node.shape):
        _fail(node, f"zero-sized or empty shape {tuple(node.shape)}: a layer needs at least one "
                    f"neuron (remove the layer, or give it outputs)")
    _positive(node, "the shape", node.shape)
    if isinstance(node, Input):
        if i != 0 or node.inputs:
            _fail(node, "only node 0 is the input, and it has no inputs")
        return
    if not node.inputs:
        _fail(node, "no inputs")
    for j in node.inputs:
        if not isinstance(j, (int, np.integer)) or not 0 <= j < i:
            _fail(node, f"input {j!r} is not an earlier node (nodes are in topological order, "
                        f"this is node {i})")
    arity = {Add: 2, Mul: 2}.get(type(node), 0 if isinstance(node, Concat) else 1)
    if arity and len(node.inputs) != arity:
        _fail(node, f"takes {arity} input(s), has {len(node.inputs)}")
    check = _CHECKS.get(type(node))
    if check is not None:
        check(node, [net.nodes[j].shape for j in node.inputs])


def _finite(node: Node, what: str, a) -> None:
    a = np.asarray(a)
    if not np.issubdtype(a.dtype, np.number) or not np.isfinite(a).all():
        _fail(node, f"{what} is not finite (NaN or Inf) or not numeric")


def _check_weighted(node: _Weighted, in_shape, w_shape: tuple[int, ...],
                    out_channels: int | None = None) -> None:
    w = np.asarray(node.weight)
    if w.shape != w_shape:
        _fail(node, f"weight has shape {w.shape}, expected {w_shape} from the layer's shapes")
    _finite(node, "weight", w)
    n_bias = w_shape[0] if out_channels is None else out_channels
    if np.shape(node.bias) != (n_bias,):
        _fail(node, f"bias has shape {np.shape(node.bias)}, expected ({n_bias},)")
    _finite(node, "bias", node.bias)
    if node.quantizer not in QUANTIZERS:
        _fail(node, f"quantizer {node.quantizer!r} is not one of {QUANTIZERS}")
    k = np.asarray(node.scale, np.float64) if np.size(node.scale) else np.zeros(1)
    if k.ndim and k.shape != tuple(in_shape):
        _fail(node, f"per-unit scale has shape {k.shape}, the input has shape {tuple(in_shape)}")
    if not (np.isfinite(k).all() and (k > 0).all()):
        _fail(node, f"scale must be finite and > 0, got {node.scale if k.ndim == 0 else 'an array'}")
    if not (np.isfinite(node.threshold) and node.threshold >= 0):
        _fail(node, f"threshold must be finite and >= 0, got {node.threshold}")
    if node.weight_bits:
        if not 2 <= node.weight_bits <= 16:
            _fail(node, f"weight_bits must be 0 (float) or 2..16, got {node.weight_bits}")
        if not (np.isfinite(node.weight_scale) and node.weight_scale > 0):
            _fail(node, f"weight_scale must be finite and > 0, got {node.weight_scale}")
        if not 8 <= node.acc_bits <= 64:
            _fail(node, f"acc_bits must be in 8..64, got {node.acc_bits}")
        if node.quantizer != "herding" or k.ndim:
            _fail(node, "fixed-point weights need the herding quantizer with one scale per layer")


def _check_dense(node: Dense, in_shapes) -> None:
    (in_shape,) = in_shapes
    if len(in_shape) != 1:
        _fail(node, f"its input has shape {tuple(in_shape)}; a fully connected layer takes a flat "
                    f"input [N] (PyTorch would apply Linear to the last axis only): flatten first, "
                    f"e.g. torch.flatten(x, 1) or nn.Flatten()")
    if len(node.shape) != 1:
        _fail(node, f"output shape {node.shape} is not flat")
    _check_weighted(node, in_shape, (node.shape[0], in_shape[0]))


def _conv_out(n: int, k: int, s: int, p: int, d: int = 1) -> int:
    return (n + 2 * p - d * (k - 1) - 1) // s + 1


def _conv_geometry(node: Conv | ConvTranspose, in_shape, weight_layout: str):
    """Check what a conv and a transposed conv share (``[C, H, W]`` in and out, a 4-d weight laid
    out as ``weight_layout``, positive groups, stride, dilation and kernel size, non-negative
    padding, channels divisible by groups) and return ``(groups, stride, dilation, padding,
    (kh, kw), c_in, c_out)``."""
    if len(in_shape) != 3 or len(node.shape) != 3:
        _fail(node, f"needs [C, H, W] input and output, got {tuple(in_shape)} -> {node.shape}")
    if np.ndim(node.weight) != 4:
        _fail(node, f"weight must be {weight_layout}, got shape {np.shape(node.weight)}")
    groups = _positive(node, "groups", (node.groups,))[0]
    stride = _positive(node, "stride", node.stride)
    dilation = _positive(node, "dilation", node.dilation)
    padding = _positive(node, "padding", node.padding, 0)
    kernel = _positive(node, "the kernel size", np.shape(node.weight)[2:])
    c_in, c_out = in_shape[0], node.shape[0]
    if c_in % groups or c_out % groups:
        _fail(node, f"{c_in} input and {c_out} output channels are not divisible by groups={groups}")
    return groups, stride, dilation, padding, kernel, c_in, c_out


def _check_conv(node: Conv, in_shapes) -> None:
    (in_shape,) = in_shapes
    groups, stride, dilation, padding, (kh, kw), c_in, c_out = _conv_geometry(
        node, in_shape, "[out, in/groups, kh, kw]")
    out_hw = tuple(_conv_out(in_shape[1 + a], (kh, kw)[a], stride[a], padding[a], dilation[a])
                   for a in (0, 1))
    if tuple(node.shape[1:]) != out_hw:
        _fail(node, f"output {node.shape[1:]} does not follow from input {tuple(in_shape)}, kernel "
                    f"{(kh, kw)}, stride {stride}, padding {padding}, dilation {dilation}: {out_hw}")
    _check_weighted(node, in_shape, (c_out, c_in // groups, kh, kw))


def _convt_out(n: int, k: int, s: int, p: int, d: int, op: int) -> int:
    return (n - 1) * s - 2 * p + d * (k - 1) + op + 1


def _check_convt(node: ConvTranspose, in_shapes) -> None:
    (in_shape,) = in_shapes
    groups, stride, dilation, padding, (kh, kw), c_in, c_out = _conv_geometry(
        node, in_shape, "[in, out/groups, kh, kw]")
    out_pad = _positive(node, "output_padding", node.output_padding, 0)
    if any(o >= max(s, d) for o, s, d in zip(out_pad, stride, dilation, strict=True)):
        _fail(node, f"output_padding {out_pad} must be smaller than stride or dilation")
    out_hw = tuple(_convt_out(in_shape[1 + a], (kh, kw)[a], stride[a], padding[a], dilation[a],
                              out_pad[a]) for a in (0, 1))
    if tuple(node.shape[1:]) != out_hw:
        _fail(node, f"output {node.shape[1:]} does not follow from input {tuple(in_shape)}, kernel "
                    f"{(kh, kw)}, stride {stride}, padding {padding}, dilation {dilation}, "
                    f"output_padding {out_pad}: {out_hw}")
    _check_weighted(node, in_shape, (c_in, c_out // groups, kh, kw), out_channels=c_out)


def _check_resample(node: Resample, in_shapes) -> None:
    (s,) = (tuple(x) for x in in_shapes)
    if len(s) != 3 or len(node.shape) != 3 or node.shape[0] != s[0]:
        _fail(node, f"resampling needs [C, H, W] in and out with equal C, got {s} -> {node.shape}")
    for a, sf in enumerate((node.scale_h, node.scale_w)):
        if not (np.isfinite(sf) and sf >= 0):
            _fail(node, f"scale factors must be finite and >= 0, got {(node.scale_h, node.scale_w)}")
        if sf > 0 and int(np.floor(s[1 + a] * sf)) != node.shape[1 + a]:
            _fail(node, f"scale factor {sf:g} takes size {s[1 + a]} to "
                        f"{int(np.floor(s[1 + a] * sf))}, not {node.shape[1 + a]}")


def _check_gather(node: Gather, in_shapes) -> None:
    (s,) = (tuple(x) for x in in_shapes)
    src = np.asarray(node.src)
    if src.ndim != 1 or not np.issubdtype(src.dtype, np.integer) or len(src) != node.shape[0]:
        _fail(node, f"src must list one input channel per output channel ({node.shape[0]}), "
                    f"got shape {src.shape}")
    if len(src) and (src.min() < 0 or src.max() >= s[0] or len(np.unique(src)) != len(src)):
        _fail(node, f"src must name distinct input channels in 0..{s[0] - 1}")
    if tuple(node.shape[1:]) != s[1:]:
        _fail(node, f"routes channels of {s} but has shape {node.shape}")


def _check_activation(node: Activation, in_shapes) -> None:
    if tuple(in_shapes[0]) != tuple(node.shape):
        _fail(node, f"shape {node.shape} differs from its input's {tuple(in_shapes[0])}")
    if node.fn not in ACTIVATIONS:
        _fail(node, f"unknown function {node.fn!r} (one of {ACTIVATIONS})")
    _finite(node, "alpha/lo/hi", [node.alpha, node.lo, node.hi])
    if node.lo > node.hi:
        _fail(node, f"lo {node.lo} > hi {node.hi}")


def _check_pool(node: Pool, in_shapes) -> None:
    (in_shape,) = in_shapes
    if node.op not in POOL_OPS:
        _fail(node, f"unknown pooling {node.op!r} (one of {POOL_OPS})")
    if len(in_shape) != 3 or len(node.shape) != 3 or node.shape[0] != in_shape[0]:
        _fail(node, f"needs [C, H, W] in and out with equal C, got {tuple(in_shape)} -> {node.shape}")
    kernel = _positive(node, "kernel", node.kernel)
    stride = _positive(node, "stride", node.stride)
    padding = _positive(node, "padding", node.padding, 0)
    if any(2 * p > k for p, k in zip(padding, kernel, strict=True)):
        _fail(node, f"padding {padding} exceeds half the kernel {kernel}")
    out_hw = tuple(_conv_out(in_shape[1 + a], kernel[a], stride[a], padding[a]) for a in (0, 1))
    if tuple(node.shape[1:]) != out_hw:
        _fail(node, f"output {node.shape[1:]} does not follow from input {tuple(in_shape)}: {out_hw}")


def _check_flatten(node: Flatten, in_shapes) -> None:
    if tuple(node.shape) != (int(np.prod(in_shapes[0])),):
        _fail(node, f"shape {node.shape} is not the flat size of its input {tuple(in_shapes[0])}")


def _check_add(node: Add, in_shapes) -> None:
    if any(tuple(s) != tuple(node.shape) for s in in_shapes):
        _fail(node, f"inputs {[tuple(s) for s in in_shapes]} and output {node.shape} differ")


def _check_concat(node: Concat, in_shapes) -> None:
    rest = {tuple(s[1:]) for s in in_shapes} | {tuple(node.shape[1:])}
    if len(rest) != 1 or any(len(s) != len(node.shape) for s in in_shapes) \
            or sum(s[0] for s in in_shapes) != node.shape[0]:
        _fail(node, f"inputs {[tuple(s) for s in in_shapes]} do not concatenate along channels "
                    f"to {node.shape}")


def _check_mul(node: Mul, in_shapes) -> None:
    a, b = (tuple(s) for s in in_shapes)
    if a != tuple(node.shape) or (b != a and not (len(a) == 3 and b == (a[0], 1, 1))):
        _fail(node, f"inputs {a} and {b} give no product of shape {node.shape} (the second input "
                    f"has the first's shape or one value per channel)")


def _check_upsample(node: Upsample, in_shapes) -> None:
    (s,) = (tuple(x) for x in in_shapes)
    sh, sw = (int(v) for v in node.scale)
    if len(s) != 3 or sh < 1 or sw < 1 or tuple(node.shape) != (s[0], s[1] * sh, s[2] * sw):
        _fail(node, f"upsampling {s} by {tuple(node.scale)} does not give {node.shape}")


_CHECKS = {Dense: _check_dense, Conv: _check_conv, Activation: _check_activation,
           Pool: _check_pool, Flatten: _check_flatten, Add: _check_add, Concat: _check_concat,
           Mul: _check_mul, Upsample: _check_upsample, ConvTranspose: _check_convt,
           Resample: _check_resample, Gather: _check_gather}

