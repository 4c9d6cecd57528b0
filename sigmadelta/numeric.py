"""Numeric overflow inside a simulation: found after every chunk, reported, never carried on.

Frames are checked for NaN/Inf before they run, but finite inputs can still overflow
inside: ``k * x`` beyond the state dtype (a frame of 3e38 in float32, 1e307 in float64)
makes an encoder's running total infinite, and from then on every later frame of that
neuron is NaN; spikes from huge inputs make a counter (``additions = sum|s| x fan-out``)
pass the int64 range of :class:`~sigmadelta.stats.Stats`. After each chunk the engine
calls :func:`first_bad_frame`:

* per frame: every output finite, every counter finite and below ``2**63``;
* at the end of the chunk: the state carried from frame to frame, every weight layer's
  accumulator ``z`` and encoder memory, finite (a NaN in ``z`` can hide from the output
  behind a ReLU and would stay; then the chunk's frame range is reported). Other nodes
  are recomputed from these each frame, as the dense reference computes them.

The run then stops with :class:`NumericOverflowError` naming the frame; the frames
before it are kept (returned, recorded), and the simulator refuses to go on until
``reset()``.
"""

from __future__ import annotations

import numpy as np

from .stats import COUNTERS

__all__ = ["NumericOverflowError", "first_bad_frame", "overflow_message", "lava_range_message",
           "COUNTER_LIMIT"]

COUNTER_LIMIT = 2.0**63  # counters become int64 in Stats and recordings


class NumericOverflowError(OverflowError):
    """A value or counter of the simulation left the range of its dtype."""


def first_bad_frame(stats: np.ndarray, out: np.ndarray, state: list[np.ndarray],
                    layer_names: list[str], dtype=np.float64) -> tuple[int, str, bool] | None:
    """``(t, reason, exact)`` of the first frame of a chunk that overflowed, or None.

    ``stats[t, 4, L]`` and ``out[t, N]`` are the chunk's counters and outputs, ``state``
    the arrays that must stay finite (checked once, after the chunk). ``exact`` is False
    when only the state showed it (then ``t = 0``: it happened in one of the chunk's frames).
    """
    rng = f"k*x or a sum left the range of {np.dtype(dtype).name}"
    if len(stats):
        bad_out = ~np.isfinite(out).all(axis=1)
        with np.errstate(invalid="ignore"):
            bad_st = ~(np.abs(stats) < COUNTER_LIMIT)  # NaN, Inf or beyond int64
        bad = bad_out | bad_st.any(axis=(1, 2))
        if bad.any():
            t = int(np.argmax(bad))
            if bad_out[t]:
                return t, f"the output is not finite ({rng})", True
            row, layer = (int(v) for v in np.argwhere(bad_st[t])[0])
            return t, (f"the {COUNTERS[row]} counter of layer {layer_names[layer]!r} reached "
                       f"{stats[t, row, layer]:.4g}, beyond the int64 range of the counters (spikes "
                       f"far larger than the scale was chosen for)"), True
    if not all(np.isfinite(a).all() for a in state):
        return 0, f"an accumulator or encoder memory is not finite ({rng})", len(stats) == 1
    return None


def overflow_message(frame: int, last: int, reason: str, dtype, exact: bool) -> str:
    """The text of :class:`NumericOverflowError` (``frame..last``: where, if not ``exact``)."""
    where = f"at frame {frame}" if exact else f"in frames {frame}..{last}"
    wider = ", or simulate in float64" if np.dtype(dtype) != np.float64 else ""
    return (f"numeric overflow {where}: {reason}. The frames before it are kept; call reset() to "
            f"start a new stream, and scale the inputs into the range the network was trained "
            f"on{wider}")


def lava_range_message(layer: str, frame: int, is_input: bool, i: int, z: float, prev: float,
                       bias: float, inc_limit: float) -> str:
    """The text of :class:`NumericOverflowError` where Lava's fixed-point integers would wrap.

    A ``"lava"`` layer stopped (:func:`sigmadelta.kernels.lava_range_check`) at neuron ``i``
    with value ``z = sigma + bias`` after this step and ``prev`` before it; or, if
    ``is_input``, at input ``i`` with ``a = z`` (``k * x``).
    """
    bits = int(round(np.log2(inc_limit))) + 1
    if is_input:
        what = (f"input neuron {i} sends a = {z:.0f}, beyond the int32 of Lava's input neuron "
                "(the input times 2**12 must stay below 2**31; with timing='pipelined' the layer "
                "reads the frame before)")
    elif not -inc_limit <= z - prev < inc_limit:
        what = (f"neuron {i} received {z - prev:.0f} in one step, beyond the {bits}-bit range "
                "Lava's synapse holds the sum of one step in (it would wrap)")
    else:
        what = (f"neuron {i} reached sigma = {z - bias:.0f}, act = {z:.0f}, beyond the int32 "
                "Lava's neuron state is held in (it would wrap)")
    return (f"layer {layer!r} at frame {frame}: {what}, so Lava's fixed-point model would "
            "compute something else from here on. The frames before it are kept; call reset() "
            "to start a new stream, and scale the input down")
