"""Event scatter into weight layers: the synaptic operations (sigma)."""

from numba import njit

__all__ = ["dense_scatter", "conv_scatter", "convt_scatter", "expand_pixel_groups"]


@njit(cache=True, nogil=True)
def dense_scatter(ev_idx, ev_val, n_events, gain, w_t, z):
    """Integrate events into a fully connected layer.

    For each event ``(i, s)``: ``z[:] += gain * s * W[:, i]`` with ``w_t = W.T``
    (``[in, out]``, so the row of input ``i`` is contiguous).

    Returns
    -------
    synops : int
        ``n_events * n_out``.
    additions : float
        ``sum(|s|) * n_out`` (additions a unary, integer-spike receiver performs).
    """
    n_out = w_t.shape[1]
    mag = 0.0
    for e in range(n_events):
        i = ev_idx[e]
        v = ev_val[e] * gain
        mag += abs(ev_val[e])
        for j in range(n_out):
            z[j] += v * w_t[i, j]
    return n_events * n_out, mag * n_out


@njit(cache=True, nogil=True)
def conv_scatter(
    ev_idx, ev_val, n_events, gain, w_cl, z, in_hw, out_hw, stride, padding, dilation,
    groups, pg_list, pg_count, pg_stamp, frame,
):
    """Integrate events into a 2-D convolution, channels-last.

    An event ``(i, s)`` at input pixel ``(iy, ix)``, channel ``c`` (group
    ``g = c // (C_in/groups)``) reaches every output pixel ``(oy, ox)`` with
    ``oy*sy - py + ky*dy == iy`` and ``ox*sx - px + kx*dx == ix`` for some tap
    ``(ky, kx)`` inside the output: ``z[oy, ox, g*Cg:(g+1)*Cg] += gain*s*w_cl[ky, kx, c, :]``
    with ``w_cl[ky, kx, c, j] = W[g*Cg + j, c - g*C_in/groups, ky, kx]``.
    The (pixel, group) pairs reached are listed once each in ``pg_list``.

    Returns
    -------
    synops : int
        In-bounds fan-out summed over events (taps inside the output x Cg).
    additions : float
        The same, weighted by ``|s|``.
    """
    kh, kw, c_in, cg = w_cl.shape
    w_in = in_hw[1]
    h_out, w_out = out_hw[0], out_hw[1]
    sy, sx, py, px, dy, dx = stride[0], stride[1], padding[0], padding[1], dilation[0], dilation[1]
    c_out = cg * groups
    c_in_g = c_in // groups
    synops = 0
    adds = 0.0
    npg = pg_count[0]
    lo, hi, iy, ix, row0 = 0, 0, 0, 0, -w_in - 1  # the current event's pixel: its neurons [lo, hi)
    for e in range(n_events):
        i = ev_idx[e]
        if i < lo or i >= hi or e == 0:  # events mostly come by pixel, rows in order: rarely divide
            p = i // c_in
            lo, hi = p * c_in, p * c_in + c_in
            if p < row0 or p >= row0 + w_in:
                iy = p // w_in
                row0 = iy * w_in
            ix = p - row0
        c = i - lo
        g = c if c_in_g == 1 else c // c_in_g  # depthwise: no division
        v = ev_val[e] * gain
        fan = 0
        for ky in range(kh):
            ny = iy + py - ky * dy
            if ny < 0:
                continue
            oy, ry = _divmod(ny, sy)
            if ry != 0 or oy >= h_out:
                continue
            for kx in range(kw):
                nx = ix + px - kx * dx
                if nx < 0:
                    continue
                ox, rx = _divmod(nx, sx)
                if rx != 0 or ox >= w_out:
                    continue
                q = oy * w_out + ox
                base = q * c_out + g * cg
                for j in range(cg):
                    z[base + j] += v * w_cl[ky, kx, c, j]
                fan += cg
                pg = q * groups + g
                if pg_stamp[pg] != frame:
                    pg_stamp[pg] = frame
                    pg_list[npg] = pg
                    npg += 1
        synops += fan
        adds += abs(ev_val[e]) * fan
    pg_count[0] = npg
    return synops, adds


@njit(cache=True, nogil=True, inline="always")
def _divmod(a, s):
    """``(a // s, a % s)`` for ``a >= 0``, without a division for strides 1 and 2 (an integer
    division costs 14-46 cycles on the CPUs measured, several per event and tap)."""
    if s == 1:
        return a, 0
    if s == 2:
        return a >> 1, a & 1
    q = a // s
    return q, a - q * s


@njit(cache=True, nogil=True)
def convt_scatter(
    ev_idx, ev_val, n_events, gain, w_cl, z, in_hw, out_hw, stride, padding, dilation,
    groups, pg_list, pg_count, pg_stamp, frame,
):
    """Integrate events into a transposed 2-D convolution, channels-last.

    An event ``(i, s)`` at input pixel ``(iy, ix)``, channel ``c`` (group ``g``) adds
    ``gain*s*w_cl[ky, kx, c, :]`` to the ``Cg`` channels of group ``g`` at output pixel
    ``(iy*sy - py + ky*dy, ix*sx - px + kx*dx)`` for every tap ``(ky, kx)`` landing inside
    the output, with ``w_cl[ky, kx, c, j] = W[c, j, ky, kx]`` (PyTorch's ``[in, out/groups,
    kh, kw]``). The (pixel, group) pairs reached are listed once each in ``pg_list``.

    Returns
    -------
    synops : int
        Fan-out actually added, summed over events (in-bounds taps x Cg).
    additions : float
        The same, weighted by ``|s|``.
    """
    kh, kw, c_in, cg = w_cl.shape
    w_in = in_hw[1]
    h_out, w_out = out_hw[0], out_hw[1]
    c_out = cg * groups
    c_in_g = c_in // groups
    synops = 0
    adds = 0.0
    npg = pg_count[0]
    for e in range(n_events):
        i = ev_idx[e]
        c = i % c_in
        p = i // c_in
        iy = p // w_in
        ix = p % w_in
        g = c // c_in_g
        v = ev_val[e] * gain
        fan = 0
        for ky in range(kh):
            oy = iy * stride[0] - padding[0] + ky * dilation[0]
            if oy < 0 or oy >= h_out:
                continue
            for kx in range(kw):
                ox = ix * stride[1] - padding[1] + kx * dilation[1]
                if ox < 0 or ox >= w_out:
                    continue
                q = oy * w_out + ox
                base = q * c_out + g * cg
                for j in range(cg):
                    z[base + j] += v * w_cl[ky, kx, c, j]
                fan += cg
                pg = q * groups + g
                if pg_stamp[pg] != frame:
                    pg_stamp[pg] = frame
                    pg_list[npg] = pg
                    npg += 1
        synops += fan
        adds += abs(ev_val[e]) * fan
    pg_count[0] = npg
    return synops, adds


@njit(cache=True, nogil=True)
def expand_pixel_groups(pg_list, pg_count, groups, cg, touched, count):
    """List the neurons of every touched (pixel, group): ``p*C + g*Cg + j``.

    With ``C = groups * Cg`` and ``pg = p*groups + g``, ``p*C + g*Cg = pg * Cg``: no division.
    """
    if cg == 1:  # one neuron per (pixel, group), e.g. a depthwise conv: a copy that vectorises
        n = pg_count[0]
        for t in range(n):
            touched[t] = pg_list[t]
        count[0] = n
        return
    n = 0
    for t in range(pg_count[0]):
        base = pg_list[t] * cg
        for j in range(cg):
            touched[n] = base + j
            n += 1
    count[0] = n
