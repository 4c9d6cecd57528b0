"""Group pruning and physical export of a Bayesian-compressed ``nn.Sequential``.

A group ``g`` is kept iff ``log alpha_g < t`` (per-layer threshold ``t``,
default :data:`DEFAULT_THRESHOLDS` by prior: GNJ -1; GHS -0.25 because the GHS
``log alpha = log expm1(v)`` is bounded above by the prior-matching log-variance,
about 0.6, and was calibrated separately on digits).  The masked model (pruned ``z_g = 0``,
eval mode) is then exported to plain ``nn.Linear``/``nn.Conv2d`` layers with
posterior-mean weights ``E[z] * theta``.  Units are removed physically when it
is exact to do so, iterating to a fixed point between consecutive weight layers
``k -> k+1``:

* *unused*: all outgoing weights of unit ``j`` of layer ``k`` (its column, its
  channel slice, or its block of flattened columns in layer ``k+1``) are zero;
* *dead*: unit ``j`` of layer ``k`` outputs exactly zero (zero weight row and
  bias, e.g. a pruned conv channel) and every module in between maps 0 to 0
  (ReLU, pooling, dropout, flatten, ...; not BatchNorm or Sigmoid).

Removing a unit also slices any BatchNorm in between and the next layer's
input.  Inputs of the first weight layer are never removed (pruned input
columns stay as zeros) and outputs of the last one are always kept.
"""

from __future__ import annotations

import copy
import warnings
from dataclasses import dataclass

import torch
from torch import Tensor, nn

from .layers import BayesConv2d, BayesLinear, _BayesGroupLayer

__all__ = [
    "DEFAULT_THRESHOLD",
    "DEFAULT_THRESHOLDS",
    "LayerPlan",
    "export_plain",
    "masked_copy",
    "plan_pruning",
    "resolve_thresholds",
    "sliced_weight",
]

DEFAULT_THRESHOLD = -1.0
DEFAULT_THRESHOLDS = {"gnj": DEFAULT_THRESHOLD, "ghs": -0.25}

_ZERO_PRESERVING = (
    nn.ReLU, nn.ReLU6, nn.LeakyReLU, nn.ELU, nn.GELU, nn.SiLU, nn.Tanh, nn.Hardtanh,
    nn.Softsign, nn.Identity, nn.Dropout, nn.Dropout2d, nn.MaxPool2d, nn.AvgPool2d,
    nn.AdaptiveAvgPool2d, nn.AdaptiveMaxPool2d, nn.Flatten,
)
_PER_CHANNEL = (nn.BatchNorm1d, nn.BatchNorm2d, nn.Sigmoid, nn.Softplus)
_TAIL_ONLY = (nn.Softmax, nn.LogSoftmax)


@dataclass
class LayerPlan:
    """Pruning decisions for one weight layer (tensors in the Bayesian layer's indexing)."""

    name: str
    layer: _BayesGroupLayer
    weight: Tensor  # masked posterior-mean weight, removed units zeroed
    bias: Tensor | None
    variance: Tensor  # marginal posterior variance of each weight
    keep_groups: Tensor  # bool per group
    log_alpha: Tensor
    threshold: float
    keep_out: Tensor  # bool per output unit
    keep_in: Tensor  # bool per input column / channel
    between: list[tuple[str, nn.Module]]  # modules after this layer, before the next one


def _chain(model: nn.Module, prefix: str = "") -> list[tuple[str, nn.Module]]:
    """Flatten nested ``nn.Sequential`` containers into ``(dotted name, leaf)`` pairs."""
    out: list[tuple[str, nn.Module]] = []
    for name, mod in model.named_children():
        full = f"{prefix}{name}"
        if isinstance(mod, nn.Sequential):
            out.extend(_chain(mod, full + "."))
        elif isinstance(mod, (_BayesGroupLayer, *_ZERO_PRESERVING, *_PER_CHANNEL, *_TAIL_ONLY)):
            out.append((full, mod))
        else:
            raise TypeError(
                f"prune_and_quantize: unsupported module '{full}' ({type(mod).__name__}); "
                "supported are nn.Sequential chains of BayesLinear/BayesConv2d, activations, "
                "pooling, Dropout, BatchNorm and Flatten")
    return out


def resolve_thresholds(names: list[str], thresholds: float | list | dict | None,
                       priors: list[str] | None = None) -> list[float]:
    """Per-layer thresholds from ``None`` (default by prior), a float, a list or a dict."""
    priors = ["gnj"] * len(names) if priors is None else priors
    defaults = [DEFAULT_THRESHOLDS.get(p, DEFAULT_THRESHOLD) for p in priors]
    if thresholds is None:
        return defaults
    if isinstance(thresholds, int | float):
        return [float(thresholds)] * len(names)
    if isinstance(thresholds, dict):
        unknown = set(thresholds) - set(names)
        if unknown:
            raise KeyError(f"thresholds for unknown layers {sorted(unknown)}; layers: {names}")
        return [float(thresholds.get(n, d)) for n, d in zip(names, defaults, strict=True)]
    thr = [float(t) for t in thresholds]
    if len(thr) != len(names):
        raise ValueError(f"{len(thr)} thresholds for {len(names)} weight layers {names}")
    return thr


def masked_copy(bmodel: nn.Module, thresholds: float | list | dict | None = None) -> nn.Module:
    """Deep copy of ``bmodel`` in eval mode with groups ``log alpha >= t`` masked to zero."""
    model = copy.deepcopy(bmodel).eval()
    layers = [(n, m) for n, m in model.named_modules() if isinstance(m, _BayesGroupLayer)]
    thr = resolve_thresholds([n for n, _ in layers], thresholds, [m.prior for _, m in layers])
    with torch.no_grad():
        for (_, layer), t in zip(layers, thr, strict=True):
            layer.group_mask.mul_((layer.log_alpha() < t).to(layer.group_mask.dtype))
    return model


def _check_between(prev: LayerPlan, nxt: _BayesGroupLayer) -> int:
    """Validate the modules between two weight layers; return columns per unit (flatten)."""
    flat = any(isinstance(m, nn.Flatten) for _, m in prev.between)
    bad = [n for n, m in prev.between if isinstance(m, _TAIL_ONLY)]
    if bad:
        raise TypeError(f"prune_and_quantize: module '{bad[0]}' mixes units between layers")
    n_out = prev.weight.shape[0]
    if isinstance(nxt, BayesConv2d):
        if not isinstance(prev.layer, BayesConv2d) or flat:
            raise TypeError(f"prune_and_quantize: cannot connect '{prev.name}' to a conv layer")
        return 1
    if isinstance(prev.layer, BayesConv2d) and not flat:
        raise TypeError(f"prune_and_quantize: conv '{prev.name}' feeds a Linear without Flatten")
    if nxt.in_features % n_out:
        raise ValueError(f"prune_and_quantize: {nxt.in_features} inputs after '{prev.name}' "
                         f"are not a multiple of its {n_out} units")
    return nxt.in_features // n_out


def _in_slices(nxt: LayerPlan, n_units: int, per: int) -> Tensor:
    """Next layer's input weights regrouped as ``(n_units, -1)`` per unit of the previous one."""
    w = nxt.weight
    if isinstance(nxt.layer, BayesConv2d):
        return w.transpose(0, 1).reshape(n_units, -1)
    return w.reshape(w.shape[0], n_units, per).transpose(0, 1).reshape(n_units, -1)


def _remove_units(prev: LayerPlan, nxt: LayerPlan, per: int) -> bool:
    """One pass of the unused/dead rule for the pair ``prev -> nxt``; True if changed."""
    n = prev.weight.shape[0]
    unused = (_in_slices(nxt, n, per) == 0).all(dim=1)
    row_zero = (prev.weight.reshape(n, -1) == 0).all(dim=1)
    if prev.bias is not None:
        row_zero &= prev.bias == 0
    zero_pass = all(isinstance(m, _ZERO_PRESERVING) for _, m in prev.between)
    remove = unused | (row_zero & zero_pass)
    new = prev.keep_out & ~remove
    if torch.equal(new, prev.keep_out):
        return False
    prev.keep_out = new
    prev.weight[~new] = 0
    if prev.bias is not None:
        prev.bias[~new] = 0
    nxt.weight[:, (~new).repeat_interleave(per)] = 0
    nxt.keep_in = new.repeat_interleave(per)
    return True


def plan_pruning(bmodel: nn.Module, thresholds: float | list | dict | None = None
                 ) -> list[LayerPlan]:
    """Compute masked weights and kept units of every weight layer of ``bmodel``."""
    if not isinstance(bmodel, nn.Sequential):
        raise TypeError(f"prune_and_quantize needs an nn.Sequential, got {type(bmodel).__name__}")
    chain = _chain(bmodel)
    idx = [i for i, (_, m) in enumerate(chain) if isinstance(m, _BayesGroupLayer)]
    if not idx:
        raise ValueError("prune_and_quantize: model has no BayesLinear/BayesConv2d layer")
    names = [chain[i][0] for i in idx]
    thr = resolve_thresholds(names, thresholds, [chain[i][1].prior for i in idx])
    plans = []
    with torch.no_grad():
        for k, i in enumerate(idx):
            layer = chain[i][1]
            la = layer.log_alpha().detach().clone()
            keep = la < thr[k]
            mask = layer.group_mask * keep.to(layer.group_mask.dtype)
            z = layer.scale.mean() * mask
            w = layer.weight_mu * layer._expand_group(z)
            b = None if layer.bias is None else (
                layer.bias * z if isinstance(layer, BayesConv2d) else layer.bias.clone())
            end = idx[k + 1] if k + 1 < len(idx) else len(chain)
            n_in = w.shape[1]
            plans.append(LayerPlan(names[k], layer, w.clone(), b, layer.weight_variance(),
                                   keep & (layer.group_mask > 0), la, thr[k],
                                   torch.ones(w.shape[0], dtype=torch.bool),
                                   torch.ones(n_in, dtype=torch.bool), chain[i + 1:end]))
        for _, m in plans[-1].between:
            if not isinstance(m, (*_ZERO_PRESERVING, *_PER_CHANNEL, *_TAIL_ONLY)):
                raise TypeError(f"prune_and_quantize: unsupported module {m}")
        pers = [_check_between(plans[k], plans[k + 1].layer) for k in range(len(plans) - 1)]
        changed = True
        while changed:
            changed = False
            for k in reversed(range(len(plans) - 1)):
                changed |= _remove_units(plans[k], plans[k + 1], pers[k])
    return plans


def _set_module(root: nn.Module, name: str, new: nn.Module) -> None:
    parent = root
    *path, last = name.split(".")
    for p in path:
        parent = getattr(parent, p)
    setattr(parent, last, new)


def _slice_bn(bn: nn.Module, keep: Tensor) -> nn.Module:
    new = copy.deepcopy(bn)
    new.num_features = int(keep.sum())
    for attr in ("weight", "bias"):
        p = getattr(bn, attr)
        if p is not None:
            setattr(new, attr, nn.Parameter(p.detach()[keep].clone()))
    for attr in ("running_mean", "running_var"):
        buf = getattr(bn, attr)
        if buf is not None:
            setattr(new, attr, buf[keep].clone())
    return new


def export_plain(bmodel: nn.Module, plans: list[LayerPlan],
                 weights: list[Tensor] | None = None) -> nn.Module:
    """Build the plain, physically smaller ``nn.Sequential`` (eval mode) from ``plans``.

    ``weights`` optionally replaces each plan's (already sliced) weight, e.g. by
    its quantised version.
    """
    small = copy.deepcopy(bmodel).eval()
    for k, p in enumerate(plans):
        w = sliced_weight(p) if weights is None else weights[k]
        b = None if p.bias is None else p.bias[p.keep_out]
        layer = p.layer
        with warnings.catch_warnings():  # zero-sized layers when everything is pruned
            warnings.simplefilter("ignore", UserWarning)
            if isinstance(layer, BayesLinear):
                new: nn.Module = nn.Linear(w.shape[1], w.shape[0], bias=b is not None)
            else:
                new = nn.Conv2d(w.shape[1], w.shape[0], layer.kernel_size, layer.stride,
                                layer.padding, layer.dilation, bias=b is not None)
        new = new.to(dtype=w.dtype, device=w.device)
        with torch.no_grad():
            new.weight.copy_(w)
            if b is not None:
                new.bias.copy_(b)
        _set_module(small, p.name, new.eval())
        for name, m in p.between:
            if isinstance(m, nn.BatchNorm1d | nn.BatchNorm2d):
                _set_module(small, name, _slice_bn(m, p.keep_out).eval())
    return small


def sliced_weight(p: LayerPlan, t: Tensor | None = None) -> Tensor:
    """``t`` (default the plan's weight) restricted to kept outputs and inputs."""
    t = p.weight if t is None else t
    return t[p.keep_out][:, p.keep_in].clone()
