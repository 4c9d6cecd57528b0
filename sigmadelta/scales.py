"""Choosing the scales: compute-penalised scale optimisation and simple calibrations.

A sigma-delta network is only as good as the scale ``k_l`` (herding) or the
threshold ``theta_l`` (threshold quantizer) at the input of every weight layer
``l``. Following O'Connor & Welling, "Sigma Delta Quantized Networks" (2016),
:func:`optimize_scales` minimises by gradient descent on ``log k`` (or ``log theta``)

.. math::

    J = E\\big(f_q(x), f_{ann}(x)\\big) + \\lambda \\, \\frac{\\sum_l S_l}{M},

* ``E``: ``"kl"`` = mean over frames of ``KL(softmax(y_ann) || softmax(y_q))``;
  ``"l2"`` = ``mean((y_q - y_ann)^2) / var(y_ann)``; ``"l1"`` =
  ``mean|y_q - y_ann| / mean|y_ann|`` (``var`` / ``mean`` over the whole stream), all unitless;
* ``S_l``: surrogate synaptic operations per frame of layer ``l`` (:mod:`sigmadelta.rounding`);
* ``M``: the network's dense MACs per frame, so ``lambda`` is unitless
  (``lambda = 0.1``: a 10 % cost share weighs as much as 0.1 of error).

The surrogate network is :class:`sigmadelta.rounding.RoundingNet` (its quantizers
and cost surrogates are described there).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
import torch
from torch import nn
from tqdm.auto import tqdm

from . import graph as g
from .convert import convert
from .dense import evaluate
from .frames import check_frames
from .graph import per_layer
from .rounding import COSTS, LOSSES, PER, RoundingNet, _check_choice, fan_out
from .torchlimit import DEFAULT_TORCH_THREADS, torch_limit

__all__ = [
    "LOSSES",
    "PER",
    "COSTS",
    "RoundingNet",
    "fan_out",
    "uniform_scales",
    "calibrate_percentile",
    "scale_objective",
    "optimize_scales",
]


def _as_net(net_or_model, input_shape, torch_threads: int | None = None) -> g.Network:
    """The network, or the model converted (inside a :func:`torch_limit` block: None)."""
    if isinstance(net_or_model, g.Network):
        return net_or_model
    if input_shape is None:
        raise ValueError("input_shape is required when a torch model (not a Network) is given")
    return convert(net_or_model, input_shape, torch_threads=torch_threads)


def _frames(frames, input_shape: Sequence[int]) -> torch.Tensor:
    """Validate ``[T, *input_shape]`` (T >= 2, floating, finite) into a float64 tensor."""
    shape = tuple(int(s) for s in input_shape)
    arr = check_frames(frames, shape)
    if arr.shape[0] < 2:
        raise ValueError(f"need at least 2 frames (changes between frames set the cost), got {arr.shape[0]}")
    return torch.as_tensor(np.asarray(arr, np.float64))


def uniform_scales(net_or_model: g.Network | nn.Module, input_shape: Sequence[int] | None = None,
                   k: float = 32.0) -> dict[str, float]:
    """The same scale ``k`` for every weight layer: ``{name: k}``.

    Parameters
    ----------
    net_or_model : Network or torch.nn.Module
        A converted network, or a model (then ``input_shape`` is required).
    input_shape : tuple of int, optional
        One frame's shape, batch excluded.
    k : float
        The scale (``> 0``); for the threshold quantizer use ``1/k`` as threshold.
    """
    if not np.isfinite(k) or k <= 0:
        raise ValueError(f"k must be a finite number > 0, got {k}")
    return {name: float(k) for name in _as_net(net_or_model, input_shape, DEFAULT_TORCH_THREADS).layer_names}


def _layer_inputs(rn: RoundingNet, frames: torch.Tensor, chunk: int = 256) -> list[list[torch.Tensor]]:
    """Float-ANN values at every weight layer's input, in chunks of frames."""
    idx = [n.inputs[0] for n in rn.net.weight_layers]
    out: list[list[torch.Tensor]] = [[] for _ in idx]
    with torch.no_grad():
        for s in range(0, frames.shape[0], chunk):
            vals = evaluate(rn.net, frames[s:s + chunk].to(rn.dtype), weights=rn.weights, keep=True,
                            torch_threads=None)  # in the caller's block
            for j, i in enumerate(idx):
                out[j].append(vals[i])
    return out


def calibrate_percentile(model: nn.Module | g.Network, frames, input_shape: Sequence[int] | None = None,
                         percentile: float = 99.9, levels: float = 32.0,
                         torch_threads: int | None = DEFAULT_TORCH_THREADS) -> dict[str, float]:
    """Per-layer scales from activation percentiles: ``k_l = levels / P_p(|a_l|)``.

    ``P_p(|a_l|)`` is the ``percentile``-th percentile of the nonzero magnitudes of
    layer ``l``'s input activations in the float ANN over ``frames`` (the robust
    maximum of the ANN-to-SNN conversion toolkits, Rueckauer et al. 2017), so that
    this range is cut into about ``levels`` quanta. A layer whose input is always
    zero gets ``k = levels``. For the threshold quantizer use ``1 / k_l``. torch runs on
    ``torch_threads`` intra-op threads (:mod:`sigmadelta.torchlimit`; None: leave torch alone).

    Returns
    -------
    dict
        ``{layer name: k_l > 0}``, accepted by ``sd.convert(model, input_shape, scale=...)``.
    """
    if not 0 < percentile <= 100:
        raise ValueError(f"percentile must be in (0, 100], got {percentile}")
    if not np.isfinite(levels) or levels <= 0:
        raise ValueError(f"levels must be a finite number > 0, got {levels}")
    with torch_limit(torch_threads):
        net = _as_net(model, input_shape)
        rn = RoundingNet(net, dtype=torch.float64)
        layer_inputs = _layer_inputs(rn, _frames(frames, net.input_shape))
    out = {}
    for name, chunks in zip(rn.names, layer_inputs, strict=True):
        a = torch.cat(chunks).abs().flatten().numpy()
        a = a[a > 0]
        p = float(np.percentile(a, percentile)) if a.size else 1.0
        out[name] = float(levels) / p
    return out


def _reference_outputs(rn: RoundingNet, frames: torch.Tensor, chunk: int = 256) -> torch.Tensor:
    with torch.no_grad():
        return torch.cat([rn(frames[s:s + chunk], quantize=False)[0]
                          for s in range(0, frames.shape[0], chunk)])


def _norm(ref: torch.Tensor, loss: str) -> float:
    if loss == "kl":
        if ref.ndim != 2:
            raise ValueError(f'loss="kl" needs a classifier with output [C], got output shape '
                             f'{tuple(ref.shape[1:])}; use loss="l2" or "l1"')
        return 1.0
    v = float(ref.var()) if loss == "l2" else float(ref.abs().mean())
    return v if v > 0 else 1.0


def _validate(lam, loss, per, quantizer, epochs, lr, cost) -> None:
    if not isinstance(lam, (int, float)) or not np.isfinite(lam) or lam < 0:
        raise ValueError(f"lam must be a finite number >= 0, got {lam!r}")
    _check_choice(loss, LOSSES, "loss")
    _check_choice(per, PER, "per")
    _check_choice(quantizer, g.QUANTIZERS, "quantizer")
    _check_choice(cost, COSTS, "cost")
    if not isinstance(epochs, (int, np.integer)) or epochs < 1:
        raise ValueError(f"epochs must be an integer >= 1, got {epochs!r}")
    if not isinstance(lr, (int, float)) or not np.isfinite(lr) or lr <= 0:
        raise ValueError(f"lr must be a finite number > 0, got {lr!r}")


def _init_values(model, frames, input_shape, net, init, quantizer) -> list:
    """Resolve ``init`` (None: percentile calibration with 32 levels) to a list per layer."""
    names = net.layer_names
    if init is None:
        k = calibrate_percentile(net, frames, input_shape, torch_threads=None)  # in the caller's block
        vals = [k[n] for n in names]
        return [1.0 / v for v in vals] if quantizer == "threshold" else vals
    vals = per_layer(init, names, "init")
    for name, v in zip(names, vals, strict=True):
        a = np.asarray(v, np.float64)
        if not np.all(np.isfinite(a)) or np.any(a <= 0):
            raise ValueError(f"init of layer {name!r} must be finite and > 0")
    return vals


def scale_objective(model: nn.Module | g.Network, frames, input_shape: Sequence[int] | None,
                    values: float | Sequence | Mapping, lam: float, loss: str = "kl",
                    quantizer: str = "herding", per: str = "layer", cost: str = "soft",
                    torch_threads: int | None = DEFAULT_TORCH_THREADS) -> dict:
    """Evaluate the surrogate objective ``J = E + lam * S / M`` on a whole stream.

    ``values`` are scales (herding) or thresholds, in any form ``init`` of
    :func:`optimize_scales` accepts. Returns ``{"objective", "error", "cost"}``
    (``cost`` is the surrogate ``sum_l S_l / M``, a fraction of a dense pass). torch runs
    on ``torch_threads`` intra-op threads (as in :func:`optimize_scales`).
    """
    _validate(lam, loss, per, quantizer, 1, 1.0, cost)
    with torch_limit(torch_threads):
        net = _as_net(model, input_shape)
        x = _frames(frames, net.input_shape)
        vals = _init_values(model, x, input_shape, net, values, quantizer)
        rn = RoundingNet(net, quantizer, per, vals, cost, dtype=torch.float64)
        ref = _reference_outputs(rn, x)
        norm = _norm(ref, loss)
        with torch.no_grad():
            obj, err, share = rn.objective(x, ref, lam, loss, norm)
    return {"objective": float(obj), "error": float(err), "cost": float(share)}


def _windows(n: int, window: int, rng: np.random.Generator) -> list[slice]:
    """Windows of ``window`` consecutive frames overlapping by one: every pair once."""
    step = max(window - 1, 1)
    starts = np.arange(0, max(n - 1, 1), step)
    return [slice(int(s), int(min(s + window, n))) for s in rng.permutation(starts)]


def _fit(rn: RoundingNet, x: torch.Tensor, ref: torch.Tensor, lam: float, loss: str, norm: float,
         epochs: int, lr: float, window: int, seed: int, progress, history: list | None) -> None:
    """Adam on ``rn.log_q`` over shuffled windows; epoch means into ``history``."""
    opt = torch.optim.Adam(rn.parameters(), lr=lr)
    rng = np.random.default_rng(seed)
    bar = tqdm(range(epochs), desc=f"scales lam={lam:g}", disable=None if progress is None else not progress)
    for epoch in bar:
        sums = np.zeros(3)
        wins = _windows(x.shape[0], window, rng)
        for w in wins:
            obj, err, share = rn.objective(x[w], ref[w], lam, loss, norm)
            opt.zero_grad()
            obj.backward()
            opt.step()
            sums += (obj.item(), err.item(), share.item())
        mean = sums / len(wins)
        bar.set_postfix(J=f"{mean[0]:.4g}", E=f"{mean[1]:.3g}", ops=f"{mean[2]:.3g}")
        if history is not None:
            history.append({"epoch": epoch, "objective": mean[0], "error": mean[1], "cost": mean[2]})


def optimize_scales(
    model: nn.Module | g.Network, frames, input_shape: Sequence[int] | None, lam: float,
    loss: str = "kl", per: str = "layer", epochs: int = 20, lr: float = 0.05,
    quantizer: str = "herding", init: float | Sequence | Mapping | None = None,
    progress: bool | None = None, seed: int = 0, cost: str = "soft", window: int = 64,
    temperature: float = 0.1, history: list | None = None,
    torch_threads: int | None = DEFAULT_TORCH_THREADS,
) -> dict[str, float | np.ndarray]:
    """Optimise per-layer (or per-unit) scales or thresholds: ``min J = E + lam * S / M``.

    Adam on ``log k`` (herding) or ``log theta`` (threshold) over windows of
    ``window`` consecutive frames (shuffled, every frame pair once per epoch); the
    rounding noise is held constant in the gradient (see the module docstring).

    Parameters
    ----------
    model : torch.nn.Module or Network
        The float model (converted internally) or an already converted network.
    frames : array [T, *input_shape]
        A training stream, ``T >= 2`` floating, finite frames.
    input_shape : tuple of int
        One frame's shape (may be None when a Network is given).
    lam : float
        Weight of the cost share (``>= 0``; 0 minimises the error alone).
    loss : {"kl", "l2", "l1"}
        Output error ``E``: KL of the softmaxes (classifiers) or normalised L2 / L1.
    per : {"layer", "unit"}
        One value per weight layer, or one per input neuron of every weight layer.
    epochs, lr : int, float
        Passes over the stream and the Adam step on the log values.
    quantizer : {"herding", "threshold"}
        Returns scales (``scale=``) for herding, thresholds (``threshold=``) otherwise.
    init : float, list or dict, optional
        Start values; None: :func:`calibrate_percentile` (32 levels; threshold ``1/k``).
    progress : bool, optional
        tqdm bar over epochs (default: only on a terminal).
    seed : int
        Seed of the window order.
    cost : {"soft", "synops", "additions"}
        Herding cost surrogate per neuron: ``1 - exp(-k|Delta a|)``, ``min(1, k|Delta a|)``
        or ``k|Delta a|`` (module docstring).
    window, temperature : int, float
        Frames per optimisation step; relative temperature of the threshold sigmoid.
    history : list, optional
        If given, one dict ``{"epoch", "objective", "error", "cost"}`` (epoch means) is
        appended per epoch.
    torch_threads : int or None
        torch's intra-op threads during the search (:mod:`sigmadelta.torchlimit`), restored
        afterwards. 1 (default): the small batches of a window gain nothing from more and
        spin against other work; None leaves torch's own setting.

    Returns
    -------
    dict
        ``{layer name: value}``: floats for ``per="layer"``, arrays of the layer's
        input shape (PyTorch layout) for ``per="unit"``.
    """
    _validate(lam, loss, per, quantizer, epochs, lr, cost)
    if not isinstance(window, (int, np.integer)) or window < 2:
        raise ValueError(f"window must be an integer >= 2, got {window!r}")
    with torch_limit(torch_threads):
        net = _as_net(model, input_shape)
        x = _frames(frames, net.input_shape)
        vals = _init_values(model, x, input_shape, net, init, quantizer)
        rn = RoundingNet(net, quantizer, per, vals, cost, temperature)
        ref = _reference_outputs(rn, x)
        norm = _norm(ref, loss)
        _fit(rn, x, ref, lam, loss, norm, epochs, lr, window, seed, progress, history)
        return rn.values()
