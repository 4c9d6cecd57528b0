"""simulate_many on a dask LocalCluster of two worker processes.

Every stream must equal ``sd.simulate`` of that stream alone, bit for bit (counters and
outputs read back from its recording), also when a worker is killed mid-run; a corrupt
source fails alone; a second run resumes only what is not complete.
"""

import json
import os
import re
import signal
import sys
import threading
import time

import cloudpickle
import h5py
import numpy as np
import pytest
import torch.nn as nn
from _zoo import smooth_stream
from sigmadelta.datasets import write_hdf5
from sigmadelta.datasets.streams import open_stream

import sigmadelta as sd
from sigmadelta.cli import main
from sigmadelta.many import local_cluster, network_hash
from sigmadelta.runs import LOCK, RunsBusyError, StreamError, lock_runs
from sigmadelta.sources import expand

cloudpickle.register_pickle_by_value(sys.modules[__name__])  # workers get the slow opener by value

SHAPE = (1, 36, 44)  # carphone is decoded at this size
COUNTERS = ("events", "synops", "additions", "neuron_updates")


@pytest.fixture(scope="module")
def client(net):
    from distributed import Client

    sd.simulate(net, smooth_stream(SHAPE, t=2), progress=False)  # compiled here first, not twice

    with local_cluster(2) as cluster, Client(cluster) as c:
        yield c


@pytest.fixture(scope="module")
def net():
    import torch

    torch.manual_seed(0)
    model = nn.Sequential(nn.Conv2d(1, 4, 5, stride=2), nn.ReLU(), nn.AvgPool2d(2), nn.Flatten(),
                          nn.Linear(4 * 8 * 10, 3)).eval()
    return sd.convert(model, SHAPE, scale=16.0)


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    """Four real and synthetic streams: an embedded video, a glob over two .npy files,
    and a dataset inside an HDF5 file."""
    d = tmp_path_factory.mktemp("streams")
    (d / "clips").mkdir()
    for s in range(2):
        np.save(d / "clips" / f"clip{s}.npy", smooth_stream(SHAPE, t=40, seed=s))
    write_hdf5(d / "data.h5", smooth_stream(SHAPE, t=30, seed=7), dataset="moving")
    sources = ["carphone", str(d / "clips" / "*.npy"), f"{d / 'data.h5'}:/moving"]
    return d, sources


_ALONE: dict = {}


def _alone(net, key, limit=40):
    """``sd.simulate`` of one stream by itself (computed once per network, stream and limit)."""
    at = (network_hash(net), key, limit)
    if at not in _ALONE:
        _ALONE[at] = sd.simulate(net, open_stream(key, net.input_shape, limit), progress=False)
    return _ALONE[at]


def _same(a: sd.Result, b: sd.Result) -> None:
    assert a.outputs.dtype == b.outputs.dtype
    np.testing.assert_array_equal(a.outputs, b.outputs)
    for c in COUNTERS:
        np.testing.assert_array_equal(getattr(a.stats, c), getattr(b.stats, c))


def test_equals_simulate_per_stream(client, net, data, tmp_path):
    d, sources = data
    runs = sd.simulate_many(net, sources, out=tmp_path / "runs", client=client, limit=40)
    keys = expand(sources)
    assert list(runs) == keys and len(keys) == 4 and keys[1].endswith("clip0.npy")
    assert sorted(runs.ran) == sorted(keys) and runs.status == dict.fromkeys(keys, "complete")
    for k in keys:
        _same(runs[k], _alone(net, k))
    assert runs["carphone"].stats.n_frames == 40 and runs[keys[-1]].stats.n_frames == 30
    # the summary from the files alone equals the one the run returned, and the workers' own
    again = sd.read_runs(tmp_path / "runs")
    assert again.rows() == runs.rows() and again.summary() == runs.summary()
    m = json.loads((tmp_path / "runs" / "manifest.json").read_text())
    assert m["network_hash"] == network_hash(net)
    for k, row in zip(keys, runs.rows(), strict=False):
        assert {f: row[f] for f in m["streams"][k]["summary"]} == m["streams"][k]["summary"]
    total = runs.rows()[-1]
    assert total["frames"] == 40 * 3 + 30
    assert total["synops"] == sum(_alone(net, k).stats.synops.sum() for k in keys)
    assert not [p for p in os.listdir(tmp_path / "runs") if p.startswith(".")]  # no .part, no .lock


def test_corrupt_source_fails_alone(client, net, data, tmp_path):
    d, sources = data
    (d / "bad.npy").write_bytes(b"\x93NUMPY not really" + os.urandom(64))
    (d / "bad.mp4").write_bytes(os.urandom(4096))
    np.save(d / "wrong.npy", smooth_stream((1, 8, 8), t=5))
    keys = [sources[0], str(d / "bad.npy"), str(d / "bad.mp4"), str(d / "wrong.npy"), sources[2]]
    runs = sd.simulate_many(net, keys, out=tmp_path / "runs", client=client, limit=40)
    assert runs.status == {keys[0]: "complete", keys[1]: "failed", keys[2]: "failed",
                           keys[3]: "failed", keys[4]: "complete"}
    assert "bad.npy" in runs.errors[keys[1]] and "bad.mp4" in runs.errors[keys[2]]
    assert "(1, 8, 8), the network expects (1, 36, 44)" in runs.errors[keys[3]]
    with pytest.raises(StreamError, match="bad.npy"):
        runs[keys[1]]
    _same(runs[keys[4]], _alone(net, keys[4]))
    m = json.loads((tmp_path / "runs" / "manifest.json").read_text())
    assert m["streams"][keys[1]]["status"] == "failed" and "bad.npy" in m["streams"][keys[1]]["error"]
    assert "failed" in sd.read_runs(tmp_path / "runs").summary()


def test_resume_runs_only_incomplete(client, net, data, tmp_path):
    d, sources = data
    out = tmp_path / "runs"
    keys = expand(sources)
    first = sd.simulate_many(net, sources, out=out, client=client, limit=40)
    files = {k: out / first.manifest["streams"][k]["file"] for k in keys}
    mtimes = {k: files[k].stat().st_mtime_ns for k in keys}
    m = json.loads((out / "manifest.json").read_text())
    m["streams"][keys[0]]["status"] = "pending"  # interrupted before it ended
    (out / "manifest.json").write_text(json.dumps(m))
    files[keys[1]].unlink()  # recording lost
    lost = sd.read_runs(out)
    assert lost.status[keys[1]] == "unreadable" and files[keys[1]].name in lost.errors[keys[1]]
    assert keys[1] not in lost.complete and f"{keys[1]}" in lost.summary()
    with h5py.File(files[keys[2]], "a") as f:  # a recording that does not say complete
        f["complete"][0] = 0
    again = sd.simulate_many(net, sources, out=out, client=client, limit=40)
    assert sorted(again.ran) == sorted(keys[:3])
    assert files[keys[3]].stat().st_mtime_ns == mtimes[keys[3]]
    for k in keys:
        _same(again[k], _alone(net, k))
    assert sd.simulate_many(net, sources, out=out, client=client, limit=40).ran == []
    with pytest.raises(ValueError, match="another network or settings.*limit 40 -> 12"):
        sd.simulate_many(net, sources, out=out, client=client, limit=12)
    redone = sd.simulate_many(net, sources, out=out, client=client, limit=12, overwrite=True)
    assert sorted(redone.ran) == sorted(keys) and redone["carphone"].stats.n_frames == 12


def test_cli_many_and_report(client, net, data, tmp_path, capsys):
    d, sources = data
    sd.save(net, tmp_path / "net.h5")
    clips = sorted(str(p) for p in (d / "clips").glob("*.npy"))
    out = str(tmp_path / "runs") + "/"
    code = main(["simulate", str(tmp_path / "net.h5"), *clips, "carphone", "-o", out, "--limit", "20",
                 "--scheduler", client.scheduler.address, "-q"])
    assert code == 0
    text = capsys.readouterr().out
    assert "3 streams, 3 complete" in text and "carphone" in text
    assert main(["report", out]) == 0
    assert (tmp_path / "runs" / "report.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    runs = sd.read_runs(out)
    _same(runs["carphone"], _alone(net, "carphone", limit=20))
    capsys.readouterr()
    assert main(["simulate", str(tmp_path / "net.h5"), clips[0], "--fidelity", "-o", "one.h5"]) == 2
    assert "--fidelity: only for many streams" in capsys.readouterr().err


def test_sources_hash_and_names(net, data, tmp_path):
    d, sources = data
    with pytest.raises(FileNotFoundError, match="matches no file"):
        expand([str(d / "nothing" / "*.mp4")])
    with pytest.raises(ValueError, match="more than once"):
        expand(["carphone", "carphone"])
    with pytest.raises(ValueError, match="name or a path"):
        expand([np.zeros((3, 4))])
    with pytest.raises(ValueError, match="no streams"):
        expand([])
    h5 = open_stream(sources[2], SHAPE)  # file.h5:/dataset
    np.testing.assert_array_equal(np.stack(list(h5)), smooth_stream(SHAPE, t=30, seed=7))
    with pytest.raises(ValueError, match="the network expects"):
        open_stream(sources[2], (1, 8, 8))
    sd.save(net, tmp_path / "net.h5")  # a network and its file have one hash; any change another
    assert network_hash(sd.load(tmp_path / "net.h5")) == network_hash(net)
    other = sd.load(tmp_path / "net.h5")
    other.weight_layers[0].weight[0, 0, 0, 0] += 1e-6
    assert network_hash(other) != network_hash(net)
    from sigmadelta.runs import stream_file_name

    taken = {stream_file_name("clips/a b.mp4", set())}
    assert taken == {"clips_a_b.mp4.h5"}
    assert stream_file_name("clips/a:b.mp4", taken).startswith("clips_a_b.mp4-")


def test_killed_holder_leaves_no_stale_lock(client, net, data, tmp_path, capsys):
    """The lock of a runs directory is the kernel's: a holder killed with SIGKILL (a client
    killed mid-run) leaves the lock file, but no lock; the next run takes it and completes."""
    d, sources = data
    out = tmp_path / "runs"
    out.mkdir()
    ready_r, ready_w = os.pipe()
    pid = os.fork()
    if pid == 0:  # the holder: takes the lock as simulate_many does, then waits to be killed
        try:
            with lock_runs(out, command="sigmadelta simulate net.h5 carphone -o runs/"):
                os.write(ready_w, b"1")
                time.sleep(60)
        finally:
            os._exit(0)
    assert os.read(ready_r, 1) == b"1"
    refused = f"{re.escape(str(out))} is in use by another run \\(pid {pid} on .*, started .*: sigmadelta"
    with pytest.raises(RunsBusyError, match=refused):
        sd.simulate_many(net, sources[0], out=out, client=client, limit=10)
    sd.save(net, tmp_path / "net.h5")  # the command line: one line, exit status 2
    capsys.readouterr()
    assert main(["simulate", str(tmp_path / "net.h5"), sources[0], "-o", f"{out}/", "--scheduler",
                 client.scheduler.address, "-q"]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and re.search(refused, err)
    os.kill(pid, signal.SIGKILL)
    assert os.waitpid(pid, 0)[1] == signal.SIGKILL
    assert (out / LOCK).exists()  # its file is still there, its lock is not
    runs = sd.simulate_many(net, sources[0], out=out, client=client, limit=10)
    assert runs.status == {sources[0]: "complete"} and not (out / LOCK).exists()
    _same(runs[sources[0]], _alone(net, sources[0], limit=10))


def _set_interval(seconds):
    import sigmadelta.many

    sigmadelta.many.PROGRESS_INTERVAL = seconds


def test_one_bar_over_frames_from_workers(client, net, data, tmp_path, capsys, monkeypatch):
    """The bar counts frames as the workers report them (here every chunk of 64 frames),
    its total the frames of all streams; streams done in its postfix."""
    from sigmadelta.many import _FrameBar

    d, sources = data
    keys = ["carphone", *expand(sources[1])]
    reports, event = [], _FrameBar.event
    monkeypatch.setattr(_FrameBar, "event", lambda bar, ev: (reports.append(list(ev[1])), event(bar, ev)))
    client.run(_set_interval, 0.0)  # every chunk reported (default: at most every 0.25 s)
    try:
        sd.simulate_many(net, keys, out=tmp_path / "runs", client=client, limit=150, progress=True)
    finally:
        client.run(_set_interval, sd.many.PROGRESS_INTERVAL)
    lengths = [len(open_stream(k, SHAPE, 150)) for k in keys]  # carphone has 120 frames
    assert lengths == [120, 40, 40]
    # each worker announced its stream's frames when it opened it, and carphone its first chunk
    # of 64 frames before it ended
    assert ["carphone.h5", 0, 120] in reports and ["carphone.h5", 64, 120] in reports
    assert any(r[0].endswith("clip0.npy.h5") and r[1:] == [0, 40] for r in reports)
    states = re.findall(r"(\d+)/(\d+) \[.*?(\d)/3 streams", capsys.readouterr().err)
    assert states and states[-1] == ("200", "200", "3")  # the bar drew every frame, all streams


class SlowFrames:
    """A source that yields its frames slowly, so that a worker can be killed mid-stream."""

    def __init__(self, src, delay):
        self.src, self.delay = src, delay

    def __iter__(self):
        for f in self.src:
            time.sleep(self.delay)
            yield f


def slow_opener(spec, shape, limit):
    return SlowFrames(open_stream(spec, shape, limit), 0.02)


def _no_restart(dask_worker):
    dask_worker.close_gracefully()  # the nanny: do not start the worker again when it dies


def test_worker_killed_mid_run(client, net, data, tmp_path):
    """Last in the module, as it leaves one worker: the victim's nanny is told not to start
    it again (as a machine that died would not come back), so the killed task must run again
    on the other worker, and no new worker pays its start-up (1.4 s of CPU) for nothing."""
    d, sources = data
    out = tmp_path / "runs"
    pids = client.run(os.getpid)
    done = {}
    run = threading.Thread(target=lambda: done.update(runs=sd.simulate_many(
        net, sources, out=out, client=client, limit=40, opener=slow_opener, record_chunk=4)))
    run.start()
    deadline, victim, partial = time.time() + 60, None, None
    while victim is None and time.time() < deadline:
        parts = [p for p in (os.listdir(out) if out.exists() else []) if p.endswith(".part")]
        busy = [w for w, keys in client.processing().items() if keys and w in pids]
        if parts and busy:
            time.sleep(0.3)  # a few chunks of that stream are on disk
            partial = parts[0]
            victim = busy[0]
            client.run(_no_restart, workers=[victim], nanny=True)
            os.kill(pids[victim], signal.SIGKILL)
        time.sleep(0.02)
    # meanwhile a second run on the same directory is refused, naming it and the run in it
    refused = f"{re.escape(str(out))} is in use by another run \\(pid {os.getpid()} on "
    with pytest.raises(RunsBusyError, match=refused):
        sd.simulate_many(net, sources[:1], out=out, client=client, limit=40)
    run.join(timeout=180)
    assert victim is not None and not run.is_alive()
    assert list(client.run(os.getpid).values()) == [p for w, p in pids.items() if w != victim]
    runs = done["runs"]
    assert runs.status == dict.fromkeys(expand(sources), "complete")
    for k in runs:
        res = runs[k]  # readable, complete, every frame, equal to a clean run
        _same(res, _alone(net, k))
    left = os.listdir(out)  # the killed task's partial file was never taken, and is gone
    assert partial not in left and not [p for p in left if p.startswith(".")]
