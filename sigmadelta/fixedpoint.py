"""Fixed-point weights and integer accumulators.

With ``weight_bits = b`` a weight layer's weights become integers on a per-layer
grid::

    delta = max|W| / (2**(b-1) - 1);   W_int = round(W / delta);   W = W_int * delta

Herding spikes are integers too, so the layer accumulates exactly in integers::

    acc += s * W_int                    (acc = W_int @ round(k * x), an integer)
    z    = acc * (delta / k) + b        (the real pre-activation, for touched neurons)

The event simulation is then bit-exact against the integer dense reference.
``acc`` must fit a signed ``acc_bits`` integer (default 32, up to 64:
``sd.convert(..., acc_bits=...)``); leaving that range raises
:class:`AccumulatorOverflowError`, naming the layer, frame, neuron and the exact value.

The accumulator is an int64 and must never wrap. Before a layer integrates a frame,
every touched input's spike total ``q = round(k*x)`` is checked against
:func:`max_spike_total`: with ``L`` the largest ``sum_i |W_int[j, i]|`` over output
neurons ``j``, ``|q| <= (2**63 - 1) // (2*L)`` bounds every partial sum and product
of the scatter within int64; a larger input raises :class:`AccumulatorOverflowError`
before anything wraps (the dense reference applies the same bound).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np

from .graph import Conv, ConvTranspose, Dense, Network, per_layer

__all__ = ["quantize_weights", "AccumulatorOverflowError", "integer_weights", "MAX_WEIGHT_BITS",
           "max_spike_total", "overflow_message", "spike_total_message"]

INT64_MAX = 2**63 - 1

MAX_WEIGHT_BITS = 16  # W_int * weight_scale stays exact in float32


class AccumulatorOverflowError(OverflowError):
    """An integer accumulator left its signed ``acc_bits`` range."""


def quantize_weights(net: Network, weight_bits: int | Sequence[int] | Mapping[str, int],
                     acc_bits: int = 32) -> Network:
    """Round every weight layer's weights to ``weight_bits`` (one, a list, or a dict by name).

    Modifies ``net`` in place and returns it. Needs the herding quantizer
    (integer spikes); a layer with ``0`` bits keeps float weights.
    """
    bits = per_layer(weight_bits, net.layer_names, "weight_bits")
    if isinstance(acc_bits, bool) or not isinstance(acc_bits, (int, np.integer)) or not 8 <= acc_bits <= 64:
        raise ValueError(f"acc_bits must be an integer in 8..64, got {acc_bits!r}")
    for layer, b in zip(net.weight_layers, bits, strict=True):
        b = int(b)
        if b == 0:
            continue
        if not 2 <= b <= MAX_WEIGHT_BITS:
            raise ValueError(f"weight_bits of layer {layer.name!r} must be in 2..{MAX_WEIGHT_BITS}, got {b}")
        if layer.quantizer != "herding":
            raise ValueError(f"layer {layer.name!r}: fixed-point weights need the herding quantizer "
                             f"(integer spikes), not {layer.quantizer!r}")
        if np.ndim(layer.scale):
            raise ValueError(f"layer {layer.name!r}: fixed-point weights need one scale per layer")
        w = np.asarray(layer.weight, np.float64)
        wmax = float(np.abs(w).max())
        delta = wmax / (2 ** (b - 1) - 1) if wmax > 0 else 1.0
        layer.weight = (np.rint(w / delta) * delta).astype(np.float32)
        layer.weight_bits, layer.weight_scale, layer.acc_bits = b, delta, int(acc_bits)
    return net


def integer_weights(layer: Dense | Conv) -> np.ndarray:
    """The layer's integer weights ``W_int`` (exact: ``weight = W_int * weight_scale``)."""
    return np.rint(np.asarray(layer.weight, np.float64) / layer.weight_scale).astype(np.int64)


def _row_l1(layer: Dense | Conv) -> int:
    """Largest ``sum_i |W_int[j, i]|`` over the layer's output neurons (exact Python int)."""
    w = np.abs(integer_weights(layer))
    if isinstance(layer, ConvTranspose):  # [in, out/groups, kh, kw]: output j of group g
        c_in, cg = w.shape[:2]
        w = w.reshape(layer.groups, c_in // layer.groups, cg, -1).transpose(0, 2, 1, 3)
        w = w.reshape(layer.groups * cg, -1)
    return int(w.reshape(w.shape[0], -1).sum(1).max()) if w.size else 0


def max_spike_total(layer: Dense | Conv) -> int:
    """Largest ``|round(k*x)|`` of one input for which the int64 accumulator cannot wrap.

    Every partial sum of ``acc_j`` is ``sum_i W_ji q_i`` over old and new totals, so
    ``|q_i| <= q_max`` bounds it by ``L*q_max``; the product ``s*W`` (``|s| <= 2 q_max``)
    by ``2*L*q_max``. Hence ``q_max = (2**63 - 1) // (2*L)``.
    """
    return INT64_MAX // (2 * max(_row_l1(layer), 1))


def _advice(layer: Dense | Conv, wider: bool) -> str:
    tips = [f"a smaller scale for layer {layer.name!r} (now k={float(layer.scale):g})",
            f"fewer weight bits (now {layer.weight_bits})"]
    if wider and layer.acc_bits < 64:
        tips.append(f"a wider accumulator: sd.convert(..., weight_bits=..., acc_bits=N) with N up "
                    f"to 64 (now {layer.acc_bits})")
    return "use " + ", ".join(tips) + ", or inputs within the range the scale was chosen for"


def overflow_message(layer: Dense | Conv, frame: int | None, neuron: int | None, acc: int) -> str:
    """The :class:`AccumulatorOverflowError` text: layer, frame, neuron, exact value, advice."""
    where = "" if frame is None else f" at frame {frame}, neuron {neuron} (channels-last index)"
    return (f"layer {layer.name!r}: accumulator overflow{where}: {int(acc)} is outside the signed "
            f"{layer.acc_bits}-bit range [{-2 ** (layer.acc_bits - 1)}, {2 ** (layer.acc_bits - 1) - 1}]; "
            + _advice(layer, wider=True))


def spike_total_message(layer: Dense | Conv, frame: int | None, neuron: int | None, x: float) -> str:
    """The :class:`AccumulatorOverflowError` text when an input fails :func:`max_spike_total`."""
    kx = float(layer.scale) * x
    q = abs(int(np.rint(kx))) if np.isfinite(kx) else None
    where = "" if frame is None else f" at frame {frame}, input neuron {neuron} (channels-last index)"
    big = f"round(k*x) = {q}" if q is not None else "round(k*x) is not finite"
    reach = f": the accumulator could reach {q * _row_l1(layer)}" if q is not None else ""
    return (f"layer {layer.name!r}: input too large for exact integer accumulation{where}: "
            f"x = {x:.6g}, {big} exceeds {max_spike_total(layer)}, the largest input total for "
            f"which the 64-bit accumulator cannot wrap (integer weight rows sum up to "
            f"{_row_l1(layer)} in magnitude{reach}); " + _advice(layer, wider=False))
