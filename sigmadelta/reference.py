"""The dense reference: the same quantized network, computed densely without events.

Every frame, every neuron of every node is computed with PyTorch (float64, the
ordinary NCHW layout), independently of the event code:

* weight layer with herding input quantizer: ``z = W @ (round(k*x) / k) + b``
  (the "rounding net": what the sum of herding spikes reconstructs exactly);
* weight layer with threshold quantizer: ``sent = x where |x - sent| >= thr``
  (per neuron, kept across frames), then ``z = W @ sent + b``;
* activations, pooling, flatten, add and concat as in PyTorch.

With a fine scale (or a small threshold) it approaches the float ANN. The walk
over the nodes is :func:`sigmadelta.dense.evaluate`; this module adds the
quantizers' state.
"""

from __future__ import annotations

from collections.abc import Iterable

import numpy as np
import torch
from tqdm.auto import tqdm

from . import graph as g
from .dense import dense_node, evaluate, layer_weights
from .frames import iter_checked

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
        self._w = layer_weights(net, torch.float64, fixed_point=True)
        self.reset()

    def reset(self) -> None:
        """Forget the threshold quantizers' memory (herding is memoryless here)."""
        self._sent: list[torch.Tensor | None] = [None] * len(self._w)

    def _quantize(self, j: int, node: g.Dense | g.Conv, x: torch.Tensor) -> torch.Tensor:
        xq, self._sent[j] = _quantize(node, x, self._sent[j])
        return xq

    def step(self, frame: np.ndarray) -> np.ndarray:
        """One frame ``[*input_shape]`` -> output ``[*output_shape]`` (float64).

        Every node's value of that frame stays in ``self.values`` (batch of one).
        """
        x = torch.from_numpy(np.asarray(frame, np.float64))[None]
        self.values = evaluate(self.net, x, self._quantize, self._w, fixed_point=True, keep=True)
        return self.values[self.net.output][0].numpy()


def reference(net: g.Network, frames: Iterable, progress: bool | None = None) -> np.ndarray:
    """Dense outputs ``[T, *output_shape]`` of the quantized network on a stream."""
    ref = Reference(net)
    with torch.no_grad():
        outs = [ref.step(f) for f in tqdm(iter_checked(frames, net.input_shape), desc="reference",
                                          disable=None if progress is None else not progress)]
    return np.stack(outs)
