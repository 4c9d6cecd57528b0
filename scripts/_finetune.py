"""Quantisation-aware fine-tuning of a pruned network (``scripts/compress.py --finetune-epochs``).

After pruning, the exported network's kept weights are trained further on the training
digits with the group structure fixed and the weights rounded in every forward pass to
the grid of the bits the posterior variance gave each layer (straight-through gradient)::

    w_q = Delta * round(m * w / Delta),   Delta = max|m * w| / (2^(b-1) - 1)
    dL/dw = m * dL/dw_q

where ``m`` is 1 for a kept weight and 0 for a pruned one (pruned weights stay exactly
zero).  At the end the weights are stored on that grid (``compress.quantize_fixed``)
and the report's nonzero counts and grid steps are recomputed; bits, thresholds and
architecture are unchanged.
"""

from __future__ import annotations

import dataclasses

import torch
from torch import Tensor, nn
from torch.nn.utils import parametrize

from sigmadelta import compress

__all__ = ["FixedPointSTE", "finetune_quantized"]


class FixedPointSTE(nn.Module):
    """Weight parametrisation: masked, rounded to a ``bits``-bit symmetric grid (STE)."""

    def __init__(self, mask: Tensor, bits: int) -> None:
        super().__init__()
        self.register_buffer("mask", mask.to(torch.float32))
        self.bits = int(bits)

    def forward(self, w: Tensor) -> Tensor:
        wm = w * self.mask
        wq, _ = compress.quantize_fixed(wm.detach(), self.bits)
        return wm + (wq - wm).detach()


def _weight_layers(model: nn.Module) -> dict[str, nn.Module]:
    return {n: m for n, m in model.named_modules() if isinstance(m, nn.Linear | nn.Conv2d)}


def finetune_quantized(small: nn.Module, report: compress.CompressionReport, x: Tensor,
                       y: Tensor, epochs: int, lr: float, batch_size: int, seed: int
                       ) -> tuple[nn.Module, compress.CompressionReport]:
    """Fine-tune ``small`` (pruned, unquantised export) at ``report.bits``; see module doc.

    Returns the network with weights on each layer's grid and the updated report.

    Raises
    ------
    ValueError
        If the network's weight layers are not the report's layers.
    """
    layers = _weight_layers(small)
    if list(layers) != report.layer_names:
        raise ValueError(f"finetune: layers {list(layers)} are not the report's "
                         f"{report.layer_names}")
    for name, layer in layers.items():
        ste = FixedPointSTE(layer.weight.detach().ne(0), report.bits[name])
        parametrize.register_parametrization(layer, "weight", ste)
    compress.train(small, x, y, epochs=epochs, lr=lr, batch_size=batch_size, seed=seed,
                   kl_weight=0.0, progress=True)
    steps, kept = {}, []
    with torch.no_grad():
        for name, layer in layers.items():
            mask = layer.parametrizations.weight[0].mask
            parametrize.remove_parametrizations(layer, "weight", leave_parametrized=False)
            wq, steps[name] = compress.quantize_fixed(layer.weight * mask, report.bits[name])
            layer.weight.copy_(wq)
            kept.append(int(wq.ne(0).sum()))
    new = dataclasses.replace(report, nonzero_per_layer=kept, n_nonzero=sum(kept), steps=steps)
    return small.eval(), new
