"""Stop requests (sigmadelta.stop): SIGTERM and Ctrl-C end a run between frames, never inside
a recording's chunk write, and a request that Python dropped still ends the run."""

import numpy as np
import pytest
from _zoo import make, smooth_stream

import sigmadelta as sd
from sigmadelta import stop
from sigmadelta.io import read_run, read_run_info
from sigmadelta.io import record as record_mod


@pytest.fixture(autouse=True)
def _no_request_left():
    stop.clear()
    yield
    stop.clear()


def test_request_raises_now_outside_a_write_and_at_its_end_inside():
    with pytest.raises(KeyboardInterrupt, match="now"):
        stop.request("now")
    stop.clear()
    seen = []
    with pytest.raises(KeyboardInterrupt, match="later"):
        with stop.uninterrupted():
            with stop.uninterrupted():
                stop.request("later")
                seen.append("inner end")
            seen.append("outer end")  # the inner block's end raised nothing
    assert seen == ["inner end", "outer end"]
    stop.clear()
    with stop.uninterrupted(raise_after=False):
        stop.request("noted")
    assert stop.requested() == "noted"
    with pytest.raises(KeyboardInterrupt, match="noted"):
        stop.check()
    assert stop.requested() is None  # delivered once


def _net_and_frames(t=40):
    model, shape = make("routing")
    net = sd.convert(model, shape)
    return net, smooth_stream(shape, t=t)


def test_a_dropped_request_ends_the_run_after_its_chunk(tmp_path):
    """A request raised where Python drops the exception (a ``__del__``, a weakref callback:
    here an ``except`` that swallows it) ends the run after the chunk it came in; the frames
    before are recorded and equal those of an uninterrupted run."""
    net, frames = _net_and_frames()

    def source():
        for t, frame in enumerate(frames):
            if t == 10:
                try:
                    stop.request("stopped by SIGTERM")
                except KeyboardInterrupt:
                    pass  # dropped, as Python drops it in a weakref callback
            yield frame

    sim = sd.Simulator(net, chunk=4)
    with pytest.raises(KeyboardInterrupt, match="SIGTERM"):
        sim.run(source(), record=tmp_path / "run.h5", record_chunk=3, progress=False)
    assert stop.requested() is None  # delivered: the next run is not stopped by it
    info = read_run_info(tmp_path / "run.h5")
    assert info["complete"] is False and 10 < info["frames"] < len(frames)
    _, outputs, _ = read_run(tmp_path / "run.h5")
    full = sd.Simulator(net).run(frames, progress=False).outputs
    np.testing.assert_array_equal(outputs, full[:info["frames"]].astype(outputs.dtype))


def test_a_request_during_a_chunk_write_waits_for_the_chunk(tmp_path, monkeypatch):
    """A signal that arrives while a chunk is written: the chunk is written whole, then the run
    stops (raising inside the write lost the chunk, or failed the close that followed)."""
    net, frames = _net_and_frames()
    write = record_mod.RunRecorder._write_chunk
    calls = []

    def write_with_signal(self):
        calls.append("start")
        if calls.count("start") == 2:  # the second chunk: the signal comes in before its data
            stop.request("stopped by SIGTERM")
        write(self)
        calls.append("written")

    monkeypatch.setattr(record_mod.RunRecorder, "_write_chunk", write_with_signal)
    with pytest.raises(KeyboardInterrupt, match="SIGTERM"):
        sd.Simulator(net, chunk=8).run(frames, record=tmp_path / "run.h5", record_chunk=5,
                                       progress=False)
    assert stop.requested() is None
    assert calls[:4] == ["start", "written", "start", "written"]  # the second write ran whole
    info = read_run_info(tmp_path / "run.h5")
    assert info["frames"] >= 10 and info["complete"] is False  # both chunks, the second whole
    _, outputs, _ = read_run(tmp_path / "run.h5")
    full = sd.Simulator(net).run(frames, progress=False).outputs
    np.testing.assert_array_equal(outputs, full[:info["frames"]].astype(outputs.dtype))


def test_a_request_during_a_chunk_records_the_chunk_then_stops(tmp_path, monkeypatch):
    """A signal while a chunk runs (inside Numba's dispatch it came out as a TypeError): the
    chunk finishes and is recorded, then the run stops."""
    net, frames = _net_and_frames()
    run_chunk = sd.Simulator._run_chunk
    calls = []

    def run_chunk_with_signal(self, chunk):
        calls.append(len(chunk))
        if len(calls) == 2:
            stop.request("stopped by SIGTERM")
        return run_chunk(self, chunk)

    monkeypatch.setattr(sd.Simulator, "_run_chunk", run_chunk_with_signal)
    with pytest.raises(KeyboardInterrupt, match="SIGTERM"):
        sd.Simulator(net, chunk=8).run(frames, record=tmp_path / "run.h5", record_chunk=5,
                                       progress=False)
    assert calls == [8, 8] and stop.requested() is None
    info = read_run_info(tmp_path / "run.h5")
    assert info["frames"] == 16 and info["complete"] is False  # the second chunk too
