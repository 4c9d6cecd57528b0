"""Loading a PyTorch model from the command line's spellings of it.

Used by the ``sigmadelta`` command (``convert``, ``demo --model``) and the
scripts (``scripts/pareto.py``, ``scripts/benchmark.py``). Every problem is a
:class:`ModelLoadError` (a ``ValueError``) whose message names the file or spec.

A spec is a saved model file, ``module:factory`` (the factory called without arguments),
or ``module:factory(16, depth=2, act="relu")``: the factory called with those arguments,
written as in Python but only as literals (numbers, strings, True/False/None, tuples,
lists, dicts, sets), read with :func:`ast.literal_eval`, never evaluated as code.
"""

from __future__ import annotations

import ast
import importlib
import inspect
import os
import sys

__all__ = ["load_torch_model", "ModelLoadError", "parse_factory_spec"]


class ModelLoadError(ValueError):
    """A model spec, model file or state dict that cannot be loaded (the message says why)."""


_SPEC_FORMS = "module:factory or module:factory(name=value, ...) with literal values"


def _literal(node: ast.expr, name: str, spec: str):
    """The value of one argument (``name=`` or ``""`` for a positional one), a literal only."""
    try:
        return ast.literal_eval(node)
    except (ValueError, TypeError, SyntaxError, MemoryError, RecursionError):
        raise ModelLoadError(f"{spec!r}: argument {name}{ast.unparse(node)} is not a literal "
                             f"(numbers, strings, True/False/None, tuples, lists, dicts)") from None


def parse_factory_spec(spec: str) -> tuple[str, str, tuple, dict]:
    """``"module:factory(16, depth=2)"`` -> ``("module", "factory", (16,), {"depth": 2})``.

    Without parentheses the arguments are empty. The values must be literals
    (:func:`ast.literal_eval`); anything else is a :class:`ModelLoadError` naming the spec.
    """
    mod_name, _, call = spec.partition(":")
    call = call.strip()
    if not mod_name.strip() or not call:
        raise ModelLoadError(f"{spec!r} is not {_SPEC_FORMS}")
    try:
        expr = ast.parse(call, mode="eval").body
    except SyntaxError as e:
        raise ModelLoadError(f"{spec!r} is not {_SPEC_FORMS} ({e.msg})") from None
    if isinstance(expr, ast.Name):
        return mod_name.strip(), expr.id, (), {}
    if not (isinstance(expr, ast.Call) and isinstance(expr.func, ast.Name)):
        raise ModelLoadError(f"{spec!r} is not {_SPEC_FORMS}")
    if any(isinstance(a, ast.Starred) for a in expr.args) or any(k.arg is None for k in expr.keywords):
        raise ModelLoadError(f"{spec!r}: *args and **kwargs are not accepted, name each argument")
    args = tuple(_literal(a, "", spec) for a in expr.args)
    kwargs = {k.arg: _literal(k.value, f"{k.arg}=", spec) for k in expr.keywords}
    return mod_name.strip(), expr.func.id, args, kwargs


def _check_arguments(factory, spec: str, args: tuple, kwargs: dict) -> None:
    """A TypeError naming the factory's parameters if it cannot take ``args`` / ``kwargs``."""
    try:
        sig = inspect.signature(factory)
    except (TypeError, ValueError):  # no signature to read (a builtin): the call will tell
        return
    try:
        sig.bind(*args, **kwargs)
    except TypeError as e:
        raise ModelLoadError(f"{spec!r}: TypeError: {e}; the factory takes {sig}") from None


def _import_factory(spec: str):
    """``module:factory`` -> the factory; the working directory is on the import path."""
    mod_name, attr, _, _ = parse_factory_spec(spec)
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
    """A saved torch model file, ``module:factory`` (called without arguments) or
    ``module:factory(16, depth=2)`` (called with those literal arguments, see the module
    docstring); then, optionally, a state dict of ``weights`` loaded into it. In eval mode.

    Raises :class:`ModelLoadError` naming the problem (missing or unreadable file, a state
    dict where a model was expected, a malformed spec or non-literal argument, an import or
    factory failure, arguments the factory does not take (the ``TypeError`` with its
    signature), weights that do not fit).
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
        model = _call_factory(spec)
    else:
        raise ModelLoadError(f"{spec!r} is neither a file nor a module:factory spec")
    if not isinstance(model, torch.nn.Module):
        raise ModelLoadError(f"{spec} gave a {type(model).__name__}, not a torch.nn.Module")
    if weights:
        _load_weights(model, weights)
    return model.eval()


def _call_factory(spec: str):
    """Import the factory of ``spec``, check its arguments against its signature, call it."""
    _, _, args, kwargs = parse_factory_spec(spec)
    factory = _import_factory(spec)
    _check_arguments(factory, spec, args, kwargs)
    try:
        return factory(*args, **kwargs)
    except Exception as e:
        call = spec if spec.rstrip().endswith(")") else f"{spec}()"
        raise ModelLoadError(f"{call} raised {type(e).__name__}: {e}") from None


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
