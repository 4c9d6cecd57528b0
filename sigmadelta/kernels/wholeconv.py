"""The dense recompute's whole-map conv ``z = [bias +] conv(P, W)``, by kernel.

:func:`_conv_whole` picks, for float layers, the narrow conv (one output channel,
:mod:`.narrowconv`), the small conv (a few output and input channels, :mod:`.smallconv`), the
register-blocked direct conv (:mod:`.directconv`) or the im2col GEMM (:func:`conv_gemm`); for
fixed point (int64) the register-blocked integer loop (:mod:`.convint`). The loop's flags
``direct`` / ``narrow`` leave kernels no layer of the network uses out of the compiled code.
"""

import numpy as np
from numba import njit, types
from numba.extending import overload

from .convint import conv_all as _conv_all
from .directconv import direct_conv, direct_enabled, direct_vectors
from .narrowconv import narrow_channels, narrow_conv
from .smallconv import small_channels, small_conv

__all__ = ["conv_gemm", "gemm_rows", "GEMM_BYTES"]

#: im2col scratch of a float layer's dense path: about this many bytes of rows per GEMM call
GEMM_BYTES = 1 << 20


def gemm_rows(n_out: int, k: int, itemsize: int) -> int:
    """Output pixels per GEMM call of :func:`conv_gemm` (``k = kh*kw*C_in``): rows of about
    :data:`GEMM_BYTES` in all, at least 64 (BLAS runs short calls poorly), at most ``n_out``."""
    return int(min(n_out, max(64, GEMM_BYTES // (k * itemsize))))


@njit(cache=True, nogil=True)
def conv_gemm(P, w_cl, z, bias, use_bias, cols, geom, c_in):
    """``z = [bias +] conv(P, W)`` over the whole map as GEMM, ``P`` the zero-padded input.

    For a chunk of output pixels ``q`` (``oy, ox``), row ``q`` of the im2col matrix holds,
    kernel row by kernel row, the ``kw*C_in`` contiguous inputs
    ``P[(oy*sy + ky) * W_pad + ox*sx : ... + kw, :]``; then ``z[q, :] = rows @ W`` with
    ``W = w_cl.reshape(kh*kw*C_in, C_out)`` (BLAS through ``np.dot``) and the bias added
    to the chunk while it is in cache. ``cols`` (float, at least one row of
    ``kh*kw*C_in``) is the scratch: its length sets the chunk. A 1x1, stride-1,
    unpadded conv reads ``P`` as the matrix itself.
    """
    h_out, w_out, sy, sx, kh, kw, cg = geom[2], geom[3], geom[4], geom[5], geom[8], geom[9], geom[10]
    w_pad = geom[1] + 2 * geom[7]
    k = kh * kw * c_in
    n_out = h_out * w_out
    w2 = w_cl.reshape(k, cg)
    z2 = z.reshape(n_out, cg)
    if k == c_in and sy == 1 and sx == 1 and geom[6] == 0 and geom[7] == 0:  # 1x1: P is the matrix
        np.dot(P[: n_out * c_in].reshape(n_out, c_in), w2, z2)
        if use_bias:
            _add(z, bias, 0, z.shape[0])
        return
    rows = min(cols.shape[0] // k, n_out)
    c2 = cols[: rows * k].reshape(rows, k)
    run = kw * c_in  # a kernel row's inputs: kw pixels side by side, contiguous in P
    for q0 in range(0, n_out, rows):
        m = min(rows, n_out - q0)
        oy, ox = q0 // w_out, q0 % w_out
        for r in range(m):  # im2col, one contiguous run per kernel row
            src = oy * sy * w_pad + ox * sx
            for ky in range(kh):
                a, b = (src + ky * w_pad) * c_in, r * k + ky * run
                _copy(cols[b:b + run], P[a:a + run])
            ox += 1
            if ox == w_out:
                oy, ox = oy + 1, 0
        np.dot(c2[:m], w2, z2[q0:q0 + m])
        if use_bias:
            _add(z, bias, q0 * cg, (q0 + m) * cg)


@njit(cache=True, nogil=True, inline="always")
def _copy(dst, src):
    """``dst[:] = src[:len(dst)]`` over slices indexed from 0 (no wraparound test: LLVM
    vectorises it). As im2col's copy of a kernel row: 0.82x the time of the copy by pixel,
    tap and channel it replaced at 64x64x16 in float32, 0.92-0.96x at C=32 and in float64
    at C=16, the same at C=64 (thread CPU time of :func:`conv_gemm`, alternating, Intel Xeon
    AVX-512 VM, load 5-6; the GEMM is 80-90% of it there)."""
    for j in range(dst.shape[0]):
        dst[j] = src[j]


@njit(cache=True, nogil=True)
def _add(z, bias, lo, hi):
    """``z[lo:hi] += bias[lo:hi]``."""
    for i in range(lo, hi):
        z[i] += bias[i]


def _conv_whole(P, w_cl, z, bias, use_bias, scratch, geom, c_in, direct, narrow):
    """``z = [bias +] conv(P, W)``: for floats the register-blocked direct conv
    (:func:`sigmadelta.kernels.direct_conv`) where :func:`sigmadelta.kernels.direct_vectors`
    picks a block for the layer's shape; :func:`sigmadelta.kernels.narrow_conv` for one output
    channel and :func:`sigmadelta.kernels.small_conv` for a few output and input channels
    (:func:`sigmadelta.kernels.small_channels`: the same sums in another order where BLAS
    multiplied ``kh*kw*C_in`` columns by at most 8: the demo's layer ``1``, 1 -> 8 channels,
    36x44 out, float32, 0.047 -> 0.026 ms); else :func:`conv_gemm` (``scratch`` holds the im2col
    rows; one row is allocated if it holds none); :func:`_conv_all` for integers (``scratch``:
    zeros, one SIMD vector). Floats compile only these: the integer loop and its blocks are a
    third of the dense path's compile. :data:`sigmadelta.kernels.directconv.DIRECT_CONV` is
    read when this compiles (``False``: the GEMM always).

    ``direct`` / ``narrow`` None (:func:`_compiled_in`) leave the register-blocked / the narrow
    and small convs out at compile time (the GEMM runs instead: the same sums up to rounding): the
    direct conv is most of the dense path's compile (alone, from an empty cache: 15-18 s of
    CPU per float dtype against 2 s for the GEMM or the narrow conv), and a network none of
    whose layers has a shape it takes does not need it
    (:func:`sigmadelta.assemble.path_flags`)."""
    raise NotImplementedError("compiled code only")


def _compiled_in(flag) -> bool:
    """Whether a flag argument of :func:`_conv_whole` (its Numba type) asks for its kernel: anything
    but None (an argument None, or left out with the default None)."""
    if isinstance(flag, types.Omitted):
        return flag.value is not None
    return not isinstance(flag, types.NoneType)


@overload(_conv_whole, jit_options={"nogil": True})
def _conv_whole_impl(P, w_cl, z, bias, use_bias, scratch, geom, c_in, direct, narrow):
    if isinstance(z.dtype, types.Float):
        use_narrow = direct_enabled() and _compiled_in(narrow)
        use_direct = direct_enabled() and _compiled_in(direct)

        def gemm(P, w_cl, z, bias, use_bias, scratch, geom, c_in, direct, narrow):
            if use_narrow and narrow_channels(geom, c_in, z.itemsize):
                narrow_conv(P, w_cl, z, bias, use_bias, geom, c_in)
                return
            if use_narrow and small_channels(geom, c_in, z.itemsize):
                small_conv(P, w_cl, z, bias, use_bias, geom, c_in)
                return
            nv = direct_vectors(geom, c_in, z.itemsize) if use_direct else 0
            if use_direct and nv:
                direct_conv(P, w_cl, z, bias, use_bias, geom, c_in, nv)
                return
            k = geom[8] * geom[9] * c_in
            conv_gemm(P, w_cl, z, bias, use_bias, scratch if scratch.shape[0] >= k else np.empty(k, z.dtype),
                      geom, c_in)
        return gemm

    def loop(P, w_cl, z, bias, use_bias, scratch, geom, c_in, direct, narrow):
        _conv_all(P, w_cl.reshape(w_cl.size), z, bias, use_bias, scratch, geom, c_in)
    return loop
