"""The rounding net: a differentiable surrogate of a sigma-delta network and its cost.

Used by :mod:`sigmadelta.scales` to choose the scales (see there for the objective).

The rounding net
----------------
:class:`RoundingNet` walks the converted graph in torch. At every weight-layer
input ``a`` (a window of consecutive frames ``a_0 .. a_{W-1}``) it applies the
quantizer with the *rounding noise held constant* (straight-through):

* herding: ``e = round(k a) - k a`` (in quanta, detached), ``x_hat = a + e / k``
  (so ``x_hat == round(k a) / k`` in value, ``d x_hat / d a = 1`` and
  ``d x_hat / d k = -e / k^2``: the noise shrinks as ``1/k``);
* threshold (frame pair ``(t-1, t)``, assuming ``a_{t-1}`` was sent):
  ``d = a_t - a_{t-1}``, ``r = -d [|d| < theta]`` (the unsent change),
  ``e = r / theta`` (detached), ``x_hat_t = a_t + theta e``.

Cost surrogates (per input neuron ``i`` with exact in-bounds fan-out ``F_i``,
:func:`sigmadelta.layout.fan_out`, the counts the simulator uses; ``Delta a = a_t - a_{t-1}``)

* herding, ``cost="soft"`` (default): ``S = sum_i (1 - exp(-k |Delta a_i|)) F_i``, a smooth
  event probability: ``~ k |Delta a|`` for small changes and ``-> 1`` (one event) for large
  ones, with a gradient everywhere, so that scales whose every change already spikes
  (saturated) can still come down;
* herding, ``cost="synops"``: with the herding residual uniform in ``[-1/2, 1/2)``, a
  neuron emits a (nonzero) spike with probability ``min(1, k |Delta a|)``:
  ``S = sum_i min(1, k |Delta a_i|) F_i`` (exact in expectation, but flat when saturated);
* herding, ``cost="additions"`` (the paper's): the spikes sum to
  ``|s| ~ k |Delta a|``: ``S = sum_i k |Delta a_i| F_i`` (the ``additions`` counter);
* threshold: ``S = sum_i sigmoid((|Delta a_i| - theta) / (tau theta)) F_i``,
  a smooth event indicator of relative temperature ``tau`` (default 0.1).

Frame-pair surrogates ignore the herding residual's and the threshold carry-over's
memory; measure the result with :func:`sigmadelta.simulate`, the real event count.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from . import graph as g
from .dense import evaluate, layer_weights
from .layout import fan_out as _fan_out_cl
from .layout import to_torch_layout

__all__ = ["RoundingNet", "fan_out", "LOSSES", "PER", "COSTS"]

LOSSES = ("kl", "l2", "l1")
PER = ("layer", "unit")
COSTS = ("synops", "soft", "additions")


def fan_out(node: g.Dense | g.Conv, in_shape: Sequence[int]) -> torch.Tensor:
    """In-bounds fan-out of every input neuron of a weight layer (PyTorch layout, float64).

    The number of (output pixel, output channel) pairs whose window holds the input
    neuron in bounds (dense: ``n_out``): :func:`sigmadelta.layout.fan_out`, the count
    the simulator's synops use, laid out as the layer's input.
    """
    shape = tuple(int(s) for s in in_shape)
    return torch.from_numpy(np.ascontiguousarray(to_torch_layout(_fan_out_cl(node, shape), shape)))


class RoundingNet(nn.Module):
    """Differentiable surrogate of a converted network (see the module docstring).

    Parameters
    ----------
    net : Network
        From :func:`sigmadelta.convert`; its weights are copied, its scales ignored.
    quantizer : {"herding", "threshold"}
        Which quantizer the trainable values ``exp(log_q)`` are: scales ``k`` or thresholds.
    per : {"layer", "unit"}
        One value per weight layer, or one per input neuron (shape of the layer's input).
    init : list
        Initial value of each weight layer (a float, or an array of its input shape).
    cost : {"soft", "synops", "additions"}
        Herding cost surrogate; ignored by the threshold quantizer.
    temperature : float
        Relative temperature ``tau`` of the threshold event sigmoid.
    """

    def __init__(self, net: g.Network, quantizer: str = "herding", per: str = "layer",
                 init: Sequence | None = None, cost: str = "soft", temperature: float = 0.1,
                 dtype: torch.dtype = torch.float32):
        super().__init__()
        _check_choice(quantizer, g.QUANTIZERS, "quantizer")
        _check_choice(per, PER, "per")
        _check_choice(cost, COSTS, "cost")
        self.net, self.quantizer, self.per, self.cost = net, quantizer, per, cost
        self.temperature, self.dtype = float(temperature), dtype
        layers = net.weight_layers
        self.names = [n.name for n in layers]
        self.in_shapes = [net.nodes[n.inputs[0]].shape for n in layers]
        self.fanouts = [fan_out(n, s).to(dtype) for n, s in zip(layers, self.in_shapes, strict=True)]
        #: ``(W, b)`` of every weight layer in ``dtype`` (float weights, also in fixed point)
        self.weights = layer_weights(net, dtype)
        self.dense_macs = float(net.dense_macs().sum())
        init = [1.0] * len(layers) if init is None else list(init)
        logs = []
        for v, shape in zip(init, self.in_shapes, strict=True):
            v = np.broadcast_to(np.asarray(v, np.float64), shape if per == "unit" else np.shape(v))
            if per == "layer" and v.size != 1:
                raise ValueError(f'per="layer" needs one value per layer, got shape {v.shape}')
            logs.append(nn.Parameter(torch.log(torch.as_tensor(np.array(v).reshape(
                shape if per == "unit" else ()), dtype=dtype))))
        self.log_q = nn.ParameterList(logs)
        #: ``(e, c)`` of the last forward per layer: rounding noise and value correction
        self.last_noise: list[tuple[torch.Tensor, torch.Tensor] | None] = [None] * len(layers)
        #: if set (e.g. ``list(rn.last_noise)``), used instead of recomputing ``(e, c)``: the
        #: surrogate with the rounding noise frozen, a smooth function of the log values
        self.frozen_noise: list[tuple[torch.Tensor, torch.Tensor]] | None = None

    def values(self) -> dict[str, float | np.ndarray]:
        """Current scales (herding) or thresholds, by layer name."""
        out: dict[str, float | np.ndarray] = {}
        for name, lq in zip(self.names, self.log_q, strict=True):
            v = torch.exp(lq).detach().double().numpy()
            out[name] = float(v) if self.per == "layer" else v.copy()
        return out

    def forward(self, frames: torch.Tensor, quantize: bool = True) -> tuple[torch.Tensor, torch.Tensor]:
        """Run a window of consecutive frames ``[W, *input_shape]``.

        Returns the outputs ``[W, *output_shape]`` and the surrogate synops per frame
        of every weight layer ``[L]`` (zeros when ``quantize`` is False: the float ANN).
        """
        costs: list[torch.Tensor] = []

        def quantizer(j: int, node: g.Node, a: torch.Tensor) -> torch.Tensor:
            x, c = self._quantize(j, a)
            costs.append(c)
            return x

        y = evaluate(self.net, frames.to(self.dtype), quantizer if quantize else None, self.weights,
                     torch_threads=None)  # the caller (sigmadelta.scales) holds the limit
        cost = torch.stack(costs) if costs else torch.zeros(len(self.names), dtype=self.dtype)
        return y, cost

    def _quantize(self, j: int, a: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """``x_hat = s + c``: ``s`` the surrogate (noise ``e`` constant) and ``c = v - s``
        (detached), a float-rounding-sized correction that makes the value exactly the
        quantizer's ``v``, so that a level shared by two frames gives exactly zero change."""
        q = torch.exp(self.log_q[j])
        fan, pairs = self.fanouts[j], max(a.shape[0] - 1, 1)
        da = a[1:] - a[:-1]
        frozen = self.frozen_noise[j] if self.frozen_noise is not None else None
        with torch.no_grad():
            if frozen is not None:
                e = frozen[0]
            elif self.quantizer == "herding":
                r = torch.round(q * a)
                e, v = r - q * a, r / q
            else:
                keep = da.abs() < q
                e = torch.where(keep, -da, torch.zeros_like(da)) / q
                v = torch.cat([a[:1], torch.where(keep, a[:-1], a[1:])])
        if self.quantizer == "herding":
            s = a + e / q
            rate = q * da.abs()
            events = {"synops": lambda: rate.clamp(max=1.0), "soft": lambda: 1 - torch.exp(-rate),
                      "additions": lambda: rate}[self.cost]()
        else:
            s = torch.cat([a[:1], a[1:] + q * e])
            events = torch.sigmoid((da.abs() - q) / (self.temperature * q))
        c = frozen[1] if frozen is not None else (v - s).detach()
        self.last_noise[j] = (e, c)
        return s + c, (events * fan).sum() / pairs

    def objective(self, frames: torch.Tensor, ref: torch.Tensor, lam: float, loss: str = "kl",
                  norm: float = 1.0) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """``(J, E, S/M)`` of a window; ``ref`` = float-ANN outputs of the same frames.

        The error is taken on frames ``1..W-1`` (frame 0 only opens the first pair).
        """
        y, c = self(frames)
        err = _error(y[1:], ref[1:], loss, norm)
        share = c.sum() / self.dense_macs
        return err + lam * share, err, share



def _check_choice(value, choices, what: str) -> None:
    if value not in choices:
        raise ValueError(f"{what} must be one of {tuple(choices)}, got {value!r}")



def _error(y: torch.Tensor, ref: torch.Tensor, loss: str, norm: float) -> torch.Tensor:
    """Unitless output error of a window (see module docstring); ``norm`` from the whole stream."""
    if loss == "kl":
        logp = F.log_softmax(ref, dim=1)
        return (logp.exp() * (logp - F.log_softmax(y, dim=1))).sum(1).mean()
    if loss == "l2":
        return ((y - ref) ** 2).mean() / norm
    return (y - ref).abs().mean() / norm
