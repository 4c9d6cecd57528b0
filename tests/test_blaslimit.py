"""The engine holds BLAS at ``blas_threads`` threads while a run runs, and restores it after.

The thread counts are read with ``threadpoolctl.threadpool_info()`` from inside the run: the
frames come from a generator, which the run consumes frame by frame while it holds the limit.
"""

import importlib

import numpy as np
import pytest
from _zoo import make, smooth_stream

import sigmadelta as sd
from sigmadelta.blaslimit import blas_limit
from sigmadelta.engine import Simulator

threadpoolctl = pytest.importorskip("threadpoolctl")
importlib.import_module("scipy.linalg.cython_blas")  # the BLAS behind Numba's np.dot, loaded


def blas_threads() -> list[int]:
    """The thread count of every loaded BLAS."""
    counts = [lib["num_threads"] for lib in threadpoolctl.threadpool_info() if lib["user_api"] == "blas"]
    assert counts, "no BLAS loaded"
    return counts


def watched(frames, seen: list):
    """``frames`` one by one, noting the BLAS thread counts as each is taken."""
    for f in frames:
        seen.append(blas_threads())
        yield f


@pytest.fixture(scope="module")
def net_frames():
    model, shape = make("conv")
    return sd.convert(model, shape), smooth_stream(shape, t=6)


@pytest.fixture
def blas_at_3():
    """BLAS at 3 threads (not what the engine sets) for the test, the counts before restored after."""
    with threadpoolctl.threadpool_limits(3, user_api="blas"):
        assert set(blas_threads()) == {3}
        yield


@pytest.mark.parametrize("limit", [1, 2])
def test_run_holds_the_limit_and_restores(net_frames, blas_at_3, limit):
    net, frames = net_frames
    seen = []
    res = sd.simulate(net, watched(frames, seen), blas_threads=limit)
    assert len(seen) == len(frames) and all(set(s) == {limit} for s in seen)
    assert set(blas_threads()) == {3}
    np.testing.assert_array_equal(res.outputs, sd.simulate(net, frames, blas_threads=None).outputs)


def test_default_is_one_thread_and_none_leaves_blas_alone(net_frames, blas_at_3):
    net, frames = net_frames
    seen_default, seen_none = [], []
    sd.Simulator(net).run(watched(frames, seen_default))
    sd.Simulator(net, blas_threads=None).run(watched(frames, seen_none))
    assert all(set(s) == {1} for s in seen_default)
    assert all(set(s) == {3} for s in seen_none)
    assert set(blas_threads()) == {3}


def test_step_holds_the_limit(net_frames, blas_at_3, monkeypatch):
    net, frames = net_frames
    inside, between = [], []
    run_chunk = Simulator._run_chunk

    def hooked(self, chunk):  # the counts as the compiled loop is called
        inside.append(blas_threads())
        return run_chunk(self, chunk)

    monkeypatch.setattr(Simulator, "_run_chunk", hooked)
    sim = sd.Simulator(net)
    for f in frames:
        sim.step(f)
        between.append(blas_threads())
    assert len(inside) == len(frames) and all(set(s) == {1} for s in inside)
    assert all(set(s) == {3} for s in between)


def test_restored_after_an_error(net_frames, blas_at_3):
    net, frames = net_frames
    bad = frames.copy()
    bad[3] = np.nan
    seen = []
    with pytest.raises(ValueError):
        sd.simulate(net, watched(list(bad), seen))
    assert len(seen) == 4 and all(set(s) == {1} for s in seen)
    assert set(blas_threads()) == {3}


def test_batch_workers_share_the_limit(net_frames, blas_at_3):
    net, frames = net_frames
    seen = [[], [], []]
    results = sd.simulate_batch(net, [watched(frames, s) for s in seen], workers=2)
    assert [len(s) for s in seen] == [len(frames)] * 3, seen
    assert all(set(c) == {1} for s in seen for c in s), seen
    assert set(blas_threads()) == {3}
    for r in results:
        np.testing.assert_array_equal(r.outputs, sd.simulate(net, frames).outputs)


def test_overlapping_limits_take_the_smallest_and_the_last_restores(blas_at_3):
    with blas_limit(2):
        assert set(blas_threads()) == {2}
        with blas_limit(1):
            assert set(blas_threads()) == {1}
            with blas_limit(2):
                assert set(blas_threads()) == {1}
            assert set(blas_threads()) == {1}
        assert set(blas_threads()) == {2}
    assert set(blas_threads()) == {3}


@pytest.mark.parametrize("bad", [0, -1, 1.5, True, "1"])
def test_a_bad_limit_is_refused_before_any_work(net_frames, bad):
    net, frames = net_frames
    with pytest.raises(ValueError, match="blas_threads"):
        sd.Simulator(net, blas_threads=bad)
    with pytest.raises(ValueError, match="blas_threads"):
        sd.simulate_batch(net, [frames], blas_threads=bad)
