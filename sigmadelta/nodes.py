"""The layer kinds of a converted network: one small dataclass per kind and their labels.

:mod:`sigmadelta.graph` assembles them into a :class:`~sigmadelta.graph.Network` (and
re-exports every name here); the update equations of the quantizers are stated there.
:func:`sigmadelta.nodecheck.check_node` validates one node against its inputs' shapes.
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


def _convt_in(n_out: int, k: int, s: int, p: int, d: int, op: int) -> int:
    """Input size of a transposed conv from its output size (inverse of :func:`_convt_out`)."""
    return (n_out - op - 1 + 2 * p - d * (k - 1)) // s + 1



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
