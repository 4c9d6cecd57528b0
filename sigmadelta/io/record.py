"""Chunked HDF5 recording of a run, readable while it runs and after any stop.

Layout (format version 2)::

    /            attrs: format="sigmadelta-run", format_version=2, layer_names, layer_labels, quantizers
    /complete    int8 [1]: 1 once the run ended normally
    /frames      int64 [1]: frames whose stats and outputs are on disk (finished chunks)
    /stats/<counter>   int64 [T, L], one per counter of :class:`sigmadelta.stats.Stats`
    /outputs           float32 [T, *output_shape] (or the dtype given to RunRecorder)
    /dense_macs, /n_neurons   int64 [L]
    /source_frames_expected   int64 [1]: frames the source announced (its len()), -1 unknown
    /source_complete   int8 [1]: 1 the source gave every announced frame, 0 it ended early,
                       -1 unknown (no len(), or the run did not end normally)

Writing. Frames are buffered and written ``chunk`` at a time, in HDF5's single-writer /
multiple-reader (SWMR) mode: a chunk's data is written and flushed, and only then is
``/frames`` advanced and flushed. SWMR orders every flush so that the file on disk is
always a consistent HDF5 file, so after any stop (an exception, Ctrl-C, SIGTERM, SIGKILL,
a power cut after the last flush) every finished chunk is readable, with ``complete`` 0.
A SWMR writer marks the file "open for write" in its superblock (HDF5's file-consistency
flags), and a killed writer never clears that mark. A plain ``h5py.File(path, "r")`` then
refuses the file (only the ``h5clear`` tool would clear the flags); :func:`read_run` opens
it as a SWMR reader, which HDF5 allows with the flags set, so no clearing is needed, and
the same reading works while the run is still writing.

One writer per path. In SWMR mode HDF5 drops its own file lock, so nothing would keep a
second run from truncating a file that is being recorded. :class:`RunRecorder` therefore
takes an exclusive ``flock`` on ``<path>.lock`` before it opens the file and holds it until
it closes; a second writer gets :class:`RecordingInUseError` and the first recording is
untouched. The kernel drops the lock when its process dies, so a killed run leaves no
stale lock: the leftover ``.lock`` file is harmless and the next run takes it. (A
temporary name renamed at the end was not chosen: a killed run would then leave its
finished chunks under a name nobody reads, and a reader could not follow a running
recording at its own path.)
"""

from __future__ import annotations

import os

import h5py
import numpy as np

from ..stats import MEASURED, Stats
from .netfile import FormatError

try:
    import fcntl
except ImportError:  # not a POSIX system: recordings are not locked there
    fcntl = None

__all__ = ["RunRecorder", "read_run", "read_run_info", "RecordingInUseError", "check_record_chunk"]

RUN_FORMAT = "sigmadelta-run"
RUN_FORMAT_VERSION = 2
UNKNOWN = -1


class RecordingInUseError(OSError):
    """The recording's path is being written by another run, or is held open elsewhere."""


def check_record_chunk(chunk) -> int:
    """``chunk`` as a positive number of frames, or a ValueError naming ``record_chunk``."""
    if isinstance(chunk, bool) or not isinstance(chunk, (int, np.integer)) or chunk < 1:
        raise ValueError(f"record_chunk must be a positive number of frames, got {chunk!r}")
    return int(chunk)


class _WriterLock:
    """An exclusive, non-blocking ``flock`` on ``<path>.lock``, held by one writer.

    The lock file is removed on release. A writer that opened the file just before the
    previous holder removed it would hold a lock on a removed file, so after locking we
    check that the path still names the file we locked, and start over if not.
    """

    def __init__(self, path: str):
        self.lock_path, self.fd = path + ".lock", None
        if fcntl is None:
            return
        while True:
            try:
                fd = os.open(self.lock_path, os.O_RDWR | os.O_CREAT, 0o644)
            except OSError as e:
                raise type(e)(e.errno, f"cannot write the recording {path}: {e.strerror} "
                                       f"(creating its lock file {self.lock_path})") from None
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                holder = os.read(fd, 32).decode(errors="replace").strip() or "?"
                os.close(fd)
                raise RecordingInUseError(
                    f"{path} is being recorded by another run (process {holder} holds "
                    f"{self.lock_path}); record to another path or wait until it ends") from None
            except OSError as e:  # a file system without locks
                os.close(fd)
                raise OSError(e.errno, f"cannot lock {self.lock_path} for the recording {path}: "
                                       f"{e.strerror}") from None
            if self._still_named(fd):
                break
            os.close(fd)
        os.ftruncate(fd, 0)
        os.write(fd, f"{os.getpid()}\n".encode())
        self.fd = fd

    def _still_named(self, fd: int) -> bool:
        try:
            a, b = os.fstat(fd), os.stat(self.lock_path)
        except FileNotFoundError:
            return False
        return (a.st_dev, a.st_ino) == (b.st_dev, b.st_ino)

    def release(self) -> None:
        if self.fd is None:
            return
        try:
            os.unlink(self.lock_path)  # while still locked: see the class docstring
        except FileNotFoundError:
            pass
        os.close(self.fd)
        self.fd = None


def _create(path: str) -> h5py.File:
    try:
        return h5py.File(path, "w", libver="latest")
    except OSError as e:
        text = str(e)
        if "already open" in text or "unable to lock" in text:
            raise RecordingInUseError(f"cannot record to {path}: the file is held open by another "
                                      f"handle or process; close it first ({text})") from None
        if os.path.isdir(path):
            raise IsADirectoryError(f"cannot record to {path}: it is a directory") from None
        raise OSError(f"cannot write the recording {path}: {text}") from None


class RunRecorder:
    """Append per-frame stats rows and outputs to an HDF5 file in chunks.

    Parameters
    ----------
    path : path
        The recording; an existing file is replaced (unless another run records to it,
        or another handle holds it open: :class:`RecordingInUseError`, before anything
        is written).
    net : Network
        The network being simulated (layer names, output shape, dense MACs).
    chunk : int
        Frames per write (>= 1).
    frames_expected : int, optional
        Frames the source announced (its ``len()``), kept as ``/source_frames_expected``.
    dtype : numpy dtype
        Of ``/outputs`` (float32 by default; the simulator's to keep them bit for bit).
    """

    def __init__(self, path: str | os.PathLike, net, chunk: int = 64,
                 frames_expected: int | None = None, dtype=np.float32):
        self.path = os.fspath(path)
        self.dtype = np.dtype(dtype)
        self.chunk = check_record_chunk(chunk)
        self.frames_expected = frames_expected
        self._rows: list[np.ndarray] = []
        self._outs: list[np.ndarray] = []
        self.n = 0
        self._lock = _WriterLock(self.path)
        try:
            self.f = _create(self.path)
            self._layout(net)
        except BaseException:
            if hasattr(self, "f"):
                self.f.close()
            self._lock.release()
            raise

    def _layout(self, net) -> None:
        f, n_layers = self.f, len(net.weight_layers)
        f.attrs.update(format=RUN_FORMAT, format_version=RUN_FORMAT_VERSION,
                       layer_names=np.array(net.layer_names, dtype=h5py.string_dtype()),
                       layer_labels=np.array(net.layer_labels, dtype=h5py.string_dtype()),
                       quantizers=np.array([n.quantizer for n in net.weight_layers],
                                           dtype=h5py.string_dtype()))
        f["dense_macs"] = net.dense_macs()
        f["n_neurons"] = np.array([n.size for n in net.weight_layers], np.int64)
        f["complete"] = np.zeros(1, np.int8)
        f["frames"] = np.zeros(1, np.int64)
        expected = UNKNOWN if self.frames_expected is None else int(self.frames_expected)
        f["source_frames_expected"] = np.array([expected], np.int64)
        f["source_complete"] = np.array([UNKNOWN], np.int8)
        grp = f.create_group("stats")
        for c in MEASURED:
            grp.create_dataset(c, shape=(0, n_layers), maxshape=(None, n_layers), dtype=np.int64,
                               chunks=(self.chunk, max(n_layers, 1)))
        out_shape = tuple(net.output_shape)
        f.create_dataset("outputs", shape=(0, *out_shape), maxshape=(None, *out_shape),
                         dtype=self.dtype, chunks=(self.chunk, *out_shape))
        f.swmr_mode = True
        f.flush()

    def append(self, row: np.ndarray, output: np.ndarray) -> None:
        """Buffer one frame: ``row[4, L]`` counters and its output."""
        self._rows.append(np.array(row, np.int64))
        self._outs.append(np.asarray(output, self.dtype))
        if len(self._rows) >= self.chunk:
            self.flush()

    def flush(self) -> None:
        """Write the buffered frames, flush, then advance ``/frames`` and flush again."""
        if not self._rows:
            return
        rows, outs = np.stack(self._rows), np.stack(self._outs)
        m = self.n + len(rows)
        for k, c in enumerate(MEASURED):
            ds = self.f["stats"][c]
            ds.resize(m, axis=0)
            ds[self.n:m] = rows[:, k]
        ds = self.f["outputs"]
        ds.resize(m, axis=0)
        ds[self.n:m] = outs
        self.f.flush()  # the data first ...
        self.f["frames"][0] = m
        self.f.flush()  # ... then the count that makes it visible
        self.n = m
        self._rows, self._outs = [], []

    def close(self, complete: bool = True, source_complete: bool | None = None) -> None:
        """Write what is buffered; mark the run (and its source) complete; close; unlock."""
        try:
            if self.f.id.valid:
                self.flush()
                if source_complete is not None:
                    self.f["source_complete"][0] = int(bool(source_complete))
                self.f["complete"][0] = int(bool(complete))
                self.f.flush()
                self.f.close()
        finally:
            self._lock.release()


def _open_run(path: str | os.PathLike) -> h5py.File:
    """Open a recording as a SWMR reader: works while it is written and after a kill."""
    path = os.fspath(path)
    if not os.path.exists(path):
        raise FileNotFoundError(f"no such run recording file: {path}")
    if os.path.isdir(path):
        raise IsADirectoryError(f"{path} is a directory, not a run recording")
    try:
        f = h5py.File(path, "r", swmr=True, locking=False)
    except OSError as e:
        raise FormatError(f"{path} is not a readable HDF5 file ({e})") from None
    if f.attrs.get("format") != RUN_FORMAT:
        f.close()
        raise FormatError(f"{path} is not a sigmadelta run recording file "
                          f"(no format={RUN_FORMAT!r})")
    version = int(f.attrs.get("format_version", 1))
    if version > RUN_FORMAT_VERSION:
        f.close()
        raise FormatError(f"{path} has run format version {version}, newer than this sigmadelta "
                          f"reads ({RUN_FORMAT_VERSION}); upgrade sigmadelta")
    return f


def _n_frames(f: h5py.File) -> int:
    n = min(f["outputs"].shape[0], *(f["stats"][c].shape[0] for c in MEASURED))
    return min(n, int(f["frames"][0])) if "frames" in f else n  # version 1 files: no /frames


def _incomplete(path, e: KeyError) -> FormatError:
    return FormatError(f"{os.fspath(path)} is incomplete: no {e.args[0] if e.args else e} "
                       f"(being created, or damaged)")


def read_run(path: str | os.PathLike):
    """Read a recording: returns ``(stats, outputs, complete)``.

    Works on a finished run, on a run that is still writing, and on a run that was
    stopped or killed (every finished chunk, ``complete`` False).
    """
    with _open_run(path) as f:
        try:
            n = _n_frames(f)
            names = [s.decode() if isinstance(s, bytes) else str(s) for s in f.attrs["layer_names"]]
            quant = [s.decode() if isinstance(s, bytes) else str(s) for s in f.attrs["quantizers"]]
            labels = [s.decode() if isinstance(s, bytes) else str(s)
                      for s in f.attrs.get("layer_labels", ())]  # absent in older recordings
            rows = np.stack([f["stats"][c][:n] for c in MEASURED], axis=1)
            stats = Stats.from_rows(names, rows, f["dense_macs"][()], f["n_neurons"][()], quant,
                                    labels)
            return stats, f["outputs"][:n], bool(f["complete"][0])
        except KeyError as e:
            raise _incomplete(path, e) from None


def read_run_info(path: str | os.PathLike) -> dict:
    """What a recording says about its run, without reading the data.

    Returns a dict: ``frames`` (recorded), ``complete`` (the run ended normally),
    ``source_frames_expected`` (int, or None if unknown) and ``source_complete``
    (False when the source ended before the frames it announced; None if unknown).
    """
    with _open_run(path) as f:
        try:
            n, complete = _n_frames(f), bool(f["complete"][0])
        except KeyError as e:
            raise _incomplete(path, e) from None
        expected = int(f["source_frames_expected"][0]) if "source_frames_expected" in f else UNKNOWN
        src = int(f["source_complete"][0]) if "source_complete" in f else UNKNOWN
        return {"frames": n, "complete": complete,
                "source_frames_expected": None if expected == UNKNOWN else expected,
                "source_complete": None if src == UNKNOWN else bool(src)}
