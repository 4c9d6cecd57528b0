"""Direct convolution for a few output channels: one short SIMD vector of them per pixel.

``z = [bias +] conv(P, W)`` over the whole map as :func:`sigmadelta.kernels.conv_gemm`
computes it (``P`` the zero-padded channels-last input, ``W = w_cl[(ky, kx, c), j]``), for
layers of at most one short vector of output channels (``C_out <= L``, ``L`` =
:func:`sigmadelta.kernels.simd.lanes`: 8 float32, 4 float64 lanes), where BLAS multiplies
matrices of ``kh*kw*C_in`` columns by a handful of weight columns poorly and the wide direct
conv (:func:`sigmadelta.kernels.direct_conv`) would pad ``C_out`` to 16 lanes::

    z[q, :] = bias[q, :] + sum over taps t = (ky, kx, c), in order, of  P[r(q, t)] * Wp[t, :]

with ``r(q, t)`` the input of tap ``t`` of output pixel ``q`` and ``Wp`` the weights padded
with zeros to ``L`` lanes. Four output pixels run side by side (four independent vectors of
partial sums, multiply and add rounded separately); the float sums differ from the
scatter's only by the order of additions. :func:`small_channels` says where it runs.
"""

import numpy as np
from numba import njit, uint64

from .simd import lanes, vmul_add, vstore, vzero

__all__ = ["small_conv", "small_channels"]


@njit(cache=True, nogil=True)
def small_channels(geom, c_in, itemsize):
    """Whether :func:`small_conv` runs a layer of geometry ``geom`` (instead of the GEMM): a
    kernel larger than 1x1 (those stay with the GEMM), ``L/2 <= C_out <= L`` and at most 16 input
    channels. Against :func:`sigmadelta.kernels.conv_gemm`, 3x3 kernels, float32, microseconds
    (best of 15 alternating passes of 20 calls, thread CPU time, 2-vCPU Intel Xeon VM
    (AVX-512), load 6.8): 72x88 in, stride 2, 1 -> 8 channels 47 / 26 (the demo's layer
    ``1``), 1 -> 4 40 / 25; stride 1: 36x44, 8 -> 8 96 / 60; 18x22, 16 -> 8 31 / 28,
    32 -> 8 59 / 51 (left to the GEMM), 8 -> 2 15 / 16 (left to the GEMM)."""
    kh, kw, cg, L = geom[8], geom[9], geom[10], lanes(itemsize)  # noqa: N806
    return kh * kw > 1 and L <= 2 * cg and cg <= L and c_in <= 16


@njit(cache=True, nogil=True, inline="always")
def _taps(P, wp, a0, a1, a2, a3, p0, step, w_pad, kh, kw, c_in, L):  # noqa: N803
    """The four vectors of sums plus every tap of pixels ``p0 + i*step`` (``i < 4``)."""
    t = uint64(0)
    for ky in range(kh):
        for kx in range(kw):
            r = uint64(p0 + (ky * w_pad + kx) * c_in)
            for c in range(c_in):
                i = r + uint64(c)
                a0 = vmul_add(a0, P[i], wp, t)
                a1 = vmul_add(a1, P[i + uint64(step)], wp, t)
                a2 = vmul_add(a2, P[i + uint64(2 * step)], wp, t)
                a3 = vmul_add(a3, P[i + uint64(3 * step)], wp, t)
                t += uint64(L)
    return a0, a1, a2, a3


@njit(cache=True, nogil=True, inline="always")
def _put(z, tmp, acc, q, cg, bias, use_bias):
    """``z[q*cg : q*cg + cg] = acc[:cg] (+ bias)``."""
    vstore(tmp, uint64(0), acc)
    for j in range(cg):
        z[q * cg + j] = tmp[j] + bias[q * cg + j] if use_bias else tmp[j]


@njit(cache=True, nogil=True)
def small_conv(P, w_cl, z, bias, use_bias, geom, c_in):
    """``z = [bias +] conv(P, W)`` over the whole map (module docstring), ``P`` the zero-padded
    input, ``w_cl`` the weights ``[ky, kx, c, j]`` (flat or not), ``C_out <= L``. The bias is
    added after the taps, as :func:`sigmadelta.kernels.conv_gemm` adds it."""
    h_out, w_out, sy, sx, kh, kw, cg = geom[2], geom[3], geom[4], geom[5], geom[8], geom[9], geom[10]
    w_pad = geom[1] + 2 * geom[7]
    L = lanes(z.itemsize)  # noqa: N806
    wf = w_cl.reshape(w_cl.size)
    k = wf.shape[0] // cg
    wp = np.zeros(k * L, z.dtype)  # [t, lane], lanes from cg on zero
    for r in range(k):
        for j in range(cg):
            wp[r * L + j] = wf[r * cg + j]
    tmp = np.empty(L, z.dtype)
    step = sx * c_in
    for oy in range(h_out):
        row0 = oy * sy * w_pad * c_in
        ox = 0
        while ox + 4 <= w_out:
            a0, a1, a2, a3 = vzero(tmp), vzero(tmp), vzero(tmp), vzero(tmp)
            a0, a1, a2, a3 = _taps(P, wp, a0, a1, a2, a3, row0 + ox * step, step, w_pad, kh, kw,
                                   c_in, L)
            q = oy * w_out + ox
            _put(z, tmp, a0, q, cg, bias, use_bias)
            _put(z, tmp, a1, q + 1, cg, bias, use_bias)
            _put(z, tmp, a2, q + 2, cg, bias, use_bias)
            _put(z, tmp, a3, q + 3, cg, bias, use_bias)
            ox += 4
        for x in range(ox, w_out):  # the row's last pixels one by one (the same sums)
            a0 = vzero(tmp)
            t = uint64(0)
            for ky in range(kh):
                for kx in range(kw):
                    r = uint64(row0 + x * step + (ky * w_pad + kx) * c_in)
                    for c in range(c_in):
                        a0 = vmul_add(a0, P[r + uint64(c)], wp, t)
                        t += uint64(L)
            _put(z, tmp, a0, oy * w_out + x, cg, bias, use_bias)
