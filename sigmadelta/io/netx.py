"""Read lava-dl netx HDF5 files (sigma-delta networks) as a :class:`~sigmadelta.graph.Network`.

A netx file (``lava.lib.dl.netx``) is a group ``/layer`` with one group per layer, ``"0"``,
``"1"``, ... in order, each with a ``type`` (``input``, ``conv``, ``dense``, ``flatten``) and,
for neuron layers, a ``neuron`` group (``type="SDNN"``, ``activation="relu"``, ``vThMant``,
``sigma_output`` on the last layer). Shapes are stored as PyTorch's ``(C, H, W)``; Lava itself
runs in ``(W, H, C)`` and reverses them, which here is not needed: every array stays in PyTorch
layout, conv weights ``[out, in, kh, kw]`` (netx flips and reorders them for Lava's true
convolution; the two together are PyTorch's correlation), stride, padding and dilation in
``(H, W)`` order, flatten in ``(C, H, W)`` order.

What Lava's fixed-point CPU model computes (``lava.proc.sdn``, ``lava.proc.dense``,
``lava.proc.conv``; ``E = spike_exp + state_exp = 12``, ``S = state_exp = 6``), all integers::

    input neuron (Delta):      a = x << E
    hidden neuron (SigmaDelta): sigma += W s_in;   a = max(sigma + bias << E, 0)
    both, delta encoding:      d = a - a_prev + residue
                               s = d if |d| >= vThMant << E else 0;  residue = d - s
                               s_out = s >> S        (floor; the low S bits are dropped)
    output neuron (Sigma):     sigma += W s_in       (no bias, no activation, no threshold)

On the graph this is the weight layers' ``"lava"`` input quantizer (``scale`` ``2**E`` after the
input and ``1`` elsewhere, ``threshold = vThMant << E`` of the layer that sends, see
:mod:`sigmadelta.graph`), ``bias << E`` as the layer's bias and a ReLU after every hidden
layer. Dense weights go through the path netx and Lava give them (``optimize_weight_bits``:
shifted left by ``b`` bits with weight exponent ``-b``; Lava clips to 8 bits, truncates
``8 - num_weight_bits`` low bits and shifts the integer sum right by ``b``); the effective
integer weights are stored when that path is exact, and the file is refused when it is not.
Biases are truncated to integers as Lava does.

Lava holds these integers in fixed widths and wraps beyond them: one step's ``W s_in`` of a Conv
at signed 24 bits, of a Dense at int32, ``sigma``, ``act`` and ``x << E`` at int32. The engine
checks every ``"lava"`` layer against them each step and stops with a
:class:`~sigmadelta.numeric.NumericOverflowError` where Lava would wrap
(:func:`sigmadelta.kernels.lava_range_check`).
"""

from __future__ import annotations

import os

import h5py
import numpy as np

from .. import graph as g
from .netfile import FormatError, open_hdf5

__all__ = ["load_netx", "save_netx", "NetxError", "SPIKE_EXP", "STATE_EXP", "lava_dense_weights"]

SPIKE_EXP = 6  # netx's default spike exponent (graded spikes)
STATE_EXP = 6  # Lava's state exponent for SDNN neurons (fixed in netx)
_NEURON_KEYS = {"type", "activation", "vThMant", "sigma_output", "messageBits"}
_LAVA_REFUSES = ("pool", "convT", "unpool")  # layer types lava-dl 0.6's netx loader cannot run


class NetxError(FormatError):
    """A netx file that this reader does not support or that is malformed."""


def _scalar(grp: h5py.Group, key: str, layer: str):
    if key not in grp:
        raise NetxError(f"netx layer {layer}: missing field {key!r}")
    v = grp[key][()]
    if isinstance(v, np.ndarray) and v.size == 1:
        v = v.reshape(()).item()
    return v.decode() if isinstance(v, bytes) else v


def _pair(grp: h5py.Group, key: str, layer: str) -> tuple[int, int]:
    v = np.asarray(grp[key][()]) if key in grp else None
    if v is None:
        raise NetxError(f"netx layer {layer}: missing field {key!r}")
    v = np.broadcast_to(v.astype(np.int64).ravel(), (2,)) if v.size in (1, 2) else None
    if v is None:
        raise NetxError(f"netx layer {layer}: field {key!r} must hold one or two integers")
    return int(v[0]), int(v[1])


def _integers(a: np.ndarray, layer: str, key: str) -> np.ndarray:
    a = np.asarray(a, np.float64)
    if not np.all(np.isfinite(a)) or np.any(a != np.rint(a)):
        raise NetxError(f"netx layer {layer}: field {key!r} holds non-integer values; "
                        "Lava's fixed-point model needs integer weights")
    return a


def _neuron(grp: h5py.Group, layer: str) -> dict:
    if "neuron" not in grp:
        raise NetxError(f"netx layer {layer}: missing field 'neuron'")
    n = grp["neuron"]
    unknown = sorted(set(n.keys()) - _NEURON_KEYS)
    if unknown:
        raise NetxError(f"netx layer {layer}: neuron field {unknown[0]!r} is not supported "
                        f"(SDNN neurons have {sorted(_NEURON_KEYS)})")
    kind = _scalar(n, "type", layer)
    if kind != "SDNN":
        raise NetxError(f"netx layer {layer}: neuron type {kind!r} is not supported (only 'SDNN')")
    sigma_output = "sigma_output" in n and bool(_scalar(n, "sigma_output", layer))
    if "messageBits" in n and int(_scalar(n, "messageBits", layer)) == 0:
        raise NetxError(f"netx layer {layer}: messageBits 0 (binary spikes) is not supported; "
                        "SDNN layers send graded spikes")
    out = {"sigma_output": sigma_output}
    if not sigma_output:
        act = _scalar(n, "activation", layer)
        if act != "relu":
            raise NetxError(f"netx layer {layer}: neuron activation {act!r} is not supported "
                            "(only 'relu')")
        vth = _scalar(n, "vThMant", layer)
        if int(vth) != vth or vth < 0:
            raise NetxError(f"netx layer {layer}: vThMant must be a non-negative integer, got {vth}")
        out["vth"] = int(vth)
    return out


def lava_dense_weights(w: np.ndarray, layer: str) -> np.ndarray:
    """The integer weights Lava's fixed-point Dense applies to netx weights ``w``.

    netx (``optimize_weight_bits``) stores ``w << b`` with weight exponent ``-b``; Lava clips
    to 8 bits, truncates low bits and shifts the integer sum ``(w << b) . s`` right by ``b``.
    That equals ``w_eff . s`` with integer ``w_eff`` when every clipped and truncated weight is
    a multiple of ``2**b``; otherwise the file is refused.
    """
    w = _integers(w, layer, "weight")
    wmax, wmin = w.max(initial=0.0), w.min(initial=0.0)
    mixed = wmin < 0 < wmax
    if mixed and (wmax > 254 or wmin < -256):
        w = np.clip(w, -256, 254)
        wmax, wmin = w.max(), w.min()
    if wmax <= 0 and wmin == 0:
        return w  # all zero
    if mixed:
        scale = min(127 / wmax, -128 / wmin)
    elif wmax <= 0:
        scale = -256 / wmin
    else:
        scale = 255 / wmax
    scale_bits = int(np.floor(np.log2(scale))) + int(mixed)
    n = 8
    while n > 0 and np.sum(np.abs(w / 2 ** n - np.round(w / 2 ** n))) != 0:
        n -= 1
    n -= int(mixed)
    num_weight_bits = 8 - scale_bits - n
    ws = (w.astype(np.int64) << scale_bits) if scale_bits >= 0 else (w.astype(np.int64) >> -scale_bits)
    sign = -1 if wmax <= 0 else 1  # inhibitory weights are clipped and truncated negated
    ws = ws * sign
    ws = np.clip(ws, -256 if mixed else 0, 255)
    trunc = 8 - num_weight_bits + int(mixed)
    ws = ((ws >> trunc) << trunc) * sign
    if scale_bits <= 0:
        return (ws << -scale_bits).astype(np.float64)
    if np.any(ws % (1 << scale_bits)):
        raise NetxError(f"netx layer {layer}: weights are not exact after Lava's weight "
                        "exponent (the right shift of the summed input would round); not supported")
    return (ws >> scale_bits).astype(np.float64)


def _conv(grp, layer: str, name: str, src: int, in_shape, quant: dict) -> g.Conv:
    w = np.asarray(grp["weight"][()]) if "weight" in grp else None
    if w is None:
        raise NetxError(f"netx layer {layer}: missing field 'weight'")
    if w.ndim == 5 and w.shape[-1] == 1:
        w = w[..., 0]
    if w.ndim != 4:
        raise NetxError(f"netx layer {layer}: conv weight must be [out, in, kh, kw], got {w.shape}")
    groups = int(_scalar(grp, "groups", layer))
    stride, padding, dilation = (_pair(grp, k, layer) for k in ("stride", "padding", "dilation"))
    c_in = in_shape[0]
    if len(in_shape) != 3 or w.shape[1] * groups != c_in:
        raise NetxError(f"netx layer {layer}: conv weight {w.shape} (groups {groups}) does not "
                        f"take the previous layer's output of shape {tuple(in_shape)}")
    hw = [(in_shape[1 + a] + 2 * padding[a] - dilation[a] * (w.shape[2 + a] - 1) - 1) // stride[a] + 1
          for a in (0, 1)]
    shape = (int(w.shape[0]), *hw)
    stored = tuple(int(v) for v in np.ravel(grp["shape"][()])) if "shape" in grp else shape
    if stored != shape:
        raise NetxError(f"netx layer {layer}: stored shape {stored} does not chain: the conv "
                        f"of a {tuple(in_shape)} input gives {shape}")
    return g.Conv(name=name, inputs=(src,), shape=shape,
                  weight=_integers(w, layer, "weight").astype(np.float32), stride=stride,
                  padding=padding, dilation=dilation, groups=groups, **quant)


def _dense(grp, layer: str, name: str, src: int, in_shape, quant: dict) -> g.Dense:
    if "delay" in grp:
        raise NetxError(f"netx layer {layer}: field 'delay' (axonal delays) is not supported")
    if "weight" not in grp:
        raise NetxError(f"netx layer {layer}: missing field 'weight'"
                        + (" (complex weights are not supported)" if "weight/real" in grp else ""))
    w = np.asarray(grp["weight"][()])
    n_in = int(np.prod(in_shape))
    if w.ndim == 1:
        w = w.reshape(-1, n_in) if w.size % n_in == 0 else w.reshape(1, -1)
    if w.ndim != 2 or w.shape[1] != n_in:
        raise NetxError(f"netx layer {layer}: dense weight {w.shape} does not take the previous "
                        f"layer's output of shape {tuple(in_shape)}")
    return g.Dense(name=name, inputs=(src,), shape=(int(w.shape[0]),),
                   weight=lava_dense_weights(w, layer).astype(np.float32), **quant)


def _read(f: h5py.File, path: str) -> g.Network:
    if "layer" not in f or not isinstance(f["layer"], h5py.Group) or not len(f["layer"]):
        raise NetxError(f"{path} is not a netx network (no '/layer' group of layers)")
    layers = f["layer"]
    keys = sorted(layers, key=lambda k: int(k) if k.isdigit() else -1)
    if keys != [str(i) for i in range(len(keys))]:
        raise NetxError(f"{path}: netx layers must be named 0..{len(keys) - 1}, found {keys}")
    nodes: list[g.Node] = []
    send_vth = None  # vThMant of the layer whose spikes the next weight layer receives
    final_seen = False
    for i, key in enumerate(keys):
        grp, layer = layers[key], f"{key}"
        kind = _scalar(grp, "type", layer)
        if i == 0 and kind != "input":
            raise NetxError(f"netx layer 0: type {kind!r}; the first layer must be 'input'")
        if kind == "input":
            if i:
                raise NetxError(f"netx layer {layer}: a second 'input' layer")
            shape = tuple(int(v) for v in np.ravel(_scalar_array(grp, "shape", layer)))
            if len(shape) not in (1, 3):
                raise NetxError(f"netx layer {layer}: input shape {shape} must be (C,) or (C, H, W)")
            send_vth = _neuron(grp, layer).get("vth")
            if send_vth is None:
                raise NetxError(f"netx layer {layer}: the input neuron cannot be sigma_output")
            nodes.append(g.Input(name="input", inputs=(), shape=shape))
            continue
        if kind == "flatten":
            if len(nodes[-1].shape) == 3:
                nodes.append(g.Flatten(name=f"{layer}:flatten", inputs=(len(nodes) - 1,),
                                       shape=(nodes[-1].size,)))
            continue
        if kind in _LAVA_REFUSES:
            raise NetxError(f"netx layer {layer}: layer type {kind!r} is not supported: lava-dl's "
                            f"netx does not run it either (lava.lib.dl.netx.hdf5.Network raises "
                            f"NotImplementedError for {', '.join(_LAVA_REFUSES)})")
        if kind not in ("conv", "dense"):
            raise NetxError(f"netx layer {layer}: layer type {kind!r} is not supported "
                            "(input, conv, dense, flatten)")
        neuron = _neuron(grp, layer)
        src, in_shape = len(nodes) - 1, nodes[-1].shape
        first = nodes[-1].kind == "input"
        if kind == "dense" and len(in_shape) == 3:  # netx flattens before a dense layer
            nodes.append(g.Flatten(name=f"{layer}:flatten", inputs=(src,), shape=(nodes[-1].size,)))
            src, in_shape = len(nodes) - 1, (nodes[-1].size,)
        quant = {"quantizer": "lava", "scale": float(2 ** (SPIKE_EXP + STATE_EXP) if first else 1),
                 "threshold": float(send_vth << (SPIKE_EXP + STATE_EXP))}
        make = _conv if kind == "conv" else _dense
        node = make(grp, layer, f"{layer}:{kind}", src, in_shape, quant)
        node.bias = _bias(grp, layer, node, neuron)
        nodes.append(node)
        if neuron["sigma_output"]:
            final_seen = True
            if i != len(keys) - 1:
                raise NetxError(f"netx layer {layer}: sigma_output must be the last layer")
        else:
            nodes.append(g.Activation(name=f"{layer}:relu", inputs=(len(nodes) - 1,),
                                      shape=node.shape, fn="relu"))
            send_vth = neuron["vth"]
    if not final_seen:
        raise NetxError(f"{path}: the last layer must be an SDNN layer with sigma_output "
                        "(what Lava's output sink reads)")
    return g.Network(nodes=nodes, output=len(nodes) - 1)


def _scalar_array(grp, key, layer):
    if key not in grp:
        raise NetxError(f"netx layer {layer}: missing field {key!r}")
    return grp[key][()]


def _bias(grp, layer: str, node: g.Dense | g.Conv, neuron: dict) -> np.ndarray:
    """``trunc(bias) << E`` per output channel (Lava casts the stored bias to int32)."""
    c_out = node.shape[0]
    if "bias" not in grp:
        return np.zeros(c_out, np.float64)
    if neuron["sigma_output"]:
        raise NetxError(f"netx layer {layer}: field 'bias' on a sigma_output layer is not supported")
    b = np.trunc(np.asarray(grp["bias"][()], np.float64)).ravel()
    if b.size == 1:
        b = np.full(c_out, b[0])
    if b.shape != (c_out,):
        raise NetxError(f"netx layer {layer}: bias of shape {b.shape} does not fit {c_out} channels")
    return b * float(2 ** (SPIKE_EXP + STATE_EXP))


def load_netx(path: str | os.PathLike) -> g.Network:
    """Read a lava-dl netx HDF5 file of a sigma-delta network (see the module docstring).

    Raises
    ------
    FileNotFoundError
        No such file.
    NetxError
        Not HDF5 (or truncated), not netx, or a layer, neuron or field this reader does not
        support; the message names the layer and the field.
    """
    path = os.fspath(path)
    f = open_hdf5(path, "netx", NetxError)
    with f:
        try:
            return _read(f, path)
        except (KeyError, OSError) as e:
            raise NetxError(f"{path} is corrupt or truncated: {e}") from None


_FRAC = 2 ** SPIKE_EXP  # a converted network's values in Lava units: weights, biases, inputs * 64


def _stages(net: g.Network) -> list[tuple[g.Node, bool]]:
    """The weight layers in order, each with ``flatten_before``; refuses what netx cannot hold."""
    out, flatten = [], False
    for i, n in enumerate(net.nodes[1:], 1):
        if isinstance(n, (g.Dense, g.Conv)):
            if n.quantizer not in ("lava", "threshold"):
                raise NetxError(f"save_netx: layer {n.name!r} uses the {n.quantizer!r} quantizer; Lava's "
                                "SDNN neurons send thresholded deltas (convert with quantizer='threshold')")
            if n.weight_bits and n.quantizer != "lava":
                raise NetxError(f"save_netx: layer {n.name!r} has {n.weight_bits}-bit herding weights")
            if n.inputs != (i - 1,) or (out and net.nodes[i - 1].kind not in ("activation", "flatten")):
                raise NetxError(f"save_netx: layer {n.name!r} must follow the previous layer's ReLU "
                                "(netx holds a chain: conv/dense, ReLU, ..., flatten, dense)")
            out.append((n, flatten))
            flatten = False
        elif isinstance(n, g.Activation):
            if n.fn != "relu":
                raise NetxError(f"save_netx: node {n.name!r} is a {n.fn!r} activation; Lava's SDNN "
                                "neurons have ReLU only")
            if n.inputs != (i - 1,) or not isinstance(net.nodes[i - 1], (g.Dense, g.Conv)):
                raise NetxError(f"save_netx: activation {n.name!r} must follow a conv or dense layer")
        elif isinstance(n, g.Flatten):
            flatten = True
        else:
            why = {"pool": "lava-dl's netx loader does not run pool layers (NotImplementedError)",
                   "add": "netx has no residual adds",
                   "concat": "netx has no concatenation"}.get(n.kind, "netx cannot express it")
            raise NetxError(f"save_netx: node {n.name!r} ({n.kind}): {why}")
    if not out:
        raise NetxError("save_netx: the network has no weight layer")
    last = net.nodes[net.output]
    if last is not out[-1][0]:
        raise NetxError(f"save_netx: the output must be the last weight layer without activation "
                        f"(Lava's sigma_output neuron), not {last.name!r}")
    if np.any(np.asarray(last.bias) != 0):
        raise NetxError(f"save_netx: output layer {last.name!r} has a bias; Lava's sigma_output "
                        "neuron has none (add it after the sink)")
    for n, _ in out[1:]:
        if n.quantizer == "lava" and n.scale != 1:
            raise NetxError(f"save_netx: layer {n.name!r}: a hidden 'lava' layer must have scale 1")
    return out


def _neuron_group(grp: h5py.Group, vth: int | None) -> None:
    n = grp.create_group("neuron")
    n.create_dataset("type", data="SDNN")
    n.create_dataset("activation", data="relu")
    if vth is None:
        n.create_dataset("vThMant", data=np.int64(0))
        n.create_dataset("sigma_output", data=True)
    else:
        n.create_dataset("vThMant", data=np.int64(vth))


def _lava_ints(n, vth_next, lava: bool, layer: str) -> tuple[np.ndarray, np.ndarray, int | None]:
    """Integer weights, integer bias and the sender's vThMant of one layer, in Lava units."""
    unit = float(2 ** (SPIKE_EXP + STATE_EXP))
    if lava:
        w, b = np.asarray(n.weight, np.float64), np.asarray(n.bias, np.float64) / unit
        return w, b, vth_next
    w = np.rint(np.asarray(n.weight, np.float64) * _FRAC)
    if np.abs(w).max(initial=0) > 254:
        raise NetxError(f"save_netx: layer {layer!r} has weights beyond +-254/64 = 3.97, which "
                        "Lava's 8-bit weights (6 fractional bits) cannot hold")
    return w, np.trunc(np.asarray(n.bias, np.float64) * _FRAC), vth_next


def save_netx(net: g.Network, path: str | os.PathLike) -> None:
    """Write ``net`` as a lava-dl netx HDF5 file that ``lava.lib.dl.netx.hdf5.Network`` runs.

    A network read by :func:`load_netx` is written back exactly (``load_netx(save_netx(x))``
    simulates identically). A network converted with ``quantizer="threshold"`` is written in
    Lava's fixed point, with 6 fractional bits everywhere: weights ``round(64 w)`` (8 bits,
    ``|w| <= 3.97``), biases ``trunc(64 b)``, thresholds ``vThMant = round(64 thr)``; Lava then
    takes integer inputs ``round(64 x)`` and its output sink holds ``2**18`` times the output.
    Refused, naming the layer and why: the herding quantizer, fixed-point herding weights,
    pooling, residual adds, concatenation, activations other than ReLU, a branching graph, an
    output that is not the last weight layer without activation, or one with a bias (Lava's
    ``sigma_output`` neuron has none). Fixed point is the only route: lava-dl 0.6's netx blocks
    have no floating-point process model (``select_tag="floating_pt"`` finds none for its
    ``Input``), and Lava's float ``Dense`` ignores the weight exponent netx sets.
    """
    stages = _stages(net)
    lava = stages[0][0].quantizer == "lava"
    if any((n.quantizer == "lava") != lava for n, _ in stages):
        raise NetxError("save_netx: mixes 'lava' and 'threshold' layers")
    unit = float(2 ** (SPIKE_EXP + STATE_EXP)) if lava else 1.0 / _FRAC
    vths = [n.threshold / unit for n, _ in stages]
    if any(v != np.rint(v) for v in vths):
        if lava:
            raise NetxError("save_netx: a 'lava' threshold is not a multiple of 2**12")
        vths = [float(np.rint(v)) for v in vths]
    tmp = os.fspath(path) + ".tmp"
    with h5py.File(tmp, "w") as f:
        layers = f.create_group("layer")
        k = 0

        def group(kind: str, shape) -> h5py.Group:
            nonlocal k
            grp = layers.create_group(str(k))
            grp.create_dataset("type", data=np.array([kind.encode()], dtype="S10"))
            grp.create_dataset("shape", data=np.array(shape, np.int64))
            k += 1
            return grp

        _neuron_group(group("input", net.input_shape), int(vths[0]))
        for j, (n, flatten) in enumerate(stages):
            if flatten:
                size = net.nodes[n.inputs[0]].size
                group("flatten", (size, 1, 1))
            last = j == len(stages) - 1
            w, b, vth = _lava_ints(n, None if last else int(vths[j + 1]), lava, n.name)
            grp = group(n.kind, n.shape)
            grp.create_dataset("weight", data=w.astype(np.float32))
            if not last:
                grp.create_dataset("bias", data=b.astype(np.float32))
            if isinstance(n, g.Conv):
                for key in ("stride", "padding", "dilation"):
                    grp.create_dataset(key, data=np.array(getattr(n, key), np.int64))
                grp.create_dataset("groups", data=np.int64(n.groups))
                grp.create_dataset("inChannels", data=np.int64(w.shape[1] * n.groups))
                grp.create_dataset("outChannels", data=np.int64(w.shape[0]))
                grp.create_dataset("kernelSize", data=np.array(w.shape[2:], np.int64))
            else:
                grp.create_dataset("inFeatures", data=np.int64(w.shape[1]))
                grp.create_dataset("outFeatures", data=np.int64(w.shape[0]))
            _neuron_group(grp, vth)
    os.replace(tmp, path)
