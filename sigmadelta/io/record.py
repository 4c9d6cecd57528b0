"""Chunked HDF5 recording of a run, readable while it runs and after any stop.

Layout (format version 2)::

    /            attrs: format="sigmadelta-run", format_version=2, layer_names, quantizers,
                 layer_labels; fidelity_<field> once measured (:func:`write_fidelity`)
    /complete    int8 [1]: 1 once the run ended normally
    /frames      int64 [1]: frames whose stats and outputs are on disk (finished chunks)
    /stats/<counter>   int64 [T, L], one per counter of :class:`sigmadelta.stats.Stats`
    /outputs           float32 [T, *output_shape] (or the dtype given to RunRecorder)
    /dense_macs, /n_neurons, /n_weights, /weight_bits   int64 [L]
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

from ..fidelity import Fidelity
from ..filelock import FileLock
from ..stats import MEASURED, Stats
from ..stop import uninterrupted
from .netfile import FormatError

__all__ = ["RunRecorder", "read_run", "read_run_info", "RecordingInUseError", "check_record_chunk",
           "write_fidelity"]

_FIDELITY = "fidelity_"

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


def _writer_lock(path: str) -> FileLock:
    """The recording's writer lock, ``<path>.lock`` (:class:`~sigmadelta.filelock.FileLock`)."""

    def busy(fd: int) -> RecordingInUseError:
        holder = os.pread(fd, 32, 0).decode(errors="replace").strip() or "?"
        return RecordingInUseError(
            f"{path} is being recorded by another run (process {holder} holds "
            f"{path}.lock); record to another path or wait until it ends")

    return FileLock(path + ".lock", busy, f"{os.getpid()}\n".encode(),
                    f"write the recording {path}")


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
        self._lock = _writer_lock(self.path)
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
                       quantizers=np.array([n.quantizer for n in net.weight_layers],
                                           dtype=h5py.string_dtype()),
                       layer_labels=np.array(net.layer_labels, dtype=h5py.string_dtype()))
        f["dense_macs"] = net.dense_macs()
        f["n_weights"] = np.array([n.weight.size for n in net.weight_layers], np.int64)
        f["weight_bits"] = np.array([n.weight_bits for n in net.weight_layers], np.int64)
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
        """Write the buffered frames, flush, then advance ``/frames`` and flush again; a stop
        request (:mod:`sigmadelta.stop`) made meanwhile is left for the simulator's frame loop
        to raise once the frames of its chunk are all appended."""
        if not self._rows:
            return
        with uninterrupted(raise_after=False):
            self._write_chunk()

    def _write_chunk(self) -> None:
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
        """Write what is buffered; mark the run (and its source) complete; close; unlock
        (all of it, a stop request notwithstanding)."""
        with uninterrupted(raise_after=False):
            self._close(complete, source_complete)

    def _close(self, complete: bool, source_complete: bool | None) -> None:
        try:
            if self.f.id.valid:
                if self._rows:
                    self._write_chunk()
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
            names = [_text(s) for s in f.attrs["layer_names"]]
            quant = [_text(s) for s in f.attrs["quantizers"]]
            rows = np.stack([f["stats"][c][:n] for c in MEASURED], axis=1)
            sizes = [f[k][()] if k in f else () for k in ("n_weights", "weight_bits")]
            labels = [_text(v) for v in f.attrs.get("layer_labels", [])]
            stats = Stats.from_rows(names, rows, f["dense_macs"][()], f["n_neurons"][()], quant,
                                    *sizes, labels)
            stats.fidelity = _read_fidelity(f.attrs)
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


def _text(v) -> str:
    return v.decode() if isinstance(v, bytes) else str(v)


def write_fidelity(path: str | os.PathLike, fidelity: Fidelity) -> None:
    """Store a run's :class:`~sigmadelta.fidelity.Fidelity` as attributes ``fidelity_<field>``
    of a finished recording (a ``None`` presence threshold is left out). Takes the
    recording's writer lock, so a recording still being written is refused."""
    path = os.fspath(path)
    lock = _writer_lock(path)
    try:
        with h5py.File(path, "a") as f:
            for key, value in fidelity.to_dict().items():
                if value is not None:
                    f.attrs[_FIDELITY + key] = value
    finally:
        lock.release()


def _read_fidelity(attrs) -> Fidelity | None:
    values = {k[len(_FIDELITY):]: attrs[k] for k in attrs if k.startswith(_FIDELITY)}
    if not values:
        return None
    values.setdefault("presence_threshold", None)
    ints = {"frames"}
    return Fidelity(**{k: (int(v) if k in ints else None if v is None else float(v))
                       for k, v in values.items()})
