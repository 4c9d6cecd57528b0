"""Average and max pooling of the touched neurons, channels-last."""

import numpy as np
from numba import njit

__all__ = ["pool_update"]


@njit(cache=True, nogil=True)
def pool_update(
    x, touched_in, count_in, in_hw, c, out_hw, kernel, stride, padding, is_max,
    y, touched, count, stamp, frame,
):
    """Recompute every pooled output whose window contains a touched input.

    Output ``(oy, ox, ch)`` covers inputs ``oy*sy - py + [0, kh)`` x
    ``ox*sx - px + [0, kw)``; ``y = max`` over the in-bounds window (max) or
    ``sum / (kh*kw)`` (average, zero padding counted as in PyTorch's default).
    """
    h_in, w_in = in_hw[0], in_hw[1]
    h_out, w_out = out_hw[0], out_hw[1]
    n = 0
    for t in range(count_in[0]):
        i = touched_in[t]
        ch = i % c
        p = i // c
        iy = p // w_in
        ix = p % w_in
        # outputs with oy*s - pad <= iy < oy*s - pad + k
        oy0 = max(0, (iy + padding[0] - kernel[0]) // stride[0] + 1)
        oy1 = min(h_out - 1, (iy + padding[0]) // stride[0])
        ox0 = max(0, (ix + padding[1] - kernel[1]) // stride[1] + 1)
        ox1 = min(w_out - 1, (ix + padding[1]) // stride[1])
        for oy in range(oy0, oy1 + 1):
            for ox in range(ox0, ox1 + 1):
                o = (oy * w_out + ox) * c + ch
                if stamp[o] != frame:
                    stamp[o] = frame
                    touched[n] = o
                    n += 1
    inv = 1.0 / (kernel[0] * kernel[1])
    for t in range(n):
        o = touched[t]
        ch = o % c
        q = o // c
        oy = q // w_out
        ox = q % w_out
        acc = -np.inf if is_max else 0.0
        for ky in range(kernel[0]):
            iy = oy * stride[0] - padding[0] + ky
            if iy < 0 or iy >= h_in:
                continue
            for kx in range(kernel[1]):
                ix = ox * stride[1] - padding[1] + kx
                if ix < 0 or ix >= w_in:
                    continue
                v = x[(iy * w_in + ix) * c + ch]
                if is_max:
                    acc = max(acc, v)
                else:
                    acc += v
        y[o] = acc if is_max else acc * inv
    count[0] = n
