"""Kinds of face / non-face training patches, their loss weights, and a validation accuracy
weighted like the test patches.

``train_video.make_patches`` draws its training patches in blocks (augmented faces, background
crops, off-centre faces, LFW non-faces) and ``train_face_bc.patch_data`` appends hard negatives
mined by the shipped detector. The test patches are only faces, background crops and
off-centre faces (1000 / 800 / 200), so a validation split that is one sixth hard negatives
(which the shipped detector fails by construction) rewards trading face recall for them; the
*test-mix* validation accuracy weighs the validation patches of each kind like the test set::

    acc_mix = sum_k TEST_MIX[k] * mean(correct | kind == k)
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
from torch import nn

__all__ = ["GROUPS", "TEST_MIX", "group_accuracy", "loss_weights", "mix_accuracy",
           "patch_accuracy", "patch_groups", "val_record", "val_score"]

#: Kinds of training patch, in the order ``make_patches`` + hard negatives stack them.
GROUPS = ("face", "background", "off-centre face", "lfw non-face", "hard negative")
#: Shares of the kinds in the test patches (``make_patches``: 1000 faces, 800 background
#: crops, 200 off-centre faces).
TEST_MIX = {"face": 0.5, "background": 0.4, "off-centre face": 0.1}


def patch_groups(n_hard: int, n_pos: int = 8000, n_neg: int = 12000) -> np.ndarray:
    """Kind (index into ``GROUPS``) of every training patch of ``make_patches(seed, n_pos,
    n_neg)`` followed by ``n_hard`` mined hard negatives (its block sizes: ``n_off = n_neg //
    5`` off-centre faces, ``n_lfw = n_neg // 10`` LFW non-faces, the rest background)."""
    n_off, n_lfw = n_neg // 5, n_neg // 10
    sizes = {"face": n_pos, "background": n_neg - n_off - n_lfw, "off-centre face": n_off,
             "lfw non-face": n_lfw, "hard negative": n_hard}
    return np.concatenate([np.full(sizes[g], i, np.int8) for i, g in enumerate(GROUPS)])


def loss_weights(groups: np.ndarray, face: float = 1.0, hard: float = 1.0) -> np.ndarray:
    """Per-patch BCE weight: ``face`` for faces, ``hard`` for hard negatives, 1 otherwise."""
    w = np.ones(len(groups), np.float32)
    w[groups == GROUPS.index("face")] = face
    w[groups == GROUPS.index("hard negative")] = hard
    return w


def group_accuracy(correct: np.ndarray, groups: np.ndarray) -> dict[str, float]:
    """Share of ``correct`` within each kind present in ``groups``."""
    return {g: float(correct[groups == i].mean()) for i, g in enumerate(GROUPS)
            if (groups == i).any()}


def mix_accuracy(correct: np.ndarray, groups: np.ndarray) -> float:
    """Accuracy with the kinds weighted like the test patches (``TEST_MIX``)."""
    acc = group_accuracy(correct, groups)
    return float(sum(w * acc[g] for g, w in TEST_MIX.items()))


def patch_accuracy(model: nn.Module, x: np.ndarray, y: np.ndarray) -> float:
    """Patch accuracy with the decision ``logit > 0`` (model at its own scale, pool=1)."""
    model.eval()
    with torch.no_grad():
        out = model(torch.from_numpy(x).unsqueeze(1)).flatten().numpy()
    return float(((out > 0) == (y > 0.5)).mean())


def val_score(model: nn.Module, x: np.ndarray, y: np.ndarray, kinds: np.ndarray | None = None,
              select: str = "all") -> float:
    """Validation patch accuracy: ``select="all"`` plain, ``"test-mix"`` the patch kinds
    weighted like the test patches (``_face_groups.mix_accuracy``, needs ``kinds``)."""
    if select == "all":
        return patch_accuracy(model, x, y)
    with torch.no_grad():
        out = model(torch.from_numpy(x).unsqueeze(1)).flatten().numpy()
    return mix_accuracy((out > 0) == (y > 0.5), kinds)


def val_record(model: nn.Module, x: np.ndarray, y: np.ndarray, kinds: np.ndarray
               ) -> dict[str, Any]:
    """Validation accuracy overall, weighted like the test patches, and per patch kind."""
    with torch.no_grad():
        ok = (model(torch.from_numpy(x).unsqueeze(1)).flatten().numpy() > 0) == (y > 0.5)
    return {"validation_patch_accuracy": round(float(ok.mean()), 6),
            "validation_test_mix_accuracy": round(mix_accuracy(ok, kinds), 6),
            "validation_accuracy_by_kind": {k: round(v, 4)
                                            for k, v in group_accuracy(ok, kinds).items()}}
