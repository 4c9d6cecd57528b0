"""The dense recompute path of a busy depthwise conv layer (groups = input channels).

The general conv path (:func:`sigmadelta.kernels.conv_scatter`) runs a depthwise layer
event by event: each event adds ``kh*kw*Cg`` products, one scalar at a time. Where many
inputs spike, :func:`depthwise_dense` recomputes the whole layer instead::

    s_i = Q(x_i) - memory_i;  memory_i = Q(x_i)          # one pass over every input neuron
    z[q, g*Cg + j] = bias + sum_(ky, kx) gain * memory[p(q, ky, kx), g] * W[g*Cg + j, 0, ky, kx]
    (fixed point: acc = the same sum over integer weights, no bias; the caller rebuilds z)

with ``p(q, ky, kx)`` the input pixel ``(oy*sy - py + ky*dy, ox*sx - px + kx*dx)`` of
output pixel ``q = (oy, ox)``, read from a zero-padded copy of the memory (channels last),
so that the innermost loop is a contiguous multiply-add over channels (no GEMM: a
depthwise layer has no reduction over channels). That equals the scatter's
``z += gain * conv(s, W)`` summed over the stream (exactly in fixed point, up to the order
of float additions otherwise). The counters are those of the event semantics: events
(``s != 0``), synops (per event, the output neurons it reaches: ``fan_y[iy] * fan_x[ix] * Cg``),
additions (``|s|`` times that) and the (output pixel, group) pairs the events reach, listed
in ``pg_list`` in increasing order: per output pixel, the OR over its taps of a padded map
of event flags. Untouched inputs cannot spike (their value is the one already encoded),
so encoding all of them gives the scatter's events.
"""

import numpy as np
from numba import njit

from .conv1x1 import SUM_EXACT, _pixel_sums_narrow
from .pixel import _quantize
from .quantize import single_exact
from .simd import lanes, vload, vmul_add_vv, vstore, vzero, wlanes, wload, wmul_add_vv, wstore, wzero

__all__ = ["depthwise_dense", "depthwise_ok", "DW_DENSE_ABOVE"]

#: auto: a depthwise layer recomputes when the expected events exceed this fraction of its
#: inputs (:func:`sigmadelta.kernels.choose_dense`). Float32, 3x3 layers of 32-144 channels
#: (32x32 and 16x16, stride 1 and 2), random inputs changing, one process alternating the two
#: on a 2-vCPU AMD EPYC at load average 10-13: the event path (encode and scatter) took
#: 0.2-0.7x the dense path's time at 4-9% of the inputs spiking, 0.9-1.6x at 18%, 3.2-4.2x at 36%
DW_DENSE_ABOVE = 0.2
_EIGHT_ONES = np.uint64(0x0101010101010101)  # eight reached flags (uint8 1) in one word


def depthwise_ok(groups: int, c_in: int, transposed: bool) -> bool:
    """Can :func:`depthwise_dense` run a conv layer? (not transposed, one input channel per group)"""
    return not transposed and groups == c_in


@njit(cache=True, nogil=True)
def _encode_run(x, memory, herding, param, gain, mem_w, flag_w, mag):
    """Quantize a run of inputs (slices: indices from 0, so that the loop vectorises) into
    ``mem_w = gain * memory``, ``flag_w = (s != 0)`` and ``mag = |s|``. Herding with a
    power-of-two scale and a float32 gain (:func:`sigmadelta.kernels.quantize.single_exact`)
    scales and subtracts in the state's precision, bit for bit the general loop's values
    (which subtract in float64 and round to float32: rounding twice through a format of at
    least ``2*24 + 2`` bits gives the once-rounded difference). With it and
    :func:`_quad_dw`, :func:`depthwise_dense` at scale 32 (float32, 3x3, half the inputs
    changing, thread CPU time, main's kernel and this one alternating in one process, 2-vCPU
    AMD EPYC VM (Zen 4, AVX-512), load 3.5-4): 32x32x96 stride 2 0.119 -> 0.093 ms,
    16x16x144 stride 1 0.107 -> 0.068 ms; float64 32x32x16 0.091 -> 0.056 ms."""
    if herding and single_exact(param, gain):
        p1, g1 = np.float32(param), np.float32(gain)
        for k in range(x.shape[0]):
            q = np.rint(p1 * x[k])
            s = q - memory[k]  # float32: the float64 difference rounded once (see above)
            memory[k] = q
            mem_w[k] = q * g1
            flag_w[k] = s != 0.0
            mag[k] = abs(s)
    elif herding:
        for k in range(x.shape[0]):
            q = np.rint(param * x[k])
            s = q - memory[k]
            memory[k] = q
            mem_w[k] = q * gain
            flag_w[k] = s != 0.0
            mag[k] = abs(s)
    else:
        for k in range(x.shape[0]):
            s, memory[k] = _quantize(x[k], memory[k], 0, param, 1.0, 0)
            mem_w[k] = memory[k] * gain
            flag_w[k] = s != 0.0
            mag[k] = abs(s)


@njit(cache=True, nogil=True, fastmath={"reassoc"})
def _pixel_sums(flag_w, mag):
    """``(events, sum |s|)`` of one pixel. ``reassoc`` lets LLVM add in any order: herding
    spikes are whole numbers, so the sum is exact and equals the scatter's (threshold layers
    count additions as synops and never read it)."""
    e, m = 0, 0.0
    for k in range(flag_w.shape[0]):
        e += flag_w[k]
        m += mag[k]
    return e, m


@njit(cache=True, nogil=True)
def _encode_dw(x, memory, herding, param, gain, c, w_in, py, px, w_pad, mem_w, flag_w, fan_y,
               fan_x, cg, mag):
    """Quantize every input, a row of pixels at a time, into ``mem_w = gain * memory`` and
    ``flag_w = (s != 0)``, both zero-padded by ``(py, px)`` (``mag``: scratch of one input
    row, ``w_in * c``, reused row after row so that it stays in L1: a scratch of the whole map
    written and read back cost a map's worth of cache lines). Herding sums a pixel's ``|s|``
    in the state's precision (:func:`sigmadelta.kernels.conv1x1._pixel_sums_narrow`, exact
    below ``SUM_EXACT``, else the float64 sums). With the per-channel bias, isolated, float32,
    half the inputs changing, thread CPU time, main's kernel and this one alternating in one
    process (7 passes, best; 2-vCPU Intel Xeon VM (AVX-512), load 3.4): 32x32x96 stride 2
    0.275 -> 0.226 ms (caches flushed before each call: 0.332 -> 0.284), 16x16x144 stride 2
    0.097 -> 0.073 ms, stride 1 and 8x8x192 unchanged (0.98-1.02x).
    Returns ``(events, synops, additions)``."""
    n_ev, synops, adds = 0, 0, 0.0
    run = w_in * c
    for iy in range(x.shape[0] // run):
        i, pb = iy * run, ((iy + py) * w_pad + px) * c
        _encode_run(x[i:i + run], memory[i:i + run], herding, param, gain, mem_w[pb:pb + run],
                    flag_w[pb:pb + run], mag[:run])
        for ix in range(w_in):
            o = ix * c
            if herding:  # whole-number spikes: the narrow sums are exact below SUM_EXACT
                e, m = _pixel_sums_narrow(mag[o:o + c])
                if m >= SUM_EXACT:
                    e, m = _pixel_sums(flag_w[pb + o:pb + o + c], mag[o:o + c])
            else:
                e, m = _pixel_sums(flag_w[pb + o:pb + o + c], mag[o:o + c])
            if e:
                fan = fan_y[iy] * fan_x[ix] * cg
                n_ev += e
                synops += e * fan
                adds += m * fan
    return n_ev, synops, adds


@njit(cache=True, nogil=True, inline="always")
def _row_dw(z, zb, bias, use_bias, mem_w, w, rb, kh, kw, dy, dx, w_pad, c, g):
    """``z[zb+g:zb+c] = bias[g:c] + sum over taps mem_w[tap's pixel] * w[tap]`` (one output pixel,
    channel multiplier 1, channels from ``g`` on): whole SIMD vectors of channels kept in
    registers over the taps."""
    n = lanes(z.itemsize)
    while g + n <= c:
        acc = vload(bias, g) if use_bias else vzero(z)
        for ky in range(kh):
            pr = rb + ky * dy * w_pad * c + g
            for kx in range(kw):
                acc = vmul_add_vv(acc, mem_w, pr + kx * dx * c, w, (ky * kw + kx) * c + g)
        vstore(z, zb + g, acc)
        g += n
    for t in range(g, c):  # the channels after the last whole vector
        v = bias[t] if use_bias else z[zb + t] * 0
        for ky in range(kh):
            pr = rb + ky * dy * w_pad * c + t
            for kx in range(kw):
                v += mem_w[pr + kx * dx * c] * w[(ky * kw + kx) * c + t]
        z[zb + t] = v


@njit(cache=True, nogil=True, inline="always")
def _quad_dw(z, zb, bias, use_bias, mem_w, w, rb, kh, kw, dy, dx, w_pad, c, sx):
    """:func:`_row_dw` for four output pixels side by side (``zb``, ``zb + c``, ... and windows
    ``rb``, ``rb + sx*c``, ...), over the channels of whole wide (AVX-512) vectors: four
    independent sums, so that the adds of one pixel's taps do not wait on each other, and
    each weight vector loaded once for the four. Returns the first channel not done. The
    same products added in the same order as :func:`_row_dw`: bit for bit its result.
    With the listing of :func:`_list_row` eight pairs at a time, :func:`depthwise_dense` took
    (float32, 3x3, half the inputs changing, thread CPU time, old and new alternating in one
    process, 2-vCPU AMD EPYC VM (Zen 4, AVX-512), load 4-5): 16x16x144 stride 1 0.105 -> 0.075
    ms, 32x32x96 stride 2 0.166 -> 0.112 ms (float64 0.272 -> 0.212), 32x32x16 0.065 -> 0.047 ms;
    the same outputs, memory, flags and listing bit for bit."""
    n, step = wlanes(z.itemsize), sx * c
    g = 0
    while g + n <= c:
        if use_bias:
            a0 = wload(bias, g)  # one channel's bias for the four pixels
            a1, a2, a3 = a0, a0, a0
        else:
            a0, a1, a2, a3 = wzero(z), wzero(z), wzero(z), wzero(z)
        for ky in range(kh):
            pr = rb + ky * dy * w_pad * c + g
            for kx in range(kw):
                pt, wt = pr + kx * dx * c, (ky * kw + kx) * c + g
                a0 = wmul_add_vv(a0, mem_w, pt, w, wt)
                a1 = wmul_add_vv(a1, mem_w, pt + step, w, wt)
                a2 = wmul_add_vv(a2, mem_w, pt + 2 * step, w, wt)
                a3 = wmul_add_vv(a3, mem_w, pt + 3 * step, w, wt)
        wstore(z, zb + g, a0)
        wstore(z, zb + c + g, a1)
        wstore(z, zb + 2 * c + g, a2)
        wstore(z, zb + 3 * c + g, a3)
        g += n
    return g


@njit(cache=True, nogil=True)
def _out_row_dw(z, zb, bias, use_bias, mem_w, w, rb, kh, kw, dy, dx, w_pad, c, sx, w_out):
    """One output row of a depthwise layer with channel multiplier 1 (``zb``, ``rb``: its
    first pixel's output and padded input index): four pixels at a time by :func:`_quad_dw`,
    their remaining channels and the last pixels by :func:`_row_dw`."""
    ox = 0
    while ox + 4 <= w_out:
        g = _quad_dw(z, zb, bias, use_bias, mem_w, w, rb, kh, kw, dy, dx, w_pad, c, sx)
        if g < c:
            for k in range(4):
                _row_dw(z, zb + k * c, bias, use_bias, mem_w, w, rb + k * sx * c, kh, kw, dy, dx,
                        w_pad, c, g)
        ox, zb, rb = ox + 4, zb + 4 * c, rb + 4 * sx * c
    while ox < w_out:
        _row_dw(z, zb, bias, use_bias, mem_w, w, rb, kh, kw, dy, dx, w_pad, c, 0)
        ox, zb, rb = ox + 1, zb + c, rb + sx * c


@njit(cache=True, nogil=True, inline="always")
def _list_dw(flag_w, hit, rb, kh, kw, dy, dx, w_pad, c, q, pg_list, npg):
    """List the (pixel, group) pairs ``q * c + g`` of output pixel ``q`` whose window holds an
    event on channel ``g`` (the OR of the taps' flags, by slices so that it vectorises)."""
    h = hit[:c]
    for g in range(c):
        h[g] = 0
    for ky in range(kh):
        pr = rb + ky * dy * w_pad * c
        for kx in range(kw):
            f = flag_w[pr + kx * dx * c:pr + kx * dx * c + c]
            for g in range(c):
                h[g] |= f[g]
    for g in range(c):
        if h[g]:
            pg_list[npg] = q * c + g
            npg += 1
    return npg


@njit(cache=True, nogil=True, inline="always")
def _row_scratch(w_out, w_pad, c):
    """Bytes of scratch :func:`_list_row` needs: a row of flags, then (from a multiple of 8
    on) the OR of the kernel's rows."""
    return -(-(w_out * c) // 8) * 8 + w_pad * c


@njit(cache=True, nogil=True)
def _list_row(flag_w, hrow, oy, w_out, sy, sx, kh, kw, dy, dx, w_pad, c, pg_list, npg):
    """:func:`_list_dw` for a whole output row ``oy`` at once: OR the taps' flags into ``hrow``
    (``w_out * c`` bytes, then from the next multiple of 8 on the OR over the kernel's rows of
    the input row's flags: ``w_pad * c`` bytes at most; :func:`_row_scratch`), the
    rows first (``kh`` contiguous passes), then the columns (one slice per column and row of
    a stride-1 layer, per column and output pixel otherwise), then list the
    pairs ``q * c + g`` with a flag, in increasing order (branchless: ``npg <= q * c + g``),
    eight flags (one 64-bit word) at a time: a word of eight reached pairs stores their eight
    indices at once, a word of none skips them. Against testing the eight flags byte by byte
    and storing through ``pg_list[npg + k]`` (isolated, float32, thread CPU time, alternating,
    2-vCPU Intel Xeon VM with AVX-512, load 5.8-6.2, two runs) the listing took 0.80-0.88x
    the time on 16x16x144 stride 1 (half or a tenth of the inputs changing), 0.85-1.05x on
    32x32x96 stride 2 (there the strided OR of the taps' flags is most of it). The rows' OR
    first (``kh + kw`` passes instead of ``kh * kw``; isolated, float32, thread CPU time,
    alternating, 2-vCPU Intel Xeon VM (AVX-512), load 4, the whole of :func:`depthwise_dense`):
    32x32x96 stride 2 0.90x the time, 16x16x144 stride 1 0.93x and stride 2 0.90x, 32x32x16
    and 8x8x192 stride 1 1.01-1.05x (caches flushed before each call: best 0.90-1.00x, median
    0.97-1.10x)."""
    m = w_out * c
    h = hrow[:m]
    run = ((w_out - 1) * sx + (kw - 1) * dx + 1) * c  # the padded row's inputs the windows read
    v0 = -(-m // 8) * 8
    v = hrow[v0:v0 + run]  # the OR over the kernel's rows (ky) of those inputs
    b0 = oy * sy * w_pad * c
    src = flag_w[b0:b0 + run]
    for i in range(run):
        v[i] = src[i]
    for ky in range(1, kh):
        b = b0 + ky * dy * w_pad * c
        src = flag_w[b:b + run]
        for i in range(run):
            v[i] |= src[i]
    for i in range(m):
        h[i] = 0
    for kx in range(kw):  # then over the kernel's columns (kx)
        if sx == 1:  # the row's windows read one contiguous run
            src = v[kx * dx * c:kx * dx * c + m]
            for i in range(m):
                h[i] |= src[i]
        else:
            for ox in range(w_out):
                o = (ox * sx + kx * dx) * c
                hs, ss = h[ox * c:ox * c + c], v[o:o + c]
                for g in range(c):
                    hs[g] |= ss[g]
    q0, m8 = oy * m, m - m % 8
    words = hrow[:m8].view(np.uint64)  # eight flags a word
    for t in range(m8 // 8):  # all eight reached (busy layers: most), none, or some
        if words[t] == _EIGHT_ONES:
            dst, base = pg_list[npg:npg + 8], q0 + 8 * t
            for k in range(8):  # indices from 0: no wraparound test, one vector store
                dst[k] = base + k
            npg += 8
        elif words[t] != 0:
            for k in range(8 * t, 8 * t + 8):
                pg_list[npg] = q0 + k
                npg += h[k] != 0
    for k in range(m8, m):
        pg_list[npg] = q0 + k
        npg += h[k] != 0
    return npg


@njit(cache=True, nogil=True)
def depthwise_dense(x, memory, herding, param, gain, w_cl, bias, use_bias, z, in_hw, out_hw, stride,
                    padding, dilation, mem_w, flag_w, fan_y, fan_x, hit, mag, pg_list, pg_count):
    """Encode every input and recompute a depthwise conv's ``z`` (see the module docstring).

    ``w_cl[ky, kx, g, j]`` (``C_in = groups``, ``Cg`` outputs per group), ``z`` channels-last;
    ``bias``: the per-channel bias, its first ``C_in * Cg`` entries read (the engine passes
    its channels-last map, the same bias at every pixel; read only if ``use_bias``: one
    vector per channel block for all the pixels, in L1, not a map); ``mem_w`` (weight dtype) and
    ``flag_w`` (uint8) hold the zero-padded input, ``(h_in + 2*py) * (w_in + 2*px) * C_in``
    (their padding must stay 0); ``fan_y, fan_x``: per input row / column, the taps inside
    the output (:func:`sigmadelta.kernels.axis_fan`); ``hit``: uint8 scratch of ``C_in``;
    ``mag``: scratch of ``len(x)`` (the spikes' magnitudes of one input row, kept in L1, then
    the reached flags of one output row, :func:`_list_row`, when :func:`_row_scratch` bytes fit).
    The reached (pixel, group) pairs ``q * groups + g`` go to ``pg_list`` from
    ``pg_count[0]`` on. Returns ``(events, synops, additions)``.
    """
    kh, kw, c, cg = w_cl.shape
    w_in, h_out, w_out = in_hw[1], out_hw[0], out_hw[1]
    sy, sx, py, px, dy, dx = stride[0], stride[1], padding[0], padding[1], dilation[0], dilation[1]
    w_pad = w_in + 2 * px
    c_out = c * cg
    n_ev, synops, adds = _encode_dw(x, memory, herding, param, gain, c, w_in, py, px, w_pad, mem_w,
                                    flag_w, fan_y, fan_x, cg, mag)
    w = w_cl.reshape(-1)  # [(ky * kw + kx) * c_out + g * cg + j]
    npg = pg_count[0]
    hrow = mag.view(np.uint8)  # free after encoding: the flag rows of _list_row
    by_rows = hrow.shape[0] >= _row_scratch(w_out, w_pad, c)
    for oy in range(h_out):
        if by_rows:
            npg = _list_row(flag_w, hrow, oy, w_out, sy, sx, kh, kw, dy, dx, w_pad, c, pg_list, npg)
        if cg == 1:
            _out_row_dw(z, oy * w_out * c_out, bias, use_bias, mem_w, w, oy * sy * w_pad * c, kh, kw,
                        dy, dx, w_pad, c, sx, w_out)
        for ox in range(w_out):
            q = oy * w_out + ox
            zb = q * c_out
            rb = (oy * sy * w_pad + ox * sx) * c  # padded index of the window's first input
            if cg != 1:
                for o in range(c_out):
                    z[zb + o] = bias[o] if use_bias else z[zb + o] * 0
                for t in range(kh * kw):
                    pb = rb + ((t // kw) * dy * w_pad + (t % kw) * dx) * c
                    for g in range(c):
                        m = mem_w[pb + g]
                        for j in range(cg):
                            z[zb + g * cg + j] += m * w[t * c_out + g * cg + j]
            if not by_rows:
                npg = _list_dw(flag_w, hit, rb, kh, kw, dy, dx, w_pad, c, q, pg_list, npg)
    pg_count[0] = npg
    return n_ev, synops, adds
