"""``scripts/benchmark.py --many N --workers 1,2``: sd.simulate_many on LocalClusters.

N streams of real video (segments of the embedded carphone, bikes and bigbuckbunny
clips decoded at the network's input size, stored as datasets of one HDF5 file and
named ``frames.h5:/segK``) run through ``sd.simulate_many`` on a LocalCluster of 1, 2,
... worker processes (one thread each). The clusters are started once; passes
alternate between them and each keeps its best. Reported per worker count: throughput
(frames per second over all streams, wall clock of the whole call: scatter, tasks,
recordings, manifest) and its ratio to the first; the scheduler overhead of a task
(an empty task's share of the wall clock when many run) and per stream (wall clock x
workers - the tasks' own seconds, over streams); the share of a task's time its thread
spent on a CPU (below 100%: other jobs on the machine took it) and the load average;
throughput in CPU time (all frames over the largest sum of task CPU seconds of one
worker: the rate if every worker had a core to itself, robust to other load on the
machine, blind to what the tasks wait for); the CPU time the cluster spends beside the
tasks, per stream: in this process (client, scheduler and nannies of the LocalCluster)
and in the worker processes beyond their tasks' own thread time (upkeep: heartbeats,
monitors, profiler), both in CPU seconds, so other load on the machine does not count;
the bytes that cross the network: the pickled network (once per worker) and a stream's
summary; what the clusters take doing nothing (CPU per second, after the passes).
``--dask-defaults``: the LocalClusters with dask's own configuration instead of
``sigmadelta.many.LEAN_CONFIG``; ``--bar``: with the progress bar (written to nowhere), so
that the tasks send their frame reports.
"""

from __future__ import annotations

import contextlib
import os
import pickle
import shutil
import tempfile
import time
from pathlib import Path

import h5py
import numpy as np
import psutil
from sigmadelta.datasets.streams import open_stream

import sigmadelta as sd
from sigmadelta.many import local_cluster
from sigmadelta.runs import read_manifest

__all__ = ["bench_many", "write_segments", "print_many", "many_from_args"]

VIDEOS = ("bikes", "bigbuckbunny", "carphone")


def write_segments(path: Path, shape: tuple[int, ...], n: int, frames: int) -> list[str]:
    """``n`` segments of ``frames`` frames, spread evenly over the embedded videos played
    one after the other; written to ``path`` as datasets ``seg0..``; returns their sources."""
    parts, need = [], n * frames  # decode no more than the segments can use
    for v in VIDEOS:
        have = sum(len(p) for p in parts)
        if have < need:
            parts.append(np.stack(list(open_stream(v, shape, need - have))))
    video = np.concatenate(parts)
    if len(video) < frames:
        raise SystemExit(f"--frames {frames}: the videos hold only {len(video)} frames")
    starts = np.linspace(0, len(video) - frames, n).astype(int)
    with h5py.File(path, "w") as f:
        for k, s in enumerate(starts):
            f.create_dataset(f"seg{k}", data=video[s:s + frames])
    return [f"{path}:/seg{k}" for k in range(n)]


def _noop(i: int) -> int:
    return i


def _task_overhead(client, n: int = 200) -> float:
    """Seconds of wall clock per empty task, ``n`` submitted at once (best of 3)."""
    best = np.inf
    for _ in range(3):
        t0 = time.perf_counter()
        client.gather(client.map(_noop, range(n), pure=False))
        best = min(best, (time.perf_counter() - t0) / n)
    return float(best)


def _cpu_seconds(procs) -> float:
    return sum(sum(p.cpu_times()[:2]) for p in procs)


def _at_rest(me, workers, seconds: float = 3.0) -> dict:
    """CPU milliseconds per second that the clusters take doing nothing: this process
    (the schedulers and nannies of every LocalCluster) and all worker processes."""
    c0, w0 = _cpu_seconds([me]), _cpu_seconds(workers)
    time.sleep(seconds)
    return {"client_process": 1e3 * (_cpu_seconds([me]) - c0) / seconds,
            "workers": 1e3 * (_cpu_seconds(workers) - w0) / seconds, "n_workers": len(workers)}


def bench_many(net, n_streams: int, workers: list[int], frames: int, dtype, repeats: int,
               lean: bool = True, bar: bool = False) -> dict:
    """Throughput of ``sd.simulate_many`` with each worker count (see the module docstring)."""
    from distributed import Client

    tmp = Path(tempfile.mkdtemp(prefix="sd-many-"))
    sources = write_segments(tmp / "frames.h5", net.input_shape, n_streams, frames)
    clusters, me = {}, psutil.Process()
    try:
        for w in workers:
            cluster = local_cluster(w, lean=lean)
            client = Client(cluster)
            procs = [psutil.Process(p) for p in client.run(os.getpid).values()]
            clusters[w] = (cluster, client, procs)
            sd.simulate_many(net, sources[:w], out=tmp / f"warm{w}", client=client, limit=2,
                             dtype=dtype, progress=False)  # every worker: imports, compiled loop
        passes: dict[int, list[tuple]] = {w: [] for w in workers}
        upkeep: dict[int, list[tuple]] = {w: [] for w in workers}
        for r in range(repeats):
            for w in workers:
                out = tmp / f"pass{r}_w{w}"
                procs = clusters[w][2]
                c0, w0, t0 = _cpu_seconds([me]), _cpu_seconds(procs), time.perf_counter()
                with open(os.devnull, "w") as devnull, contextlib.redirect_stderr(devnull):
                    sd.simulate_many(net, sources, out=out, client=clusters[w][1], dtype=dtype,
                                     progress=bar)  # with the bar: the tasks report their frames
                wall = time.perf_counter() - t0
                c1, w1 = _cpu_seconds([me]), _cpu_seconds(procs)
                m = read_manifest(out)
                busy = sum(s["seconds"] for s in m["streams"].values())
                cpu = sum(s["cpu_seconds"] for s in m["streams"].values())
                per_worker: dict[str, float] = {}
                for s in m["streams"].values():
                    per_worker[s["worker"]] = per_worker.get(s["worker"], 0.0) + s["cpu_seconds"]
                passes[w].append((wall, busy, cpu, os.getloadavg()[0], max(per_worker.values())))
                upkeep[w].append((c1 - c0, w1 - w0 - cpu))
        overhead = {w: _task_overhead(clusters[w][1]) for w in workers}
        rest = _at_rest(me, [p for c in clusters.values() for p in c[2]])
        entry = next(iter(m["streams"].values()))
        summary_bytes = len(pickle.dumps(entry))  # what a task returns
        task_bytes = len(pickle.dumps((entry["source"], str(out), entry["file"], m["settings"], 64)))
    finally:
        for cluster, client, _ in clusters.values():
            client.close()
            cluster.close()
        shutil.rmtree(tmp, ignore_errors=True)
    total = n_streams * frames
    rows = []
    for w in workers:
        wall, busy, cpu, load, _ = min(passes[w])
        cpu_span = min(p[4] for p in passes[w])
        rows.append({"workers": w, "fps": total / wall, "wall_s": wall, "load_average": load,
                     "cpu_fps": total / cpu_span,
                     "task_seconds_per_stream": busy / n_streams,
                     "task_cpu_share": cpu / busy,
                     "overhead_per_stream_ms": 1e3 * max(wall * w - busy, 0.0) / n_streams,
                     "empty_task_ms": 1e3 * overhead[w],
                     "client_cpu_ms_per_stream": [1e3 * min(u[0] for u in upkeep[w]) / n_streams,
                                                  1e3 * max(u[0] for u in upkeep[w]) / n_streams],
                     "worker_upkeep_cpu_ms_per_stream": [
                         1e3 * min(u[1] for u in upkeep[w]) / n_streams,
                         1e3 * max(u[1] for u in upkeep[w]) / n_streams]})
    for row in rows:
        row["scaling"] = row["fps"] / rows[0]["fps"]
        row["cpu_scaling"] = row["cpu_fps"] / rows[0]["cpu_fps"]
    return {"streams": n_streams, "frames_per_stream": frames, "dtype": np.dtype(dtype).name,
            "cluster_config": "sigmadelta lean" if lean else "dask defaults", "progress_bar": bar,
            "at_rest_cpu_ms_per_s": rest,
            "network_bytes": len(pickle.dumps(net)), "summary_bytes": summary_bytes,
            "task_argument_bytes": task_bytes,
            "workers": rows}


def print_many(r: dict) -> None:
    print(f"simulate_many: {r['streams']} streams x {r['frames_per_stream']} frames of real video, "
          f"dtype {r['dtype']}, LocalClusters with {r['cluster_config']} config"
          f"{', progress bar on' if r['progress_bar'] else ''}; network "
          f"{r['network_bytes'] / 1024:.0f} KiB once per worker, "
          f"per stream {r['task_argument_bytes']} bytes of task arguments out and "
          f"{r['summary_bytes']} bytes of summary back")
    rest = r["at_rest_cpu_ms_per_s"]
    print(f"at rest, CPU per second: this process (schedulers, nannies) {rest['client_process']:.0f} ms, "
          f"the {rest['n_workers']} worker processes {rest['workers']:.0f} ms")
    for w in r["workers"]:
        print(f"workers {w['workers']}: {w['fps']:.0f} frames/s ({w['scaling']:.2f}x), wall "
              f"{w['wall_s']:.2f} s; in CPU time {w['cpu_fps']:.0f} frames/s ({w['cpu_scaling']:.2f}x); "
              f"task {w['task_seconds_per_stream']:.3f} s per stream "
              f"({100 * w['task_cpu_share']:.0f}% on a CPU; load average {w['load_average']:.1f}); overhead "
              f"{w['overhead_per_stream_ms']:.1f} ms per stream, {w['empty_task_ms']:.2f} ms per "
              f"empty task; CPU beside the tasks per stream: client+scheduler "
              f"{w['client_cpu_ms_per_stream'][0]:.0f}-{w['client_cpu_ms_per_stream'][1]:.0f} ms, "
              f"workers' upkeep {w['worker_upkeep_cpu_ms_per_stream'][0]:.0f}-"
              f"{w['worker_upkeep_cpu_ms_per_stream'][1]:.0f} ms")


def many_from_args(args, network_and_frames, dtype) -> dict:
    """benchmark.py's ``--many``: the shipped face detector unless --net/--model say otherwise."""
    if not args.net and not args.model:
        args.model = "face_detector"
    net = network_and_frames(args)[0]
    r = bench_many(net, args.many, [int(w) for w in args.workers.split(",")], args.frames, dtype,
                   args.repeats, lean=not args.dask_defaults, bar=args.bar)
    if not args.json:
        print_many(r)
    return r
