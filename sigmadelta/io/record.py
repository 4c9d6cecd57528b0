"""Chunked HDF5 recording of a run, readable even when the run stops half way.

Layout::

    /            attrs: format="sigmadelta-run", format_version=1, layer_names, quantizers
    /complete    int8 [1]: 1 once the run ended normally
    /stats/<counter>   int64 [T, L], one per counter of :class:`sigmadelta.stats.Stats`
    /outputs           float32 [T, *output_shape]
    /dense_macs, /n_neurons   int64 [L]

Frames are buffered and written ``chunk`` at a time; after every chunk the file
is flushed in SWMR mode, so a reader (or a run killed later) finds every
finished chunk intact. ``complete`` becomes true when the run ends normally.
"""

from __future__ import annotations

import os

import h5py
import numpy as np

from ..stats import COUNTERS, Stats
from .netfile import open_checked

__all__ = ["RunRecorder", "read_run"]

RUN_FORMAT = "sigmadelta-run"


class RunRecorder:
    """Append per-frame stats rows and outputs to an HDF5 file in chunks."""

    def __init__(self, path: str | os.PathLike, net, chunk: int = 64):
        self.path = os.fspath(path)
        self.chunk = int(chunk)
        n_layers = len(net.weight_layers)
        self._rows: list[np.ndarray] = []
        self._outs: list[np.ndarray] = []
        self.n = 0
        f = self.f = h5py.File(self.path, "w", libver="latest")
        f.attrs.update(format=RUN_FORMAT, format_version=1,
                       layer_names=np.array(net.layer_names, dtype=h5py.string_dtype()),
                       quantizers=np.array([n.quantizer for n in net.weight_layers],
                                           dtype=h5py.string_dtype()))
        f["dense_macs"] = net.dense_macs()
        f["n_neurons"] = np.array([n.size for n in net.weight_layers], np.int64)
        f["complete"] = np.zeros(1, np.int8)
        grp = f.create_group("stats")
        for c in COUNTERS[:4]:
            grp.create_dataset(c, shape=(0, n_layers), maxshape=(None, n_layers), dtype=np.int64,
                               chunks=(self.chunk, max(n_layers, 1)))
        out_shape = tuple(net.output_shape)
        f.create_dataset("outputs", shape=(0, *out_shape), maxshape=(None, *out_shape),
                         dtype=np.float32, chunks=(self.chunk, *out_shape))
        f.swmr_mode = True

    def append(self, row: np.ndarray, output: np.ndarray) -> None:
        """Buffer one frame: ``row[4, L]`` counters and its output."""
        self._rows.append(np.array(row, np.int64))
        self._outs.append(np.asarray(output, np.float32))
        if len(self._rows) >= self.chunk:
            self.flush()

    def flush(self) -> None:
        """Write the buffered frames and flush the file."""
        if not self._rows:
            return
        rows, outs = np.stack(self._rows), np.stack(self._outs)
        m = self.n + len(rows)
        for k, c in enumerate(COUNTERS[:4]):
            ds = self.f["stats"][c]
            ds.resize(m, axis=0)
            ds[self.n:m] = rows[:, k]
        ds = self.f["outputs"]
        ds.resize(m, axis=0)
        ds[self.n:m] = outs
        self.n = m
        self._rows, self._outs = [], []
        self.f.flush()

    def close(self, complete: bool = True) -> None:
        """Write what is buffered; mark the run complete; close the file."""
        if self.f.id.valid:
            self.flush()
            self.f["complete"][0] = int(bool(complete))
            self.f.flush()
            self.f.close()


def read_run(path: str | os.PathLike):
    """Read a recording: returns ``(stats, outputs, complete)``."""
    with open_checked(path, RUN_FORMAT, "run recording") as f:
        n = min(f["outputs"].shape[0], *(f["stats"][c].shape[0] for c in COUNTERS[:4]))
        names = [s.decode() if isinstance(s, bytes) else str(s) for s in f.attrs["layer_names"]]
        quant = [s.decode() if isinstance(s, bytes) else str(s) for s in f.attrs["quantizers"]]
        rows = np.stack([f["stats"][c][:n] for c in COUNTERS[:4]], axis=1)
        stats = Stats.from_rows(names, rows, f["dense_macs"][()], f["n_neurons"][()], quant)
        return stats, f["outputs"][:n], bool(f["complete"][0])
