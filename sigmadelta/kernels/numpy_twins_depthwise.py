"""NumPy twin of :func:`sigmadelta.kernels.depthwise.depthwise_dense` (re-exported by
:mod:`sigmadelta.kernels.numpy_twins`; same signature as the kernel)."""

import numpy as np

__all__ = ["depthwise_dense"]


def _encode_all(x, memory, herding, param):
    """Every input through the quantizer: the spikes ``s``; ``memory`` updated in place."""
    if herding:
        q = np.rint(param * x)
        s = q - memory
        memory[:] = q
        return s
    d = x - memory
    send = (d != 0) & (np.abs(d) >= param)
    memory[send] = x[send]
    return np.where(send, d, 0 * d)


def depthwise_dense(x, memory, herding, param, gain, w_cl, bias, use_bias, z, in_hw, out_hw, stride,
                    padding, dilation, mem_w, flag_w, fan_y, fan_x, hit, mag, pg_list, pg_count):
    """Tap by tap on whole images: ``z = bias + sum_taps gain * memory[tap's input] * W[tap]``;
    an output (pixel, group) is reached when an input of its window on that channel spiked."""
    kh, kw, c, cg = w_cl.shape
    (h_in, w_in), (h_out, w_out) = (int(v) for v in in_hw), (int(v) for v in out_hw)
    s = _encode_all(x, memory, herding, param).reshape(h_in, w_in, c)
    acc = np.int64 if z.dtype.kind == "i" else np.float64
    m = (memory.reshape(h_in, w_in, c) * gain).astype(acc)
    zz = np.zeros((h_out, w_out, c, cg), acc)
    reached = np.zeros((h_out, w_out, c), bool)
    fan = np.zeros((h_in, w_in), np.int64)
    for oy in range(h_out):
        for ox in range(w_out):
            for ky in range(kh):
                iy = oy * stride[0] - padding[0] + ky * dilation[0]
                for kx in range(kw):
                    ix = ox * stride[1] - padding[1] + kx * dilation[1]
                    if 0 <= iy < h_in and 0 <= ix < w_in:
                        zz[oy, ox] += m[iy, ix, :, None] * w_cl[ky, kx].astype(acc)
                        reached[oy, ox] |= s[iy, ix] != 0
                        fan[iy, ix] += 1
    out = zz.reshape(-1)
    z[:] = (bias.astype(acc) + out if use_bias else out).astype(z.dtype)
    n_ev = int((s != 0).sum())
    synops = int(((s != 0).sum(-1) * fan).sum()) * cg
    adds = float((np.abs(s).sum(-1) * fan).sum()) * cg
    idx = np.flatnonzero(reached.reshape(-1))
    pg_list[pg_count[0]:pg_count[0] + len(idx)] = idx
    pg_count[0] += len(idx)
    return n_ev, synops, adds
