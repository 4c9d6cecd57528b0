"""Frame validation, shared by the simulator, the dense reference and the scale search.

A stream is ``[T, *input_shape]`` floating-point frames, all finite. Bad input is
reported before any work, naming the frame and the problem.
"""

from __future__ import annotations

from collections.abc import Iterable

import numpy as np

__all__ = ["as_array", "check_one", "check_frames", "iter_checked", "chunks", "is_batch"]


def as_array(frame) -> np.ndarray:
    if hasattr(frame, "detach"):  # a torch tensor
        frame = frame.detach().cpu().numpy()
    return np.asarray(frame)


def check_one(frame: np.ndarray, shape: tuple[int, ...], index: int) -> None:
    if frame.shape != tuple(shape):
        raise ValueError(f"frame {index} has shape {frame.shape}, the network expects {tuple(shape)}")
    if not np.issubdtype(frame.dtype, np.floating):
        raise TypeError(
            f"frame {index} has dtype {frame.dtype}; frames must be floating point in the units "
            f"the model was trained on (e.g. frames.astype(np.float32) / 255 for 8-bit video)"
        )
    if not np.isfinite(frame).all():
        bad = "NaN" if np.isnan(frame).any() else "Inf"
        raise ValueError(f"frame {index} contains {bad}")


def check_frames(frames: np.ndarray, shape: tuple[int, ...]) -> np.ndarray:
    """Validate a whole ``[T, *shape]`` array before any work; return it as an array."""
    frames = as_array(frames)
    if frames.ndim != len(shape) + 1 or frames.shape[1:] != tuple(shape):
        raise ValueError(
            f"frames have shape {frames.shape}, expected [T, {', '.join(map(str, shape))}]"
        )
    if frames.shape[0] == 0:
        raise ValueError("the stream is empty: no frames to simulate")
    if not np.issubdtype(frames.dtype, np.floating):
        check_one(frames[0], shape, 0)
    if not np.isfinite(frames).all():
        t = int(np.flatnonzero(~np.isfinite(frames.reshape(len(frames), -1)).all(1))[0])
        check_one(frames[t], shape, t)
    return frames


def iter_checked(frames: Iterable, shape: tuple[int, ...]):
    """Yield validated frames; raise on a bad frame before it is processed, or if empty."""
    if isinstance(frames, np.ndarray) or hasattr(frames, "detach"):
        yield from check_frames(frames, shape)
        return
    n = 0
    for n, frame in enumerate(frames, start=1):
        frame = as_array(frame)
        check_one(frame, shape, n - 1)
        yield frame
    if n == 0:
        raise ValueError("the stream is empty: no frames to simulate")


def chunks(frames: Iterable, shape: tuple[int, ...], size: int):
    """Validated frames as arrays: slices of ``size`` frames of an array, else one by one."""
    if isinstance(frames, np.ndarray) or hasattr(frames, "detach"):
        frames = check_frames(frames, shape)  # validated as a whole, before any work
        for i in range(0, len(frames), size):
            yield frames[i:i + size]
        return
    for f in iter_checked(frames, shape):  # a live stream: each frame as soon as it comes
        yield f[None]


def is_batch(net, frames) -> bool:
    """``frames`` is an array / tensor ``[B, T, *net.input_shape]`` (several streams)."""
    ndim = getattr(frames, "ndim", None)
    return ndim is not None and ndim == len(net.input_shape) + 2
