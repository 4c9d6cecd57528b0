"""The first run says it compiles, only when it will; float networks skip the fixed-point paths."""

import numpy as np
from _zoo import make, smooth_stream

import sigmadelta as sd
from sigmadelta import engine
from sigmadelta import loopcache as LC
from sigmadelta import program as P


def _args(sim: sd.Simulator, frames: np.ndarray) -> tuple:
    p, t = sim._prog, len(frames)
    x = np.ascontiguousarray(frames.reshape(t, -1), dtype=sim.dtype)
    return (p.code, p.par, p.F, p.I, p.D, x, 0, 0, len(p.code), np.zeros((t, 4, len(sim._weight_ops))),
            np.zeros((t, sim._n_out), sim.dtype), p.out_slot, np.zeros(2, np.int64), *(sim._flags or p.flags))


def test_loop_compiled_reads_the_process_and_the_disk_cache(tmp_path, monkeypatch):
    model, shape = make("conv")
    frames = smooth_stream(shape, t=3)
    sim = sd.Simulator(sd.convert(model, shape))
    sim.run(frames, progress=False)
    args = _args(sim, frames)
    assert LC.loop_compiled(*args) is True  # compiled (or loaded) in this process
    cache_file = P.run_frames._cache._cache_file
    sig = tuple(P.run_frames.typeof_pyval(a) for a in args)
    monkeypatch.setattr(P.run_frames, "overloads", {})  # as in a new process
    assert LC.loop_compiled(*args) is True  # the run above stored it on disk (or found it there)
    monkeypatch.setattr(cache_file, "_index_path", str(tmp_path / "none.nbi"))  # an empty cache
    assert LC.loop_compiled(*args) is False
    monkeypatch.setattr(P.run_frames, "typeof_pyval", None)  # Numba's internals moved
    assert LC.loop_compiled(*args) is None
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


def test_every_op_kind_is_in_the_loop_or_a_kind_group():
    from sigmadelta import slots

    kinds = {getattr(slots, n) for n in slots.__all__ if isinstance(getattr(slots, n), int)
             and n not in ("NC", "NP", "KIND")}
    grouped = [k for group in P.KIND_GROUPS.values() for k in group]
    assert len(grouped) == len(set(grouped))  # no kind in two groups
    assert kinds == {slots.INPUT, slots.ACTIVATION, slots.FLATTEN} | set(grouped)


def test_programs_name_the_op_kinds_they_compile():
    """One flag per kind group (program.KIND_GROUPS): 1 where the network has such a row."""
    groups = list(P.KIND_GROUPS)
    for name, present in (("linear", {"dense"}), ("conv", {"pix", "dense"}),
                          ("conv_groups_depthwise", {"pix", "conv"}),
                          ("decoder", {"pix", "conv", "merge", "resize"})):
        model, shape = make(name)
        kinds = sd.Simulator(sd.convert(model, shape))._prog.kinds
        assert {g for g, k in zip(groups, kinds, strict=True) if k} == present, name


def test_a_loop_without_the_unused_kinds_runs_the_same_as_the_full_one():
    model, shape = make("conv")
    frames = smooth_stream(shape, t=4)
    net = sd.convert(model, shape)
    outs = []
    for full in (False, True):
        sim = sd.Simulator(net)
        p = sim._prog
        sim._flags = (*p.flags[:2], *(1 for _ in p.kinds)) if full else p.flags
        outs.append(sim.run(frames, progress=False))
    np.testing.assert_array_equal(outs[0].outputs, outs[1].outputs)
    np.testing.assert_array_equal(outs[0].stats.synops, outs[1].stats.synops)


def test_a_compiled_loop_with_more_kinds_is_reused(monkeypatch, tmp_path):
    model, shape = make("conv")
    frames = smooth_stream(shape, t=2)
    sim = sd.Simulator(sd.convert(model, shape))
    args = _args(sim, frames)[:-len(sim._prog.flags)]
    flags = sim._prog.flags
    cache_file = P.run_frames._cache._cache_file
    monkeypatch.setattr(cache_file, "_index_path", str(tmp_path / "none.nbi"))  # nothing on disk
    monkeypatch.setattr(P.run_frames, "overloads", {})
    assert LC.cached_flags(args, flags) == flags  # nothing compiled: the network's own loop
    more = (*flags[:2], *(1 for _ in flags[2:]))
    sig = tuple(P.run_frames.typeof_pyval(a) for a in (*args, *more))
    monkeypatch.setattr(P.run_frames, "overloads", {sig: None})
    assert LC.cached_flags(args, flags) == more  # the loop with every kind covers it
    both = (1, 1, *more[2:])
    sig = tuple(P.run_frames.typeof_pyval(a) for a in (*args, *both))
    monkeypatch.setattr(P.run_frames, "overloads", {sig: None})
    assert LC.cached_flags(args, flags) == both  # and with the fixed-point paths too
