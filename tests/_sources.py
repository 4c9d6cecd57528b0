"""The FrameSource contract, checked frame by frame (shared by the dataset tests)."""

import numpy as np


def check_frames(src) -> np.ndarray:
    """Iterate ``src`` fully, checking the FrameSource contract on every frame."""
    frames = list(src)
    assert len(frames) == len(src)
    for f in frames:
        assert f.dtype == np.float32 and f.shape == src.frame_shape and f.flags.c_contiguous
    return np.stack(frames)
