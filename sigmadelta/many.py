"""Many streams on dask.distributed: one stream per task, a manifest, resume.

:func:`simulate_many` runs one network over many sources (embedded names, video
files, ``.npy`` files, ``file.h5:/dataset``, globs: :mod:`sigmadelta.sources`)::

    client (this process)                       each worker (a process, one thread)
    ---------------------                       -----------------------------------
    lock runs/.lock (flock; a second run fails)
    expand globs, read runs/manifest.json
    refuse other network/settings (overwrite)
    scatter the network to every worker  --->   kept in the worker's memory, once
    one task per stream not yet complete --->   open the source itself (no frames sent)
                                                Simulator(net).run, chunk by chunk, into
                                                runs/.<stream>.h5.<id>.part; on success
                                                rename to runs/<stream>.h5
    a bar over all frames                <---   frames done (worker events, <= 4/s)
    update the manifest as tasks finish  <---   the stream's summary (a small dict)

Every stream gets its own :class:`~sigmadelta.engine.Simulator`, so its counters and
outputs are bit for bit those of ``sd.simulate(net, source)``. A worker that dies
mid-stream (killed, out of memory) leaves only a ``.part`` file, which is never taken
as a recording; the scheduler runs the task again on another worker. A stream that
fails on its input (corrupt file, wrong shape) is marked ``failed`` with its error;
the others go on. Run again over the same ``out`` with the same network and settings
and only the streams that are not complete run.

The directory's files (manifest, recordings) and reading them back: :mod:`sigmadelta.runs`.
"""

from __future__ import annotations

import hashlib
import json
import os
import shlex
import sys
import threading
import time
import uuid
from contextlib import contextmanager
from functools import lru_cache

import numpy as np
from tqdm.auto import tqdm

from .engine import Simulator
from .frames import iter_checked
from .graph import Network
from .io import load
from .io.record import RunRecorder, check_record_chunk
from .runs import (
    COMPLETE,
    FAILED,
    PENDING,
    Runs,
    is_complete,
    lock_runs,
    manifest_differences,
    new_manifest,
    read_manifest,
    remove_parts,
    stream_file_name,
    stream_summary,
    write_manifest,
)
from .sources import default_opener, expand, resolve
from .stats import Stats

__all__ = ["simulate_many", "network_hash", "run_stream", "local_cluster", "PROGRESS_INTERVAL", "LEAN_CONFIG"]

PROGRESS_INTERVAL = 0.25  # seconds between two frame reports of one task (worker events)


def network_hash(net: Network) -> str:
    """A hash of everything that defines the network (structure, parameters, quantizers).

    Equal for a network and the same network saved and loaded again; any changed
    weight, scale or layer gives another hash.
    """
    h = hashlib.sha256(f"output={net.output}".encode())
    for node in net.nodes:
        meta = {"kind": node.kind, "name": node.name, "inputs": list(node.inputs),
                "shape": list(node.shape)}
        arrays = {}
        for key, val in node.params().items():
            if isinstance(val, np.ndarray):
                arrays[key] = np.ascontiguousarray(val)
            else:
                meta[key] = val.item() if isinstance(val, np.generic) else val
        h.update(json.dumps(meta, sort_keys=True, default=list).encode())
        for key in sorted(arrays):
            a = arrays[key]
            h.update(f"{key}:{a.dtype.str}:{a.shape}".encode())
            h.update(a.tobytes())
    return h.hexdigest()[:20]


# ---------------------------------------------------------------- one stream (runs on a worker)

def _fidelity(outputs: np.ndarray, ref: np.ndarray) -> dict:
    """Relative error ``|y - r| / |r|`` and PSNR ``10 log10(ptp(r)^2 / mean((y - r)^2))``."""
    err = outputs.astype(np.float64) - ref
    mse = float(np.mean(err ** 2))
    peak = float(np.ptp(ref)) ** 2
    return {"relative_error": float(np.linalg.norm(err) / max(np.linalg.norm(ref), 1e-12)),
            "psnr_db": float(10 * np.log10(peak / mse)) if mse > 0 and peak > 0 else None}


@lru_cache(maxsize=4)
def _load_checked(path: str, digest: str) -> Network:
    net = load(path)
    if network_hash(net) != digest:
        raise ValueError(f"{path} holds another network than the one the run was started with "
                         f"(hash {network_hash(net)}, expected {digest})")
    return net


def _pieces(frames, size: int):
    """Validated frames stacked ``size`` at a time (the compiled loop's chunk)."""
    buf = []
    for f in frames:
        buf.append(f)
        if len(buf) == size:
            yield np.stack(buf)
            buf = []
    if buf:
        yield np.stack(buf)


def _frame_reporter(topic: str | None, stream: str):
    """``report(done, total)``: a worker event ``[stream, done, total]`` on ``topic`` for the
    client's progress bar, at most one every :data:`PROGRESS_INTERVAL` seconds (the first
    always); None when there is no topic or this is not a dask worker."""
    if topic is None:
        return None
    try:
        from distributed import get_worker

        worker = get_worker()
    except (ImportError, ValueError):
        return None
    last = -np.inf

    def report(done: int, total: int | None) -> None:
        nonlocal last
        now = time.monotonic()
        if now - last >= PROGRESS_INTERVAL:
            last = now
            worker.log_event(topic, [stream, int(done), total])

    return report


def _simulate_into(net: Network, frames, path: str, dtype, record_chunk: int,
                   keep_outputs: bool, report=None) -> tuple[Stats, np.ndarray | None, bool | None]:
    """``Simulator(net).run`` over ``frames`` chunk by chunk, recording every frame to ``path``;
    ``report(frames_done, frames_expected)`` after each chunk if given.

    Returns the stats, the outputs if asked, and whether the source gave every frame it
    announced (None: it announced none), as the recording says too.
    """
    sim = Simulator(net, dtype=dtype)
    expected = len(frames) if hasattr(frames, "__len__") else None
    recorder = RunRecorder(path, net, record_chunk, frames_expected=expected, dtype=sim.dtype)
    parts, outs, complete = [], [], False
    report = report or (lambda done, total: None)
    report(0, expected)
    try:
        for piece in _pieces(iter_checked(frames, net.input_shape), sim.chunk):
            res = sim.run(piece, progress=False)
            st = res.stats
            rows = np.stack([st.events, st.synops, st.additions, st.neuron_updates], axis=1)
            for k in range(len(rows)):
                recorder.append(rows[k], res.outputs[k])
            parts.append((rows, st))
            report(sum(len(r) for r, _ in parts), expected)
            if keep_outputs:
                outs.append(res.outputs)
        complete = True
    finally:
        done = sum(len(r) for r, _ in parts)
        source_complete = None if not complete or expected is None else done >= expected
        recorder.close(complete=complete, source_complete=source_complete)
    first = parts[0][1]
    stats = Stats.from_rows(first.layer_names, np.concatenate([r for r, _ in parts]),
                            first.dense_macs[0], first.n_neurons, first.quantizers)
    return stats, (np.concatenate(outs) if keep_outputs else None), source_complete


def run_stream(net, spec: str, out: str, file: str, settings: dict, record_chunk: int,
               opener, topic: str | None = None) -> dict:
    """One task: simulate ``spec`` and record it as ``out/file``; return its summary.

    ``net`` is a :class:`Network` or ``(path, hash)`` of its HDF5 file. The recording is
    written under a temporary name and renamed when complete, so a task killed half
    way never leaves a file that looks complete. Errors of the stream (its source, its
    frames, an overflow) come back as ``{"status": "failed", "error": ...}``. With a
    ``topic``, the task reports its frames done as worker events ``[file, done, total]``
    on that topic (see :func:`_frame_reporter`).
    """
    t0, c0 = time.perf_counter(), time.thread_time()
    tmp = os.path.join(out, f".{file}.{uuid.uuid4().hex[:12]}.part")
    report = {"worker": _worker_name(), "pid": os.getpid()}
    try:
        if not isinstance(net, Network):
            net = _load_checked(*net)
        frames = opener(spec, net.input_shape, settings["limit"])
        stats, outputs, source_complete = _simulate_into(net, frames, tmp, settings["dtype"],
                                                         record_chunk, settings["fidelity"],
                                                         _frame_reporter(topic, file))
        summary = stream_summary(stats)
        report["source_complete"] = source_complete  # False: the source ended early
        if settings["fidelity"]:
            from .reference import reference

            summary.update(_fidelity(outputs, reference(net, frames, progress=False)))
        os.replace(tmp, os.path.join(out, file))
    except Exception as e:  # the stream's own failure: reported, never retried as is
        if os.path.exists(tmp):
            os.remove(tmp)
        return {**report, "status": FAILED, "error": f"{type(e).__name__}: {e}",
                "seconds": time.perf_counter() - t0, "cpu_seconds": time.thread_time() - c0}
    return {**report, "status": COMPLETE, "error": None, "summary": summary,
            "seconds": time.perf_counter() - t0, "cpu_seconds": time.thread_time() - c0}


def _task(spec: str, file: str, *, net, out: str, settings: dict, record_chunk: int, opener,
          topic: str | None) -> dict:
    """:func:`run_stream` with the stream's own arguments first (for ``Client.map``)."""
    return run_stream(net, spec, out, file, settings, record_chunk, opener, topic)


def _worker_name() -> str | None:
    try:
        from distributed import get_worker

        return get_worker().address
    except (ImportError, ValueError):
        return None


# ---------------------------------------------------------------- the client side

@contextmanager
def _connect(client, workers: int | None, tasks: int):
    """A dask Client: the one given, one to an address or cluster object (LocalCluster,
    dask-jobqueue's SLURMCluster, ...), or a LocalCluster of ``workers`` processes
    (default one per core, never more than ``tasks``) of one thread each."""
    from distributed import Client

    if isinstance(client, Client):
        yield client
    elif client is not None:
        with Client(client) as c:
            yield c
    else:
        n = min(int(workers) if workers else len(os.sched_getaffinity(0)), tasks)
        with local_cluster(n) as cluster, Client(cluster) as c:
            yield c


# What the default LocalCluster leaves out of dask's defaults (dask.config keys): the
# statistical profiler that samples each worker's stack every 10 ms (for the dashboard,
# which is off), the event loop health check every 20 ms, the system monitor every 0.5 s
# and the memory monitor every 0.1 s (1 s here: the memory limit still holds).
LEAN_CONFIG = {"distributed.worker.profile.enabled": False,
               "distributed.admin.tick.interval": "500ms",
               "distributed.admin.system-monitor.interval": "2s",
               "distributed.worker.memory.monitor-interval": "1s"}


def local_cluster(n_workers: int, lean: bool = True):
    """A dask LocalCluster of ``n_workers`` processes, one thread each (the simulation is
    one thread per stream), without a dashboard; its HTTP port is any free one.

    ``lean``: with :data:`LEAN_CONFIG` (the scheduler, nannies and workers then spend a
    quarter or less of the CPU they spend with dask's defaults on their own upkeep:
    ``scripts/benchmark.py --many`` with and without ``--dask-defaults``); False: dask's
    configuration as it is.
    """
    import dask
    from distributed import LocalCluster

    with dask.config.set(LEAN_CONFIG if lean else {}):  # nannies hand it to their workers
        return LocalCluster(n_workers=n_workers, threads_per_worker=1, processes=True,
                            dashboard_address=":0", scheduler_kwargs={"dashboard": False})


def _plan(out: str, keys: list[str], net: Network, digest: str, settings: dict,
          overwrite: bool) -> tuple[dict, list[str]]:
    """The manifest to continue (or a new one) and the streams to run."""
    m = read_manifest(out)
    if m is not None:
        diff = manifest_differences(m, digest, settings)
        if diff and not overwrite:
            raise ValueError(f"{out} holds runs of another network or settings ({'; '.join(diff)}); "
                             f"use another directory, or overwrite=True (--overwrite) to replace them")
        if diff:
            for entry in m["streams"].values():
                path = os.path.join(out, entry["file"])
                if os.path.exists(path):
                    os.remove(path)
            m = None
    if m is None:
        m = new_manifest(net, digest, settings)
    streams = m["streams"]
    todo = [k for k in keys if not is_complete(out, streams.get(k))]
    taken = {e["file"] for e in streams.values()}
    for k in todo:
        if k not in streams:
            streams[k] = {"file": stream_file_name(k, taken)}
            taken.add(streams[k]["file"])
        streams[k].update(source=resolve(k), status=PENDING, error=None)
        streams[k].pop("summary", None)
    return m, todo


def simulate_many(net: Network | str | os.PathLike, sources, out: str | os.PathLike = "runs",
                  client=None, workers: int | None = None, dtype=np.float64, limit: int | None = None,
                  fidelity: bool = False, overwrite: bool = False, progress: bool | None = None,
                  record_chunk: int = 64, opener=None) -> Runs:
    """Simulate many streams, one task per stream, on a dask.distributed cluster.

    Every stream runs alone in a fresh :class:`~sigmadelta.engine.Simulator` on a worker,
    so ``runs[key]`` equals ``sd.simulate(net, <that source>)`` bit for bit.

    Parameters
    ----------
    net : Network or path
        The network; a Network is scattered once to every worker, a path to its HDF5
        file is loaded by every worker from that file (a file system they share).
    sources : str or list of str
        Embedded names, video / ``.npy`` / HDF5 paths, ``file.h5:/dataset``, glob patterns
        (see :mod:`sigmadelta.sources`). Streams are keyed by the source as given, a glob
        by each file it matched.
    out : path
        Directory of the recordings (``<stream>.h5``) and ``manifest.json``; it must be
        reachable by the workers under the same path.
    client : None, str or distributed.Client
        None: a LocalCluster on this machine (``workers`` processes of one thread,
        default one per core), shut down at the end; an address
        (``"tcp://scheduler:8786"``) or a Client: that cluster.
    dtype, limit : the simulator's dtype; at most ``limit`` frames per stream.
    fidelity : bool
        Also run ``sd.reference`` on each stream and report relative error and PSNR.
    overwrite : bool
        Replace what ``out`` holds if it was run with another network or settings
        (otherwise that is refused).
    progress : bool, optional
        One progress bar over the frames of all streams, from the workers' reports
        (default: on a terminal); without it the tasks send no reports.
    opener : callable, optional
        ``opener(spec, input_shape, limit)`` -> frames, instead of the installed one
        (:func:`sigmadelta.sources.default_opener`:
        :func:`sigmadelta.datasets.streams.open_stream`); it must be importable on the workers.

    Returns
    -------
    Runs
        A mapping from stream key to :class:`~sigmadelta.engine.Result`, read back from
        the recordings; ``runs.summary()``, ``runs.ran`` (streams run by this call).

    Raises
    ------
    sigmadelta.runs.RunsBusyError
        Another run is writing into ``out`` (it holds ``out/.lock``).
    """
    keys = expand(sources)
    if workers is not None and int(workers) < 1:
        raise ValueError(f"workers must be at least 1, got {workers}")
    if limit is not None and int(limit) < 1:
        raise ValueError(f"limit must be at least 1 frame, got {limit}")
    record_chunk = check_record_chunk(record_chunk)
    opener = opener or default_opener()
    net_file = None
    if not isinstance(net, Network):
        net_file = os.path.abspath(os.fspath(net))
        net = load(net_file)
    digest = network_hash(net)
    settings = {"dtype": np.dtype(dtype).name, "limit": int(limit) if limit else None,
                "fidelity": bool(fidelity)}
    Simulator(net, dtype=dtype)  # a bad network or dtype fails here, before any worker starts
    out = os.path.abspath(os.fspath(out))
    os.makedirs(out, exist_ok=True)
    with lock_runs(out, command=shlex.join(sys.argv)[:300]):
        m, todo = _plan(out, keys, net, digest, settings, overwrite)
        write_manifest(out, m)
        if todo:
            with _connect(client, workers, len(todo)) as c:
                _run_all(c, net if net_file is None else (net_file, digest), m, todo, out,
                         record_chunk, opener, progress)
    return Runs(out, keys=keys, ran=todo)


class _FrameBar:
    """One progress bar over the frames of all streams, fed by the workers' reports.

    Each task reports ``[file, frames done, frames it will give]`` (a worker event, at most
    every :data:`PROGRESS_INTERVAL` s); the client's event loop calls :meth:`event`, the
    client's thread :meth:`finish` as each task ends. The total is the sum of the streams'
    frame counts where known (a stream's count is known once its worker opened it, exact
    once it ended) plus, for the others, the mean of the known ones.
    """

    def __init__(self, n_streams: int, disable: bool | None):
        self.bar = tqdm(total=0, unit="frame", desc="simulate_many", disable=disable)
        self.n_streams, self.failed = n_streams, 0
        self.done: dict[str, int] = {}
        self.total: dict[str, int] = {}
        self.ended: set[str] = set()
        self.lock = threading.Lock()

    @property
    def disabled(self) -> bool:
        return bool(self.bar.disable)

    def event(self, event) -> None:
        """A worker event ``(time, [file, done, total])``."""
        file, done, total = event[1]
        with self.lock:
            if file in self.ended:
                return
            self.done[file] = done  # a retried task starts again from 0
            if total is not None:
                self.total[file] = total
            self._draw()

    def finish(self, file: str, report: dict) -> None:
        with self.lock:
            self.ended.add(file)
            frames = report.get("summary", {}).get("frames")
            self.done[file] = frames if frames is not None else self.done.get(file, 0)
            self.total[file] = self.done[file]
            self.failed += report["status"] == FAILED
            self._draw()

    def _draw(self) -> None:
        known = list(self.total.values())
        mean = sum(known) / len(known) if known else 0.0
        self.bar.total = round(sum(known) + (self.n_streams - len(known)) * mean)
        self.bar.set_postfix_str(f"{len(self.ended)}/{self.n_streams} streams"
                                 + (f", {self.failed} failed" if self.failed else ""), refresh=False)
        self.bar.update(sum(self.done.values()) - self.bar.n)

    def close(self) -> None:
        self.bar.close()


def _run_all(c, net, m: dict, todo: list[str], out: str, record_chunk: int, opener,
             progress: bool | None) -> None:
    """Submit one task per stream; update the manifest and the bar as each one finishes."""
    from distributed import as_completed

    streams, settings = m["streams"], m["settings"]
    if isinstance(net, Network):
        net = c.scatter(net, broadcast=True, hash=False)
    bar = _FrameBar(len(todo), None if progress is None else not progress)
    topic = None if bar.disabled else f"sigmadelta-progress-{uuid.uuid4().hex}"
    if topic:
        c.subscribe_topic(topic, bar.event)
    try:
        files = [streams[k]["file"] for k in todo]
        futs = c.map(_task, [streams[k]["source"] for k in todo], files, net=net, out=out,
                     settings=settings, record_chunk=record_chunk, opener=opener, topic=topic,
                     key=[f"sigmadelta-{f[:-3]}-{uuid.uuid4().hex[:8]}" for f in files], pure=False)
        futures = dict(zip(futs, todo, strict=True))  # one graph for all streams: one message
        for fut in as_completed(futures):
            k = futures[fut]
            try:
                rep = fut.result()
            except Exception as e:  # the task itself was lost (e.g. killed too often)
                rep = {"status": FAILED, "error": f"{type(e).__name__}: {e}"}
            streams[k].update(rep)
            remove_parts(out, streams[k]["file"])
            write_manifest(out, m)
            bar.finish(streams[k]["file"], rep)
    finally:
        if topic:
            c.unsubscribe_topic(topic)
        bar.close()
