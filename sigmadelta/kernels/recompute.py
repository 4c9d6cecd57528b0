"""The dense recompute path of a busy pixel conv layer: encode everything, recompute ``z``.

Where most inputs spike, scattering event by event costs more than computing the layer
again. :func:`dense_recompute` then runs, for the whole layer::

    s_i = Q(x_i) - memory_i;  memory_i = Q(x_i)        # one pass over every input neuron
    z = bias + conv(gain * memory, W)                   # the whole map, row by row
    (fixed point: acc = conv(memory, W_int), no bias; the caller rebuilds z from acc)

which equals the scatter's ``z += gain * conv(s, W)`` summed over the stream (exactly in
fixed point, up to the order of float additions otherwise). The counters are those of
the event semantics, never of the path: events (``s != 0``), synops (per event, the
output neurons it reaches), additions (``|s|`` times that) and the output pixels the
events reach, listed in ``pg_list`` as the scatter lists them (by a scan of stamps, in
increasing order). Untouched inputs cannot spike (their value is the one already
encoded), so encoding all of them gives the same events as encoding the touched ones.

:func:`choose_dense` picks the path per layer and frame before encoding, from what is
already known: this frame's touched inputs and the last frame's events per touched input.
"""

from collections import namedtuple

from numba import njit

from .pixel import _quantize, _split
from .simd import lanes, vload, vmul_add, vstore

__all__ = ["dense_recompute", "choose_dense", "PATH_AUTO", "PATH_SCATTER", "PATH_DENSE",
           "PATH_STATE", "DENSE_ABOVE"]

PATH_AUTO, PATH_SCATTER, PATH_DENSE = range(3)  # a layer's path mode (``pstate[PATH_STATE.mode]``)
#: entries of a layer's path state ``pstate`` (int64): mode, last frame's events and
#: touched inputs, frames run by the scatter and by the dense path
PATH_STATE = namedtuple("PathState", ["mode", "last_events", "last_touched", "frames_scatter",
                                      "frames_dense"])(*range(5))
MODE, LAST_TOUCHED, FRAMES_SCATTER, FRAMES_DENSE = (PATH_STATE.mode, PATH_STATE.last_touched,
                                                    PATH_STATE.frames_scatter, PATH_STATE.frames_dense)
LAST_EVENTS = PATH_STATE.last_events
#: auto: the dense path runs when the expected events exceed this fraction of the inputs (set
#: from the micro benchmark: the recompute runs at about 0.44x torch, the scatter below that
#: only beyond about 60% of the inputs spiking)
DENSE_ABOVE = 0.6


@njit(cache=True, nogil=True)
def choose_dense(pstate, n_touched, n_in, dense_above, prime):
    """Should this frame run the dense path? (and count the frame under its path)

    Mode ``PATH_SCATTER`` / ``PATH_DENSE`` force a path. ``PATH_AUTO``: dense on the first
    frame (every input is sent) and when ``expected = n_touched * last_events /
    last_touched`` (this frame's touched inputs times the last frame's events per touched
    input) reaches ``dense_above * n_in``.
    """
    mode = pstate[MODE]
    if mode == PATH_AUTO:
        if prime or pstate[LAST_TOUCHED] == 0:
            dense = prime
        else:
            dense = n_touched * pstate[LAST_EVENTS] >= dense_above * n_in * pstate[LAST_TOUCHED]
    else:
        dense = mode == PATH_DENSE
    pstate[FRAMES_DENSE if dense else FRAMES_SCATTER] += 1
    pstate[LAST_TOUCHED] = n_touched
    return dense


@njit(cache=True, nogil=True)
def _reach(pix, geom, pg_stamp, frame):
    """Stamp the output pixels input pixel ``pix`` reaches; return how many (the scatter's fan / C_out)."""
    w_in, h_out, w_out = geom[1], geom[2], geom[3]
    sy, sx, py, px = geom[4], geom[5], geom[6], geom[7]
    iy = pix // w_in
    ix = pix - iy * w_in
    r, oxh = _split(ix + px, sx)
    ox0 = max(oxh - geom[11 + r] + 1, 0)
    ox1 = min(oxh, w_out - 1)
    if ox0 > ox1:
        return 0
    ry, oyh = _split(iy + py, sy)
    n = 0
    for m in range(geom[11 + 2 * sx + ry]):
        oy = oyh - m
        if oy < 0 or oy >= h_out:
            continue
        for q in range(oy * w_out + ox0, oy * w_out + ox1 + 1):
            pg_stamp[q] = frame
        n += ox1 - ox0 + 1
    return n


@njit(cache=True, nogil=True)
def _encode_all(x, memory, herding, param, gain, c_in, mem_w, geom, pg_stamp, frame):
    """Quantize every input; ``gain * memory`` goes into ``mem_w``, the input zero-padded by
    ``(py, px)`` on each side (the padding stays 0). Returns ``(events, synops, additions)``."""
    w_in, py, px, cg = geom[1], geom[6], geom[7], geom[10]
    w_pad = w_in + 2 * px
    n_ev, synops, adds = 0, 0, 0.0
    for p in range(x.shape[0] // c_in):
        e, mag = 0, 0.0
        iy = p // w_in
        pb = ((iy + py) * w_pad + p - iy * w_in + px) * c_in - p * c_in
        for i in range(p * c_in, (p + 1) * c_in):
            s, memory[i] = _quantize(x[i], memory[i], herding, param, 1.0, 0)  # never lava (see PixelConvOp)
            mem_w[pb + i] = memory[i] * gain
            e += s != 0.0
            mag += abs(s)
        if e:
            fan = _reach(p, geom, pg_stamp, frame) * cg
            n_ev += e
            synops += fan * e
            adds += mag * fan
    return n_ev, synops, adds


@njit(cache=True, nogil=True)
def _block4(P, wf, z, bias, use_bias, zero, b0, step, q0, j0, geom, c_in):
    """Output pixels ``q0..q0+3`` (inputs from ``P[b0 + i*step]`` on), channels ``j0:j0+L``:
    four vector sums over every tap and input channel, in registers; then stored (+ bias)."""
    w_pad, kh, kw, cg = geom[1] + 2 * geom[7], geom[8], geom[9], geom[10]
    a0 = a1 = a2 = a3 = vload(zero, 0)
    for ky in range(kh):
        for kx in range(kw):
            b = b0 + (ky * w_pad + kx) * c_in
            wb = (ky * kw + kx) * c_in * cg + j0
            for c in range(c_in):
                wo = wb + c * cg
                a0 = vmul_add(a0, P[b + c], wf, wo)
                a1 = vmul_add(a1, P[b + step + c], wf, wo)
                a2 = vmul_add(a2, P[b + 2 * step + c], wf, wo)
                a3 = vmul_add(a3, P[b + 3 * step + c], wf, wo)
    if use_bias:
        a0, a1 = vmul_add(a0, 1, bias, q0 * cg + j0), vmul_add(a1, 1, bias, (q0 + 1) * cg + j0)
        a2, a3 = vmul_add(a2, 1, bias, (q0 + 2) * cg + j0), vmul_add(a3, 1, bias, (q0 + 3) * cg + j0)
    vstore(z, q0 * cg + j0, a0)
    vstore(z, (q0 + 1) * cg + j0, a1)
    vstore(z, (q0 + 2) * cg + j0, a2)
    vstore(z, (q0 + 3) * cg + j0, a3)


@njit(cache=True, nogil=True)
def _block1(P, wf, z, bias, use_bias, zero, b0, q0, j0, geom, c_in):
    """One output pixel ``q0``, channels ``j0:j0+L`` (see :func:`_block4`)."""
    w_pad, kh, kw, cg = geom[1] + 2 * geom[7], geom[8], geom[9], geom[10]
    a0 = vload(zero, 0)
    for ky in range(kh):
        for kx in range(kw):
            b = b0 + (ky * w_pad + kx) * c_in
            wb = (ky * kw + kx) * c_in * cg + j0
            for c in range(c_in):
                a0 = vmul_add(a0, P[b + c], wf, wb + c * cg)
    if use_bias:
        a0 = vmul_add(a0, 1, bias, q0 * cg + j0)
    vstore(z, q0 * cg + j0, a0)


@njit(cache=True, nogil=True)
def _scalar(P, wf, z, bias, use_bias, b0, q0, j0, geom, c_in):
    """One output pixel ``q0``, channels ``j0:C_out`` one by one (the tail of a vector)."""
    w_pad, kh, kw, cg = geom[1] + 2 * geom[7], geom[8], geom[9], geom[10]
    for j in range(j0, cg):
        acc = wf[0] * 0
        for ky in range(kh):
            for kx in range(kw):
                b = b0 + (ky * w_pad + kx) * c_in
                wb = (ky * kw + kx) * c_in * cg + j
                for c in range(c_in):
                    acc += P[b + c] * wf[wb + c * cg]
        z[q0 * cg + j] = bias[q0 * cg + j] + acc if use_bias else acc


@njit(cache=True, nogil=True)
def _conv_all(P, wf, z, bias, use_bias, zero, geom, c_in):
    """``z = [bias +] conv(P, w)`` over the whole map, ``P`` the zero-padded input: blocks of
    four output pixels times one SIMD vector of output channels (:mod:`.simd`), the rest
    one pixel or one channel at a time."""
    h_out, w_out, sy, sx, cg = geom[2], geom[3], geom[4], geom[5], geom[10]
    w_pad = geom[1] + 2 * geom[7]
    L = lanes(z.itemsize)  # noqa: N806
    n_vec = cg - cg % L
    step = sx * c_in
    for oy in range(h_out):
        rb = oy * sy * w_pad * c_in
        ox = 0
        while ox + 4 <= w_out:
            for j0 in range(0, n_vec, L):
                _block4(P, wf, z, bias, use_bias, zero, rb + ox * step, step, oy * w_out + ox, j0,
                        geom, c_in)
            ox += 4
        for o in range(ox, w_out):
            for j0 in range(0, n_vec, L):
                _block1(P, wf, z, bias, use_bias, zero, rb + o * step, oy * w_out + o, j0, geom, c_in)
        if n_vec < cg:
            for o in range(w_out):
                _scalar(P, wf, z, bias, use_bias, rb + o * step, oy * w_out + o, n_vec, geom, c_in)


@njit(cache=True, nogil=True)
def dense_recompute(x, memory, herding, param, gain, c_in, w_cl, bias, use_bias, z, geom, mem_w, rowbuf,
                    pg_list, pg_count, pg_stamp, frame):
    """Encode every input, recompute ``z`` over the whole map, list the reached output pixels.

    ``w_cl``: the channels-last conv weights ``[ky, kx, c, j]`` (groups 1), flat or not;
    ``c_in`` input channels; ``geom`` as :func:`sigmadelta.kernels.make_geom`; ``mem_w``
    (the input zero-padded, ``(H_in + 2 py) * (W_in + 2 px) * C_in``, its padding 0) and
    ``rowbuf`` (zeros, at least one SIMD vector) are scratch of ``z``'s dtype. ``z = bias + rows`` if
    ``use_bias`` else ``z = rows`` (fixed point). Reached output pixels go to
    ``pg_list`` (one spare slot), as :func:`sigmadelta.kernels.conv_scatter_pixels`
    lists them. Returns ``(events, synops, additions)``.
    """
    n_ev, synops, adds = _encode_all(x, memory, herding, param, gain, c_in, mem_w, geom, pg_stamp,
                                     frame)
    _conv_all(mem_w, w_cl.reshape(w_cl.size), z, bias, use_bias, rowbuf, geom, c_in)
    npg = pg_count[0]
    for q in range(pg_stamp.shape[0]):  # branchless: npg <= q
        pg_list[npg] = q
        npg += pg_stamp[q] == frame
    pg_count[0] = npg
    return n_ev, synops, adds
