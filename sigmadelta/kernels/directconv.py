"""Direct convolution of the dense recompute path, register-blocked (float layers).

``z = [bias +] conv(P, W)`` over the whole map, ``P`` the zero-padded channels-last input
(:func:`sigmadelta.kernels.recompute.padded_size`), ``W = w_cl[(ky, kx, c), j]``::

    z[q, j] = bias[q, j] + sum over ky, kx, c of P[oy*sy + ky, ox*sx + kx, c] * W[ky, kx, c, j]

The bias map is a layer's channel bias tiled over the pixels (``bias[q, j] = bias[0, j]``:
:func:`sigmadelta.nodecheck` holds a conv's bias to one per output channel, and the pixel
conv tiles it), so the blocks read its first ``C_out`` entries only: the whole map, streamed
from beyond L2 on each dense frame, was 512 KB more of the ResNet block's working set per
64x64x32 conv.

without the im2col copy and BLAS call of :func:`sigmadelta.kernels.conv_gemm`. The output
channels run in wide SIMD vectors (:func:`sigmadelta.kernels.simd.wlanes`: 16 float32 or 8
float64 lanes); a block of ``nx`` output pixels along x times ``nv`` vectors keeps its
``nx * nv`` sums in registers (written-out locals, 16 of them: ``16x1``, ``8x2`` or ``4x4``)
over every tap and input channel: each step loads the ``nv`` weight vectors of ``(tap, c)``
(contiguous in ``w_cl``), broadcasts one input per pixel and adds the products by fused
multiply-add. The bias starts the sums. The last block of a row is moved left to end at
the row's end (it recomputes a few pixels: the same values); rows narrower than a block run
pixel by pixel. ``C_out`` not a multiple of the lanes: the weights are padded with zero
columns and the sums go to a scratch map, copied out with the bias.

Why written out (``direct_vectors`` picks the block): against ``conv_gemm`` and torch's
``F.conv2d`` (oneDNN, one thread) in one process, alternating, thread CPU time, 3x3 convs at
64x64, 2-vCPU Intel Xeon VM (AVX-512), load 2.2-2.4, direct / GEMM / torch float32 in ms:
C=16 float32 0.31 / 0.75 / 0.59, C=32 0.81 / 1.56 / 1.12, C=64 2.72 / 4.10 / 3.25; float64
0.56 / 1.30, 1.72 / 3.20, 8.60 / 10.2. Blocks of 24 sums (12x2, 6x4) ran 1.0-1.7x the time
of 16, blocks of 8 (8x1, 4x2) 1.1-1.4x (``scripts/bench_directconv.py``; DEVELOPERS.md,
"Speed work").
"""

import numpy as np
from numba import njit, types
from numba.extending import overload

from .simd import wfma_bcast, wlanes, wload, wstore, wzero

__all__ = ["DIRECT_CONV", "direct_conv", "direct_vectors", "direct_enabled", "fixed_channels", "C16"]

#: use the direct conv where :func:`direct_vectors` picks a block (read when the dense path
#: compiles; ``False``: always :func:`sigmadelta.kernels.conv_gemm`)
DIRECT_CONV = True


def direct_enabled() -> bool:
    """:data:`DIRECT_CONV` as it is now (the dense path reads it when it compiles)."""
    return DIRECT_CONV


@njit(cache=True, nogil=True)
def direct_vectors(geom, c_in, itemsize):
    """Wide vectors per block (4, 2 or 1: blocks of 4x4, 8x2, 16x1 pixels x vectors) for a
    layer of geometry ``geom``, or 0 where the GEMM stays (1x1 kernels, rows too narrow,
    ``C_out`` at most half a vector: the padded lanes cost more than the GEMM, e.g. 18x22,
    3x3, float32, C_in=48: C_out=4 0.089 ms direct / 0.045 GEMM, C_out=8 0.091 / 0.071,
    thread CPU time, 2-vCPU Intel Xeon VM (AVX-512), load 2.6;
    :func:`sigmadelta.kernels.narrow_channels` takes one output channel first).
    Measured (module docstring): 4x4 wherever the vectors come in fours (float32: exactly
    four; with eight, 8x2 ran 0.85x the time), else 8x2 for an even count, else 16x1."""
    w_out, kh, kw, cg = geom[3], geom[8], geom[9], geom[10]
    lanes = wlanes(itemsize)
    nvec = (cg + lanes - 1) // lanes
    if kh * kw == 1 or 2 * cg <= lanes:
        return 0
    if nvec % 4 == 0 and (nvec == 4 or itemsize == 8) and w_out >= 4:
        return 4
    if nvec % 2 == 0 and w_out >= 8:
        return 2
    if w_out >= 16:
        return 1
    if nvec % 4 == 0 and w_out >= 4:
        return 4
    return 0


@njit(cache=True, nogil=True)
def _block16x1(P, wf, z, bias, use_bias, b0, step, zo, j0, cs, w_pad, kh, kw, c_in):  # noqa: C901
    """16 output pixels (inputs from ``P[b0 + i*step]`` on, outputs ``z[zo + i*cs]`` on) times
    1 wide vector of output channels: 16 sums in registers over every tap and input channel."""
    if use_bias:
        a0_0 = wload(bias, j0)
        a1_0 = wload(bias, j0)
        a2_0 = wload(bias, j0)
        a3_0 = wload(bias, j0)
        a4_0 = wload(bias, j0)
        a5_0 = wload(bias, j0)
        a6_0 = wload(bias, j0)
        a7_0 = wload(bias, j0)
        a8_0 = wload(bias, j0)
        a9_0 = wload(bias, j0)
        a10_0 = wload(bias, j0)
        a11_0 = wload(bias, j0)
        a12_0 = wload(bias, j0)
        a13_0 = wload(bias, j0)
        a14_0 = wload(bias, j0)
        a15_0 = wload(bias, j0)
    else:
        a0_0 = a1_0 = a2_0 = a3_0 = a4_0 = a5_0 = a6_0 = a7_0 = wzero(z)
        a8_0 = a9_0 = a10_0 = a11_0 = a12_0 = a13_0 = a14_0 = a15_0 = wzero(z)
    for ky in range(kh):
        for kx in range(kw):
            b = b0 + (ky * w_pad + kx) * c_in
            wb = (ky * kw + kx) * c_in * cs + j0
            for c in range(c_in):
                wo, i = wb + c * cs, b + c
                a0_0 = wfma_bcast(a0_0, P, i, wf, wo)
                a1_0 = wfma_bcast(a1_0, P, i + step, wf, wo)
                a2_0 = wfma_bcast(a2_0, P, i + 2 * step, wf, wo)
                a3_0 = wfma_bcast(a3_0, P, i + 3 * step, wf, wo)
                a4_0 = wfma_bcast(a4_0, P, i + 4 * step, wf, wo)
                a5_0 = wfma_bcast(a5_0, P, i + 5 * step, wf, wo)
                a6_0 = wfma_bcast(a6_0, P, i + 6 * step, wf, wo)
                a7_0 = wfma_bcast(a7_0, P, i + 7 * step, wf, wo)
                a8_0 = wfma_bcast(a8_0, P, i + 8 * step, wf, wo)
                a9_0 = wfma_bcast(a9_0, P, i + 9 * step, wf, wo)
                a10_0 = wfma_bcast(a10_0, P, i + 10 * step, wf, wo)
                a11_0 = wfma_bcast(a11_0, P, i + 11 * step, wf, wo)
                a12_0 = wfma_bcast(a12_0, P, i + 12 * step, wf, wo)
                a13_0 = wfma_bcast(a13_0, P, i + 13 * step, wf, wo)
                a14_0 = wfma_bcast(a14_0, P, i + 14 * step, wf, wo)
                a15_0 = wfma_bcast(a15_0, P, i + 15 * step, wf, wo)
    wstore(z, zo, a0_0)
    wstore(z, zo + cs, a1_0)
    wstore(z, zo + 2 * cs, a2_0)
    wstore(z, zo + 3 * cs, a3_0)
    wstore(z, zo + 4 * cs, a4_0)
    wstore(z, zo + 5 * cs, a5_0)
    wstore(z, zo + 6 * cs, a6_0)
    wstore(z, zo + 7 * cs, a7_0)
    wstore(z, zo + 8 * cs, a8_0)
    wstore(z, zo + 9 * cs, a9_0)
    wstore(z, zo + 10 * cs, a10_0)
    wstore(z, zo + 11 * cs, a11_0)
    wstore(z, zo + 12 * cs, a12_0)
    wstore(z, zo + 13 * cs, a13_0)
    wstore(z, zo + 14 * cs, a14_0)
    wstore(z, zo + 15 * cs, a15_0)


@njit(cache=True, nogil=True, inline="always")
def _block8x2(P, wf, z, bias, use_bias, b0, step, zo, j0, cs, w_pad, kh, kw, c_in):  # noqa: C901
    """8 output pixels (inputs from ``P[b0 + i*step]`` on, outputs ``z[zo + i*cs]`` on) times
    2 wide vectors of output channels: 16 sums in registers over every tap and input channel."""
    W = wlanes(z.itemsize)  # noqa: N806
    if use_bias:
        a0_0 = wload(bias, j0)
        a0_1 = wload(bias, j0 + W)
        a1_0 = wload(bias, j0)
        a1_1 = wload(bias, j0 + W)
        a2_0 = wload(bias, j0)
        a2_1 = wload(bias, j0 + W)
        a3_0 = wload(bias, j0)
        a3_1 = wload(bias, j0 + W)
        a4_0 = wload(bias, j0)
        a4_1 = wload(bias, j0 + W)
        a5_0 = wload(bias, j0)
        a5_1 = wload(bias, j0 + W)
        a6_0 = wload(bias, j0)
        a6_1 = wload(bias, j0 + W)
        a7_0 = wload(bias, j0)
        a7_1 = wload(bias, j0 + W)
    else:
        a0_0 = a0_1 = a1_0 = a1_1 = a2_0 = a2_1 = a3_0 = a3_1 = wzero(z)
        a4_0 = a4_1 = a5_0 = a5_1 = a6_0 = a6_1 = a7_0 = a7_1 = wzero(z)
    for ky in range(kh):
        for kx in range(kw):
            b = b0 + (ky * w_pad + kx) * c_in
            wb = (ky * kw + kx) * c_in * cs + j0
            for c in range(c_in):
                wo, i = wb + c * cs, b + c
                a0_0 = wfma_bcast(a0_0, P, i, wf, wo)
                a0_1 = wfma_bcast(a0_1, P, i, wf, wo + W)
                a1_0 = wfma_bcast(a1_0, P, i + step, wf, wo)
                a1_1 = wfma_bcast(a1_1, P, i + step, wf, wo + W)
                a2_0 = wfma_bcast(a2_0, P, i + 2 * step, wf, wo)
                a2_1 = wfma_bcast(a2_1, P, i + 2 * step, wf, wo + W)
                a3_0 = wfma_bcast(a3_0, P, i + 3 * step, wf, wo)
                a3_1 = wfma_bcast(a3_1, P, i + 3 * step, wf, wo + W)
                a4_0 = wfma_bcast(a4_0, P, i + 4 * step, wf, wo)
                a4_1 = wfma_bcast(a4_1, P, i + 4 * step, wf, wo + W)
                a5_0 = wfma_bcast(a5_0, P, i + 5 * step, wf, wo)
                a5_1 = wfma_bcast(a5_1, P, i + 5 * step, wf, wo + W)
                a6_0 = wfma_bcast(a6_0, P, i + 6 * step, wf, wo)
                a6_1 = wfma_bcast(a6_1, P, i + 6 * step, wf, wo + W)
                a7_0 = wfma_bcast(a7_0, P, i + 7 * step, wf, wo)
                a7_1 = wfma_bcast(a7_1, P, i + 7 * step, wf, wo + W)
    wstore(z, zo, a0_0)
    wstore(z, zo + W, a0_1)
    wstore(z, zo + cs, a1_0)
    wstore(z, zo + cs + W, a1_1)
    wstore(z, zo + 2 * cs, a2_0)
    wstore(z, zo + 2 * cs + W, a2_1)
    wstore(z, zo + 3 * cs, a3_0)
    wstore(z, zo + 3 * cs + W, a3_1)
    wstore(z, zo + 4 * cs, a4_0)
    wstore(z, zo + 4 * cs + W, a4_1)
    wstore(z, zo + 5 * cs, a5_0)
    wstore(z, zo + 5 * cs + W, a5_1)
    wstore(z, zo + 6 * cs, a6_0)
    wstore(z, zo + 6 * cs + W, a6_1)
    wstore(z, zo + 7 * cs, a7_0)
    wstore(z, zo + 7 * cs + W, a7_1)


@njit(cache=True, nogil=True)
def _block4x4(P, wf, z, bias, use_bias, b0, step, zo, j0, cs, w_pad, kh, kw, c_in):  # noqa: C901
    """4 output pixels (inputs from ``P[b0 + i*step]`` on, outputs ``z[zo + i*cs]`` on) times
    4 wide vectors of output channels: 16 sums in registers over every tap and input channel."""
    W = wlanes(z.itemsize)  # noqa: N806
    if use_bias:
        a0_0 = wload(bias, j0)
        a0_1 = wload(bias, j0 + W)
        a0_2 = wload(bias, j0 + 2 * W)
        a0_3 = wload(bias, j0 + 3 * W)
        a1_0 = wload(bias, j0)
        a1_1 = wload(bias, j0 + W)
        a1_2 = wload(bias, j0 + 2 * W)
        a1_3 = wload(bias, j0 + 3 * W)
        a2_0 = wload(bias, j0)
        a2_1 = wload(bias, j0 + W)
        a2_2 = wload(bias, j0 + 2 * W)
        a2_3 = wload(bias, j0 + 3 * W)
        a3_0 = wload(bias, j0)
        a3_1 = wload(bias, j0 + W)
        a3_2 = wload(bias, j0 + 2 * W)
        a3_3 = wload(bias, j0 + 3 * W)
    else:
        a0_0 = a0_1 = a0_2 = a0_3 = a1_0 = a1_1 = a1_2 = a1_3 = wzero(z)
        a2_0 = a2_1 = a2_2 = a2_3 = a3_0 = a3_1 = a3_2 = a3_3 = wzero(z)
    for ky in range(kh):
        for kx in range(kw):
            b = b0 + (ky * w_pad + kx) * c_in
            wb = (ky * kw + kx) * c_in * cs + j0
            for c in range(c_in):
                wo, i = wb + c * cs, b + c
                a0_0 = wfma_bcast(a0_0, P, i, wf, wo)
                a0_1 = wfma_bcast(a0_1, P, i, wf, wo + W)
                a0_2 = wfma_bcast(a0_2, P, i, wf, wo + 2 * W)
                a0_3 = wfma_bcast(a0_3, P, i, wf, wo + 3 * W)
                a1_0 = wfma_bcast(a1_0, P, i + step, wf, wo)
                a1_1 = wfma_bcast(a1_1, P, i + step, wf, wo + W)
                a1_2 = wfma_bcast(a1_2, P, i + step, wf, wo + 2 * W)
                a1_3 = wfma_bcast(a1_3, P, i + step, wf, wo + 3 * W)
                a2_0 = wfma_bcast(a2_0, P, i + 2 * step, wf, wo)
                a2_1 = wfma_bcast(a2_1, P, i + 2 * step, wf, wo + W)
                a2_2 = wfma_bcast(a2_2, P, i + 2 * step, wf, wo + 2 * W)
                a2_3 = wfma_bcast(a2_3, P, i + 2 * step, wf, wo + 3 * W)
                a3_0 = wfma_bcast(a3_0, P, i + 3 * step, wf, wo)
                a3_1 = wfma_bcast(a3_1, P, i + 3 * step, wf, wo + W)
                a3_2 = wfma_bcast(a3_2, P, i + 3 * step, wf, wo + 2 * W)
                a3_3 = wfma_bcast(a3_3, P, i + 3 * step, wf, wo + 3 * W)
    wstore(z, zo, a0_0)
    wstore(z, zo + W, a0_1)
    wstore(z, zo + 2 * W, a0_2)
    wstore(z, zo + 3 * W, a0_3)
    wstore(z, zo + cs, a1_0)
    wstore(z, zo + cs + W, a1_1)
    wstore(z, zo + cs + 2 * W, a1_2)
    wstore(z, zo + cs + 3 * W, a1_3)
    wstore(z, zo + 2 * cs, a2_0)
    wstore(z, zo + 2 * cs + W, a2_1)
    wstore(z, zo + 2 * cs + 2 * W, a2_2)
    wstore(z, zo + 2 * cs + 3 * W, a2_3)
    wstore(z, zo + 3 * cs, a3_0)
    wstore(z, zo + 3 * cs + W, a3_1)
    wstore(z, zo + 3 * cs + 2 * W, a3_2)
    wstore(z, zo + 3 * cs + 3 * W, a3_3)



#: the input and output channels of :func:`_rows_c16`'s layers: one float32 wide vector
C16 = 16


@njit(cache=True, nogil=True)
def fixed_channels(geom, c_in, itemsize):
    """The channels of a layer whose block runs with its shape fixed at compile time (16 or 32:
    :func:`_rows_c16`, :func:`_rows_c32`), else 0: float32, ``C_in = C_out`` of 16 or 32 (1 or
    2 wide vectors, blocks of 16 or 8 pixels), a 3x3 kernel, stride 1 along x and rows of at
    least one block. At 64 channels (4x4 blocks: 4 broadcasts per 16 multiply-adds) the fixed
    shape ran no faster (4.46-4.71 ms either way, float32 at 64x64, load 3.5)."""
    c = geom[10]
    if not (itemsize == 4 and c_in == c and geom[8] == 3 and geom[9] == 3 and geom[5] == 1):
        return 0
    if (c == C16 and geom[3] >= 16) or (c == 32 and geom[3] >= 8):
        return c
    return 0


@njit(cache=True, nogil=True, inline="always")
def _block_c16(P, wf, z, bias, use_bias, b0, zo, w_pad):  # noqa: C901
    """:func:`_block16x1` with its shape fixed at compile time (C_in = C_out = 16, 3x3, stride
    1 along x): the same sums in the same order, so the same ``z`` bit for bit. Every input
    offset is then a constant from one base, where the general block adds a runtime step 16
    times per input channel (float32, 3x3 16->16 at 64x64: 0.34-0.40 -> 0.22-0.27 ms, thread
    CPU time, alternating, 2-vCPU Intel Xeon VM (AVX-512), load 2.3; the general block inlined
    with literal shapes 0.25-0.29: this one is written out)."""
    if use_bias:
        a0 = wload(bias, 0)
    else:
        a0 = wzero(z)
    a1 = a2 = a3 = a4 = a5 = a6 = a7 = a8 = a9 = a10 = a11 = a12 = a13 = a14 = a15 = a0
    for ky in range(3):
        for kx in range(3):
            b = b0 + (ky * w_pad + kx) * C16
            wb = (ky * 3 + kx) * C16 * C16
            for c in range(C16):
                wo, i = wb + c * C16, b + c
                a0 = wfma_bcast(a0, P, i, wf, wo)
                a1 = wfma_bcast(a1, P, i + 16, wf, wo)
                a2 = wfma_bcast(a2, P, i + 32, wf, wo)
                a3 = wfma_bcast(a3, P, i + 48, wf, wo)
                a4 = wfma_bcast(a4, P, i + 64, wf, wo)
                a5 = wfma_bcast(a5, P, i + 80, wf, wo)
                a6 = wfma_bcast(a6, P, i + 96, wf, wo)
                a7 = wfma_bcast(a7, P, i + 112, wf, wo)
                a8 = wfma_bcast(a8, P, i + 128, wf, wo)
                a9 = wfma_bcast(a9, P, i + 144, wf, wo)
                a10 = wfma_bcast(a10, P, i + 160, wf, wo)
                a11 = wfma_bcast(a11, P, i + 176, wf, wo)
                a12 = wfma_bcast(a12, P, i + 192, wf, wo)
                a13 = wfma_bcast(a13, P, i + 208, wf, wo)
                a14 = wfma_bcast(a14, P, i + 224, wf, wo)
                a15 = wfma_bcast(a15, P, i + 240, wf, wo)
    wstore(z, zo, a0)
    wstore(z, zo + 16, a1)
    wstore(z, zo + 32, a2)
    wstore(z, zo + 48, a3)
    wstore(z, zo + 64, a4)
    wstore(z, zo + 80, a5)
    wstore(z, zo + 96, a6)
    wstore(z, zo + 112, a7)
    wstore(z, zo + 128, a8)
    wstore(z, zo + 144, a9)
    wstore(z, zo + 160, a10)
    wstore(z, zo + 176, a11)
    wstore(z, zo + 192, a12)
    wstore(z, zo + 208, a13)
    wstore(z, zo + 224, a14)
    wstore(z, zo + 240, a15)


@njit(cache=True, nogil=True)
def _rows_c16(P, wf, z, bias, use_bias, geom):
    """:func:`_conv_rows` for a 16-channel layer :func:`fixed_channels` takes (16 pixels x 1
    vector per block, the last block of a row moved left to end at the row's end), by
    :func:`_block_c16`."""
    h_out, w_out, sy = geom[2], geom[3], geom[4]
    w_pad = geom[1] + 2 * geom[7]
    for oy in range(h_out):
        rb = oy * sy * w_pad * C16
        zr = oy * w_out * C16
        for o in range(0, w_out, 16):
            ox = min(o, w_out - 16)
            _block_c16(P, wf, z, bias, use_bias, rb + ox * C16, zr + ox * C16, w_pad)



@njit(cache=True, nogil=True)
def _rows_c32(P, wf, z, bias, use_bias, geom):
    """:func:`_conv_rows` for a 32-channel layer :func:`fixed_channels` takes: :func:`_block8x2`
    inlined with the shape as constants (the same sums in the same order). Float32, 3x3 at
    64x64: 1.10-1.17 -> 0.97-1.11 ms (thread CPU time, alternating, 6 passes, 2-vCPU Intel Xeon
    VM (AVX-512), load 3.5; 1.07-1.09 -> 0.85-0.89 at load 2.2)."""
    h_out, w_out, sy = geom[2], geom[3], geom[4]
    w_pad = geom[1] + 2 * geom[7]
    for oy in range(h_out):
        rb, zr = oy * sy * w_pad * 32, oy * w_out * 32
        for o in range(0, w_out, 8):
            ox = min(o, w_out - 8)
            _block8x2(P, wf, z, bias, use_bias, rb + ox * 32, 32, zr + ox * 32, 0, 32, w_pad, 3, 3, 32)


def _run_fixed(P, wf, z, bias, use_bias, geom, c_in):
    """Run :func:`_rows_c16` or :func:`_rows_c32` where :func:`fixed_channels` takes the layer;
    whether one ran. Compiled in for float32 ``z`` only (float64 layers never take them)."""
    raise NotImplementedError("compiled code only")


@overload(_run_fixed, jit_options={"nogil": True})
def _run_fixed_impl(P, wf, z, bias, use_bias, geom, c_in):
    if z.dtype == types.float32:
        def run(P, wf, z, bias, use_bias, geom, c_in):
            c = fixed_channels(geom, c_in, 4)
            if c == C16:
                _rows_c16(P, wf, z, bias, use_bias, geom)
            elif c:
                _rows_c32(P, wf, z, bias, use_bias, geom)
            return c != 0
        return run
    return lambda P, wf, z, bias, use_bias, geom, c_in: False


@njit(cache=True, nogil=True)
def _pixel(P, wf, z, bias, use_bias, b0, zo, j0, cs, nv, w_pad, kh, kw, c_in):
    """One output pixel, ``nv`` wide vectors of output channels one after the other."""
    W = wlanes(z.itemsize)  # noqa: N806
    for v in range(nv):
        a = wload(bias, j0 + v * W) if use_bias else wzero(z)
        for ky in range(kh):
            for kx in range(kw):
                b = b0 + (ky * w_pad + kx) * c_in
                wb = (ky * kw + kx) * c_in * cs + j0 + v * W
                for c in range(c_in):
                    a = wfma_bcast(a, P, b + c, wf, wb + c * cs)
        wstore(z, zo + v * W, a)


@njit(cache=True, nogil=True)
def _block(P, wf, z, bias, use_bias, b0, step, zo, j0, cs, nv, w_pad, kh, kw, c_in):
    """The block of ``nv`` vectors (:func:`_block4x4`, :func:`_block8x2`, :func:`_block16x1`)."""
    if nv == 4:
        _block4x4(P, wf, z, bias, use_bias, b0, step, zo, j0, cs, w_pad, kh, kw, c_in)
    elif nv == 2:
        _block8x2(P, wf, z, bias, use_bias, b0, step, zo, j0, cs, w_pad, kh, kw, c_in)
    else:
        _block16x1(P, wf, z, bias, use_bias, b0, step, zo, j0, cs, w_pad, kh, kw, c_in)


@njit(cache=True, nogil=True)
def _conv_rows(P, wf, z, bias, use_bias, geom, c_in, cs, nv):
    """``z = [bias +] conv(P, W)``, ``cs`` (a multiple of ``nv`` vectors) the channel stride of
    ``wf`` and ``z``: per output row and group of ``nv`` vectors, blocks of ``16 / nv``
    pixels (the last one moved left to end at the row's end), or pixel by pixel."""
    h_out, w_out, sy, sx, kh, kw = geom[2], geom[3], geom[4], geom[5], geom[8], geom[9]
    w_pad = geom[1] + 2 * geom[7]
    W = wlanes(z.itemsize)  # noqa: N806
    nx = 16 // nv
    step = sx * c_in
    for oy in range(h_out):
        rb = oy * sy * w_pad * c_in
        zr = oy * w_out * cs
        for j0 in range(0, cs, nv * W):
            if w_out < nx:
                for ox in range(w_out):
                    _pixel(P, wf, z, bias, use_bias, rb + ox * step, zr + ox * cs + j0, j0, cs, nv,
                           w_pad, kh, kw, c_in)
                continue
            for o in range(0, w_out, nx):
                ox = min(o, w_out - nx)
                _block(P, wf, z, bias, use_bias, rb + ox * step, step, zr + ox * cs + j0, j0, cs, nv,
                       w_pad, kh, kw, c_in)


@njit(cache=True, nogil=True)
def direct_conv(P, w_cl, z, bias, use_bias, geom, c_in, nv):
    """``z = [bias +] conv(P, W)`` over the whole map (module docstring), ``P`` the
    zero-padded input, ``w_cl`` the weights ``[ky, kx, c, j]`` (flat or not), ``nv`` the
    vectors per block (:func:`direct_vectors`, not 0). ``C_out`` not a multiple of ``nv``
    vectors: weights padded to whole groups, sums in a scratch map, then ``z = [bias +] sums``.
    A layer :func:`fixed_channels` takes (float32, 3x3, 16 or 32 channels in and out) runs
    its block with the shape fixed at compile time: the same sums."""
    cg = geom[10]
    wf = w_cl.reshape(w_cl.size)
    if _run_fixed(P, wf, z, bias, use_bias, geom, c_in):  # the same sums, shape fixed
        return
    g = nv * wlanes(z.itemsize)  # channels per group of vectors
    cs = cg + (g - cg % g) % g
    if cs == cg:
        wp, zp = wf, z
    else:  # one call of _conv_rows: a second one doubles the LLVM module that this one links in
        k = wf.shape[0] // cg
        wp = np.zeros(k * cs, z.dtype)
        for r in range(k):
            for j in range(cg):
                wp[r * cs + j] = wf[r * cg + j]
        zp = np.empty(z.shape[0] // cg * cs, z.dtype)
    _conv_rows(P, wp, zp, bias, use_bias and cs == cg, geom, c_in, cs, nv)
    if cs == cg:
        return
    for q in range(z.shape[0] // cg):
        for j in range(cg):
            z[q * cg + j] = zp[q * cs + j]
        if use_bias:
            for j in range(cg):
                z[q * cg + j] += bias[q * cg + j]
