"""The dense recompute path of a busy pixel conv layer: encode everything, recompute ``z``.

Where most inputs spike, scattering event by event costs more than computing the layer
again. :func:`dense_recompute` then runs, for the whole layer::

    s_i = Q(x_i) - memory_i;  memory_i = Q(x_i)        # one pass over every input neuron
    z = bias + conv(gain * memory, W)                   # the whole map at once
    (fixed point: acc = conv(memory, W_int), no bias; the caller rebuilds z from acc)

Float layers run the conv directly where that is faster (a register-blocked SIMD loop,
:mod:`.directconv`; every 3x3 shape measured), else as GEMM (:func:`.wholeconv.conv_gemm`): the
zero-padded input (channels last) is unrolled, a chunk of output pixels at a time, into rows of
``kh*kw*C_in`` values (im2col) and multiplied by the weights ``W[(ky, kx, c), j]``
through ``np.dot`` (BLAS ``sgemm``/``dgemm``, called from compiled code; needs scipy).
A 1x1, stride-1, unpadded conv multiplies the input itself (a float scratch buffer shorter
than one row gets one row allocated). Fixed point (int64) runs the register-blocked loop
(:func:`.convint.conv_all`), which float layers never compile. The whole-map conv of both
(:func:`.wholeconv._conv_whole`) is in :mod:`.wholeconv`.

which equals the scatter's ``z += gain * conv(s, W)`` summed over the stream (exactly in
fixed point, up to the order of float additions otherwise).

The ``"lava"`` quantizer (:data:`~sigmadelta.kernels.pixel.Q_LAVA`) drops the low bits of each
message, so what a layer has received is not its encoder memory; its dense path convolves
this frame's messages instead (the delta image, ``s_i = 0`` where nothing is sent)::

    s_i = floor((lava_k * x_i - memory_i) / 2**shift) if sent else 0     # every input neuron
    z += conv(s, W)                                                      # the whole map at once

The messages and weights are integers, so every product and partial sum of the GEMM is an
exact float while it stays below ``2**53`` (:func:`lava_dense_exact`): ``z`` is bit for bit
the scatter's, in any order of additions. The counters are those of
the event semantics, never of the path: events (``s != 0``), synops (per event, the
output neurons it reaches), additions (``|s|`` times that) and the output pixels the
events reach, listed in ``pg_list`` as the scatter lists them (by a scan of stamps, in
increasing order). Untouched inputs cannot spike (their value is the one already
encoded), so encoding all of them gives the same events as encoding the touched ones.

:func:`.paths.choose_path` picks the path per layer and frame before encoding (the event
scatter, this one, or gather-GEMM-scatter, :mod:`.gathergemm`), from what is already known:
this frame's touched inputs, the last frame's events and pixels with events per touched
input, and a cost model per path (:data:`.paths.PATH_COSTS`).
"""


import numpy as np
from numba import njit, types
from numba.extending import overload

from .pixel import Q_HERDING, Q_LAVA, _quantize, _split
from .quantize import single_exact
from .wholeconv import _conv_whole

__all__ = ["dense_recompute", "lava_dense_exact", "padded_size"]

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
def _encode_all(x, memory, herding, param, gain, c_in, mem_w, geom, pg_stamp, frame, lava_k, lava_shift):
    """Quantize every input; ``gain * memory`` (``"lava"``: the message ``s``) goes into
    ``mem_w``, the input zero-padded by ``(py, px)`` on each side (the padding stays 0).
    Returns ``(events, synops, additions, pixels with events)``; herding by
    :func:`_encode_herding` (same values)."""
    if herding == Q_HERDING:
        return _encode_herding(x, memory, param, gain, c_in, mem_w, geom, pg_stamp, frame)
    w_in, py, px, cg = geom[1], geom[6], geom[7], geom[10]
    w_pad = w_in + 2 * px
    lava, lava_scale = herding == Q_LAVA, 0.5 ** lava_shift
    n_ev, synops, adds, n_px = 0, 0, 0.0, 0
    for p in range(x.shape[0] // c_in):
        e, mag = 0, 0.0
        iy = p // w_in
        pb = ((iy + py) * w_pad + p - iy * w_in + px) * c_in - p * c_in
        for i in range(p * c_in, (p + 1) * c_in):
            s, memory[i] = _quantize(x[i], memory[i], herding, param, lava_k, lava_scale)
            mem_w[pb + i] = s if lava else memory[i] * gain
            e += s != 0.0
            mag += abs(s)
        if e:
            fan = _reach(p, geom, pg_stamp, frame) * cg
            n_ev += e
            n_px += 1
            synops += fan * e
            adds += mag * fan
    return n_ev, synops, adds, n_px


#: channels a herding chunk handles with a loop of constant length (:func:`_herd_chunk`)
HERD_CHUNK = 16


def _herd_pixel(x, memory, mem_w, a, b, c_in, k, gain, single, pair):
    """Herding over one pixel's channels, ``x[a:a+c_in]`` (and ``memory``), written to
    ``mem_w[b:b+c_in]``: ``q = rint(k x); s = q - m; m = q; w = m * gain``; returns
    ``(events, sum |s|)`` (whole numbers: reassociating their sum is exact). Inlined in
    Numba's IR, so the caller's ``fastmath`` flags are the ones that apply
    (:func:`_herd_map` sets ``reassoc``).

    ``k`` a float32 (:func:`_encode_herding` passes one where ``single`` and ``c_in`` is a
    multiple of :data:`HERD_CHUNK`): chunks of :data:`HERD_CHUNK` channels only
    (:func:`_herd_chunk`, sliced from the whole arrays); a loop over the pixel's 32 channels
    ran scalar, as LLVM's vector loop takes 64 at a time, while a loop of constant length is
    unrolled and vectorised whole. Else :func:`_herd_run` over the pixel. Two compiled
    versions, as the chunked loop with any other loop beside it in the pixel loop (a
    rest, or the float64 scale) ran 2x slower (float32, 3x3 32->32 at 64x64: the encoder
    0.27-0.33 -> 0.13 ms per frame, thread CPU time, alternating, 2-vCPU Intel Xeon VM,
    AVX-512, load 2.8).

    ``pair`` 1 (not None; ``k`` a float32 and ``c_in`` a multiple of two chunks): two chunks
    per loop (:func:`_herd_pair`), a third compiled version, so that each pixel of 32
    channels sums its events and ``|s|`` once instead of twice: the encoder at 64x64x32
    196 -> 166 us, 64x64x64 349 -> 296 us (thread CPU time, alternating, 300 passes, the same
    memory, padded input, stamps and counters, 2-vCPU Intel Xeon VM, AVX-512, load 6.7)."""
    raise NotImplementedError("compiled code only")


@overload(_herd_pixel, inline="always")
def _herd_pixel_impl(x, memory, mem_w, a, b, c_in, k, gain, single, pair):
    if isinstance(k, types.Float) and k.bitwidth == 32 and not isinstance(pair, types.NoneType):
        def pairs(x, memory, mem_w, a, b, c_in, k, gain, single, pair):
            e, mag = 0, 0.0
            for c0 in range(0, c_in, 2 * HERD_CHUNK):
                i, o = a + c0, b + c0
                e1, m1 = _herd_pair(x[i:i + 2 * HERD_CHUNK], memory[i:i + 2 * HERD_CHUNK],
                                    mem_w[o:o + 2 * HERD_CHUNK], k, gain)
                e += e1
                mag += m1
            return e, mag
        return pairs

    if isinstance(k, types.Float) and k.bitwidth == 32:
        def chunks(x, memory, mem_w, a, b, c_in, k, gain, single, pair):
            e, mag = 0, 0.0
            for c0 in range(0, c_in, HERD_CHUNK):
                i, o = a + c0, b + c0
                e1, m1 = _herd_chunk(x[i:i + HERD_CHUNK], memory[i:i + HERD_CHUNK],
                                     mem_w[o:o + HERD_CHUNK], k, gain)
                e += e1
                mag += m1
            return e, mag
        return chunks

    def run(x, memory, mem_w, a, b, c_in, k, gain, single, pair):
        return _herd_run(x[a:a + c_in], memory[a:a + c_in], mem_w[b:b + c_in], k, gain, single)
    return run


@njit(cache=True, nogil=True, inline="always")
def _herd_chunk(xs, ms, ws, k, gain):
    """:func:`_herd_run` on exactly :data:`HERD_CHUNK` channels (a loop of constant length),
    in the precision of ``k`` and ``gain`` (float32 where ``single``), the sums in float64.
    ``w = m * gain`` reads the stored ``m`` back: in float64 ``q`` is rounded to the memory's
    dtype first, as :func:`_herd_run` does."""
    e, mag = 0, 0.0
    for j in range(HERD_CHUNK):
        q = np.rint(k * xs[j])
        s = np.float64(q) - np.float64(ms[j])
        ms[j] = q
        ws[j] = ms[j] * gain
        e += s != 0.0
        mag += abs(s)
    return e, mag


@njit(cache=True, nogil=True, inline="always")
def _herd_pair(xs, ms, ws, k, gain):
    """:func:`_herd_chunk` on two chunks side by side (``2 * HERD_CHUNK`` channels, ``j`` and
    ``j + HERD_CHUNK`` in one step of a loop of constant length), one sum of each."""
    e, mag = 0, 0.0
    for j in range(HERD_CHUNK):
        q0 = np.rint(k * xs[j])
        q1 = np.rint(k * xs[j + HERD_CHUNK])
        s0 = np.float64(q0) - np.float64(ms[j])
        s1 = np.float64(q1) - np.float64(ms[j + HERD_CHUNK])
        ms[j] = q0
        ms[j + HERD_CHUNK] = q1
        ws[j] = ms[j] * gain
        ws[j + HERD_CHUNK] = ms[j + HERD_CHUNK] * gain
        e += (s0 != 0.0) + (s1 != 0.0)
        mag += abs(s0) + abs(s1)
    return e, mag


@njit(cache=True, nogil=True, inline="always")
def _herd_run(xs, ms, ws, k, gain, single):
    """Herding over the channels ``xs`` (any length); see :func:`_herd_pixel`."""
    e, mag = 0, 0.0
    if single:  # :func:`sigmadelta.kernels.quantize.single_exact`: the same values (scale 32,
        # float32, 3x3 at 64x64x32: the encoder 0.094 -> 0.074 ms, 32x32x64 0.049 -> 0.039 ms,
        # thread CPU time, alternating with main's, 2-vCPU AMD EPYC Zen 4, load 2.6)
        k1, g1 = np.float32(k), np.float32(gain)
        for j in range(xs.shape[0]):
            q = np.rint(k1 * xs[j])
            s = np.float64(q) - np.float64(ms[j])
            ms[j] = q
            ws[j] = q * g1
            e += s != 0.0
            mag += abs(s)
        return e, mag
    for j in range(xs.shape[0]):
        q = np.rint(k * xs[j])
        s = q - ms[j]
        ms[j] = q
        ws[j] = ms[j] * gain
        e += s != 0.0
        mag += abs(s)
    return e, mag


@njit(cache=True, nogil=True)
def _encode_herding(x, memory, k, gain, c_in, mem_w, geom, pg_stamp, frame):
    """:func:`_encode_all` for the herding quantizer (:func:`_herd_map`); ``k`` and ``gain``
    as float32 where :func:`sigmadelta.kernels.quantize.single_exact` and the channels are
    whole chunks (:func:`_herd_pixel`), two at a time where they pair up."""
    single = single_exact(k, gain)  # scale in float32 where that gives the same values
    if single and c_in % (2 * HERD_CHUNK) == 0:
        return _herd_map(x, memory, np.float32(k), np.float32(gain), c_in, mem_w, geom, pg_stamp, frame, True,
                         1)
    if single and c_in % HERD_CHUNK == 0:
        return _herd_map(x, memory, np.float32(k), np.float32(gain), c_in, mem_w, geom, pg_stamp, frame, True,
                         None)
    return _herd_map(x, memory, k, gain, c_in, mem_w, geom, pg_stamp, frame, single, None)


@njit(cache=True, nogil=True, fastmath={"reassoc"})
def _herd_map(x, memory, k, gain, c_in, mem_w, geom, pg_stamp, frame, single, pair):
    """:func:`_encode_all` for the herding quantizer, same values, counters and stamps: pixel
    by pixel over contiguous slices, each pixel's reach counted (not stamped) and whether it
    has events noted in a map of the input pixels. If all have, every output pixel whose window
    holds an input is reached (:func:`_stamp_reachable`); else an output pixel is reached where
    its window holds a pixel with events (:func:`_stamp_windows`: the map dilated by the
    window, the relation :func:`_reach` stamps input by input). Stamping run by run of pixels
    with events as they came instead cost 0.09 ms of the encoder's 0.23 where half the pixels
    of a 64x64x16 float32 map changed (the dilation: 0.007 ms).

    ``fastmath={"reassoc"}`` for the whole function, as :func:`_herd_pixel` is inlined into
    it: the only float sums are of whole numbers (``|s|``, ``|s| * fan``), exact in any order
    below ``2**53``, and no other float expression has two operations to reassociate. With
    the flag on the inlined helper alone it was lost (Numba's IR inlining keeps the caller's
    flags) and the channel loop ran scalar: 2-3x the time (0.12 -> 0.056 ms at 64x64x16,
    0.47-0.54 -> 0.17 ms at 64x64x64, float32; float64 0.43-0.52 -> 0.28 ms at C=64)."""
    h_in, w_in, h_out, w_out, sy, sx, py, px, cg = (geom[0], geom[1], geom[2], geom[3], geom[4],
                                                    geom[5], geom[6], geom[7], geom[10])
    w_pad = w_in + 2 * px
    n_ev, synops, adds, n_px = 0, 0, 0.0, 0
    has = np.empty(h_in * w_in, np.uint8)  # pixels with events
    for iy in range(h_in):
        ry, oyh = _split(iy + py, sy)
        fan_y = 0  # output rows this input row reaches (as _reach counts them)
        for m in range(geom[11 + 2 * sx + ry]):
            fan_y += 0 <= oyh - m < h_out
        for ix in range(w_in):
            p = iy * w_in + ix
            e, mag = _herd_pixel(x, memory, mem_w, p * c_in, ((iy + py) * w_pad + ix + px) * c_in, c_in,
                                 k, gain, single, pair)
            has[p] = e != 0
            if e:
                r, oxh = _split(ix + px, sx)  # as _reach counts them
                fan = max(min(oxh, w_out - 1) - max(oxh - geom[11 + r] + 1, 0) + 1, 0) * fan_y * cg
                n_ev += e
                n_px += 1
                synops += fan * e
                adds += mag * fan
    if n_px == h_in * w_in:
        _stamp_reachable(geom, pg_stamp, frame)
    elif n_px:
        _stamp_windows(has, geom, pg_stamp, frame)
    return n_ev, synops, adds, n_px


@njit(cache=True, nogil=True)
def _stamp_windows(has, geom, pg_stamp, frame):
    """Stamp every output pixel whose window holds an input pixel ``p`` with ``has[p]``: the
    window's columns first (``cols[iy, ox]``, any of ``has[iy, ox*sx - px + kx]``), then its
    rows (any of ``cols[oy*sy - py + ky, ox]``), inputs beyond the map left out."""
    h_in, w_in, h_out, w_out = geom[0], geom[1], geom[2], geom[3]
    sy, sx, py, px, kh, kw = geom[4], geom[5], geom[6], geom[7], geom[8], geom[9]
    cols = np.zeros(h_in * w_out, np.uint8)
    for kx in range(kw):  # ox * sx - px + kx in [0, w_in): ox in [lo, hi)
        lo = min(max(-((kx - px) // sx), 0), w_out)
        hi = max(min((w_in - 1 + px - kx) // sx + 1, w_out), lo)
        for iy in range(h_in):
            c0, h0 = iy * w_out, iy * w_in - px + kx
            if sx == 1:
                _or_into(cols[c0 + lo:c0 + hi], has[h0 + lo:h0 + hi])
            else:
                for ox in range(lo, hi):
                    cols[c0 + ox] |= has[h0 + ox * sx]
    row = np.empty(w_out, np.uint8)
    for oy in range(h_out):
        row[:] = 0
        for iy in range(max(oy * sy - py, 0), min(oy * sy - py + kh, h_in)):
            _or_into(row, cols[iy * w_out:(iy + 1) * w_out])
        q0 = oy * w_out
        for ox in range(w_out):
            if row[ox]:
                pg_stamp[q0 + ox] = frame


@njit(cache=True, nogil=True, inline="always")
def _or_into(dst, src):
    """``dst[:] |= src[:len(dst)]`` over slices indexed from 0 (LLVM vectorises it; indexed
    from a base and a stride, the two passes of :func:`_stamp_windows` ran scalar: 0.05 ->
    0.007 ms at 64x64, 3x3)."""
    for j in range(dst.shape[0]):
        dst[j] |= src[j]


@njit(cache=True, nogil=True)
def _stamp_reachable(geom, pg_stamp, frame):
    """Stamp every output pixel that some input pixel reaches (its window holds one)."""
    h_in, w_in, h_out, w_out = geom[0], geom[1], geom[2], geom[3]
    sy, sx, py, px, kh, kw = geom[4], geom[5], geom[6], geom[7], geom[8], geom[9]
    for oy in range(h_out):
        if oy * sy - py + kh <= 0 or oy * sy - py >= h_in:
            continue
        for ox in range(w_out):
            if ox * sx - px + kw > 0 and ox * sx - px < w_in:
                pg_stamp[oy * w_out + ox] = frame


def padded_size(geom, c_in: int) -> int:
    """Length of the zero-padded input ``(H_in + 2 py) * (W_in + 2 px) * C_in`` (``mem_w``)."""
    return int((geom[0] + 2 * geom[6]) * (geom[1] + 2 * geom[7]) * c_in)


#: a ``"lava"`` layer's largest message: Lava's ``act`` is int32, so ``|d| < 2**32``, ``|s| <= 2**26``
LAVA_MAX_MESSAGE = 2.0 ** 26


def lava_dense_exact(w_cl: np.ndarray, max_message: float = LAVA_MAX_MESSAGE) -> bool:
    """Is the dense path of a ``"lava"`` layer exact in float64? Every partial sum of
    ``conv(s, W)`` is bounded by ``max|s| * max_j sum_(ky,kx,c) |W[ky, kx, c, j]|``; below
    ``2**53`` every one of them is an exact float (integers), whatever BLAS's order."""
    kh, kw, c_in, cg = w_cl.shape
    col = np.abs(w_cl.astype(np.float64)).reshape(kh * kw * c_in, cg).sum(0)
    return bool(np.all(w_cl == np.rint(w_cl)) and max_message * col.max(initial=0.0) < 2.0 ** 53)


@njit(cache=True, nogil=True, inline="always")
def dense_recompute(x, memory, herding, param, gain, c_in, w_cl, bias, use_bias, z, geom, mem_w, rowbuf,
                    pg_list, pg_count, pg_stamp, frame, lava_k=1.0, lava_shift=0, direct=1, narrow=1):
    """Encode every input, recompute ``z`` over the whole map, list the reached output pixels.

    ``w_cl``: the channels-last conv weights ``[ky, kx, c, j]`` (groups 1), flat or not;
    ``c_in`` input channels; ``geom`` as :func:`sigmadelta.kernels.make_geom`; ``mem_w``
    (the input zero-padded, :func:`padded_size`, its padding 0) and
    ``rowbuf`` are scratch of ``z``'s dtype: ``rowbuf`` holds the im2col rows of a float
    layer (:func:`conv_gemm`, sized by :func:`gemm_rows`; one row is allocated if it holds
    none), or, in fixed point, zeros of at least one SIMD vector (:func:`_conv_all`).
    ``z = bias + rows`` if ``use_bias`` else ``z = rows`` (fixed point). ``herding`` is the
    quantizer mode (``kernels.pixel.Q_*``); ``Q_LAVA`` (with ``lava_k, lava_shift``) adds the
    conv of the messages instead, ``z += conv(s, W)``, through ``mem_w[padded_size:]`` (as
    long as ``z``, scratch). Reached output pixels go to ``pg_list`` (one spare slot), as
    :func:`sigmadelta.kernels.conv_scatter_pixels` lists them. Returns ``(events, synops,
    additions, pixels with events)``. ``direct`` / ``narrow``: None leaves the register-blocked /
    narrow conv out of the compiled code (:func:`_conv_whole`; the GEMM runs instead).
    """
    n_ev, synops, adds, n_px = _encode_all(x, memory, herding, param, gain, c_in, mem_w, geom,
                                           pg_stamp, frame, lava_k, lava_shift)
    if herding == Q_LAVA:
        n_pad = (geom[0] + 2 * geom[6]) * (geom[1] + 2 * geom[7]) * c_in
        dz = mem_w[n_pad:n_pad + z.shape[0]]
        _conv_whole(mem_w[:n_pad], w_cl, dz, bias, False, rowbuf, geom, c_in, direct, narrow)
        for i in range(z.shape[0]):
            z[i] += dz[i]
    else:
        _conv_whole(mem_w, w_cl, z, bias, use_bias, rowbuf, geom, c_in, direct, narrow)
    npg = pg_count[0]
    for q in range(pg_stamp.shape[0]):  # branchless: npg <= q
        pg_list[npg] = q
        npg += pg_stamp[q] == frame
    pg_count[0] = npg
    return n_ev, synops, adds, n_px
