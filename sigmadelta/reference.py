"""The dense reference: the same quantized network, computed densely without events.

Every frame, every neuron of every node is computed with PyTorch (float64, the
ordinary NCHW layout), independently of the event code:

* weight layer with herding input quantizer: ``z = W @ (round(k*x) / k) + b``
  (the "rounding net": what the sum of herding spikes reconstructs exactly);
* weight layer with threshold quantizer: ``sent = x where |x - sent| >= thr``
  (per neuron, kept across frames), then ``z = W @ sent + b``;
* weight layer with the ``"lava"`` quantizer (networks from :func:`sigmadelta.load_netx`):
  ``a = k*x``; where ``|a - sent| >= thr``: ``x_hat += floor((a - sent) / 2**6)``,
  ``sent = a``; then ``z = W @ x_hat + b`` (integers, exact in float64);
* activations, pooling, flatten, add and concat as in PyTorch.

Timing: with ``timing="frame"`` (the default) every node sees its inputs of the same frame;
with ``timing="pipelined"`` (Loihi's) every weight layer quantizes what its input node held
at the previous step (zeros before the first), so a change needs one step per weight layer
to reach the output, while biases act from the first step; all other nodes act within the
step.

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
from .dense import dense_node, evaluate, layer_weights, weighted
from .frames import iter_checked
from .numeric import NumericOverflowError
from .torchlimit import DEFAULT_TORCH_THREADS, check_torch_threads, torch_limit

__all__ = ["reference", "Reference", "dense_node"]

_CONV_MESSAGE_BITS = 24  # Lava's fixed-point Conv wraps each step's output to signed 24 bits


def _lava_quantize(node, x: torch.Tensor, state):
    """Lava's delta encoding; ``state = (sent, x_hat)``; also returns this step's spikes."""
    if state is None:
        state = (torch.zeros_like(x), torch.zeros_like(x))
    sent, x_hat = state
    a = node.scale * x
    d = a - sent
    send = (d != 0) & (d.abs() >= node.threshold)
    s = torch.where(send, torch.floor(d / 2 ** g.LAVA_SHIFT), torch.zeros_like(d))
    return x_hat + s, (torch.where(send, a, sent), x_hat + s), s


def _check_lava_step(n, s: torch.Tensor, w: torch.Tensor) -> None:
    """Refuse a step where Lava's Conv would wrap its 24-bit output (not modelled here)."""
    if isinstance(n, g.Conv) and s.abs().max() > 0:
        dz = weighted(n, s, w, None)
        if dz.abs().max() >= 2 ** (_CONV_MESSAGE_BITS - 1):
            raise NumericOverflowError(f"layer {n.name!r}: one step's conv output leaves Lava's "
                                       f"signed {_CONV_MESSAGE_BITS}-bit message range (Lava would "
                                       "wrap it)")


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
    """Stateful dense evaluation of a :class:`~sigmadelta.graph.Network`, frame by frame
    (each :meth:`step` on ``torch_threads`` intra-op threads, see :func:`reference`)."""

    def __init__(self, net: g.Network, timing: str = "frame",
                 torch_threads: int | None = DEFAULT_TORCH_THREADS):
        self.net = net
        self.timing = g.check_timing(timing)
        self.torch_threads = check_torch_threads(torch_threads)
        if self.timing == "pipelined" and any(n.weight_bits for n in net.weight_layers):
            raise NotImplementedError("timing='pipelined' in the dense reference: fixed-point "
                                      "(weight_bits) layers are not delayed yet")
        self._w = layer_weights(net, torch.float64, fixed_point=True)
        self.reset()

    def reset(self) -> None:
        """Forget the quantizers' memory (herding is memoryless here) and the pipeline."""
        self._sent: list = [None] * len(self._w)
        self._prev_in: list[torch.Tensor | None] = [None] * len(self._w)

    def _quantize(self, j: int, node: g.Dense | g.Conv, x: torch.Tensor) -> torch.Tensor:
        if self.timing == "pipelined":  # the input node's value one step earlier (zeros first)
            x, self._prev_in[j] = (torch.zeros_like(x) if self._prev_in[j] is None
                                   else self._prev_in[j]), x
        if node.quantizer == "lava":
            xq, self._sent[j], s = _lava_quantize(node, x, self._sent[j])
            _check_lava_step(node, s, self._w[j][0])
            return xq
        xq, self._sent[j] = _quantize(node, x, self._sent[j])
        return xq

    def step(self, frame: np.ndarray) -> np.ndarray:
        """One frame ``[*input_shape]`` -> output ``[*output_shape]`` (float64).

        Every node's value of that frame stays in ``self.values`` (batch of one).
        """
        x = torch.from_numpy(np.asarray(frame, np.float64))[None]
        self.values = evaluate(self.net, x, self._quantize, self._w, fixed_point=True, keep=True,
                               torch_threads=self.torch_threads)
        return self.values[self.net.output][0].numpy()


def reference(net: g.Network, frames: Iterable, progress: bool | None = None,
              timing: str = "frame", torch_threads: int | None = DEFAULT_TORCH_THREADS) -> np.ndarray:
    """Dense outputs ``[T, *output_shape]`` of the quantized network on a stream.

    ``timing`` is ``"frame"`` or ``"pipelined"`` (see the module docstring). torch runs on
    ``torch_threads`` intra-op threads (:mod:`sigmadelta.torchlimit`; default 1: a batch of
    one frame gains nothing from more; None leaves torch alone), restored afterwards.
    """
    ref = Reference(net, timing, torch_threads)
    with torch.no_grad(), torch_limit(torch_threads):  # one setting for all steps
        outs = [ref.step(f) for f in tqdm(iter_checked(frames, net.input_shape), desc="reference",
                                          disable=None if progress is None else not progress)]
    return np.stack(outs)
