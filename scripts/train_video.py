"""Train the fully convolutional face detector on scikit-image patches and save it.

Data (no video frames are used for training; the carphone test video is never seen):

* positives: the 100 faces of ``skimage.data.lfw_subset()`` (indices 0-99; 100-199 are
  non-faces), split 80 train / 20 test, augmented with flips, small rotations,
  rescaling (0.85-1.45), shifts of up to 2 px, contrast / brightness jitter and noise;
* negatives: the 100 non-face ``lfw_subset`` patches (80 / 20), random multi-scale
  crops of face-free scikit-image sample images (some images held out for testing;
  of ``astronaut`` and ``camera`` only the regions below the face: clothing, body),
  off-centre crops of faces pasted on background texture (so that the map peaks on the
  face centre) and, after a first training round, hard negatives mined by running the
  detector over the training images (bootstrapping, Sung & Poggio 1998).

At test time the detector runs over whole frames; ``face_detector(pool=2)`` averages
2x2 pixels first so that a ~50 px face of a QCIF (144x176) frame matches the 25 px
training faces.

Example (the command that produced the committed checkpoint)::

    python scripts/train_video.py --epochs 30 --seed 0 --out models/checkpoints
"""

from __future__ import annotations

import argparse

import numpy as np
import torch
from _common import command_line, fit, save_checkpoint, seed_everything
from sigmadelta.models import FACE_PATCH, face_detector
from skimage import color, data, transform
from torch import nn

__all__ = ["TRAIN_IMAGES", "TEST_IMAGES", "make_patches", "main"]

P = FACE_PATCH
#: Hidden widths of the detector (the ``face_detector`` default).
CHANNELS = (8, 24, 48)
#: Face-free scikit-image sample images used for training negatives.
TRAIN_IMAGES = (
    "brick", "grass", "gravel", "text", "page", "moon", "horse", "coffee", "chelsea",
    "hubble_deep_field", "cell", "checkerboard", "retina", "colorwheel",
    "immunohistochemistry", "logo", "astronaut", "camera",
)
#: Images with a person: only these face-free regions (clothing, body, background) are used.
_REGIONS = {
    "astronaut": (slice(230, None), slice(None)),
    "camera": (slice(200, None), slice(None)),
}
#: Face-free images whose patches are only used as test negatives.
TEST_IMAGES = ("coins", "clock", "rocket")


def _gray(name: str) -> np.ndarray:
    """A scikit-image sample image as float grayscale in [0, 1]."""
    img = np.asarray(getattr(data, name)())
    if name in _REGIONS:
        img = img[_REGIONS[name]]
    if img.ndim == 3:
        img = color.rgb2gray(img[..., :3])
    img = img.astype(np.float64)
    if img.max() > 1.0:
        img = img / 255.0
    return img


def _photometric(p: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Random contrast, brightness, gamma and noise, clipped to [0, 1]."""
    p = np.clip(p, 0, 1) ** rng.uniform(0.7, 1.4)
    c = rng.uniform(0.35, 1.1)
    lo = rng.uniform(0, max(1 - c * (p.max() - p.min()), 0) + 1e-6) - c * p.min()
    p = c * p + lo + rng.normal(0, rng.uniform(0, 0.03), p.shape)
    return np.clip(p, 0, 1)


def _warp(img: np.ndarray, rng: np.random.Generator, rot: float, scale: tuple[float, float],
          shift: float) -> np.ndarray:
    """Random similarity transform about the patch centre (output P x P)."""
    s = rng.uniform(*scale)
    a = np.deg2rad(rng.uniform(-rot, rot))
    c = (np.array(img.shape[::-1]) - 1) / 2
    t = transform.SimilarityTransform(translation=-c)
    t += transform.SimilarityTransform(scale=s, rotation=a)
    t += transform.SimilarityTransform(translation=(P - 1) / 2 + rng.uniform(-shift, shift, 2))
    out = transform.warp(img, t.inverse, output_shape=(P, P), mode="edge")
    return out[:, ::-1] if rng.random() < 0.5 else out


def _positives(faces: np.ndarray, n: int, rng: np.random.Generator) -> np.ndarray:
    out = [_photometric(_warp(faces[i % len(faces)], rng, 15, (0.85, 1.45), 2), rng)
           for i in range(n)]
    return np.stack(out)


def _random_crops(images: list[np.ndarray], n: int, rng: np.random.Generator) -> np.ndarray:
    """Multi-scale random square crops resized to P x P."""
    out = []
    for i in range(n):
        img = images[i % len(images)]
        hi = min(img.shape) // 2
        s = int(np.exp(rng.uniform(np.log(P), np.log(max(hi, P + 1)))))
        y, x = rng.integers(0, img.shape[0] - s + 1), rng.integers(0, img.shape[1] - s + 1)
        crop = transform.resize(img[y : y + s, x : x + s], (P, P), anti_aliasing=True)
        crop = crop[:, ::-1] if rng.random() < 0.5 else crop
        out.append(_photometric(crop, rng))
    return np.stack(out)


def _offcentre_faces(faces: np.ndarray, bg: list[np.ndarray], n: int,
                     rng: np.random.Generator) -> np.ndarray:
    """Faces pasted on background texture, cropped 9-16 px off-centre (negatives)."""
    out = []
    for i in range(n):
        canvas = _random_crops(bg, 1, rng)[0]
        canvas = transform.resize(canvas, (3 * P, 3 * P))
        canvas[P : 2 * P, P : 2 * P] = _warp(faces[i % len(faces)], rng, 10, (0.9, 1.1), 1)
        d = rng.integers(9, 17) * rng.choice([-1, 1], 2) * (rng.random(2) < 0.8)
        d[np.abs(d).max() == 0] = 12
        y, x = P + d[0], P + d[1]
        out.append(_photometric(canvas[y : y + P, x : x + P], rng))
    return np.stack(out)


def make_patches(seed: int, n_pos: int = 8000, n_neg: int = 12000) -> dict[str, np.ndarray]:
    """Generate the train / test patch sets (float32 arrays, labels 1 = face).

    Parameters
    ----------
    seed : int
        Seed of the NumPy generator driving every random choice.
    n_pos, n_neg : int, optional
        Numbers of augmented training positives and negatives.

    Returns
    -------
    dict
        ``x_train, y_train, x_test, y_test, x_lfw_test, y_lfw_test`` (x: ``(N, 25, 25)``).
    """
    rng = np.random.default_rng(seed)
    lfw = data.lfw_subset()
    faces, nonfaces = lfw[:100], lfw[100:]
    bg = [_gray(n) for n in TRAIN_IMAGES]
    bg_test = [_gray(n) for n in TEST_IMAGES]
    n_off, n_lfw = n_neg // 5, n_neg // 10
    lfw_neg = np.stack([_photometric(_warp(nonfaces[i % 80], rng, 180, (0.8, 1.25), 3), rng)
                        for i in range(n_lfw)])
    x_train = np.concatenate([
        _positives(faces[:80], n_pos, rng),
        _random_crops(bg, n_neg - n_off - n_lfw, rng),
        _offcentre_faces(faces[:80], bg, n_off, rng),
        lfw_neg,
    ])
    y_train = np.r_[np.ones(n_pos), np.zeros(n_neg)]
    x_test = np.concatenate([
        _positives(faces[80:], 1000, rng),
        _random_crops(bg_test, 800, rng),
        _offcentre_faces(faces[80:], bg_test, 200, rng),
    ])
    y_test = np.r_[np.ones(1000), np.zeros(1000)]
    return {
        "x_train": x_train.astype(np.float32), "y_train": y_train.astype(np.float32),
        "x_test": x_test.astype(np.float32), "y_test": y_test.astype(np.float32),
        "x_lfw_test": np.concatenate([faces[80:], nonfaces[80:]]).astype(np.float32),
        "y_lfw_test": np.r_[np.ones(20), np.zeros(20)].astype(np.float32),
    }


def _logits(model: nn.Module, x: np.ndarray, batch: int = 2048) -> np.ndarray:
    """Face logits of ``(N, 25, 25)`` patches."""
    model.eval()
    out = []
    with torch.no_grad():
        for i in range(0, len(x), batch):
            xb = torch.from_numpy(x[i : i + batch]).unsqueeze(1)
            out.append(model(xb).flatten().numpy())
    return np.concatenate(out)


def accuracy(model: nn.Module, x: np.ndarray, y: np.ndarray) -> float:
    """Patch classification accuracy with the decision ``logit > 0``."""
    return float(((_logits(model, x) > 0) == (y > 0.5)).mean())


def mine_hard_negatives(model: nn.Module, images: list[np.ndarray], n: int,
                        rng: np.random.Generator) -> np.ndarray:
    """Windows of the training images the detector scores highest (all are non-faces)."""
    cands: list[tuple[float, np.ndarray]] = []
    model.eval()
    for img in images:
        for f in (1.0, 0.7, 0.5, 0.35, 0.25):
            im = transform.rescale(img, f, anti_aliasing=f < 1) if f < 1 else img
            if min(im.shape) < 2 * P:
                continue
            with torch.no_grad():
                m = model(torch.from_numpy(im.astype(np.float32))[None, None])[0, 0].numpy()
            im = np.pad(im, ((0, 2), (0, 2)), mode="edge")  # 25-px windows, 23-px fields
            for idx in np.argsort(m, axis=None)[::-1][:40]:
                r, c = np.unravel_index(idx, m.shape)
                cands.append((float(m[r, c]), im[4 * r : 4 * r + P, 4 * c : 4 * c + P]))
    cands.sort(key=lambda t: -t[0])
    pool = [p for _, p in cands[: max(n // 4, 1)]]
    out = [_photometric(pool[i % len(pool)][:, ::-1] if rng.random() < 0.5
                        else pool[i % len(pool)], rng) for i in range(n)]
    return np.stack(out).astype(np.float32)


def train(model: nn.Module, x: np.ndarray, y: np.ndarray, epochs: int, gen: torch.Generator,
          lr: float = 3e-3, batch_size: int = 128, desc: str = "train") -> nn.Module:
    """Adam + cosine schedule on class-balanced binary cross-entropy."""
    xt, yt = torch.from_numpy(x).unsqueeze(1), torch.from_numpy(y)
    pos_weight = torch.tensor(float((yt == 0).sum()) / max(float((yt == 1).sum()), 1.0))
    loss_fn = nn.BCEWithLogitsLoss(pos_weight=pos_weight)

    def batch_loss(idx: torch.Tensor) -> torch.Tensor:
        return loss_fn(model(xt[idx]).flatten(), yt[idx])

    return fit(model, len(xt), batch_loss, epochs, gen, lr, 1e-4, batch_size, desc)


def carphone_frames() -> np.ndarray | None:
    """Grayscale carphone frames in [0, 1] (``(T, 144, 176)``), or None if unavailable."""
    from sigmadelta.datasets import MissingDependencyError, open_source

    try:
        return np.stack(list(open_source("carphone")))[:, 0]
    except MissingDependencyError:
        return None


def video_summary(model: nn.Module, frames: np.ndarray) -> dict[str, float]:
    """Test-time statistics on a video (no labels): present fraction, argmax spread."""
    from sigmadelta.models import face_decision

    with torch.no_grad():
        maps = model(torch.from_numpy(frames).unsqueeze(1))
    dec = [face_decision(m) for m in maps]
    rows, cols, pres = (np.array(v, dtype=float) for v in zip(*dec, strict=True))
    return {
        "frames": int(len(frames)),
        "face_present_fraction": float(pres.mean()),
        "argmax_row_median": float(np.median(rows)),
        "argmax_col_median": float(np.median(cols)),
        "map_shape": list(maps.shape[-2:]),
    }


def _build(args: argparse.Namespace) -> tuple[nn.Module, dict[str, np.ndarray]]:
    gen = seed_everything(args.seed)
    rng = np.random.default_rng(args.seed + 1)
    d = make_patches(args.seed)
    model = face_detector(pool=1, channels=CHANNELS)
    train(model, d["x_train"], d["y_train"], args.epochs, gen, desc="round 1")
    print(f"round 1: held-out patch accuracy {100 * accuracy(model, d['x_test'], d['y_test']):.2f}%")
    hard = mine_hard_negatives(model, [_gray(n) for n in TRAIN_IMAGES], args.n_hard, rng)
    d["x_train"] = np.concatenate([d["x_train"], hard])
    d["y_train"] = np.r_[d["y_train"], np.zeros(len(hard), np.float32)]
    model = face_detector(pool=1, channels=CHANNELS)
    train(model, d["x_train"], d["y_train"], args.epochs, gen, desc="round 2")
    return model, d


def main(argv: list[str] | None = None) -> None:
    """Command-line entry point."""
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--epochs", type=int, default=30)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--n-hard", type=int, default=4000, help="mined hard negatives")
    p.add_argument("--out", default="models/checkpoints")
    args = p.parse_args(argv)
    torch.set_num_threads(1)
    model, d = _build(args)
    acc = accuracy(model, d["x_test"], d["y_test"])
    acc_lfw = accuracy(model, d["x_lfw_test"], d["y_lfw_test"])
    print(f"held-out patch accuracy {100 * acc:.2f}% ({len(d['y_test'])} patches); "
          f"raw held-out lfw_subset {100 * acc_lfw:.2f}% ({len(d['y_lfw_test'])} patches)")
    frames = carphone_frames()
    info = {
        "name": "face_detector",
        "description": "fully convolutional face detector (25x25 patches); pool=2 for "
                       "144x176 frames; logit map, face where max > 0",
        "factory": "face_detector",
        "kwargs": {"pool": 2, "channels": list(CHANNELS)},
        "input_shape": [1, 144, 176],
        "dataset": "skimage lfw_subset faces 0-79 + face-free skimage images (train); "
                   "faces 80-99 + images " + ", ".join(TEST_IMAGES) + " (test)",
        "command": command_line(),
        "seed": args.seed,
        "epochs": args.epochs,
        "metrics": {"test_patch_accuracy": round(acc, 6),
                    "test_lfw_patch_accuracy": round(acc_lfw, 6)},
    }
    if frames is not None:
        det = face_detector(pool=2, channels=CHANNELS)
        det.load_state_dict(model.state_dict())
        summary = video_summary(det.eval(), frames)
        print(f"carphone (test video, unlabelled): {summary}")
        info["carphone_summary"] = summary
    save_checkpoint(model, args.out, info)


if __name__ == "__main__":
    main()
