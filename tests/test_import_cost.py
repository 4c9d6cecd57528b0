"""``import sigmadelta`` loads no heavy package; its public names load their modules on use.

A process that reads a network file, prints ``--help`` or simulates a saved network never
imports torch (about 2.6 s of CPU per process: the CLI, subprocess tests, dask workers). What a
fresh interpreter imports is read from ``python -X importtime`` (every module it imports, in
the process itself), so these tests run the real command, not a stand-in.
"""

import importlib
import subprocess
import sys
import types

import numpy as np
import pytest
from _zoo import make, smooth_stream

import sigmadelta as sd

#: packages `import sigmadelta` does not need (from 0.01 s of CPU, tqdm, to 2.6 s, torch)
HEAVY = ("torch", "numba", "h5py", "scipy", "matplotlib", "tqdm", "dask", "distributed", "sklearn",
         "skimage", "skvideo", "av", "cloudpickle")


def _imported(*argv, cwd=None) -> tuple[set[str], str]:
    """The top-level packages a fresh ``python -X importtime ARGV`` imports, and its stdout."""
    proc = subprocess.run([sys.executable, "-X", "importtime", *argv], capture_output=True, text=True,
                          cwd=cwd, timeout=600)
    assert proc.returncode == 0, proc.stderr[-2000:]
    names = {line.rsplit("|", 1)[1].strip().split(".")[0]
             for line in proc.stderr.splitlines() if line.startswith("import time:")}
    assert "sigmadelta" in names  # the log is read correctly
    return names, proc.stdout


def test_import_sigmadelta_imports_no_heavy_package():
    names, _ = _imported("-c", "import sigmadelta")
    assert names.isdisjoint(HEAVY), sorted(names & set(HEAVY))


def test_cli_help_and_info_do_not_import_torch(tmp_path):
    names, out = _imported("-m", "sigmadelta.cli", "--help")
    assert names.isdisjoint(HEAVY), sorted(names & set(HEAVY))
    assert all(word in out for word in ("convert", "simulate", "report", "info"))

    model, shape = make("conv")
    net = sd.convert(model, shape)
    sd.save(net, tmp_path / "net.h5")
    names, out = _imported("-m", "sigmadelta.cli", "info", "net.h5", cwd=tmp_path)
    assert names.isdisjoint({"torch", "numba", "matplotlib", "dask"}), sorted(names & set(HEAVY))
    assert f"dense MACs per frame: {int(net.dense_macs().sum())}" in out


def test_cli_simulate_of_a_saved_network_does_not_import_torch(tmp_path):
    """What ``sigmadelta simulate`` (and a dask worker's ``run_stream``) runs needs no torch."""
    model, shape = make("conv")
    net = sd.convert(model, shape)
    frames = smooth_stream(shape, t=4)
    sd.save(net, tmp_path / "net.h5")
    np.save(tmp_path / "frames.npy", frames)
    names, _ = _imported("-m", "sigmadelta.cli", "simulate", "net.h5", "frames.npy", "-o", "run.h5", "-q",
                         cwd=tmp_path)
    assert names.isdisjoint({"torch", "matplotlib", "dask", "distributed"}), sorted(names & set(HEAVY))
    _, outputs, complete = sd.read_run(tmp_path / "run.h5")
    assert complete
    ref = sd.simulate(net, frames, progress=False).outputs
    np.testing.assert_array_equal(outputs, ref.astype(np.float32))  # a recording holds float32


def test_public_names_are_their_modules_objects():
    assert set(sd._HOME) == set(sd.__all__) - {"__version__"}
    for name, home in sd._HOME.items():
        assert getattr(sd, name) is getattr(importlib.import_module(home, "sigmadelta"), name), name
    assert set(sd.__all__) <= set(dir(sd))
    assert isinstance(sd.io, types.ModuleType) and sd.io.read_run_info  # submodules by attribute
    with pytest.raises(AttributeError, match="no attribute 'no_such_name'"):
        sd.no_such_name  # noqa: B018


def test_a_submodule_named_like_a_function_does_not_replace_it():
    """Python binds ``package.<child>`` to a submodule on its first import (``setattr`` on the
    package, as here): ``sd.convert`` and ``sd.reference`` stay the functions."""
    for name in ("convert", "reference"):
        module = importlib.import_module(f"sigmadelta.{name}")
        setattr(sd, name, module)
        assert getattr(sd, name) is getattr(module, name) and callable(getattr(sd, name))
    sd.io = sys.modules["sigmadelta.io"]  # other submodules are set as usual
    assert sd.io is sys.modules["sigmadelta.io"]
