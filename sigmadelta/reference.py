"""The dense reference: the same quantized network, computed densely without events.

Every frame, every neuron of every node is computed with PyTorch (float64, the
ordinary NCHW layout), independently of the event code:

* weight layer with herding input quantizer: ``z = W @ (round(k*x) / k) + b``
  (the "rounding net": what the sum of herding spikes reconstructs exactly);
* weight layer with threshold quantizer: ``sent = x where |x - sent| >= thr``
  (per neuron, kept across frames), then ``z = W @ sent + b``;
* activations, pooling, flatten, add and concat as in PyTorch.

With a fine scale (or a small threshold) it approaches the float ANN.
"""

from __future__ import annotations

from collections.abc import Iterable

import numpy as np
import torch
import torch.nn.functional as F
from tqdm.auto import tqdm

from . import graph as g
from .engine import iter_checked
from .fixedpoint import AccumulatorOverflowError, integer_weights

__all__ = ["reference", "Reference", "dense_node"]


def _quantize(node: g.Dense | g.Conv, x: torch.Tensor, sent: torch.Tensor | None):
    if node.quantizer == "herding":
        k = torch.as_tensor(np.asarray(node.scale, np.float64))
        return torch.round(k * x) / k, sent
    if sent is None:
        sent = torch.zeros_like(x)
    d = x - sent
    send = (d != 0) & (d.abs() >= node.threshold)
    sent = torch.where(send, x, sent)
    return sent, sent


class Reference:
    """Stateful dense evaluation of a :class:`~sigmadelta.graph.Network`, frame by frame."""

    def __init__(self, net: g.Network):
        self.net = net
        self._w = {}
        for i, n in enumerate(net.nodes):
            if isinstance(n, (g.Dense, g.Conv)):
                w = integer_weights(n) if n.weight_bits else n.weight
                self._w[i] = (torch.from_numpy(np.asarray(w, np.float64)),
                              torch.from_numpy(np.asarray(n.bias, np.float64)))
        self.reset()

    def reset(self) -> None:
        """Forget the threshold quantizers' memory (herding is memoryless here)."""
        self._sent: dict[int, torch.Tensor | None] = {i: None for i in self._w}

    def step(self, frame: np.ndarray) -> np.ndarray:
        """One frame ``[*input_shape]`` -> output ``[*output_shape]`` (float64).

        Every node's value of that frame stays in ``self.values`` (batch of one).
        """
        vals: list[torch.Tensor] = []
        for i, n in enumerate(self.net.nodes):
            ins = [vals[j] for j in n.inputs]
            if isinstance(n, g.Input):
                v = torch.from_numpy(np.asarray(frame, np.float64))[None]
            elif i in self._w and n.weight_bits:
                v = _integer_layer(n, ins[0], *self._w[i])
            elif i in self._w:
                xq, self._sent[i] = _quantize(n, ins[0], self._sent[i])
                v = _weighted(n, xq, *self._w[i])
            else:
                v = _apply(n, ins)
            vals.append(v)
        self.values = vals
        return vals[self.net.output][0].numpy()



def _weighted(n, x, w, b):
    if isinstance(n, g.Dense):
        return F.linear(x, w, b)
    return F.conv2d(x, w, b, stride=n.stride, padding=n.padding, dilation=n.dilation, groups=n.groups)


def _integer_layer(n, x, w_int, b):
    """Fixed point: ``acc = W_int @ round(k*x)`` (exact integers), ``z = acc*delta/k + b``."""
    acc = _weighted(n, torch.round(n.scale * x), w_int, None)
    limit = 2 ** (n.acc_bits - 1) - 1
    if acc.numel() and (acc.max() > limit or acc.min() < -limit - 1):
        raise AccumulatorOverflowError(
            f"layer {n.name!r}: accumulator outside the signed {n.acc_bits}-bit range (dense reference)")
    return acc * (n.weight_scale / n.scale) + b.reshape((-1,) + (1,) * (acc.ndim - 2))


def dense_node(n: g.Node, ins: list[torch.Tensor], weight: torch.Tensor | None = None,
               bias: torch.Tensor | None = None) -> torch.Tensor:
    """Dense PyTorch evaluation of one node on batched inputs (NCHW / NC).

    Weight layers use ``weight`` and ``bias`` as given (no input quantization);
    every other node kind is computed as PyTorch computes it.
    """
    if isinstance(n, (g.Dense, g.Conv)):
        return _weighted(n, ins[0], weight, bias)
    return _apply(n, ins)


def _apply(n: g.Node, ins: list[torch.Tensor]) -> torch.Tensor:
    x = ins[0]
    if isinstance(n, g.Activation):
        if n.fn == "relu":
            return F.relu(x)
        if n.fn == "leaky":
            return F.leaky_relu(x, n.alpha)
        if n.fn == "clip":
            return x.clamp(n.lo, n.hi)
        return x
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
    raise TypeError(f"reference cannot evaluate node {n.name!r} of kind {n.kind!r}")


def reference(net: g.Network, frames: Iterable, progress: bool | None = None) -> np.ndarray:
    """Dense outputs ``[T, *output_shape]`` of the quantized network on a stream."""
    ref = Reference(net)
    with torch.no_grad():
        outs = [ref.step(f) for f in tqdm(iter_checked(frames, net.input_shape), desc="reference",
                                          disable=None if progress is None else not progress)]
    return np.stack(outs)
