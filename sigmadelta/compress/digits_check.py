"""End-to-end check on sklearn digits (needs scikit-learn; not imported by the package).

``python -m sigmadelta.compress.digits_check --prior gnj --epochs 300``

Trains a plain 64-300-100-10 MLP on the first 1400 digits, bayesianizes it,
trains the Bayesian model, then prunes/quantises and prints test accuracies.

Reference run (seed 0, defaults, 300 epochs, lr 1e-3, batch 128, test = last 397):

* plain 64-300-100-10: 92.19 %
* GNJ: Bayes eval 92.70 %, pruned 92.70 %, pruned + quantised 92.19 %;
  64-26-44-10 (42 inputs used), 2536/50200 weights (19.8x), bits 7-7-8 (88x)
* GHS: Bayes eval 93.20 %, pruned 92.19 %, pruned + quantised 91.69 %;
  64-61-63-10 (47 inputs used), 5282/50200 weights (9.5x), bits 6-4-4 (62x)
"""

from __future__ import annotations

import argparse
import time

import torch
from torch import nn

from . import accuracy, bayesianize, prune_and_quantize, train


def load_digits_split(n_train: int = 1400):
    """``(x_train, y_train, x_test, y_test)`` of sklearn digits scaled to [0, 1]."""
    from sklearn.datasets import load_digits

    d = load_digits()
    x = torch.tensor(d.data / 16.0, dtype=torch.float32)
    y = torch.tensor(d.target, dtype=torch.long)
    return x[:n_train], y[:n_train], x[n_train:], y[n_train:]


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--prior", default="gnj", choices=["gnj", "ghs"])
    ap.add_argument("--epochs", type=int, default=300)
    ap.add_argument("--plain-epochs", type=int, default=100)
    ap.add_argument("--lr", type=float, default=1e-3)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--thresholds", type=float, nargs="*", default=None)
    ap.add_argument("--bits-rule", default="min")
    ap.add_argument("--scale-lr-mult", type=float, default=None)
    ap.add_argument("--save", default=None, help="save the trained Bayesian model here")
    args = ap.parse_args(argv)
    torch.set_num_threads(1)
    xtr, ytr, xte, yte = load_digits_split()
    torch.manual_seed(args.seed)
    model = nn.Sequential(nn.Linear(64, 300), nn.ReLU(), nn.Linear(300, 100), nn.ReLU(),
                          nn.Linear(100, 10))
    t0 = time.time()
    train(model, xtr, ytr, epochs=args.plain_epochs, lr=args.lr, seed=args.seed,
          progress=False)
    print(f"plain model: test acc {accuracy(model, xte, yte):.4f}")
    bmodel = bayesianize(model, prior=args.prior)
    mult = None if args.scale_lr_mult is None else {args.prior: args.scale_lr_mult}
    hist = train(bmodel, xtr, ytr, epochs=args.epochs, lr=args.lr, seed=args.seed,
                 progress=False, scale_lr_mult=mult)
    print(f"{args.prior}: loss {hist['loss'][0]:.3f} -> {hist['loss'][-1]:.3f}, "
          f"nll {hist['nll'][0]:.3f} -> {hist['nll'][-1]:.3f}, "
          f"bayes (eval) test acc {accuracy(bmodel, xte, yte):.4f}")
    if args.save:
        torch.save(bmodel, args.save)
    thr = args.thresholds
    thr = None if not thr else (thr[0] if len(thr) == 1 else thr)
    small, rep = prune_and_quantize(bmodel, thr, quantize=False)
    print(f"pruned, float weights: test acc {accuracy(small, xte, yte):.4f}")
    small, rep = prune_and_quantize(bmodel, thr, bits_rule=args.bits_rule)
    print(f"pruned + quantised   : test acc {accuracy(small, xte, yte):.4f}")
    print(rep.table())
    for name in rep.layer_names:
        la = rep.log_alpha[name]
        q = [round(float(v), 2) for v in torch.tensor(la).quantile(torch.tensor(
            [0.0, 0.1, 0.25, 0.5, 0.75, 0.9, 1.0]))]
        print(f"  log alpha quantiles {name}: {q}")
    print(f"time {time.time() - t0:.1f}s")


if __name__ == "__main__":
    main()
