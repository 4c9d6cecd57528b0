"""The converted network: one small dataclass per layer kind, in topological order.

A :class:`Network` is what :func:`sigmadelta.convert` produces, what
:func:`sigmadelta.save` writes and what the engine and the dense reference run.
Every node stores its parameters in PyTorch's layout (``[C, H, W]`` tensors,
``weight[out, in]`` / ``weight[out, in/groups, kh, kw]``); the engine re-lays
them out channels-last for its kernels.

Where spikes live
-----------------
Every *weight layer* (:class:`Dense`, :class:`Conv`) receives its input as
sigma-delta spikes: the change of its input activation since the last frame,
quantized per input neuron by the layer's quantizer

* ``"herding"`` (O'Connor & Welling 2017), scale ``k``::

      phi += k * (a_t - a_prev);  s = round(phi);  phi -= s       # integer spikes
      x_hat = sum(s) / k  == round(k * a_t) / k                   # what the layer sees

* ``"threshold"`` (graded spikes as in Lava's SigmaDelta / DeltaCNN)::

      d = a_t - a_sent;  if |d| >= threshold: send d, a_sent += d  # else d carries over
      x_hat = a_sent

The layer then integrates ``z = W x_hat + b``; all other nodes (activations,
pooling, flatten, add, concat) act on exact float values.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
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
    "Network",
    "NODE_TYPES",
    "QUANTIZERS",
    "per_layer",
]

QUANTIZERS = ("herding", "threshold")


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
    """The network's input: one frame of shape ``shape``."""

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
    """Elementwise nonlinearity ``y = f(x)``.

    ``fn`` is ``"relu"`` (``max(x, 0)``), ``"leaky"`` (``x if x > 0 else alpha*x``),
    ``"clip"`` (``min(max(x, lo), hi)``: ReLU6 and Hardtanh) or ``"identity"``.
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


NODE_TYPES: dict[str, type[Node]] = {
    cls.kind: cls for cls in (Input, Dense, Conv, Activation, Pool, Flatten, Add, Concat)
}


@dataclass
class Network:
    """A converted sigma-delta network.

    Attributes
    ----------
    nodes : list of Node
        Topologically ordered; ``nodes[0]`` is the :class:`Input`.
    output : int
        Index of the node whose value is the network output.
    """

    nodes: list[Node]
    output: int

    @property
    def input_shape(self) -> tuple[int, ...]:
        return self.nodes[0].shape

    @property
    def output_shape(self) -> tuple[int, ...]:
        return self.nodes[self.output].shape

    @property
    def weight_layers(self) -> list[Dense | Conv]:
        """The Dense and Conv nodes in order: the layers that receive spikes."""
        return [n for n in self.nodes if isinstance(n, _Weighted)]

    @property
    def layer_names(self) -> list[str]:
        return [n.name for n in self.weight_layers]

    def dense_macs(self) -> np.ndarray:
        """MACs per frame of each weight layer when computed densely (the ANN cost)."""
        return np.array([n.dense_macs() for n in self.weight_layers], dtype=np.int64)

    def summary(self) -> str:
        """One line per node: index, kind, name, inputs, shape and quantizer."""
        rows = []
        for i, n in enumerate(self.nodes):
            q = ""
            if isinstance(n, _Weighted):
                if n.quantizer == "threshold":
                    q = f"threshold {n.threshold:g}"
                elif np.ndim(n.scale):
                    q = f"herding k per unit in [{np.min(n.scale):.3g}, {np.max(n.scale):.3g}]"
                else:
                    q = f"herding k={n.scale:g}"
                if n.weight_bits:
                    q += f", {n.weight_bits}-bit weights"
            rows.append(f"{i:3d} {n.kind:10s} {n.name:24s} {str(n.inputs):10s} {str(n.shape):16s} {q}")
        return "\n".join(rows)


def per_layer(value, names: list[str], what: str) -> list:
    """Resolve a number, a list (one per weight layer) or a dict by layer name."""
    if isinstance(value, Mapping):
        unknown = set(value) - set(names)
        if unknown:
            raise ValueError(f"{what} names unknown layers {sorted(unknown)}; layers are {names}")
        missing = [n for n in names if n not in value]
        if missing:
            raise ValueError(f"{what} has no value for layers {missing}")
        return [value[n] for n in names]
    if isinstance(value, Sequence) and not isinstance(value, str):
        if len(value) != len(names):
            raise ValueError(f"{what} has {len(value)} values for {len(names)} weight layers {names}")
        return list(value)
    return [value] * len(names)
