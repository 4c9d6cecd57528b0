"""Updates of the non-weight nodes for the neurons touched this frame."""

import math

import numpy as np
from numba import njit

from .prefetch import prefetch

__all__ = [
    "FULL_PASS_ABOVE", "ADD_FULL_ABOVE", "ROWS_FULL_ABOVE", "CHEAP_MAX", "pointwise", "activation_update",
    "activation_rows", "add_update", "add_rows", "mul_update",
    "concat_update", "flatten_update", "upsample_update", "fixed_point_update", "fixed_point_guard",
]

RELU, LEAKY, CLIP, IDENTITY = 0, 1, 2, 3
SIGMOID, TANH, GELU, GELU_TANH, SILU, HARDSWISH, HARDSIGMOID, ELU, SOFTPLUS, MISH = range(4, 14)
#: the cheap activation codes are ``0..CHEAP_MAX`` (relu, leaky, clip, identity); the others
#: (sigmoid, tanh, gelu, ...) are "smooth": their code is compiled only with ``smooth`` set
CHEAP_MAX = IDENTITY
_SQRT_HALF = 0.7071067811865476
_SQRT_2_OVER_PI = 0.7978845608028654


@njit(cache=True, nogil=True, inline="always")
def pointwise(v, fn, alpha, lo, hi):
    """``f(v)`` of activation code ``fn`` (any pointwise function: a sigma-delta neuron
    recomputes it whenever its input changes).

    0 relu ``max(v, 0)``; 1 leaky ``v if v > 0 else alpha*v``; 2 clip ``min(max(v, lo), hi)``;
    3 identity; 4 sigmoid ``1/(1 + exp(-v))``; 5 tanh; 6 gelu ``v/2 (1 + erf(v/sqrt 2))``;
    7 gelu with PyTorch's tanh approximation; 8 silu ``v sigmoid(v)``; 9 hardswish
    ``v min(max(v + 3, 0), 6)/6``; 10 hardsigmoid ``min(max(v + 3, 0), 6)/6``; 11 elu
    ``v if v > 0 else alpha (exp(v) - 1)``; 12 softplus ``log(1 + exp(alpha v))/alpha``
    (``v`` where ``alpha v > hi``); 13 mish ``v tanh(softplus(v))``.
    """
    if fn == 0:
        return v if v > 0.0 else 0.0
    if fn == 1:
        return v if v > 0.0 else alpha * v
    if fn == 2:
        return min(max(v, lo), hi)
    if fn == 4:
        return 1.0 / (1.0 + math.exp(-v))
    if fn == 5:
        return math.tanh(v)
    if fn == 6:
        return 0.5 * v * (1.0 + math.erf(v * _SQRT_HALF))
    if fn == 7:
        return 0.5 * v * (1.0 + math.tanh(_SQRT_2_OVER_PI * (v + 0.044715 * v * v * v)))
    if fn == 8:
        return v / (1.0 + math.exp(-v))
    if fn == 9:
        return v * min(max(v + 3.0, 0.0), 6.0) / 6.0
    if fn == 10:
        return min(max(v + 3.0, 0.0), 6.0) / 6.0
    if fn == 11:
        return v if v > 0.0 else alpha * (math.exp(v) - 1.0)
    if fn == 12:
        return v if alpha * v > hi else math.log1p(math.exp(alpha * v)) / alpha
    if fn == 13:
        return v * math.tanh(v if v > 20.0 else math.log1p(math.exp(v)))
    return v


#: busy lists: above this fraction of the neurons touched, a cheap activation (relu, leaky,
#: clip, identity) runs one contiguous pass over every neuron instead of the indexed one
#: (131072 neurons, 90% of them listed by pixels of 32 channels: relu 1.26 ms indexed,
#: 0.024 ms contiguous; clip 0.43 ms indexed)
FULL_PASS_ABOVE = 1 / 16
#: the same for a residual add, on the sum of its two inputs' counts (the add also lists
#: the union: 0.53 -> 0.34 ms at 85% and 60% listed)
ADD_FULL_ABOVE = 1 / 4
#: the same for an activation listed by pixel rows (:func:`activation_rows`), whose rows cost
#: less per neuron than an index list: relu on 784 pixels of 24 channels, 700 listed 16.7 us,
#: 392 listed 10.1 us by rows, 4.3 us contiguous; on 2048 pixels of 64 channels, 1024 listed
#: 34.5 us by rows, 36.9 us contiguous (thread CPU time, 2-vCPU Intel Xeon VM, AVX-512, load 4)
ROWS_FULL_ABOVE = 1 / 2


@njit(cache=True, nogil=True, inline="always")
def _cheap(v, fn, alpha, lo, hi):
    """:func:`pointwise` of a cheap code (``0..CHEAP_MAX``): relu, leaky, clip, else identity."""
    if fn == RELU:
        return v if v > 0.0 else 0.0
    if fn == LEAKY:
        return v if v > 0.0 else alpha * v
    if fn == CLIP:
        return min(max(v, lo), hi)
    return v


@njit(cache=True, nogil=True)
def _smooth_rows(x, y, rows, n_rows, c, fn, alpha, lo, hi):
    """``y = f(x)`` (:func:`pointwise`) on the ``c`` neurons of each pixel ``rows[:n_rows]``
    (``c = 1``: a neuron list), or on every neuron where the rows cover the map: the smooth
    codes, compiled only where flag ``smooth`` is set (a function of its own: :func:`pointwise`
    inlined into the kernels' call sites cost about 0.35 s of compile per kernel even where
    ``smooth is None`` then pruned it, as the callee's IR is built first)."""
    if n_rows * c == x.shape[0]:
        for j in range(x.shape[0]):
            y[j] = pointwise(x[j], fn, alpha, lo, hi)
        return
    line = max(1, 64 // x.itemsize)
    for r in range(n_rows):
        if c > 1 and r + 6 < n_rows:  # cold rows: fetch a few pixels ahead
            ahead = rows[r + 6] * c
            for j in range(0, c, line):
                prefetch(x, ahead + j)
                prefetch(y, ahead + j)
        b = rows[r] * c
        for j in range(b, b + c):
            y[j] = pointwise(x[j], fn, alpha, lo, hi)


@njit(cache=True, nogil=True, inline="always")
def _smooth_code(fn, smooth):
    """Whether ``fn`` is a smooth code (above ``CHEAP_MAX``) to run, where the kernel has them
    (``smooth`` 1); a smooth code in a kernel compiled without them (``smooth`` None) raises."""
    if smooth is None:
        if fn > CHEAP_MAX:
            raise RuntimeError("sigmadelta: a smooth activation in a frame loop compiled without them")
        return False
    return fn > CHEAP_MAX


@njit(cache=True, nogil=True)
def activation_update(x, y, touched, count, fn, alpha, lo, hi, smooth):
    """``y_i = f(x_i)`` for the touched ``i`` (``f``: :func:`pointwise` code ``fn``).

    Every neuron touched (the list holds each neuron once, so ``count == len(x)``; a layer
    that ran its dense path lists them all), or a cheap ``f`` (codes ``0..CHEAP_MAX``) and more
    than :data:`FULL_PASS_ABOVE` of them touched: one contiguous pass over every neuron
    (:func:`_activation_run`) instead of the indexed one. The engine keeps ``y = f(x)`` on
    every neuron (the first frame touches all, and an untouched ``x_i`` keeps its value), so
    the untouched ones are rewritten with the value they hold. ``smooth``: None compiles the
    cheap codes only (a smooth ``fn`` raises RuntimeError), 1 every code (:func:`_smooth_rows`)."""
    n = count[0]
    if _smooth_code(fn, smooth):
        if smooth is not None:  # pruned at compile time where None
            _smooth_rows(x, y, touched, n, 1, fn, alpha, lo, hi)
        return
    if n == x.shape[0] or n > FULL_PASS_ABOVE * x.shape[0]:
        _activation_run(x, y, fn, alpha, lo, hi)
        return
    for t in range(n):
        i = touched[t]
        y[i] = _cheap(x[i], fn, alpha, lo, hi)


@njit(cache=True, nogil=True, inline="always")
def _activation_run(xs, ys, fn, alpha, lo, hi):
    """``ys = f(xs)`` over contiguous arrays of a cheap code (ReLU, leaky ReLU and clip as
    their own loops, which vectorise). Clip compares with its bounds rounded to the values'
    precision: for float32 the same results as clipping in double and rounding once (rounding
    is monotonic, and a value between a bound and its rounding is that rounding), on twice
    the lanes without conversions (relu6 on 96 channels at 32x32, float32, isolated, thread
    CPU time, 2-vCPU Intel Xeon VM (AVX-512), load 2.6: 0.026 -> 0.020 ms, as ReLU's)."""
    if fn == RELU:
        for j in range(xs.shape[0]):
            ys[j] = xs[j] if xs[j] > 0.0 else 0.0
    elif fn == LEAKY:
        for j in range(xs.shape[0]):
            ys[j] = xs[j] if xs[j] > 0.0 else alpha * xs[j]
    elif fn == CLIP:  # bounds in the values' precision: the same results (see the docstring)
        lo1, hi1 = ys.dtype.type(lo), ys.dtype.type(hi)
        for j in range(xs.shape[0]):
            ys[j] = min(max(xs[j], lo1), hi1)
    else:  # a loop, not ys[:] = xs: a slice copy compiles Numba's shape-error formatting
        for j in range(xs.shape[0]):
            ys[j] = xs[j]


@njit(cache=True, nogil=True)
def activation_rows(x, y, rows, row_count, c, fn, alpha, lo, hi, smooth):
    """:func:`activation_update` on every channel of the pixels ``rows[:row_count[0]]``.

    ``y[p*c + j] = f(x[p*c + j])`` for ``j < c``: contiguous rows, no index list. Rows (each
    listed once) that cover the whole map, or a cheap ``f`` (codes ``0..CHEAP_MAX``) on more
    than :data:`ROWS_FULL_ABOVE` of it: one contiguous pass over every neuron instead, as
    :func:`activation_update` does (the untouched ones are rewritten with the value they
    hold; 2-vCPU Xeon, AVX-512, float32: relu on 8x35x43, every row, 0.034 -> 0.004 ms;
    32x64x64, every row, 0.07-0.1 -> 0.02 ms). ``smooth`` as in :func:`activation_update`.
    """
    n_rows = row_count[0]
    if _smooth_code(fn, smooth):
        if smooth is not None:  # pruned at compile time where None
            _smooth_rows(x, y, rows, n_rows, c, fn, alpha, lo, hi)
        return
    if n_rows * c == x.shape[0] or n_rows * c > ROWS_FULL_ABOVE * x.shape[0]:
        _activation_run(x, y, fn, alpha, lo, hi)
        return
    line = max(1, 64 // x.itemsize)
    for r in range(n_rows):
        if r + 6 < n_rows:  # cold rows: fetch a few pixels ahead
            ahead = rows[r + 6] * c
            for j in range(0, c, line):
                prefetch(x, ahead + j)
                prefetch(y, ahead + j)
        b = rows[r] * c
        _activation_run(x[b:b + c], y[b:b + c], fn, alpha, lo, hi)


@njit(cache=True, nogil=True)
def add_update(a, b, y, touched_a, count_a, touched_b, count_b, touched, count, stamp, frame):
    """``y_i = a_i + b_i`` for ``i`` touched in ``a`` or ``b``; lists the union.

    One input with every neuron touched (each listed once, so its count is ``len(y)``): the
    union is every neuron, listed in order, and the sum runs as one contiguous pass. Busy
    lists (together more than :data:`ADD_FULL_ABOVE` of ``len(y)``): stamp both lists, then
    one contiguous pass sums every neuron (the engine keeps ``y = a + b`` on every neuron, so
    the untouched ones keep their value) and lists the stamped ones, in increasing order."""
    n_all = y.shape[0]
    if count_a[0] == n_all or count_b[0] == n_all:
        for i in range(n_all):
            y[i] = a[i] + b[i]
            touched[i] = i
        count[0] = n_all
        return
    if count_a[0] + count_b[0] > ADD_FULL_ABOVE * n_all:
        _stamp(touched_a, count_a[0], stamp, frame)
        _stamp(touched_b, count_b[0], stamp, frame)
        n = 0
        for i in range(n_all):  # branchless listing: n <= i
            y[i] = a[i] + b[i]
            touched[n] = i
            n += stamp[i] == frame
        count[0] = n
        return
    n = 0
    for t in range(count_a[0]):
        i = touched_a[t]
        if stamp[i] != frame:
            stamp[i] = frame
            touched[n] = i
            n += 1
    for t in range(count_b[0]):
        i = touched_b[t]
        if stamp[i] != frame:
            stamp[i] = frame
            touched[n] = i
            n += 1
    for t in range(n):
        i = touched[t]
        y[i] = a[i] + b[i]
    count[0] = n


@njit(cache=True, nogil=True)
def add_rows(a, b, y, rows_a, count_a, rows_b, count_b, c, rows, row_count, expand, touched, count,
             pstamp, frame):
    """:func:`add_update` on inputs listed by pixel rows: ``y_i = a_i + b_i`` on every channel
    of the pixels ``rows_a[:count_a[0]]`` and ``rows_b[:count_b[0]]`` (each a pixel conv's or
    its activation's ``rows``, ``c`` channels a pixel); the union of the pixels is listed in
    ``rows[:row_count[0]]`` and, if ``expand``, per neuron in ``touched[:count[0]]``.

    The lists are the ones :func:`add_update` makes from the two inputs' neuron lists (each
    pixel's ``c`` neurons in row order): busy (more than :data:`ADD_FULL_ABOVE` of the neurons
    in the two counts together) in increasing order, after one contiguous pass summing every
    neuron; otherwise the rows of ``a``, then those of ``b`` not already listed, summed row by
    row. ``pstamp[p]`` (one per pixel: the engine passes the output's neuron stamps, which
    the add by rows uses for nothing else) marks the pixels listed at ``frame``. Stamping and
    listing pixels instead of neurons (the activation and global pooling after it read the
    rows): the ResNet block's add (131072 neurons, 85-90% listed) 0.27 -> 0.08 ms per frame
    (thread CPU time, 2-vCPU AMD EPYC VM, Zen 4, float32, load average 4.3)."""
    n_all = y.shape[0]
    n_pix = n_all // c
    na, nb = count_a[0], count_b[0]
    if na == n_pix or nb == n_pix or (na + nb) * c > ADD_FULL_ABOVE * n_all:
        full = na == n_pix or nb == n_pix
        if not full:
            _stamp(rows_a, na, pstamp, frame)
            _stamp(rows_b, nb, pstamp, frame)
        for i in range(n_all):
            y[i] = a[i] + b[i]
        n = 0
        for p in range(n_pix):  # branchless listing: n <= p (rows holds n_pix + 1)
            rows[n] = p
            n += full or pstamp[p] == frame
    else:
        n = _rows_union(a, b, y, rows_a, na, c, rows, 0, pstamp, frame)
        n = _rows_union(a, b, y, rows_b, nb, c, rows, n, pstamp, frame)
    row_count[0] = n
    if expand:
        for r in range(n):
            base = rows[r] * c
            for j in range(c):
                touched[r * c + j] = base + j
        count[0] = n * c


@njit(cache=True, nogil=True, inline="always")
def _rows_union(a, b, y, in_rows, n_in, c, rows, n, pstamp, frame):
    """Sum and list (from ``rows[n]`` on) the pixels of ``in_rows[:n_in]`` not yet stamped
    ``frame``; returns the new length of the list."""
    for r in range(n_in):
        p = in_rows[r]
        if pstamp[p] != frame:
            pstamp[p] = frame
            base = p * c
            for j in range(c):
                y[base + j] = a[base + j] + b[base + j]
            rows[n] = p
            n += 1
    return n


@njit(cache=True, nogil=True, inline="always")
def _stamp(lst, n, stamp, frame):
    """``stamp[lst[:n]] = frame``."""
    for t in range(n):
        stamp[lst[t]] = frame


@njit(cache=True, nogil=True)
def mul_update(a, b, y, touched_a, count_a, touched_b, count_b, c, per_channel, touched, count, stamp,
               frame):
    """``y_i = a_i * b_i`` (``b_{i mod c}`` if ``per_channel``: one gate per channel,
    channels-last) for ``i`` touched in ``a``, or whose ``b`` (every pixel of a touched
    channel) was touched; lists the union."""
    n = 0
    for t in range(count_a[0]):
        i = touched_a[t]
        if stamp[i] != frame:
            stamp[i] = frame
            touched[n] = i
            n += 1
    n_pix = y.shape[0] // c if per_channel else 1
    for t in range(count_b[0]):
        j = touched_b[t]
        for p in range(n_pix):
            i = p * c + j if per_channel else j
            if stamp[i] != frame:
                stamp[i] = frame
                touched[n] = i
                n += 1
    for t in range(n):
        i = touched[t]
        y[i] = a[i] * (b[i % c] if per_channel else b[i])
    count[0] = n


@njit(cache=True, nogil=True)
def concat_update(x, touched_in, count_in, c_in, offset, c_out, y, touched, count):
    """Copy an input's touched neurons into the concatenation, channels-last.

    Input neuron ``p*c_in + c`` becomes output neuron ``p*c_out + offset + c``.
    Appends to ``touched`` (inputs occupy disjoint channel ranges, so no duplicates).
    """
    n = count[0]
    for t in range(count_in[0]):
        i = touched_in[t]
        p = i // c_in
        o = p * c_out + offset + (i - p * c_in)
        y[o] = x[i]
        touched[n] = o
        n += 1
    count[0] = n


@njit(cache=True, nogil=True)
def flatten_update(x, touched_in, count_in, hw, c, y, touched, count):
    """Channels-last ``[H*W, C]`` to PyTorch's flat order ``c*H*W + p``. A touched neuron that
    follows the last one (``i = prev + 1``) steps its pixel and channel on instead of dividing
    (a division per neuron was most of the cost on a busy layer)."""
    n = 0
    p, ch, prev = 0, 0, -2
    for t in range(count_in[0]):
        i = touched_in[t]
        if i == prev + 1:
            ch += 1
            if ch == c:
                ch = 0
                p += 1
        else:
            p = i // c
            ch = i - p * c
        prev = i
        o = ch * hw + p
        y[o] = x[i]
        touched[n] = o
        n += 1
    count[0] = n


@njit(cache=True, nogil=True)
def upsample_update(x, touched_in, count_in, w_in, c, sh, sw, y, touched, count):
    """Nearest upsampling, channels-last: input neuron ``(p, ch)`` at pixel ``p = r*w_in + q``
    is copied to the outputs ``((r*sh + dy)*w_in*sw + q*sw + dx)*c + ch`` (``dy < sh``,
    ``dx < sw``), which are listed (each output has one source: no duplicates)."""
    w_out = w_in * sw
    n = 0
    for t in range(count_in[0]):
        i = touched_in[t]
        p = i // c
        ch = i - p * c
        r = p // w_in
        q = p - r * w_in
        v = x[i]
        for dy in range(sh):
            base = (r * sh + dy) * w_out + q * sw
            for dx in range(sw):
                o = (base + dx) * c + ch
                y[o] = v
                touched[n] = o
                n += 1
    count[0] = n


@njit(cache=True, nogil=True)
def fixed_point_update(acc, touched, count, c, bias, z, limit):
    """Real pre-activations of touched neurons from integer accumulators.

    ``z_i = acc_i * c + bias_i`` with ``c = weight_scale / k``. Returns the first
    touched neuron whose ``|acc_i| > limit`` (an overflow of the accumulator's
    signed range), or -1.
    """
    bad = -1
    for t in range(count[0]):
        i = touched[t]
        a = acc[i]
        if bad < 0 and (a > limit or a < -limit - 1):
            bad = i
        z[i] = a * c + bias[i]
    return bad


@njit(cache=True, nogil=True)
def fixed_point_guard(x, rows, row_count, row_len, k, qmax):
    """First touched input whose spike total would leave the exact int64 range, or -1.

    The inputs touched this frame are ``rows[r]*row_len + j`` for ``r < row_count[0]``,
    ``j < row_len`` (``row_len = 1``: a plain neuron list). Input ``i`` fails when
    ``|round(k * x_i)| > qmax`` (or is not finite); ``qmax`` is chosen so that no partial
    sum of the integer accumulator can wrap (see :func:`sigmadelta.fixedpoint.max_spike_total`).
    """
    for r in range(row_count[0]):
        b = rows[r] * row_len
        for j in range(row_len):
            q = abs(np.rint(k * x[b + j]))
            if not q <= qmax:  # NaN too
                return b + j
    return -1
