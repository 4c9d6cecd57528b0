"""Slow, obvious NumPy twins of every kernel, with the same signatures.

They exist to be read and to be compared against the Numba kernels in the
tests; the engine never calls them. Where a kernel lists touched neurons, the
twin lists the same set (the order may differ).
"""

import numpy as np

__all__ = [
    "mark_changed",
    "touch_all",
    "herding_encode",
    "threshold_encode",
    "dense_scatter",
    "conv_scatter",
    "expand_pixel_groups",
    "activation_update",
    "add_update",
    "concat_update",
    "flatten_update",
    "fixed_point_update",
    "pool_update",
]


def _set_list(touched, count, idx):
    idx = np.asarray(idx, dtype=touched.dtype)
    touched[: len(idx)] = idx
    count[0] = len(idx)


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


def threshold_encode(x, touched, count, sent, threshold, ev_idx, ev_val):
    idx = touched[: count[0]]
    d = x[idx] - sent[idx]
    send = (d != 0) & (np.abs(d) >= threshold)
    hit = idx[send]
    sent[hit] = x[hit]
    ev_idx[: len(hit)] = hit
    ev_val[: len(hit)] = d[send]
    return len(hit)


def dense_scatter(ev_idx, ev_val, n_events, gain, w_t, z):
    s = ev_val[:n_events]
    z += gain * (s @ w_t[ev_idx[:n_events]])
    return n_events * w_t.shape[1], float(np.abs(s).sum() * w_t.shape[1])


def conv_scatter(
    ev_idx, ev_val, n_events, gain, w_cl, z, in_hw, out_hw, stride, padding, dilation,
    groups, pg_list, pg_count, pg_stamp, frame,
):
    kh, kw, c_in, cg = w_cl.shape
    h_out, w_out = out_hw
    zz = z.reshape(h_out, w_out, groups * cg)
    reached = set(pg_list[: pg_count[0]].tolist())
    synops, adds = 0, 0.0
    for e in range(n_events):
        p, c = divmod(int(ev_idx[e]), c_in)
        iy, ix = divmod(p, in_hw[1])
        g = c // (c_in // groups)
        for oy in range(h_out):
            for ox in range(w_out):
                for ky in range(kh):
                    for kx in range(kw):
                        if (oy * stride[0] - padding[0] + ky * dilation[0] == iy
                                and ox * stride[1] - padding[1] + kx * dilation[1] == ix):
                            zz[oy, ox, g * cg:(g + 1) * cg] += gain * ev_val[e] * w_cl[ky, kx, c]
                            synops += cg
                            adds += abs(ev_val[e]) * cg
                            reached.add((oy * w_out + ox) * groups + g)
    pgs = sorted(reached)
    pg_list[: len(pgs)] = pgs
    pg_stamp[pgs] = frame
    pg_count[0] = len(pgs)
    return synops, adds


def expand_pixel_groups(pg_list, pg_count, groups, cg, touched, count):
    idx = [(pg // groups) * groups * cg + (pg % groups) * cg + j
           for pg in pg_list[: pg_count[0]] for j in range(cg)]
    _set_list(touched, count, idx)


def activation_update(x, y, touched, count, fn, alpha, lo, hi):
    idx = touched[: count[0]]
    v = x[idx]
    y[idx] = [np.maximum(v, 0), np.where(v > 0, v, alpha * v), np.clip(v, lo, hi), v][fn]


def add_update(a, b, y, touched_a, count_a, touched_b, count_b, touched, count, stamp, frame):
    idx = np.union1d(touched_a[: count_a[0]], touched_b[: count_b[0]])
    y[idx] = a[idx] + b[idx]
    stamp[idx] = frame
    _set_list(touched, count, idx)


def concat_update(x, touched_in, count_in, c_in, offset, c_out, y, touched, count):
    idx = touched_in[: count_in[0]]
    out = (idx // c_in) * c_out + offset + idx % c_in
    y[out] = x[idx]
    n = count[0]
    touched[n:n + len(out)] = out
    count[0] = n + len(out)


def flatten_update(x, touched_in, count_in, hw, c, y, touched, count):
    idx = touched_in[: count_in[0]]
    out = (idx % c) * hw + idx // c
    y[out] = x[idx]
    _set_list(touched, count, out)


def pool_update(
    x, touched_in, count_in, in_hw, c, out_hw, kernel, stride, padding, is_max,
    y, touched, count, stamp, frame,
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


def fixed_point_update(acc, touched, count, c, bias, z, limit):
    idx = touched[: count[0]]
    z[idx] = acc[idx] * c + bias[idx]
    over = idx[(acc[idx] > limit) | (acc[idx] < -limit - 1)]
    return int(over[0]) if len(over) else -1
