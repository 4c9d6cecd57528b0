"""Continue fine-tuning the compressed face detector, selected on a validation split.

Starts from an existing ``face_detector_bc`` checkpoint (same pruned channels, same fixed-point
bits) and runs ``--rounds`` rounds of ``train_face_bc.finetune`` (one epoch each: BCE on the
training patches + ``--distill`` times the floored logit-map MSE to the shipped detector on
bikes / bigbuckbunny frames; straight-through rounding on the fixed-point grids, pruned weights
stay zero; Adam restarted each round). A stratified ``--val-frac`` of the *training* patches
(hard negatives included) is held out as a validation split and never trained on; the round
with the best validation accuracy (round 0 = the starting checkpoint; ties: the earlier round)
is kept. The held-out test patches are measured once, for the kept model only, and never used
to choose anything; carphone is not used at all.

Example::

    python scripts/finetune_face_bc.py --rounds 6 --out out/face_bc_ft
"""

from __future__ import annotations

import argparse
import copy
import json
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from _common import command_line, save_checkpoint, validation_split
from tqdm.auto import tqdm
from train_face_bc import _teacher, distill_frames, finetune, patch_accuracy, patch_data

__all__ = ["main", "validation_split"]


def _parse(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--ckpt", default="models/checkpoints", help="folder of the start checkpoint")
    p.add_argument("--name", default="face_detector_bc")
    p.add_argument("--out", default="out/face_bc_ft")
    p.add_argument("--work", default="out/face_bc", help="patch / frame cache folder")
    p.add_argument("--rounds", type=int, default=6)
    p.add_argument("--val-frac", type=float, default=0.15)
    p.add_argument("--lr", type=float, default=1e-3)
    p.add_argument("--distill", type=float, default=0.1)
    p.add_argument("--floor", type=float, default=-8.0)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--n-hard", type=int, default=4000)
    p.add_argument("--batch-size", type=int, default=128)
    p.add_argument("--distill-batch", type=int, default=2)
    return p.parse_args(argv)


def main(argv: list[str] | None = None) -> dict[str, Any]:
    """Command-line entry point; returns the new checkpoint record."""
    from sigmadelta.models import face_detector

    args = _parse(argv)
    torch.set_num_threads(1)
    torch.set_flush_denormal(True)
    info = json.loads((Path(args.ckpt) / f"{args.name}.json").read_text())
    model = face_detector(pool=1, channels=info["kwargs"]["channels"])
    model.load_state_dict(torch.load(Path(args.ckpt) / info["weights"], weights_only=True))
    teacher = _teacher()
    d = patch_data(args.seed, teacher, args.n_hard, Path(args.work))
    frames, targets = distill_frames(teacher, Path(args.work))
    train, x_val, y_val = validation_split(d, args.val_frac, args.seed + 7)
    fargs = argparse.Namespace(seed=args.seed, lr=args.lr, finetune_lr=args.lr,
                               batch_size=args.batch_size, distill_batch=args.distill_batch,
                               scale_lr_mult=1.0, threshold=0.0, finetune_epochs=1,
                               finetune_distill=args.distill, finetune_floor=args.floor)
    best = (patch_accuracy(model, x_val, y_val), 0, copy.deepcopy(model))
    history = [best[0]]
    for r in range(1, args.rounds + 1):
        fargs.seed = args.seed + r
        model = finetune(model, info["compression"]["bits"], train, frames, targets, fargs)
        history.append(patch_accuracy(model, x_val, y_val))
        tqdm.write(f"round {r}: validation patch accuracy {history[-1]:.4f}")
        if history[-1] > best[0]:
            best = (history[-1], r, copy.deepcopy(model))
    model = best[2]
    with torch.no_grad():
        dis = float(F.mse_loss(model(frames).clamp(min=args.floor), targets.clamp(min=args.floor)))
    info["metrics"] = {
        "test_patch_accuracy": round(patch_accuracy(model, d["x_test"], d["y_test"]), 6),
        "test_lfw_patch_accuracy": patch_accuracy(model, d["x_lfw_test"], d["y_lfw_test"]),
        "validation_patch_accuracy": round(best[0], 6), "distill_mse_non_test": round(dis, 5)}
    info["compression"]["further_finetune"] = {
        "command": command_line(), "rounds_run": args.rounds, "round_kept": best[1],
        "validation": f"stratified {args.val_frac:g} of the training patches (seed "
                      f"{args.seed + 7}), not trained on; test patches not used to choose",
        "validation_accuracy_per_round": [round(a, 4) for a in history],
        "lr": args.lr, "distill": args.distill, "distill_floor": args.floor}
    save_checkpoint(model, args.out, info)
    tqdm.write(json.dumps(info["metrics"], indent=1))
    return info


if __name__ == "__main__":
    main()
