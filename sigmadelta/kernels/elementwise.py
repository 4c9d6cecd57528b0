"""Updates of the non-weight nodes for the neurons touched this frame."""

from numba import njit

__all__ = [
    "activation_update", "add_update", "concat_update", "flatten_update", "fixed_point_update",
]

RELU, LEAKY, CLIP, IDENTITY = 0, 1, 2, 3


@njit(cache=True)
def activation_update(x, y, touched, count, fn, alpha, lo, hi):
    """``y_i = f(x_i)`` for the touched ``i`` only.

    ``fn``: 0 relu ``max(x, 0)``; 1 leaky ``x if x > 0 else alpha*x``;
    2 clip ``min(max(x, lo), hi)``; 3 identity.
    """
    for t in range(count[0]):
        i = touched[t]
        v = x[i]
        if fn == 0:
            v = v if v > 0.0 else 0.0
        elif fn == 1:
            v = v if v > 0.0 else alpha * v
        elif fn == 2:
            v = min(max(v, lo), hi)
        y[i] = v


@njit(cache=True)
def add_update(a, b, y, touched_a, count_a, touched_b, count_b, touched, count, stamp, frame):
    """``y_i = a_i + b_i`` for ``i`` touched in ``a`` or ``b``; lists the union."""
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


@njit(cache=True)
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


@njit(cache=True)
def flatten_update(x, touched_in, count_in, hw, c, y, touched, count):
    """Channels-last ``[H*W, C]`` to PyTorch's flat order ``c*H*W + p``."""
    n = 0
    for t in range(count_in[0]):
        i = touched_in[t]
        p = i // c
        o = (i - p * c) * hw + p
        y[o] = x[i]
        touched[n] = o
        n += 1
    count[0] = n


@njit(cache=True)
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
