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

With ``--margin-weight > 0`` it instead runs ``_face_margin.margin_finetune`` for ``--epochs``
epochs: the same BCE (patch kinds weighted) and distillation plus a hinge that widens the
student's own top-two logit gap on the first ``--margin-share`` of each non-test video's frames;
the epoch is chosen on the validation split as above (``--select``, ``--min-val-acc``).

Examples::

    python scripts/finetune_face_bc.py --rounds 6 --out out/face_bc_ft
    python scripts/finetune_face_bc.py --margin-weight 1 --margin 0.5 --epochs 8 \\
        --select test-mix --min-val-acc 0.905 --out out/face_bc_margin
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
    p.add_argument("--margin-weight", type=float, default=0.0,
                   help="weight of the top-two gap hinge (0: the rounds above instead)")
    p.add_argument("--margin", type=float, default=0.5, help="hinge margin (logits)")
    p.add_argument("--change-weight", type=float, default=0.0,
                   help="weight of the synops proxy on consecutive frames (_face_margin)")
    p.add_argument("--margin-share", type=float, default=0.6,
                   help="first share of each video's frames the margin term trains on")
    p.add_argument("--epochs", type=int, default=8, help="margin fine-tune epochs")
    p.add_argument("--margin-streams", default="",
                   help="more non-test streams whose frames join the margin / distillation "
                        "frames (e.g. face-pan:18,face-pan:24: synthetic face video seeds)")
    p.add_argument("--face-weight", type=float, default=2.0, help="BCE weight of faces")
    p.add_argument("--hard-weight", type=float, default=0.5,
                   help="BCE weight of mined hard negatives")
    p.add_argument("--select", choices=("all", "test-mix"), default="test-mix")
    p.add_argument("--min-val-acc", type=float, default=0.905)
    p.add_argument("--max-val-drop", type=float, default=0.005,
                   help="margin epochs scoring more than this below the start are not kept")
    p.add_argument("--keep", choices=("best", "last"), default="best",
                   help="margin fine-tune: keep the best eligible epoch or the last")
    return p.parse_args(argv)


def _margin(args: argparse.Namespace, model, info: dict[str, Any], d, frames, targets
            ) -> dict[str, Any]:
    """``--margin-weight > 0``: the margin fine-tune; returns its record (gaps before/after)."""
    import numpy as np
    from _face_bc_op import load_video
    from _face_groups import loss_weights, val_record
    from _face_margin import _pairs, change_proxy, gap_record, margin_finetune, margin_frames
    from sigmadelta.models import face_detector
    from train_face_bc import NON_TEST

    from sigmadelta import fidelity

    lengths = {v: len(load_video(v)) for v in (*NON_TEST, *_extra(args))}
    idx, rest = margin_frames(frames, lengths, args.margin_share)
    k_val = validation_split({"x_train": d["group_train"], "y_train": d["y_train"]},
                             args.val_frac, args.seed + 7)[1]
    train, x_val, y_val = validation_split(d, args.val_frac, args.seed + 7)
    train["weights"] = loss_weights(train["group_train"], args.face_weight, args.hard_weight)

    def gaps(m) -> dict[str, Any]:
        det = face_detector(pool=2, channels=info["kwargs"]["channels"])
        det.load_state_dict(m.state_dict())
        full = np.concatenate([load_video(v) for v in NON_TEST])
        delta = fidelity.calibrate_delta(det.eval(), full)
        pairs = _pairs(rest)
        with torch.no_grad():
            change = float(change_proxy(m, frames[pairs], frames[pairs + 1])) / len(pairs)
        return {"delta": round(delta, 5), "margin_frames": gap_record(m, frames[idx], delta),
                "held_out_frames": gap_record(m, frames[rest], delta),
                "change_proxy_held_out_per_pair": round(change, 2)}

    before = gaps(model)
    model, hist = margin_finetune(model, info["compression"]["bits"], train, frames, targets,
                                  idx, args, (x_val, y_val, k_val))
    import hashlib

    start = Path(args.ckpt) / info["weights"]
    rec = {"command": command_line(),
           "start_weights_sha256": hashlib.sha256(start.read_bytes()).hexdigest(), **hist,
           "gaps_before": before, "gaps_after": gaps(model),
           **{k: getattr(args, k) for k in ("margin_weight", "change_weight", "margin",
                                            "margin_share", "margin_streams", "epochs", "lr",
                                            "distill", "floor", "face_weight", "hard_weight",
                                            "select", "min_val_acc", "max_val_drop", "keep")}}
    tqdm.write(json.dumps(rec, indent=1))
    return model, rec, val_record(model, x_val, y_val, k_val)


def _extra(args: argparse.Namespace) -> list[str]:
    return [v for v in args.margin_streams.split(",") if v]


def _with_extra(args: argparse.Namespace, teacher, frames: torch.Tensor, targets: torch.Tensor
                ) -> tuple[torch.Tensor, torch.Tensor]:
    """``--margin-streams``: their 2x2-pooled frames and the teacher's maps appended (after the
    non-test videos, in the order given; ``margin_frames`` splits each by ``--margin-share``)."""
    from _face_bc_op import load_video

    for v in _extra(args):
        x = F.avg_pool2d(torch.from_numpy(load_video(v)), 2)
        with torch.no_grad():
            frames, targets = torch.cat([frames, x]), torch.cat([targets, teacher(x)])
    return frames, targets


def _recount(comp: dict[str, Any], model) -> None:
    """Weights kept and compression ratios again (rounding can set a kept weight to zero)."""
    from torch import nn

    convs = [m for m in model.modules() if isinstance(m, nn.Conv2d)]
    kept = [int((m.weight != 0).sum()) for m in convs]
    bits = [comp["bits"][n] for n, m in model.named_modules() if isinstance(m, nn.Conv2d)]
    comp["weights_kept"] = sum(kept)
    comp["compression_architecture"] = round(comp["weights_total"] / sum(kept), 3)
    comp["compression_precision"] = round(32.0 * comp["weights_total"] / sum(
        k * b for k, b in zip(kept, bits, strict=True)), 3)


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
    if args.margin_weight > 0 or args.change_weight > 0:
        frames, targets = _with_extra(args, teacher, frames, targets)
        model, rec, val = _margin(args, model, info, d, frames, targets)
        info["compression"]["margin_finetune"] = rec
        _recount(info["compression"], model)
        info["metrics"] = {**val, "test_patch_accuracy": None}
        save_checkpoint(model, args.out, info)
        return info
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
