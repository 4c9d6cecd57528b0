"""sigmadelta: event-driven sigma-delta simulation of converted PyTorch networks.

The pipeline, one frame's trip through it::

    torch model --convert--> Network (graph) --Simulator (engine, kernels)--> outputs + Stats
                                           \\--reference (dense, torch)-----> outputs

>>> import sigmadelta as sd
>>> net = sd.convert(model, input_shape=(1, 144, 176), scale=32.0)
>>> res = sd.simulate(net, frames)        # res.outputs [T, ...], res.stats.synops [T, layers]
>>> ref = sd.reference(net, frames)       # the same quantized net, dense
>>> sd.save(net, "net.h5"); net = sd.load("net.h5")
>>> net = sd.load_netx("sdnn.net")        # a lava-dl netx file; run with timing="pipelined"

``import sigmadelta`` imports none of its modules (nor torch, Numba, h5py, ...): each public
name below loads its module the first time it is used (:func:`__getattr__`, PEP 562), so a
process that only reads a file or prints ``--help`` never pays for torch.
"""

from __future__ import annotations

import importlib
import importlib.util
import sys
import types
from typing import TYPE_CHECKING

from ._version import __version__

if TYPE_CHECKING:  # the same names, for type checkers and readers; loaded lazily below
    from .convert import UnsupportedLayerError, convert
    from .engine import Result, Simulator, SimulatorBusyError, simulate, simulate_batch
    from .fixedpoint import AccumulatorOverflowError
    from .graph import Network, NetworkError
    from .io import FormatError, NetxError, load, load_netx, read_run, save, save_netx
    from .many import simulate_many
    from .numeric import NumericOverflowError
    from .reference import Reference, reference
    from .runs import Runs, read_runs
    from .scales import calibrate_percentile, optimize_scales, uniform_scales
    from .stats import Stats

#: public name -> the module that defines it (relative to this package)
_HOME = {
    "convert": ".convert", "UnsupportedLayerError": ".convert",
    "simulate": ".engine", "simulate_batch": ".engine", "Simulator": ".engine",
    "Result": ".engine", "SimulatorBusyError": ".engine",
    "simulate_many": ".many", "read_runs": ".runs", "Runs": ".runs",
    "reference": ".reference", "Reference": ".reference",
    "Stats": ".stats",
    "optimize_scales": ".scales", "calibrate_percentile": ".scales", "uniform_scales": ".scales",
    "Network": ".graph", "NetworkError": ".graph",
    "save": ".io", "load": ".io", "load_netx": ".io", "save_netx": ".io", "NetxError": ".io",
    "read_run": ".io", "FormatError": ".io",
    "AccumulatorOverflowError": ".fixedpoint",
    "NumericOverflowError": ".numeric",
}

__all__ = [
    "__version__",
    "convert",
    "simulate",
    "simulate_batch",
    "simulate_many",
    "read_runs",
    "Runs",
    "reference",
    "Simulator",
    "Reference",
    "Result",
    "Stats",
    "optimize_scales",
    "calibrate_percentile",
    "uniform_scales",
    "Network",
    "save",
    "load",
    "load_netx",
    "save_netx",
    "NetxError",
    "read_run",
    "FormatError",
    "UnsupportedLayerError",
    "NetworkError",
    "AccumulatorOverflowError",
    "NumericOverflowError",
    "SimulatorBusyError",
]


def __getattr__(name: str):
    """The public ``name``, imported from its module on first use (then a plain attribute)."""
    home = _HOME.get(name)
    if home is not None:
        value = getattr(importlib.import_module(home, __name__), name)
    elif not name.startswith("__") and importlib.util.find_spec(f"{__name__}.{name}") is not None:
        value = importlib.import_module(f"{__name__}.{name}")  # a submodule: sd.io, sd.graph, ...
    else:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    """The loaded names and every public one (loaded or not)."""
    return sorted(set(globals()) | set(__all__))


class _Package(types.ModuleType):
    """This package's module type: importing the submodule ``convert`` (or ``reference``) binds
    the function of that name, as ``from .convert import convert`` did when this package imported
    its modules eagerly (Python sets ``package.<submodule>`` to the module on its first import).
    """

    def __setattr__(self, name: str, value) -> None:
        if isinstance(value, types.ModuleType) and _HOME.get(name) == "." + name:
            value = getattr(value, name)
        super().__setattr__(name, value)


sys.modules[__name__].__class__ = _Package
