"""Gather-GEMM-scatter: a conv layer's events, pixel by pixel, through one matrix product.

Where whole pixels change (every channel of a touched pixel spikes) and ``C_in`` is
large, the events of a frame form a dense block of rows: one row of ``C_in`` spikes
per pixel that has an event. :func:`conv_gemm_pixels` gathers these rows, scaled by
the gain, into ``D`` (``n_px x C_in``), multiplies them by all the layer's weights at
once (BLAS ``sgemm``/``dgemm`` through ``np.dot``, inside the compiled loop)::

    G = D @ W_g,   W_g[c, ky*lw + slot*C_out + j] = w_run[ky, c, slot*C_out + j]

and scatters ``G``: pixel ``p``'s kernel row ``ky`` adds the contiguous run of
``n_taps * C_out`` values the event scatter would have added for that kernel row::

    z[(oy*W_out + ox0)*C_out : ...] += G[p, ky*lw + s0 : ky*lw + s0 + n_len]

(:func:`sigmadelta.kernels.conv_scatter_pixels` with all of ``p``'s events summed
first). The sum is the same (up to the order of float additions; exactly in fixed
point); so are the counters, which describe the events (synops, additions) and the
output pixels they reach (listed as the scatter lists them). The GEMM costs
``C_in * kh * lw`` multiply-adds per pixel that has events, whatever the number of
its events: it pays where most channels of a pixel spike.
"""

import numpy as np
from numba import njit, types, uint64
from numba.extending import overload

from .pixel import _split

__all__ = ["conv_gemm_pixels", "gemm_layout", "pixel_rows"]


def gemm_layout(w_run: np.ndarray) -> np.ndarray:
    """``W_g[c, ky*lw + t]``: the run-layout weights ``w_run[ky, c, t]`` (``kh x C_in x lw``,
    :func:`sigmadelta.kernels.run_layout`) with the input channel first, contiguous."""
    kh, c_in, lw = w_run.shape
    return np.ascontiguousarray(w_run.transpose(1, 0, 2).reshape(c_in, kh * lw))


def pixel_rows(c_in: int, n_cols: int, n_px: int, itemsize: int, budget: int) -> int:
    """Pixels per GEMM call of :func:`conv_gemm_pixels`: rows ``D`` (``C_in``) and ``G``
    (``n_cols = kh*lw``) of about ``budget`` bytes in all, at least 16, at most ``n_px``."""
    return int(max(1, min(n_px, max(16, budget // ((c_in + n_cols) * itemsize)))))


def _times(d, w, g):
    """``g = d @ w`` (2-D, contiguous)."""
    raise NotImplementedError("compiled code only")


@overload(_times, jit_options={"nogil": True})
def _times_impl(d, w, g):
    if isinstance(g.dtype, types.Float):
        def blas(d, w, g):
            np.dot(d, w, g)
        return blas

    def loop(d, w, g):  # fixed point (int64): exact integer sums; numba has no integer BLAS
        for r in range(d.shape[0]):
            for t in range(g.shape[1]):
                g[r, t] = 0
            for c in range(d.shape[1]):
                v = d[r, c]
                if v != 0:
                    for t in range(g.shape[1]):
                        g[r, t] += v * w[c, t]
    return loop


@njit(cache=True, nogil=True)
def _gather(px_start, g0, m, ev_ch, ev_val, gain, d):
    """Rows ``d[g] = gain * s`` of the event groups ``g0..g0+m-1`` (zeros where no event);
    returns each group's ``sum |s|`` (a new array of ``m``)."""
    mags = np.zeros(m)
    c_in = d.shape[1]
    for g in range(m):
        for c in range(c_in):
            d[g, c] = 0
        mag = 0.0
        for e in range(px_start[g0 + g], px_start[g0 + g + 1]):
            d[g, ev_ch[e]] = ev_val[e] * gain
            mag += abs(ev_val[e])
        mags[g] = mag
    return mags


@njit(cache=True, nogil=True)
def _scatter_rows(px_list, px_start, g0, m, mags, gm, z, geom, pg_list, npg, pg_stamp, frame, scan):
    """Add rows ``gm[g]`` of groups ``g0..g0+m-1`` into ``z`` run by run (see the module
    docstring); stamp (``scan``) or list the reached output pixels. Returns
    ``(synops, additions, npg)``."""
    w_in, h_out, w_out = geom[1], geom[2], geom[3]
    sy, sx, py, px, cg = geom[4], geom[5], geom[6], geom[7], geom[10]
    lw = gm.shape[1] // geom[8]
    synops, adds = 0, 0.0
    for g in range(m):
        pix = px_list[g0 + g]
        iy = pix // w_in
        ix = pix - iy * w_in
        r, oxh = _split(ix + px, sx)
        ox0 = max(oxh - geom[11 + r] + 1, 0)
        ox1 = min(oxh, w_out - 1)
        if ox0 > ox1:
            continue
        s0 = (geom[11 + sx + r] + geom[11 + r] - 1 - oxh + ox0) * cg
        n_len = (ox1 - ox0 + 1) * cg
        ry, oyh = _split(iy + py, sy)
        fan = 0
        for k in range(geom[11 + 2 * sx + ry]):
            oy = oyh - k
            if oy < 0 or oy >= h_out:
                continue
            zb = uint64((oy * w_out + ox0) * cg)
            gb = uint64((ry + k * sy) * lw + s0)
            for j in range(uint64(n_len)):
                z[zb + j] += gm[g, gb + j]
            for q in range(oy * w_out + ox0, oy * w_out + ox1 + 1):
                if scan:
                    pg_stamp[q] = frame
                else:  # branchless listing (pg_list has one spare slot)
                    new = pg_stamp[q] != frame
                    pg_stamp[q] = frame
                    pg_list[npg] = q
                    npg += new
            fan += n_len
        synops += fan * (px_start[g0 + g + 1] - px_start[g0 + g])
        adds += mags[g] * fan
    return synops, adds, npg


@njit(cache=True, nogil=True)
def conv_gemm_pixels(px_list, px_start, n_px, ev_ch, ev_val, gain, w_g, z, geom, gbuf,
                     pg_list, pg_count, pg_stamp, frame):
    """Integrate pixel-grouped events (as :func:`sigmadelta.kernels.encode_pixels` groups
    them) by gather-GEMM-scatter (module docstring): same ``z`` (up to float rounding), same
    ``(synops, additions)`` and the same reached output pixels in ``pg_list`` as
    :func:`sigmadelta.kernels.conv_scatter_pixels` with the run-layout weights ``w_run``,
    given ``w_g = gemm_layout(w_run)``. ``gbuf`` (dtype of ``z``) is the scratch: per GEMM
    call ``rows * (C_in + kh*lw)`` values, ``rows`` as many as fit (at least one).
    """
    c_in, n_cols = w_g.shape[0], w_g.shape[1]
    rows = max(1, min(n_px, gbuf.shape[0] // (c_in + n_cols)))
    npg = pg_count[0]
    n_out = pg_stamp.shape[0]
    reach = geom[11 + 2 * geom[5]] * geom[11]
    scan = npg == 0 and 8 * n_px * reach > n_out
    synops, adds = 0, 0.0
    for g0 in range(0, n_px, rows):
        m = min(rows, n_px - g0)
        d = gbuf[: m * c_in].reshape(m, c_in)
        gm = gbuf[rows * c_in: rows * c_in + m * n_cols].reshape(m, n_cols)
        mags = _gather(px_start, g0, m, ev_ch, ev_val, gain, d)
        _times(d, w_g, gm)
        s, a, npg = _scatter_rows(px_list, px_start, g0, m, mags, gm, z, geom, pg_list, npg,
                                  pg_stamp, frame, scan)
        synops += s
        adds += a
    if scan:
        for q in range(n_out):  # branchless: npg <= q
            pg_list[npg] = q
            npg += pg_stamp[q] == frame
    pg_count[0] = npg
    return synops, adds
