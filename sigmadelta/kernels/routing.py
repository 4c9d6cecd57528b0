"""Fixed linear maps and channel routing of the non-weight nodes, for the touched neurons.

* :func:`pixel_map_update`: a sparse linear map over pixels, the same for every channel
  (bilinear resampling): ``y[q, c] = sum_e w[e] * x[src[e], c]`` over the fan-in of output
  pixel ``q``, recomputed for every output reached by a touched input (through the fan-out
  lists), so it equals the dense map up to the order of additions, with no drift;
* :func:`gather_update`: channel routing ``y[p, c] = x[p, src[c]]`` (channel shuffle,
  chunk/split): a touched input neuron is copied to the one output that reads it.
"""

from numba import njit

__all__ = ["pixel_map_update", "gather_update"]


@njit(cache=True, nogil=True)
def pixel_map_update(x, touched_in, count_in, c, out_start, out_pix, in_start, in_pix, in_w, y,
                     touched, count, stamp, frame):
    """A sparse pixel map, channels-last: list, then recompute, the outputs reached.

    Input neuron ``(p, ch)`` reaches the outputs ``(q, ch)`` for ``q`` in
    ``out_pix[out_start[p]:out_start[p + 1]]`` (the fan-out); each reached output is listed
    once (``stamp``) and recomputed from its fan-in: ``y[q, ch] = sum_e in_w[e] *
    x[in_pix[e], ch]`` for ``e`` in ``in_start[q]:in_start[q + 1]`` (additions in that order).
    """
    n = 0
    for t in range(count_in[0]):
        i = touched_in[t]
        p = i // c
        ch = i - p * c
        for e in range(out_start[p], out_start[p + 1]):
            o = out_pix[e] * c + ch
            if stamp[o] != frame:
                stamp[o] = frame
                touched[n] = o
                n += 1
    count[0] = n
    for t in range(n):
        o = touched[t]
        q = o // c
        ch = o - q * c
        s = 0.0
        for e in range(in_start[q], in_start[q + 1]):
            s += in_w[e] * x[in_pix[e] * c + ch]
        y[o] = s


@njit(cache=True, nogil=True)
def gather_update(x, touched_in, count_in, c_in, dst, c_out, y, touched, count):
    """Channel routing, channels-last: input ``(p, ch)`` goes to output ``(p, dst[ch])``
    unless ``dst[ch] < 0`` (a channel no output reads); each output has one source, so the
    list has no duplicates. No arithmetic."""
    n = 0
    for t in range(count_in[0]):
        i = touched_in[t]
        p = i // c_in
        d = dst[i - p * c_in]
        if d >= 0:
            o = p * c_out + d
            y[o] = x[i]
            touched[n] = o
            n += 1
    count[0] = n
