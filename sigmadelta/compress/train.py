"""Minimal trainer for Bayesian-compressed classifiers.

Objective per minibatch (negative ELBO per training example)::

    loss = CE(f(x; w ~ q), y) + kl_weight * KL(q || p),   kl_weight = 1 / n_train

minimised with Adam; the model is put in eval mode (posterior means) at the end.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn
from tqdm.auto import tqdm

from .kl import kl

__all__ = ["accuracy", "train"]


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


def train(bmodel: nn.Module, x_train, y_train, epochs: int = 100, lr: float = 1e-3,
          batch_size: int = 128, seed: int = 0, kl_weight: float | None = None,
          progress: bool = True, task_loss=F.cross_entropy) -> dict[str, list[float]]:
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

    Returns
    -------
    dict with per-epoch lists ``loss`` (mean objective), ``kl`` and ``acc`` (train
    accuracy of the stochastic forward passes).
    """
    torch.manual_seed(seed)
    gen = torch.Generator().manual_seed(seed)
    x, y = _as_tensor(x_train, torch.float32), _as_tensor(y_train, torch.long)
    n = len(x)
    klw = 1.0 / n if kl_weight is None else float(kl_weight)
    opt = torch.optim.Adam(bmodel.parameters(), lr=lr)
    hist: dict[str, list[float]] = {"loss": [], "kl": [], "acc": []}
    bar = tqdm(range(epochs), disable=not progress, desc="bayes-compress", leave=False)
    for _ in bar:
        bmodel.train()
        perm = torch.randperm(n, generator=gen)
        tot_loss, tot_kl, correct = 0.0, 0.0, 0
        for i in range(0, n, batch_size):
            idx = perm[i:i + batch_size]
            out = bmodel(x[idx])
            div = kl(bmodel)
            loss = task_loss(out, y[idx]) + klw * div
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            tot_loss += float(loss) * len(idx)
            tot_kl += float(div) * len(idx)
            correct += int((out.argmax(1) == y[idx]).sum())
        hist["loss"].append(tot_loss / n)
        hist["kl"].append(tot_kl / n)
        hist["acc"].append(correct / n)
        bar.set_postfix(loss=f"{hist['loss'][-1]:.4f}", acc=f"{hist['acc'][-1]:.3f}")
    bmodel.eval()
    return hist
