"""The layer kinds of a converted network: one small dataclass per kind, their labels and checks.

:mod:`sigmadelta.graph` assembles them into a :class:`~sigmadelta.graph.Network` (and
re-exports every name here); the update equations of the quantizers are stated there.
:func:`check_node` validates one node against its inputs' shapes: structure (inputs before the
node, arity), the shape, then the kind's own checks (finite weights of the right shape, known
quantizer and function names, scales > 0), raising :class:`NetworkError` naming the layer.
"""

from __future__ import annotations

from dataclasses import dataclass, field, fields
from typing import ClassVar

import numpy as np

__all__ = [
    "Node",
    "Input",
    "Dense",
    "Conv",
    "Activation",
    "Pool",
    "Flatten",
    "Add",
    "Concat",
    "Mul",
    "Upsample",
    "ConvTranspose",
    "Resample",
    "Gather",
    "WEIGHT_KINDS",
    "NetworkError",
    "NODE_TYPES",
    "QUANTIZERS",
    "ACTIVATIONS",
    "POOL_OPS",
    "layer_label",
    "LAVA_SHIFT",
    "TIMINGS",
    "check_timing",
    "check_node",
]

QUANTIZERS = ("herding", "threshold", "lava")
TIMINGS = ("frame", "pipelined")  # see sigmadelta.Simulator
LAVA_SHIFT = 6  # the "lava" quantizer sends d >> LAVA_SHIFT (Lava's state_exp)
#: Activation functions, in the order of their kernel codes (sigmadelta.kernels.pointwise).
ACTIVATIONS = ("relu", "leaky", "clip", "identity", "sigmoid", "tanh", "gelu", "gelu_tanh", "silu",
               "hardswish", "hardsigmoid", "elu", "softplus", "mish")
POOL_OPS = ("avg", "max")


class NetworkError(ValueError):
    """A network whose structure, shapes or parameters are inconsistent or not finite."""


def check_timing(timing: str) -> str:
    """``timing`` if it is one of :data:`TIMINGS`, else a ValueError naming them."""
    if timing not in TIMINGS:
        raise ValueError(f"timing must be one of {TIMINGS}, got {timing!r}")
    return timing


@dataclass
class Node:
    """Base of every layer: its name, producer indices and output shape (no batch)."""

    name: str
    inputs: tuple[int, ...]
    shape: tuple[int, ...]
    kind: ClassVar[str] = "node"

    @property
    def size(self) -> int:
        """Number of neurons (elements) of the node's output."""
        return int(np.prod(self.shape))

    def params(self) -> dict:
        """Fields beyond name/inputs/shape, for serialisation."""
        skip = {"name", "inputs", "shape"}
        return {f.name: getattr(self, f.name) for f in fields(self) if f.name not in skip}


@dataclass
class Input(Node):
    """The network's input: one frame of shape ``shape``.

    A ``(C, L)`` stream (Conv1d) is held as ``shape = (C, 1, L)``; ``frame_shape``
    then records the ``(C, L)`` the user's frames have (empty when they are ``shape``).
    """

    frame_shape: tuple[int, ...] = ()
    kind: ClassVar[str] = "input"


@dataclass
class _Weighted(Node):
    """Common fields of weight layers: parameters and the input quantizer."""

    weight: np.ndarray = field(default_factory=lambda: np.zeros(0, np.float32))
    bias: np.ndarray = field(default_factory=lambda: np.zeros(0, np.float32))
    quantizer: str = "herding"
    scale: float | np.ndarray = 32.0  # one k, or one per input neuron (the input's shape)
    threshold: float = 0.0
    weight_bits: int = 0  # 0: float weights; >0: fixed point (see sigmadelta.fixedpoint)
    weight_scale: float = 0.0  # fixed point: weight = integer * weight_scale
    acc_bits: int = 32  # fixed point: signed accumulator width checked for overflow

    @property
    def in_shape(self) -> tuple[int, ...]:
        raise NotImplementedError


@dataclass
class Dense(_Weighted):
    """Fully connected layer ``z = W x_hat + b`` with ``weight[out, in]``."""

    kind: ClassVar[str] = "dense"

    @property
    def fan_in(self) -> int:
        return int(self.weight.shape[1])

    def dense_macs(self) -> int:
        """MACs of one dense evaluation of this layer."""
        return int(self.weight.size)


@dataclass
class Conv(_Weighted):
    """2-D convolution ``z = conv(x_hat, W) + b``; ``weight[out, in/groups, kh, kw]``."""

    stride: tuple[int, int] = (1, 1)
    padding: tuple[int, int] = (0, 0)
    dilation: tuple[int, int] = (1, 1)
    groups: int = 1
    kind: ClassVar[str] = "conv"

    def dense_macs(self) -> int:
        """MACs of one dense evaluation: output neurons x (in/groups) x kh x kw."""
        c_out, c_in_g, kh, kw = self.weight.shape
        return int(np.prod(self.shape) * c_in_g * kh * kw)


@dataclass
class Activation(Node):
    """Elementwise nonlinearity ``y = f(x)``, recomputed wherever ``x`` changed.

    ``fn`` (one of ``ACTIVATIONS``) is ``"relu"`` (``max(x, 0)``), ``"leaky"``
    (``x if x > 0 else alpha*x``), ``"clip"`` (``min(max(x, lo), hi)``: ReLU6 and
    Hardtanh), ``"identity"``, or one of PyTorch's ``sigmoid``, ``tanh``, ``gelu``,
    ``gelu_tanh`` (``approximate="tanh"``), ``silu``, ``hardswish``, ``hardsigmoid``,
    ``elu`` (``alpha``), ``softplus`` (``beta = alpha``, ``threshold = hi``), ``mish``.
    """

    fn: str = "relu"
    alpha: float = 0.0
    lo: float = 0.0
    hi: float = 6.0
    kind: ClassVar[str] = "activation"


@dataclass
class Pool(Node):
    """2-D pooling over ``kernel`` windows: ``op`` is ``"avg"`` or ``"max"``.

    Average pooling divides by the full window (``count_include_pad=True``,
    PyTorch's default); max pooling pads with ``-inf``. Global average pooling
    (``AdaptiveAvgPool2d(1)``) is a pool whose kernel is the whole input.
    """

    op: str = "avg"
    kernel: tuple[int, int] = (2, 2)
    stride: tuple[int, int] = (2, 2)
    padding: tuple[int, int] = (0, 0)
    kind: ClassVar[str] = "pool"


@dataclass
class Flatten(Node):
    """Flatten ``[C, H, W]`` to ``[C*H*W]`` in PyTorch's (channels-first) order."""

    kind: ClassVar[str] = "flatten"


@dataclass
class Add(Node):
    """Elementwise sum of its inputs (residual connections)."""

    kind: ClassVar[str] = "add"


@dataclass
class Concat(Node):
    """Concatenation of its inputs along the channel axis (axis 0 without batch)."""

    kind: ClassVar[str] = "concat"


@dataclass
class Mul(Node):
    """Elementwise product ``y = a * b`` of two changing signals (squeeze-and-excitation).

    ``b`` (the second input) has the shape of ``a`` or one value per channel,
    ``(C, 1, 1)``, broadcast over the pixels: when gate ``b_c`` changes, every neuron of
    channel ``c`` is recomputed; when ``a_i`` changes, neuron ``i``.
    """

    kind: ClassVar[str] = "mul"


@dataclass
class Upsample(Node):
    """Nearest-neighbour upsampling by integer factors: ``y[c, i, j] = x[c, i // sh, j // sw]``
    with ``scale = (sh, sw)``; a changed input neuron rewrites its ``sh*sw`` copies."""

    scale: tuple[int, int] = (2, 2)
    kind: ClassVar[str] = "upsample"


@dataclass
class ConvTranspose(_Weighted):
    """Transposed 2-D convolution (``ConvTranspose2d``); ``weight[in, out/groups, kh, kw]``.

    An input change ``d`` at ``(ci, y, x)`` adds ``W[ci, j, ky, kx] * d`` to output
    ``(g*Cg + j, y*sy - py + ky*dy, x*sx - px + kx*dx)`` (``g`` the group of ``ci``,
    ``Cg`` outputs per group) where that lies inside the output:
    ``H_out = (H - 1)*sy - 2*py + dy*(kh - 1) + output_padding_y + 1``.
    """

    stride: tuple[int, int] = (1, 1)
    padding: tuple[int, int] = (0, 0)
    output_padding: tuple[int, int] = (0, 0)
    dilation: tuple[int, int] = (1, 1)
    groups: int = 1
    kind: ClassVar[str] = "convt"

    def dense_macs(self) -> int:
        """MACs of one dense evaluation: input neurons x (out/groups) x kh x kw (every tap)."""
        c_in, cg, kh, kw = self.weight.shape
        return int(c_in * self.in_pixels * cg * kh * kw)

    @property
    def in_pixels(self) -> int:
        """Input pixels ``H*W``, from the output shape and the geometry."""
        kh, kw = self.weight.shape[2:]
        h, w = (_convt_in(self.shape[1 + a], (kh, kw)[a], self.stride[a], self.padding[a],
                          self.dilation[a], self.output_padding[a]) for a in (0, 1))
        return h * w


@dataclass
class Resample(Node):
    """Bilinear resampling (``F.interpolate(mode="bilinear")``), a fixed linear map per channel.

    Output pixel ``(i, j)`` reads input rows ``y0, y1 = min(y0 + 1, H - 1)`` with weights
    ``1 - ly, ly`` (columns likewise), where the source coordinate is ``i * (H - 1)/(H_out - 1)``
    with ``align_corners``, else ``max((i + 0.5) * r - 0.5, 0)`` with ``r = 1/scale_h`` when the
    model gave a scale factor (``scale_h > 0``) and ``H/H_out`` otherwise, as PyTorch computes it.
    """

    align_corners: bool = False
    scale_h: float = 0.0  # the model's scale factor (0: the sizes' ratio)
    scale_w: float = 0.0
    kind: ClassVar[str] = "resample"


@dataclass
class Gather(Node):
    """Channel routing: ``y[c] = x[src[c]]`` at every pixel (channel shuffle, chunk/split).

    No arithmetic and no synaptic operations: a touched input neuron is copied to the
    output neuron that reads it (``src`` has no repeats, so at most one).
    """

    src: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int64))
    kind: ClassVar[str] = "gather"


NODE_TYPES: dict[str, type[Node]] = {
    cls.kind: cls for cls in (Input, Dense, Conv, Activation, Pool, Flatten, Add, Concat, Mul,
                              Upsample, ConvTranspose, Resample, Gather)
}
WEIGHT_KINDS = (Dense, Conv, ConvTranspose)  # the layers that receive spikes


def _axes_text(v: tuple[int, int]) -> str:
    return str(v[0]) if v[0] == v[1] else f"{v[0]}x{v[1]}"


def layer_label(node: Node) -> str:
    """What a layer is, for table rows and plot labels: its full name (module path) and form.

    ``conv1 3x3/2 1->8`` (kernel, ``/stride`` when not 1, ``dil`` when dilated, input and
    output channels, ``dw`` for depthwise, ``gN`` for N groups; a Conv1d's stride and
    dilation along L only), ``fc 144->10`` for a
    dense layer, ``name (kind)`` for any other node. The name is never shortened.
    """
    if isinstance(node, Conv):
        c_out, c_in_g, kh, kw = node.weight.shape
        text = f"{node.name} {kh}x{kw}"
        one_d = kh == 1 and node.shape[1:2] == (1,) and node.stride[0] == node.dilation[0] == 1
        axes = (lambda v: str(v[1])) if one_d else _axes_text  # Conv1d: along L only
        if tuple(node.stride) != (1, 1):
            text += "/" + axes(tuple(node.stride))
        if tuple(node.dilation) != (1, 1):
            text += " dil" + axes(tuple(node.dilation))
        text += f" {c_in_g * node.groups}->{c_out}"
        if node.groups > 1:
            text += " dw" if node.groups == c_out == c_in_g * node.groups else f" g{node.groups}"
        return text
    if isinstance(node, Dense):
        return f"{node.name} {node.weight.shape[1]}->{node.weight.shape[0]}"
    if isinstance(node, ConvTranspose):
        c_in, cg, kh, kw = node.weight.shape
        text = f"{node.name} {kh}x{kw}"
        if tuple(node.stride) != (1, 1):
            text += "/" + _axes_text(tuple(node.stride))
        if tuple(node.dilation) != (1, 1):
            text += " dil" + _axes_text(tuple(node.dilation))
        text += f" {c_in}->{cg * node.groups} transposed"
        return text + (f" g{node.groups}" if node.groups > 1 else "")
    return f"{node.name} ({node.kind})"



def _fail(node: Node, msg: str):
    raise NetworkError(f"layer {node.name!r} ({node.kind}): {msg}")


def _positive(node: Node, what: str, values, minimum: int = 1) -> tuple[int, ...]:
    vals = tuple(values)
    if not all(isinstance(v, (int, np.integer)) and v >= minimum for v in vals):
        _fail(node, f"{what} must be integers >= {minimum}, got {vals}")
    return tuple(int(v) for v in vals)


def check_node(net, i: int, node: Node) -> None:
    """Structure (inputs before the node, arity), the shape, then the kind's own checks."""
    if not isinstance(node, Node):
        raise NetworkError(f"node {i} is a {type(node).__name__}, not a graph Node")
    if not len(node.shape) or 0 in tuple(node.shape):
        _fail(node, f"zero-sized or empty shape {tuple(node.shape)}: a layer needs at least one "
                    f"neuron (remove the layer, or give it outputs)")
    _positive(node, "the shape", node.shape)
    if isinstance(node, Input):
        if i != 0 or node.inputs:
            _fail(node, "only node 0 is the input, and it has no inputs")
        return
    if not node.inputs:
        _fail(node, "no inputs")
    for j in node.inputs:
        if not isinstance(j, (int, np.integer)) or not 0 <= j < i:
            _fail(node, f"input {j!r} is not an earlier node (nodes are in topological order, "
                        f"this is node {i})")
    arity = {Add: 2, Mul: 2}.get(type(node), 0 if isinstance(node, Concat) else 1)
    if arity and len(node.inputs) != arity:
        _fail(node, f"takes {arity} input(s), has {len(node.inputs)}")
    check = _CHECKS.get(type(node))
    if check is not None:
        check(node, [net.nodes[j].shape for j in node.inputs])


def _finite(node: Node, what: str, a) -> None:
    a = np.asarray(a)
    if not np.issubdtype(a.dtype, np.number) or not np.isfinite(a).all():
        _fail(node, f"{what} is not finite (NaN or Inf) or not numeric")


def _check_weighted(node: _Weighted, in_shape, w_shape: tuple[int, ...],
                    out_channels: int | None = None) -> None:
    w = np.asarray(node.weight)
    if w.shape != w_shape:
        _fail(node, f"weight has shape {w.shape}, expected {w_shape} from the layer's shapes")
    _finite(node, "weight", w)
    n_bias = w_shape[0] if out_channels is None else out_channels
    if np.shape(node.bias) != (n_bias,):
        _fail(node, f"bias has shape {np.shape(node.bias)}, expected ({n_bias},)")
    _finite(node, "bias", node.bias)
    if node.quantizer not in QUANTIZERS:
        _fail(node, f"quantizer {node.quantizer!r} is not one of {QUANTIZERS}")
    k = np.asarray(node.scale, np.float64) if np.size(node.scale) else np.zeros(1)
    if k.ndim and k.shape != tuple(in_shape):
        _fail(node, f"per-unit scale has shape {k.shape}, the input has shape {tuple(in_shape)}")
    if not (np.isfinite(k).all() and (k > 0).all()):
        _fail(node, f"scale must be finite and > 0, got {node.scale if k.ndim == 0 else 'an array'}")
    if not (np.isfinite(node.threshold) and node.threshold >= 0):
        _fail(node, f"threshold must be finite and >= 0, got {node.threshold}")
    if node.weight_bits:
        if not 2 <= node.weight_bits <= 16:
            _fail(node, f"weight_bits must be 0 (float) or 2..16, got {node.weight_bits}")
        if not (np.isfinite(node.weight_scale) and node.weight_scale > 0):
            _fail(node, f"weight_scale must be finite and > 0, got {node.weight_scale}")
        if not 8 <= node.acc_bits <= 64:
            _fail(node, f"acc_bits must be in 8..64, got {node.acc_bits}")
        if node.quantizer != "herding" or k.ndim:
            _fail(node, "fixed-point weights need the herding quantizer with one scale per layer")


def _check_dense(node: Dense, in_shapes) -> None:
    (in_shape,) = in_shapes
    if len(in_shape) != 1:
        _fail(node, f"its input has shape {tuple(in_shape)}; a fully connected layer takes a flat "
                    f"input [N] (PyTorch would apply Linear to the last axis only): flatten first, "
                    f"e.g. torch.flatten(x, 1) or nn.Flatten()")
    if len(node.shape) != 1:
        _fail(node, f"output shape {node.shape} is not flat")
    _check_weighted(node, in_shape, (node.shape[0], in_shape[0]))


def _conv_out(n: int, k: int, s: int, p: int, d: int = 1) -> int:
    return (n + 2 * p - d * (k - 1) - 1) // s + 1


def _check_conv(node: Conv, in_shapes) -> None:
    (in_shape,) = in_shapes
    if len(in_shape) != 3 or len(node.shape) != 3:
        _fail(node, f"needs [C, H, W] input and output, got {tuple(in_shape)} -> {node.shape}")
    if np.ndim(node.weight) != 4:
        _fail(node, f"weight must be [out, in/groups, kh, kw], got shape {np.shape(node.weight)}")
    groups = _positive(node, "groups", (node.groups,))[0]
    stride = _positive(node, "stride", node.stride)
    dilation = _positive(node, "dilation", node.dilation)
    padding = _positive(node, "padding", node.padding, 0)
    kh, kw = _positive(node, "the kernel size", np.shape(node.weight)[2:])
    c_in, c_out = in_shape[0], node.shape[0]
    if c_in % groups or c_out % groups:
        _fail(node, f"{c_in} input and {c_out} output channels are not divisible by groups={groups}")
    out_hw = tuple(_conv_out(in_shape[1 + a], (kh, kw)[a], stride[a], padding[a], dilation[a])
                   for a in (0, 1))
    if tuple(node.shape[1:]) != out_hw:
        _fail(node, f"output {node.shape[1:]} does not follow from input {tuple(in_shape)}, kernel "
                    f"{(kh, kw)}, stride {stride}, padding {padding}, dilation {dilation}: {out_hw}")
    _check_weighted(node, in_shape, (c_out, c_in // groups, kh, kw))


def _convt_in(n_out: int, k: int, s: int, p: int, d: int, op: int) -> int:
    """Input size of a transposed conv from its output size (inverse of :func:`_convt_out`)."""
    return (n_out - op - 1 + 2 * p - d * (k - 1)) // s + 1


def _convt_out(n: int, k: int, s: int, p: int, d: int, op: int) -> int:
    return (n - 1) * s - 2 * p + d * (k - 1) + op + 1


def _check_convt(node: ConvTranspose, in_shapes) -> None:
    (in_shape,) = in_shapes
    if len(in_shape) != 3 or len(node.shape) != 3:
        _fail(node, f"needs [C, H, W] input and output, got {tuple(in_shape)} -> {node.shape}")
    if np.ndim(node.weight) != 4:
        _fail(node, f"weight must be [in, out/groups, kh, kw], got shape {np.shape(node.weight)}")
    groups = _positive(node, "groups", (node.groups,))[0]
    stride = _positive(node, "stride", node.stride)
    dilation = _positive(node, "dilation", node.dilation)
    padding = _positive(node, "padding", node.padding, 0)
    out_pad = _positive(node, "output_padding", node.output_padding, 0)
    kh, kw = _positive(node, "the kernel size", np.shape(node.weight)[2:])
    if any(o >= max(s, d) for o, s, d in zip(out_pad, stride, dilation, strict=True)):
        _fail(node, f"output_padding {out_pad} must be smaller than stride or dilation")
    c_in, c_out = in_shape[0], node.shape[0]
    if c_in % groups or c_out % groups:
        _fail(node, f"{c_in} input and {c_out} output channels are not divisible by groups={groups}")
    out_hw = tuple(_convt_out(in_shape[1 + a], (kh, kw)[a], stride[a], padding[a], dilation[a],
                              out_pad[a]) for a in (0, 1))
    if tuple(node.shape[1:]) != out_hw:
        _fail(node, f"output {node.shape[1:]} does not follow from input {tuple(in_shape)}, kernel "
                    f"{(kh, kw)}, stride {stride}, padding {padding}, dilation {dilation}, "
                    f"output_padding {out_pad}: {out_hw}")
    _check_weighted(node, in_shape, (c_in, c_out // groups, kh, kw), out_channels=c_out)


def _check_resample(node: Resample, in_shapes) -> None:
    (s,) = (tuple(x) for x in in_shapes)
    if len(s) != 3 or len(node.shape) != 3 or node.shape[0] != s[0]:
        _fail(node, f"resampling needs [C, H, W] in and out with equal C, got {s} -> {node.shape}")
    for a, sf in enumerate((node.scale_h, node.scale_w)):
        if not (np.isfinite(sf) and sf >= 0):
            _fail(node, f"scale factors must be finite and >= 0, got {(node.scale_h, node.scale_w)}")
        if sf > 0 and int(np.floor(s[1 + a] * sf)) != node.shape[1 + a]:
            _fail(node, f"scale factor {sf:g} takes size {s[1 + a]} to "
                        f"{int(np.floor(s[1 + a] * sf))}, not {node.shape[1 + a]}")


def _check_gather(node: Gather, in_shapes) -> None:
    (s,) = (tuple(x) for x in in_shapes)
    src = np.asarray(node.src)
    if src.ndim != 1 or not np.issubdtype(src.dtype, np.integer) or len(src) != node.shape[0]:
        _fail(node, f"src must list one input channel per output channel ({node.shape[0]}), "
                    f"got shape {src.shape}")
    if len(src) and (src.min() < 0 or src.max() >= s[0] or len(np.unique(src)) != len(src)):
        _fail(node, f"src must name distinct input channels in 0..{s[0] - 1}")
    if tuple(node.shape[1:]) != s[1:]:
        _fail(node, f"routes channels of {s} but has shape {node.shape}")


def _check_activation(node: Activation, in_shapes) -> None:
    if tuple(in_shapes[0]) != tuple(node.shape):
        _fail(node, f"shape {node.shape} differs from its input's {tuple(in_shapes[0])}")
    if node.fn not in ACTIVATIONS:
        _fail(node, f"unknown function {node.fn!r} (one of {ACTIVATIONS})")
    _finite(node, "alpha/lo/hi", [node.alpha, node.lo, node.hi])
    if node.lo > node.hi:
        _fail(node, f"lo {node.lo} > hi {node.hi}")


def _check_pool(node: Pool, in_shapes) -> None:
    (in_shape,) = in_shapes
    if node.op not in POOL_OPS:
        _fail(node, f"unknown pooling {node.op!r} (one of {POOL_OPS})")
    if len(in_shape) != 3 or len(node.shape) != 3 or node.shape[0] != in_shape[0]:
        _fail(node, f"needs [C, H, W] in and out with equal C, got {tuple(in_shape)} -> {node.shape}")
    kernel = _positive(node, "kernel", node.kernel)
    stride = _positive(node, "stride", node.stride)
    padding = _positive(node, "padding", node.padding, 0)
    if any(2 * p > k for p, k in zip(padding, kernel, strict=True)):
        _fail(node, f"padding {padding} exceeds half the kernel {kernel}")
    out_hw = tuple(_conv_out(in_shape[1 + a], kernel[a], stride[a], padding[a]) for a in (0, 1))
    if tuple(node.shape[1:]) != out_hw:
        _fail(node, f"output {node.shape[1:]} does not follow from input {tuple(in_shape)}: {out_hw}")


def _check_flatten(node: Flatten, in_shapes) -> None:
    if tuple(node.shape) != (int(np.prod(in_shapes[0])),):
        _fail(node, f"shape {node.shape} is not the flat size of its input {tuple(in_shapes[0])}")


def _check_add(node: Add, in_shapes) -> None:
    if any(tuple(s) != tuple(node.shape) for s in in_shapes):
        _fail(node, f"inputs {[tuple(s) for s in in_shapes]} and output {node.shape} differ")


def _check_concat(node: Concat, in_shapes) -> None:
    rest = {tuple(s[1:]) for s in in_shapes} | {tuple(node.shape[1:])}
    if len(rest) != 1 or any(len(s) != len(node.shape) for s in in_shapes) \
            or sum(s[0] for s in in_shapes) != node.shape[0]:
        _fail(node, f"inputs {[tuple(s) for s in in_shapes]} do not concatenate along channels "
                    f"to {node.shape}")


def _check_mul(node: Mul, in_shapes) -> None:
    a, b = (tuple(s) for s in in_shapes)
    if a != tuple(node.shape) or (b != a and not (len(a) == 3 and b == (a[0], 1, 1))):
        _fail(node, f"inputs {a} and {b} give no product of shape {node.shape} (the second input "
                    f"has the first's shape or one value per channel)")


def _check_upsample(node: Upsample, in_shapes) -> None:
    (s,) = (tuple(x) for x in in_shapes)
    sh, sw = (int(v) for v in node.scale)
    if len(s) != 3 or sh < 1 or sw < 1 or tuple(node.shape) != (s[0], s[1] * sh, s[2] * sw):
        _fail(node, f"upsampling {s} by {tuple(node.scale)} does not give {node.shape}")


_CHECKS = {Dense: _check_dense, Conv: _check_conv, Activation: _check_activation,
           Pool: _check_pool, Flatten: _check_flatten, Add: _check_add, Concat: _check_concat,
           Mul: _check_mul, Upsample: _check_upsample, ConvTranspose: _check_convt,
           Resample: _check_resample, Gather: _check_gather}

