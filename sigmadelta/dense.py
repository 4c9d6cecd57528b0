"""The one dense walk over a network in PyTorch (batched NCHW / NC, any float dtype).

:func:`evaluate` computes every node of a :class:`~sigmadelta.graph.Network` on a
batch, in topological order; what differs between its users is only what happens
at a weight layer's input:

* the dense reference (:class:`sigmadelta.reference.Reference`): the layer's own
  quantizer (``round(k*x)/k``, or the threshold's sent values), and fixed-point
  layers in exact integers (``fixed_point=True``);
* the rounding net of :mod:`sigmadelta.scales`: a differentiable surrogate of the
  quantizer, with its cost;
* the float ANN (``quantize=None``): no quantizer at all.

A weight layer ``j`` (the ``j``-th Dense / Conv node) computes::

    a_hat = quantize(j, node, a)      (a without quantize)
    z     = W @ a_hat + b             (F.linear / F.conv2d with (W, b) = weights[j])

and with ``fixed_point=True`` a layer with ``weight_bits`` computes instead
``acc = W_int @ round(k*a)`` (exact integers, checked against its ``acc_bits`` range)
and ``z = acc * delta / k + b`` (see :mod:`sigmadelta.fixedpoint`).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np
import torch
import torch.nn.functional as F

from . import graph as g
from .fixedpoint import (
    AccumulatorOverflowError,
    integer_weights,
    max_spike_total,
    overflow_message,
    spike_total_message,
)
from .torchlimit import DEFAULT_TORCH_THREADS, torch_limit

__all__ = ["evaluate", "layer_weights", "weighted", "dense_node", "fixed_point_layer"]

Quantize = Callable[[int, g.Node, torch.Tensor], torch.Tensor]


def layer_weights(net: g.Network, dtype: torch.dtype = torch.float64,
                  fixed_point: bool = False) -> list[tuple[torch.Tensor, torch.Tensor]]:
    """``(W, b)`` of every weight layer as tensors (``W_int`` for fixed-point layers if asked)."""
    out = []
    for n in net.weight_layers:
        w = integer_weights(n) if fixed_point and n.weight_bits else n.weight
        if dtype == torch.float64:
            out.append((torch.from_numpy(np.asarray(w, np.float64)),
                        torch.from_numpy(np.asarray(n.bias, np.float64))))
        else:
            out.append((torch.as_tensor(np.asarray(w), dtype=dtype),
                        torch.as_tensor(np.asarray(n.bias), dtype=dtype)))
    return out


def evaluate(net: g.Network, x: torch.Tensor, quantize: Quantize | None = None,
             weights: Sequence[tuple[torch.Tensor, torch.Tensor]] | None = None,
             fixed_point: bool = False, keep: bool = False,
             torch_threads: int | None = DEFAULT_TORCH_THREADS) -> torch.Tensor | list[torch.Tensor]:
    """Every node of ``net`` on the batch ``x`` ``[B, *input_shape]`` (see module docstring).

    Parameters
    ----------
    quantize : callable ``(j, node, a) -> a_hat``, optional
        The input quantizer of weight layer ``j``; None: the float network.
    weights : list of ``(W, b)``, optional
        One pair per weight layer (default: :func:`layer_weights` in float64).
    fixed_point : bool
        Compute layers with ``weight_bits`` in exact integers (``weights`` then hold
        ``W_int`` for them), as the event simulation does.
    keep : bool
        Return the values of all nodes (a list, by node index), not only the output.
    torch_threads : int or None
        torch's intra-op threads during the walk (:mod:`sigmadelta.torchlimit`), restored
        afterwards; 1 by default, None leaves torch alone (what a caller that holds its
        own limit around a backward pass passes).
    """
    if weights is None:
        weights = layer_weights(net, fixed_point=fixed_point)
    with torch_limit(torch_threads):
        return _walk(net, x, quantize, weights, fixed_point, keep)


def _walk(net, x, quantize, weights, fixed_point: bool, keep: bool):
    """:func:`evaluate`'s loop over the nodes."""
    vals: list[torch.Tensor] = []
    j = 0
    for n in net.nodes:
        ins = [vals[i] for i in n.inputs]
        if isinstance(n, g.Input):
            v = x.reshape(x.shape[0], *n.shape)  # (C, L) frames are held as (C, 1, L)
        elif isinstance(n, g.WEIGHT_KINDS):
            w, b = weights[j]
            if fixed_point and n.weight_bits:
                v = fixed_point_layer(n, ins[0], w, b)
            else:
                v = weighted(n, ins[0] if quantize is None else quantize(j, n, ins[0]), w, b)
            j += 1
        else:
            v = dense_node(n, ins)
        vals.append(v)
    return vals if keep else vals[net.output]


def weighted(n: g.Dense | g.Conv, x: torch.Tensor, w: torch.Tensor, b: torch.Tensor | None) -> torch.Tensor:
    """``W @ x + b`` of a weight layer: ``F.linear`` or ``F.conv2d`` with the node's geometry."""
    if isinstance(n, g.Dense):
        return F.linear(x, w, b)
    if isinstance(n, g.ConvTranspose):
        return F.conv_transpose2d(x, w, b, stride=n.stride, padding=n.padding,
                                  output_padding=n.output_padding, groups=n.groups,
                                  dilation=n.dilation)
    return F.conv2d(x, w, b, stride=n.stride, padding=n.padding, dilation=n.dilation, groups=n.groups)


def fixed_point_layer(n: g.Dense | g.Conv, x: torch.Tensor, w_int: torch.Tensor,
                      b: torch.Tensor) -> torch.Tensor:
    """Fixed point: ``acc = W_int @ round(k*x)`` (exact integers), ``z = acc*delta/k + b``.

    Inputs beyond :func:`~sigmadelta.fixedpoint.max_spike_total` and accumulators outside
    the signed ``acc_bits`` range raise :class:`AccumulatorOverflowError`, as in the engine.
    """
    q = torch.round(n.scale * x)
    qa = q.abs().flatten()
    if qa.numel() and not bool(qa.max() <= max_spike_total(n)):
        i = int(torch.nan_to_num(qa, nan=np.inf).argmax())
        raise AccumulatorOverflowError(
            spike_total_message(n, None, None, float(x.flatten()[i])) + " (dense reference)")
    acc = weighted(n, q, w_int, None)
    limit = 2 ** (n.acc_bits - 1) - 1
    if acc.numel() and (acc.max() > limit or acc.min() < -limit - 1):
        worst = acc.max() if acc.max() > limit else acc.min()
        raise AccumulatorOverflowError(overflow_message(n, None, None, int(worst)) + " (dense reference)")
    return acc * (n.weight_scale / n.scale) + b.reshape((-1,) + (1,) * (acc.ndim - 2))


_ACTIVATIONS = {  # graph.ACTIVATIONS, as PyTorch computes them
    "relu": lambda x, n: F.relu(x), "leaky": lambda x, n: F.leaky_relu(x, n.alpha),
    "clip": lambda x, n: x.clamp(n.lo, n.hi), "identity": lambda x, n: x,
    "sigmoid": lambda x, n: torch.sigmoid(x), "tanh": lambda x, n: torch.tanh(x),
    "gelu": lambda x, n: F.gelu(x), "gelu_tanh": lambda x, n: F.gelu(x, approximate="tanh"),
    "silu": lambda x, n: F.silu(x), "hardswish": lambda x, n: F.hardswish(x),
    "hardsigmoid": lambda x, n: F.hardsigmoid(x), "elu": lambda x, n: F.elu(x, n.alpha),
    "softplus": lambda x, n: F.softplus(x, n.alpha, n.hi), "mish": lambda x, n: F.mish(x),
}


def dense_node(n: g.Node, ins: list[torch.Tensor], weight: torch.Tensor | None = None,
               bias: torch.Tensor | None = None) -> torch.Tensor:
    """Dense PyTorch evaluation of one node on batched inputs (NCHW / NC).

    Weight layers use ``weight`` and ``bias`` as given (no input quantization);
    every other node kind is computed as PyTorch computes it.
    """
    if isinstance(n, g.WEIGHT_KINDS):
        return weighted(n, ins[0], weight, bias)
    x = ins[0]
    if isinstance(n, g.Activation):
        return _ACTIVATIONS[n.fn](x, n)
    if isinstance(n, g.Pool):
        if n.op == "max":
            return F.max_pool2d(x, n.kernel, n.stride, n.padding)
        return F.avg_pool2d(x, n.kernel, n.stride, n.padding, count_include_pad=True)
    if isinstance(n, g.Flatten):
        return x.flatten(1)
    if isinstance(n, g.Add):
        return ins[0] + ins[1]
    if isinstance(n, g.Concat):
        return torch.cat(ins, dim=1)
    if isinstance(n, g.Upsample):
        return F.interpolate(x, scale_factor=tuple(float(s) for s in n.scale), mode="nearest")
    if isinstance(n, g.Resample):
        if n.scale_h > 0:
            return F.interpolate(x, scale_factor=(n.scale_h, n.scale_w), mode="bilinear",
                                 align_corners=n.align_corners)
        return F.interpolate(x, size=tuple(n.shape[1:]), mode="bilinear",
                             align_corners=n.align_corners)
    if isinstance(n, g.Gather):
        return x[:, torch.as_tensor(np.asarray(n.src, np.int64))]
    if isinstance(n, g.Mul):
        return ins[0] * ins[1]  # b broadcast over the pixels when it is (C, 1, 1)
    raise TypeError(f"the dense evaluator cannot evaluate node {n.name!r} of kind {n.kind!r}")
