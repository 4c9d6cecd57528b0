"""NumPy twins of the transposed-conv scatter and the fixed maps of :mod:`.routing` (see
:mod:`sigmadelta.kernels.numpy_twins`, which re-exports them; same signatures as the kernels)."""

import numpy as np

__all__ = ["convt_scatter", "pixel_map_update", "gather_update"]


def _merge_touched(pg_list, pg_count, pg_stamp, reached, frame):
    """Add the (pixel, group) entries ``reached`` marks to the touched list, in sorted order, and
    stamp them with ``frame`` (the scatter twins' common tail)."""
    pgs = sorted(set(pg_list[: pg_count[0]].tolist()) | set(np.flatnonzero(reached).tolist()))
    pg_list[: len(pgs)] = pgs
    pg_stamp[pgs] = frame
    pg_count[0] = len(pgs)


def _set_list(touched, count, idx):
    idx = np.asarray(idx, dtype=touched.dtype)
    touched[: len(idx)] = idx
    count[0] = len(idx)


def convt_scatter(
    ev_idx, ev_val, n_events, gain, w_cl, z, in_hw, out_hw, stride, padding, dilation,
    groups, pg_list, pg_count, pg_stamp, frame,
):
    """The transposed convolution of the frame's delta image, one kernel tap at a time: tap
    ``(ky, kx)`` sends input pixel ``(iy, ix)`` to ``(iy*sy - py + ky*dy, ix*sx - px + kx*dx)``."""
    kh, kw, c_in, cg = w_cl.shape
    (h_in, w_in), (h_out, w_out) = (int(v) for v in in_hw), (int(v) for v in out_hw)
    c_g = c_in // groups
    acc = np.int64 if z.dtype.kind == "i" else np.float64
    delta, hit, size = (np.zeros((h_in, w_in, c_in), t) for t in (acc, np.int64, np.float64))
    idx, val = ev_idx[:n_events], ev_val[:n_events]
    delta.reshape(-1)[idx] = gain * val.astype(acc)
    hit.reshape(-1)[idx] = 1
    size.reshape(-1)[idx] = np.abs(val.astype(np.float64))
    zz = np.zeros((h_out, w_out, groups * cg), acc)
    reached = np.zeros((h_out, w_out, groups), bool)
    synops, adds = 0, 0.0
    for ky in range(kh):
        oy = np.arange(h_in) * stride[0] - padding[0] + ky * dilation[0]
        for kx in range(kw):
            ox = np.arange(w_in) * stride[1] - padding[1] + kx * dilation[1]
            ry, rx = (oy >= 0) & (oy < h_out), (ox >= 0) & (ox < w_out)
            sel = np.ix_(ry, rx)
            synops += int(hit[sel].sum()) * cg
            adds += float(size[sel].sum()) * cg
            for g in range(groups):
                ch = slice(g * c_g, (g + 1) * c_g)
                zz[np.ix_(oy[ry], ox[rx], range(g * cg, (g + 1) * cg))] += \
                    delta[sel][..., ch] @ w_cl[ky, kx, ch].astype(acc)
                reached[np.ix_(oy[ry], ox[rx], [g])] |= hit[sel][..., ch].any(-1, keepdims=True)
    z += zz.reshape(-1).astype(z.dtype)
    _merge_touched(pg_list, pg_count, pg_stamp, reached, frame)
    return synops, adds


def pixel_map_update(x, touched_in, count_in, c, out_start, out_pix, in_start, in_pix, in_w, y,
                     touched, count, stamp, frame):
    """The map as a dense matrix ``M[q, p]`` from the fan-in lists; the outputs whose fan-in
    holds a touched input pixel are listed and set to ``M @ x`` (channel by channel)."""
    n_out = len(in_start) - 1
    m = np.zeros((n_out, len(out_start) - 1))
    rows = np.repeat(np.arange(n_out), np.diff(in_start))
    np.add.at(m, (rows, in_pix[: in_start[-1]]), in_w[: in_start[-1]])
    ti = touched_in[: count_in[0]]
    hit = np.zeros(m.shape[1] * c, bool)
    hit[ti] = True
    reached = (m != 0).astype(np.int64) @ hit.reshape(-1, c).astype(np.int64) > 0  # [q, ch]
    full = m @ x.astype(np.float64).reshape(-1, c)
    idx = np.flatnonzero(reached.reshape(-1))
    y[idx] = full.reshape(-1)[idx]
    stamp[idx] = frame
    _set_list(touched, count, idx)


def gather_update(x, touched_in, count_in, c_in, dst, c_out, y, touched, count):
    """Route every touched input ``(p, ch)`` to output ``(p, dst[ch])`` (skipped if < 0)."""
    ti = touched_in[: count_in[0]]
    p, ch = ti // c_in, ti % c_in
    keep = dst[ch] >= 0
    out = p[keep] * c_out + dst[ch[keep]]
    y[out] = x[ti[keep]]
    _set_list(touched, count, out)
