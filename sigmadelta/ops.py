"""Runtime operators: each graph node's state arrays, laid out for its kernels.

This module turns every :mod:`sigmadelta.graph` node into an operator holding
small NamedTuples of arrays (structure of arrays) and the weights in the layout
its kernels read; :mod:`sigmadelta.program` compiles the operators into the op
table that the one frame loop (:func:`sigmadelta.program.run_frames`) runs.

Layout: channels-last (:mod:`sigmadelta.layout`). The weight layers' operators
live in :mod:`sigmadelta.weightops`; every operator declares its columns of the
op table once (``SLOTS``, :mod:`sigmadelta.slots`) and fills them in ``emit``.

Conv layers with groups 1 and dilation 1 run one fused kernel per frame
(:func:`sigmadelta.kernels.conv_layer_step`) on weights in run layout; their
output (and the activations after them) is listed by pixel (``NodeState.rows``),
and the per-neuron list is only filled where a consumer reads it. All buffers are
allocated once, in the constructors: the frame loop allocates nothing.
"""

from __future__ import annotations

import numpy as np

from . import graph as g
from . import kernels as K
from .layout import NodeState, fan_out, grid, pair, to_internal, to_torch_layout
from .slots import (
    ACTIVATION,
    ADD,
    CONCAT,
    FLATTEN,
    GATHER,
    INPUT,
    MUL,
    POOL,
    RESAMPLE,
    UPSAMPLE,
    Builder,
    layout,
)
from .weightops import ConvOp, ConvTOp, DenseOp, Encoder, PixelConvOp, QuantState, WeightOp

__all__ = [
    "NodeState", "QuantState", "Encoder", "InputOp", "WeightOp", "DenseOp", "ConvOp", "PixelConvOp",
    "ActivationOp", "PoolOp", "FlattenOp", "AddOp", "MulOp", "UpsampleOp", "ConcatOp", "ConvTOp",
    "ResampleOp", "GatherOp", "bilinear_axis", "build_ops",
    "pipeline_order", "to_internal",
    "to_torch_layout", "grid", "pair", "fan_out",
]

_ACT_CODES = {name: code for code, name in enumerate(g.ACTIVATIONS)}  # kernels.pointwise


def _node_state(node: g.Node, dtype) -> NodeState:
    size = node.size
    n_pix = int(np.prod(node.shape[1:])) if len(node.shape) == 3 else 1
    return NodeState(
        np.zeros(size, dtype), np.zeros(size, np.int64), np.zeros(1, np.int64),
        np.full(size, -1, np.int64), np.zeros(n_pix + 1, np.int64), np.zeros(1, np.int64), 0,
    )


class InputOp:
    """Input: load the frame channels-last and list the neurons whose value changed.

    With more than ``kernels.quantize.SMALL_C`` (4) channels it keeps the last frame in
    PyTorch layout (``prev``) and a change mask (see :func:`sigmadelta.kernels.load_frame`).
    ``pool``: the pooling that is its only consumer (up to ``SMALL_C`` channels), else None;
    ``fused`` (set by :func:`sigmadelta.assemble.build_program` where that pooling runs right
    after it): its row runs both (:func:`sigmadelta.kernels.input_pool`).
    """

    SLOTS = layout("Input", ["channels", "value", "touched", "count", "prev", "mask", "fused"])
    pool, fused = None, False

    def __init__(self, node, ins, out):
        self.out = out
        self.shape = tuple(node.shape)
        c = self.shape[0] if len(self.shape) == 3 else 1
        words = K.mask_words(c, out.value.shape[0] // c)
        self.prev = np.zeros(out.value.shape[0] if words else 0, out.value.dtype)
        self.mask = np.zeros(words, np.int64)

    def emit(self, b: Builder) -> None:
        o, r = self.out, b.row(INPUT, self.SLOTS)
        r.channels = int(self.shape[0]) if len(self.shape) == 3 else 1
        r.value, r.touched, r.count = b.f(o.value), b.i(o.touched), b.i(o.count)
        r.prev, r.mask, r.fused = b.f(self.prev), b.i(self.mask), int(self.fused)
        r.done()


class ActivationOp:
    """Elementwise nonlinearity on the touched neurons; shares its input's touched list."""

    def __init__(self, node: g.Activation, ins, out):
        self.inp, self.out = ins[0], out
        self.args = (_ACT_CODES[node.fn], float(node.alpha), float(node.lo), float(node.hi))

    @property
    def smooth(self) -> bool:
        """Whether its function is a smooth one (sigmoid, tanh, gelu, ...: a code above
        :data:`sigmadelta.kernels.CHEAP_MAX`), compiled into the loop only with flag ``smooth``."""
        return self.args[0] > K.CHEAP_MAX

    SLOTS = layout("Activation", ["x", "y", "touched", "count", "rows", "row_count", "row_len", "fn"],
                   ["alpha", "lo", "hi"])

    def emit(self, b: Builder) -> None:
        i, r = self.inp, b.row(ACTIVATION, self.SLOTS)
        r.x, r.y, r.touched, r.count = b.f(i.value), b.f(self.out.value), b.i(i.touched), b.i(i.count)
        r.rows, r.row_count, r.row_len = b.i(i.rows), b.i(i.row_count), i.row_len
        r.fn, r.alpha, r.lo, r.hi = self.args
        r.done()


class PoolOp:
    """Average / max pooling of every window containing a touched input.

    A global pooling (one window: the whole map, no padding) of an input listed by pixel
    rows reads the rows (``by_rows``; :func:`sigmadelta.kernels.global_pool_rows`), not the
    neuron list. ``fused``: run by its input's row (:class:`InputOp`), its own row does nothing."""

    fused = False

    def __init__(self, node: g.Pool, ins, out, in_shape):
        self.inp, self.out = ins[0], out
        self.in_hw, self.c = grid(in_shape)
        self.out_hw, _ = grid(node.shape)
        self.geom = (pair(node.kernel), pair(node.stride), pair(node.padding), node.op == "max")
        n_in = self.inp.value.shape[0]  # the kernel's input mask, as bytes of an int64 array
        self.hit = np.zeros((n_in + 7) // 8, np.int64)
        whole = (tuple(self.geom[0]) == tuple(self.in_hw) and not self.geom[2].any()
                 and tuple(self.out_hw) == (1, 1))
        self.by_rows = bool(whole and self.inp.row_len == self.c)
        self.acc = np.zeros(self.c, np.float64)  # float64 sums of the global pooling by rows
        # the input's pixel count, read only by rows (else a private dummy: a two-stage run hands
        # over what both stages' tables name, :mod:`sigmadelta.stages`)
        self.row_count = self.inp.row_count if self.by_rows else np.zeros(1, np.int64)

    SLOTS = layout("Pool", ["x", "touched", "count", "in_hw", "c", "out_hw", "kernel", "stride",
                            "padding", "is_max", "y", "out_touched", "out_count", "out_stamp", "hit",
                            "by_rows", "row_count", "acc", "fused"])

    def emit(self, b: Builder) -> None:
        i, o, r = self.inp, self.out, b.row(POOL, self.SLOTS)
        kernel, stride, padding, is_max = self.geom
        r.x, r.touched, r.count = b.f(i.value), b.i(i.touched), b.i(i.count)
        r.in_hw, r.c, r.out_hw = b.i(self.in_hw), self.c, b.i(self.out_hw)
        r.kernel, r.stride, r.padding, r.is_max = b.i(kernel), b.i(stride), b.i(padding), int(is_max)
        r.y, r.out_touched, r.out_count, r.out_stamp = (b.f(o.value), b.i(o.touched), b.i(o.count),
                                                        b.i(o.stamp))
        r.hit = b.i(self.hit)
        r.by_rows, r.row_count, r.acc = int(self.by_rows), b.i(self.row_count), b.d(self.acc)
        r.fused = int(self.fused)
        r.done()


class FlattenOp:
    """Channels-last ``[H, W, C]`` to PyTorch's flat ``[C*H*W]`` order."""

    def __init__(self, node, ins, out, in_shape):
        self.inp, self.out = ins[0], out
        hw, self.c = grid(in_shape)
        self.hw = int(np.prod(hw))

    SLOTS = layout("Flatten", ["x", "touched", "count", "hw", "c", "y", "out_touched", "out_count"])

    def emit(self, b: Builder) -> None:
        i, o, r = self.inp, self.out, b.row(FLATTEN, self.SLOTS)
        r.x, r.touched, r.count, r.hw, r.c = b.f(i.value), b.i(i.touched), b.i(i.count), self.hw, self.c
        r.y, r.out_touched, r.out_count = b.f(o.value), b.i(o.touched), b.i(o.count)
        r.done()


class UpsampleOp:
    """Nearest upsampling: every touched input neuron rewrites and lists its copies."""

    def __init__(self, node, ins, out, in_shape):
        self.inp, self.out = ins[0], out
        self.w_in, self.c = int(in_shape[2]), int(in_shape[0])
        self.scale = tuple(int(s) for s in node.scale)

    SLOTS = layout("Upsample", ["x", "touched", "count", "w_in", "c", "sh", "sw", "y", "out_touched",
                                "out_count"])

    def emit(self, b: Builder) -> None:
        i, o, r = self.inp, self.out, b.row(UPSAMPLE, self.SLOTS)
        r.x, r.touched, r.count, r.w_in, r.c = b.f(i.value), b.i(i.touched), b.i(i.count), self.w_in, self.c
        r.sh, r.sw = self.scale
        r.y, r.out_touched, r.out_count = b.f(o.value), b.i(o.touched), b.i(o.count)
        r.done()


def bilinear_axis(n_in: int, n_out: int, align_corners: bool, scale: float) -> tuple:
    """PyTorch's linear interpolation along one axis: ``(i0, i1, l1)`` per output position,
    output ``o`` reading ``(1 - l1[o]) * x[i0[o]] + l1[o] * x[i1[o]]`` (see ``graph.Resample``)."""
    o = np.arange(n_out, dtype=np.float64)
    if align_corners:
        src = o * ((n_in - 1) / (n_out - 1) if n_out > 1 else 0.0)
    else:
        ratio = 1.0 / scale if scale > 0 else n_in / n_out
        src = np.maximum(ratio * (o + 0.5) - 0.5, 0.0)
    i0 = np.minimum(src.astype(np.int64), n_in - 1)
    l1 = np.clip(src - i0, 0.0, 1.0)
    return i0, np.minimum(i0 + 1, n_in - 1), l1


class ResampleOp:
    """Bilinear resampling as a sparse map over pixels (fan-in and fan-out lists), the same for
    every channel: the outputs reached by a touched input are recomputed from their fan-in
    (:func:`sigmadelta.kernels.pixel_map_update`)."""

    def __init__(self, node: g.Resample, ins, out, in_shape):
        self.inp, self.out = ins[0], out
        self.c = int(in_shape[0])
        (h, w), (oh, ow) = in_shape[1:], node.shape[1:]
        y0, y1, ly = bilinear_axis(h, oh, node.align_corners, node.scale_h)
        x0, x1, lx = bilinear_axis(w, ow, node.align_corners, node.scale_w)
        taps = [(y0, x0, (1 - ly)[:, None] * (1 - lx)[None]), (y0, x1, (1 - ly)[:, None] * lx[None]),
                (y1, x0, ly[:, None] * (1 - lx)[None]), (y1, x1, ly[:, None] * lx[None])]
        q = np.arange(oh * ow).reshape(oh, ow)
        qs = np.stack([q] * 4, -1).ravel()  # output pixel of each (output, tap), taps last
        ps = np.stack([ty[:, None] * w + tx[None, :] for ty, tx, _ in taps], -1).ravel()  # input pixel
        ws = np.stack([tw for _, _, tw in taps], -1).ravel()
        keep = ws != 0
        qs, ps, ws = qs[keep], ps[keep], ws[keep]
        self.in_start = np.concatenate([[0], np.cumsum(np.bincount(qs, minlength=oh * ow))])
        self.in_pix, self.in_w = ps, ws  # already grouped by output pixel, in tap order
        pairs = np.unique(np.stack([ps, qs], 1), axis=0)  # (input, output) pixel, sorted by input
        self.out_start = np.concatenate([[0], np.cumsum(np.bincount(pairs[:, 0], minlength=h * w))])
        self.out_pix = pairs[:, 1].copy()

    SLOTS = layout("Resample", ["x", "touched", "count", "c", "out_start", "out_pix", "in_start",
                                "in_pix", "in_w", "y", "out_touched", "out_count", "out_stamp"])

    def emit(self, b: Builder) -> None:
        i, o, r = self.inp, self.out, b.row(RESAMPLE, self.SLOTS)
        r.x, r.touched, r.count, r.c = b.f(i.value), b.i(i.touched), b.i(i.count), self.c
        r.out_start, r.out_pix = b.i(self.out_start), b.i(self.out_pix)
        r.in_start, r.in_pix, r.in_w = b.i(self.in_start), b.i(self.in_pix), b.d(self.in_w)
        r.y, r.out_touched, r.out_count, r.out_stamp = (b.f(o.value), b.i(o.touched), b.i(o.count),
                                                        b.i(o.stamp))
        r.done()


class GatherOp:
    """Channel routing ``y[p, c] = x[p, src[c]]``: each touched input is copied to the output
    that reads it (``dst``, the inverse of ``src``; -1 where no output reads a channel)."""

    def __init__(self, node: g.Gather, ins, out, in_shape):
        self.inp, self.out = ins[0], out
        self.c_in, self.c_out = int(in_shape[0]), int(node.shape[0])
        self.dst = np.full(self.c_in, -1, np.int64)
        self.dst[np.asarray(node.src, np.int64)] = np.arange(self.c_out)

    SLOTS = layout("Gather", ["x", "touched", "count", "c_in", "dst", "c_out", "y", "out_touched",
                              "out_count"])

    def emit(self, b: Builder) -> None:
        i, o, r = self.inp, self.out, b.row(GATHER, self.SLOTS)
        r.x, r.touched, r.count, r.c_in = b.f(i.value), b.i(i.touched), b.i(i.count), self.c_in
        r.dst, r.c_out = b.i(self.dst), self.c_out
        r.y, r.out_touched, r.out_count = b.f(o.value), b.i(o.touched), b.i(o.count)
        r.done()


class AddOp:
    """Residual sum of two inputs; only neurons touched in either one are recomputed.

    Where both inputs are listed by pixel rows of the same length (pixel convs, or the
    activations after them) the add reads those rows (``c`` channels a row;
    :func:`sigmadelta.kernels.add_rows`, which stamps pixels in the first entries of the
    output's ``stamp``), lists its own output by pixel rows too (``row_len = c``) and per
    neuron only if ``expand`` (see :func:`build_ops`); the convs before it then need not list
    their neurons. Otherwise (``c`` 0) it reads and writes neuron lists."""

    def __init__(self, node, ins, out):
        self.a, self.b = ins
        self.out = out
        same = self.a.row_len > 0 and self.a.row_len == self.b.row_len
        self.c = int(self.a.row_len) if same else 0
        self.expand = True  # list output neurons too; build_ops clears it when unneeded

    @property
    def by_rows(self) -> bool:
        """Whether it reads its inputs' pixel rows (so it needs neither neuron list)."""
        return self.c > 0

    SLOTS = layout("Add", ["a", "b", "y", "a_touched", "a_count", "b_touched", "b_count",
                           "out_touched", "out_count", "out_stamp", "c", "a_rows", "a_row_count",
                           "b_rows", "b_row_count", "out_rows", "out_row_count", "expand"])

    def emit(self, b: Builder) -> None:
        o, r = self.out, b.row(ADD, self.SLOTS)
        r.a, r.b, r.y = b.f(self.a.value), b.f(self.b.value), b.f(o.value)
        r.a_touched, r.a_count = b.i(self.a.touched), b.i(self.a.count)
        r.b_touched, r.b_count = b.i(self.b.touched), b.i(self.b.count)
        r.out_touched, r.out_count, r.out_stamp = b.i(o.touched), b.i(o.count), b.i(o.stamp)
        r.c, r.expand = self.c, int(self.expand)
        ra, rb = ((self.a.rows, self.a.row_count), (self.b.rows, self.b.row_count)) if self.c else (
            (self.a.touched, self.a.count), (self.b.touched, self.b.count))
        r.a_rows, r.a_row_count, r.b_rows, r.b_row_count = b.i(ra[0]), b.i(ra[1]), b.i(rb[0]), b.i(rb[1])
        r.out_rows, r.out_row_count = b.i(o.rows), b.i(o.row_count)
        r.done()


class MulOp:
    """Product of two changing inputs, ``b`` per channel or per neuron (see ``graph.Mul``)."""

    def __init__(self, node, ins, out, in_shapes):
        self.a, self.b = ins
        self.out = out
        self.c = int(node.shape[0])
        self.per_channel = int(in_shapes[1] != in_shapes[0])

    SLOTS = layout("Mul", ["a", "b", "y", "a_touched", "a_count", "b_touched", "b_count", "c",
                           "per_channel", "out_touched", "out_count", "out_stamp"])

    def emit(self, b: Builder) -> None:
        o, r = self.out, b.row(MUL, self.SLOTS)
        r.a, r.b, r.y = b.f(self.a.value), b.f(self.b.value), b.f(o.value)
        r.a_touched, r.a_count = b.i(self.a.touched), b.i(self.a.count)
        r.b_touched, r.b_count = b.i(self.b.touched), b.i(self.b.count)
        r.c, r.per_channel = self.c, self.per_channel
        r.out_touched, r.out_count, r.out_stamp = b.i(o.touched), b.i(o.count), b.i(o.stamp)
        r.done()


class ConcatOp:
    """Channel concatenation, channels-last: inputs fill disjoint channel ranges."""

    def __init__(self, node, ins, out, in_shapes):
        self.ins, self.out = ins, out
        self.c_out = int(node.shape[0])
        self.c_in = [int(s[0]) for s in in_shapes]
        self.offsets = np.cumsum([0] + self.c_in[:-1]).tolist()

    SLOTS = layout("Concat", ["x", "touched", "count", "c", "offset", "c_out", "y", "out_touched",
                              "out_count", "first"])

    def emit(self, b: Builder) -> None:
        """One row per input: each fills its channel range (the first clears the list)."""
        o = self.out
        for k, (inp, c, off) in enumerate(zip(self.ins, self.c_in, self.offsets, strict=True)):
            r = b.row(CONCAT, self.SLOTS)
            r.x, r.touched, r.count = b.f(inp.value), b.i(inp.touched), b.i(inp.count)
            r.c, r.offset, r.c_out = c, off, self.c_out
            r.y, r.out_touched, r.out_count, r.first = b.f(o.value), b.i(o.touched), b.i(o.count), int(k == 0)
            r.done()


def build_ops(net: g.Network, dtype=np.float64) -> tuple[list, list[NodeState], list[WeightOp]]:
    """Allocate every node's state and operator, in topological order."""
    states: list[NodeState] = []
    ops: list = []
    for node in net.nodes:
        ins = [states[j] for j in node.inputs]
        in_shapes = [net.nodes[j].shape for j in node.inputs]
        if isinstance(node, g.Activation):
            src = ins[0]  # elementwise: share the touched lists, own the values
            out = src._replace(value=np.zeros(node.size, dtype))
        else:
            out = _node_state(node, dtype)
        op = _make_op(node, ins, out, in_shapes, dtype)
        if isinstance(op, PixelConvOp) or (isinstance(op, AddOp) and op.by_rows):
            out = out._replace(row_len=int(node.shape[0]))
            op.out = out
        states.append(out)
        ops.append(op)
    _skip_unneeded_listing(net, ops)
    for i, op in enumerate(ops):  # an input whose only consumer is a pooling (InputOp.pool)
        users = [j for j, node in enumerate(net.nodes) if i in node.inputs]
        if (isinstance(op, InputOp) and len(users) == 1 and isinstance(ops[users[0]], PoolOp)
                and not ops[users[0]].by_rows and op.mask.shape[0] == 0):  # SMALL_C channels at most
            op.pool = ops[users[0]]
    weight_ops = [op for op in ops if isinstance(op, WeightOp)]
    return ops, states, weight_ops


def pipeline_order(net: g.Network) -> list[int]:
    """Node (= operator) order for ``timing="pipelined"``: stages in reverse.

    A stage is the input, or a weight layer with the non-weight nodes after it. Running the
    last stage first makes every weight layer read what its input node held at the previous
    frame, one step of delay per weight layer, as on Loihi; within a stage nodes act on
    values of the same frame. A non-weight node fed by two stages (a residual add, a concat
    across branches) has no such order; it is refused.
    """
    stage = []
    for i, node in enumerate(net.nodes):
        if isinstance(node, (g.Input, *g.WEIGHT_KINDS)):
            stage.append(i)
            continue
        owners = {stage[j] for j in node.inputs}
        if len(owners) != 1:
            raise NotImplementedError(
                f"timing='pipelined' in the event engine: node {node.name!r} combines values "
                "of different weight layers; use sigmadelta.reference for this network")
        stage.append(owners.pop())
    heads = sorted(set(stage), reverse=True)
    return [i for h in heads for i in range(len(net.nodes)) if stage[i] == h]


def _skip_unneeded_listing(net: g.Network, ops: list) -> None:
    """Clear ``expand`` on pixel convs and adds by rows whose neuron list no consumer reads.

    A neuron list is read by every consumer except a pixel conv (which encodes the
    pixel list), an activation (which runs on the pixel list, and passes it on), an add
    whose inputs are both listed by pixel rows, a global pooling of such an input
    (``by_rows`` of :class:`AddOp` and :class:`PoolOp`) and a float depthwise conv, which
    then lists the neurons itself on the frames it scatters (``ConvOp.lazy``: its dense
    path reads every input, so the frames it recomputes need no list).
    """
    consumers: list[list[int]] = [[] for _ in net.nodes]
    for j, node in enumerate(net.nodes):
        for i in node.inputs:
            consumers[i].append(j)

    def needs(i: int) -> bool:
        for j in consumers[i]:
            if isinstance(net.nodes[j], g.Activation):
                if needs(j):
                    return True
            elif not (isinstance(ops[j], PixelConvOp) or getattr(ops[j], "by_rows", False)
                      or _lists_lazily(ops[j])):
                return True
        return False

    def mark_lazy(i: int) -> None:  # the depthwise convs reading node i's rows (through activations)
        for j in consumers[i]:
            if isinstance(net.nodes[j], g.Activation):
                mark_lazy(j)
            elif _lists_lazily(ops[j]):
                ops[j].lazy = True

    for i, op in enumerate(ops):
        if isinstance(op, PixelConvOp):
            op.expand = op.fixed or needs(i)  # fixed point: z is rebuilt on the neuron list
        elif isinstance(op, AddOp) and op.by_rows:
            op.expand = needs(i)
        if isinstance(op, (PixelConvOp, AddOp)) and op.out.row_len > 0 and not op.expand:
            mark_lazy(i)


def _lists_lazily(op) -> bool:
    return isinstance(op, ConvOp) and op.lists_lazily


def _make_op(node, ins, out, in_shapes, dtype):
    if isinstance(node, g.Input):
        return InputOp(node, ins, out)
    if isinstance(node, g.Dense):
        return DenseOp(node, ins, out, dtype, in_shapes[0])
    if isinstance(node, g.Conv):
        cls = PixelConvOp if PixelConvOp.takes(node) else ConvOp
        return cls(node, ins, out, dtype, in_shapes[0])
    if isinstance(node, g.Activation):
        return ActivationOp(node, ins, out)
    if isinstance(node, g.Pool):
        return PoolOp(node, ins, out, in_shapes[0])
    if isinstance(node, g.Flatten):
        return FlattenOp(node, ins, out, in_shapes[0])
    if isinstance(node, g.Add):
        return AddOp(node, ins, out)
    if isinstance(node, g.Concat):
        return ConcatOp(node, ins, out, in_shapes)
    if isinstance(node, g.Mul):
        return MulOp(node, ins, out, in_shapes)
    if isinstance(node, g.Upsample):
        return UpsampleOp(node, ins, out, in_shapes[0])
    if isinstance(node, g.ConvTranspose):
        return ConvTOp(node, ins, out, dtype, in_shapes[0])
    if isinstance(node, g.Resample):
        return ResampleOp(node, ins, out, in_shapes[0])
    if isinstance(node, g.Gather):
        return GatherOp(node, ins, out, in_shapes[0])
    raise TypeError(f"no runtime operator for node {node.name!r} of kind {node.kind!r}")
