"""The dense recompute path of a busy 1x1 conv (stride 1, no padding): a plain GEMM.

A 1x1, stride-1, unpadded conv is a matrix product over pixels: output pixel ``q`` reads
input pixel ``q`` only. Its dense path (:func:`conv1x1_dense`) therefore needs neither
padding nor im2col, and the encoder's reach is the identity::

    s_i = Q(x_i) - memory_i;  memory_i = Q(x_i)     # every input, as flat runs of pixels
    z[q, :] = bias[:] + (gain * memory)[q, :] @ W    # a BLAS call per block of pixels, W = W[c, j]
    (fixed point: acc = memory @ W_int, no bias; the caller rebuilds z from acc)

The counters are those of the event semantics (as :func:`sigmadelta.kernels.dense_recompute`
gives them): events (``s != 0``), synops ``events * C_out`` (each event reaches the
``C_out`` outputs of its own pixel), additions ``sum |s| * C_out``, and the output pixels
reached are the input pixels with events, stamped and listed in increasing order.

Why a kernel of its own: the general dense path quantizes pixel by pixel (a short vector
loop and two reductions per pixel); here a run of pixels is quantized in one vector loop
into a scratch of ``|s|`` and then summed per pixel (float32, 2-vCPU Xeon with AVX-512, one
thread, load 6-8: a prototype of this loop 1.4-1.6 -> 0.7-0.9 ns per input at 16-144
channels, same values; the whole layer, 144 -> 24 channels at 16x16 with half the inputs
changing, 0.097 -> 0.056 ms, of which BLAS 0.012-0.017 ms). The product runs block by block
(:func:`_gemm_bias`), the per-channel bias added to each block while it is in cache: one
call over the map followed by a pass adding the tiled bias map read the map's bias and ``z``
again from memory (in the network, MobileNetV2 at 64x64, float32, scale 32, thread CPU time,
2-vCPU Intel Xeon VM (AVX-512), load 2.7: its 16 -> 96 expansion at 32x32 0.214 -> 0.146 ms
a frame, the 24 -> 144 ones at 16x16 0.098 -> 0.067 and 0.083 -> 0.068 ms; the same values
with this BLAS, whose sums over ``C_in`` do not depend on the rows per call).
"""

import numpy as np
from numba import njit, types
from numba.extending import overload

from .pixel import Q_HERDING, _quantize
from .quantize import single_exact

__all__ = ["conv1x1_dense", "conv1x1_ok", "RUN_VALUES", "SUM_EXACT"]

#: values quantized per vector run (the ``|s|`` scratch: 8-16 KiB, in L1)
RUN_VALUES = 2048


@njit(cache=True, nogil=True)
def conv1x1_ok(geom, w_cl, z) -> bool:
    """Can :func:`conv1x1_dense` run this layer? Float state, a 1x1 kernel, stride 1, no
    padding (``geom`` as :func:`sigmadelta.kernels.make_geom`)."""
    return (_is_float(z) and geom[8] == 1 and geom[9] == 1 and geom[4] == 1 and geom[5] == 1
            and geom[6] == 0 and geom[7] == 0)


def _is_float(z):
    """Whether ``z`` holds floats (decided at compile time)."""
    raise NotImplementedError("compiled code only")


@overload(_is_float, jit_options={"nogil": True})
def _is_float_impl(z):
    flag = isinstance(z.dtype, types.Float)
    return lambda z: flag


def _product(P, w_cl, z, bias, use_bias, n_pix, c_in, cg):
    """``z = [bias +] P @ W`` (:func:`_gemm_bias`); compiled for float state only (integer
    state never runs it)."""
    raise NotImplementedError("compiled code only")


@overload(_product, jit_options={"nogil": True})
def _product_impl(P, w_cl, z, bias, use_bias, n_pix, c_in, cg):
    if isinstance(z.dtype, types.Float):
        return lambda P, w_cl, z, bias, use_bias, n_pix, c_in, cg: _gemm_bias(
            P, w_cl, z, bias, use_bias, n_pix, c_in, cg)
    return lambda P, w_cl, z, bias, use_bias, n_pix, c_in, cg: None


#: output values per GEMM call of :func:`_gemm_bias` (a block of ``z``: 32-64 KiB, in L1-L2)
GEMM_VALUES = 8192


@njit(cache=True, nogil=True)
def _gemm_bias(P, w_cl, z, bias, use_bias, n_pix, c_in, cg):
    """``z[q, :] = [bias[:cg] +] P[q, :] @ W`` (``W = w_cl.reshape(c_in, cg)``) over blocks of
    ``GEMM_VALUES // cg`` pixels: one BLAS call per block, then the per-channel bias (its
    first ``cg`` values: the engine's map tiles the same bias at every pixel) added while the
    block is in cache, instead of one call over the map and a pass adding the bias map."""
    w2 = w_cl.reshape(c_in, cg)
    z2 = z.reshape(n_pix, cg)
    rows = max(1, GEMM_VALUES // cg)
    b = bias[:cg]
    for q0 in range(0, n_pix, rows):
        q1 = min(q0 + rows, n_pix)
        np.dot(P[q0 * c_in:q1 * c_in].reshape(q1 - q0, c_in), w2, z2[q0:q1])
        if use_bias:
            for q in range(q0, q1):
                _add_row(z[q * cg:q * cg + cg], b)


@njit(cache=True, nogil=True, inline="always")
def _add_row(zs, b):
    """``zs += b`` over slices from 0 (vectorises)."""
    for j in range(zs.shape[0]):
        zs[j] += b[j]


@njit(cache=True, nogil=True, fastmath={"reassoc"}, inline="always")
def _encode_run(xs, ms, ws, ss, herding, param, gain):
    """Quantize a run of inputs (slices from 0, so that the loop vectorises):
    ``memory``, ``ws = gain * memory`` and ``ss = |s|``. Herding with
    :func:`single_exact` scales multiplies in the state's precision (float32 state: twice the
    lanes, no conversions; float64: the same operations as the general loop) and subtracts in
    float64 as the general loop does: the same values bit for bit (float32, 144 channels at
    16x16, thread CPU time, alternating, 2-vCPU AMD EPYC Zen 4, load 4: 0.017 -> 0.009 ms)."""
    if herding == Q_HERDING and single_exact(param, gain):
        p1, g1 = np.float32(param), np.float32(gain)
        for j in range(xs.shape[0]):
            q = np.rint(p1 * xs[j])
            ss[j] = abs(np.float64(q) - np.float64(ms[j]))
            ms[j] = q
            ws[j] = q * g1
    elif herding == Q_HERDING:
        for j in range(xs.shape[0]):
            q = np.rint(param * xs[j])
            ss[j] = abs(q - ms[j])
            ms[j] = q
            ws[j] = ms[j] * gain
    else:
        for j in range(xs.shape[0]):
            s, ms[j] = _quantize(xs[j], ms[j], herding, param, 1.0, 1.0)
            ss[j] = abs(s)
            ws[j] = ms[j] * gain


@njit(cache=True, nogil=True, fastmath={"reassoc"}, inline="always")
def _pixel_sums(ss):
    """``(events, sum |s|)`` of one pixel's ``|s|`` (herding spikes are whole numbers, so
    reassociating their sum is exact; threshold layers never read the sum)."""
    e, mag = 0, 0.0
    for j in range(ss.shape[0]):
        e += ss[j] != 0.0
        mag += ss[j]
    return e, mag


#: :func:`_pixel_sums_narrow` is exact while a pixel's sum of ``|s|`` stays below this (whole
#: numbers in float32: every partial sum of non-negative terms is at most the total)
SUM_EXACT = 2.0**23


@njit(cache=True, nogil=True, fastmath={"reassoc"})
def _pixel_sums_narrow(ss):
    """:func:`_pixel_sums` with the count in float32 and the sum in ``ss``'s own precision:
    no widening of each value (float32 state: the reduction runs on twice the lanes, without
    conversions). Exact for herding (whole numbers) while the sum stays below
    :data:`SUM_EXACT`; the caller takes :func:`_pixel_sums` otherwise. Encode and sums of a
    whole map, float32, thread CPU time, alternating with :func:`_pixel_sums` in one process
    (7 passes, best; 2-vCPU Intel Xeon VM with AVX-512, load 3.3): 96 and 144 channels at
    16x16, 192 at 8x8, 2-50% of the inputs changing, 0.79-0.90x the time; 16 at 32x32 and 24 at
    16x16 0.85-1.0x. A compiled function of its own, not inlined in Numba's IR: there the
    caller's flags would apply (:func:`conv1x1_dense` has no ``reassoc``), and the reduction
    would not vectorise; LLVM inlines it keeping its own flags."""
    e, mag = np.float32(0.0), np.float32(0.0)
    for j in range(ss.shape[0]):
        v = ss[j]
        e += np.float32(1.0) if v != 0.0 else np.float32(0.0)
        mag += v
    return int(e), mag


@njit(cache=True, nogil=True)
def conv1x1_dense(x, memory, herding, param, gain, c_in, w_cl, bias, use_bias, z, geom, mem_w, rowbuf,
                  pg_list, pg_count, pg_stamp, frame):
    """Encode every input and recompute a 1x1 conv's ``z`` (see the module docstring).

    Same arguments and results as :func:`sigmadelta.kernels.dense_recompute` for a layer
    :func:`conv1x1_ok` accepts (quantizer ``herding``: threshold or herding, never lava):
    ``w_cl`` the weights ``[c, j]`` (flat or not), ``mem_w`` (at least ``len(x)``) receives
    ``gain * memory``, ``rowbuf`` is the ``|s|`` scratch (one pixel's row is allocated if it
    holds none). Returns ``(events, synops, additions, pixels with events)``.
    """
    cg = geom[10]
    n_pix = x.shape[0] // c_in
    ss = rowbuf if rowbuf.shape[0] >= c_in else np.empty(c_in, rowbuf.dtype)
    run = max(1, min(RUN_VALUES, ss.shape[0]) // c_in)  # pixels per vector run
    n_ev, adds, n_px = 0, 0.0, 0
    npg = pg_count[0]
    narrow = herding == Q_HERDING  # whole-number spikes: the narrow sums are exact
    for p0 in range(0, n_pix, run):
        p1 = min(p0 + run, n_pix)
        a, b = p0 * c_in, p1 * c_in
        _encode_run(x[a:b], memory[a:b], mem_w[a:b], ss[:b - a], herding, param, gain)
        for p in range(p0, p1):
            o = (p - p0) * c_in
            if narrow:
                e, mag = _pixel_sums_narrow(ss[o:o + c_in])
                if mag >= SUM_EXACT:
                    e, mag = _pixel_sums(ss[o:o + c_in])
            else:
                e, mag = _pixel_sums(ss[o:o + c_in])
            if e:
                n_ev += e
                adds += mag
                n_px += 1
                pg_stamp[p] = frame
                pg_list[npg] = p
                npg += 1
    pg_count[0] = npg
    _product(mem_w, w_cl, z, bias, use_bias, n_pix, c_in, cg)
    return n_ev, n_ev * cg, adds * cg, n_px
