"""Loading a PyTorch model from the command line's spellings of it.

Used by the ``sigmadelta`` command (``convert``, ``demo --model``) and the
scripts (``scripts/pareto.py``, ``scripts/benchmark.py``). Every problem is a
:class:`ModelLoadError` (a ``ValueError``) whose message names the file or spec.
"""

from __future__ import annotations

import importlib
import os
import sys

__all__ = ["load_torch_model", "ModelLoadError"]


class ModelLoadError(ValueError):
    """A model spec, model file or state dict that cannot be loaded (the message says why)."""


def _import_factory(spec: str):
    """``module:factory`` -> the factory; the working directory is on the import path."""
    mod_name, _, attr = spec.partition(":")
    if os.getcwd() not in sys.path and "" not in sys.path:
        sys.path.insert(0, os.getcwd())  # a console script's path starts at its own folder
    try:
        module = importlib.import_module(mod_name)
    except Exception as e:  # ImportError, or anything the module itself raises
        raise ModelLoadError(f"cannot import {mod_name!r} for {spec!r}: {type(e).__name__}: {e}") from None
    factory = getattr(module, attr, None)
    if not callable(factory):
        raise ModelLoadError(f"{spec!r}: module {mod_name!r} has no callable {attr!r}")
    return factory


def load_torch_model(spec: str, weights: str | None = None):
    """A saved torch model file, or ``module:factory`` (called without arguments);
    then, optionally, a state dict of ``weights`` loaded into it. In eval mode.

    Raises :class:`ModelLoadError` naming the problem (missing or unreadable file, a state
    dict where a model was expected, an import or factory failure, weights that do not fit).
    """
    import torch

    if os.path.isdir(spec):
        raise ModelLoadError(f"{spec} is a directory, not a saved torch model")
    if os.path.exists(spec):
        model = _torch_load(spec, weights_only=False)
        if isinstance(model, dict):
            raise ModelLoadError(f"{spec} holds a state dict, not a model: use module:factory "
                                 f"--weights {spec}")
    elif ":" in spec:
        try:
            model = _import_factory(spec)()
        except ModelLoadError:
            raise
        except Exception as e:
            raise ModelLoadError(f"{spec}() raised {type(e).__name__}: {e}") from None
    else:
        raise ModelLoadError(f"{spec!r} is neither a file nor a module:factory spec")
    if not isinstance(model, torch.nn.Module):
        raise ModelLoadError(f"{spec} gave a {type(model).__name__}, not a torch.nn.Module")
    if weights:
        _load_weights(model, weights)
    return model.eval()


def _torch_load(path: str, weights_only: bool):
    import torch

    if not os.path.isfile(path):
        raise ModelLoadError(f"no such file: {path}")
    try:
        return torch.load(path, map_location="cpu", weights_only=weights_only)
    except Exception as e:  # pickle, zip and torch errors alike
        first = (str(e).strip().splitlines() or [type(e).__name__])[0]
        raise ModelLoadError(f"{path} is not a readable torch file ({type(e).__name__}: {first})") from None


def _load_weights(model, path: str) -> None:
    """Load a state dict, naming what does not fit (keys, then shapes)."""
    state = _torch_load(path, weights_only=True)
    if not isinstance(state, dict):
        raise ModelLoadError(f"--weights {path} holds a {type(state).__name__}, not a state dict")
    own = model.state_dict()
    missing = [k for k in own if k not in state]
    extra = [k for k in state if k not in own]
    problems = [f"{what} {', '.join(keys[:4])}{' ...' if len(keys) > 4 else ''}"
                for what, keys in (("missing", missing), ("unexpected", extra)) if keys]
    shape = {k: tuple(getattr(v, "shape", ())) for k, v in state.items()}
    problems += [f"{k} is {shape[k]} in the file, {tuple(v.shape)} in the model"
                 for k, v in own.items() if k in shape and shape[k] != tuple(v.shape)][:3]
    if problems:
        raise ModelLoadError(f"--weights {path} does not fit the model: {'; '.join(problems)}")
    model.load_state_dict(state)
