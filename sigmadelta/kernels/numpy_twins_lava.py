"""NumPy twins of the integer-exact ``"lava"`` kernels (:mod:`sigmadelta.kernels.lavaint`; see
:mod:`sigmadelta.kernels.numpy_twins`, which re-exports them; same signatures as the kernels).

Each computes the step's synaptic sum ``W s`` in int64 by the obvious per-event, per-tap
conv, so the twins share no arithmetic width or order with the kernels."""

import numpy as np

from .numpy_twins_gemm import _from_run

__all__ = ["max_abs", "scatter_i32", "fold_i32", "scatter_f32", "fold_f32", "lava_map", "lava_encode_map",
           "lava_conv_step", "lava_dense_step", "dense_f32"]


def max_abs(v, n):
    return float(np.max(np.abs(v[:n]), initial=0.0))


def _step_sum(px_list, px_start, n_px, ev_ch, ev_val, w_cl, geom, pg_list, pg_count, pg_stamp, frame):
    """``(W s in int64 [n_out], synops, additions)`` event by event and tap by tap; lists the
    reached pixels after ``pg_count``."""
    h_in, w_in, h_out, w_out, sy, sx, py, px = (int(v) for v in geom[:8])
    kh, kw, _, cg = w_cl.shape
    w = w_cl.astype(np.int64)
    dz = np.zeros((h_out * w_out, cg), np.int64)
    synops, adds, reached = 0, 0.0, []
    for p in range(n_px):
        iy, ix = divmod(int(px_list[p]), w_in)
        for e in range(px_start[p], px_start[p + 1]):
            s = int(ev_val[e])
            for ky in range(kh):
                for kx in range(kw):
                    ny, nx = iy + py - ky, ix + px - kx
                    if ny < 0 or nx < 0 or ny % sy or nx % sx or ny // sy >= h_out or nx // sx >= w_out:
                        continue
                    q = (ny // sy) * w_out + nx // sx
                    dz[q] += s * w[ky, kx, ev_ch[e]]
                    synops += cg
                    adds += abs(s) * cg
                    if pg_stamp[q] != frame:
                        pg_stamp[q] = frame
                        reached.append(q)
    pg_list[pg_count[0]:pg_count[0] + len(reached)] = reached
    pg_count[0] += len(reached)
    return dz.ravel(), synops, adds


def _encode(x, idx, memory, param, lava_k, lava_shift):
    """Lava's delta encoding of the neurons ``idx`` in order: ``[(neuron, message)]`` sent."""
    out = []
    for i in idx:
        a = lava_k * x[i]
        d = a - memory[i]
        if d != 0 and abs(d) >= param:
            memory[i] = a
            s = np.floor(d / 2.0 ** lava_shift)
            if s != 0:
                out.append((int(i), s))
    return out


def scatter_i32(px_list, px_start, n_px, ev_ch, ev_val, w8, dz, geom, c_in, pg_list, pg_count,
                pg_stamp, frame):
    kh, kw, cg = (int(v) for v in geom[8:11])
    w_cl = _from_run(w8[:kh * c_in * kw * cg].reshape(kh, c_in, -1).astype(np.int64), geom)  # unpadded
    s, synops, adds = _step_sum(px_list, px_start, n_px, ev_ch, ev_val, w_cl, geom, pg_list, pg_count,
                                pg_stamp, frame)
    dz[:] = (dz.astype(np.int64) + s).astype(np.int32)
    return synops, adds


def fold_i32(z, dz, pg_list, pg_count, cg):
    for q in pg_list[: pg_count[0]]:
        z[q * cg:(q + 1) * cg] += dz[q * cg:(q + 1) * cg]
        dz[q * cg:(q + 1) * cg] = 0


def scatter_f32(px_list, px_start, n_px, ev_ch, ev_val, w32, dz, geom, c_in, pg_list, pg_count,
                pg_stamp, frame):
    kh, kw, cg = (int(v) for v in geom[8:11])
    w_cl = _from_run(w32[:kh * c_in * kw * cg].reshape(kh, c_in, -1).astype(np.int64), geom)
    s, synops, adds = _step_sum(px_list, px_start, n_px, ev_ch, ev_val, w_cl, geom, pg_list, pg_count,
                                pg_stamp, frame)
    dz[:len(s)] = (dz[:len(s)].astype(np.int64) + s).astype(np.float32)
    return synops, adds


def fold_f32(z, dz, pg_list, pg_count, cg):
    fold_i32(z, dz, pg_list, pg_count, cg)


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


def lava_encode_map(x, memory, param, lava_k, lava_shift, geom, mgeom, buf, c_in, ev_val):
    h_in, w_in, py, px = (int(geom[i]) for i in (0, 1, 6, 7))
    wp, n_pp, n = int(mgeom[0]), int(mgeom[-1]), len(memory)
    s = np.zeros(n)
    for i, v in _encode(x, range(n), memory, param, lava_k, lava_shift):
        s[i] = v
    ev_val[:n] = s
    sp = s.reshape(h_in, w_in, c_in)
    buf[:n_pp * c_in].reshape(-1, wp, c_in)[py:py + h_in, px:px + w_in] = sp
    buf[n_pp * c_in:n_pp * (c_in + 1)].reshape(-1, wp)[py:py + h_in, px:px + w_in] = (sp != 0).any(-1)
    f = np.outer(mgeom[2:2 + h_in], mgeom[2 + h_in:2 + h_in + w_in])  # the pixels' fan
    nz = (sp != 0).sum(-1)
    return (int((nz > 0).sum()), int(nz.sum()), int((f * nz).sum()),
            float((f * np.abs(sp).sum(-1)).sum()), float(np.abs(s).max(initial=0.0)))


def lava_conv_step(x, touched, count, rows, row_count, in_rows, memory, param, lava_k, lava_shift,
                   w_run, w8, l1, dz, z, geom, ev_ch, ev_val, px_list, px_start, vbuf, pg_list,
                   pg_count, pg_stamp, frame, prime, expand, out_touched, out_count, mgeom, smap,
                   wtap):
    """Encode (by pixel runs), ``z += W s`` exactly, list the outputs (sorted; all if ``prime``)."""
    c_in = w_run.shape[1]
    idx = ((rows[: row_count[0], None] * c_in + np.arange(c_in)).ravel() if in_rows else
           touched[: count[0]])
    sent = _encode(x, idx, memory, param, lava_k, lava_shift)
    runs = [0] + [e for e in range(1, len(idx)) if idx[e] // c_in != idx[e - 1] // c_in]
    has = {i for i, _ in sent}
    ends = runs[1:] + [len(idx)]
    n_px = sum(any(int(i) in has for i in idx[r:r1]) for r, r1 in zip(runs, ends, strict=True))
    ev = np.array(sent, dtype=np.float64).reshape(-1, 2)
    pix, ch = ev[:, 0].astype(np.int64) // c_in, ev[:, 0].astype(np.int64) % c_in
    starts = [e for e in range(len(pix)) if e == 0 or pix[e] != pix[e - 1]]
    pg_count[0] = 0
    s, synops, adds = _step_sum(pix[starts], np.array(starts + [len(pix)]), len(starts), ch, ev[:, 1],
                                _from_run(w_run, geom), geom, pg_list, pg_count, pg_stamp, frame)
    z += s
    if len(mgeom):
        mgeom[1] = len(sent)
    n_pix = len(pg_stamp)
    listed = np.arange(n_pix) if prime else np.sort(pg_list[: pg_count[0]])
    pg_list[: len(listed)] = listed
    pg_count[0] = len(listed)
    c_out = len(z) // n_pix
    if expand:
        out_touched[: len(listed) * c_out] = (listed[:, None] * c_out + np.arange(c_out)).ravel()
        out_count[0] = len(listed) * c_out
    return len(sent), synops, adds, len(listed) * c_out, n_px


def lava_dense_step(ev_idx, ev_val, n_events, w8, l1, dz, z):
    idx, vals = ev_idx[:n_events], ev_val[:n_events].astype(np.int64)
    z += vals @ w8[idx].astype(np.int64)
    return n_events * w8.shape[1], float(np.abs(vals).sum()) * w8.shape[1]


def dense_f32(ev_idx, ev_val, n_events, w8, dz):
    dz[:] = ev_val[:n_events].astype(np.int64) @ w8[ev_idx[:n_events]].astype(np.int64)
