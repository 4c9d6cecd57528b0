"""The fixed-point dense conv of the dense recompute path (:mod:`.recompute`): integer layers
compute ``acc = conv(memory, W_int)`` over the whole map, ``P`` the zero-padded input (channels
last), by a register-blocked loop::

    z[q, j] = [bias[q, j] +] sum over (ky, kx, c) of P[q's window (ky, kx), c] * W[(ky, kx, c), j]

blocks of four output pixels times one SIMD vector of output channels (:mod:`.simd`), the rest
one pixel or one channel at a time. Integer sums are exact in any order, so the result is the
scatter's bit for bit. Float layers never compile it (they take :mod:`.directconv`,
:mod:`.narrowconv` or BLAS).
"""

from numba import njit

from .simd import lanes, vload, vmul_add, vstore

__all__ = ["conv_all"]


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
def conv_all(P, wf, z, bias, use_bias, zero, geom, c_in):
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
