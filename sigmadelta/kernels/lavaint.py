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
from numba import int32, int64, njit, uint64

from .lavaf32 import dense_f32, fold_f32, scatter_f32, scatter_walker
from .pixel import (
    Q_LAVA,
    axis_fan,
    conv_scatter_pixels,
    encode_pixels,
    encode_rows,
    list_rows,
)
from .scatter import dense_scatter
from .simd import lanes, vadd, vfma, vstore, vzero, wlanes

__all__ = ["INT32_SUMS", "FLOAT32_SUMS", "LAVA_MAP_MAX_C", "lava_l1", "lava_map", "lava_map_make",
           "lava_map_ok", "lava_encode_map", "lava_conv_step",
           "lava_dense_step", "scatter_i32", "fold_i32", "max_abs"]

INT32_SUMS = 2.0 ** 31  # int32 holds every partial sum while max|s| * l1 stays below this
FLOAT32_SUMS = 2.0 ** 24  # and float32 (integers) below this
LAVA_MAP_MAX_C = 4  # the spike map for convs of at most this many input channels
MAP_H = 2  # header of a map's geometry: [wp, last events, fan_y[h_in], fan_x[w_in], ...]


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
    ``[kh, c_in, lw]`` with ``lw = kw * cg`` (any padding after them unread); ``dz``: int32
    scratch as long as ``z``. The messages ``ev_val`` must be integers with
    ``max|s| * lava_l1(W) < 2**31`` (then every sum is exact). Lists the reached output
    pixels as the float kernel does; returns its ``(synops, additions)``.
    """
    return _walk_i32(px_list, px_start, n_px, ev_ch, ev_val, w8, dz, geom, c_in, pg_list, pg_count,
                     pg_stamp, frame)


@njit(cache=True, nogil=True)
def _rows_i32(dz, zb, ev_ch, ev_val, e0, e1, w8, wk, lw, s0, n_len):
    """``dz[zb + j] += s_e * w8[(wk + c_e) * lw + s0 + j]`` (int32) for the events
    ``e0 <= e < e1`` and ``j < n_len``: the row update of :func:`scatter_i32`. Not inlined by
    Numba (LLVM inlines it): ``inline="always"`` made the int32 scatter 2-3% slower."""
    for e in range(e0, e1):
        v = int32(ev_val[e])
        wb = uint64((wk + ev_ch[e]) * lw + s0)
        for j in range(n_len):  # LLVM: vpmovsxbd, vpmulld, vpaddd (8 lanes)
            dz[zb + j] += v * w8[wb + j]


_walk_i32 = scatter_walker(_rows_i32)


#: ``z[q, :] += dz[q, :]; dz[q, :] = 0`` for the listed pixels: :func:`fold_f32`, typed for
#: int32 sums (one generic kernel for both widths)
fold_i32 = fold_f32


def lava_map_make(geom: np.ndarray, w_cl: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``(mgeom, buf, wtap)`` of a conv's spike map (:func:`lava_map`), float32 in float64 words.

    ``mgeom = [wp, -1, fan_y[h_in], fan_x[w_in], fan_x per neuron of a row[w_in * c_in],
    hp * wp]`` (``wp``, ``hp``: the padded width and height); ``buf`` holds the map
    ``[hp * wp, c_in]``, one flag per padded pixel and ``cg`` values of scratch; ``wtap`` the
    weights ``[ky, kx, c, j]`` as float32.
    """
    h_in, w_in, h_out, w_out, sy, sx, py, px, kh, kw, cg = (int(v) for v in geom[:11])
    c_in = w_cl.shape[2]
    hp = max(h_in + py, (h_out - 1) * sy + kh)
    wp = max(w_in + px, (w_out - 1) * sx + kw)
    fan_x = axis_fan(w_in, w_out, kw, sx, px)
    mgeom = np.concatenate([[wp, -1], axis_fan(h_in, h_out, kh, sy, py), fan_x, np.repeat(fan_x, c_in),
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
    _map_gather(z, geom, mgeom, buf, wtap, c_in, pg_list, pg_count, pg_stamp, frame)
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


@njit(cache=True, nogil=True)
def _map_gather(z, geom, mgeom, buf, wtap, c_in, pg_list, pg_count, pg_stamp, frame):
    """The gather of a filled spike map (:func:`_gather32`, with literal sizes for 3x3 kernels
    over 3 channels so that the tap loops unroll); appends to ``pg_list``."""
    wp, n_pp, cg = mgeom[0], mgeom[mgeom.shape[0] - 1], geom[10]
    smap = buf[:n_pp * c_in]
    hit = buf[n_pp * c_in:n_pp * (c_in + 1)]
    tmp = buf[n_pp * (c_in + 1):n_pp * (c_in + 1) + cg]
    if geom[8] == 3 and geom[9] == 3 and c_in == 3:
        npg = _gather32(z, smap, hit, wtap, tmp, geom, wp, 3, 3, 3, pg_list, pg_count[0], pg_stamp, frame)
    else:
        npg = _gather32(z, smap, hit, wtap, tmp, geom, wp, geom[8], geom[9], c_in, pg_list, pg_count[0],
                        pg_stamp, frame)
    pg_count[0] = npg


@njit(cache=True, nogil=True)
def lava_encode_map(x, memory, param, lava_k, lava_shift, geom, mgeom, buf, c_in, ev_val):
    """Encode every input neuron by Lava's quantizer straight into the spike map.

    For each neuron ``i = p*C_in + c`` (as :func:`sigmadelta.kernels.encode_pixels` on the list
    of all neurons)::

        a = lava_k * x_i;  d = a - memory_i
        if d != 0 and |d| >= param:  s = floor(d / 2**lava_shift);  memory_i = a   else s = 0
        ev_val[i] = s;  map[pad(p), c] = s;  flag[pad(p)] = 1 if pixel p has an event else 0

    (``ev_val`` dense, in float64: exact where the float32 map may not be; :func:`_list_events`
    groups it by pixel). A neuron the frame did not touch sends nothing (its ``d`` is the one
    that did not pass the threshold before), so this equals encoding the touched list. Each
    input row is quantized in one branch-free pass (SIMD), then counted pixel by pixel. The
    whole map interior is written: the caller zeroes it after its gather (:func:`lava_map`
    expects a zero map). ``buf``, ``mgeom``: :func:`lava_map_make`.
    Returns ``(pixels with events, events, fan, additions, max|s|)``, ``fan`` and ``additions``
    the sums over the events of ``f`` and ``|s| f`` (``f``: the output pixels the event's pixel
    reaches; times ``C_out`` they are the scatter's synops and additions).
    """
    h_in, w_in, py, px, wp = geom[0], geom[1], geom[6], geom[7], mgeom[0]
    n_pp = mgeom[mgeom.shape[0] - 1]
    smap = buf[:n_pp * c_in]
    hit = buf[n_pp * c_in:n_pp * (c_in + 1)]
    scale = 0.5 ** lava_shift
    n, npx, fan, adds, top = 0, 0, 0, 0, 0  # integers: SIMD sums (the messages are integers)
    n_row = w_in * c_in
    fxc = mgeom[MAP_H + h_in + w_in:MAP_H + h_in + w_in + n_row]  # fan_x of each neuron of a row
    for iy in range(h_in):
        i0 = iy * n_row
        m0 = ((iy + py) * wp + px) * c_in
        xs, ms, es = x[i0:i0 + n_row], memory[i0:i0 + n_row], ev_val[i0:i0 + n_row]
        ss = smap[m0:m0 + n_row]
        fan_r, adds_r = 0, 0
        for t in range(n_row):  # _quantize's lava branch without short-circuits: SIMD (2.7x)
            a = lava_k * xs[t]
            d = a - ms[t]
            send = (d != 0.0) & (abs(d) >= param)
            sv = np.floor(d * scale) if send else 0.0
            ms[t] = a if send else ms[t]
            es[t] = sv
            ss[t] = sv
            m = int64(abs(sv))
            nz = int64(sv != 0.0)
            n += nz
            fan_r += nz * fxc[t]
            adds_r += m * fxc[t]
            top = max(top, m)
        fy = mgeom[MAP_H + iy]
        fan += fy * fan_r
        adds += fy * adds_r
        hs = hit[(iy + py) * wp + px:(iy + py) * wp + px + w_in]
        if c_in == 3:  # a literal channel count: the flag loop unrolls and vectorises (6 -> 3 us)
            npx += _flags(ss, hs, w_in, 3)
        else:
            npx += _flags(ss, hs, w_in, c_in)
    return npx, n, fan, float(adds), float(top)


@njit(cache=True, nogil=True, inline="always")
def _flags(ss, hs, w_in, c_in):
    """``hs[ix] = 1`` if pixel ``ix`` of a map row ``ss`` (``[w_in, c_in]``) holds a message,
    else 0 (``sum_c |s| != 0``); returns the number flagged."""
    npx = 0
    for ix in range(w_in):
        m = abs(ss[ix * c_in])
        for c in range(1, c_in):
            m += abs(ss[ix * c_in + c])
        h = m != 0.0
        hs[ix] = h
        npx += h
    return npx


@njit(cache=True, nogil=True)
def _list_events(ev_val, n_in, c_in, ev_ch, px_list, px_start):
    """The nonzero messages of a dense ``ev_val[:n_in]`` grouped by pixel, in place, as
    :func:`sigmadelta.kernels.encode_pixels` lists them; returns the number of pixels."""
    n, npx = 0, 0
    for p in range(n_in // c_in):
        px_list[npx] = p
        px_start[npx] = n
        k = n
        for c in range(c_in):
            sv = ev_val[p * c_in + c]
            ev_ch[k] = c
            ev_val[k] = sv  # k <= p * c_in + c: nothing unread is overwritten
            k += sv != 0.0
        npx += k > n
        n = k
    px_start[npx] = n
    return npx


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
    """One ``"lava"`` pixel-conv step (``C_in >= 2``, groups 1). With a spike map (``mgeom``
    non-empty) and the last step's events at least 1/8 of the inputs (or no last step): every
    input encoded straight into the map (:func:`lava_encode_map`), then its gather while
    ``max|s| * l1 < 2**24``. Otherwise encode the touched inputs by pixel; then the map
    (:func:`lava_map`) if this step's events reach 1/8 of the inputs and ``max|s| * l1 <
    2**24``, else scatter in int32 (:func:`scatter_i32`, :func:`fold_i32`) while
    ``max|s| * l1 < 2**31``, else in float64 (:func:`sigmadelta.kernels.conv_scatter_pixels`).
    Without a map, ``wtap`` non-empty (:func:`sigmadelta.kernels.lava_scatter_make`) holds the
    run-layout weights in float32 and ``smap`` a float32 scratch: the step is scattered by
    fused multiply-adds (:func:`sigmadelta.kernels.scatter_f32`) while ``max|s| * l1 < 2**24``.
    (Encoding into the map took lava-dl PilotNet's first conv from 67.7 to 36.2 us a step, both
    on the loop's state of step 30 in one process: thread CPU time, best of 300, load 5.)
    Same arguments and result as :func:`sigmadelta.kernels.conv_layer_step` plus ``w8``
    (int8 run-layout weights), ``l1`` (:func:`lava_l1`) and ``dz`` (int32 scratch, zero).
    """
    c_in = w_run.shape[1]
    pg_count[0] = 0
    if mgeom.shape[0] > 0 and (mgeom[1] < 0 or 8 * mgeom[1] >= memory.shape[0]):  # dense events
        n_px, n_ev, fan, adds, top = lava_encode_map(x, memory, param, lava_k, lava_shift, geom, mgeom,
                                                     smap, c_in, ev_val)
        bound = top * max(l1, 1.0)
        if bound < FLOAT32_SUMS:
            _map_gather(z, geom, mgeom, smap, wtap, c_in, pg_list, pg_count, pg_stamp, frame)
            synops, adds = fan * geom[10], adds * geom[10]
            _clear_map(mgeom, smap, c_in)
        else:  # the float32 map would not be exact: the events it also listed, by the scatter
            _clear_map(mgeom, smap, c_in)
            _list_events(ev_val, memory.shape[0], c_in, ev_ch, px_list, px_start)
            synops, adds = _scatter_exact(bound, px_list, px_start, n_px, ev_ch, ev_val, w_run, w8, dz,
                                          z, geom, vbuf, pg_list, pg_count, pg_stamp, frame)
        mgeom[1] = n_ev  # the next step's path
        n_out = list_rows(pg_list, pg_count, pg_stamp, frame, z.shape[0] // pg_stamp.shape[0], prime,
                          expand, out_touched, out_count)
        return n_ev, synops, adds, n_out, n_px
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
    elif mgeom.shape[0] == 0 and wtap.shape[0] > 0 and bound < FLOAT32_SUMS:  # float32 FMA
        synops, adds = scatter_f32(px_list, px_start, n_px, ev_ch, ev_val, wtap, smap, geom, c_in,
                                   pg_list, pg_count, pg_stamp, frame)
        fold_f32(z, smap, pg_list, pg_count, geom[10])
    else:
        synops, adds = _scatter_exact(bound, px_list, px_start, n_px, ev_ch, ev_val, w_run, w8, dz, z,
                                      geom, vbuf, pg_list, pg_count, pg_stamp, frame)
    if mgeom.shape[0] > 0:
        mgeom[1] = n_ev  # the next step's path
    n_out = list_rows(pg_list, pg_count, pg_stamp, frame, z.shape[0] // pg_stamp.shape[0], prime,
                      expand, out_touched, out_count)
    return n_ev, synops, adds, n_out, n_px


@njit(cache=True, nogil=True, inline="always")
def _scatter_exact(bound, px_list, px_start, n_px, ev_ch, ev_val, w_run, w8, dz, z, geom, vbuf,
                   pg_list, pg_count, pg_stamp, frame):
    """The scatter of :func:`lava_conv_step`: int32 while ``bound < 2**31``, else float64."""
    if bound < INT32_SUMS:
        synops, adds = scatter_i32(px_list, px_start, n_px, ev_ch, ev_val, w8, dz, geom, w_run.shape[1],
                                   pg_list, pg_count, pg_stamp, frame)
        fold_i32(z, dz, pg_list, pg_count, geom[10])
        return synops, adds
    return conv_scatter_pixels(px_list, px_start, n_px, ev_ch, ev_val, 1.0, w_run, z, geom, vbuf,
                               pg_list, pg_count, pg_stamp, frame)


@njit(cache=True, nogil=True)
def _clear_map(mgeom, buf, c_in):
    """Zero a spike map and its pixel flags (``buf`` of :func:`lava_map_make`)."""
    for i in range(mgeom[mgeom.shape[0] - 1] * (c_in + 1)):
        buf[i] = 0.0


@njit(cache=True, nogil=True)
def lava_dense_step(ev_idx, ev_val, n_events, w8, l1, dz, z):
    """``z += W s`` of a ``"lava"`` dense layer, as :func:`sigmadelta.kernels.dense_scatter`
    (gain 1) with int8 weights ``w8[in, out]``: through the int32 scratch ``dz`` (zero, as
    long as ``z``) while ``max|s| * l1 < 2**31``, else in float64. Below ``2**24`` a layer
    of at least 16 outputs sums in float32 registers (:func:`sigmadelta.kernels.dense_f32`;
    lava-dl PilotNet's first dense layer, about 1350 events into 100 outputs a step: 12.8 ->
    9.1 us against int32, replayed on 55 captured steps, thread CPU time, best of 7, load 4.5-8).
    Returns ``(synops, additions)``.
    """
    bound = max_abs(ev_val, n_events) * max(l1, 1.0)
    if bound >= INT32_SUMS:
        return dense_scatter(ev_idx, ev_val, n_events, 1.0, w8, z)
    n_out = w8.shape[1]
    mag = 0.0
    for e in range(n_events):
        mag += abs(ev_val[e])
    if bound < FLOAT32_SUMS and n_out >= wlanes(4):  # float32 registers (kernels/lavaf32.py)
        dense_f32(ev_idx, ev_val, n_events, w8, dz)
    else:
        for e in range(n_events):
            i = ev_idx[e]
            v = int32(ev_val[e])
            for j in range(n_out):
                dz[j] += v * w8[i, j]
    for j in range(n_out):
        z[j] += dz[j]
        dz[j] = 0
    return n_events * n_out, mag * n_out

