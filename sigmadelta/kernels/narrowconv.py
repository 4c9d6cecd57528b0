"""Direct convolution for a few output channels: a dot product per output pixel and channel.

``z = [bias +] conv(P, W)`` over the whole map as :func:`sigmadelta.kernels.direct_conv`
computes it (``P`` the zero-padded channels-last input, ``W = w_cl[(ky, kx, c), j]``), but
vectorised over the input instead of the output channels::

    z[q, j] = bias[q, j] + sum over ky of ( sum over t < kw*C_in of P[r(q, ky) + t] * Wt[j, ky, t] )

with ``r(q, ky) = ((oy*sy + ky) * W_pad + ox*sx) * C_in`` the start of the window's row ``ky``
in ``P``: the ``kw`` taps of a window row and their ``C_in`` channels are ``kw*C_in``
consecutive values of ``P`` (channels last), so each row of the window is one dot product
with the row of ``Wt`` (the weights of output channel ``j``, ``[j, ky, kx, c]``). The dot
products run in two wide SIMD vectors of partial sums over the whole window (multiply and add
rounded separately), whose lanes are added at the end: the float sums differ from the
scatter's only by the order of additions. The register-blocked :func:`direct_conv` runs a
whole SIMD vector of output channels per pixel and pads ``C_out`` to it: with one output
channel 16 float32 lanes of work for one. :func:`narrow_channels` says where this kernel
runs instead.
"""

import numpy as np
from numba import njit

from .simd import wlanes, wmul_add_vv, wstore, wzero

__all__ = ["narrow_conv", "narrow_channels"]


@njit(cache=True, nogil=True)
def narrow_channels(geom, c_in, itemsize):
    """Whether :func:`narrow_conv` runs a layer of geometry ``geom``: one output channel, a
    kernel larger than 1x1 (those stay with the GEMM) and window rows of at least two wide
    vectors (``kw * C_in >= 2 * wlanes``). Measured at
    18x22, 3x3, float32 against :func:`direct_conv` / :func:`conv_gemm` / torch, ms, thread
    CPU time, 2-vCPU Intel Xeon VM (AVX-512), load 2.6: C_in=48 C_out=1 0.028 / 0.089 /
    0.036 / 0.096, C_in=16 C_out=1 0.015 / 0.034 / 0.016 / 0.034, C_in=8 C_out=1 (rows of
    24) 0.025 / 0.018 / 0.013, C_in=32 C_out=2 0.028 / 0.061 / 0.027, C_in=48 C_out=4
    0.062 / 0.089 / 0.045 (there the GEMM: :func:`direct_vectors`)."""
    kh, kw, cg = geom[8], geom[9], geom[10]
    return cg == 1 and kh * kw > 1 and kw * c_in >= 2 * wlanes(itemsize)


@njit(cache=True, nogil=True, inline="always")
def _window(P, p0, row, wt, w0, n, kh, tmp, acc):
    """``acc + sum over ky < kh, t < n of P[p0 + ky*row + t] * wt[w0 + ky*n + t]``: two wide
    vectors of partial sums over the whole vectors of every window row (multiply and add
    rounded separately) and the rows' tails in ``acc``, then the lanes added to ``acc``."""
    W = wlanes(tmp.itemsize)  # noqa: N806
    a0, a1 = wzero(tmp), wzero(tmp)
    for ky in range(kh):
        p, w = p0 + ky * row, w0 + ky * n
        t = 0
        while t + 2 * W <= n:
            a0 = wmul_add_vv(a0, P, p + t, wt, w + t)
            a1 = wmul_add_vv(a1, P, p + t + W, wt, w + t + W)
            t += 2 * W
        if t + W <= n:
            a0 = wmul_add_vv(a0, P, p + t, wt, w + t)
            t += W
        for i in range(t, n):
            acc += P[p + i] * wt[w + i]
    wstore(tmp, 0, a0)
    wstore(tmp, W, a1)
    for i in range(W):
        acc += tmp[i] + tmp[W + i]
    return acc


@njit(cache=True, nogil=True)
def narrow_conv(P, w_cl, z, bias, use_bias, geom, c_in):
    """``z = [bias +] conv(P, W)`` over the whole map (module docstring), ``P`` the
    zero-padded input, ``w_cl`` the weights ``[ky, kx, c, j]`` (flat or not; transposed
    here to ``Wt[j, ky, kx, c]``). Any ``C_out`` gives the right sums (:func:`narrow_channels`:
    where it is the fastest)."""
    h_out, w_out, sy, sx, kh, kw, cg = geom[2], geom[3], geom[4], geom[5], geom[8], geom[9], geom[10]
    w_pad = geom[1] + 2 * geom[7]
    n = kw * c_in
    wf = w_cl.reshape(w_cl.size)
    wt = np.empty(wf.shape[0], z.dtype)  # [j, ky, kx, c]
    k = wf.shape[0] // cg
    for r in range(k):
        for j in range(cg):
            wt[j * k + r] = wf[r * cg + j]
    tmp = np.empty(2 * wlanes(z.itemsize), z.dtype)
    zero = np.zeros(1, z.dtype)[0]
    for oy in range(h_out):
        for ox in range(w_out):
            p0 = (oy * sy * w_pad + ox * sx) * c_in
            q = (oy * w_out + ox) * cg
            for j in range(cg):
                acc = bias[q + j] if use_bias else zero
                z[q + j] = _window(P, p0, w_pad * c_in, wt, j * kh * n, n, kh, tmp, acc)
