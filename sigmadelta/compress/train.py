"""Minimal trainer for Bayesian-compressed classifiers.

Objective per minibatch (negative ELBO per training example)::

    loss = CE(f(x; w ~ q), y) + kl_weight * KL(q || p),   kl_weight = 1 / n_train

(optionally with the KL weight ramped up linearly over the first epochs, ``kl_warmup``)

minimised with Adam; the model is put in eval mode (posterior means) at the end.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn
from tqdm.auto import tqdm

from .kl import kl
from .layers import GHSScale, GNJScale

__all__ = ["SCALE_LR_MULT", "accuracy", "train"]


def _as_tensor(a, dtype: torch.dtype) -> Tensor:
    return a.to(dtype) if isinstance(a, Tensor) else torch.as_tensor(np.asarray(a), dtype=dtype)


@torch.no_grad()
def accuracy(model: nn.Module, x, y, batch_size: int = 1024) -> float:
    """Top-1 accuracy of ``model`` (put in eval mode) on ``(x, y)``."""
    model.eval()
    x, y = _as_tensor(x, torch.float32), _as_tensor(y, torch.long)
    correct = 0
    for i in range(0, len(x), batch_size):
        correct += int((model(x[i:i + batch_size]).argmax(1) == y[i:i + batch_size]).sum())
    return correct / max(1, len(x))


SCALE_LR_MULT = {"gnj": 1.0, "ghs": 10.0}


def _param_groups(model: nn.Module, lr: float, mult: dict[str, float] | None) -> list[dict]:
    mult = SCALE_LR_MULT if mult is None else {**SCALE_LR_MULT, **mult}
    scaled: dict[float, list] = {}
    seen: set[int] = set()
    for mod in model.modules():
        if isinstance(mod, GNJScale | GHSScale):
            m = mult["gnj" if isinstance(mod, GNJScale) else "ghs"]
            scaled.setdefault(m, []).extend(mod.parameters())
            seen.update(id(p) for p in mod.parameters())
    rest = [p for p in model.parameters() if id(p) not in seen]
    return [{"params": rest, "lr": lr}] + [{"params": ps, "lr": lr * m} for m, ps in scaled.items()]


def _run_epoch(model: nn.Module, opt: torch.optim.Optimizer, x: Tensor, y: Tensor,
               batch_size: int, klw: float, task_loss, gen: torch.Generator) -> dict[str, float]:
    """One shuffled pass over ``(x, y)``; returns mean loss, nll, kl and accuracy."""
    model.train()
    n = len(x)
    perm = torch.randperm(n, generator=gen)
    tot = {"loss": 0.0, "nll": 0.0, "kl": 0.0, "acc": 0.0}
    for i in range(0, n, batch_size):
        idx = perm[i:i + batch_size]
        out = model(x[idx])
        div = kl(model)
        nll = task_loss(out, y[idx])
        loss = nll + klw * div
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        tot["loss"] += float(loss.detach()) * len(idx)
        tot["nll"] += float(nll.detach()) * len(idx)
        tot["kl"] += float(div.detach()) * len(idx)
        tot["acc"] += float((out.argmax(1) == y[idx]).sum())
    return {k: v / n for k, v in tot.items()}


def train(bmodel: nn.Module, x_train, y_train, epochs: int = 100, lr: float = 1e-3,
          batch_size: int = 128, seed: int = 0, kl_weight: float | None = None,
          progress: bool = True, task_loss=F.cross_entropy,
          scale_lr_mult: dict[str, float] | None = None,
          kl_warmup: int = 0) -> dict[str, list[float]]:
    """Train ``bmodel`` in place on ``task_loss + kl_weight * kl(bmodel)``.

    Parameters
    ----------
    bmodel : nn.Module
        Output of :func:`bayesianize` (a plain model also works; its KL is 0).
    x_train, y_train : array-like or Tensor
        Inputs and integer class labels.
    epochs, lr, batch_size : training schedule (Adam, shuffled minibatches).
    seed : int
        Seeds the shuffling and the reparameterisation noise (``torch.manual_seed``).
    kl_weight : float, optional
        Defaults to ``1 / len(x_train)``.
    progress : bool
        Show a tqdm progress bar over epochs.
    scale_lr_mult : dict, optional
        Learning-rate multiplier of the group-scale parameters by prior, default
        :data:`SCALE_LR_MULT`.  The GHS factors live in log space where Adam moves
        about ``lr`` per step, too slow for unused groups to reach the prior
        (``log sigma^2`` from -8 to about +1.6) in a few thousand steps.
    kl_warmup : int
        KL annealing: in epoch ``e`` (0-based) the KL weight is
        ``kl_weight * min(1, (e + 1) / kl_warmup)``, a linear warm-up over the first
        ``kl_warmup`` epochs (0: the full weight from the start).

    Returns
    -------
    dict with per-epoch lists ``loss`` (mean objective), ``nll`` (task loss), ``kl``
    (total KL, unweighted) and ``acc`` (train accuracy of the stochastic forward passes).
    """
    torch.manual_seed(seed)
    gen = torch.Generator().manual_seed(seed)
    x, y = _as_tensor(x_train, torch.float32), _as_tensor(y_train, torch.long)
    n = len(x)
    klw = 1.0 / n if kl_weight is None else float(kl_weight)
    opt = torch.optim.Adam(_param_groups(bmodel, lr, scale_lr_mult), lr=lr)
    hist: dict[str, list[float]] = {"loss": [], "nll": [], "kl": [], "acc": []}
    bar = tqdm(range(epochs), disable=not progress, desc="bayes-compress", leave=False)
    for epoch in bar:
        ramp = min(1.0, (epoch + 1) / kl_warmup) if kl_warmup > 0 else 1.0
        stats = _run_epoch(bmodel, opt, x, y, batch_size, klw * ramp, task_loss, gen)
        for key, val in stats.items():
            hist[key].append(val)
        bar.set_postfix(loss=f"{stats['loss']:.4f}", acc=f"{stats['acc']:.3f}")
    bmodel.eval()
    return hist
