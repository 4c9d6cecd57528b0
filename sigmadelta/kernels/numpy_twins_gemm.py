"""NumPy twins of gather-GEMM-scatter (:func:`sigmadelta.kernels.conv_gemm_pixels`) and of the
dense recompute's GEMM (:func:`sigmadelta.kernels.conv_gemm`) and of the 1x1 conv's dense path
(:func:`sigmadelta.kernels.conv1x1_dense`; see
:mod:`sigmadelta.kernels.numpy_twins`, which re-exports them; same signatures as the kernels) and
the inverse of the run layout that the pixel twins share."""

import numpy as np

from .numpy_twins_maps import _merge_touched

__all__ = ["conv_gemm", "conv_gemm_pixels", "conv1x1_dense", "direct_conv", "narrow_conv", "small_conv"]


def _from_run(w_run, geom):
    """Undo :func:`sigmadelta.kernels.pixel.run_layout` (``geom`` from ``make_geom``)."""
    sy, sx, kh, kw, cg = (int(v) for v in geom[[4, 5, 8, 9, 10]])
    w_cl = np.zeros((kh, kw, w_run.shape[1], cg), w_run.dtype)
    slots = w_run.reshape(kh, w_run.shape[1], kw, cg)
    for r in range(sx):
        n, off = int(geom[11 + r]), int(geom[11 + sx + r])
        for m in range(n):
            w_cl[:, r + m * sx] = slots[:, :, off + n - 1 - m]
    return w_cl


def conv_gemm_pixels(px_list, px_start, n_px, ev_ch, ev_val, gain, w_g, z, geom, gbuf,
                     pg_list, pg_count, pg_stamp, frame):
    """Per event group: its row of spikes ``d`` (``C_in``, times the gain), and for every tap
    ``(ky, kx)`` that reaches an output pixel ``q``: ``z[q] += d @ W[ky, kx]``, ``C_out`` synops
    per event of the group, ``C_out * sum |s|`` additions, and ``q`` reached."""
    h_in, w_in, h_out, w_out, sy, sx, py, px, kh, kw, cg = (int(v) for v in geom[:11])
    c_in = w_g.shape[0]
    w_run = np.asarray(w_g).reshape(c_in, kh, -1).transpose(1, 0, 2)
    acc = np.int64 if z.dtype.kind == "i" else np.float64
    w4 = _from_run(w_run, geom).astype(acc)  # [ky, kx, c, j]
    zz = np.zeros((h_out, w_out, cg), acc)
    reached = np.zeros((h_out, w_out), bool)
    synops, adds = 0, 0.0
    for g in range(n_px):
        e = slice(px_start[g], px_start[g + 1])
        vals = np.asarray(ev_val[e])
        d = np.zeros(c_in, acc)
        d[ev_ch[e]] = vals.astype(acc) * gain
        iy, ix = divmod(int(px_list[g]), w_in)
        for ky in range(kh):
            oy, ry = divmod(iy + py - ky, sy)
            for kx in range(kw):
                ox, rx = divmod(ix + px - kx, sx)
                if ry == 0 and rx == 0 and 0 <= oy < h_out and 0 <= ox < w_out:
                    zz[oy, ox] += d @ w4[ky, kx]
                    reached[oy, ox] = True
                    synops += cg * len(vals)
                    adds += cg * float(np.abs(vals.astype(np.float64)).sum())
    z += zz.reshape(-1).astype(z.dtype)
    _merge_touched(pg_list, pg_count, pg_stamp, reached, frame)
    return synops, adds


def conv_gemm(P, w_cl, z, bias, use_bias, cols, geom, c_in):
    """``z = [bias +] sum over taps of P[window] @ W[ky, kx]``, tap by tap on the padded input."""
    h_in, w_in, h_out, w_out, sy, sx, py, px, kh, kw, cg = (int(v) for v in geom[:11])
    img = np.asarray(P, np.float64).reshape(h_in + 2 * py, w_in + 2 * px, c_in)
    w4 = np.asarray(w_cl, np.float64).reshape(kh, kw, c_in, cg)
    out = np.zeros((h_out, w_out, cg))
    for ky in range(kh):
        for kx in range(kw):
            win = img[ky:ky + sy * (h_out - 1) + 1:sy, kx:kx + sx * (w_out - 1) + 1:sx]
            out += win @ w4[ky, kx]
    z[:] = out.ravel() + bias if use_bias else out.ravel()


def direct_conv(P, w_cl, z, bias, use_bias, geom, c_in, nv):
    """``z[oy, ox, j] = [bias +] sum over ky, kx, c of P[oy*sy + ky, ox*sx + kx, c] * W[ky, kx, c, j]``
    in float64 by ``np.einsum`` over the strided windows of the padded input (``nv``, the
    kernel's block choice, changes nothing here)."""
    h_in, w_in, h_out, w_out, sy, sx, py, px, kh, kw, cg = (int(v) for v in geom[:11])
    img = np.asarray(P, np.float64).reshape(h_in + 2 * py, w_in + 2 * px, c_in)
    w4 = np.asarray(w_cl, np.float64).reshape(kh, kw, c_in, cg)
    win = np.stack([np.stack([img[ky:ky + sy * (h_out - 1) + 1:sy, kx:kx + sx * (w_out - 1) + 1:sx]
                              for kx in range(kw)], 2) for ky in range(kh)], 2)  # [oy, ox, ky, kx, c]
    out = np.einsum("yxabc,abcj->yxj", win, w4).ravel()
    z[:] = out + bias if use_bias else out


def narrow_conv(P, w_cl, z, bias, use_bias, geom, c_in):
    """The same sums as :func:`direct_conv` (the kernel only orders them differently)."""
    direct_conv(P, w_cl, z, bias, use_bias, geom, c_in, 0)


def small_conv(P, w_cl, z, bias, use_bias, geom, c_in):
    """The same sums as :func:`direct_conv` (the kernel only orders them differently)."""
    direct_conv(P, w_cl, z, bias, use_bias, geom, c_in, 0)


def conv1x1_dense(x, memory, herding, param, gain, c_in, w_cl, bias, use_bias, z, geom, mem_w, rowbuf,
                  pg_list, pg_count, pg_stamp, frame):
    """Every input through the quantizer (herding: ``q = rint(k x)``; threshold: send ``x - m``
    where it is nonzero and at least the threshold), then ``z = bias + (gain * memory) @ W``
    as one matrix product in float64; the reached output pixels are the input pixels with
    an event, and every event reaches the ``C_out`` outputs of its pixel."""
    if herding == 1:
        q = np.rint(param * x.astype(np.float64))
        s = q - memory
        memory[:] = q
    else:
        d = x - memory
        send = (d != 0) & (np.abs(d) >= param)
        s = np.where(send, d, 0 * d)
        memory[send] = x[send]
    cg = int(geom[10])
    m = (memory * gain).astype(mem_w.dtype)
    mem_w[: len(x)] = m
    full = m.astype(np.float64).reshape(-1, c_in) @ np.asarray(w_cl, np.float64).reshape(c_in, cg)
    z[:] = (bias + full.ravel()) if use_bias else full.ravel()
    ev = s.reshape(-1, c_in) != 0
    pix = np.flatnonzero(ev.any(1))
    pg_list[pg_count[0]:pg_count[0] + len(pix)] = pix
    pg_count[0] += len(pix)
    pg_stamp[pix] = frame
    n_ev = int(ev.sum())
    return n_ev, n_ev * cg, float(np.abs(s).sum()) * cg, len(pix)
