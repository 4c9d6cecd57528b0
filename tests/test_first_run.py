"""The first run says it compiles, only when it will; float networks skip the fixed-point paths."""

from pathlib import Path

import numpy as np
import pytest
import torch.nn as nn
from _zoo import make, smooth_stream

import sigmadelta as sd
from sigmadelta import engine
from sigmadelta import kernels as K
from sigmadelta import loopcache as LC
from sigmadelta import program as P

LAVA_NET = Path(__file__).parent / "data" / "lava" / "conv.net"


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


def test_the_notice_states_the_compile_estimate_of_the_loop_it_compiles(monkeypatch, capsys):
    """The notice's seconds are loopcache.compile_seconds of the flags it compiles with, which
    grows with every flag set (pix, dense: shrinks when left out) and sums COMPILE_SECONDS."""
    s, names = LC.COMPILE_SECONDS, P.FLAG_NAMES
    assert set(s) == set(names) - {"floats"} | {"loop", "outside"}
    everything = (1,) * len(names)
    fixed = s["fixed"] * (s["pix"] + s["dense"] + s["conv"]) / (s["pix"] + s["dense"])
    assert LC.compile_seconds(everything) == pytest.approx(sum(s.values()) - s["pix"] - s["dense"]
                                                           - s["fixed"] + fixed)
    floats_only = tuple(1 if n == "floats" else None for n in names)
    assert LC.compile_seconds(floats_only) == pytest.approx(s["loop"] + s["outside"] - s["pix"] - s["dense"])
    fixed_only = tuple(1 if n == "fixed" else None for n in names)
    assert LC.compile_seconds(fixed_only) == LC.compile_seconds(floats_only)  # not both bodies
    for i, n in enumerate(names):
        if n != "floats":
            more = tuple(1 if j == i else v for j, v in enumerate(floats_only))
            assert LC.compile_seconds(more) >= LC.compile_seconds(floats_only), n
    model, shape = make("conv")
    frames = smooth_stream(shape, t=2)
    monkeypatch.setattr(engine, "_ANNOUNCED", set())
    monkeypatch.setattr(engine, "loop_compiled", lambda *a: False)
    sim = sd.Simulator(sd.convert(model, shape))
    sim.run(frames, progress=False)
    sec = LC.compile_seconds(sim._flags)
    assert f"once: about {max(5, 5 * round(sec / 5))} s on an idle" in capsys.readouterr().err


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


@pytest.mark.slow  # compiles the whole loop once more (about a minute on 2 cores)
def test_a_loop_without_the_unused_kinds_runs_the_same_as_the_full_one():
    model, shape = make("conv")
    frames = smooth_stream(shape, t=4)
    net = sd.convert(model, shape)
    outs = []
    for full in (False, True):
        sim = sd.Simulator(net)
        p = sim._prog
        sim._flags = (*p.flags[:2], *(1 for _ in p.flags[2:])) if full else p.flags
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


def _first_compiled_superset(flags: tuple, compiled: set) -> tuple:
    """The obvious search: every set of flags with ``flags``' set, fewest extra first (ties by
    the number whose bit b is the b-th unset flag), the first one compiled; else ``flags``."""
    absent = [i for i, f in enumerate(flags) if f is None]
    for mask in sorted(range(1 << len(absent)), key=lambda m: bin(m).count("1")):
        f = tuple(1 if (f is not None or (i in absent and mask >> absent.index(i) & 1)) else None
                  for i, f in enumerate(flags))
        if f in compiled:
            return f
    return flags


def test_cached_flags_picks_what_trying_every_superset_picks(monkeypatch):
    model, shape = make("conv")
    sim = sd.Simulator(sd.convert(model, shape))
    n = len(sim._prog.flags)
    args = _args(sim, smooth_stream(shape, t=2))[:-n]
    rf, rng = P.run_frames, np.random.default_rng(0)

    def key(f):
        return rf._cache._index_key(tuple(rf.typeof_pyval(a) for a in (*args, *f)), rf.targetctx.codegen())

    def some(flags, p):  # a set of flags: a superset of ``flags`` or not
        keep = rng.random() < 0.7
        return tuple(1 if (keep and f) or b else None for f, b in zip(flags, rng.random(n) < p, strict=True))

    found = []
    for _ in range(40):
        flags = tuple(1 if b else None for b in rng.random(n) < 0.3)
        compiled = [some(flags, p) for p in rng.random(5)]
        monkeypatch.setattr(rf, "overloads", {key(f)[0]: None for f in compiled[:2]})  # this process
        on_disk = {key(f): "x" for f in compiled[2:]}
        monkeypatch.setattr(rf._cache._cache_file, "_load_index", lambda d=on_disk: d)
        want = _first_compiled_superset(flags, set(compiled))
        assert LC.cached_flags(args, flags) == want
        found.append(want != flags)
    assert 10 < sum(found) < 40, sum(found)  # draws with and without a loop with more flags


def _stride2_net(act1=nn.ReLU, act2=nn.ReLU):
    model = nn.Sequential(nn.Conv2d(1, 8, 3, stride=2), act1(), nn.Conv2d(8, 8, 3, stride=2),
                          act2(), nn.Flatten(), nn.Linear(8 * 3 * 3, 4))
    return sd.convert(model, (1, 16, 16)), smooth_stream((1, 16, 16), t=5)


def test_smooth_activations_compile_only_where_a_network_has_one():
    """program.PATH_FLAGS ``smooth``: set for a network with a GELU or SiLU (which runs on a loop
    that has it and equals the dense reference), not for one of ReLU, leaky ReLU and clip."""
    smooth = P.PATH_FLAGS.index("smooth")
    cheap = sd.convert(nn.Sequential(nn.Linear(6, 5), nn.LeakyReLU(0.1), nn.Linear(5, 4), nn.Hardtanh(),
                                     nn.Linear(4, 3), nn.ReLU()), (6,))
    assert sd.Simulator(cheap)._prog.paths[smooth] is None
    net, frames = _stride2_net(nn.GELU, nn.SiLU)
    sim = sd.Simulator(net)
    assert sim._prog.paths[smooth] == 1
    res = sim.run(frames, progress=False)
    assert sim._flags[P.FLAG_NAMES.index("smooth")] == 1
    ref = sd.reference(net, frames, progress=False)
    np.testing.assert_allclose(res.outputs, ref, rtol=1e-6, atol=1e-6 * np.ptp(ref))


def test_programs_name_the_paths_their_layers_may_run():
    """program.PATH_FLAGS: gather-GEMM-scatter only where a pixel conv's mode and costs allow it
    (kernels.gemm_may_win), the dense recompute only where a mode can choose it, Lava's range
    check only for float "lava" layers; set_conv_path re-keys the loop."""
    net, _ = _stride2_net()
    sim = sd.Simulator(net)
    for op in (op for op in sim._weight_ops if op.has_paths):  # stride 2: fewer synops per
        c_in = op.w_cl.shape[2]  # event than the GEMM's multiply-adds per pixel with events
        assert op.costs[1] >= c_in * op.costs[0] and not K.gemm_may_win(c_in, *op.costs[:2])
    assert sim._prog.paths == (None, None, 1, None, None, None)  # ReLU only; 8 channels: the GEMM
    assert K.gemm_may_win(16, 1.0, 15.9) and not K.gemm_may_win(16, 1.0, 16.1)
    sim._flags = (1,) * len(sim._prog.flags)
    sim.set_conv_path("scatter")
    assert sim._prog.paths == (None,) * 6 and sim._flags is None  # asked again
    sim.set_conv_path("gemm")
    assert sim._prog.paths == (None, 1, None, None, None, None)
    sim.set_conv_path("dense", layer=net.layer_names[0])
    assert sim._prog.paths == (None, 1, 1, None, None, None)
    model, shape = make("conv")
    assert sd.Simulator(sd.convert(model, shape))._prog.paths[0] is None  # no "lava" layer
    lava = sd.load_netx(LAVA_NET)
    assert sd.Simulator(lava)._prog.paths[0] == 1


def _conv_net(c_out, dtype=np.float64, net=None):
    """A 3x3 conv of 16 channels to ``c_out`` at 20x20 (padding 1) after a 1x1 conv (the GEMM's),
    then a dense layer (or ``net``), on a Simulator."""
    if net is None:
        model = nn.Sequential(nn.Conv2d(1, 16, 1), nn.ReLU(), nn.Conv2d(16, c_out, 3, padding=1),
                              nn.ReLU(), nn.Flatten(), nn.Linear(c_out * 20 * 20, 3))
        net = sd.convert(model, (1, 20, 20))
    return sd.Simulator(net, dtype=dtype)


def test_programs_name_the_dense_convs_their_layers_take():
    """program.PATH_FLAGS ``direct`` / ``narrow``: set only where a float pixel conv that may
    recompute has a shape the direct conv (kernels.direct_vectors) or the narrow or small conv
    (kernels.narrow_channels, kernels.small_channels, tried first) takes; neither for fixed-point
    layers or a layer held on the scatter; set_conv_path asks again."""
    direct, narrow = P.PATH_FLAGS.index("direct"), P.PATH_FLAGS.index("narrow")
    for c_out, dtype, want in ((4, np.float64, (None, 1)), (8, np.float32, (None, 1)),
                               (8, np.float64, (1, None)), (32, np.float32, (1, None)),
                               (1, np.float64, (None, 1)), (1, np.float32, (None, 1))):
        sim = _conv_net(c_out, dtype)
        op = sim._weight_ops[1]
        c_in, itemsize = op.w_cl.shape[2], np.dtype(dtype).itemsize
        narrow_or_small = K.narrow_channels(op.pgeom, c_in, itemsize) or K.small_channels(
            op.pgeom, c_in, itemsize)
        assert (K.direct_vectors(op.pgeom, c_in, itemsize) > 0 and c_out > 1, narrow_or_small) == tuple(
            w == 1 for w in want), (c_out, dtype)
        assert (sim._prog.paths[direct], sim._prog.paths[narrow]) == want, (c_out, dtype)
        sim.set_conv_path("scatter", layer=sim.net.layer_names[1])
        assert (sim._prog.paths[direct], sim._prog.paths[narrow]) == (None, None)
    model = nn.Sequential(nn.Conv2d(1, 16, 3, padding=1), nn.ReLU(), nn.Conv2d(16, 32, 3, padding=1))
    fixed = sd.Simulator(sd.convert(model, (1, 20, 20), weight_bits=8))
    assert fixed._prog.paths[direct] is None and fixed._prog.paths[P.PATH_FLAGS.index("recompute")] == 1


@pytest.mark.slow
@pytest.mark.parametrize("c_out", [32, 4, 1])
def test_a_loop_without_the_dense_convs_runs_the_same(c_out):
    """A layer whose shape takes the direct (or the narrow or small) conv, forced onto the dense path, on the
    loop without that conv (the GEMM convolves) and on its own loop: the same outputs up to
    rounding, the same counters, both equal to the reference."""
    frames = smooth_stream((1, 20, 20), t=4)
    net, runs = _conv_net(c_out).net, []
    for leave_out in (False, True):
        sim = _conv_net(c_out, net=net)
        sim.set_conv_path("dense")
        flags = dict(zip(P.FLAG_NAMES, sim._prog.flags, strict=True))
        assert flags["direct" if c_out > 4 else "narrow"] == 1
        if leave_out:
            flags["direct"] = flags["narrow"] = None
        sim._flags = tuple(flags.values())
        runs.append(sim.run(frames, progress=False))
        assert all(p["dense"] == len(frames) for p in sim.conv_paths.values())
    ref = sd.reference(net, frames, progress=False)
    for res in runs:
        np.testing.assert_allclose(res.outputs, ref, rtol=1e-9, atol=1e-9 * np.ptp(ref))
    np.testing.assert_allclose(runs[0].outputs, runs[1].outputs, rtol=1e-12, atol=1e-12 * np.ptp(ref))
    for name in ("events", "synops", "additions", "neuron_updates"):
        np.testing.assert_array_equal(getattr(runs[0].stats, name), getattr(runs[1].stats, name))


@pytest.mark.slow
def test_a_loop_without_the_paths_no_layer_can_run_runs_the_same():
    """The network's own loop (no gather-GEMM-scatter, no range check) against the loop with
    every path: same outputs and counters; forced onto gather-GEMM-scatter, the loop that has it."""
    net, frames = _stride2_net()
    sim = sd.Simulator(net)
    sim._flags = sim._prog.flags  # this network's own loop, not a cached one with more paths
    auto = sim.run(frames, progress=False)
    assert sum(p["gemm"] for p in sim.conv_paths.values()) == 0
    full = sd.Simulator(net)
    full._flags = tuple(1 for _ in full._prog.flags)
    ref = full.run(frames, progress=False)
    for a, b in ((auto.outputs, ref.outputs), (auto.stats.synops, ref.stats.synops),
                 (auto.stats.events, ref.stats.events)):
        np.testing.assert_array_equal(a, b)
    sim.reset()
    sim.set_conv_path("gemm")
    sim._flags = sim._prog.flags
    forced = sim.run(frames, progress=False)
    assert all(p["gemm"] == len(frames) for p in sim.conv_paths.values())
    np.testing.assert_allclose(forced.outputs, ref.outputs, rtol=1e-9, atol=1e-9)
    np.testing.assert_array_equal(forced.stats.synops, ref.stats.synops)


@pytest.mark.slow
def test_a_path_left_out_of_the_loop_raises_rather_than_run_another():
    net, frames = _stride2_net()
    sim = sd.Simulator(net)
    sim.set_conv_path("gemm")
    sim._flags = sim._prog._replace(paths=(None,) * len(P.PATH_FLAGS)).flags  # what a stale key would run
    with pytest.raises(RuntimeError, match="compiled without"):
        sim.run(frames, progress=False)
    relu_paths = sd.Simulator(net)._prog.paths  # the ReLU net's own loop: no smooth activations
    sim = sd.Simulator(_stride2_net(nn.GELU)[0])
    assert sim._prog.flags != sim._prog._replace(paths=relu_paths).flags
    sim._flags = sim._prog._replace(paths=relu_paths).flags
    with pytest.raises(RuntimeError, match="smooth activation .* compiled without"):
        sim.run(frames, progress=False)
