"""Per-layer bit precision from the posterior variance, and the compression report.

Bit rule (paper section 4, fixed-point variant)
-----------------------------------------------
For each layer take the marginal posterior variance of the kept weights
``Var[w] = E[z^2](theta^2 + sigma^2) - E[z]^2 theta^2`` and its reference standard
deviation ``s_ref = sqrt(min Var)`` (``rule="min"``, conservative, default) or
``sqrt(mean Var)`` (``rule="mean"``).  The relative unit round-off is
``u = s_ref / max|w|``.  A symmetric fixed-point grid with ``b`` bits has step
``Delta = max|w| / (2^(b-1) - 1)`` and rounding error ``|e| <= Delta / 2``; we
require ``Delta / 2 <= s_ref``, i.e.::

    b = 1 + ceil(log2(1 / (2 u) + 1)),   clipped to [2, 23]

and store ``w_q = Delta * round(w / Delta)`` (biases are left in float32).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np
import torch
from torch import Tensor, nn

from .prune import export_plain, plan_pruning, sliced_weight

__all__ = ["CompressionReport", "bits_from_variance", "prune_and_quantize", "quantize_fixed"]

MIN_BITS, MAX_BITS = 2, 23


def bits_from_variance(weight: Tensor, variance: Tensor, rule: str = "min") -> int:
    """Bits of the symmetric fixed-point format for ``weight`` (see module doc).

    ``variance`` holds the marginal variances of the kept (nonzero) weights.
    """
    wmax = float(weight.abs().max()) if weight.numel() else 0.0
    if wmax == 0.0 or variance.numel() == 0:
        return MIN_BITS
    if rule == "min":
        s_ref = math.sqrt(max(float(variance.min()), 0.0))
    elif rule == "mean":
        s_ref = math.sqrt(max(float(variance.mean()), 0.0))
    else:
        raise ValueError(f"unknown bits rule {rule!r}; expected 'min' or 'mean'")
    if s_ref <= 0.0:
        return MAX_BITS
    bits = 1 + math.ceil(math.log2(wmax / (2.0 * s_ref) + 1.0))
    return int(min(MAX_BITS, max(MIN_BITS, bits)))


def quantize_fixed(weight: Tensor, bits: int) -> tuple[Tensor, float]:
    """Round ``weight`` to ``Delta * k``, ``|k| <= 2^(bits-1) - 1``; returns ``(w_q, Delta)``."""
    wmax = float(weight.abs().max()) if weight.numel() else 0.0
    if wmax == 0.0:
        return weight.clone(), 0.0
    delta = wmax / (2 ** (bits - 1) - 1)
    return torch.round(weight / delta) * delta, delta


@dataclass
class CompressionReport:
    """Summary of :func:`prune_and_quantize`.

    Attributes
    ----------
    layer_names : weight-layer module paths in the exported model ("0", "features.0", ...)
    architecture, original_architecture : unit counts, first entry = inputs of the first
        layer (physically kept), then each layer's outputs (neurons or channels)
    inputs_used : inputs of the first layer with at least one nonzero weight
    bits, bits_list : bits per layer (dict by name, list in layer order)
    n_weights, n_nonzero : total original weights, nonzero weights after export
    compression_architecture : ``n_weights / n_nonzero``
    compression_precision : ``32 n_weights / sum_l nonzero_l * bits_l``
    log_alpha, thresholds, steps : per-layer log alphas, thresholds and grid steps
    """

    layer_names: list[str]
    architecture: list[int]
    original_architecture: list[int]
    inputs_used: int
    bits: dict[str, int]
    n_weights: int
    n_nonzero: int
    nonzero_per_layer: list[int]
    weights_per_layer: list[int]
    log_alpha: dict[str, np.ndarray] = field(repr=False, default_factory=dict)
    thresholds: dict[str, float] = field(default_factory=dict)
    steps: dict[str, float] = field(default_factory=dict)

    @property
    def bits_list(self) -> list[int]:
        return [self.bits[n] for n in self.layer_names]

    @property
    def architecture_str(self) -> str:
        return "-".join(str(a) for a in self.architecture)

    @property
    def compression_architecture(self) -> float:
        return self.n_weights / max(1, self.n_nonzero)

    @property
    def compression_precision(self) -> float:
        bits = sum(n * b for n, b in zip(self.nonzero_per_layer, self.bits_list, strict=True))
        return 32.0 * self.n_weights / max(1, bits)

    def table(self) -> str:
        """Human-readable per-layer table plus totals."""
        rows = [f"{'layer':<14}{'kept/groups':>14}{'nonzero/weights':>20}{'bits':>6}{'t':>7}"]
        for i, n in enumerate(self.layer_names):
            la = self.log_alpha[n]
            kept = int((la < self.thresholds[n]).sum())
            rows.append(f"{n:<14}{f'{kept}/{la.size}':>14}"
                        f"{f'{self.nonzero_per_layer[i]}/{self.weights_per_layer[i]}':>20}"
                        f"{self.bits[n]:>6}{self.thresholds[n]:>7.2f}")
        orig = "-".join(str(a) for a in self.original_architecture)
        rows.append(f"architecture {orig} -> {self.architecture_str} "
                    f"(inputs used {self.inputs_used})")
        rows.append(f"weights {self.n_nonzero}/{self.n_weights} "
                    f"({100.0 * self.n_nonzero / max(1, self.n_weights):.2f}%), "
                    f"|W|/|W!=0| = {self.compression_architecture:.1f}x, "
                    f"bit compression = {self.compression_precision:.1f}x")
        return "\n".join(rows)


def prune_and_quantize(bmodel: nn.Module, thresholds: float | list | dict | None = None,
                       quantize: bool = True, bits_rule: str = "min"
                       ) -> tuple[nn.Module, CompressionReport]:
    """Prune groups with ``log alpha >= t``, export a plain model and round its weights.

    Parameters
    ----------
    bmodel : nn.Sequential
        Bayesianized model (nested ``nn.Sequential`` allowed); it is not modified.
    thresholds : float, list, dict or None
        Keep a group iff ``log alpha < t``.  One value, one per weight layer, or a dict
        by layer name; ``None``/missing names use ``DEFAULT_THRESHOLDS[prior]``
        (GNJ -1, GHS -0.25).
    quantize : bool
        Round weights to the per-layer fixed-point grid (see module doc).
    bits_rule : {"min", "mean"}
        Reference posterior variance for the bit rule.

    Returns
    -------
    small : nn.Sequential of plain ``nn.Linear``/``nn.Conv2d`` (eval mode) with the same
        module paths as ``bmodel``; report : :class:`CompressionReport`.
    """
    plans = plan_pruning(bmodel, thresholds)
    weights, bits, steps = [], {}, {}
    for p in plans:
        w = sliced_weight(p)
        var = sliced_weight(p, p.variance)[w != 0]
        bits[p.name] = bits_from_variance(w, var, bits_rule) if var.numel() else MIN_BITS
        if quantize:
            w, steps[p.name] = quantize_fixed(w, bits[p.name])
        weights.append(w)
    small = export_plain(bmodel, plans, weights)
    first = weights[0]
    used = first.transpose(0, 1).flatten(1).ne(0).any(dim=1)
    report = CompressionReport(
        layer_names=[p.name for p in plans],
        architecture=[int(first.shape[1])] + [int(w.shape[0]) for w in weights],
        original_architecture=[int(plans[0].weight.shape[1])]
        + [int(p.weight.shape[0]) for p in plans],
        inputs_used=int(used.sum()),
        bits=bits,
        n_weights=sum(p.weight.numel() for p in plans),
        n_nonzero=sum(int((w != 0).sum()) for w in weights),
        nonzero_per_layer=[int((w != 0).sum()) for w in weights],
        weights_per_layer=[p.weight.numel() for p in plans],
        log_alpha={p.name: p.log_alpha.cpu().numpy() for p in plans},
        thresholds={p.name: p.threshold for p in plans},
        steps=steps,
    )
    return small, report
