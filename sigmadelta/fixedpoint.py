"""Fixed-point weights and integer accumulators.

With ``weight_bits = b`` a weight layer's weights become integers on a per-layer
grid::

    delta = max|W| / (2**(b-1) - 1);   W_int = round(W / delta);   W = W_int * delta

Herding spikes are integers too, so the layer accumulates exactly in integers::

    acc += s * W_int                    (acc = W_int @ round(k * x), an integer)
    z    = acc * (delta / k) + b        (the real pre-activation, for touched neurons)

The event simulation is then bit-exact against the integer dense reference.
``acc`` must fit a signed ``acc_bits`` integer (default 32); leaving that range
raises :class:`AccumulatorOverflowError`, naming the layer, frame and neuron.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np

from .graph import Conv, Dense, Network, per_layer

__all__ = ["quantize_weights", "AccumulatorOverflowError", "integer_weights", "MAX_WEIGHT_BITS"]

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
        if not 8 <= acc_bits <= 64:
            raise ValueError(f"acc_bits must be in 8..64, got {acc_bits}")
        w = np.asarray(layer.weight, np.float64)
        wmax = float(np.abs(w).max())
        delta = wmax / (2 ** (b - 1) - 1) if wmax > 0 else 1.0
        layer.weight = (np.rint(w / delta) * delta).astype(np.float32)
        layer.weight_bits, layer.weight_scale, layer.acc_bits = b, delta, int(acc_bits)
    return net


def integer_weights(layer: Dense | Conv) -> np.ndarray:
    """The layer's integer weights ``W_int`` (exact: ``weight = W_int * weight_scale``)."""
    return np.rint(np.asarray(layer.weight, np.float64) / layer.weight_scale).astype(np.int64)
