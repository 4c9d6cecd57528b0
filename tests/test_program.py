"""The compiled frame loop: chunking, profiling, streaming and errors give the same run."""

import numpy as np
import pytest
from _zoo import ZOO, make, smooth_stream

import sigmadelta as sd
from sigmadelta import kernels as K
from sigmadelta.fixedpoint import AccumulatorOverflowError
from sigmadelta.kernels import numpy_twins as T


def _same(a, b):
    np.testing.assert_array_equal(a.outputs, b.outputs)
    for c in ("events", "synops", "additions", "neuron_updates"):
        np.testing.assert_array_equal(getattr(a.stats, c), getattr(b.stats, c))


@pytest.mark.parametrize("name", sorted(ZOO))
def test_chunks_profile_and_steps_give_the_same_run(name):
    """One call for all frames == chunks of 3 == profiled op by op == frame-by-frame steps."""
    model, shape = make(name)
    frames = smooth_stream(shape, t=7)
    net = sd.convert(model, shape, scale=8.0)
    whole = sd.Simulator(net).run(frames, progress=False)
    _same(whole, sd.Simulator(net, chunk=3).run(frames, progress=False))
    prof = sd.Simulator(net, profile=True)
    _same(whole, prof.run(frames, progress=False))
    # a fast op's time less the cost of an empty call can round to 0; none is negative
    assert (prof.node_seconds >= 0).all() and prof.node_seconds.sum() > 0
    assert prof.layer_seconds.sum() <= prof.node_seconds.sum()
    _same(whole, sd.Simulator(net).run(iter(list(frames)), progress=False))  # a live stream
    sim = sd.Simulator(net)
    outs = [sim.step(f) for f in frames]
    np.testing.assert_array_equal(np.stack(outs), whole.outputs)
    np.testing.assert_array_equal(sim.last_stats[1], whole.stats.synops[-1])


@pytest.mark.parametrize("c", [1, 2, 3, 4, 5, 16, 64, 65, 130])
def test_load_frame_matches_twin(c):
    """Every load path (one channel, unrolled 2-4, change mask with 1-3 words per pixel)
    lists the changed neurons in increasing order, over a stream of frames."""
    rng = np.random.default_rng(c)
    hw = 21
    n = c * hw
    words = K.mask_words(c, hw)
    states = [(np.zeros(n), np.zeros(n if words else 0), np.zeros(words, np.int64)) for _ in range(2)]
    frame = rng.random(n)
    for t, share in enumerate((1.0, 0.3, 0.0, 0.02, 0.9)):
        frame = frame.copy()
        frame[rng.random(n) < share] += 1.0
        lists = []
        for fn, (value, prev, mask) in zip((K.load_frame, T.load_frame), states, strict=True):
            touched, count = np.zeros(n + 1, np.int64), np.zeros(1, np.int64)
            fn(frame, c, value, prev, mask, touched, count, t == 0)
            lists.append(touched[:count[0]].tolist())
        assert lists[0] == lists[1] and lists[0] == sorted(lists[0])
        assert (len(lists[0]) == n) == (t == 0) and (share > 0 or not lists[0])
        np.testing.assert_array_equal(states[0][0], frame.reshape(c, -1).T.ravel())
        np.testing.assert_array_equal(states[0][0], states[1][0])
        assert not states[0][2].any()  # the mask is left clear for the next frame


def test_overflow_keeps_the_frames_before_it(tmp_path):
    """A fixed-point overflow stops the run at its frame; earlier frames are recorded."""
    model, shape = make("linear")
    frames = smooth_stream(shape, t=6)
    frames[4:] *= 400.0  # the jump at frame 4 overflows a 16-bit accumulator
    net = sd.convert(model, shape, scale=16.0, weight_bits=8)
    for layer in net.weight_layers:
        layer.acc_bits = 16
    with pytest.raises(AccumulatorOverflowError, match="frame 4"):
        sd.simulate(net, frames, record=tmp_path / "run.h5", progress=False)
    stats, outputs, complete = sd.read_run(tmp_path / "run.h5")
    assert not complete and len(outputs) == 4
    ok = sd.simulate(net, frames[:4], progress=False)
    np.testing.assert_allclose(outputs, ok.outputs, rtol=1e-6)  # recorded as float32


def test_counter_rows_are_the_stats_counters():
    """The frame loop's counter rows, by name, in the order Stats reads them."""
    from sigmadelta.slots import COUNTER_ROWS
    from sigmadelta.stats import COUNTERS, MEASURED

    assert COUNTER_ROWS._fields == MEASURED == COUNTERS[:len(MEASURED)]
    assert list(COUNTER_ROWS) == list(range(len(MEASURED)))
    assert "dense_macs" not in MEASURED  # computed, not counted


def test_every_op_kind_declares_its_columns_once():
    """Columns are distinct and fit the tables; the weight ops share the encoder's and the
    output's columns at the same indices (code written for the shared part reads all three)."""
    from sigmadelta import ops
    from sigmadelta.slots import NC, NP
    from sigmadelta.weightops import WEIGHT

    classes = [ops.InputOp, ops.DenseOp, ops.ConvOp, ops.PixelConvOp, ops.ActivationOp, ops.PoolOp,
               ops.FlattenOp, ops.AddOp, ops.ConcatOp]
    for cls in classes:
        ints, floats = cls.SLOTS
        assert sorted(ints) == list(range(1, len(ints) + 1)) and len(ints) < NC, cls
        assert sorted(floats) == list(range(len(floats))) and len(floats) <= NP, cls
    for cls in (ops.DenseOp, ops.ConvOp, ops.PixelConvOp):
        for part, shared in enumerate(WEIGHT):  # int columns, then float columns
            for name, col in zip(shared._fields, shared, strict=True):
                assert getattr(cls.SLOTS[part], name) == col


def test_a_row_must_fill_every_column_by_name():
    from sigmadelta.ops import PoolOp
    from sigmadelta.slots import POOL, Builder

    b = Builder(np.float64)
    r = b.row(POOL, PoolOp.SLOTS)
    with pytest.raises(AttributeError, match="no column 'memory'"):
        r.memory = 3
    r.x, r.touched = 1, 2
    with pytest.raises(ValueError, match=r"columns \['count', 'in_hw'"):
        r.done()
    assert not b.code  # nothing half-filled reaches the table


@pytest.mark.parametrize("name", ["residual", "concat", "gray_first_conv", "conv_groups_depthwise"])
def test_rows_hold_what_the_operators_emit(name):
    """Each op's row names its own arrays: the op kind, and the value array of every node
    written where the layout says (the slot points at the very same array)."""
    from sigmadelta import ops
    from sigmadelta.assemble import build_program

    model, shape = make(name)
    net = sd.convert(model, shape, scale=8.0)
    o, states, _ = ops.build_ops(net)
    prog = build_program(o, states, net.output, np.float64)
    for r, c in enumerate(prog.code):
        op = o[prog.row_op[r]]
        cols = op.SLOTS[0]
        if isinstance(op, ops.WeightOp):
            assert np.shares_memory(prog.F[c[cols.value]], op.out.value)
            assert c[cols.layer] == sum(isinstance(p, ops.WeightOp) for p in o[:prog.row_op[r]])
        elif isinstance(op, (ops.PoolOp, ops.FlattenOp, ops.AddOp, ops.ConcatOp, ops.ActivationOp)):
            assert np.shares_memory(prog.F[c[cols.y]], op.out.value)


def test_compiled_loop_cache_is_tied_to_its_sources():
    """Every function of the compiled loop carries the digest of the kernels and layouts in
    Numba's cache stamp (fails if a Numba upgrade moves the attribute tie_cache writes)."""
    from sigmadelta import program
    from sigmadelta.cachetie import source_digest

    digest = source_digest()
    for fn in program._TIED:
        stamp = fn._cache._cache_file._source_stamp
        assert isinstance(stamp, tuple) and stamp[1] == digest, fn


_TOY = '''
from numba import njit

from sigmadelta import cachetie


@njit(cache=True)
def f(x):
    return x + 1


cachetie.tie_cache([f], DIGEST)  # DIGEST: set by the test before the module runs
f(1)
'''


def test_tie_cache_recompiles_when_the_digest_changes(tmp_path):
    """Behaviour, on a toy function: the same digest loads the cache, another recompiles.

    Each run executes the toy module afresh in this process: a new dispatcher, which looks
    for its compiled code in Numba's cache on disk just as a new process would (three
    Python processes paid 6-10 s of imports for this)."""
    import importlib.util

    toy = tmp_path / "toy.py"
    toy.write_text(_TOY)

    def run(digest):
        spec = importlib.util.spec_from_file_location("toy", toy)
        mod = importlib.util.module_from_spec(spec)
        mod.DIGEST = digest
        spec.loader.exec_module(mod)
        stats = mod.f.stats
        return sum(stats.cache_hits.values()), sum(stats.cache_misses.values())

    assert run("a") == (0, 1)
    assert run("a") == (1, 0)
    assert run("b") == (0, 1)
    assert run("b") == (1, 0)
    assert run("a") == (0, 1)  # the cache holds the last digest's code only
