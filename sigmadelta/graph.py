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

* ``"lava"`` (Lava's fixed-point SigmaDelta, for networks read by
  :func:`sigmadelta.load_netx`; integers, ``S = 6``)::

      a = k * x;  d = a - a_sent
      if |d| >= threshold:  send s = floor(d / 2**S), a_sent = a       # the low S bits are lost
      x_hat = sum of the s sent                                          # what the layer sees

The layer then integrates ``z = W x_hat + b``; all other nodes (activations,
pooling, flatten, add, concat) act on exact float values.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np

from .nodecheck import check_node
from .nodes import (  # the layer kinds, re-exported
    ACTIVATIONS,
    LAVA_SHIFT,
    NODE_TYPES,
    POOL_OPS,
    QUANTIZERS,
    TIMINGS,
    WEIGHT_KINDS,
    Activation,
    Add,
    Concat,
    Conv,
    ConvTranspose,
    Dense,
    Flatten,
    Gather,
    Input,
    Mul,
    NetworkError,
    Node,
    Pool,
    Resample,
    Upsample,
    _Weighted,
    check_timing,
    layer_label,
)

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
    "Network",
    "per_layer",
]



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

    def __post_init__(self):
        self.validate()

    def validate(self) -> Network:
        """Check structure, shapes and parameters; return ``self``.

        Every node's inputs must come before it (topological order), every shape
        must be non-empty and follow from the inputs' shapes and the node's
        parameters, and every parameter must be finite and in range (weights,
        biases, scales, thresholds, quantizer, fixed-point settings). Run on
        construction (so on :func:`sigmadelta.load` too) and at the end of
        :func:`sigmadelta.convert`.

        Raises
        ------
        NetworkError
            Naming the layer and what is wrong with it.
        """
        n = len(self.nodes)
        if n == 0 or not isinstance(self.nodes[0], Input):
            raise NetworkError("a network starts with its Input node")
        if isinstance(self.output, bool) or not isinstance(self.output, (int, np.integer)) \
                or not 0 <= self.output < n:
            raise NetworkError(f"the output index {self.output!r} is not a node (0..{n - 1})")
        for i, node in enumerate(self.nodes):
            check_node(self, i, node)
        return self

    @property
    def input_shape(self) -> tuple[int, ...]:
        """The shape of one frame as the user gives it (``(C, L)`` for a Conv1d stream)."""
        return tuple(self.nodes[0].frame_shape) or self.nodes[0].shape

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

    @property
    def layer_labels(self) -> list[str]:
        """What each weight layer is: :func:`layer_label`, except that a bare ``nn.Sequential``
        index as the name (``"1"``, which reads like a position) becomes the kind numbered in
        order (``conv1 3x3/2 1->8``, ``fc2 200->10``); module paths are kept whole
        (``features.10.conv.0 3x3 16->16 dw``)."""
        labels, count = [], {"conv": 0, "fc": 0, "convt": 0}
        for n in self.weight_layers:
            kind = "conv" if isinstance(n, Conv) else ("convt" if isinstance(n, ConvTranspose) else "fc")
            count[kind] += 1
            label = layer_label(n)
            labels.append(f"{kind}{count[kind]}{label[len(n.name):]}" if n.name.isdigit() else label)
        return labels

    def dense_macs(self) -> np.ndarray:
        """MACs per frame of each weight layer when computed densely (the ANN cost)."""
        return np.array([n.dense_macs() for n in self.weight_layers], dtype=np.int64)

    def summary(self) -> str:
        """One line per node: index, kind, name, inputs, shape and quantizer."""
        rows = []
        for i, n in enumerate(self.nodes):
            q = ""
            if isinstance(n, _Weighted):
                if n.quantizer in ("threshold", "lava"):
                    q = f"{n.quantizer} {n.threshold:g}"
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


# ---------------------------------------------------------------- validation
