"""The float32 scatter of ``"lava"`` conv layers: one step's ``W s`` by fused multiply-adds.

A ``"lava"`` layer's weights and messages are integers, so while every partial sum of the
step's ``W s`` stays below ``2**24`` (``max|s| * l1``, :func:`sigmadelta.kernels.lava_l1`)
float32 holds it exactly, and a fused multiply-add (one rounding) gives it exactly too. The
scatter of :func:`sigmadelta.kernels.scatter_i32` then runs on float32 weights (run layout)
into a float32 scratch ``dz``, with each block of 64 outputs of a row held in four wide
vectors (16 float32 lanes, :func:`sigmadelta.kernels.simd.wfma`) over all the events of a
pixel::

    dz[q, j:j+64] += sum_(e of pixel p) s_e * W[tap, c_e, j:j+64]     (float32 FMA, exact)
    z[q, :] += dz[q, :];  dz[q, :] = 0                                 (fold_f32)

int32 needs a vector multiply (slow) per weight vector and widens int8 weights first; on
lava-dl PilotNet's fourth conv (2264 events, 64 channels) the step's scatter took 27.3 us
this way against 42.2 us in int32 (thread CPU time, best of 200, a 2-vCPU Intel Xeon VM,
AVX-512, load average 6.8). :func:`lava_scatter_make` builds the weights and scratch.
"""

import numpy as np
from numba import njit, uint64

from .pixel import _split
from .simd import wfma, wfma_i8, wlanes, wload, wstore, wstore_i32, wzero_f32

__all__ = ["lava_scatter_make", "scatter_f32", "scatter_walker", "fold_f32", "dense_f32"]


def lava_scatter_make(w_run: np.ndarray, n_out: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``(mgeom, dz, w32)`` of a layer's float32 scatter, float32 in float64 words: an empty
    ``mgeom`` (no spike map), zeros for ``n_out`` float32 sums, the run-layout weights
    ``w_run`` (:func:`sigmadelta.kernels.run_layout`) as float32."""
    w32 = np.zeros((w_run.size + 1) // 2, np.float64)
    w32.view(np.float32)[:w_run.size] = np.asarray(w_run, np.float32).ravel()
    return np.zeros(0, np.int64), np.zeros((n_out + 1) // 2, np.float64), w32


@njit(cache=True, nogil=True)
def scatter_f32(px_list, px_start, n_px, ev_ch, ev_val, w32, dz, geom, c_in, pg_list, pg_count,
                pg_stamp, frame):
    """:func:`sigmadelta.kernels.scatter_i32` with float32 weights ``w32`` (flat run layout
    ``[kh, c_in, lw]``) and float32 scratch ``dz``: ``dz += conv(s, W)``. The messages must be
    integers with ``max|s| * lava_l1(W) < 2**24``. Lists the reached output pixels as the
    float kernel does; returns its ``(synops, additions)``."""
    return _walk_f32(px_list, px_start, n_px, ev_ch, ev_val, w32, dz, geom, c_in, pg_list, pg_count,
                     pg_stamp, frame)


def scatter_walker(rows):
    """The pixel walk of the ``"lava"`` conv scatters (:func:`scatter_f32`,
    :func:`sigmadelta.kernels.scatter_i32`) around the row update ``rows`` (an ``@njit``
    function, called statically: one walker per row update; not cached itself, its cached
    callers hold its code). For each pixel ``p`` with events ``e0 <= e < e1``, each kernel row
    ``m`` it reaches and the run of output columns ``ox0..ox1`` in that row::

        rows(dz, zb, ev_ch, ev_val, e0, e1, w, wk, lw, s0, n_len)
        # dz[zb + j] += s_e * w[(wk + c_e) * lw + s0 + j],  j < n_len = (ox1 - ox0 + 1) * cg

    with ``zb = (oy * w_out + ox0) * cg`` and ``wk = (ry + m * sy) * c_in``. The walker lists
    the reached output pixels in ``pg_list`` (stamped ``frame`` in ``pg_stamp``; a dense step
    stamps them all, then scans) and returns ``(synops, additions)``: per row,
    ``synops += n_len * (e1 - e0)`` and ``additions += n_len * sum_e |s_e|``."""

    @njit(nogil=True)
    def walk(px_list, px_start, n_px, ev_ch, ev_val, w, dz, geom, c_in, pg_list, pg_count, pg_stamp,
             frame):
        w_in, h_out, w_out = geom[1], geom[2], geom[3]
        sy, sx, py, px, cg = geom[4], geom[5], geom[6], geom[7], geom[10]
        lw = geom[9] * cg  # the run layout's row (not from w's length: it may be padded)
        synops, adds, npg = 0, 0.0, pg_count[0]
        n_out = pg_stamp.shape[0]
        reach = geom[11 + 2 * sx] * geom[11]
        scan = npg == 0 and 8 * n_px * reach > n_out
        iy, row0 = 0, -w_in - 1
        for p in range(n_px):
            e0, e1 = px_start[p], px_start[p + 1]
            pix = px_list[p]
            if pix < row0 or pix >= row0 + w_in:
                iy = pix // w_in
                row0 = iy * w_in
            ix = pix - row0
            r, oxh = _split(ix + px, sx)
            ox0 = max(oxh - geom[11 + r] + 1, 0)
            ox1 = min(oxh, w_out - 1)
            if ox0 > ox1:
                continue
            s0 = (geom[11 + sx + r] + geom[11 + r] - 1 - oxh + ox0) * cg
            n_len = (ox1 - ox0 + 1) * cg
            mag = 0.0
            for e in range(e0, e1):
                mag += abs(ev_val[e])
            ry, oyh = _split(iy + py, sy)
            fan = 0
            for m in range(geom[11 + 2 * sx + ry]):
                oy = oyh - m
                if oy < 0 or oy >= h_out:
                    continue
                rows(dz, uint64((oy * w_out + ox0) * cg), ev_ch, ev_val, e0, e1, w,
                     (ry + m * sy) * c_in, lw, s0, uint64(n_len))
                if scan:
                    for q in range(oy * w_out + ox0, oy * w_out + ox1 + 1):
                        pg_stamp[q] = frame
                else:
                    for q in range(oy * w_out + ox0, oy * w_out + ox1 + 1):  # branchless listing
                        new = pg_stamp[q] != frame
                        pg_stamp[q] = frame
                        pg_list[npg] = q
                        npg += new
                fan += n_len
            synops += fan * (e1 - e0)
            adds += mag * fan
        if scan:
            for q in range(n_out):
                pg_list[npg] = q
                npg += pg_stamp[q] == frame
        pg_count[0] = npg
        return synops, adds

    return walk


@njit(cache=True, nogil=True, inline="always")
def _rows_f32(dz, zb, ev_ch, ev_val, e0, e1, w32, wk, lw, s0, n_len):
    """``dz[zb + j] += s_e * w32[(wk + c_e) * lw + s0 + j]`` for the events ``e0 <= e < e1`` and
    ``j < n_len``: blocks of four wide vectors, then of one, held in registers over the events;
    the last elements event by event."""
    W = uint64(wlanes(4))  # noqa: N806
    W2, W3, W4 = W + W, W + W + W, W + W + W + W  # noqa: N806 (uint64: no float promotion)
    o = uint64(0)
    while o + W4 <= n_len:
        a0, a1, a2, a3 = wload(dz, zb + o), wload(dz, zb + o + W), wload(dz, zb + o + W2), \
            wload(dz, zb + o + W3)
        for e in range(e0, e1):
            v = ev_val[e]
            wb = uint64((wk + ev_ch[e]) * lw + s0) + o
            a0, a1 = wfma(a0, v, w32, wb), wfma(a1, v, w32, wb + W)
            a2, a3 = wfma(a2, v, w32, wb + W2), wfma(a3, v, w32, wb + W3)
        wstore(dz, zb + o, a0)
        wstore(dz, zb + o + W, a1)
        wstore(dz, zb + o + W2, a2)
        wstore(dz, zb + o + W3, a3)
        o += W4
    while o + W <= n_len:
        a0 = wload(dz, zb + o)
        for e in range(e0, e1):
            a0 = wfma(a0, ev_val[e], w32, uint64((wk + ev_ch[e]) * lw + s0) + o)
        wstore(dz, zb + o, a0)
        o += W
    for e in range(e0, e1):
        v = np.float32(ev_val[e])
        wb = uint64((wk + ev_ch[e]) * lw + s0)
        for j in range(o, n_len):
            dz[zb + j] += v * w32[wb + j]


_walk_f32 = scatter_walker(_rows_f32)


@njit(cache=True, nogil=True)
def fold_f32(z, dz, pg_list, pg_count, cg):
    """``z[q, :] += dz[q, :]; dz[q, :] = 0`` for the listed pixels ``pg_list[:pg_count[0]]``
    (any dtype: ``lavaint.fold_i32`` is this kernel on int32 sums)."""
    for t in range(pg_count[0]):
        b = pg_list[t] * cg
        for j in range(cg):
            z[b + j] += dz[b + j]
            dz[b + j] = 0


@njit(cache=True, nogil=True)
def dense_f32(ev_idx, ev_val, n_events, w8, dz):
    """``dz[:] = W s`` of a ``"lava"`` dense layer (int8 weights ``w8[in, out]``, at least
    ``wlanes(4) = 16`` outputs) in float32 registers, as int32: the messages must be integers
    with ``max|s| * lava_l1(W) < 2**24`` (every partial sum is then exact)::

        acc[j:j+128] = sum_e s_e * float32(W8[i_e, j:j+128])      (FMA)     dz[j:j+128] = acc

    Each block of up to eight wide vectors (128 outputs) stays in registers over all the
    events, so a weight row is read once per block; a vector that would pass the last output
    starts at ``n_out - 16`` instead (overlapping: it stores the same exact sums)."""
    n_out = w8.shape[1]
    flat = w8.reshape(w8.shape[0] * n_out)
    W = wlanes(4)  # noqa: N806
    last = n_out - W
    for o in range(0, n_out, 8 * W):
        s0, s1, s2, s3 = (uint64(min(o, last)), uint64(min(o + W, last)), uint64(min(o + 2 * W, last)),
                          uint64(min(o + 3 * W, last)))
        s4, s5, s6, s7 = (uint64(min(o + 4 * W, last)), uint64(min(o + 5 * W, last)),
                          uint64(min(o + 6 * W, last)), uint64(min(o + 7 * W, last)))
        a0, a1, a2, a3 = wzero_f32(0), wzero_f32(0), wzero_f32(0), wzero_f32(0)
        a4, a5, a6, a7 = wzero_f32(0), wzero_f32(0), wzero_f32(0), wzero_f32(0)
        for e in range(n_events):
            v, wb = ev_val[e], uint64(ev_idx[e] * n_out)
            a0, a1 = wfma_i8(a0, v, flat, wb + s0), wfma_i8(a1, v, flat, wb + s1)
            a2, a3 = wfma_i8(a2, v, flat, wb + s2), wfma_i8(a3, v, flat, wb + s3)
            a4, a5 = wfma_i8(a4, v, flat, wb + s4), wfma_i8(a5, v, flat, wb + s5)
            a6, a7 = wfma_i8(a6, v, flat, wb + s6), wfma_i8(a7, v, flat, wb + s7)
        wstore_i32(dz, s0, a0)
        wstore_i32(dz, s1, a1)
        wstore_i32(dz, s2, a2)
        wstore_i32(dz, s3, a3)
        wstore_i32(dz, s4, a4)
        wstore_i32(dz, s5, a5)
        wstore_i32(dz, s6, a6)
        wstore_i32(dz, s7, a7)
