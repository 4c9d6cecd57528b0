"""NumPy twins of the integer-exact ``"lava"`` kernels (:mod:`sigmadelta.kernels.lavaint`; see
:mod:`sigmadelta.kernels.numpy_twins`, which re-exports them; same signatures as the kernels).

Each computes the step's synaptic sum ``W s`` in int64 by the obvious per-event conv (the
:func:`conv_scatter` twin on integers), so the twins share no arithmetic width or order with
the kernels."""

import numpy as np

from .numpy_twins_gemm import _from_run

__all__ = ["max_abs", "scatter_i32", "fold_i32", "lava_map", "lava_conv_step", "lava_dense_step"]


def max_abs(v, n):
    return float(np.max(np.abs(v[:n]), initial=0.0))


def _step_sum(px_list, px_start, n_px, ev_ch, ev_val, w_cl, geom, pg_list, pg_count, pg_stamp, frame):
    """``(W s in int64 [n_out], synops, additions)``; lists the reached pixels after ``pg_count``."""
    from .numpy_twins import conv_scatter

    h_in, w_in, h_out, w_out, sy, sx, py, px = (int(v) for v in geom[:8])
    counts = np.diff(px_start[: n_px + 1])
    ev_idx = np.repeat(px_list[:n_px], counts) * w_cl.shape[2] + ev_ch[: px_start[n_px]]
    vals = ev_val[: px_start[n_px]].astype(np.int64)
    dz = np.zeros(h_out * w_out * w_cl.shape[3], np.int64)
    synops, adds = conv_scatter(ev_idx, vals, len(ev_idx), 1, w_cl.astype(np.int64), dz, (h_in, w_in),
                                (h_out, w_out), (sy, sx), (py, px), (1, 1), 1, pg_list, pg_count,
                                pg_stamp, frame)
    return dz, synops, float(adds)


def scatter_i32(px_list, px_start, n_px, ev_ch, ev_val, w8, dz, geom, c_in, pg_list, pg_count,
                pg_stamp, frame):
    kh = int(geom[8])
    w_cl = _from_run(w8.reshape(kh, c_in, -1).astype(np.int64), geom)
    s, synops, adds = _step_sum(px_list, px_start, n_px, ev_ch, ev_val, w_cl, geom, pg_list, pg_count,
                                pg_stamp, frame)
    dz[:] = (dz.astype(np.int64) + s).astype(np.int32)
    return synops, adds


def fold_i32(z, dz, pg_list, pg_count, cg):
    for q in pg_list[: pg_count[0]]:
        z[q * cg:(q + 1) * cg] += dz[q * cg:(q + 1) * cg]
        dz[q * cg:(q + 1) * cg] = 0


def lava_map(px_list, px_start, n_px, ev_ch, ev_val, wtap, z, geom, mgeom, buf, c_in, pg_list,
             pg_count, pg_stamp, frame):
    kh, kw, cg = (int(v) for v in geom[8:11])
    w_cl = wtap[: kh * kw * c_in * cg].reshape(kh, kw, c_in, cg)
    start = int(pg_count[0])
    s, synops, adds = _step_sum(px_list, px_start, n_px, ev_ch, ev_val, w_cl, geom, pg_list, pg_count,
                                pg_stamp, frame)
    z += s
    pg_list[start:pg_count[0]] = np.sort(pg_list[start:pg_count[0]])  # the map lists in order
    return synops, adds


def lava_conv_step(x, touched, count, rows, row_count, in_rows, memory, param, lava_k, lava_shift,
                   w_run, w8, l1, dz, z, geom, ev_ch, ev_val, px_list, px_start, vbuf, pg_list,
                   pg_count, pg_stamp, frame, prime, expand, out_touched, out_count, mgeom, smap,
                   wtap):
    """Encode as the pixel twins do, ``z += W s`` exactly, list the outputs."""
    from .numpy_twins import encode_pixels, encode_rows, list_rows
    from .pixel import Q_LAVA

    c_in = w_run.shape[1]
    if in_rows:
        n_px, n_ev = encode_rows(x, rows, row_count, c_in, memory, Q_LAVA, param, ev_ch, ev_val,
                                 px_list, px_start, lava_k, lava_shift)
    else:
        n_px, n_ev = encode_pixels(x, touched, count, memory, Q_LAVA, param, c_in, ev_ch, ev_val,
                                   px_list, px_start, lava_k, lava_shift)
    pg_count[0] = 0
    s, synops, adds = _step_sum(px_list, px_start, n_px, ev_ch, ev_val, _from_run(w_run, geom), geom,
                                pg_list, pg_count, pg_stamp, frame)
    z += s
    if len(mgeom):
        mgeom[1] = n_ev
    n_out = list_rows(pg_list, pg_count, pg_stamp, frame, len(z) // len(pg_stamp), prime, expand,
                      out_touched, out_count)
    return n_ev, synops, adds, n_out, n_px


def lava_dense_step(ev_idx, ev_val, n_events, w8, l1, dz, z):
    idx, vals = ev_idx[:n_events], ev_val[:n_events].astype(np.int64)
    z += vals @ w8[idx].astype(np.int64)
    return n_events * w8.shape[1], float(np.abs(vals).sum()) * w8.shape[1]
