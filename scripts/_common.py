"""Helpers shared by the training scripts (seeding, data splits, checkpoint writing)."""

from __future__ import annotations

import json
import os
import random
import sys
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

__all__ = [
    "DIGITS_N_TRAIN",
    "command_line",
    "count_params",
    "digits_split",
    "fit",
    "machine",
    "save_checkpoint",
    "seed_everything",
    "validation_split",
]

#: scikit-learn digits: the first 1400 samples train, the remaining 397 test (the same
#: split as the "Temporal digits" stream of ``sigmadelta.datasets``).
DIGITS_N_TRAIN = 1400


def seed_everything(seed: int) -> torch.Generator:
    """Seed Python, NumPy and torch; return a seeded torch generator for data order."""
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)
    return torch.Generator().manual_seed(seed)


def digits_split() -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """scikit-learn digits scaled to [0, 1] (``X / 16``), deterministic split.

    Returns
    -------
    x_train, y_train, x_test, y_test : numpy.ndarray
        ``x`` as float32 ``(N, 64)``, ``y`` as int64 ``(N,)``.
    """
    from sklearn.datasets import load_digits

    data = load_digits()
    x = (data.data / 16.0).astype(np.float32)
    y = data.target.astype(np.int64)
    n = DIGITS_N_TRAIN
    return x[:n], y[:n], x[n:], y[n:]


def count_params(model: nn.Module) -> int:
    """Number of trainable parameters."""
    return int(sum(p.numel() for p in model.parameters() if p.requires_grad))


def command_line() -> str:
    """The command that ran this script, with the script path relative to the repo."""
    script = Path(sys.argv[0]).resolve()
    repo = Path(__file__).resolve().parent.parent
    try:
        rel = os.path.relpath(script, repo)
    except ValueError:
        rel = script.name
    return " ".join(["python", rel, *sys.argv[1:]])


def save_checkpoint(model: nn.Module, out_dir: str | Path, info: dict[str, Any]) -> Path:
    """Write ``<name>.pt`` (float32 state_dict) and ``<name>.json`` into ``out_dir``.

    Parameters
    ----------
    model : torch.nn.Module
        Trained model.
    out_dir : str or Path
        Destination folder (created if missing).
    info : dict
        Metadata; must contain ``"name"``. ``"weights"`` and ``"n_params"`` are added.

    Returns
    -------
    Path
        Path of the JSON file written.
    """
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    name = info["name"]
    state = {k: v.detach().float().cpu().clone() for k, v in model.state_dict().items()}
    torch.save(state, out / f"{name}.pt")
    record = dict(info)
    record["weights"] = f"{name}.pt"
    record["n_params"] = count_params(model)
    path = out / f"{name}.json"
    path.write_text(json.dumps(record, indent=2) + "\n", encoding="utf-8")
    return path


def fit(model: nn.Module, n: int, batch_loss, epochs: int, gen: torch.Generator, lr: float,
        weight_decay: float, batch_size: int, desc: str) -> nn.Module:
    """Adam with a cosine learning-rate schedule over shuffled minibatches.

    ``batch_loss(idx)`` returns the loss of the samples ``idx`` (a tensor of indices into
    the ``n`` training samples); the shuffling draws from ``gen``. Shows a progress bar
    with the mean loss of each epoch.
    """
    from tqdm.auto import tqdm

    opt = torch.optim.Adam(model.parameters(), lr=lr, weight_decay=weight_decay)
    steps = epochs * ((n + batch_size - 1) // batch_size)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=steps)
    bar = tqdm(range(epochs), desc=desc)
    for _ in bar:
        model.train()
        perm = torch.randperm(n, generator=gen)
        total = 0.0
        for i in range(0, n, batch_size):
            idx = perm[i : i + batch_size]
            loss = batch_loss(idx)
            opt.zero_grad()
            loss.backward()
            opt.step()
            sched.step()
            total += float(loss) * len(idx)
        bar.set_postfix(loss=f"{total / n:.4f}")
    return model


def validation_split(d: dict[str, np.ndarray], frac: float, seed: int
                     ) -> tuple[dict[str, np.ndarray], np.ndarray, np.ndarray]:
    """Stratified split of ``x_train`` / ``y_train``: (training dict without the validation
    patches, validation patches, validation labels); ``round(frac * n_label)`` patches of each
    label, drawn with ``numpy.random.default_rng(seed)``. Every other ``*_train`` array of the
    same length (e.g. ``group_train``) is split along."""
    rng = np.random.default_rng(seed)
    y = d["y_train"]
    val = np.zeros(len(y), bool)
    for label in (0.0, 1.0):
        idx = np.flatnonzero(y == label)
        val[rng.choice(idx, int(round(frac * len(idx))), replace=False)] = True
    train = {**d, **{k: v[~val] for k, v in d.items()
                     if k.endswith("_train") and len(v) == len(y)}}
    return train, d["x_train"][val], y[val]


def machine() -> str:
    """CPU model, core count and load average, for the training-time record."""
    model = "unknown CPU"
    cpuinfo = Path("/proc/cpuinfo")
    if cpuinfo.is_file():
        names = [ln.split(":", 1)[1].strip() for ln in cpuinfo.read_text().splitlines()
                 if ln.startswith("model name")]
        model = names[0] if names else model
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    return (f"{os.cpu_count()}-vCPU {model}, 1 torch thread, shared with other jobs "
            f"(load average {load:.1f} at the end)")
