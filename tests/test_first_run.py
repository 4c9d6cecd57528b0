"""The first run says it compiles, only when it will; float networks skip the fixed-point paths."""

import numpy as np
from _zoo import make, smooth_stream

import sigmadelta as sd
from sigmadelta import engine
from sigmadelta import program as P


def _args(sim: sd.Simulator, frames: np.ndarray) -> tuple:
    p, t = sim._prog, len(frames)
    x = np.ascontiguousarray(frames.reshape(t, -1), dtype=sim.dtype)
    return (p.code, p.par, p.F, p.I, p.D, x, 0, 0, len(p.code), np.zeros((t, 4, len(sim._weight_ops))),
            np.zeros((t, sim._n_out), sim.dtype), p.out_slot, np.zeros(2, np.int64), p.floats, p.fixed)


def test_loop_compiled_reads_the_process_and_the_disk_cache(tmp_path, monkeypatch):
    model, shape = make("conv")
    frames = smooth_stream(shape, t=3)
    sim = sd.Simulator(sd.convert(model, shape))
    sim.run(frames, progress=False)
    args = _args(sim, frames)
    assert P.loop_compiled(*args) is True  # compiled (or loaded) in this process
    cache_file = P.run_frames._cache._cache_file
    sig = tuple(P.run_frames.typeof_pyval(a) for a in args)
    monkeypatch.setattr(P.run_frames, "overloads", {})  # as in a new process
    assert P.loop_compiled(*args) is True  # the run above stored it on disk (or found it there)
    monkeypatch.setattr(cache_file, "_index_path", str(tmp_path / "none.nbi"))  # an empty cache
    assert P.loop_compiled(*args) is False
    monkeypatch.setattr(P.run_frames, "typeof_pyval", None)  # Numba's internals moved
    assert P.loop_compiled(*args) is None
    assert sig


def test_notice_once_before_a_compile_and_never_from_cache(monkeypatch, capsys):
    model, shape = make("conv")
    frames = smooth_stream(shape, t=3)
    net = sd.convert(model, shape)
    for compiled, expect in ((True, 0), (None, 0), (False, 1)):
        monkeypatch.setattr(engine, "_ANNOUNCED", set())
        monkeypatch.setattr(engine, "loop_compiled", lambda *a, c=compiled: c)
        sd.simulate(net, frames, progress=False)
        sd.simulate(net, frames, progress=False)  # checked once per process
        err = capsys.readouterr().err
        assert err.count("compiling the event kernels (float, float64) once") == expect


def test_programs_name_the_weight_kinds_they_compile():
    model, shape = make("conv")
    prog = sd.Simulator(sd.convert(model, shape))._prog
    assert (prog.floats, prog.fixed) == (1, None)
    prog = sd.Simulator(sd.convert(model, shape, weight_bits=8))._prog
    assert (prog.floats, prog.fixed) == (None, 1)
    prog = sd.Simulator(sd.convert(model, shape, weight_bits=[8, 0]))._prog
    assert (prog.floats, prog.fixed) == (1, 1)
