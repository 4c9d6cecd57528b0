"""Integer-exact fast paths of ``"lava"`` layers (lava-dl netx networks in Lava's fixed point).

A ``"lava"`` layer's weights are small integers (netx stores at most 8 bits) and its
messages are integers, so one step's synaptic sum ``W s`` is an integer that the simulator
may compute in any width and order that holds it exactly. These kernels do, and give the
same ``z``, encoder memory, counters and listing as the float64 scatter
(:func:`sigmadelta.kernels.conv_layer_step`, :func:`sigmadelta.kernels.dense_scatter`):

* **int32 scatter** (:func:`lava_conv_step`, :func:`lava_dense_step`): the step's sum goes
  into an int32 scratch ``dz`` (eight lanes per AVX2 vector where float64 has four, int8
  weights), then ``z += dz`` over the reached outputs and ``dz = 0``::

      dz[q, :] += s * W8[tap, c, :]   (int32)        z[q, :] += dz[q, :];  dz[q, :] = 0

  Every partial sum of an output is bounded by ``max|s| * l1`` with ``l1 = max_j sum |W[:, j]|``
  (:func:`lava_l1`); while that is below ``2**31`` (checked every step from the step's
  messages) int32 holds every partial sum, so ``dz`` is exact. A step beyond it takes the
  float64 scatter (exact below ``2**53``).
* **spike map** (conv layers of 2-4 input channels, events dense: lava-dl PilotNet's first
  conv on video): the messages go into a zero-padded channels-last map ``S``, then every
  output pixel with an event in its window sums all its taps in SIMD registers::

      z[q, :] += sum_(ky, kx, c) S[pad(q) + (ky, kx), c] * W[ky, kx, c, :]    (float64)

  The order of the additions differs from the scatter's; every partial sum is an integer
  below ``2**53`` (:func:`sigmadelta.kernels.lava_dense_exact`, checked when the layer is
  built), so the float64 sums are exact in any order.
"""

import numpy as np
from numba import int32, njit, uint64

from .pixel import (
    Q_LAVA,
    _split,
    axis_fan,
    conv_scatter_pixels,
    encode_pixels,
    encode_rows,
    list_rows,
)
from .scatter import dense_scatter
from .simd import lanes, vadd, vfma, vstore, vzero

__all__ = ["INT32_SUMS", "FLOAT32_SUMS", "LAVA_MAP_MAX_C", "lava_l1", "lava_map", "lava_map_make",
           "lava_map_ok", "lava_conv_step",
           "lava_dense_step", "scatter_i32", "fold_i32", "max_abs"]

INT32_SUMS = 2.0 ** 31  # int32 holds every partial sum while max|s| * l1 stays below this
FLOAT32_SUMS = 2.0 ** 24  # and float32 (integers) below this
LAVA_MAP_MAX_C = 4  # the spike map for convs of at most this many input channels
MAP_H = 2  # header of a map's geometry: [wp, last events, fan_y[h_in], fan_x[w_in]]


def lava_l1(w: np.ndarray, axis_out: int = -1) -> float:
    """``max_j sum_i |W[i, j]|`` over the output axis ``axis_out``: with messages ``|s| <= m``
    every partial sum of ``W s`` is at most ``m * lava_l1(W)`` in magnitude."""
    a = np.abs(np.moveaxis(np.asarray(w, np.float64), axis_out, -1))
    return float(a.reshape(-1, a.shape[-1]).sum(0).max(initial=0.0))


def lava_map_ok(c_in: int, cg: int) -> bool:
    """Does a ``"lava"`` conv of ``c_in`` input and ``cg`` output channels get the spike map?
    (2-4 input channels, whole float32 vectors of outputs)."""
    return 1 < c_in <= LAVA_MAP_MAX_C and cg % lanes(4) == 0


@njit(cache=True, nogil=True)
def max_abs(v, n):
    """``max |v[:n]|`` (0 if ``n == 0``)."""
    m = 0.0
    for i in range(n):
        m = max(m, abs(v[i]))
    return m


@njit(cache=True, nogil=True)
def scatter_i32(px_list, px_start, n_px, ev_ch, ev_val, w8, dz, geom, c_in, pg_list, pg_count,
                pg_stamp, frame):
    """:func:`sigmadelta.kernels.conv_scatter_pixels` (gain 1) in int32: ``dz += conv(s, W)``.

    ``w8``: the run-layout weights (:func:`sigmadelta.kernels.run_layout`) as int8, flat
    ``[kh, c_in, lw]``; ``dz``: int32 scratch as long as ``z``. The messages ``ev_val`` must
    be integers with ``max|s| * lava_l1(W) < 2**31`` (then every sum is exact). Lists the
    reached output pixels as the float kernel does; returns its ``(synops, additions)``.
    """
    w_in, h_out, w_out = geom[1], geom[2], geom[3]
    sy, sx, py, px, cg = geom[4], geom[5], geom[6], geom[7], geom[10]
    lw = w8.shape[0] // (geom[8] * c_in)
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
            zb = uint64((oy * w_out + ox0) * cg)
            wk = (ry + m * sy) * c_in
            for e in range(e0, e1):
                v = int32(ev_val[e])
                wb = uint64((wk + ev_ch[e]) * lw + s0)
                for j in range(uint64(n_len)):  # LLVM: vpmovsxbd, vpmulld, vpaddd (8 lanes)
                    dz[zb + j] += v * w8[wb + j]
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


@njit(cache=True, nogil=True)
def fold_i32(z, dz, pg_list, pg_count, cg):
    """``z[q, :] += dz[q, :]; dz[q, :] = 0`` for the listed pixels ``pg_list[:pg_count[0]]``."""
    for t in range(pg_count[0]):
        b = pg_list[t] * cg
        for j in range(cg):
            z[b + j] += dz[b + j]
            dz[b + j] = 0


def lava_map_make(geom: np.ndarray, w_cl: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``(mgeom, buf, wtap)`` of a conv's spike map (:func:`lava_map`), float32 in float64 words.

    ``mgeom = [wp, -1, fan_y[h_in], fan_x[w_in], hp * wp]`` (``wp``, ``hp``: the padded
    width and height); ``buf`` holds the map ``[hp * wp, c_in]``, one flag per padded pixel
    and ``cg`` values of scratch; ``wtap`` the weights ``[ky, kx, c, j]`` as float32.
    """
    h_in, w_in, h_out, w_out, sy, sx, py, px, kh, kw, cg = (int(v) for v in geom[:11])
    c_in = w_cl.shape[2]
    hp = max(h_in + py, (h_out - 1) * sy + kh)
    wp = max(w_in + px, (w_out - 1) * sx + kw)
    mgeom = np.concatenate([[wp, -1], axis_fan(h_in, h_out, kh, sy, py), axis_fan(w_in, w_out, kw, sx, px),
                            [hp * wp]]).astype(np.int64)
    n = hp * wp * (c_in + 1) + cg
    wtap = np.zeros((w_cl.size + 1) // 2, np.float64)
    wtap.view(np.float32)[:w_cl.size] = np.asarray(w_cl, np.float32).ravel()
    return mgeom, np.zeros((n + 1) // 2, np.float64), wtap


@njit(cache=True, nogil=True)
def lava_map(px_list, px_start, n_px, ev_ch, ev_val, wtap, z, geom, mgeom, buf, c_in, pg_list,
             pg_count, pg_stamp, frame):
    """``z += conv(s, W)`` of pixel-grouped events through the spike map (module docstring):
    the events go into the map (``buf``, float32), every output pixel whose window holds an
    event sums its taps in float32 registers and adds them to ``z``, the map is cleared.
    Exact while ``max|s| * lava_l1(W) < 2**24`` (the caller checks). ``wtap``, ``mgeom``,
    ``buf`` from :func:`lava_map_make` (viewed as float32). Lists the reached output pixels
    (in increasing order) and returns ``(synops, additions)`` as the scatter counts them.
    """
    w_in, h_in, py, px, cg, wp = geom[1], geom[0], geom[6], geom[7], geom[10], mgeom[0]
    n_pp = mgeom[mgeom.shape[0] - 1]
    smap = buf[:n_pp * c_in]
    hit = buf[n_pp * c_in:n_pp * (c_in + 1)]
    tmp = buf[n_pp * (c_in + 1):n_pp * (c_in + 1) + cg]
    fan, adds = 0, 0.0
    iy, row0 = 0, -w_in - 1
    for p in range(n_px):  # the events into the map
        pix = px_list[p]
        if pix < row0 or pix >= row0 + w_in:
            iy = pix // w_in
            row0 = iy * w_in
        ix = pix - row0
        pp = (iy + py) * wp + ix + px
        hit[pp] = 1.0
        f = mgeom[MAP_H + iy] * mgeom[MAP_H + h_in + ix]
        for e in range(px_start[p], px_start[p + 1]):
            smap[pp * c_in + ev_ch[e]] = ev_val[e]
            fan += f
            adds += abs(ev_val[e]) * f
    if geom[8] == 3 and geom[9] == 3 and c_in == 3:  # literal sizes: the tap loops unroll
        npg = _gather32(z, smap, hit, wtap, tmp, geom, wp, 3, 3, 3, pg_list, pg_count[0], pg_stamp, frame)
    else:
        npg = _gather32(z, smap, hit, wtap, tmp, geom, wp, geom[8], geom[9], c_in, pg_list, pg_count[0],
                        pg_stamp, frame)
    pg_count[0] = npg
    for p in range(n_px):  # clear what was written
        pix = px_list[p]
        if pix < row0 or pix >= row0 + w_in:
            iy = pix // w_in
            row0 = iy * w_in
        pp = (iy + py) * wp + pix - row0 + px
        hit[pp] = 0.0
        for c in range(c_in):
            smap[pp * c_in + c] = 0.0
    return fan * cg, adds * cg


@njit(cache=True, nogil=True, inline="always")
def _gather32(z, smap, hit, wtap, tmp, geom, wp, kh, kw, c_in, pg_list, npg, pg_stamp, frame):
    """The gather of :func:`lava_map`: three float32 vectors of outputs at a time, then one;
    returns the new length of ``pg_list``."""
    h_out, w_out, sy, sx, cg = geom[2], geom[3], geom[4], geom[5], geom[10]
    L = lanes(4)  # noqa: N806
    n3 = cg - cg % (3 * L)
    for oy in range(h_out):
        for ox in range(w_out):
            pb = oy * sy * wp + ox * sx
            h = hit[pb] * 0
            for ky in range(kh):
                for kx in range(kw):
                    h += hit[pb + ky * wp + kx]
            if h == 0:
                continue
            j = 0
            while j < n3:
                a0, a1, a2 = vzero(wtap), vzero(wtap), vzero(wtap)
                for ky in range(kh):  # a sum per kernel row: short dependency chains
                    rb = uint64((pb + ky * wp) * c_in)
                    tb = ky * kw * c_in
                    b0, b1, b2 = vzero(wtap), vzero(wtap), vzero(wtap)
                    for u in range(kw * c_in):
                        s = smap[rb + uint64(u)]
                        wi = uint64((tb + u) * cg + j)
                        b0 = vfma(b0, s, wtap, wi)
                        b1 = vfma(b1, s, wtap, wi + uint64(L))
                        b2 = vfma(b2, s, wtap, wi + uint64(2 * L))
                    a0, a1, a2 = vadd(a0, b0), vadd(a1, b1), vadd(a2, b2)
                vstore(tmp, uint64(j), a0)
                vstore(tmp, uint64(j + L), a1)
                vstore(tmp, uint64(j + 2 * L), a2)
                j += 3 * L
            while j < cg:
                a0 = vzero(wtap)
                for ky in range(kh):
                    rb = (pb + ky * wp) * c_in
                    tb = ky * kw * c_in
                    for u in range(kw * c_in):
                        a0 = vfma(a0, smap[rb + u], wtap, uint64((tb + u) * cg + j))
                vstore(tmp, uint64(j), a0)
                j += L
            q = oy * w_out + ox
            for j in range(cg):
                z[q * cg + j] += tmp[j]
            pg_stamp[q] = frame
            pg_list[npg] = q
            npg += 1
    return npg


@njit(cache=True, nogil=True)
def lava_conv_step(x, touched, count, rows, row_count, in_rows, memory, param, lava_k, lava_shift,
                   w_run, w8, l1, dz, z, geom, ev_ch, ev_val, px_list, px_start, vbuf, pg_list,
                   pg_count, pg_stamp, frame, prime, expand, out_touched, out_count, mgeom, smap,
                   wtap):
    """One ``"lava"`` pixel-conv step (``C_in >= 2``, groups 1): the spike map (:func:`lava_map`)
    when ``mgeom`` holds one and the last step's events reached 1/8 of the inputs, else encode
    by pixel and scatter in int32 (:func:`scatter_i32`, :func:`fold_i32`) while
    ``max|s| * l1 < 2**31``, else in float64 (:func:`sigmadelta.kernels.conv_scatter_pixels`).
    Same arguments and result as :func:`sigmadelta.kernels.conv_layer_step` plus ``w8``
    (int8 run-layout weights), ``l1`` (:func:`lava_l1`) and ``dz`` (int32 scratch, zero).
    """
    c_in = w_run.shape[1]
    pg_count[0] = 0
    if in_rows:
        n_px, n_ev = encode_rows(x, rows, row_count, c_in, memory, Q_LAVA, param, ev_ch, ev_val,
                                 px_list, px_start, lava_k, lava_shift)
    else:
        n_px, n_ev = encode_pixels(x, touched, count, memory, Q_LAVA, param, c_in, ev_ch, ev_val,
                                   px_list, px_start, lava_k, lava_shift)
    bound = max_abs(ev_val, n_ev) * max(l1, 1.0)
    if mgeom.shape[0] > 0 and 8 * n_ev >= memory.shape[0] and bound < FLOAT32_SUMS:
        synops, adds = lava_map(px_list, px_start, n_px, ev_ch, ev_val, wtap, z, geom, mgeom, smap,
                                c_in, pg_list, pg_count, pg_stamp, frame)
    elif bound < INT32_SUMS:
        synops, adds = scatter_i32(px_list, px_start, n_px, ev_ch, ev_val, w8, dz, geom, c_in,
                                   pg_list, pg_count, pg_stamp, frame)
        fold_i32(z, dz, pg_list, pg_count, geom[10])
    else:
        synops, adds = conv_scatter_pixels(px_list, px_start, n_px, ev_ch, ev_val, 1.0, w_run, z,
                                           geom, vbuf, pg_list, pg_count, pg_stamp, frame)
    if mgeom.shape[0] > 0:
        mgeom[1] = n_ev  # the next step's path
    n_out = list_rows(pg_list, pg_count, pg_stamp, frame, z.shape[0] // pg_stamp.shape[0], prime,
                      expand, out_touched, out_count)
    return n_ev, synops, adds, n_out, n_px


@njit(cache=True, nogil=True)
def lava_dense_step(ev_idx, ev_val, n_events, w8, l1, dz, z):
    """``z += W s`` of a ``"lava"`` dense layer, as :func:`sigmadelta.kernels.dense_scatter`
    (gain 1) with int8 weights ``w8[in, out]``: through the int32 scratch ``dz`` (zero, as
    long as ``z``) while ``max|s| * l1 < 2**31``, else in float64.
    Returns ``(synops, additions)``.
    """
    if max_abs(ev_val, n_events) * max(l1, 1.0) >= INT32_SUMS:
        return dense_scatter(ev_idx, ev_val, n_events, 1.0, w8, z)
    n_out = w8.shape[1]
    mag = 0.0
    for e in range(n_events):
        i = ev_idx[e]
        v = int32(ev_val[e])
        mag += abs(ev_val[e])
        for j in range(n_out):
            dz[j] += v * w8[i, j]
    for j in range(n_out):
        z[j] += dz[j]
        dz[j] = 0
    return n_events * n_out, mag * n_out

