"""A synthetic face video for the face detector's regret guard: a face in front of a moving
camera, made from non-test data only.

Why: the regret guard (``_face_bc_op``) pooled bigbuckbunny and bikes, which hold few frames
where the detector's two best cells nearly tie *on a face*; a net trained with a synops penalty
had more such near ties on faces than the guard could see. This stream is built to hold many:
a face that drifts, zooms and turns slowly moves the detector's maximum between neighbouring
cells of the face, and every crossing is a near tie.

How (``face_pan_frames``): ``segments`` shots of ``frames_per_segment`` gray QCIF frames
(144 x 176). Each shot takes

* one of the 80 *training* faces of ``skimage.data.lfw_subset()`` (indices 0-79; the face
  detector's held-out test faces, 80-99, are never used), resized from 25 px to a side of
  ``s_t`` (drawn in ``size``, 2x-2.4x: the ~50 px faces ``face_detector(pool=2)`` is made
  for), pasted with a soft elliptical alpha ``w(r) = clip(2 (1 - r), 0, 1)`` (``r`` the
  elliptical radius, 1 at the patch border) so that no hard edge is added;
* a background: one frame of bikes or bigbuckbunny (the non-test videos), zoomed 1.25x;
* a camera path: the background crop moves ``v_b`` px per frame (a pan, 0.5-2 px), the face
  centre ``c_t = c_0 + v_f t`` (0.2-0.8 px per frame, a slow drift inside the frame), its side
  ``s_t = s_0 (1 + z t)`` (zoom, ``|z| <= 0.2%`` per frame) and its angle ``theta_t =
  theta_0 + w t`` (``|w| <= 0.3`` degrees per frame), all drawn per shot;
* frame ``x_t = clip(alpha_t face_t + (1 - alpha_t) bg_t + n_t, 0, 1)`` with Gaussian pixel
  noise ``n_t`` of ``noise`` gray levels (default 1.5 / 255) and a per-shot contrast gain
  (0.8-1.2) of the face.

Every draw comes from ``numpy.random.default_rng(seed)``; equal arguments give equal frames.
Carphone is not used, neither its frames nor its statistics.
"""

from __future__ import annotations

from typing import Any

import numpy as np

__all__ = ["FRAME_HW", "TRAIN_FACES", "face_pan_frames", "face_pan_source"]

#: Frame height and width (the detector's gray QCIF frames).
FRAME_HW = (144, 176)
#: Indices of ``lfw_subset()`` faces the detector trained on (80-99 are its test faces).
TRAIN_FACES = range(80)


def _backgrounds(names: tuple[str, ...]) -> list[np.ndarray]:
    from sigmadelta.datasets import open_source

    return [open_source(n, size=FRAME_HW, gray=True).to_array()[:, 0].astype(np.float32)
            for n in names]


def _alpha(side: int) -> np.ndarray:
    """Soft elliptical mask of a ``side x side`` face patch: 1 inside, 0 at the border."""
    u = (np.arange(side) + 0.5) / side * 2 - 1
    r = np.sqrt(u[:, None] ** 2 / 0.95 ** 2 + u[None, :] ** 2 / 0.85 ** 2)
    return np.clip(2 * (1 - r), 0, 1).astype(np.float32)


def _warp_face(face: np.ndarray, centre: np.ndarray, side: float, angle: float
               ) -> tuple[np.ndarray, np.ndarray]:
    """The 25 px face and its alpha, scaled to ``side`` px, turned by ``angle`` degrees and
    placed at ``centre`` (row, col) of a QCIF frame (bilinear; pixel centres at integers).

    The patch's corner ``(0, 0)`` edge, not its first pixel's centre, is what the transform
    anchors, so the face's centre lands half a source pixel, rotated, before ``centre``:
    ``centre - R(angle) (side / 50) (1, 1)`` in (row, col) (kept: the guard's frames were
    made with it)."""
    from skimage import transform

    p = face.shape[0]
    tf = (transform.SimilarityTransform(translation=(-p / 2, -p / 2))
          + transform.SimilarityTransform(scale=side / p, rotation=np.deg2rad(angle))
          + transform.SimilarityTransform(translation=(centre[1], centre[0])))
    stack = np.stack([face, _alpha(p)], -1)
    out = transform.warp(stack, tf.inverse, output_shape=FRAME_HW, order=1, cval=0.0)
    return out[..., 0].astype(np.float32), out[..., 1].astype(np.float32)


def _shot(rng: np.random.Generator, face: np.ndarray, bg: np.ndarray, n: int,
          size: tuple[float, float], noise: float) -> tuple[np.ndarray, np.ndarray]:
    """``n`` frames of one shot (see the module docstring) and the face centre per frame."""
    from skimage import transform

    h, w = FRAME_HW
    big = transform.rescale(bg, 1.25, order=1, anti_aliasing=False).astype(np.float32)
    room = np.array(big.shape) - np.array(FRAME_HW)
    pan = rng.uniform(0.5, 2.0) * np.array([np.sin(a := rng.uniform(0, 2 * np.pi)), np.cos(a)])
    b0 = rng.uniform(0.2, 0.8, 2) * room
    side0 = 25 * rng.uniform(*size)
    c0 = np.array([h / 2, w / 2]) + rng.uniform(-1, 1, 2) * np.array([h / 2 - side0 / 2 - 4,
                                                                        w / 2 - side0 / 2 - 4]) * 0.6
    drift = rng.uniform(0.2, 0.8) * np.array([np.sin(a := rng.uniform(0, 2 * np.pi)), np.cos(a)])
    zoom, spin, theta0 = rng.uniform(-0.002, 0.002), rng.uniform(-0.3, 0.3), rng.uniform(-8, 8)
    gain = rng.uniform(0.8, 1.2)
    frames, centres = np.empty((n, h, w), np.float32), np.empty((n, 2))
    for t in range(n):
        r0, q0 = np.clip(np.rint(b0 + pan * t), 0, room).astype(int)
        back = big[r0:r0 + h, q0:q0 + w]
        c = np.clip(c0 + drift * t, side0 / 2, np.array([h, w]) - side0 / 2)
        f, a = _warp_face(np.clip(0.5 + gain * (face - 0.5), 0, 1), c, side0 * (1 + zoom * t),
                          theta0 + spin * t)
        x = a * f + (1 - a) * back + rng.normal(0, noise, (h, w))
        frames[t], centres[t] = np.clip(x, 0, 1), c
    return frames, centres


def face_pan_frames(seed: int = 0, segments: int = 6, frames_per_segment: int = 40,
                    size: tuple[float, float] = (2.0, 2.4), noise: float = 1.5 / 255,
                    backgrounds: tuple[str, ...] = ("bikes", "bigbuckbunny")
                    ) -> dict[str, Any]:
    """The guard video (see the module docstring).

    Returns
    -------
    dict
        ``frames`` ``float32 [segments * frames_per_segment, 1, 144, 176]`` in [0, 1],
        ``centres`` ``[T, 2]`` face centre (row, col) per frame, ``faces`` the
        ``lfw_subset`` index of each shot's face (all in :data:`TRAIN_FACES`).
    """
    if segments < 1 or frames_per_segment < 1:
        raise ValueError(f"segments and frames_per_segment must be >= 1, got {segments}, "
                         f"{frames_per_segment}")
    if not 0 < size[0] <= size[1] or 25 * size[1] >= min(FRAME_HW):
        raise ValueError(f"size {size}: face sides must be positive and fit a 144 px frame")
    from skimage import data

    rng = np.random.default_rng(seed)
    lfw = data.lfw_subset().astype(np.float32)
    bgs = _backgrounds(tuple(backgrounds))
    faces = rng.choice(np.array(TRAIN_FACES), size=segments, replace=False)
    frames, centres = [], []
    for i in faces:
        video = bgs[rng.integers(len(bgs))]
        f, c = _shot(rng, lfw[i], video[rng.integers(len(video))], frames_per_segment, size,
                     noise)
        frames.append(f)
        centres.append(c)
    return {"frames": np.concatenate(frames)[:, None], "centres": np.concatenate(centres),
            "faces": [int(i) for i in faces]}


def face_pan_source(seed: int = 0, **kw: Any):
    """:func:`face_pan_frames` as a ``sigmadelta.datasets.ArraySource`` named ``face-pan``."""
    from sigmadelta.datasets import ArraySource

    return ArraySource(face_pan_frames(seed, **kw)["frames"], name="face-pan")
