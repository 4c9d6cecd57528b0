"""Registry of the small trained checkpoints shipped in ``checkpoints/``.

Each checkpoint is a pair ``<name>.pt`` (a float32 ``state_dict``) and ``<name>.json``
(metadata: factory and keyword arguments, input shape, the training command, seed,
epochs, test metrics, number of parameters). Checkpoints exported by Bayesian
compression also carry a ``"compression"`` record (weights kept and total, pruned
architecture, bits per layer, accuracy of the exported fixed-point weights). Files are
located relative to this package, so the registry works from a source checkout and from an installed wheel.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from importlib import resources
from typing import Any

import torch
from torch import nn

from .lenet import lenet5_caffe
from .mlp import lenet_300_100, mlp, sdqn_mlp
from .video import face_detector

__all__ = ["FACTORIES", "list_pretrained", "load_pretrained", "pretrained_info"]

#: Factories that checkpoints may name in their ``"factory"`` field.
FACTORIES: dict[str, Callable[..., nn.Module]] = {
    "sdqn_mlp": sdqn_mlp,
    "lenet_300_100": lenet_300_100,
    "lenet5_caffe": lenet5_caffe,
    "face_detector": face_detector,
    "mlp": mlp,  # pruned fully connected nets (Bayesian compression)
}


def _checkpoint_dir() -> Any:
    return resources.files(__package__).joinpath("checkpoints")


def _all_info() -> dict[str, dict[str, Any]]:
    out: dict[str, dict[str, Any]] = {}
    for entry in sorted(_checkpoint_dir().iterdir(), key=lambda p: p.name):
        if entry.name.endswith(".json"):
            info = json.loads(entry.read_text(encoding="utf-8"))
            out[info["name"]] = info
    return out


def pretrained_info(name: str) -> dict[str, Any]:
    """Full metadata record of one checkpoint.

    Parameters
    ----------
    name : str
        Checkpoint name (see :func:`list_pretrained`).

    Returns
    -------
    dict
        The parsed ``<name>.json``.

    Raises
    ------
    KeyError
        If no checkpoint of that name exists.
    """
    infos = _all_info()
    if name not in infos:
        raise KeyError(f"unknown checkpoint {name!r}; available: {sorted(infos)}")
    return infos[name]


def list_pretrained() -> dict[str, dict[str, Any]]:
    """Summaries of the available checkpoints.

    Returns
    -------
    dict
        ``name -> {"description", "input_shape", "metrics"}``.
    """
    return {
        name: {
            "description": info.get("description", ""),
            "input_shape": tuple(info["input_shape"]),
            "metrics": dict(info.get("metrics", {})),
        }
        for name, info in _all_info().items()
    }


def load_pretrained(name: str) -> nn.Module:
    """Build a registered model and load its trained weights.

    Parameters
    ----------
    name : str
        Checkpoint name (see :func:`list_pretrained`).

    Returns
    -------
    torch.nn.Module
        The model on CPU, in eval mode.
    """
    info = pretrained_info(name)
    model = FACTORIES[info["factory"]](**info.get("kwargs", {}))
    ref = _checkpoint_dir().joinpath(info.get("weights", f"{name}.pt"))
    with resources.as_file(ref) as path:
        state = torch.load(path, map_location="cpu", weights_only=True)
    model.load_state_dict(state)
    return model.eval()
