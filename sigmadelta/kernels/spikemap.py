"""One-input-channel conv through a spike map: quantize into a padded map, then gather.

The first conv of gray video has one input channel, and on real video most of its
input pixels spike every frame (the camera shakes, the background moves). Per event
the scatter (:func:`sigmadelta.kernels.encode_scatter_1ch`) then does 9-18 synops
and as much bookkeeping (bounds, runs, listing). Here the frame instead goes in
three passes over plain arrays::

    A  for each touched input pixel p:  s = Q(x_p);  S[pad(p)] = gain * s
       (events, synops += fan(p) * C_out, additions += |s| * fan(p) * C_out)
    B  for each output pixel q with an event in its window:
           z[q, :] += sum over taps t (in order) of  S[pad(q) + off(t)] * W[t, :]
       (one SIMD register per lane block, z row loaded and stored once) and list q
    C  S = 0 (the map is all zero between frames)

``fan(p)`` is the number of output pixels input pixel ``p`` reaches (a product of a
row and a column table). Pass B adds each output's taps in the order the scatter
adds its events (increasing input pixel), with the multiply and the add rounded
separately, so ``z``, the memory, the counters and the listing equal the scatter's
exactly (a tap without an event adds ``0 * w``, which can only turn a ``-0.0`` into
``+0.0``). It visits every output pixel, so it pays when events are dense:
:func:`prefer_map` picks it from the last frame's event count, which the caller
keeps in ``mgeom[1]``.

``mgeom`` (:func:`make_map`): ``[wp, last_events, fan_y[h_in], fan_x[w_in]]`` with
``wp`` the padded row length (``last_events`` -1 before the first frame).
"""

import numpy as np
from numba import njit, uint64

from .pixel import _quantize, axis_fan
from .simd import lanes, vload, vmul_add, vstore

__all__ = ["make_map", "no_map", "prefer_map", "encode_map_1ch", "H_MAP"]

H_MAP = 2  # header entries of mgeom before the fan tables


def make_map(geom: np.ndarray, w_cl: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``(mgeom, smap, wtap)`` for :func:`encode_map_1ch`, or :func:`no_map` if it does not apply.

    ``geom`` from :func:`sigmadelta.kernels.make_geom`, ``w_cl[ky, kx, 1, C_out]`` the
    weights (float or int64); the map path needs one input channel and ``C_out`` a
    multiple of the SIMD lanes of the weight dtype.
    """
    h_in, w_in, h_out, w_out, sy, sx, py, px, kh, kw, cg = (int(v) for v in geom[:11])
    if w_cl.shape[2] != 1 or cg % lanes(w_cl.dtype.itemsize) != 0:
        return no_map(w_cl.dtype)
    hp = max(h_in + py, (h_out - 1) * sy + kh)
    wp = max(w_in + px, (w_out - 1) * sx + kw)
    mgeom = np.concatenate([[wp, -1], axis_fan(h_in, h_out, kh, sy, py),
                            axis_fan(w_in, w_out, kw, sx, px)]).astype(np.int64)
    return mgeom, np.zeros(hp * wp, w_cl.dtype), np.ascontiguousarray(w_cl[:, :, 0, :]).ravel()


def no_map(dtype) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Empty map state: the layer always scatters."""
    return np.zeros(0, np.int64), np.zeros(0, dtype), np.zeros(0, dtype)


@njit(cache=True, nogil=True)
def prefer_map(mgeom, n_out_pixels):
    """Whether to take the map path this frame: no map, never; else when the last frame's
    events numbered at least 2/3 of the output pixels (or on the first frame).

    Measured on the demo's layer ``1`` (stride 2): the scatter costs about 1.2 times what
    one output pixel of the gather costs, per event.
    """
    if mgeom.shape[0] == 0:
        return False
    return mgeom[1] < 0 or 3 * mgeom[1] >= 2 * n_out_pixels


@njit(cache=True, nogil=True)
def encode_map_1ch(x, pixels, count, memory, herding, param, gain, wtap, z, geom, mgeom, smap,
                   pg_list, pg_count, pg_stamp, frame, lava_k=1.0, lava_shift=0):
    """Same arguments, updates and result as :func:`sigmadelta.kernels.encode_scatter_1ch`
    (``wtap``, ``mgeom``, ``smap`` from :func:`make_map` instead of the run layout); see
    the module docstring. Returns ``(events, synops, additions)``.
    """
    w_in, cg, wp = geom[1], geom[10], mgeom[0]
    py, px, h_in = geom[6], geom[7], geom[0]
    n_t, n_ev, fan, adds = count[0], 0, 0, 0.0
    iy, row0 = 0, -w_in - 1
    lava_scale = 0.5 ** lava_shift
    for t in range(n_t):  # pass A
        pix = pixels[t]
        s, memory[pix] = _quantize(x[pix], memory[pix], herding, param, lava_k, lava_scale)
        if pix < row0 or pix >= row0 + w_in:  # pixels mostly come in order: rarely divide
            iy = pix // w_in
            row0 = iy * w_in
        smap[(iy + py) * wp + pix - row0 + px] = s * gain
        f = mgeom[H_MAP + iy] * mgeom[H_MAP + h_in + pix - row0]
        hit = s != 0
        n_ev += hit
        fan += f * hit
        adds += abs(s) * f
    if geom[8] == 3 and geom[9] == 3:  # literal kernel size: the tap loops unroll
        npg = _gather(z, smap, wtap, geom, wp, 3, 3, pg_list, pg_count[0], pg_stamp, frame)
    else:
        npg = _gather(z, smap, wtap, geom, wp, geom[8], geom[9], pg_list, pg_count[0], pg_stamp,
                      frame)
    pg_count[0] = npg
    smap[:] = 0  # pass C: one memset (events are dense when this path runs)
    return n_ev, fan * cg, adds * cg


@njit(cache=True, nogil=True, inline="always")
def _gather(z, smap, wtap, geom, wp, kh, kw, pg_list, npg, pg_stamp, frame):
    """Pass B of :func:`encode_map_1ch`; returns the new length of ``pg_list``."""
    h_out, w_out, sy, sx, cg = geom[2], geom[3], geom[4], geom[5], geom[10]
    L = lanes(z.itemsize)  # noqa: N806
    for oy in range(h_out):
        for ox in range(w_out):
            base = oy * sy * wp + ox * sx
            hit = False
            for ky in range(kh):
                for kx in range(kw):
                    hit |= smap[base + ky * wp + kx] != 0
            if not hit:
                continue
            q = oy * w_out + ox
            for j in range(0, cg, L):
                zq = uint64(q * cg + j)
                acc = vload(z, zq)
                for ky in range(kh):
                    for kx in range(kw):
                        acc = vmul_add(acc, smap[base + ky * wp + kx], wtap,
                                       uint64((ky * kw + kx) * cg + j))
                vstore(z, zq, acc)
            pg_stamp[q] = frame
            pg_list[npg] = q
            npg += 1
    return npg
