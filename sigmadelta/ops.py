"""Runtime operators: each graph node's state arrays, laid out for its kernels.

This module turns every :mod:`sigmadelta.graph` node into an operator holding
small NamedTuples of arrays (structure of arrays) and the weights in the layout
its kernels read; :mod:`sigmadelta.program` compiles the operators into the op
table that the one frame loop (:func:`sigmadelta.program.run_frames`) runs.

Layout: a node of shape ``(C, H, W)`` keeps its value channels-last, flattened
from ``[H, W, C]``, so that a conv event updates a contiguous row of output
channels; a vector node ``(N,)`` is stored as is.

Conv layers with groups 1 and dilation 1 run one fused kernel per frame
(:func:`sigmadelta.kernels.conv_layer_step`) on weights in run layout; their
output (and the activations after them) is listed by pixel (``NodeState.rows``),
and the per-neuron list is only filled where a consumer reads it. All buffers are
allocated once, in the constructors: the frame loop allocates nothing.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np

from . import graph as g
from . import kernels as K
from .fixedpoint import integer_weights

__all__ = [
    "NodeState", "QuantState", "InputOp", "WeightOp", "ActivationOp", "PoolOp", "FlattenOp", "AddOp",
    "ConcatOp", "build_ops", "to_internal", "to_torch_layout", "grid", "fan_out",
]

_ACT_CODES = {"relu": 0, "leaky": 1, "clip": 2, "identity": 3}


class NodeState(NamedTuple):
    """A node's output: ``value`` [N] and the neurons touched this frame.

    A pixel conv layer (and the activations sharing its list) also lists its touched
    *pixels*: ``rows[:row_count[0]]``, each standing for the ``row_len`` channels
    ``p*row_len + j``. Where ``row_len > 0`` the pixel list is always valid and the
    neuron list is filled only if some consumer needs it (see :func:`build_ops`).
    """

    value: np.ndarray  # float [N], channels-last
    touched: np.ndarray  # int64 [N]: touched[:count[0]] lists this frame's neurons
    count: np.ndarray  # int64 [1]
    stamp: np.ndarray  # int64 [N]: frame number at which a neuron was last listed
    rows: np.ndarray | None = None  # int64 [H*W + 1]: touched pixels (row_len > 0 only; +1 spare)
    row_count: np.ndarray | None = None  # int64 [1]
    row_len: int = 0  # channels per listed pixel; 0: no pixel list


class QuantState(NamedTuple):
    """A weight layer's input encoder: its memory and this frame's event queue."""

    memory: np.ndarray  # herding: running sum of spikes; threshold: the value already sent
    ev_idx: np.ndarray  # int64 [N_in]
    ev_val: np.ndarray  # float [N_in]


def grid(shape: tuple[int, ...]) -> tuple[np.ndarray, int]:
    """``(H, W)`` as an int64 array and the channel count ``C`` of a node shape."""
    if len(shape) == 3:
        return np.array(shape[1:], dtype=np.int64), int(shape[0])
    return np.array((1, 1), dtype=np.int64), int(shape[0])


def to_internal(x: np.ndarray) -> np.ndarray:
    """PyTorch layout ``[C, H, W]`` (or ``[N]``) to the engine's flat channels-last."""
    return x.transpose(1, 2, 0).ravel() if x.ndim == 3 else x.ravel()


def to_torch_layout(value: np.ndarray, shape: tuple[int, ...]) -> np.ndarray:
    """The engine's flat channels-last value (last axis; leading axes kept) in PyTorch layout."""
    lead = value.shape[:-1]
    if len(shape) == 3:
        c, h, w = shape
        return np.moveaxis(value.reshape(*lead, h, w, c), -1, -3)
    return value.reshape(*lead, *shape)


def _node_state(node: g.Node, dtype) -> NodeState:
    size = node.size
    n_pix = int(np.prod(node.shape[1:])) if len(node.shape) == 3 else 1
    return NodeState(
        np.zeros(size, dtype), np.zeros(size, np.int64), np.zeros(1, np.int64),
        np.full(size, -1, np.int64), np.zeros(n_pix + 1, np.int64), np.zeros(1, np.int64), 0,
    )


def _pair(v) -> np.ndarray:
    return np.asarray(v, dtype=np.int64).reshape(2)


class InputOp:
    """Input: load the frame channels-last and list the neurons whose value changed.

    With more than ``kernels.quantize.SMALL_C`` (4) channels it keeps the last frame in
    PyTorch layout (``prev``) and a change mask (see :func:`sigmadelta.kernels.load_frame`).
    """

    def __init__(self, node, ins, out):
        self.out = out
        self.shape = tuple(node.shape)
        c = self.shape[0] if len(self.shape) == 3 else 1
        words = K.mask_words(c, out.value.shape[0] // c)
        self.prev = np.zeros(out.value.shape[0] if words else 0, out.value.dtype)
        self.mask = np.zeros(words, np.int64)


class WeightOp:
    """Dense or conv layer: encode the input change as spikes, scatter them, list outputs.

    Per frame::

        events = Q(input value at touched neurons)         # herding or threshold
        z += W * events * gain                              # gain = 1/k for herding
        touched = outputs that received at least one event  # (all of them on the first frame)
    """

    def __init__(self, node: g.Dense | g.Conv, ins: list[NodeState], out: NodeState, dtype,
                 in_shape: tuple[int, ...]):
        self.node, self.inp, self.out = node, ins[0], out
        n_in = self.inp.value.shape[0]
        self.fixed = node.weight_bits > 0
        self.pixel = False
        # fixed point: integer spikes and weights accumulate exactly in int64 (see fixedpoint)
        wdtype = np.int64 if self.fixed else dtype
        self.q = QuantState(np.zeros(n_in, dtype), np.zeros(n_in, np.int64), np.zeros(n_in, wdtype))
        self.herding = node.quantizer == "herding"
        self.units = self.herding and np.ndim(node.scale) > 0  # one scale per input neuron
        if self.units:
            self.k_units = to_internal(np.asarray(node.scale, np.float64))
            self.fanout = fan_out(node, in_shape)
        self.gain = 1 if self.fixed else (1.0 / node.scale if self.herding and not self.units else 1.0)
        self.bias_cl = np.tile(node.bias.astype(dtype), out.value.shape[0] // node.bias.shape[0])
        self.acc = np.zeros(out.value.shape[0], np.int64) if self.fixed else out.value
        if self.fixed:
            self.acc_limit = 2 ** (node.acc_bits - 1) - 1
            self.acc_gain = node.weight_scale / node.scale
        weight = integer_weights(node) if self.fixed else node.weight
        if isinstance(node, g.Dense):
            self.w = np.ascontiguousarray(weight.T, dtype=wdtype)
        else:
            self._init_conv(node, weight, wdtype, in_shape)

    def _init_conv(self, node: g.Conv, weight: np.ndarray, dtype, in_shape: tuple[int, ...]) -> None:
        c_out, c_in_g, kh, kw = weight.shape
        groups = node.groups
        cg = c_out // groups
        w = weight.reshape(groups, cg, c_in_g, kh, kw)
        # w_cl[ky, kx, g*c_in_g + cl, j] = W[g*cg + j, cl, ky, kx]
        self.w = np.ascontiguousarray(
            w.transpose(3, 4, 0, 2, 1).reshape(kh, kw, groups * c_in_g, cg), dtype=dtype
        )
        self.in_hw, _ = grid(in_shape)
        self.out_hw, _ = grid(node.shape)
        self.geom = (_pair(node.stride), _pair(node.padding), _pair(node.dilation))
        n_pg = int(np.prod(self.out_hw)) * groups
        self.pg = (np.zeros(n_pg, np.int64), np.zeros(1, np.int64), np.full(n_pg, -1, np.int64))
        self.groups, self.cg = groups, cg
        self.pixel = groups == 1 and tuple(node.dilation) == (1, 1) and not self.units
        if self.pixel:  # pixel-grouped fast path (sigmadelta.kernels.pixel)
            n_in = self.q.ev_idx.shape[0]
            w_cl = self.w
            self.w = K.run_layout(self.w, node.stride)
            self.pgeom = K.make_geom(self.in_hw, self.out_hw, node.stride, node.padding,
                                     (kh, kw), cg)
            self.px = (np.zeros(n_in, np.int64), np.zeros(n_in + 1, np.int64),
                       np.zeros(self.w.shape[1], self.w.dtype))
            self.pg = (self.out.rows, self.out.row_count, self.pg[2])  # pixel list = node rows
            self.expand = True  # list output neurons too; build_ops clears it when unneeded
            # one input channel: the spike-map path where events are dense (kernels.spikemap)
            self.smap = K.make_map(self.pgeom, w_cl)

    def reset(self) -> None:
        self.q.memory[:] = 0
        self.acc[:] = 0
        if hasattr(self, "pg"):
            self.pg[1][0] = 0
            self.pg[2][:] = -1
        if hasattr(self, "smap") and len(self.smap[0]):
            self.smap[0][1] = -1  # no last frame: the map path
        self.out.value[:] = self.bias_cl


class ActivationOp:
    """Elementwise nonlinearity on the touched neurons; shares its input's touched list."""

    def __init__(self, node: g.Activation, ins, out):
        self.inp, self.out = ins[0], out
        self.args = (_ACT_CODES[node.fn], float(node.alpha), float(node.lo), float(node.hi))


class PoolOp:
    """Average / max pooling of every window containing a touched input."""

    def __init__(self, node: g.Pool, ins, out, in_shape):
        self.inp, self.out = ins[0], out
        self.in_hw, self.c = grid(in_shape)
        self.out_hw, _ = grid(node.shape)
        self.geom = (_pair(node.kernel), _pair(node.stride), _pair(node.padding), node.op == "max")
        n_in = self.inp.value.shape[0]  # the kernel's input mask, as bytes of an int64 array
        self.hit = np.zeros((n_in + 7) // 8, np.int64)


class FlattenOp:
    """Channels-last ``[H, W, C]`` to PyTorch's flat ``[C*H*W]`` order."""

    def __init__(self, node, ins, out, in_shape):
        self.inp, self.out = ins[0], out
        hw, self.c = grid(in_shape)
        self.hw = int(np.prod(hw))


class AddOp:
    """Residual sum of two inputs; only neurons touched in either one are recomputed."""

    def __init__(self, node, ins, out):
        self.a, self.b = ins
        self.out = out


class ConcatOp:
    """Channel concatenation, channels-last: inputs fill disjoint channel ranges."""

    def __init__(self, node, ins, out, in_shapes):
        self.ins, self.out = ins, out
        self.c_out = int(node.shape[0])
        self.c_in = [int(s[0]) for s in in_shapes]
        self.offsets = np.cumsum([0] + self.c_in[:-1]).tolist()


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
        if getattr(op, "pixel", False):
            out = out._replace(row_len=int(node.shape[0]))
            op.out = out
        states.append(out)
        ops.append(op)
    _skip_unneeded_listing(net, ops)
    weight_ops = [op for op in ops if isinstance(op, WeightOp)]
    return ops, states, weight_ops


def _skip_unneeded_listing(net: g.Network, ops: list) -> None:
    """Clear ``expand`` on pixel convs whose neuron list no consumer reads.

    A neuron list is read by every consumer except a pixel conv (which encodes the
    pixel list) and an activation (which runs on the pixel list, and passes it on).
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
            elif not getattr(ops[j], "pixel", False):
                return True
        return False

    for i, op in enumerate(ops):
        if getattr(op, "pixel", False):
            op.expand = op.fixed or needs(i)  # fixed point: z is rebuilt on the neuron list


def fan_out(node: g.Dense | g.Conv, in_shape: tuple[int, ...]) -> np.ndarray:
    """In-bounds fan-out of every input neuron, channels-last flat (synops per unit event)."""
    if isinstance(node, g.Dense):
        return np.full(int(np.prod(in_shape)), node.weight.shape[0], np.float64)
    stride, padding, dilation = _pair(node.stride), _pair(node.padding), _pair(node.dilation)
    kernel = node.weight.shape[2:]
    ty, tx = (K.axis_fan(in_shape[1 + a], node.shape[1 + a], kernel[a], stride[a], padding[a],
                         dilation[a]) for a in (0, 1))
    per_pixel = ty[:, None] * tx[None, :] * (node.weight.shape[0] // node.groups)
    return np.repeat(per_pixel.ravel(), in_shape[0]).astype(np.float64)


def _make_op(node, ins, out, in_shapes, dtype):
    if isinstance(node, g.Input):
        return InputOp(node, ins, out)
    if isinstance(node, (g.Dense, g.Conv)):
        return WeightOp(node, ins, out, dtype, in_shapes[0])
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
    raise TypeError(f"no runtime operator for node {node.name!r} of kind {node.kind!r}")
