"""PyTorch -> sigma-delta network conversion.

``convert`` traces the model with ``torch.fx`` (``nn.Sequential``, nested or not,
and any fx-traceable module), propagates shapes from ``input_shape``, maps every
call through :mod:`sigmadelta.convert.mappers`, folds BatchNorm, drops Dropout
and Identity, and sets each weight layer's input quantizer. Float weights smaller in
magnitude than the smallest normal float32 (``FLUSH_BELOW``, about 1.18e-38) become 0
(:func:`flush_denormals`): a CPU multiplies denormals up to 100x slower, torch and the
simulator alike, and they change no output a float32 sum can show.
"""

from __future__ import annotations

import contextlib
import inspect
import io
import operator
from collections.abc import Mapping, Sequence

import numpy as np
import torch
import torch.fx
import torch.nn as nn
from torch.fx.passes.shape_prop import ShapeProp

from .. import graph as g
from ..graph import per_layer
from ..torchlimit import DEFAULT_TORCH_THREADS, torch_limit
from .mappers import FUNCTION_MAPPERS, HINTS, METHOD_MAPPERS, MODULE_MAPPERS, UnsupportedLayerError
from .routing import drop_dead_gathers

__all__ = ["convert", "flush_denormals", "FLUSH_BELOW", "UnsupportedLayerError", "MODULE_MAPPERS",
           "FUNCTION_MAPPERS", "METHOD_MAPPERS", "per_layer"]


#: float weights below this magnitude (the smallest normal float32) are set to 0
FLUSH_BELOW = float(np.finfo(np.float32).tiny)


def flush_denormals(weight: np.ndarray) -> np.ndarray:
    """``weight`` with every nonzero entry of magnitude below :data:`FLUSH_BELOW` set to 0.

    ``w' = 0 if |w| < tiny else w`` with ``tiny`` the smallest normal float32. Returns a new
    array of the same dtype and shape (the input is not modified).
    """
    w = np.array(weight, copy=True)
    w[np.abs(w) < FLUSH_BELOW] = 0
    return w


class _Context:
    """What mappers see: the graph built so far and fx-name -> node index.

    A ``(C, L)`` tensor (Conv1d streams) is held as ``(C, 1, L)``; values that are
    not tensors (``x.size(0)``, ``x.shape``) map to None.
    """

    def __init__(self):
        self.nodes: list[g.Node] = []
        self.env: dict[str, int | None] = {}  # None: not a tensor (x.size(0), x.shape)
        self.fx: dict[str, torch.fx.Node] = {}
        self.storage: dict[str, set[str]] = {}  # fx name -> the fx names sharing its tensor
        self.pending: dict[str, object] = {}  # fx name -> a grouped view or split (convert.routing)

    @staticmethod
    def path(node: torch.fx.Node) -> str:
        return str(node.target) if node.op == "call_module" else node.name

    def internal(self, shape: tuple[int, ...], path: str = "") -> tuple[int, ...]:
        """The node shape holding a PyTorch value of ``shape`` (batch axis excluded)."""
        shape = tuple(int(s) for s in shape)
        if len(shape) == 2:
            return (shape[0], 1, shape[1])
        if len(shape) not in (1, 3):
            raise UnsupportedLayerError(
                f"{path}: tensors of shape {shape} (only [N], [C, L] and [C, H, W] are supported)")
        return shape

    def add(self, cls, node: torch.fx.Node, inputs=None, shape=None, name=None, **params) -> int:
        """Append a node of class ``cls`` for fx node ``node``; return its index."""
        if shape is None:
            shape = self.internal(node.meta["tensor_meta"].shape[1:], self.path(node))
        if inputs is None:
            inputs = (self.env[node.args[0].name],)
        self.nodes.append(cls(name=name or self.path(node), inputs=tuple(inputs), shape=shape,
                              **params))
        return len(self.nodes) - 1

    def sole_consumer(self, idx: int, node: torch.fx.Node) -> bool:
        """Whether ``node`` is the only reader of node ``idx`` (through aliases such as Dropout)."""
        aliases = {name for name, i in self.env.items() if i == idx}
        users = {u for name in aliases for u in self.fx[name].users}
        return all(u is node or u.name in aliases for u in users)


def _check_float32(model: nn.Module) -> None:
    """Refuse parameters and buffers of another precision, naming the first one."""
    for kind, named in (("parameter", model.named_parameters()), ("buffer", model.named_buffers())):
        for name, t in named:
            if t.is_floating_point() and t.dtype != torch.float32:
                raise TypeError(f"{kind} {name!r} is {str(t.dtype).replace('torch.', '')} "
                                f"(model.double()?); sigmadelta converts float32 models: "
                                f"convert model.float()")


def _check_one_input(gm: torch.fx.GraphModule) -> None:
    inputs = [n.name for n in gm.graph.nodes if n.op == "placeholder"]
    if len(inputs) != 1:
        raise UnsupportedLayerError(
            f"the model's forward takes {len(inputs)} inputs ({', '.join(inputs)}); sigmadelta "
            f"converts models of one input tensor (one frame)")


def _trace(model: nn.Module, input_shape: tuple[int, ...]) -> torch.fx.GraphModule:
    if type(model) in MODULE_MAPPERS:
        model = nn.Sequential(model)
    _check_float32(model)
    try:
        gm = torch.fx.symbolic_trace(model)
    except Exception as e:  # fx raises many types
        raise UnsupportedLayerError(f"cannot trace {type(model).__name__} with torch.fx: "
                                    f"{_first_line(e)}") from None
    _check_one_input(gm)
    try:  # ShapeProp prints the traceback of a failing node itself: keep it off the terminal
        with contextlib.redirect_stderr(io.StringIO()):
            ShapeProp(gm).propagate(torch.zeros((1, *input_shape)))
    except Exception as e:
        raise ValueError(f"the model does not accept input_shape {input_shape} (batch axis "
                         f"excluded): {_first_line(e)}") from None
    return gm


def _first_line(e: Exception) -> str:
    """The message of ``e`` without the fx graph dump that ShapeProp appends."""
    cause = e.__cause__ or e
    lines = [ln for ln in str(cause).splitlines() if ln.strip()]
    return f"{type(cause).__name__}: {lines[0] if lines else ''}"


def _unsupported(what: str, key: str) -> UnsupportedLayerError:
    hint = HINTS.get(key)
    return UnsupportedLayerError(f"cannot convert {what}" + (f": {key} {hint}" if hint else ""))


_SIZE_ARITHMETIC = (operator.floordiv, operator.mul, operator.add, operator.sub, operator.truediv,
                    operator.mod)


def _map_node(ctx: _Context, gm: torch.fx.GraphModule, node: torch.fx.Node) -> int | None:
    if node.op == "call_function" and node.target in _SIZE_ARITHMETIC and node.all_input_nodes \
            and all(ctx.env[a.name] is None and a.name not in ctx.pending for a in node.all_input_nodes):
        return None  # arithmetic on sizes (c // groups of x.size()): not a tensor either
    if node.op == "call_module":
        mod = gm.get_submodule(node.target)
        mapper = MODULE_MAPPERS.get(type(mod))
        if mapper is None:
            raise _unsupported(f"module '{node.target}' of type {type(mod).__module__}."
                               f"{type(mod).__name__}", type(mod).__name__)
        target = mod
    elif node.op == "call_function":
        mapper, target = FUNCTION_MAPPERS.get(node.target), None
        if mapper is None:
            name = getattr(node.target, "__name__", str(node.target))
            raise _unsupported(f"function call '{node.name}' ({name})", name)
    elif node.op == "call_method":
        mapper, target = METHOD_MAPPERS.get(node.target), None
        if mapper is None:
            raise _unsupported(f"tensor method call '{node.name}' (.{node.target}())", node.target)
    else:
        raise _unsupported(f"'{node.name}' ({node.op} {node.target})", str(node.target))
    sizes = [a for a in node.all_input_nodes if ctx.env[a.name] is None]
    if sizes and not getattr(mapper, "accepts_sizes", False) and sizes[0].name in ctx.pending:
        raise UnsupportedLayerError(
            f"cannot convert '{node.name}': it reads a grouped channel view or the result of "
            f"chunk/split ({sizes[0].name}); only a channel shuffle (view, transpose(1, 2), view "
            f"back) and indexing the parts (x1, x2 = x.chunk(2, dim=1)) convert")
    if sizes and not getattr(mapper, "accepts_sizes", False):
        raise UnsupportedLayerError(
            f"cannot convert '{node.name}': it computes with the size of a tensor "
            f"({sizes[0].name}); only reshapes such as x.view(x.size(0), -1) may use it")
    return mapper(ctx, node, target)


def convert(
    model: nn.Module,
    input_shape: Sequence[int],
    scale: float | Sequence[float] | Mapping[str, float] = 32.0,
    quantizer: str = "herding",
    threshold: float | Sequence[float] | Mapping[str, float] | None = None,
    weight_bits: int | Sequence[int] | Mapping[str, int] | None = None,
    acc_bits: int = 32,
    torch_threads: int | None = DEFAULT_TORCH_THREADS,
) -> g.Network:
    """Convert a PyTorch model into a sigma-delta :class:`~sigmadelta.graph.Network`.

    Parameters
    ----------
    model : torch.nn.Module
        ``nn.Sequential`` (nested too) or any ``torch.fx``-traceable module made of
        the supported layers (see :mod:`sigmadelta.convert.mappers`).
    input_shape : tuple of int
        One frame's shape without the batch axis: ``(784,)`` or ``(C, H, W)``.
    scale : float, list or dict
        Herding scale ``k`` of each weight layer's input (``s`` spikes carry ``1/k``):
        one number, one per weight layer in order, or a dict by layer name.
    quantizer : {"herding", "threshold"}
        The input quantizer of every weight layer (see :mod:`sigmadelta.graph`).
    threshold : float, list or dict
        Send threshold of the ``"threshold"`` quantizer (required for it).
    weight_bits : int, list or dict, optional
        Fixed-point weights (see :mod:`sigmadelta.fixedpoint`); None keeps float weights.
        Float weights below the smallest normal float32 in magnitude become 0
        (:func:`flush_denormals`), before any fixed-point quantization.
    acc_bits : int
        Fixed point: the signed accumulator width (8..64) beyond which the simulation
        raises :class:`~sigmadelta.fixedpoint.AccumulatorOverflowError`.
    torch_threads : int or None
        torch's intra-op threads while tracing and propagating shapes
        (:mod:`sigmadelta.torchlimit`), restored afterwards. 1 (default): one frame's
        pass gains nothing from more and spins against other work; None leaves torch alone.

    Raises
    ------
    UnsupportedLayerError
        A module, function or argument that cannot be converted, naming its path and type.
    ValueError
        Bad ``input_shape``, ``scale <= 0``, ``threshold < 0``, unknown quantizer,
        NaN/Inf parameters or BatchNorm ``running_var <= 0`` (:class:`~sigmadelta.graph.NetworkError`
        names the layer).
    """
    if not isinstance(model, nn.Module):
        raise TypeError(f"model must be a torch.nn.Module, got {type(model).__name__}")
    input_shape = tuple(int(s) for s in input_shape)
    if quantizer not in ("herding", "threshold"):  # "lava" comes only from load_netx
        raise ValueError(f"quantizer must be 'herding' or 'threshold', got {quantizer!r}")
    if quantizer == "threshold" and threshold is None:
        raise ValueError('quantizer="threshold" needs threshold=... (one or per layer)')
    was_training = model.training
    model.eval()
    try:
        with torch_limit(torch_threads):
            net = _build(model, input_shape)
    finally:
        model.train(was_training)
    names = net.layer_names
    scales = [_scale_value(net, layer, k) for layer, k in
              zip(net.weight_layers, per_layer(scale, names, "scale"), strict=True)]
    thresholds = [float(t) for t in per_layer(0.0 if threshold is None else threshold, names,
                                              "threshold")]
    for name, t in zip(names, thresholds, strict=True):
        if not np.isfinite(t) or t < 0:
            raise ValueError(f"threshold of layer {name!r} must be >= 0, got {t}")
    for layer, k, t in zip(net.weight_layers, scales, thresholds, strict=True):
        layer.quantizer, layer.scale, layer.threshold = quantizer, k, t
        layer.weight = flush_denormals(layer.weight)
    if weight_bits is not None:
        from ..fixedpoint import quantize_weights

        quantize_weights(net, weight_bits, acc_bits=acc_bits)
    return net.validate()


def _scale_value(net: g.Network, layer, k):
    """A layer's herding scale: a positive number, or positive values per input neuron
    (an array of the layer's input shape, or one value per input channel)."""
    in_shape = net.nodes[layer.inputs[0]].shape
    if k is None or isinstance(k, str) or np.ndim(k) == 0:
        try:
            k = float(k)
        except (TypeError, ValueError):
            raise ValueError(f"scale of layer {layer.name!r} must be a positive number, "
                             f"got {k!r}") from None
        if not np.isfinite(k) or k <= 0:
            raise ValueError(f"scale of layer {layer.name!r} must be > 0, got {k}")
        return k
    k = np.asarray(k, np.float64)
    if k.shape == in_shape[:1] and len(in_shape) == 3:
        k = np.broadcast_to(k[:, None, None], in_shape)
    if k.shape != in_shape:
        raise ValueError(f"per-unit scale of layer {layer.name!r} has shape {k.shape}; its input "
                         f"has shape {in_shape} (or give one value per channel)")
    if not (np.isfinite(k).all() and (k > 0).all()):
        raise ValueError(f"scale of layer {layer.name!r} must be > 0 everywhere")
    return np.ascontiguousarray(k)


def _inplace(node: torch.fx.Node, mod: nn.Module | None) -> bool:
    """Whether the call writes into its first argument (``inplace=True``, ``x.relu_()``)."""
    if mod is not None:
        return bool(getattr(mod, "inplace", False))
    if node.op == "call_method":
        return str(node.target).endswith("_")
    try:
        bound = inspect.signature(node.target).bind(*node.args, **node.kwargs)
    except (TypeError, ValueError):
        return False
    return bool(bound.arguments.get("inplace", False))


def _follow_aliasing(ctx: _Context, gm: torch.fx.GraphModule, node: torch.fx.Node) -> None:
    """Follow PyTorch's aliasing: an in-place op changes every name of its input's tensor.

    After ``z = F.relu(y, inplace=True)`` the later uses of ``y`` (and of anything that
    is the same tensor: Identity, Dropout, a flatten of a flat tensor) see ``z``, as in
    PyTorch. An in-place op on a tensor that is also seen through a view of another
    shape (a flatten of an image) is refused.
    """
    src = node.args[0] if node.args else None
    if not isinstance(src, torch.fx.Node) or src.name not in ctx.env:
        return
    mod = gm.get_submodule(node.target) if node.op == "call_module" else None
    group = ctx.storage.setdefault(src.name, {src.name})
    is_view = type(mod) is nn.Flatten or node.target in (torch.flatten, "flatten", "view", "reshape",
                                                         torch.reshape)
    if ctx.env[node.name] == ctx.env[src.name] or is_view:  # the same tensor, or a view of it
        group.add(node.name)
        ctx.storage[node.name] = group
        return
    if not _inplace(node, mod):
        return
    if any(ctx.env[n] != ctx.env[src.name] for n in group):
        raise UnsupportedLayerError(
            f"{ctx.path(node)}: an in-place operation on a tensor that is also used through a "
            f"view of another shape ({', '.join(sorted(group))}); use inplace=False")
    for n in group:
        ctx.env[n] = ctx.env[node.name]
    group.add(node.name)
    ctx.storage[node.name] = group


def _build(model: nn.Module, input_shape: tuple[int, ...]) -> g.Network:
    if len(input_shape) not in (1, 2, 3) or min(input_shape, default=0) < 1:
        raise ValueError(f"input_shape {input_shape} must be (N,), (C, L) or (C, H, W), without the "
                         f"batch axis, every size >= 1")
    gm = _trace(model, input_shape)
    ctx = _Context()
    output = None
    with torch.no_grad():
        for node in gm.graph.nodes:
            ctx.fx[node.name] = node
            if node.op == "placeholder":
                if ctx.nodes:
                    raise UnsupportedLayerError("models with more than one input are not supported")
                shape = ctx.internal(input_shape, "input")
                ctx.nodes.append(g.Input(name="input", inputs=(), shape=shape,
                                         frame_shape=input_shape if shape != input_shape else ()))
                ctx.env[node.name] = 0
            elif node.op == "output":
                out = node.args[0]
                if not isinstance(out, torch.fx.Node) or ctx.env[out.name] is None:
                    raise UnsupportedLayerError("the model must return a single tensor")
                output = ctx.env[out.name]
            else:
                ctx.env[node.name] = _map_node(ctx, gm, node)
                _follow_aliasing(ctx, gm, node)
    if not any(isinstance(n, g.WEIGHT_KINDS) for n in ctx.nodes):
        raise UnsupportedLayerError("the model has no Linear or Conv2d/Conv1d layer to convert")
    nodes, output = drop_dead_gathers(ctx.nodes, output)  # folded into weights, or composed
    return g.Network(nodes=nodes, output=output)
