"""Slow, obvious NumPy twins of every kernel, with the same signatures.

They exist to be read and to be compared against the Numba kernels in the
tests; the engine never calls them. Where a kernel lists touched neurons, the
twin lists the same set (the order may differ).
"""

import numpy as np

from .elementwise import ADD_FULL_ABOVE
from .numpy_twins_act import (  # noqa: F401 (_pointwise: the tests)
    _pointwise,
    activation_rows,
    activation_update,
    add_rows,
    global_pool_rows,
)
from .numpy_twins_depthwise import depthwise_dense
from .numpy_twins_gemm import (
    _from_run,
    conv1x1_dense,
    conv_gemm,
    conv_gemm_pixels,
    direct_conv,
    narrow_conv,
    small_conv,
)
from .numpy_twins_lava import (
    dense_f32,
    fold_f32,
    fold_i32,
    lava_conv_step,
    lava_dense_step,
    lava_encode_map,
    lava_map,
    max_abs,
    scatter_f32,
    scatter_i32,
)
from .numpy_twins_maps import _merge_touched, convt_scatter, gather_update, pixel_map_update

__all__ = [
    "fold_i32", "lava_conv_step", "lava_dense_step", "lava_encode_map", "lava_map", "scatter_f32",
    "fold_f32", "max_abs", "scatter_i32", "dense_f32", "convt_scatter", "pixel_map_update",
    "gather_update", "conv_gemm", "direct_conv", "narrow_conv", "small_conv", "conv_gemm_pixels",
    "conv1x1_dense",
    "conv_layer_gemm",
    "dense_recompute", "depthwise_dense", "conv_layer_dense", "load_frame", "mark_changed",
    "touch_all", "herding_encode", "herding_encode_units", "threshold_encode", "lava_encode",
    "lava_range_check", "dense_scatter", "conv_scatter", "expand_pixel_groups",
    "activation_update", "add_update", "mul_update", "upsample_update", "concat_update",
    "flatten_update", "fixed_point_update", "fixed_point_guard", "pool_update", "encode_pixels",
    "conv_scatter_pixels", "encode_scatter_1ch", "encode_map_1ch", "conv_layer_step",
    "encode_rows", "list_rows", "activation_rows", "add_rows",
    "global_pool_rows", "input_pool",
]


def _set_list(touched, count, idx):
    idx = np.asarray(idx, dtype=touched.dtype)
    touched[: len(idx)] = idx
    count[0] = len(idx)


def load_frame(frame, c, value, prev, mask, touched, count, prime):
    if prev.shape[0]:
        prev[:] = frame
    new = frame.reshape(c, -1).T.ravel()
    changed = np.arange(new.shape[0]) if prime else np.flatnonzero(new != value)
    value[:] = new
    _set_list(touched, count, changed)


def mark_changed(value, new, touched, count):
    changed = np.flatnonzero(new != value)
    value[:] = new
    _set_list(touched, count, changed)


def touch_all(touched, count):
    _set_list(touched, count, np.arange(touched.shape[0]))


def herding_encode(x, touched, count, total, k, ev_idx, ev_val):
    idx = touched[: count[0]]
    s = np.rint(k * x[idx]) - total[idx]
    hit = idx[s != 0]
    total[hit] += s[s != 0]
    ev_idx[: len(hit)] = hit
    ev_val[: len(hit)] = s[s != 0]
    return len(hit)


def herding_encode_units(x, touched, count, total, k, fanout, ev_idx, ev_val):
    idx = touched[: count[0]]
    s = np.rint(k[idx] * x[idx]) - total[idx]
    hit = s != 0
    total[idx[hit]] += s[hit]
    ev_idx[: hit.sum()] = idx[hit]
    ev_val[: hit.sum()] = s[hit] / k[idx[hit]]
    return int(hit.sum()), float((np.abs(s[hit]) * fanout[idx[hit]]).sum())


def threshold_encode(x, touched, count, sent, threshold, ev_idx, ev_val):
    idx = touched[: count[0]]
    d = x[idx] - sent[idx]
    send = (d != 0) & (np.abs(d) >= threshold)
    hit = idx[send]
    sent[hit] = x[hit]
    ev_idx[: len(hit)] = hit
    ev_val[: len(hit)] = d[send]
    return len(hit)


def lava_encode(x, touched, count, sent, k, threshold, shift, ev_idx, ev_val):
    idx = touched[: count[0]]
    a = k * x[idx]
    d = (a - sent[idx]).astype(np.int64)
    send = (d != 0) & (np.abs(d) >= threshold)
    sent[idx[send]] = a[send]
    s = d >> shift  # arithmetic shift: floor
    msg = send & (s != 0)  # a message of 0 is no event
    ev_idx[: msg.sum()] = idx[msg]
    ev_val[: msg.sum()] = s[msg]
    return int(msg.sum())


def lava_range_check(value, prev, bias, inc_limit, x, k):
    lim = 2.0 ** 31
    if k != 1.0:
        bad = np.flatnonzero(~((k * x >= -lim) & (k * x < lim)))
        if len(bad):
            return -2 - int(bad[0])
    inc, sigma = value - prev, value - bias
    ok = ((inc >= -inc_limit) & (inc < inc_limit) & (sigma >= -lim) & (sigma < lim)
          & (value >= -lim) & (value < lim))
    bad = np.flatnonzero(~ok)
    first = int(bad[0]) if len(bad) else len(value)
    prev[:first] = value[:first]
    return first if len(bad) else -1


def dense_scatter(ev_idx, ev_val, n_events, gain, w_t, z):
    s = ev_val[:n_events]
    z += gain * (s @ w_t[ev_idx[:n_events]])
    return n_events * w_t.shape[1], float(np.abs(s).sum() * w_t.shape[1])


def conv_scatter(
    ev_idx, ev_val, n_events, gain, w_cl, z, in_hw, out_hw, stride, padding, dilation,
    groups, pg_list, pg_count, pg_stamp, frame,
):
    """The convolution of the frame's delta image, one kernel tap at a time.

    ``D[iy, ix, c] = gain * s`` for every event ``(i, s)``; for every tap ``(ky, kx)`` each
    output pixel reads ``D`` at ``(oy*sy - py + ky*dy, ox*sx - px + kx*dx)`` (if in bounds)
    and adds ``D[.., group channels] @ w_cl[ky, kx]`` to its group's ``cg`` outputs.
    """
    kh, kw, c_in, cg = w_cl.shape
    (h_in, w_in), (h_out, w_out) = (int(v) for v in in_hw), (int(v) for v in out_hw)
    c_g = c_in // groups
    acc = np.int64 if z.dtype.kind == "i" else np.float64
    delta = np.zeros((h_in, w_in, c_in), acc)
    hit = np.zeros((h_in, w_in, c_in), np.int64)
    idx, val = ev_idx[:n_events], ev_val[:n_events]
    delta.reshape(-1)[idx] = gain * val.astype(acc)
    hit.reshape(-1)[idx] = 1
    mag = np.abs(val.astype(np.float64))
    size = np.zeros((h_in, w_in, c_in))
    size.reshape(-1)[idx] = mag
    zz = np.zeros((h_out, w_out, groups * cg), acc)
    reached = np.zeros((h_out, w_out, groups), bool)
    synops, adds = 0, 0.0
    oy, ox = np.arange(h_out), np.arange(w_out)
    for ky in range(kh):
        iy = oy * stride[0] - padding[0] + ky * dilation[0]
        for kx in range(kw):
            ix = ox * stride[1] - padding[1] + kx * dilation[1]
            ry, rx = (iy >= 0) & (iy < h_in), (ix >= 0) & (ix < w_in)
            d = delta[np.ix_(iy[ry], ix[rx])]  # [h', w', c_in]: the inputs this tap reads
            h, s = hit[np.ix_(iy[ry], ix[rx])], size[np.ix_(iy[ry], ix[rx])]
            synops += int(h.sum()) * cg
            adds += float(s.sum()) * cg
            for g in range(groups):
                ch = slice(g * c_g, (g + 1) * c_g)
                zz[np.ix_(ry, rx, range(g * cg, (g + 1) * cg))] += d[..., ch] @ w_cl[ky, kx, ch].astype(acc)
                reached[np.ix_(ry, rx, [g])] |= h[..., ch].any(-1, keepdims=True)
    z += zz.reshape(-1).astype(z.dtype)
    _merge_touched(pg_list, pg_count, pg_stamp, reached, frame)
    return synops, adds


def expand_pixel_groups(pg_list, pg_count, groups, cg, touched, count):
    idx = [(pg // groups) * groups * cg + (pg % groups) * cg + j
           for pg in pg_list[: pg_count[0]] for j in range(cg)]
    _set_list(touched, count, idx)


def mul_update(a, b, y, touched_a, count_a, touched_b, count_b, c, per_channel, touched, count,
               stamp, frame):
    tb = touched_b[: count_b[0]]
    from_b = (np.arange(len(y) // c)[:, None] * c + tb[None, :]).ravel() if per_channel else tb
    idx = np.union1d(touched_a[: count_a[0]], from_b).astype(np.int64)
    y[idx] = a[idx] * (b[idx % c] if per_channel else b[idx])
    stamp[idx] = frame
    _set_list(touched, count, idx)


def add_update(a, b, y, touched_a, count_a, touched_b, count_b, touched, count, stamp, frame):
    idx = np.union1d(touched_a[: count_a[0]], touched_b[: count_b[0]])
    done = np.arange(len(y)) if count_a[0] + count_b[0] > ADD_FULL_ABOVE * len(y) else idx
    y[done] = a[done] + b[done]  # busy: every neuron (the engine keeps y = a + b on all)
    stamp[idx] = frame
    _set_list(touched, count, idx)


def concat_update(x, touched_in, count_in, c_in, offset, c_out, y, touched, count):
    idx = touched_in[: count_in[0]]
    out = (idx // c_in) * c_out + offset + idx % c_in
    y[out] = x[idx]
    n = count[0]
    touched[n:n + len(out)] = out
    count[0] = n + len(out)


def upsample_update(x, touched_in, count_in, w_in, c, sh, sw, y, touched, count):
    idx = touched_in[: count_in[0]]
    p, ch = idx // c, idx % c
    r, q = p // w_in, p % w_in
    out = [((r * sh + dy) * w_in * sw + q * sw + dx) * c + ch for dy in range(sh) for dx in range(sw)]
    out = np.concatenate(out) if out else np.zeros(0, np.int64)
    y[out] = np.tile(x[idx], sh * sw)
    _set_list(touched, count, out)


def flatten_update(x, touched_in, count_in, hw, c, y, touched, count):
    idx = touched_in[: count_in[0]]
    out = (idx % c) * hw + idx // c
    y[out] = x[idx]
    _set_list(touched, count, out)


def pool_update(
    x, touched_in, count_in, in_hw, c, out_hw, kernel, stride, padding, is_max,
    y, touched, count, stamp, frame, hit,
):
    h_in, w_in = in_hw
    h_out, w_out = out_hw
    xin = np.pad(x.reshape(h_in, w_in, c), ((padding[0],) * 2, (padding[1],) * 2, (0, 0)),
                 constant_values=-np.inf if is_max else 0.0)
    hit = set()
    for i in touched_in[: count_in[0]]:
        p, ch = divmod(int(i), c)
        iy, ix = divmod(p, w_in)
        for oy in range(h_out):
            for ox in range(w_out):
                if (oy * stride[0] - padding[0] <= iy < oy * stride[0] - padding[0] + kernel[0]
                        and ox * stride[1] - padding[1] <= ix < ox * stride[1] - padding[1] + kernel[1]):
                    hit.add((oy * w_out + ox) * c + ch)
    out = sorted(hit)
    for o in out:
        q, ch = divmod(o, c)
        oy, ox = divmod(q, w_out)
        win = xin[oy * stride[0]:oy * stride[0] + kernel[0], ox * stride[1]:ox * stride[1] + kernel[1], ch]
        y[o] = win.max() if is_max else win.sum() / (kernel[0] * kernel[1])
    stamp[out] = frame
    _set_list(touched, count, out)



def input_pool(frame, value, touched_in, count_in, in_hw, c, out_hw, kernel, stride, padding, is_max,
               y, touched, count, stamp, frame_no, hit, prime):
    """``load_frame`` then ``pool_update`` (the input's own list is the kernel's scratch)."""
    load_frame(frame, c, value, np.zeros(0), None, touched_in, count_in, prime)
    pool_update(value, touched_in, count_in, in_hw, c, out_hw, kernel, stride, padding, is_max, y,
                touched, count, stamp, frame_no, hit)

def fixed_point_update(acc, touched, count, c, bias, z, limit):
    idx = touched[: count[0]]
    z[idx] = acc[idx] * c + bias[idx]
    over = idx[(acc[idx] > limit) | (acc[idx] < -limit - 1)]
    return int(over[0]) if len(over) else -1


def fixed_point_guard(x, rows, row_count, row_len, k, qmax):
    idx = (rows[: row_count[0], None] * row_len + np.arange(row_len)[None, :]).ravel()
    bad = idx[~(np.abs(np.rint(k * x[idx])) <= qmax)]
    return int(bad[0]) if len(bad) else -1


def _encode_mode(x, touched, count, memory, herding, param, idx, ev_val, lava_k, lava_shift):
    """The per-event encoder of quantizer mode ``herding`` (0 threshold, 1 herding, 2 lava)."""
    if herding == 2:
        return lava_encode(x, touched, count, memory, lava_k, param, lava_shift, idx, ev_val)
    enc = herding_encode if herding else threshold_encode
    return enc(x, touched, count, memory, param, idx, ev_val)


def encode_pixels(x, touched, count, memory, herding, param, c_in, ev_ch, ev_val, px_list,
                  px_start, lava_k=1.0, lava_shift=0):
    idx = np.zeros(len(touched), np.int64)
    n = _encode_mode(x, touched, count, memory, herding, param, idx, ev_val, lava_k, lava_shift)
    pix, ch = np.divmod(idx[:n], c_in)
    ev_ch[:n] = ch
    starts = [e for e in range(n) if e == 0 or pix[e] != pix[e - 1]]
    px_list[: len(starts)] = pix[starts]
    px_start[: len(starts) + 1] = starts + [n]
    return len(starts), n


def conv_scatter_pixels(px_list, px_start, n_px, ev_ch, ev_val, gain, w_run, z, geom, vbuf,
                        pg_list, pg_count, pg_stamp, frame):
    counts = np.diff(px_start[: n_px + 1])
    ev_idx = np.repeat(px_list[:n_px], counts) * w_run.shape[1] + ev_ch[: px_start[n_px]]
    h_in, w_in, h_out, w_out, sy, sx, py, px = (int(v) for v in geom[:8])
    return conv_scatter(ev_idx, ev_val, len(ev_idx), gain, _from_run(w_run, geom), z,
                        (h_in, w_in), (h_out, w_out), (sy, sx), (py, px), (1, 1), 1, pg_list,
                        pg_count, pg_stamp, frame)


def encode_scatter_1ch(x, pixels, count, memory, herding, param, gain, w_run, z, geom, pg_list,
                       pg_count, pg_stamp, frame, lava_k=1.0, lava_shift=0):
    n = len(pixels)
    ev_ch, ev_val = np.zeros(n, np.int64), np.zeros(n, z.dtype)
    px_list, px_start = np.zeros(n, np.int64), np.zeros(n + 1, np.int64)
    n_px, n_ev = encode_pixels(x, pixels, count, memory, herding, param, 1, ev_ch, ev_val, px_list,
                               px_start, lava_k, lava_shift)
    synops, adds = conv_scatter_pixels(px_list, px_start, n_px, ev_ch, ev_val, gain, w_run, z, geom,
                                       None, pg_list, pg_count, pg_stamp, frame)
    return n_ev, synops, adds


def encode_map_1ch(x, pixels, count, memory, herding, param, gain, wtap, z, geom, mgeom, smap,
                   pg_list, pg_count, pg_stamp, frame, lava_k=1.0, lava_shift=0):
    """Per output pixel, the sum over its in-bounds taps (in order) that hold an event."""
    h_in, w_in, h_out, w_out, sy, sx, py, px, kh, kw, cg = (int(v) for v in geom[:11])
    idx, ev = np.zeros(len(pixels), np.int64), np.zeros(len(pixels), z.dtype)
    n = _encode_mode(x, pixels, count, memory, herding, param, idx, ev, lava_k, lava_shift)
    spikes = np.zeros((h_in, w_in), z.dtype)
    spikes.flat[idx[:n]] = ev[:n]
    w = wtap.reshape(kh, kw, cg)
    synops, adds, reached = 0, 0.0, []
    for oy in range(h_out):
        for ox in range(w_out):
            q = oy * w_out + ox
            for ky in range(kh):
                for kx in range(kw):
                    iy, ix = oy * sy - py + ky, ox * sx - px + kx
                    if 0 <= iy < h_in and 0 <= ix < w_in and spikes[iy, ix] != 0:
                        s = spikes[iy, ix]
                        z[q * cg:(q + 1) * cg] = z[q * cg:(q + 1) * cg] + (s * gain) * w[ky, kx]
                        synops += cg
                        adds += float(abs(s)) * cg
                        if not reached or reached[-1] != q:
                            reached.append(q)
    pg_list[pg_count[0]:pg_count[0] + len(reached)] = reached
    pg_stamp[reached] = frame
    pg_count[0] += len(reached)
    return n, synops, adds


def encode_rows(x, rows, row_count, c_in, memory, herding, param, ev_ch, ev_val, px_list,
                px_start, lava_k=1.0, lava_shift=0):
    idx = (rows[: row_count[0], None] * c_in + np.arange(c_in)).ravel()
    return encode_pixels(x, idx, [len(idx)], memory, herding, param, c_in, ev_ch, ev_val,
                         px_list, px_start, lava_k, lava_shift)


def list_rows(pg_list, pg_count, pg_stamp, frame, c_out, prime, expand, out_touched, out_count):
    n_pix = len(pg_stamp)
    if prime:
        pg_list[:n_pix] = np.arange(n_pix)
        pg_count[0] = n_pix
    else:
        pg_list[: pg_count[0]] = np.sort(pg_list[: pg_count[0]])
    if expand:
        expand_pixel_groups(pg_list, pg_count, 1, c_out, out_touched, out_count)
    return int(pg_count[0]) * c_out


def conv_layer_step(x, touched, count, rows, row_count, in_rows, memory, herding, param, gain,
                    w_run, z, geom, ev_ch, ev_val, px_list, px_start, vbuf, pg_list, pg_count,
                    pg_stamp, frame, prime, expand, out_touched, out_count, mgeom, smap, wtap,
                    lava_k=1.0, lava_shift=0):
    c_in = w_run.shape[1]
    if in_rows:
        n_px, n_ev = encode_rows(x, rows, row_count, c_in, memory, herding, param, ev_ch, ev_val,
                                 px_list, px_start, lava_k, lava_shift)
    else:
        n_px, n_ev = encode_pixels(x, touched, count, memory, herding, param, c_in, ev_ch,
                                   ev_val, px_list, px_start, lava_k, lava_shift)
    pg_count[0] = 0
    synops, adds = conv_scatter_pixels(px_list, px_start, n_px, ev_ch, ev_val, gain, w_run, z,
                                       geom, vbuf, pg_list, pg_count, pg_stamp, frame)
    if c_in == 1 and len(mgeom):
        mgeom[1] = n_ev  # the last frame's events pick the next frame's path
    n_out = list_rows(pg_list, pg_count, pg_stamp, frame, len(z) // len(pg_stamp), prime, expand,
                      out_touched, out_count)
    return n_ev, synops, adds, n_out, n_px


def conv_layer_gemm(x, touched, count, rows, row_count, in_rows, memory, herding, param, gain,
                    w_g, z, geom, ev_ch, ev_val, px_list, px_start, gbuf, pg_list, pg_count,
                    pg_stamp, frame, prime, expand, out_touched, out_count, mgeom, lava_k=1.0,
                    lava_shift=0):
    c_in = w_g.shape[0]
    if in_rows:
        n_px, n_ev = encode_rows(x, rows, row_count, c_in, memory, herding, param, ev_ch, ev_val,
                                 px_list, px_start, lava_k, lava_shift)
    else:
        n_px, n_ev = encode_pixels(x, touched, count, memory, herding, param, c_in, ev_ch, ev_val,
                                   px_list, px_start, lava_k, lava_shift)
    pg_count[0] = 0
    synops, adds = conv_gemm_pixels(px_list, px_start, n_px, ev_ch, ev_val, gain, w_g, z, geom, gbuf,
                                    pg_list, pg_count, pg_stamp, frame)
    if len(mgeom):
        mgeom[1] = n_ev
    n_out = list_rows(pg_list, pg_count, pg_stamp, frame, len(z) // len(pg_stamp), prime, expand,
                      out_touched, out_count)
    return n_ev, synops, adds, n_out, n_px


def dense_recompute(x, memory, herding, param, gain, c_in, w_cl, bias, use_bias, z, geom, mem_w,
                    rowbuf, pg_list, pg_count, pg_stamp, frame, lava_k=1.0, lava_shift=0, direct=1,
                    narrow=1):
    """Encode every input; the counters and reached pixels are those of scattering the events;
    ``z`` is the conv of the whole memory (all of it scattered onto zeros) plus the bias;
    ``"lava"`` (mode 2): ``z`` plus the events scattered. ``direct``, ``narrow``: which conv
    kernel the compiled one may take, the same sums here."""
    n = len(x)
    all_in, n_all = np.arange(n), np.array([n])
    idx, val = np.zeros(n, np.int64), np.zeros(n)
    lava = herding == 2
    n_ev = _encode_mode(x, all_in, n_all, memory, herding, param, idx, val, lava_k, lava_shift)
    h_in, w_in, h_out, w_out, sy, sx, py, px, kh, kw, cg = (int(v) for v in geom[:11])
    acc = np.int64 if z.dtype.kind == "i" else np.float64
    w4 = np.asarray(w_cl).reshape(kh, kw, c_in, cg).astype(acc)
    hw = ((h_in, w_in), (h_out, w_out), (sy, sx), (py, px), (1, 1), 1)
    delta = np.zeros(len(z), acc)
    synops, adds = conv_scatter(idx, val.astype(acc), n_ev, 1, w4, delta, *hw,
                                pg_list, pg_count, pg_stamp, frame)
    if lava:
        z += delta.astype(z.dtype)
        return n_ev, synops, adds, len(np.unique(idx[:n_ev] // c_in))
    m = (memory * gain).astype(mem_w.dtype)
    mem_w.reshape(h_in + 2 * py, w_in + 2 * px, c_in)[py:py + h_in, px:px + w_in] = m.reshape(
        h_in, w_in, c_in)
    full = np.zeros(len(z), acc)
    spare = (np.zeros(len(pg_stamp) + 1, np.int64), np.zeros(1, np.int64),
             np.full(len(pg_stamp), -1, np.int64))
    conv_scatter(all_in, m.astype(acc), n, 1, w4, full, *hw, *spare, 0)
    z[:] = (bias + full) if use_bias else full
    return n_ev, synops, adds, len(np.unique(idx[:n_ev] // c_in))


def conv_layer_dense(x, memory, herding, param, gain, c_in, w_cl, bias, use_bias, z, geom, mem_w,
                     rowbuf, pg_list, pg_count, pg_stamp, frame, prime, expand, out_touched,
                     out_count, mgeom, lava_k=1.0, lava_shift=0, direct=1, narrow=1):
    pg_count[0] = 0
    n_ev, synops, adds, n_px = dense_recompute(x, memory, herding, param, gain, c_in, w_cl, bias,
                                               use_bias, z, geom, mem_w, rowbuf, pg_list, pg_count,
                                               pg_stamp, frame, lava_k, lava_shift)
    if len(mgeom):
        mgeom[1] = n_ev
    n_out = list_rows(pg_list, pg_count, pg_stamp, frame, len(z) // len(pg_stamp), prime, expand,
                      out_touched, out_count)
    return n_ev, synops, adds, n_out, n_px
