"""Runs of many streams on disk: the manifest, the recordings, and reading them back.

A runs directory (written by :func:`sigmadelta.simulate_many`) holds one recording
per stream (``<stream>.h5``, :mod:`sigmadelta.io.record`) and ``manifest.json``::

    {"format": "sigmadelta-runs", "format_version": 1, "network_hash": "...",
     "settings": {"dtype": "float64", "limit": null, "fidelity": false},
     "streams": {"<source as given>": {"file": "<stream>.h5", "status": "complete" | "failed"
                 | "pending", "error": null | "...", "summary": {...}, "seconds": ..., "worker": ...}}}

A stream counts as complete only when the manifest says so and its recording is
there, complete, with the frames the manifest counts. :class:`Runs` and
:func:`read_runs` need nothing but these files.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import socket
import time
from collections.abc import Mapping
from contextlib import contextmanager

import numpy as np

from ._version import __version__
from .engine import Result
from .filelock import FileLock
from .graph import Network
from .io import read_run, read_run_info
from .stats import Stats

__all__ = ["Runs", "read_runs", "read_manifest", "write_manifest", "new_manifest",
           "manifest_differences", "stream_file_name", "is_complete", "remove_parts",
           "stream_summary", "StreamError", "RunsBusyError", "lock_runs", "MANIFEST", "LOCK", "COMPLETE",
           "FAILED", "PENDING"]

MANIFEST = "manifest.json"
LOCK = ".lock"
MANIFEST_FORMAT = "sigmadelta-runs"
MANIFEST_VERSION = 1
COMPLETE, FAILED, PENDING = "complete", "failed", "pending"


class StreamError(RuntimeError):
    """A stream of a :class:`Runs` did not complete (its error is in the message)."""


class RunsBusyError(OSError):
    """Another run holds the runs directory (the message names the directory and the holder)."""


def stream_summary(stats: Stats) -> dict:
    """Totals of one stream: frames, counters, dense MACs, reduction, energy (joules)."""
    e = stats.energy()
    synops, macs = int(stats.synops.sum()), int(stats.dense_macs.sum())
    return {"frames": stats.n_frames, "events": int(stats.events.sum()), "synops": synops,
            "additions": int(stats.additions.sum()), "neuron_updates": int(stats.neuron_updates.sum()),
            "dense_macs": macs, "reduction": macs / synops if synops else None,
            "energy_dense_J": e["dense_fp32_mac"], "energy_sigma_delta_J": e["sigma_delta_fp32"],
            "energy_int32_J": e["sigma_delta_int32"]}



# ---------------------------------------------------------------- the manifest

def _manifest_path(out: str) -> str:
    return os.path.join(out, MANIFEST)


def read_manifest(out: str | os.PathLike) -> dict | None:
    """The manifest of a runs directory, or None if it has none."""
    path = _manifest_path(os.fspath(out))
    if not os.path.exists(path):
        return None
    try:
        with open(path) as f:
            m = json.load(f)
    except (OSError, json.JSONDecodeError) as e:
        raise ValueError(f"{path} is not a readable runs manifest ({e})") from None
    if not isinstance(m, dict) or m.get("format") != MANIFEST_FORMAT:
        raise ValueError(f"{path} is not a sigmadelta runs manifest (no format={MANIFEST_FORMAT!r})")
    if int(m.get("format_version", 0)) > MANIFEST_VERSION:
        raise ValueError(f"{path} has manifest version {m['format_version']}, newer than this "
                         f"sigmadelta reads ({MANIFEST_VERSION}); upgrade sigmadelta")
    return m


def write_manifest(out: str, m: dict) -> None:
    """Write the manifest atomically (temporary file, then rename)."""
    tmp = _manifest_path(out) + f".{os.getpid()}.tmp"
    with open(tmp, "w") as f:
        json.dump(m, f, indent=1)
    os.replace(tmp, _manifest_path(out))


def new_manifest(net: Network, digest: str, settings: dict) -> dict:
    return {"format": MANIFEST_FORMAT, "format_version": MANIFEST_VERSION,
            "sigmadelta_version": __version__, "network_hash": digest,
            "network": {"input_shape": list(net.input_shape), "output_shape": list(net.output_shape),
                        "layer_names": net.layer_names},
            "settings": settings, "streams": {}}


def manifest_differences(m: dict, digest: str, settings: dict) -> list[str]:
    diff = []
    if m.get("network_hash") != digest:
        diff.append(f"network {m.get('network_hash')} -> {digest}")
    old = m.get("settings", {})
    diff += [f"{k} {old.get(k)!r} -> {settings[k]!r}" for k in settings if old.get(k) != settings[k]]
    return diff


def stream_file_name(key: str, taken: set[str]) -> str:
    """A recording file name for a stream key: its characters made safe, unique in ``out``."""
    slug = re.sub(r"[^A-Za-z0-9._-]+", "_", key).strip("._")[:100] or "stream"
    name = slug + ".h5"
    if name in taken or name == MANIFEST:
        name = f"{slug}-{hashlib.sha1(key.encode()).hexdigest()[:8]}.h5"
    return name


def is_complete(out: str, entry: dict | None) -> bool:
    if not entry or entry.get("status") != COMPLETE:
        return False
    try:
        info = read_run_info(os.path.join(out, entry["file"]))
    except (OSError, ValueError, KeyError):
        return False
    return info["complete"] and info["frames"] == entry.get("summary", {}).get("frames")


def remove_parts(out: str, file: str) -> None:
    """Remove what tasks of one stream left behind: temporary recordings (``.part``) of
    killed attempts and their lock files (``.part.lock``)."""
    for name in os.listdir(out):
        if name.startswith(f".{file}.") and name.endswith((".part", ".part.lock")):
            try:
                os.remove(os.path.join(out, name))
            except FileNotFoundError:
                pass


# ---------------------------------------------------------------- one run at a time

def _holder(fd: int) -> str:
    """What the holder of a lock file wrote into it: pid, host, start time."""
    try:
        h = json.loads(os.pread(fd, 4096, 0) or b"{}")
        return (f"pid {h['pid']} on {h['host']}, started {h['started']}"
                + (f": {h['command']}" if h.get("command") else ""))
    except (OSError, ValueError, KeyError, TypeError):
        return "a process that is just starting"


@contextmanager
def lock_runs(out: str | os.PathLike, command: str | None = None):
    """Hold ``out/.lock`` (an exclusive ``flock``) while a run writes into ``out``.

    A second run on the same directory, from this machine or another one that shares
    the file system (NFS emulates ``flock`` with its own locks), fails at once with a
    :class:`RunsBusyError` naming the directory and the holder (pid, host, start time,
    ``command``). The kernel drops the lock when its holder dies, however it dies, so a
    killed run never leaves a stale lock behind; the file is removed when the run ends.

    The lock is a :class:`~sigmadelta.filelock.FileLock`, as a recording's writer lock is;
    on a system without ``fcntl`` (Windows) the directory is not locked.

    Raises
    ------
    RunsBusyError
        Another process holds the lock.
    """
    out = os.fspath(out)

    def busy(fd: int) -> RunsBusyError:
        return RunsBusyError(f"{out} is in use by another run ({_holder(fd)}); wait for it to "
                             f"end, or write to another directory")

    me = {"pid": os.getpid(), "host": socket.gethostname(),
          "started": time.strftime("%Y-%m-%d %H:%M:%S %Z"), "command": command}
    lock = FileLock(os.path.join(out, LOCK), busy, json.dumps(me).encode(), f"run into {out}")
    try:
        yield
    finally:
        lock.release()


# ---------------------------------------------------------------- reading runs back

class Runs(Mapping):
    """The streams of a runs directory: ``runs[key]`` is that stream's :class:`Result`.

    Everything is read from the directory's files (the manifest and the recordings):
    outputs and stats of ``runs[key]`` come from ``<stream>.h5``. ``status`` and
    ``errors`` say which streams completed and why the others failed.
    """

    def __init__(self, out: str | os.PathLike, keys=None, ran=()):
        self.out = os.path.abspath(os.fspath(out))
        m = read_manifest(self.out)
        if m is None:
            raise FileNotFoundError(f"no runs in {self.out}: it has no {MANIFEST}")
        self.manifest = m
        self.keys_ = list(m["streams"]) if keys is None else list(keys)
        self.ran = list(ran)
        self._stats: dict[str, Stats] = {}
        self._unreadable: dict[str, str] = {}  # complete in the manifest, recording unreadable

    def __len__(self) -> int:
        return len(self.keys_)

    def __iter__(self):
        return iter(self.keys_)

    def _entry(self, key: str) -> dict:
        if key not in self.keys_:
            raise KeyError(key)
        return self.manifest["streams"][key]

    def __getitem__(self, key: str) -> Result:
        entry = self._entry(key)
        if entry["status"] != COMPLETE:
            raise StreamError(f"stream {key!r} is {entry['status']}: {entry.get('error')}")
        stats, outputs, complete = read_run(os.path.join(self.out, entry["file"]))
        if not complete:
            raise StreamError(f"stream {key!r}: its recording {entry['file']} is not complete")
        self._stats[key] = stats
        return Result(outputs, stats)

    def _readable(self, key: str) -> bool:
        """A stream the manifest calls complete whose recording reads back complete."""
        if key in self._stats:
            return True
        if key not in self._unreadable:
            try:
                self[key]
                return True
            except (OSError, ValueError, KeyError, StreamError) as e:
                self._unreadable[key] = f"{type(e).__name__}: {e}"
        return False

    @property
    def status(self) -> dict[str, str]:
        """Stream key -> ``"complete"``, ``"failed"``, ``"pending"`` or ``"unreadable"``
        (complete in the manifest, but its recording is missing or broken)."""
        out = {}
        for k in self.keys_:
            s = self._entry(k)["status"]
            out[k] = "unreadable" if s == COMPLETE and not self._readable(k) else s
        return out

    @property
    def errors(self) -> dict[str, str]:
        """Stream key -> error, for the streams that failed or cannot be read."""
        st = self.status
        return {k: self._unreadable.get(k) or self._entry(k).get("error") for k in self.keys_
                if st[k] in (FAILED, "unreadable")}

    @property
    def complete(self) -> list[str]:
        """The streams that completed, their recordings readable."""
        return [k for k in self.keys_ if self._entry(k)["status"] == COMPLETE and self._readable(k)]

    def stats(self, key: str) -> Stats:
        """The per-frame counters of one complete stream (from its recording)."""
        if key not in self._stats:
            self[key]
        return self._stats[key]

    def total_stats(self) -> Stats:
        """The counters of every complete stream, frames one after the other."""
        parts = [self.stats(k) for k in self.complete]
        if not parts:
            raise StreamError(f"no stream of {self.out} is complete")
        rows = np.concatenate([np.stack([s.events, s.synops, s.additions, s.neuron_updates], axis=1)
                               for s in parts])
        p = parts[0]
        return Stats.from_rows(p.layer_names, rows, p.dense_macs[0], p.n_neurons, p.quantizers)

    def rows(self) -> list[dict]:
        """One dict per stream (from its recording; fidelity and errors from the manifest)
        and a last one, ``"stream": "all"``, over every complete stream."""
        out = []
        status, errors = self.status, self.errors
        for k in self.keys_:
            entry = self._entry(k)
            row = {"stream": k, "status": status[k], "error": errors.get(k)}
            if status[k] == COMPLETE:
                row["source_complete"] = entry.get("source_complete")
                row.update(stream_summary(self.stats(k)))
                row.update({f: entry.get("summary", {}).get(f)
                            for f in ("relative_error", "psnr_db") if f in entry.get("summary", {})})
            out.append(row)
        total = {"stream": "all", "status": f"{len(self.complete)} of {len(self)} complete",
                 "error": None}
        if self.complete:
            total.update(stream_summary(self.total_stats()))
        out.append(total)
        return out

    def summary(self) -> str:
        """A table: per stream frames, events, synops and dense MACs per frame, reduction,
        energy per frame (dense ANN, sigma-delta), fidelity if it was asked; then all streams."""
        rows = self.rows()
        fid = any("relative_error" in r for r in rows)
        w = max([len(r["stream"]) for r in rows] + [6]) + 2
        head = (f"{'stream':<{w}}{'frames':>7}{'events/fr':>11}{'synops/fr':>11}{'MACs/fr':>11}"
                f"{'reduction':>10}{'dense uJ/fr':>12}{'SD uJ/fr':>10}" + (f"{'rel.err':>9}{'PSNR':>7}" if fid
                                                                         else ""))
        lines = [f"{len(self)} streams, {len(self.complete)} complete; network "
                 f"{self.manifest['network_hash']}; settings {self.manifest['settings']}", head,
                 "-" * len(head)]
        for r in rows:
            if r is rows[-1]:
                lines.append("-" * len(head))
            if "frames" not in r:
                lines.append(f"{r['stream']:<{w}}{r['status']}: {r['error'] or ''}")
                continue
            t = max(r["frames"], 1)
            red = f"{r['reduction']:.2f}x" if r["reduction"] else "-"
            line = (f"{r['stream']:<{w}}{r['frames']:>7}{r['events'] / t:>11.1f}{r['synops'] / t:>11.4g}"
                    f"{r['dense_macs'] / t:>11.4g}{red:>10}{1e6 * r['energy_dense_J'] / t:>12.4g}"
                    f"{1e6 * r['energy_sigma_delta_J'] / t:>10.4g}")
            if fid and "relative_error" in r:
                psnr = f"{r['psnr_db']:.1f}" if r.get("psnr_db") is not None else "inf"
                line += f"{r['relative_error']:>9.2e}{psnr:>7}"
            lines.append(line)
        lines += [f"note: the source of {r['stream']} ended before the frames it announced (a "
                  f"truncated file?)" for r in rows if r.get("source_complete") is False]
        return "\n".join(lines)

    def __repr__(self) -> str:
        return f"Runs({self.out!r}: {len(self)} streams, {len(self.complete)} complete)"


def read_runs(out: str | os.PathLike) -> Runs:
    """The runs of a directory written by :func:`simulate_many`, from its files alone."""
    return Runs(out)
