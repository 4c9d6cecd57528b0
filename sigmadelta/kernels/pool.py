"""Average and max pooling of the touched neurons, channels-last."""

import numpy as np
from numba import njit

__all__ = ["pool_update"]


@njit(cache=True, nogil=True)
def _span(i, n_out, k, s, pad):
    """First and last output ``o`` with ``o*s - pad <= i < o*s - pad + k`` (empty if first > last)."""
    a = i + pad - k  # o*s > a; both operands of ``//`` below are non-negative
    return (0 if a < 0 else a // s + 1), min(n_out - 1, (i + pad) // s)


@njit(cache=True, nogil=True)
def _window(x, oy, ox, ch, h_in, w_in, c, kernel, stride, padding, is_max):
    """Max, or sum divided by ``kh*kw``, of the in-bounds inputs of output ``(oy, ox, ch)``."""
    iy0, ix0 = oy * stride[0] - padding[0], ox * stride[1] - padding[1]
    acc = -np.inf if is_max else 0.0
    for iy in range(max(iy0, 0), min(iy0 + kernel[0], h_in)):
        for ix in range(max(ix0, 0), min(ix0 + kernel[1], w_in)):
            v = x[(iy * w_in + ix) * c + ch]
            if is_max:
                acc = max(acc, v)
            else:
                acc += v
    return acc if is_max else acc / (kernel[0] * kernel[1])  # divided, as PyTorch: bit-identical


@njit(cache=True, nogil=True)
def _scan(x, hit, h_in, w_in, c, h_out, w_out, kernel, stride, padding, is_max, y, touched, stamp, frame):
    """List, in increasing order, and recompute every output whose window has ``hit`` set."""
    area = kernel[0] * kernel[1]
    n, o = 0, 0
    for oy in range(h_out):
        iy0 = oy * stride[0] - padding[0]
        ya, yb = max(iy0, 0), min(iy0 + kernel[0], h_in)
        for ox in range(w_out):
            ix0 = ox * stride[1] - padding[1]
            xa, xb = max(ix0, 0), min(ix0 + kernel[1], w_in)
            for ch in range(c):
                acc = -np.inf if is_max else 0.0
                any_hit = False
                for iy in range(ya, yb):
                    for ix in range(xa, xb):
                        j = (iy * w_in + ix) * c + ch
                        any_hit |= hit[j] != 0
                        if is_max:
                            acc = max(acc, x[j])
                        else:
                            acc += x[j]
                if any_hit and stamp[o] != frame:
                    stamp[o] = frame
                    touched[n] = o
                    n += 1
                    y[o] = acc if is_max else acc / area
                o += 1
    return n


@njit(cache=True, nogil=True)
def _scan_2x2(x, hit, w_in, c, h_out, w_out, is_max, y, touched, stamp, frame):
    """:func:`_scan` for 2x2 windows at stride 2 without padding, all inside the input."""
    row = w_in * c
    n, o = 0, 0
    for oy in range(h_out):
        for ox in range(w_out):
            j0 = (2 * oy * w_in + 2 * ox) * c
            for ch in range(c):
                j = j0 + ch
                a, b, d, e = x[j], x[j + c], x[j + row], x[j + row + c]
                if is_max:
                    v = max(max(max(max(-np.inf, a), b), d), e)
                else:  # same order and rounding as :func:`_scan`
                    v = ((((0.0 + a) + b) + d) + e) * 0.25
                if (hit[j] | hit[j + c] | hit[j + row] | hit[j + row + c]) != 0 and stamp[o] != frame:
                    stamp[o] = frame
                    touched[n] = o
                    n += 1
                    y[o] = v
                o += 1
    return n


@njit(cache=True, nogil=True)
def pool_update(
    x, touched_in, count_in, in_hw, c, out_hw, kernel, stride, padding, is_max,
    y, touched, count, stamp, frame, hit,
):
    """Recompute every pooled output whose window contains a touched input.

    Output ``(oy, ox, ch)`` covers inputs ``iy = oy*sy - py + [0, kh)``,
    ``ix = ox*sx - px + [0, kw)`` and gets
    ``y = max_{in-bounds iy, ix} x[iy, ix, ch]`` (max) or
    ``y = (sum_{in-bounds iy, ix} x[iy, ix, ch]) / (kh*kw)`` (average, zero
    padding counted as in PyTorch's default). Outputs already stamped
    ``frame`` are skipped. When at least 1/32 of the inputs are touched they
    are flagged in ``hit`` (uint8, one per input, all zero on entry and on
    return: kept by the caller, so that no frame allocates) and one scan of all
    outputs lists them in increasing order (unrolled for 2x2 windows at stride 2
    without padding); otherwise they are listed in order of first touch.
    """
    h_in, w_in = in_hw[0], in_hw[1]
    h_out, w_out = out_hw[0], out_hw[1]
    n_in, n = count_in[0], 0
    if 32 * n_in >= h_in * w_in * c:
        for t in range(n_in):
            hit[touched_in[t]] = 1
        if (kernel[0] == 2 and kernel[1] == 2 and stride[0] == 2 and stride[1] == 2 and padding[0] == 0
                and padding[1] == 0 and 2 * h_out <= h_in and 2 * w_out <= w_in):
            count[0] = _scan_2x2(x, hit, w_in, c, h_out, w_out, is_max, y, touched, stamp, frame)
        else:
            count[0] = _scan(x, hit, h_in, w_in, c, h_out, w_out, kernel, stride, padding, is_max,
                             y, touched, stamp, frame)
        hit[:h_in * w_in * c] = 0  # one memset: at least 1/32 of it was set
        return
    for t in range(n_in):
        p = touched_in[t] // c
        ch, iy, ix = touched_in[t] - p * c, p // w_in, p % w_in
        oy0, oy1 = _span(iy, h_out, kernel[0], stride[0], padding[0])
        ox0, ox1 = _span(ix, w_out, kernel[1], stride[1], padding[1])
        for oy in range(oy0, oy1 + 1):
            for ox in range(ox0, ox1 + 1):
                o = (oy * w_out + ox) * c + ch
                if stamp[o] != frame:
                    stamp[o] = frame
                    touched[n] = o
                    n += 1
                    y[o] = _window(x, oy, ox, ch, h_in, w_in, c, kernel, stride, padding, is_max)
    count[0] = n
