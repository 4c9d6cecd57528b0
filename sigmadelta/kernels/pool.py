"""Average and max pooling of the touched neurons, channels-last."""

import numpy as np
from numba import njit, uint64

__all__ = ["pool_update", "global_pool_rows", "SCAN_CHANNELS_FROM", "input_pool"]


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


#: busy scans of maps with at least this many channels run eight channels at a time
#: (:func:`_scan_channels`)
SCAN_CHANNELS_FROM = 8


@njit(cache=True, nogil=True)
def _scan_channels(x, hit, h_in, w_in, c, h_out, w_out, kernel, stride, padding, is_max, y, touched,
                   stamp, frame):
    """:func:`_scan` eight channels at a time: per output pixel and block of eight channels,
    eight accumulators in registers over the window's taps (each channel still folds its
    taps in the order (iy, ix) of :func:`_scan`, so the values are bit-identical), then the
    channels after the last whole block one by one. :func:`_scan`'s per-channel loop reads
    the map with a stride of ``c`` values and runs one dependent chain at a time; measured
    on a 2-vCPU Xeon (AVX-512) at load average 7-8, float32, half the inputs hit: 3x3
    stride-2 max pooling of 32x32x64 0.23 -> 0.13 ms, average of 16x16x128 0.12 -> 0.06 ms,
    the global average of 64x64x32 0.11 -> 0.10 ms."""
    area = kernel[0] * kernel[1]
    n, o = 0, 0
    c8 = c - c % 8
    for oy in range(h_out):
        iy0 = oy * stride[0] - padding[0]
        ya, yb = max(iy0, 0), min(iy0 + kernel[0], h_in)
        for ox in range(w_out):
            ix0 = ox * stride[1] - padding[1]
            xa, xb = max(ix0, 0), min(ix0 + kernel[1], w_in)
            for g in range(0, c8, 8):
                v, h = _block8(x, hit, ya, yb, xa, xb, w_in, c, g, is_max)
                for t in range(8):
                    if h[t] and stamp[o + t] != frame:
                        stamp[o + t] = frame
                        touched[n] = o + t
                        n += 1
                        y[o + t] = v[t] if is_max else v[t] / area
                o += 8
            for ch in range(c8, c):
                acc = -np.inf if is_max else 0.0
                any_hit = False
                for iy in range(ya, yb):
                    for ix in range(xa, xb):
                        j = (iy * w_in + ix) * c + ch
                        any_hit |= hit[j] != 0
                        acc = max(acc, x[j]) if is_max else acc + x[j]
                if any_hit and stamp[o] != frame:
                    stamp[o] = frame
                    touched[n] = o
                    n += 1
                    y[o] = acc if is_max else acc / area
                o += 1
    return n


@njit(cache=True, nogil=True, inline="always")
def _block8(x, hit, ya, yb, xa, xb, w_in, c, g, is_max):
    """Max (or sum, in float64) and any-hit of channels ``g..g+7`` over the window rows
    ``ya..yb-1``, columns ``xa..xb-1``, taps in order; as two 8-tuples."""
    init = -np.inf if is_max else 0.0
    a0 = a1 = a2 = a3 = a4 = a5 = a6 = a7 = init
    h = 0
    for iy in range(ya, yb):
        for ix in range(xa, xb):
            j = (iy * w_in + ix) * c + g
            if is_max:
                a0, a1, a2, a3 = max(a0, x[j]), max(a1, x[j + 1]), max(a2, x[j + 2]), max(a3, x[j + 3])
                a4, a5, a6, a7 = max(a4, x[j + 4]), max(a5, x[j + 5]), max(a6, x[j + 6]), max(a7, x[j + 7])
            else:
                a0, a1, a2, a3 = a0 + x[j], a1 + x[j + 1], a2 + x[j + 2], a3 + x[j + 3]
                a4, a5, a6, a7 = a4 + x[j + 4], a5 + x[j + 5], a6 + x[j + 6], a7 + x[j + 7]
            h |= (hit[j] | hit[j + 1] << 1 | hit[j + 2] << 2 | hit[j + 3] << 3 | hit[j + 4] << 4
                  | hit[j + 5] << 5 | hit[j + 6] << 6 | hit[j + 7] << 7)
    return ((a0, a1, a2, a3, a4, a5, a6, a7),
            (h & 1, h & 2, h & 4, h & 8, h & 16, h & 32, h & 64, h & 128))


@njit(cache=True, nogil=True, inline="always")
def _scan_2x2_rows(x, hit, w_in, c, h_out, w_out, is_max, y, touched, stamp, frame):
    """The body of :func:`_scan_2x2` (inlined: ``c`` may be a literal), an output row at a
    time in two passes. First, branchless, every output's flag ``f`` (a window input hit and
    the output not yet stamped ``frame``) is computed, its stamp and value selected by it,
    and ``f`` kept in ``touched[o]``; then the row's flags are compacted in place into the
    list (``touched[n] = o`` with ``n <= o``: every flag is read before its slot is written).
    Unsigned indices: no negative-index wraparound test, so the first pass vectorises. (The
    demo network's 144x176 gray input and 2x2 average, 60 frames of carphone, float32: the
    fused input and pooling 0.046 -> 0.038 ms per frame against the one-pass listing before it,
    best of 20 alternating passes, thread CPU time, 2-vCPU Intel Xeon VM (AVX-512), load 2.5.)"""
    row, cc, wc = uint64(w_in * c), uint64(c), uint64(w_out * c)
    n = 0
    for oy in range(h_out):
        o0, jr = uint64(oy) * wc, uint64(2 * oy) * row
        for k in range(wc):
            ox = uint64(k) // cc
            j = jr + uint64(2) * ox * cc + (uint64(k) - ox * cc)
            o = o0 + uint64(k)
            a, b, d, e = x[j], x[j + cc], x[j + row], x[j + row + cc]
            if is_max:
                v = max(max(max(max(-np.inf, a), b), d), e)
            else:  # same order and rounding as :func:`_scan`
                v = ((((0.0 + a) + b) + d) + e) * 0.25
            f = ((hit[j] | hit[j + cc] | hit[j + row] | hit[j + row + cc]) != 0) & (stamp[o] != frame)
            stamp[o] = frame if f else stamp[o]
            y[o] = v if f else y[o]
            touched[o] = f
        for k in range(wc):
            o = o0 + uint64(k)
            f = touched[o]
            touched[n] = o
            n += f
    return n


@njit(cache=True, nogil=True)
def _scan_2x2(x, hit, w_in, c, h_out, w_out, is_max, y, touched, stamp, frame):
    """:func:`_scan` for 2x2 windows at stride 2 without padding, all inside the input
    (one channel compiled on its own: the channel loop goes; the demo network's 2x2 average
    of 144x176 gray frames, float32, about half the inputs changing, thread CPU time,
    alternating with the branchy loop before it, 2-vCPU AMD EPYC VM (Zen 4), load 2-3:
    :func:`pool_update` with the frame copied into its input 0.061 -> 0.048 ms; the same
    values, stamps and listing)."""
    if c == 1:
        return _scan_2x2_rows(x, hit, w_in, 1, h_out, w_out, is_max, y, touched, stamp, frame)
    return _scan_2x2_rows(x, hit, w_in, c, h_out, w_out, is_max, y, touched, stamp, frame)


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
    without padding; eight channels at a time from :data:`SCAN_CHANNELS_FROM`
    channels); otherwise they are listed in order
    of first touch.
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
        elif c >= SCAN_CHANNELS_FROM:
            count[0] = _scan_channels(x, hit, h_in, w_in, c, h_out, w_out, kernel, stride, padding,
                                      is_max, y, touched, stamp, frame)
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


@njit(cache=True, nogil=True)
def global_pool_rows(x, row_count, c, is_max, y, touched, count, stamp, frame, acc):
    """Global pooling (one window, the whole map, no padding) of an input listed by pixel
    rows (``row_count[0]`` pixels listed, each with all ``c`` channels): if any pixel is
    listed, every channel's output ``y_ch = max_p x[p, ch]`` (max) or
    ``y_ch = (sum_p x[p, ch]) / n_pix`` (average; summed in float64 in pixel order, as
    :func:`pool_update` sums the window, so bit for bit its values) is recomputed and listed
    in increasing order (those not already stamped ``frame``); ``acc``: float64 scratch of
    ``c``. One contiguous pass with no hit flags; on the ResNet block's 64x64x32 map
    0.16 -> 0.02 ms per frame (thread CPU time, 2-vCPU AMD EPYC VM, Zen 4, float32, load 4.3)."""
    n = 0
    if row_count[0] > 0:
        n_pix = x.shape[0] // c
        init = -np.inf if is_max else 0.0
        for j in range(c):
            acc[j] = init
        for p in range(n_pix):
            xs = x[p * c:p * c + c]
            if is_max:
                for j in range(c):
                    acc[j] = max(acc[j], xs[j])
            else:
                for j in range(c):
                    acc[j] += xs[j]
        for j in range(c):
            if stamp[j] != frame:
                stamp[j] = frame
                touched[n] = j
                n += 1
                y[j] = acc[j] if is_max else acc[j] / n_pix
    count[0] = n


@njit(cache=True, nogil=True, inline="always")
def _flag_changes(frame, c, hw, value, hit, prime):
    """Load ``frame`` (PyTorch layout) channels-last into ``value`` and set ``hit[i]`` (0/1) for
    every changed neuron ``i`` (all if ``prime``); returns their count. Branchless and with no
    list: the one-channel loop vectorises."""
    n = 0
    for p in range(hw):
        for ch in range(c):
            i = p * c + ch
            v = frame[ch * hw + p]
            d = prime or v != value[i]
            value[i] = v
            hit[i] = d
            n += d
    return n


@njit(cache=True, nogil=True)
def input_pool(
    frame, value, touched_in, count_in, in_hw, c, out_hw, kernel, stride, padding, is_max,
    y, touched, count, stamp, frame_no, hit, prime,
):
    """The input node and its only consumer, a pooling, in one pass where it can.

    As :func:`sigmadelta.kernels.load_frame` (``c`` up to ``SMALL_C`` channels) followed by
    :func:`pool_update`: ``value[p*c + ch] = frame[ch*H*W + p]``, and the pooled outputs
    ``y, touched[:count[0]], stamp`` of every window holding a changed input (all if
    ``prime``), the same values, stamps and list. The changed inputs are flagged in ``hit``
    straight from the frame; when :func:`pool_update` would scan 2x2 windows at stride 2
    (at least 1/32 of the inputs changed) the scan reads those flags, and the input's own
    list ``touched_in, count_in`` (read by no one else) is not written; otherwise the list is
    made from the flags, in increasing order as ``load_frame``'s, and :func:`pool_update`
    runs on it. (The demo network's 144x176 gray input and 2x2 average, carphone, float32,
    thread CPU time alternating with ``load_frame`` + ``pool_update``: 0.057 -> 0.040 ms per
    frame, 2-vCPU AMD EPYC VM (Zen 4), load 1.1.)
    """
    h_in, w_in = in_hw[0], in_hw[1]
    n_in = h_in * w_in * c
    if c == 1:
        n = _flag_changes(frame, 1, n_in, value, hit, prime)
    else:
        n = _flag_changes(frame, c, h_in * w_in, value, hit, prime)
    if (32 * n >= n_in and kernel[0] == 2 and kernel[1] == 2 and stride[0] == 2 and stride[1] == 2
            and padding[0] == 0 and padding[1] == 0 and 2 * out_hw[0] <= h_in and 2 * out_hw[1] <= w_in):
        count[0] = _scan_2x2(value, hit, w_in, c, out_hw[0], out_hw[1], is_max, y, touched, stamp,
                             frame_no)
        hit[:n_in] = 0
        return
    m = 0
    for i in range(n_in):  # the changed inputs in increasing order (branchless), flags cleared
        touched_in[m] = i
        m += hit[i]
        hit[i] = 0
    count_in[0] = m
    pool_update(value, touched_in, count_in, in_hw, c, out_hw, kernel, stride, padding, is_max, y,
                touched, count, stamp, frame_no, hit)
