"""Weight-layer operators: one class per kind, each with its state, columns and row.

:class:`DenseOp`, :class:`ConvOp` (event by event: groups, dilation, per-unit scales)
and :class:`PixelConvOp` (the pixel-grouped path) share :class:`WeightOp`: the
input :class:`Encoder` (herding, threshold or lava quantizer), the bias and the
fixed-point accumulators. Each declares its op-table columns once (``SLOTS``, see
:mod:`sigmadelta.slots`), fills them in :meth:`WeightOp.emit`, and
:mod:`sigmadelta.program` reads them by name in the compiled loop.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np

from . import graph as g
from . import kernels as K
from .fixedpoint import integer_weights, max_spike_total
from .layout import NodeState, fan_out, grid, pair, to_internal
from .slots import CONV, CONVT, DENSE, PIXCONV, Builder, layout

__all__ = ["QuantState", "Encoder", "WeightOp", "DenseOp", "ConvOp", "ConvTOp", "PixelConvOp", "ENCODER",
           "WEIGHT", "UNITS", "HERDING", "THRESHOLD", "LAVA", "LAVA_CONV_RANGE", "LAVA_DENSE_RANGE",
           "int8_weights"]


class QuantState(NamedTuple):
    """A weight layer's input encoder: its memory and this frame's event queue."""

    memory: np.ndarray  # herding: running sum of spikes; threshold: the value already sent (lava: k*x)
    ev_idx: np.ndarray  # int64 [N_in]
    ev_val: np.ndarray  # float [N_in]


# Columns shared by every weight op: the encoder's first, then the weights' and the output's.
ENCODER = layout("Encoder", ["layer", "x", "touched", "count", "memory", "enc", "ev_idx", "ev_val",
                             "k_units", "fanout"], ["param", "gain", "acc_gain", "lava_k"])
# fixed point: acc_limit (2**(acc_bits-1) - 1) and spike_max (fixedpoint.max_spike_total), exact ints
# lava: lava_prev (the value after the last step) and lava_inc (the synaptic sum's range), see
# kernels.lava_range_check
WEIGHT = layout("Weight", ["fixed", "w", "acc", "out_touched", "out_count", "value", "bias",
                           "acc_limit", "spike_max", "lava_prev"], ["lava_inc"], base=ENCODER)
UNITS, HERDING, THRESHOLD, LAVA = range(4)  # encoder kinds (column ``enc``)
# Lava's fixed-point range of one step's synaptic sum: Conv wraps it to 24 bits, Dense to int32
LAVA_CONV_RANGE, LAVA_DENSE_RANGE = 2.0 ** 23, 2.0 ** 31


class Encoder:
    """A weight layer's input quantizer: its state and the encoder columns of the layer's row.

    ``memory``: herding, the running sum of sent spikes (in quanta); threshold, the value
    already sent (lava: ``k*x`` at the last send, see :func:`sigmadelta.kernels.lava_encode`).
    Per frame the touched inputs are encoded into ``ev_idx[:n], ev_val[:n]``.
    With ``units`` (herding with one scale per input neuron) ``k_units`` and ``fanout``
    (channels-last) weigh every neuron's additions.
    """

    def __init__(self, node: g.Dense | g.Conv, n_in: int, dtype, wdtype, in_shape: tuple[int, ...]):
        self.q = QuantState(np.zeros(n_in, dtype), np.zeros(n_in, np.int64), np.zeros(n_in, wdtype))
        self.herding = node.quantizer == "herding"
        self.units = self.herding and np.ndim(node.scale) > 0  # one scale per input neuron
        self.lava = node.quantizer == "lava"  # Lava's integer delta encoding
        self.kind = UNITS if self.units else (HERDING if self.herding else (LAVA if self.lava else THRESHOLD))
        self.lava_k = float(node.scale) if self.lava else 0.0  # a = k * x before the threshold
        if self.units:
            self.k_units = to_internal(np.asarray(node.scale, np.float64))
            self.fanout = fan_out(node, in_shape)
        self.param = float(node.threshold if self.kind in (THRESHOLD, LAVA) else
                           (0.0 if self.units else node.scale))

    def fill(self, r, b: Builder, j: int, inp: NodeState, fixed: bool) -> None:
        """The encoder's columns of a weight op's row ``r``."""
        r.layer, r.x, r.touched, r.count = j, b.f(inp.value), b.i(inp.touched), b.i(inp.count)
        r.memory, r.enc, r.ev_idx, r.ev_val = (b.f(self.q.memory), self.kind, b.i(self.q.ev_idx),
                                               b.w(self.q.ev_val, fixed))
        r.k_units, r.fanout = (b.d(self.k_units), b.d(self.fanout)) if self.units else (-1, -1)
        r.param, r.lava_k = self.param, self.lava_k

    def reset(self) -> None:
        self.q.memory[:] = 0


class WeightOp:
    """Dense or conv layer: encode the input change as spikes, scatter them, list outputs.

    Per frame::

        events = Q(input value at touched neurons)         # herding, threshold or lava
        z += W * events * gain                              # gain = 1/k for herding
        touched = outputs that received at least one event  # (all of them on the first frame)

    The shared part of :class:`DenseOp`, :class:`ConvOp` and :class:`PixelConvOp`
    (the :class:`Encoder`, the bias, fixed-point accumulators); each of them owns its
    weight layout, its columns in the op table (``SLOTS``) and its :meth:`emit`.
    """

    SLOTS = WEIGHT
    has_paths = False  # a conv that can also run a dense recompute path (set_path, path_frames)

    def __init__(self, node: g.Dense | g.Conv, ins: list[NodeState], out: NodeState, dtype,
                 in_shape: tuple[int, ...]):
        self.node, self.inp, self.out = node, ins[0], out
        self.fixed = node.weight_bits > 0
        # fixed point: integer spikes and weights accumulate exactly in int64 (see fixedpoint)
        self.wdtype = np.int64 if self.fixed else dtype
        self.enc = Encoder(node, self.inp.value.shape[0], dtype, self.wdtype, in_shape)
        self.q, self.herding, self.units = self.enc.q, self.enc.herding, self.enc.units
        self.gain = 1 if self.fixed else (1.0 / node.scale if self.herding and not self.units else 1.0)
        self.bias_cl = np.tile(node.bias.astype(dtype), out.value.shape[0] // node.bias.shape[0])
        self.acc = np.zeros(out.value.shape[0], np.int64) if self.fixed else out.value
        if self.fixed:
            self.acc_limit = 2 ** (node.acc_bits - 1) - 1
            self.acc_gain = node.weight_scale / node.scale
        self.weight = integer_weights(node) if self.fixed else node.weight
        # lava: Lava's integer widths, checked every step (kernels.lava_range_check)
        self.lava_prev = self.bias_cl.copy() if self.enc.lava else None
        self.lava_inc = LAVA_CONV_RANGE if isinstance(node, g.Conv) else LAVA_DENSE_RANGE

    def _row(self, b: Builder, kind: int, j: int):
        """Start this op's row with the encoder's and the output's columns filled."""
        r = b.row(kind, self.SLOTS)
        self.enc.fill(r, b, j, self.inp, self.fixed)
        o, fx = self.out, self.fixed
        r.fixed, r.w, r.acc = int(fx), b.w(self.w, fx), b.w(self.acc, fx)
        r.out_touched, r.out_count, r.value, r.bias = (b.i(o.touched), b.i(o.count), b.f(o.value),
                                                       b.f(self.bias_cl))
        r.gain = float(self.gain)
        r.acc_gain = float(self.acc_gain) if fx else 0.0
        r.acc_limit, r.spike_max = (int(self.acc_limit), max_spike_total(self.node)) if fx else (0, 0)
        r.lava_prev = b.f(self.lava_prev) if self.lava_prev is not None else -1
        r.lava_inc = self.lava_inc
        return r

    def emit(self, b: Builder, j: int) -> None:
        """Append this op's row (weight layer ``j``) to the op table."""
        raise NotImplementedError

    def reset(self) -> None:
        self.enc.reset()
        self.acc[:] = 0
        self.out.value[:] = self.bias_cl
        if self.lava_prev is not None:
            self.lava_prev[:] = self.bias_cl


def int8_weights(w: np.ndarray) -> np.ndarray | None:
    """Integer weights within int8, packed into int64 words (``.view(np.int8)[:w.size]`` is
    ``w.ravel()``), or None if ``w`` has another value."""
    if not (np.all(w == np.rint(w)) and np.all(np.abs(w) <= 127)):
        return None
    packed = np.zeros((w.size + 7) // 8, np.int64)
    packed.view(np.int8)[:w.size] = w.ravel()
    return packed


class DenseOp(WeightOp):
    """A dense layer: ``z += W.T[i] * s`` for every event ``(i, s)``; every output is touched.

    A float ``"lava"`` layer whose (integer) weights fit int8 reads them as int8 (``w8``, in
    the int64 list): the same products, a quarter of the weight traffic, which on lava-dl's
    PilotNet SDNN (2560 x 100 weights, half the inputs spiking) comes mostly from L3 or memory.
    """

    SLOTS = layout("Dense", ["n_in", "n_out", "w8", "dz", "l1"], base=WEIGHT)

    def __init__(self, node: g.Dense, ins, out, dtype, in_shape):
        super().__init__(node, ins, out, dtype, in_shape)
        self.w = np.ascontiguousarray(self.weight.T, dtype=self.wdtype)  # [in, out]
        self.w8 = int8_weights(self.w) if self.enc.lava and not self.fixed else None
        # float64: the step's sum in int32 where exact (kernels.lava_dense_step)
        self.dz = _int32_scratch(self.w.shape[1]) if self.w8 is not None and dtype == np.float64 else None
        self.l1 = int(K.lava_l1(self.w)) if self.dz is not None else 0  # an integer: int8 weights

    def emit(self, b: Builder, j: int) -> None:
        r = self._row(b, DENSE, j)
        r.n_in, r.n_out = self.w.shape
        r.w8 = b.i(self.w8) if self.w8 is not None else -1
        r.dz, r.l1 = (b.i(self.dz) if self.dz is not None else -1), self.l1
        r.done()


def _int32_scratch(n: int) -> np.ndarray:
    """Zeros for ``n`` int32 values in int64 words (``.view(np.int32)[:n]``; the int64 list)."""
    return np.zeros((n + 1) // 2, np.int64)


def _conv_weights(node: g.Conv, weight: np.ndarray, dtype) -> np.ndarray:
    """``w_cl[ky, kx, g*c_in_g + cl, j] = W[g*cg + j, cl, ky, kx]`` (``cg`` outputs per group)."""
    c_out, c_in_g, kh, kw = weight.shape
    groups = node.groups
    cg = c_out // groups
    w = weight.reshape(groups, cg, c_in_g, kh, kw)
    return np.ascontiguousarray(w.transpose(3, 4, 0, 2, 1).reshape(kh, kw, groups * c_in_g, cg),
                                dtype=dtype)


class ConvOp(WeightOp):
    """A conv layer event by event (groups, dilation, per-unit scales): the general path.

    Every event ``(i, s)`` adds ``s * w_cl[ky, kx, c]`` to the output pixels whose window
    holds input neuron ``i`` (:func:`sigmadelta.kernels.conv_scatter`); the reached
    (pixel, group) pairs are listed, then expanded to neurons.

    ``lazy`` (set by :func:`sigmadelta.ops.build_ops`, depthwise float layers only): the input
    is listed by pixel rows alone (its producer does not list its neurons); the layer takes
    its touched count from the rows (``row_count * row_len``) and lists the input's neurons
    itself only on frames it scatters (the dense path reads every input).
    """

    SLOTS = layout("Conv", ["kh", "kw", "c_in", "cg", "in_hw", "out_hw", "stride", "padding",
                            "dilation", "pg_list", "pg_count", "pg_stamp", "groups", "dw", "pstate",
                            "mem_w", "flag_w", "fan_y", "fan_x", "hit", "lazy", "in_rows",
                            "in_row_count", "in_row_len"], ["dense_above"], base=WEIGHT)
    lazy = False

    def __init__(self, node: g.Conv, ins, out, dtype, in_shape):
        super().__init__(node, ins, out, dtype, in_shape)
        self.w = self._weights(node)
        self.in_hw, _ = grid(in_shape)
        self.out_hw, _ = grid(node.shape)
        self.geom = (pair(node.stride), pair(node.padding), pair(node.dilation))
        self.groups = node.groups
        self.cg = self.w.shape[3]
        n_pg = int(np.prod(self.out_hw)) * self.groups
        self.pg = (np.zeros(n_pg, np.int64), np.zeros(1, np.int64), np.full(n_pg, -1, np.int64))
        self._dense_state()

    KIND = CONV

    def _dense_state(self) -> None:
        """A depthwise layer (one input channel per group, herding or threshold encoder) can
        also run the dense recompute (:func:`sigmadelta.kernels.depthwise_dense`), chosen per
        frame like :class:`PixelConvOp`'s: its path state, the zero-padded memory and event
        flags (uint8 in int64 words), the per-row and per-column fan of an input pixel."""
        c_in = self.w.shape[2]
        self.dw = (K.depthwise_ok(self.groups, c_in, self.KIND == CONVT)
                   and self.enc.kind in (HERDING, THRESHOLD))
        self.has_paths = self.dw
        self.pstate = np.zeros(len(K.PATH_STATE), np.int64)
        self.pstate[K.PATH_STATE.mode] = K.PATH_AUTO if self.dw else K.PATH_SCATTER
        self.dense_above = K.DW_DENSE_ABOVE
        n_pad, n_fan = 0, ((0,), (0,))
        if self.dw:
            (sy, sx), (py, px), (dy, dx) = self.geom
            (h, w), (ho, wo), (kh, kw) = self.in_hw, self.out_hw, self.w.shape[:2]
            n_pad = (h + 2 * py) * (w + 2 * px) * c_in
            n_fan = (K.axis_fan(h, ho, kh, sy, py, dy), K.axis_fan(w, wo, kw, sx, px, dx))
        self.mem_w = np.zeros(n_pad, self.wdtype)
        self.flag_w = np.zeros(-(-n_pad // 8), np.int64)
        self.fan = tuple(np.asarray(f, np.int64) for f in n_fan)
        self.hit = np.zeros(-(-c_in // 8) if self.dw else 0, np.int64)

    @property
    def lists_lazily(self) -> bool:
        """Can it list its input's neurons itself (``lazy``)? A float depthwise layer (a
        fixed-point one checks its touched inputs before its path is chosen)."""
        return bool(self.dw and not self.fixed)

    def set_path(self, mode: int) -> None:
        """Path mode of a depthwise layer from the next frame on (see :meth:`PixelConvOp.set_path`);
        other layers of this kind run the scatter only."""
        if not self.dw and mode != K.PATH_SCATTER:
            raise ValueError(f"layer {self.node.name!r}: only depthwise convs (groups = input "
                             f"channels, herding or threshold) have a dense path")
        self.pstate[K.PATH_STATE.mode] = mode

    @property
    def path_frames(self) -> tuple[int, int, int]:
        """Frames this layer ran by the scatter, the dense path and gather-GEMM-scatter (never:
        a depthwise layer forced to ``PATH_GEMM`` scatters) since the last reset."""
        ps = K.PATH_STATE
        return (int(self.pstate[ps.frames_scatter]), int(self.pstate[ps.frames_dense]),
                int(self.pstate[ps.frames_gemm]))

    def _weights(self, node: g.Conv) -> np.ndarray:
        """The weights as the kernel reads them, ``w_cl[ky, kx, c, j]``."""
        return _conv_weights(node, self.weight, self.wdtype)

    def emit(self, b: Builder, j: int) -> None:
        r = self._row(b, self.KIND, j)
        r.kh, r.kw, r.c_in, r.cg = self.w.shape
        (stride, padding, dilation), pg = self.geom, self.pg
        r.in_hw, r.out_hw, r.stride, r.padding, r.dilation = (
            b.i(self.in_hw), b.i(self.out_hw), b.i(stride), b.i(padding), b.i(dilation))
        r.pg_list, r.pg_count, r.pg_stamp = b.i(pg[0]), b.i(pg[1]), b.i(pg[2])
        r.groups = self.groups
        r.dw, r.pstate, r.dense_above = int(self.dw), b.i(self.pstate), self.dense_above
        r.mem_w, r.flag_w, r.hit = b.w(self.mem_w, self.fixed), b.i(self.flag_w), b.i(self.hit)
        r.fan_y, r.fan_x = b.i(self.fan[0]), b.i(self.fan[1])
        r.lazy, r.in_rows, r.in_row_count = int(self.lazy), b.i(self.inp.rows), b.i(self.inp.row_count)
        r.in_row_len = int(self.inp.row_len)
        r.done()

    def reset(self) -> None:
        super().reset()
        self.pg[1][0] = 0
        self.pg[2][:] = -1
        ps = K.PATH_STATE
        self.pstate[[ps.last_events, ps.last_touched, ps.frames_scatter, ps.frames_dense]] = 0


class ConvTOp(ConvOp):
    """A transposed conv layer event by event (:func:`sigmadelta.kernels.convt_scatter`).

    The columns and listing of :class:`ConvOp`; the weights ``w_cl[ky, kx, c, j] =
    W[c, j, ky, kx]`` (PyTorch's ``[in, out/groups, kh, kw]``), the row's kind ``CONVT``.
    """

    KIND = CONVT

    def _weights(self, node: g.ConvTranspose) -> np.ndarray:
        return np.ascontiguousarray(self.weight.transpose(2, 3, 0, 1), dtype=self.wdtype)


class PixelConvOp(WeightOp):
    """A conv layer with groups 1 and dilation 1: the pixel-grouped path.

    One fused kernel per frame (:func:`sigmadelta.kernels.conv_layer_step`) on weights in
    run layout (:func:`sigmadelta.kernels.run_layout`): events grouped by input pixel,
    one contiguous multiply-add per event and kernel row; one input channel uses the
    spike map where events are dense. Its output is listed by pixel (the node's
    ``rows``), and per neuron only if ``expand`` (see :func:`build_ops`).
    """

    SLOTS = layout("PixelConv", ["in_rows", "rows", "row_count", "geom", "px_list", "px_start",
                                 "vbuf", "pg_list", "pg_count", "pg_stamp", "expand", "kh", "c_in",
                                 "lw", "mgeom", "smap", "wtap", "w_cl", "mem_w", "rowbuf", "w_g", "gbuf",
                                 "pstate", "w8", "dz", "l1"],
                   ["cost_event", "cost_pixel", "cost_frame", "cost_px_scatter", "px_per_event"],
                   base=WEIGHT)

    @staticmethod
    def takes(node: g.Conv) -> bool:
        """Does the pixel path run ``node``? (groups 1, dilation 1, one scale per layer)"""
        return (node.groups == 1 and tuple(node.dilation) == (1, 1)
                and not (node.quantizer == "herding" and np.ndim(node.scale) > 0))

    def __init__(self, node: g.Conv, ins, out, dtype, in_shape):
        super().__init__(node, ins, out, dtype, in_shape)
        w_cl = _conv_weights(node, self.weight, self.wdtype)
        kh, kw, _, cg = w_cl.shape
        self.in_hw, _ = grid(in_shape)
        self.out_hw, _ = grid(node.shape)
        self.w = K.run_layout(w_cl, node.stride)
        self.pgeom = K.make_geom(self.in_hw, self.out_hw, node.stride, node.padding, (kh, kw), cg)
        n_in = self.q.ev_idx.shape[0]
        self.px = (np.zeros(n_in, np.int64), np.zeros(n_in + 1, np.int64),
                   np.zeros(self.w.shape[1], self.w.dtype))
        n_pg = int(np.prod(self.out_hw))
        self.pg = (out.rows, out.row_count, np.full(n_pg, -1, np.int64))  # pixel list = node rows
        self.expand = True  # list output neurons too; build_ops clears it when unneeded
        # one input channel: the spike-map path where events are dense (kernels.spikemap)
        self.smap = K.make_map(self.pgeom, w_cl)
        # busy frames: the dense recompute path (kernels.recompute), chosen per frame
        self.w_cl = w_cl
        c_in = w_cl.shape[2]
        n_pad = K.padded_size(self.pgeom, c_in)  # zero-padded input
        # lava: the dense path adds the conv of the messages, through scratch after the input
        # (kernels.recompute); only where float64 holds every partial sum exactly
        self.lava_dense = self.enc.lava and K.lava_dense_exact(w_cl)
        n_dz = out.value.shape[0] if self.lava_dense else 0
        k = kh * kw * c_in  # float layers: im2col rows for GEMM; fixed point: a zero vector
        n_scratch = max(cg, 8) if self.fixed else k * K.gemm_rows(n_pg, k, np.dtype(self.wdtype).itemsize)
        self.dense_bufs = (np.zeros(n_pad + n_dz, self.wdtype), np.zeros(n_scratch, self.wdtype))
        # events by whole pixels: gather-GEMM-scatter (kernels.gathergemm), chosen per frame
        self.w_g = K.gemm_layout(self.w)
        n_g = self.w_g.shape[1]
        itemsize = np.dtype(self.wdtype).itemsize
        self.gbuf = np.zeros(K.pixel_rows(c_in, n_g, n_in // c_in, itemsize, K.GEMM_BYTES) * (c_in + n_g),
                             self.wdtype)
        self.pstate = np.zeros(len(K.PATH_STATE), np.int64)
        if self.enc.lava:  # the scatter by default: on lava-dl's PilotNet SDNN (carphone) it beat the
            self.pstate[K.PATH_STATE.mode] = K.PATH_SCATTER  # dense path on every layer (DEVELOPERS)
        self.has_paths = True
        self.costs = self._costs(node, c_in, c_in * kh * kw * cg, itemsize)
        self.scatter_pixel = K.scatter_pixel_cost(c_in, itemsize, self.costs[0],
                                                  K.conv1x1_ok(self.pgeom, self.w_cl, self.out.value))
        self._lava_int(w_cl, dtype)

    def _lava_int(self, w_cl: np.ndarray, dtype) -> None:
        """A float64 ``"lava"`` layer of 2 or more input channels with int8 weights scatters
        its steps in int32 where exact (``w8``: the run layout as int8, ``dz``: int32 scratch;
        :func:`sigmadelta.kernels.lava_conv_step`), and with 2-4 channels takes a spike map
        of all channels when its events are dense (``smap``, ``wtap``), else the float32
        scatter (:func:`sigmadelta.kernels.scatter_f32`: ``smap`` its scratch, ``wtap`` its
        weights)."""
        kh, kw, c_in, cg = w_cl.shape
        w8 = int8_weights(self.w) if self.enc.lava and dtype == np.float64 and c_in > 1 else None
        self.w8 = w8 if w8 is not None and self.lava_dense else None
        self.dz = _int32_scratch(self.out.value.shape[0]) if self.w8 is not None else None
        self.l1 = int(K.lava_l1(w_cl)) if self.w8 is not None else 0  # an integer: int8 weights
        if self.w8 is not None and K.lava_map_ok(c_in, cg):
            self.smap = K.lava_map_make(self.pgeom, w_cl)
        elif self.w8 is not None:  # no map: the float32 scatter's weights and scratch
            self.smap = K.lava_scatter_make(self.w, self.out.value.shape[0])

    def _costs(self, node: g.Conv, c_in: int, gemm_macs: int, itemsize: int) -> tuple:
        """The automatic chooser's cost model (``kernels.path_costs``): ns per event (scatter),
        per pixel with events (gather-GEMM-scatter), per frame (dense recompute). One input
        channel never recomputes but on the first frame (the spike map is its dense path);
        fixed point (no integer BLAS) and ``"lava"`` layers never run gather-GEMM-scatter on
        their own."""
        fan = self._mean_fan()
        fixed = K.fixed_channels(self.pgeom, c_in, itemsize)  # its direct conv's shape fixed, or 0
        per_event, per_pixel, per_frame = K.path_costs(c_in, itemsize, fan, node.dense_macs(), gemm_macs,
                                                       K.conv1x1_ok(self.pgeom, self.w_cl, self.out.value),
                                                       self.w_cl.shape[3], fixed)
        if c_in == 1:
            per_frame = np.inf
        if self.fixed or self.enc.lava:
            per_pixel = np.inf
        return per_event, per_pixel, per_frame

    def _mean_fan(self) -> float:
        """Synops per event, on average over the input neurons: the output pixels whose window
        holds an input pixel (rows times columns, :func:`sigmadelta.kernels.axis_fan`) times
        ``C_out``. Not ``dense_macs / n_in``, which counts the padding's taps: on ResNet-18's
        2x2 maps (3x3 kernels, padding 1) that is 2.25x the true fan, and the chooser, which
        then overrated the scatter's cost, recomputed densely at 0.4-0.7x the scatter's speed."""
        h, w, ho, wo, sy, sx, py, px, kh, kw, cg = (int(v) for v in self.pgeom[:11])
        return float(K.axis_fan(h, ho, kh, sy, py).mean() * K.axis_fan(w, wo, kw, sx, px).mean() * cg)

    def emit(self, b: Builder, j: int) -> None:
        i, fx = self.inp, self.fixed
        r = self._row(b, PIXCONV, j)
        r.in_rows = int(i.row_len > 0)
        rows, row_count = (i.rows, i.row_count) if i.row_len > 0 else (i.touched, i.count)
        r.rows, r.row_count = b.i(rows), b.i(row_count)
        r.geom = b.i(self.pgeom)
        r.px_list, r.px_start, r.vbuf = b.i(self.px[0]), b.i(self.px[1]), b.w(self.px[2], fx)
        r.pg_list, r.pg_count, r.pg_stamp = b.i(self.pg[0]), b.i(self.pg[1]), b.i(self.pg[2])
        r.expand = int(self.expand)
        r.kh, r.c_in, r.lw = self.w.shape
        r.mgeom, r.smap, r.wtap = b.i(self.smap[0]), b.w(self.smap[1], fx), b.w(self.smap[2], fx)
        r.w_cl, r.mem_w, r.rowbuf = (b.w(self.w_cl, fx), b.w(self.dense_bufs[0], fx),
                                     b.w(self.dense_bufs[1], fx))
        r.w_g, r.gbuf = b.w(self.w_g.reshape(-1), fx), b.w(self.gbuf, fx)
        r.pstate = b.i(self.pstate)  # shared, not copied
        r.cost_event, r.cost_pixel, r.cost_frame = self.costs
        r.cost_px_scatter, r.px_per_event = self.scatter_pixel
        r.w8, r.dz = (b.i(self.w8), b.i(self.dz)) if self.w8 is not None else (-1, -1)
        r.l1 = self.l1
        r.done()

    def set_path(self, mode: int) -> None:
        """Path mode of this layer from the next frame on: ``kernels.PATH_AUTO``, ``PATH_SCATTER``,
        ``PATH_DENSE`` or ``PATH_GEMM`` (same outputs and counters on every path). A ``"lava"``
        layer never runs gather-GEMM-scatter, and one whose dense path would not be exact in
        float64 (:func:`sigmadelta.kernels.lava_dense_exact`) runs the scatter only."""
        if self.enc.lava and mode == K.PATH_GEMM:
            raise ValueError(f"layer {self.node.name!r}: a 'lava' conv does not run gather-GEMM-scatter "
                             f"(its messages drop low bits; the scatter and the dense path add them exactly)")
        if self.enc.lava and not self.lava_dense and mode != K.PATH_SCATTER:
            raise ValueError(f"layer {self.node.name!r}: this 'lava' conv runs the scatter path only "
                             f"(its weights could take the dense path's float64 sums beyond 2**53)")
        self.pstate[K.PATH_STATE.mode] = mode

    def may_run(self, path: int) -> bool:
        """Can this layer, in its present path mode, run ``path`` (``kernels.PATH_GEMM`` or
        ``PATH_DENSE``) on some frame? A forced mode runs its path only; ``PATH_AUTO`` recomputes
        on the first frame and takes gather-GEMM-scatter only where its costs allow it
        (:func:`sigmadelta.kernels.gemm_may_win`). The frame loop compiles the paths of the
        layers that may run them (:func:`sigmadelta.assemble.path_flags`)."""
        mode = int(self.pstate[K.PATH_STATE.mode])
        if mode != K.PATH_AUTO:
            return mode == path
        if path == K.PATH_GEMM:
            return K.gemm_may_win(self.w_cl.shape[2], self.costs[0], self.costs[1])
        return True

    @property
    def path_frames(self) -> tuple[int, int, int]:
        """Frames this layer ran by the scatter, the dense path and gather-GEMM-scatter since
        the last reset."""
        ps = K.PATH_STATE
        return (int(self.pstate[ps.frames_scatter]), int(self.pstate[ps.frames_dense]),
                int(self.pstate[ps.frames_gemm]))

    def reset(self) -> None:
        super().reset()
        self.pg[1][0] = 0
        self.pg[2][:] = -1
        if len(self.smap[0]):
            self.smap[0][1] = -1  # no last frame: the map path
        ps = K.PATH_STATE
        self.pstate[[ps.last_events, ps.last_touched, ps.last_pixels, ps.frames_scatter,
                     ps.frames_dense, ps.frames_gemm, ps.first_inputs]] = 0
