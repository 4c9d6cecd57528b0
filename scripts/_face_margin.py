"""Margin fine-tuning of the compressed face detector: widen its own top-two logit gap.

Regret failures of the event simulation happen on frames where the float ANN's two best cells
are nearly tied (a gap of a few ``delta``) and the event error there exceeds the gap
(``_face_bc_op``). This fine-tune adds a hinge on the student's own top-two gap on frames of the
non-test videos, keeping its patch decisions (weighted BCE) and its map (distillation toward
the shipped detector, logits floored)::

    loss = BCE_w(f(patches), y) + distill * mean((max(f(F), c) - max(T(F), c))^2)
           + margin_weight * mean_t relu(margin - (f_t[1st] - f_t[2nd]))

           + change_weight * C(F_j, F_j+1) / C_0

with ``F`` 2x2-pooled frames, ``T`` the shipped detector, ``c`` the floor, and ``f_t[1st]``,
``f_t[2nd]`` the two largest cells of the student's logit map on frame ``t`` (``topk``; the
gradient reaches both). ``C`` is a synops proxy on pairs of consecutive frames: for each ReLU
``l`` feeding a conv of ``c`` output channels, kernel ``k`` and stride ``s``,
``C = sum_l (c k^2 / s^2) * sum_i |a_l,i(F_j+1) - a_l,i(F_j)| / rms(a_l)`` (an event's fan-out
times the change in units of the layer's own activation size: the events at a scale that tracks
the layer's size; dividing by ``rms`` keeps the term from being met by shrinking a layer and
growing the next one, which leaves the events at re-optimised scales unchanged); ``C_0`` its
value for the start model on the same frames. The margin and change terms use only the first
``margin_share`` of each video's frames, so the rest stays a check on frames they never saw.
Weights are trained on their fixed-point grids (straight-through rounding, pruned weights stay zero, as in
``train_face_bc.finetune``). Eligible epochs (0 = the start) have plain validation accuracy
``>= min_val_acc`` and a validation score at most ``max_val_drop`` below the start's; of them,
``keep="best"`` keeps the best score (ties: the earlier), ``keep="last"`` the last epoch (the
most margin training).
"""

from __future__ import annotations

import argparse
import copy
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn
from tqdm.auto import tqdm

__all__ = ["change_proxy", "gap_record", "margin_finetune", "margin_frames"]


def margin_frames(frames: torch.Tensor, lengths: dict[str, int], share: float
                  ) -> tuple[torch.Tensor, torch.Tensor]:
    """Index of the frames the margin term trains on (the first ``share`` of each video, in
    the order of ``lengths``) and of the held-out rest."""
    train, rest, start = [], [], 0
    for n in lengths.values():
        cut = start + int(round(share * n))
        train.append(torch.arange(start, cut))
        rest.append(torch.arange(cut, start + n))
        start += n
    if start != len(frames):
        raise ValueError(f"margin_frames: videos hold {start} frames, got {len(frames)}")
    return torch.cat(train), torch.cat(rest)


def _gap(out: torch.Tensor) -> torch.Tensor:
    top = out.flatten(1).topk(2, dim=1).values
    return top[:, 0] - top[:, 1]


def gap_record(model: nn.Module, frames: torch.Tensor, delta: float) -> dict[str, float]:
    """Top-two gap of ``model``'s maps on ``frames`` in units of ``delta``: median, and the
    share of frames under 2 and under 4 delta."""
    with torch.no_grad():
        g = _gap(model(frames)).numpy() / delta
    return {"median_gap_delta": round(float(np.median(g)), 3),
            "share_under_2_delta": round(float(np.mean(g < 2)), 4),
            "share_under_4_delta": round(float(np.mean(g < 4)), 4)}


def _fans(model: nn.Module) -> dict[nn.Module, float]:
    """Each ReLU and the synops one of its events costs in the conv it feeds."""
    mods, fans = list(model.modules()), {}
    for i, m in enumerate(mods):
        nxt = next((n for n in mods[i + 1:] if isinstance(n, nn.Conv2d)), None)
        if isinstance(m, nn.ReLU) and nxt is not None:
            k, s = nxt.kernel_size, nxt.stride
            fans[m] = nxt.out_channels * k[0] * k[1] / (s[0] * s[1])
    return fans


def change_proxy(model: nn.Module, a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """``C`` of the module docstring for frame pairs ``(a[i], b[i])``; returns the map of
    ``b`` too (``(C, model(b))``)."""
    acts: dict[nn.Module, torch.Tensor] = {}
    fans = _fans(model)
    hooks = [m.register_forward_hook(lambda m, i, o: acts.__setitem__(m, o)) for m in fans]
    try:
        model(torch.cat([a, b]))
    finally:
        for h in hooks:
            h.remove()
    total = torch.zeros(())
    for m, fan in fans.items():
        x, y = acts[m].chunk(2)
        rms = acts[m].pow(2).mean().sqrt() + 1e-6
        total = total + fan * (y - x).abs().flatten(1).sum(1).mean() / rms
    return total


def _pairs(idx: torch.Tensor) -> torch.Tensor:
    """Frames of ``idx`` whose successor is also in ``idx`` (same video, consecutive)."""
    keep = set(idx.tolist())
    return torch.tensor([i for i in idx.tolist() if i + 1 in keep])


def _epoch(model, opt, d, frames, targets, idx, args, gen) -> float:
    x, y = torch.from_numpy(d["x_train"]).unsqueeze(1), torch.from_numpy(d["y_train"])
    w = torch.as_tensor(d["weights"])
    pos_weight = torch.tensor(float((y == 0).sum()) / max(float((y == 1).sum()), 1.0))
    perm, tot = torch.randperm(len(x), generator=gen), 0.0
    model.train()
    for i in range(0, len(x), args.batch_size):
        b = perm[i:i + args.batch_size]
        loss = F.binary_cross_entropy_with_logits(model(x[b]).flatten(), y[b], w[b],
                                                  pos_weight=pos_weight)
        j = idx[torch.randint(len(idx), (args.distill_batch,), generator=gen)]
        out = model(frames[j])
        loss = loss + args.distill * F.mse_loss(out.clamp(min=args.floor),
                                                targets[j].clamp(min=args.floor))
        loss = loss + args.margin_weight * F.relu(args.margin - _gap(out)).mean()
        if args.change_weight > 0:
            p = args.pairs[torch.randint(len(args.pairs), (args.distill_batch,), generator=gen)]
            c = change_proxy(model, frames[p], frames[p + 1])
            loss = loss + args.change_weight * c / args.change_start
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        tot += float(loss.detach()) * len(b) / len(x)
    return tot


def margin_finetune(model: nn.Module, bits: dict[str, int], d: dict[str, np.ndarray],
                    frames: torch.Tensor, targets: torch.Tensor, idx: torch.Tensor,
                    args: argparse.Namespace, val: tuple[np.ndarray, ...]
                    ) -> tuple[nn.Module, dict[str, Any]]:
    """Fine-tune ``model`` (pool=1) with the margin loss (module docstring) for
    ``args.epochs`` epochs (cosine learning rate from ``args.lr``); ``idx`` the frames of
    the margin and distillation terms; ``val = (x, y, kinds)``. Returns the kept model and
    the per-epoch validation scores."""
    from _face_groups import patch_accuracy, val_score
    from torch.nn.utils import parametrize
    from train_face_bc import _FixedPoint

    for name, mod in model.named_modules():
        if isinstance(mod, nn.Conv2d):
            mask = (mod.weight.detach() != 0).float()
            mod.weight.register_hook(lambda g, m=mask: g * m)
            parametrize.register_parametrization(mod, "weight", _FixedPoint(bits[name]))
    gen = torch.Generator().manual_seed(args.seed)
    torch.manual_seed(args.seed)
    args.pairs = _pairs(idx)
    with torch.no_grad():
        args.change_start = float(change_proxy(model, frames[args.pairs], frames[args.pairs + 1]))
    opt = torch.optim.Adam(model.parameters(), lr=args.lr)
    hist, best = [], (-1.0, 0, None)
    for epoch in range(args.epochs + 1):
        if epoch:
            for g in opt.param_groups:
                g["lr"] = args.lr * 0.5 * (1.0 + np.cos(np.pi * (epoch - 1) / args.epochs))
            loss = _epoch(model, opt, d, frames, targets, idx, args, gen)
            tqdm.write(f"margin epoch {epoch}: loss {loss:.4f}")
        model.eval()
        hist.append(round(val_score(model, *val, select=args.select), 4))
        ok = (patch_accuracy(model, *val[:2]) >= args.min_val_acc
              and hist[-1] >= hist[0] - args.max_val_drop)
        if ok and (hist[-1] > best[0] or (args.keep == "last" and epoch)):
            best = (hist[-1], epoch, copy.deepcopy(model.state_dict()))
    if best[2] is None:
        raise RuntimeError(f"no margin epoch reached --min-val-acc {args.min_val_acc}")
    model.load_state_dict(best[2])
    for mod in model.modules():
        if isinstance(mod, nn.Conv2d):
            parametrize.remove_parametrizations(mod, "weight", leave_parametrized=True)
    return model.eval(), {"validation_score_per_epoch": hist, "epoch_kept": best[1]}
