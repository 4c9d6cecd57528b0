"""Pixel-grouped conv kernels: encode a layer's input per pixel, scatter per pixel and tap.

The input of a conv layer is channels-last, so the touched neurons of one pixel
are (almost always) listed next to each other. :func:`encode_pixels` runs the
quantizer over the touched list and writes the events of each pixel
contiguously (``px_list[p]`` and its events ``px_start[p]:px_start[p+1]``);
:func:`conv_scatter_pixels` then visits every in-bounds tap of a pixel once and
adds all of that pixel's events into the output row (``C_out`` contiguous values)::

    for pixel p, for tap (ky, kx) reaching output pixel q:
        z[q, g*Cg:(g+1)*Cg] += sum_e gain * s_e * w_cl[ky, kx, c_e, :]

so the weight rows ``w_cl[ky, kx, c, :]`` and the output rows are contiguous and
the innermost loop is a SIMD multiply-add over output channels. Index division
happens once per pixel, not per event. :func:`sigmadelta.kernels.layer.conv_layer_step`
chains encode, scatter and the listing of touched outputs in one call (one dispatch
per layer and frame).

These kernels cover groups 1 and dilation 1 (the engine falls back to
:func:`sigmadelta.kernels.conv_scatter` otherwise); geometry is packed by
:func:`make_geom`.
"""

import numpy as np
from numba import njit, uint64

from .prefetch import prefetch
from .simd import lanes, vload, vmul_add, vstore

AHEAD = 6  # pixels (rows) prefetched ahead
BLOCK_EVENTS = 4  # conv_scatter_pixels: from this many events of a pixel on, sum them in registers
Q_THRESHOLD, Q_HERDING, Q_LAVA = 0, 1, 2  # quantizer modes (argument ``herding``)

__all__ = [
    "encode_pixels", "encode_rows", "conv_scatter_pixels", "encode_scatter_1ch", "list_rows",
    "make_geom", "run_layout", "axis_fan", "Q_THRESHOLD", "Q_HERDING", "Q_LAVA",
]


def _taps(k: int, s: int, r: int) -> int:
    """Taps ``kx = r, r+s, r+2s, ... < k`` of residue ``r``."""
    return max(0, (k - r + s - 1) // s)


def axis_fan(n_in: int, n_out: int, k: int, s: int, p: int, d: int = 1) -> np.ndarray:
    """Per input position along one conv axis: the taps that land inside the output.

    Input ``i`` reaches output ``o`` through tap ``t < k`` when ``o*s - p + t*d == i``.
    """
    i = np.arange(n_in)[:, None] + p - d * np.arange(k)[None, :]
    return ((i >= 0) & (i % s == 0) & (i // s < n_out)).sum(1)


def make_geom(in_hw, out_hw, stride, padding, kernel, cg: int) -> np.ndarray:
    """Pack a conv layer's geometry (groups 1, dilation 1) for the pixel kernels.

    ``[h_in, w_in, h_out, w_out, sy, sx, py, px, kh, kw, cg, xn[sx], xoff[sx], yn[sy]]``
    with ``xn[r]`` the kernel columns ``kx = r (mod sx)``, ``xoff[r]`` their first
    slot in :func:`run_layout` and ``yn[r]`` the kernel rows ``ky = r (mod sy)``.
    """
    (sy, sx), (kh, kw) = stride, kernel
    xn = [_taps(kw, sx, r) for r in range(sx)]
    xoff = np.cumsum([0] + xn[:-1]).tolist()
    yn = [_taps(kh, sy, r) for r in range(sy)]
    vals = [*in_hw, *out_hw, sy, sx, *padding, kh, kw, cg, *xn, *xoff, *yn]
    return np.array([int(v) for v in vals], dtype=np.int64)


def run_layout(w_cl: np.ndarray, stride) -> np.ndarray:
    """Weights ``w_cl[ky, kx, c, :]`` re-laid out as ``w_run[ky, c, slot*Cg:(slot+1)*Cg]``.

    Kernel column ``kx = r + m*sx`` goes to ``slot = xoff[r] + xn[r] - 1 - m``: the taps
    of residue ``r`` in the order of the output columns they reach (increasing).
    """
    kh, kw, c_in, cg = w_cl.shape
    sx = int(stride[1])
    out = np.zeros((kh, c_in, kw, cg), w_cl.dtype)
    off = 0
    for r in range(sx):
        n = _taps(kw, sx, r)
        for m in range(n):
            out[:, :, off + n - 1 - m] = w_cl[:, r + m * sx]
        off += n
    return np.ascontiguousarray(out.reshape(kh, c_in, kw * cg))


@njit(cache=True, nogil=True, inline="always")
def _quantize(v, m, herding, param, lava_k, lava_scale):
    """One neuron's quantizer: ``(s, new memory)`` for value ``v`` and memory ``m``.

    ``herding`` is the quantizer's mode (:data:`Q_THRESHOLD`, :data:`Q_HERDING` or
    :data:`Q_LAVA`; ``False``/``True`` are the first two). Herding (``param = k``):
    ``q = round(k*v); s = q - m; memory = q``. Threshold (``param = threshold``):
    ``s = v - m`` if ``s != 0 and |s| >= threshold`` (then ``memory = v``), else ``s = 0``
    and the memory stays. Lava (``param = threshold``, as
    :func:`sigmadelta.kernels.lava_encode`): ``a = lava_k*v; d = a - m``; if ``d != 0 and
    |d| >= threshold``: ``s = floor(d * lava_scale)``, ``memory = a``; else ``s = 0``.
    ``lava_scale = 2**-lava_shift`` comes from the caller, computed once before its loop (a
    power per neuron halved the speed of the encoders on Lava's PilotNet).
    """
    if herding == Q_HERDING:
        q = np.rint(param * v)
        return q - m, q
    if herding == Q_LAVA:
        a = lava_k * v
        d = a - m
        send = d != 0.0 and abs(d) >= param
        return (np.floor(d * lava_scale) if send else d * 0), (a if send else m)
    d = v - m
    send = d != 0.0 and abs(d) >= param
    return (d if send else d * 0), (v if send else m)


@njit(cache=True, nogil=True)
def encode_pixels(x, touched, count, memory, herding, param, c_in, ev_ch, ev_val, px_list,
                  px_start, lava_k=1.0, lava_shift=0):
    """Quantize the touched inputs and group the resulting events by pixel.

    For each touched neuron ``i = p*C_in + c``, herding (``param = k``)::

        q = round(k * x_i);  s = q - memory_i;  memory_i = q        (event if s != 0)

    threshold (``param = threshold``)::

        s = x_i - memory_i;  event if s != 0 and |s| >= threshold;  then memory_i = x_i

    lava (``param = threshold``, :data:`Q_LAVA`, as :func:`sigmadelta.kernels.lava_encode`)::

        a = lava_k * x_i;  d = a - memory_i
        if d != 0 and |d| >= threshold:  s = floor(d / 2**lava_shift);  memory_i = a

    An event is a nonzero ``s``.

    Events of consecutive touched neurons of the same pixel form one group:
    ``px_list[g]`` is the pixel, ``ev_ch/ev_val[px_start[g]:px_start[g+1]]`` its
    (channel, s) events. A pixel listed in two separate runs forms two groups.

    Returns
    -------
    (n_groups, n_events)
    """
    n = 0
    npx = 0
    lo = 0
    hi = 0  # [lo, hi): the neurons of the current pixel (group npx, maybe still empty)
    px_start[0] = 0
    n_touched = count[0]
    lava_scale = 0.5 ** lava_shift
    for t in range(n_touched):
        if t + 4 * AHEAD < n_touched:
            prefetch(x, touched[t + 4 * AHEAD])
            prefetch(memory, touched[t + 4 * AHEAD])
        i = touched[t]
        if i < lo or i >= hi or t == 0:
            if n > px_start[npx]:  # close a non-empty group
                npx += 1
            p = i if c_in == 1 else i // c_in
            lo = p * c_in
            hi = lo + c_in
            px_list[npx] = p
            px_start[npx] = n
        # branchless: always write, advance n only for a nonzero spike
        s, memory[i] = _quantize(x[i], memory[i], herding, param, lava_k, lava_scale)
        ev_ch[n] = i - lo
        ev_val[n] = s
        n += s != 0.0
    if n > px_start[npx]:
        npx += 1
    px_start[npx] = n
    return npx, n


@njit(cache=True, nogil=True)
def _split(a, s):
    """``(a mod s, a // s)`` for ``a >= 0``, without a division for strides 1 and 2."""
    if s == 1:
        return 0, a
    if s == 2:
        return a & 1, a >> 1
    q = a // s
    return a - q * s, q


@njit(cache=True, nogil=True, inline="always")
def _rows_blocked(z, zb, vbuf, ev_ch, e0, e1, wf, wk, lw, s0, n_len, n_vec, L):  # noqa: N803
    """``z[zb + j] += vbuf[e - e0] * wf[(wk + ev_ch[e]) * lw + s0 + j]`` for every event
    ``e0 <= e < e1`` and ``j < n_len``, in event order per element (the same sums, bit for
    bit, as one row per event), but with each block of eight (then four, then one) vectors of
    ``z`` loaded and stored once for all the events instead of once per event. Eight independent
    sums per event, and unsigned indices (no wraparound tests), made the busy 32-channel 3x3
    scatter of the zoo's ResNet block 1.10x faster than blocks of four (thread CPU time, old and
    new alternating on the same frames)."""
    o = uint64(0)
    u0, u1, wr = uint64(e0), uint64(e1), uint64(wk * lw + s0)  # unsigned: no wraparound tests
    while o + uint64(8 * L) <= n_vec:
        a0, a1 = vload(z, zb + o), vload(z, zb + o + uint64(L))
        a2, a3 = vload(z, zb + o + uint64(2 * L)), vload(z, zb + o + uint64(3 * L))
        a4, a5 = vload(z, zb + o + uint64(4 * L)), vload(z, zb + o + uint64(5 * L))
        a6, a7 = vload(z, zb + o + uint64(6 * L)), vload(z, zb + o + uint64(7 * L))
        for e in range(u0, u1):
            v = vbuf[e - u0]
            wb = uint64(ev_ch[e]) * uint64(lw) + wr + o
            a0, a1 = vmul_add(a0, v, wf, wb), vmul_add(a1, v, wf, wb + uint64(L))
            a2, a3 = vmul_add(a2, v, wf, wb + uint64(2 * L)), vmul_add(a3, v, wf, wb + uint64(3 * L))
            a4, a5 = vmul_add(a4, v, wf, wb + uint64(4 * L)), vmul_add(a5, v, wf, wb + uint64(5 * L))
            a6, a7 = vmul_add(a6, v, wf, wb + uint64(6 * L)), vmul_add(a7, v, wf, wb + uint64(7 * L))
        vstore(z, zb + o, a0)
        vstore(z, zb + o + uint64(L), a1)
        vstore(z, zb + o + uint64(2 * L), a2)
        vstore(z, zb + o + uint64(3 * L), a3)
        vstore(z, zb + o + uint64(4 * L), a4)
        vstore(z, zb + o + uint64(5 * L), a5)
        vstore(z, zb + o + uint64(6 * L), a6)
        vstore(z, zb + o + uint64(7 * L), a7)
        o += uint64(8 * L)
    while o + uint64(4 * L) <= n_vec:
        a0, a1 = vload(z, zb + o), vload(z, zb + o + uint64(L))
        a2, a3 = vload(z, zb + o + uint64(2 * L)), vload(z, zb + o + uint64(3 * L))
        for e in range(u0, u1):
            v = vbuf[e - u0]
            wb = uint64(ev_ch[e]) * uint64(lw) + wr + o
            a0, a1 = vmul_add(a0, v, wf, wb), vmul_add(a1, v, wf, wb + uint64(L))
            a2, a3 = vmul_add(a2, v, wf, wb + uint64(2 * L)), vmul_add(a3, v, wf, wb + uint64(3 * L))
        vstore(z, zb + o, a0)
        vstore(z, zb + o + uint64(L), a1)
        vstore(z, zb + o + uint64(2 * L), a2)
        vstore(z, zb + o + uint64(3 * L), a3)
        o += uint64(4 * L)
    while o < n_vec:
        a0 = vload(z, zb + o)
        for e in range(u0, u1):
            a0 = vmul_add(a0, vbuf[e - u0], wf, uint64(ev_ch[e]) * uint64(lw) + wr + o)
        vstore(z, zb + o, a0)
        o += uint64(L)
    for j in range(n_vec, uint64(n_len)):
        acc = z[zb + j]
        for e in range(u0, u1):
            acc += vbuf[e - u0] * wf[uint64(ev_ch[e]) * uint64(lw) + wr + j]
        z[zb + j] = acc


@njit(cache=True, nogil=True)
def conv_scatter_pixels(px_list, px_start, n_px, ev_ch, ev_val, gain, w_run, z, geom, vbuf,
                        pg_list, pg_count, pg_stamp, frame):
    """Integrate pixel-grouped events into a 2-D convolution (groups 1, dilation 1).

    Same result as :func:`sigmadelta.kernels.conv_scatter` on the flat events
    ``(px_list[g]*C_in + ev_ch[e], ev_val[e])`` up to the order of float additions:
    output pixel ``(oy, ox)`` with ``oy*sy - py + ky == iy`` and ``ox*sx - px + kx == ix``
    gets ``gain * s * W[:, c, ky, kx]``. The taps of one kernel row that reach an input
    column ``ix`` (``kx = r + m*sx``, ``r = (ix+px) mod sx``) reach consecutive output
    pixels, so with the weights in run layout (:func:`run_layout`) each (event, ky) is one
    contiguous multiply-add of ``n_taps * C_out`` values (rows shorter than 8 vectors run as
    whole SIMD vectors, :mod:`sigmadelta.kernels.simd`); a pixel with at least
    :data:`BLOCK_EVENTS` events adds all of them to eight vectors of the row at a time held in
    registers (the same additions in the same order, so the same ``z`` bit for bit).
    ``vbuf`` (>= C_in, dtype of ``z``) is scratch. Reached output pixels are appended to
    ``pg_list``, which needs one slot more than there are output pixels (the listing writes
    without branching).
    If ``pg_list`` starts empty and the events may reach more than 1/8 of the output
    pixels, the loop only stamps the reached pixels (``pg_stamp[q] = frame``) and one scan
    of the stamps lists them afterwards, in increasing order: cheaper than testing and
    appending per event row when most pixels are reached.

    Returns ``(synops, additions)`` as :func:`sigmadelta.kernels.conv_scatter` does.
    """
    w_in, h_out, w_out = geom[1], geom[2], geom[3]
    sy, sx, py, px, cg = geom[4], geom[5], geom[6], geom[7], geom[10]
    c_in, lw, wf = w_run.shape[1], w_run.shape[2], w_run.reshape(w_run.size)
    synops, adds, npg = 0, 0.0, pg_count[0]
    L = lanes(z.itemsize)  # noqa: N806
    n_out = pg_stamp.shape[0]
    reach = geom[11 + 2 * sx] * geom[11]  # output pixels one input pixel reaches (at most, r = 0)
    scan = npg == 0 and 8 * n_px * reach > n_out
    iy, row0 = 0, -w_in - 1
    for p in range(n_px):
        e0, e1 = px_start[p], px_start[p + 1]
        pix = px_list[p]
        if pix < row0 or pix >= row0 + w_in:  # pixels mostly come in order: rarely divide
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
        n_vec = uint64(n_len - n_len % L)
        mag = 0.0
        for e in range(e0, e1):
            vbuf[e - e0] = ev_val[e] * gain
            mag += abs(ev_val[e])
        ry, oyh = _split(iy + py, sy)
        fan = 0
        for m in range(geom[11 + 2 * sx + ry]):
            oy = oyh - m
            if oy < 0 or oy >= h_out:
                continue
            zb = uint64((oy * w_out + ox0) * cg)  # unsigned: no wraparound test, SIMD loop
            wk = (ry + m * sy) * c_in
            if e1 - e0 < BLOCK_EVENTS:  # few events: a row of multiply-adds per event
                for e in range(e0, e1):  # written out: as a helper it measured 1.2-2x slower
                    v = vbuf[e - e0]
                    wb = uint64((wk + ev_ch[e]) * lw + s0)
                    if n_len >= 8 * L:  # a long row: LLVM's own loop (4 vectors per step)
                        for j in range(uint64(n_len)):
                            z[zb + j] += v * wf[wb + j]
                    else:  # a short row: whole vectors, which LLVM would leave to a half-width tail
                        o = uint64(0)
                        while o < n_vec:
                            vstore(z, zb + o, vmul_add(vload(z, zb + o), v, wf, wb + o))
                            o += uint64(L)
                        for j in range(n_vec, uint64(n_len)):
                            z[zb + j] += v * wf[wb + j]
            else:  # events summed in registers, a block of the row at a time
                _rows_blocked(z, zb, vbuf, ev_ch, e0, e1, wf, wk, lw, s0, n_len, n_vec, L)
            if scan:  # written out: a helper, called or inlined, measured 15-30% slower
                for q in range(oy * w_out + ox0, oy * w_out + ox1 + 1):
                    pg_stamp[q] = frame
            else:
                for q in range(oy * w_out + ox0, oy * w_out + ox1 + 1):  # branchless listing
                    new = pg_stamp[q] != frame
                    pg_stamp[q] = frame
                    pg_list[npg] = q  # pg_list has one spare slot for this write
                    npg += new
            fan += n_len
        synops += fan * (e1 - e0)
        adds += mag * fan
    if scan:
        for q in range(n_out):  # branchless: npg <= q
            pg_list[npg] = q
            npg += pg_stamp[q] == frame
    pg_count[0] = npg
    return synops, adds


@njit(cache=True, nogil=True)
def encode_rows(x, rows, row_count, c_in, memory, herding, param, ev_ch, ev_val, px_list,
                px_start, lava_k=1.0, lava_shift=0):
    """:func:`encode_pixels` for an input listed by pixel: every channel of ``rows[:row_count[0]]``.

    Same quantizer and output groups as ``encode_pixels`` on the neuron list
    ``[p*C_in + c for p in rows for c in range(C_in)]``; no index list is read.
    """
    n = 0
    npx = 0
    n_rows = row_count[0]
    line = max(1, 64 // x.itemsize)
    lava_scale = 0.5 ** lava_shift
    for r in range(n_rows):
        if r + AHEAD < n_rows:  # the rows are cold: fetch a few pixels ahead
            ahead = rows[r + AHEAD] * c_in
            for c in range(0, c_in, line):
                prefetch(x, ahead + c)
                prefetch(memory, ahead + c)
        lo = rows[r] * c_in
        xs = x[lo:lo + c_in]
        ms = memory[lo:lo + c_in]
        ss = ev_val[n:n + c_in]  # pass 1 (SIMD): every channel's spike, in place
        hits = 0
        for c in range(c_in):
            ss[c], ms[c] = _quantize(xs[c], ms[c], herding, param, lava_k, lava_scale)
            hits += ss[c] != 0.0
        if hits == 0:
            continue
        px_list[npx] = rows[r]
        px_start[npx] = n
        npx += 1
        k = n  # pass 2: compact the nonzero spikes (k <= n + c always)
        for c in range(c_in):
            v = ss[c]
            ev_ch[k] = c
            ev_val[k] = v
            k += v != 0.0
        n = k
    px_start[npx] = n
    return npx, n


@njit(cache=True, nogil=True)
def list_rows(pg_list, pg_count, pg_stamp, frame, c_out, prime, expand, out_touched, out_count):
    """The output listing of a pixel conv layer; returns the number of touched neurons.

    ``prime``: every pixel is listed (``pg_list = 0..n_pix-1``); otherwise, if more than
    1/8 of the pixels are listed, they are re-listed in increasing order (those with
    ``pg_stamp == frame``) so that the next passes read memory forwards. ``expand``: also list
    the neurons ``p*C_out + j`` of every listed pixel in ``out_touched[:out_count[0]]``.
    """
    n_pix = pg_stamp.shape[0]
    if prime:
        for q in range(n_pix):
            pg_list[q] = q
        pg_count[0] = n_pix
    elif 8 * pg_count[0] > n_pix:  # re-list in pixel order: later passes then stream forward
        k = 0
        for q in range(n_pix):
            if pg_stamp[q] == frame:
                pg_list[k] = q
                k += 1
    n = pg_count[0] * c_out
    if expand:
        k = 0
        for t in range(pg_count[0]):
            base = pg_list[t] * c_out
            for j in range(c_out):
                out_touched[k + j] = base + j
            k += c_out
        out_count[0] = n
    return n


@njit(cache=True, nogil=True)
def encode_scatter_1ch(x, pixels, count, memory, herding, param, gain, w_run, z, geom, pg_list,
                       pg_count, pg_stamp, frame, lava_k=1.0, lava_shift=0):
    """:func:`encode_pixels` and :func:`conv_scatter_pixels` in one pass, for one input channel.

    With one channel a pixel is one neuron and has at most one event, so the quantizer
    (same update as :func:`encode_pixels`) feeds the scatter directly: no event list,
    no per-pixel groups. The common first layer of gray video; 1.3x faster than the two
    kernels on the demo's layer ``1``, with the same ``z``, memory, listing and counters.
    ``pixels[:count[0]]`` are the touched input pixels. Returns ``(events, synops,
    additions)``.
    """
    w_in, h_out, w_out = geom[1], geom[2], geom[3]
    sy, sx, py, px, cg = geom[4], geom[5], geom[6], geom[7], geom[10]
    lw, wf = w_run.shape[2], w_run.reshape(w_run.size)
    L = lanes(z.itemsize)  # noqa: N806
    n_t, n_ev, synops, adds, npg = count[0], 0, 0, 0.0, pg_count[0]
    n_out = pg_stamp.shape[0]
    scan = npg == 0 and 8 * n_t * geom[11 + 2 * sx] * geom[11] > n_out  # as conv_scatter_pixels
    iy, row0 = 0, -w_in - 1
    lava_scale = 0.5 ** lava_shift
    for t in range(n_t):
        pix = pixels[t]
        s, memory[pix] = _quantize(x[pix], memory[pix], herding, param, lava_k, lava_scale)
        if s == 0:
            continue
        n_ev += 1
        if pix < row0 or pix >= row0 + w_in:  # pixels mostly come in order: rarely divide
            iy = pix // w_in
            row0 = iy * w_in
        r, oxh = _split(pix - row0 + px, sx)
        ox0, ox1 = max(oxh - geom[11 + r] + 1, 0), min(oxh, w_out - 1)
        ry, oyh = _split(iy + py, sy)
        oy0, oy1 = max(oyh - geom[11 + 2 * sx + ry] + 1, 0), min(oyh, h_out - 1)
        if ox0 > ox1 or oy0 > oy1:
            continue
        s0 = (geom[11 + sx + r] + geom[11 + r] - 1 - oxh + ox0) * cg
        n_len = (ox1 - ox0 + 1) * cg
        n_vec, v = uint64(n_len - n_len % L), s * gain
        for oy in range(oy0, oy1 + 1):
            zb = uint64((oy * w_out + ox0) * cg)
            wb = uint64((ry + (oyh - oy) * sy) * lw + s0)
            o = uint64(0)
            while o < n_vec:  # rows here are short: whole vectors (see conv_scatter_pixels)
                vstore(z, zb + o, vmul_add(vload(z, zb + o), v, wf, wb + o))
                o += uint64(L)
            for j in range(n_vec, uint64(n_len)):
                z[zb + j] += v * wf[wb + j]
            if scan:  # written out: a helper, called or inlined, measured 15-30% slower
                for q in range(oy * w_out + ox0, oy * w_out + ox1 + 1):
                    pg_stamp[q] = frame
            else:
                for q in range(oy * w_out + ox0, oy * w_out + ox1 + 1):  # branchless listing
                    new = pg_stamp[q] != frame
                    pg_stamp[q] = frame
                    pg_list[npg] = q  # pg_list has one spare slot for this write
                    npg += new
        fan = (oy1 - oy0 + 1) * n_len
        synops += fan
        adds += abs(s) * fan
    if scan:
        for q in range(n_out):  # branchless: npg <= q
            pg_list[npg] = q
            npg += pg_stamp[q] == frame
    pg_count[0] = npg
    return n_ev, synops, adds
