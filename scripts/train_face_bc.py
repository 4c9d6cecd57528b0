"""Bayesian compression (BC-GNJ) of the shipped face detector, exported fixed-point.

Steps (carphone, the test video, is never used here). A fixed validation split is carved out
of the *training* patches first (``validation_split``: a stratified ``--val-frac`` = 15% of
``x_train`` / ``y_train``, hard negatives included, drawn with ``numpy.random.default_rng(seed +
7)``); it is never trained on, and every choice (variant, threshold, fine-tuning epoch) is made
on it and on the non-test videos. The held-out test patches are measured only for the final
figure (skipped with ``--no-test`` while variants are compared).

1. start from the shipped ``face_detector`` (its weights initialise ``theta``) and
   ``compress.bayesianize(..., prior="gnj")``: one group variable ``z`` per output channel of
   every convolution (pruning an output channel also removes the next layer's input channel);
2. train on the detector's own face / non-face patches (``train_video.make_patches``, with hard
   negatives mined by the shipped detector on the training images) with::

       loss = BCE(f(x; w ~ q), y) + kl_weight / n_train * KL(q || p)
              + distill * mean((f(frames; w ~ q) - teacher(frames))^2)

   where ``frames`` are frames of the non-test videos (bikes, bigbuckbunny), 2x2 pooled as the
   detector sees them, and ``teacher`` the shipped detector's logit maps on them (keeps the
   compressed net's map, not only its patch decision);
3. ``compress.prune_and_quantize`` at log-alpha ``--threshold``: plain smaller model with
   per-layer fixed-point bits, rebuilt as ``face_detector(pool=2, channels=kept)``;
4. fine-tune the kept weights of the pruned net on their fixed-point grids (straight-through
   rounding; pruned weights stay zero; no KL) with BCE + ``--finetune-distill`` times the same
   distillation, logits below ``--finetune-floor`` (clear non-face) clamped in it; the BCE of
   each patch is weighted by its kind (``--finetune-face-weight`` for faces,
   ``--finetune-hard-weight`` for the mined hard negatives, 1 otherwise; ``_face_groups``); the
   epoch (0 = the exported net) with the best validation score is kept (ties: the earlier):
   plain accuracy, or with ``--select test-mix`` the patch kinds weighted like the test patches
   (half faces, 40% background, 10% off-centre faces: no hard negatives, which the shipped
   detector fails by construction);
5. operating point on the non-test videos: scales from ``sd.optimize_scales`` on ``--train-stream``
   (bikes), also times each ``--scale-down`` factor, the cheapest point (synops per frame of the
   fixed-point event simulation) within ``--max-rel-err`` of its own float ANN on
   ``--choose-stream`` (bigbuckbunny), passing the regret guard if given (``_face_bc_op``);
6. write ``<name>.pt`` / ``<name>.json`` (compression record, operating point, commands).

Examples::

    python scripts/train_face_bc.py --epochs 40 --kl-weight 64 --distill 1 --threshold -7 \\
        --finetune-epochs 60 --finetune-cosine --finetune-face-weight 2 \\
        --finetune-hard-weight 0.5 --select test-mix --min-val-acc 0.905 --max-rel-err 0.009 \\
        --scale-down 0.9,0.8 --seed 0 --no-test --out models/checkpoints
    python scripts/train_face_bc.py --test-only --out models/checkpoints   # test patches, once
        # (these two and the next made the previous face_detector_bc; README: the margin step)
    python scripts/train_face_bc.py --choose-only --out models/checkpoints --max-rel-err 0.009 \\
        --scale-down 0.8,0.9,1.25,1.5,2,3 --min-regret 0.995 --guard-delta 1   # step 5 again
    python scripts/train_face_bc.py --choose-only --name face_detector --max-rel-err 0.05 \\
        --lams 0.01,0.03,0.1,0.3,1 --uniform 8,16,32,64,128 --out models/checkpoints
        # the uncompressed detector's operating point (float weights), chosen the same way
    python scripts/train_face_bc.py --init-state out/face_bc/face_detector_bc_bayes_seed0_kl16.pt \\
        --epochs 20 --kl-weight 64 --bayes-only   # a KL schedule: continue a KL-16 state at 64
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from _common import command_line, machine, save_checkpoint, seed_everything, validation_split
from _face_bc_op import FRAME_SHAPE, add_guard_args, choose_command, choose_operating_point, load_video
from _face_groups import loss_weights, patch_accuracy, patch_groups, val_record, val_score
from torch import nn
from tqdm.auto import tqdm

from sigmadelta import compress

__all__ = ["distill_frames", "export", "main", "finetune", "patch_data", "val_record", "val_score"]

#: Non-test videos (never carphone) for distillation and for choosing the operating point.
NON_TEST = ("bikes", "bigbuckbunny")
def _teacher() -> nn.Module:
    """The shipped detector at its own training scale (``pool=1``; same state dict)."""
    from sigmadelta.models import face_detector, load_pretrained, pretrained_info

    shipped = load_pretrained("face_detector")
    base = face_detector(pool=1, channels=pretrained_info("face_detector")["kwargs"]["channels"])
    base.load_state_dict(shipped.state_dict())
    return base.eval()


def patch_data(seed: int, teacher: nn.Module, n_hard: int, cache: Path | None
               ) -> dict[str, np.ndarray]:
    """The detector's training / test patches plus hard negatives mined by ``teacher``."""
    path = None if cache is None else cache / f"patches_seed{seed}.npz"
    if path is not None and path.is_file():
        return {**np.load(path), "group_train": patch_groups(n_hard)}
    from train_video import TRAIN_IMAGES, _gray, make_patches, mine_hard_negatives

    d = make_patches(seed)
    rng = np.random.default_rng(seed + 1)
    hard = mine_hard_negatives(teacher, [_gray(n) for n in TRAIN_IMAGES], n_hard, rng)
    d["x_train"] = np.concatenate([d["x_train"], hard])
    d["y_train"] = np.r_[d["y_train"], np.zeros(len(hard), np.float32)].astype(np.float32)
    if path is not None:
        path.parent.mkdir(parents=True, exist_ok=True)
        np.savez(path, **d)
    return {**d, "group_train": patch_groups(n_hard)}


def distill_frames(teacher: nn.Module, cache: Path | None = None
                   ) -> tuple[torch.Tensor, torch.Tensor]:
    """2x2-pooled frames of the non-test videos and the teacher's logit maps on them."""
    path = None if cache is None else cache / "distill_frames.npy"
    if path is not None and path.is_file():
        frames = np.load(path)
    else:
        frames = np.concatenate([load_video(v) for v in NON_TEST])
        if path is not None:
            path.parent.mkdir(parents=True, exist_ok=True)
            np.save(path, frames)
    x = F.avg_pool2d(torch.from_numpy(frames), 2)
    with torch.no_grad():
        return x, teacher(x)


def _fit(model: nn.Module, d: dict[str, np.ndarray], frames: torch.Tensor, targets: torch.Tensor,
         args: argparse.Namespace, epochs: int, kl_weight: float, desc: str,
         distill: tuple[float, float | None], snapshot: str | None = None,
         lr: float | None = None, on_epoch=None, cosine: bool = False,
         weights: np.ndarray | None = None) -> dict[str, list[float]]:
    """Adam on BCE + kl_weight / n_train * KL + distill * map MSE (see module docstring).

    ``kl_weight = 0`` trains a plain model (the fine-tuning of the pruned net); ``distill`` is
    ``(weight, floor)`` (floor None: no clamp). The learning rate is constant, so the state
    after ``e`` epochs does not depend on ``epochs``; ``cosine``: it decays instead as
    ``lr_e = lr (1 + cos(pi e / epochs)) / 2`` over the epochs ``e = 0 .. epochs - 1``.
    ``on_epoch(epoch)`` (1-based) is called after every epoch (model in train mode);
    ``weights``: per-patch BCE weights (``_face_groups.loss_weights``), else 1.
    """
    weight, floor = distill
    floor = -np.inf if floor is None else floor
    lr = args.lr if lr is None else lr
    gen = seed_everything(args.seed)
    x, y = torch.from_numpy(d["x_train"]).unsqueeze(1), torch.from_numpy(d["y_train"])
    n = len(x)
    w = torch.ones(n) if weights is None else torch.as_tensor(weights, dtype=torch.float32)
    pos_weight = torch.tensor(float((y == 0).sum()) / max(float((y == 1).sum()), 1.0))
    klw = kl_weight / n
    scale = [p for m in model.modules() if isinstance(m, compress.GNJScale) for p in m.parameters()]
    ids = {id(p) for p in scale}
    rest = [p for p in model.parameters() if id(p) not in ids]
    opt = torch.optim.Adam([{"params": rest}, {"params": scale, "lr": lr * args.scale_lr_mult}],
                           lr=lr)
    hist: dict[str, list[float]] = {"loss": [], "bce": [], "kl": [], "distill": []}
    bar = tqdm(range(epochs), desc=desc)
    for epoch in bar:
        if cosine:
            for g, base in zip(opt.param_groups, (lr, lr * args.scale_lr_mult), strict=False):
                g["lr"] = base * 0.5 * (1.0 + np.cos(np.pi * epoch / epochs))
        model.train()
        perm = torch.randperm(n, generator=gen)
        tot = dict.fromkeys(hist, 0.0)
        for i in range(0, n, args.batch_size):
            idx = perm[i:i + args.batch_size]
            bce = F.binary_cross_entropy_with_logits(model(x[idx]).flatten(), y[idx], w[idx],
                                                     pos_weight=pos_weight)
            div = compress.kl(model) if klw > 0 else torch.zeros(())
            loss = bce + klw * div
            dis = torch.zeros(())
            if weight > 0:
                j = torch.randint(len(frames), (args.distill_batch,), generator=gen)
                dis = F.mse_loss(model(frames[j]).clamp(min=floor), targets[j].clamp(min=floor))
                loss = loss + weight * dis
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            for k, v in (("loss", loss), ("bce", bce), ("kl", div), ("distill", dis)):
                tot[k] += float(v.detach()) * len(idx) / n
        for k, v in tot.items():
            hist[k].append(v)
        kept = [int((m.log_alpha() < args.threshold).sum()) for m in model.modules()
                if isinstance(m, compress.BayesConv2d)]
        bar.set_postfix(bce=f"{tot['bce']:.3f}", dis=f"{tot['distill']:.3f}",
                        kept="-".join(map(str, kept[:-1])))
        if snapshot and args.save_every and (epoch + 1) % args.save_every == 0:
            torch.save(model.state_dict(), f"{snapshot}_epoch{epoch + 1}.pt")
        if on_epoch is not None:
            on_epoch(epoch + 1)
    model.eval()
    return hist


class _FixedPoint(nn.Module):
    """Weight parametrization: forward on the fixed-point grid of ``bits``, gradient straight
    through (``w + (q(w) - w).detach()``, ``q = compress.quantize_fixed``)."""

    def __init__(self, bits: int) -> None:
        super().__init__()
        self.bits = int(bits)

    def forward(self, w: torch.Tensor) -> torch.Tensor:
        return w + (compress.quantize_fixed(w.detach(), self.bits)[0] - w).detach()


def finetune(model: nn.Module, bits: dict[str, int], d: dict[str, np.ndarray],
             frames: torch.Tensor, targets: torch.Tensor, args: argparse.Namespace,
             val: tuple[np.ndarray, ...] | None = None) -> nn.Module:
    """Retrain the pruned net's kept weights on their fixed-point grids (straight-through
    rounding, pruned weights stay zero), no KL; the result lies exactly on the grids.

    With ``val = (x_val, y_val[, kinds_val])`` the epoch (0 = the start) with the best
    validation score (``val_score`` with ``args.select``) among those with a plain validation
    accuracy of at least ``args.min_val_acc`` is kept (ties: the earlier); the scores are in
    ``model.val_history``. BCE weights per patch kind:
    ``args.finetune_face_weight`` (faces), ``args.finetune_hard_weight`` (hard negatives).
    """
    from torch.nn.utils import parametrize

    masks = {}
    for name, mod in model.named_modules():
        if isinstance(mod, nn.Conv2d):
            masks[name] = (mod.weight.detach() != 0).float()
            mod.weight.register_hook(lambda g, m=masks[name]: g * m)
            parametrize.register_parametrization(mod, "weight", _FixedPoint(bits[name]))
    history: list[float] = []
    best: list = [-1.0, 0, None]

    def keep_best(epoch: int) -> None:
        history.append(val_score(model, *val, select=getattr(args, "select", "all")))
        eligible = patch_accuracy(model, *val[:2]) >= getattr(args, "min_val_acc", 0.0)
        if eligible and history[-1] > best[0]:
            best[:] = [history[-1], epoch,
                       {k: v.detach().clone() for k, v in model.state_dict().items()}]
        model.train()

    if val is not None:
        keep_best(0)
    _fit(model, d, frames, targets, args, args.finetune_epochs, 0.0, "fine-tune",
         (args.finetune_distill, args.finetune_floor), lr=args.finetune_lr,
         on_epoch=None if val is None else keep_best,
         cosine=getattr(args, "finetune_cosine", False),
         weights=None if "group_train" not in d else loss_weights(
             d["group_train"], getattr(args, "finetune_face_weight", 1.0),
             getattr(args, "finetune_hard_weight", 1.0)))
    if val is not None:
        if best[2] is None:
            raise RuntimeError(f"no fine-tuning epoch reached --min-val-acc {args.min_val_acc}")
        model.load_state_dict(best[2])
        tqdm.write(f"fine-tune: validation score per epoch {[round(a, 4) for a in history]};"
                   f" kept epoch {best[1]}")
    for mod in model.modules():
        if isinstance(mod, nn.Conv2d):
            parametrize.remove_parametrizations(mod, "weight", leave_parametrized=True)
    model.val_history = history
    model.val_epoch = best[1]
    return model.eval()


def export(bmodel: nn.Module, threshold: float) -> tuple[nn.Module, compress.CompressionReport]:
    """Prune at ``threshold`` and rebuild as ``face_detector(pool=1, channels=kept)``."""
    from sigmadelta.models import face_detector

    small, report = compress.prune_and_quantize(bmodel, threshold)
    kept = report.architecture[1:4]
    model = face_detector(pool=1, channels=kept)
    model.load_state_dict(small.state_dict())
    return model.eval(), report


def _carphone_frames() -> np.ndarray:
    """Reporting only: never used for training or for choosing anything."""
    return load_video("carphone")


def compression_record(report: compress.CompressionReport, args: argparse.Namespace,
                       model: nn.Module) -> dict[str, Any]:
    """The ``compression`` entry of the checkpoint JSON (``model``: after fine-tuning)."""
    rec = {
        "method": "BC-GNJ (sigmadelta.compress.bayesianize(prior='gnj')), group = conv output "
                  "channel; initialised from the shipped face_detector",
        "kl_weight": args.kl_weight,
        "distill": args.distill,
        "threshold": args.threshold,
        "original_architecture": report.original_architecture,
        "architecture": report.architecture,
        "channels_kept": report.architecture[1:4],
        "bits": report.bits,
        "weights_total": report.n_weights,
        "weights_kept": report.n_nonzero,
        "compression_architecture": round(report.compression_architecture, 3),
        "compression_precision": round(report.compression_precision, 3),
    }
    if args.finetune_epochs > 0:
        rec["finetune"] = {
            "epochs": args.finetune_epochs, "lr": args.finetune_lr,
            "lr_schedule": "cosine" if args.finetune_cosine else "constant",
            "distill": args.finetune_distill, "distill_floor": args.finetune_floor,
            "rounding": "straight-through on the fixed-point grids",
            "bce_weight_face": args.finetune_face_weight,
            "bce_weight_hard_negative": args.finetune_hard_weight,
            "epoch_chosen_by": "validation accuracy" if args.select == "all" else
                               "validation accuracy, patch kinds weighted like the test patches",
            "min_validation_accuracy": args.min_val_acc,
            "validation_score_per_epoch": [round(a, 4) for a in model.val_history],
            "epoch_kept": model.val_epoch}
    kept = [int((m.weight != 0).sum()) for m in model.modules() if isinstance(m, nn.Conv2d)]
    rec["weights_kept"] = sum(kept)
    rec["compression_architecture"] = round(report.n_weights / sum(kept), 3)
    rec["compression_precision"] = round(32.0 * report.n_weights / sum(
        k * report.bits[n] for k, n in zip(kept, report.layer_names, strict=True)), 3)
    return rec


def _parse(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--epochs", type=int, default=9)
    p.add_argument("--kl-weight", type=float, default=256.0, help="KL multiplier (x 1/n_train)")
    p.add_argument("--distill", type=float, default=1.0,
                   help="weight of the logit-map distillation on non-test video frames")
    p.add_argument("--distill-batch", type=int, default=2, help="frames per minibatch")
    p.add_argument("--finetune-lr", type=float, default=2e-3)
    p.add_argument("--finetune-cosine", action="store_true",
                   help="cosine decay of the fine-tuning learning rate (else constant)")
    p.add_argument("--finetune-distill", type=float, default=0.1,
                   help="distillation weight of the fine-tuning")
    p.add_argument("--finetune-face-weight", type=float, default=1.0,
                   help="fine-tuning BCE weight of the face patches (on top of class balance)")
    p.add_argument("--finetune-hard-weight", type=float, default=1.0,
                   help="fine-tuning BCE weight of the mined hard negatives")
    p.add_argument("--select", choices=("all", "test-mix"), default="all",
                   help="validation score that picks the fine-tuning epoch: plain accuracy, or "
                        "the patch kinds weighted like the test patches")
    p.add_argument("--min-val-acc", type=float, default=0.0,
                   help="fine-tuning epochs below this plain validation accuracy are not kept")
    p.add_argument("--finetune-floor", type=float, default=-8.0,
                   help="fine-tuning distillation: logits below this (clear non-face) count as equal")
    p.add_argument("--threshold", type=float, default=-6.0, help="log-alpha pruning threshold")
    p.add_argument("--lr", type=float, default=2e-3)
    p.add_argument("--scale-lr-mult", type=float, default=5.0,
                   help="learning-rate multiplier of the group variables (faster pruning)")
    p.add_argument("--save-every", type=int, default=0, help="snapshot the Bayesian model")
    p.add_argument("--finetune-epochs", type=int, default=15,
                   help="epochs of fixed-point fine-tuning of the pruned net (no KL)")
    p.add_argument("--bayes-state", default=None,
                   help="load this saved Bayesian state (of the same command) instead of training")
    p.add_argument("--init-state", default=None,
                   help="start the Bayesian training from this saved Bayesian state (continuation;"
                        " fresh optimiser; snapshots named ..._from_<its name>)")
    p.add_argument("--bayes-only", action="store_true",
                   help="stop after training and saving the Bayesian state (candidates)")
    p.add_argument("--bayes-seconds", type=float, default=None,
                   help="with --bayes-state: the wall time of the run that trained it (recorded)")
    p.add_argument("--batch-size", type=int, default=128)
    p.add_argument("--n-hard", type=int, default=4000, help="mined hard negatives")
    p.add_argument("--val-frac", type=float, default=0.15,
                   help="stratified share of the training patches held out for validation")
    p.add_argument("--no-test", action="store_true",
                   help="do not measure the held-out test patches (while comparing variants)")
    p.add_argument("--name", default="face_detector_bc")
    p.add_argument("--out", default="models/checkpoints")
    p.add_argument("--work", default="out/face_bc", help="cache and Bayesian model folder")
    p.add_argument("--test-only", action="store_true",
                   help="only measure the test patches of the existing checkpoint (once)")
    p.add_argument("--choose-only", action="store_true",
                   help="only choose the operating point of the existing checkpoint again")
    p.add_argument("--train-stream", default="bikes")
    p.add_argument("--choose-stream", default="bigbuckbunny")
    p.add_argument("--max-rel-err", type=float, default=0.007)
    p.add_argument("--lams", default="0.001,0.003,0.01,0.03")
    p.add_argument("--uniform", default="32,64,128,256")
    p.add_argument("--scale-down", default="",
                   help="also try each optimised point with all scales times these factors")
    p.add_argument("--scale-epochs", type=int, default=20)
    add_guard_args(p)
    return p.parse_args(argv)


def _train_and_export(args: argparse.Namespace) -> tuple[nn.Module, dict[str, Any]]:
    work = Path(args.work)
    teacher = _teacher()
    full = patch_data(args.seed, teacher, args.n_hard, work)
    d, x_val, y_val = validation_split(full, args.val_frac, args.seed + 7)
    k_val = validation_split({"x_train": full["group_train"], "y_train": full["y_train"]},
                             args.val_frac, args.seed + 7)[1]  # the same draw: patch kinds
    frames, targets = distill_frames(teacher, work)
    bmodel = compress.bayesianize(teacher, prior="gnj")
    t0 = time.time()
    work.mkdir(parents=True, exist_ok=True)
    stem = str(work / f"{args.name}_bayes_seed{args.seed}_kl{args.kl_weight:g}")
    if args.init_state:  # continue training a saved Bayesian state (e.g. at another KL weight)
        bmodel.load_state_dict(torch.load(args.init_state, weights_only=True))
        stem += "_from_" + Path(args.init_state).stem.removeprefix(f"{args.name}_bayes_")
    if args.bayes_state:  # a snapshot of the same command at epoch --epochs (equal state)
        bmodel.load_state_dict(torch.load(args.bayes_state, weights_only=True))
        hist = {}
    else:
        hist = _fit(bmodel, d, frames, targets, args, args.epochs, args.kl_weight, "bc-gnj",
                    (args.distill, None), stem)
        torch.save(bmodel.state_dict(), f"{stem}.pt")
    bayes_seconds = time.time() - t0
    if args.bayes_only:
        tqdm.write(f"Bayesian state {stem}.pt ({bayes_seconds:.1f} s); stopping (--bayes-only)")
        return bmodel, {}
    model, report = export(bmodel, args.threshold)
    tqdm.write(report.table())
    tqdm.write(f"pruned and quantised: validation patch accuracy "
               f"{patch_accuracy(model, x_val, y_val):.4f}; fine-tuning")
    if args.finetune_epochs > 0:
        model = finetune(model, report.bits, d, frames, targets, args, (x_val, y_val, k_val))
    seconds = time.time() - t0
    with torch.no_grad():
        dis = float(F.mse_loss(model(frames).clamp(min=args.finetune_floor),
                               targets.clamp(min=args.finetune_floor)))
    metrics = {**val_record(model, x_val, y_val, k_val), "distill_mse_non_test": round(dis, 5)}
    if not args.no_test:  # the final figure only; never used to choose
        metrics["test_patch_accuracy"] = round(patch_accuracy(model, d["x_test"], d["y_test"]), 6)
        metrics["test_lfw_patch_accuracy"] = patch_accuracy(model, d["x_lfw_test"], d["y_lfw_test"])
    tqdm.write(f"exported fixed-point model: {metrics}")
    from sigmadelta.models import pretrained_info

    info = {
        "name": args.name,
        "description": "face_detector compressed with BC-GNJ (pruned channels, fixed-point "
                       "weights); pool=2 for 144x176 frames; logit map, face where max > 0",
        "factory": "face_detector",
        "kwargs": {"pool": 2, "channels": report.architecture[1:4]},
        "input_shape": list(FRAME_SHAPE),
        "dataset": pretrained_info("face_detector")["dataset"] + "; hard negatives mined by "
                   "the shipped face_detector; distillation frames: " + ", ".join(NON_TEST),
        "command": command_line(),
        "seed": args.seed,
        "epochs": args.epochs,
        "train_seconds": {"bayesian": round(bayes_seconds, 1) if args.bayes_seconds is None
                          else args.bayes_seconds,
                          "finetune": round(seconds - bayes_seconds, 1), "note": machine()},
        "final_loss": {k: round(v[-1], 5) for k, v in hist.items()},
        "finetune_epochs": args.finetune_epochs,
        "metrics": metrics,
        "validation": f"stratified {args.val_frac:g} of the training patches (numpy "
                      f"default_rng({args.seed + 7})), never trained on; every choice made on it "
                      "and on bikes / bigbuckbunny; test patches measured once, never to choose",
        "compression": compression_record(report, args, model),
    }
    return model, info


def _measure_test(args: argparse.Namespace, out: Path) -> dict[str, Any]:
    """``--test-only``: the held-out test patches, once, for a checkpoint trained with
    ``--no-test``; the figures and this command go into its JSON."""
    from sigmadelta.models import face_detector

    info = json.loads((out / f"{args.name}.json").read_text())
    model = face_detector(pool=1, channels=info["kwargs"]["channels"])
    model.load_state_dict(torch.load(out / info["weights"], weights_only=True))
    d = patch_data(args.seed, _teacher(), args.n_hard, Path(args.work))
    info["metrics"]["test_patch_accuracy"] = round(patch_accuracy(model, d["x_test"], d["y_test"]), 6)
    info["metrics"]["test_lfw_patch_accuracy"] = patch_accuracy(model, d["x_lfw_test"],
                                                                d["y_lfw_test"])
    info["metrics"]["test_measured_by"] = command_line()
    (out / f"{args.name}.json").write_text(json.dumps(info, indent=2) + "\n")
    tqdm.write(json.dumps(info["metrics"], indent=1))
    return info


def main(argv: list[str] | None = None) -> dict[str, Any]:
    """Command-line entry point; returns the checkpoint record."""
    args = _parse(argv)
    torch.set_num_threads(1)
    torch.set_flush_denormal(True)
    args.choose_command = command_line() if args.choose_only else choose_command(args)
    from sigmadelta.models import face_detector

    out = Path(args.out)
    if args.test_only:
        return _measure_test(args, out)
    if args.choose_only:  # the weights file is left as it is; only the JSON is rewritten
        info = json.loads((out / f"{args.name}.json").read_text())
        model = face_detector(pool=1, **{k: v for k, v in info["kwargs"].items() if k != "pool"})
        model.load_state_dict(torch.load(out / info["weights"], weights_only=True))
    else:
        model, info = _train_and_export(args)
        if args.bayes_only:
            return {"bayes_only": True}
    det = face_detector(pool=2, channels=info["kwargs"]["channels"])
    det.load_state_dict(model.state_dict())
    bits = info.get("compression", {}).get("bits")  # None: the float (uncompressed) detector
    try:
        info["operating_point"] = choose_operating_point(det.eval(), bits, args)
    finally:  # trained weights are written even when no operating point passes
        if not args.choose_only:
            save_checkpoint(model, out, info)
    if args.choose_only:
        (out / f"{args.name}.json").write_text(json.dumps(info, indent=2) + "\n")
    tqdm.write(json.dumps(info["operating_point"], indent=1))
    return info


if __name__ == "__main__":
    sys.exit(0 if main() else 1)
