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
"""

from ._version import __version__
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
