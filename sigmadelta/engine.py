"""The engine: the one frame loop of the event-driven sigma-delta simulation.

Per frame::

    input   : list the pixels whose value changed since the last frame
    for each node in topological order:
        weight layer : encode the change of its input as spikes (herding or threshold),
                       scatter the spikes into z (sigma), list the outputs that got events
        other nodes  : recompute only the listed (touched) neurons
    output  : the output node's value, back in PyTorch layout

A neuron whose inputs did not change is never visited. On the first frame after
:meth:`Simulator.reset` every neuron is visited once, so that biases and the
first frame's activations are sent (that frame costs about one dense pass).
"""

from __future__ import annotations

import time
from collections.abc import Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import numpy as np
from tqdm.auto import tqdm

from .graph import Network
from .ops import build_ops, to_torch_layout
from .stats import Stats

__all__ = ["Simulator", "simulate", "simulate_batch", "Result", "check_frames", "iter_checked"]


@dataclass
class Result:
    """What a run produced: ``outputs[T, *output_shape]`` and its :class:`Stats`."""

    outputs: np.ndarray
    stats: Stats


def _as_array(frame) -> np.ndarray:
    if hasattr(frame, "detach"):  # a torch tensor
        frame = frame.detach().cpu().numpy()
    return np.asarray(frame)


def _check_one(frame: np.ndarray, shape: tuple[int, ...], index: int) -> None:
    if frame.shape != tuple(shape):
        raise ValueError(f"frame {index} has shape {frame.shape}, the network expects {tuple(shape)}")
    if not np.issubdtype(frame.dtype, np.floating):
        raise TypeError(
            f"frame {index} has dtype {frame.dtype}; frames must be floating point in the units "
            f"the model was trained on (e.g. frames.astype(np.float32) / 255 for 8-bit video)"
        )
    if not np.isfinite(frame).all():
        bad = "NaN" if np.isnan(frame).any() else "Inf"
        raise ValueError(f"frame {index} contains {bad}")


def check_frames(frames: np.ndarray, shape: tuple[int, ...]) -> np.ndarray:
    """Validate a whole ``[T, *shape]`` array before any work; return it as an array."""
    frames = _as_array(frames)
    if frames.ndim != len(shape) + 1 or frames.shape[1:] != tuple(shape):
        raise ValueError(
            f"frames have shape {frames.shape}, expected [T, {', '.join(map(str, shape))}]"
        )
    if frames.shape[0] == 0:
        raise ValueError("the stream is empty: no frames to simulate")
    if not np.issubdtype(frames.dtype, np.floating):
        _check_one(frames[0], shape, 0)
    if not np.isfinite(frames).all():
        t = int(np.flatnonzero(~np.isfinite(frames.reshape(len(frames), -1)).all(1))[0])
        _check_one(frames[t], shape, t)
    return frames


def iter_checked(frames: Iterable, shape: tuple[int, ...]):
    """Yield validated frames; raise on a bad frame before it is processed, or if empty."""
    if isinstance(frames, np.ndarray) or hasattr(frames, "detach"):
        yield from check_frames(frames, shape)
        return
    n = 0
    for n, frame in enumerate(frames, start=1):
        frame = _as_array(frame)
        _check_one(frame, shape, n - 1)
        yield frame
    if n == 0:
        raise ValueError("the stream is empty: no frames to simulate")


class Simulator:
    """Stateful event-driven simulation of a converted network.

    State persists across calls, so a stream can be fed in pieces:
    ``sim.step(frame)`` or ``sim.run(chunk)``; ``sim.reset()`` starts a new stream.

    Parameters
    ----------
    net : Network
        A converted network (:func:`sigmadelta.convert` or :func:`sigmadelta.load`).
    dtype : numpy dtype
        Accumulator and state precision (float64 by default, so that the event
        simulation matches the dense reference to rounding error; float32 is
        faster but its rounding drift can flip a downstream herding spike).
    profile : bool
        Accumulate the wall-clock seconds spent in every node's step:
        ``node_seconds[i]`` (node ``i``) and ``layer_seconds[j]`` (weight layer ``j``:
        encode + scatter + output listing). Costs two clock reads per node.
    """

    def __init__(self, net: Network, dtype=np.float64, profile: bool = False):
        self.net = net
        self.dtype = np.dtype(dtype)
        self.profile = bool(profile)
        self._ops, self._states, self._weight_ops = build_ops(net, self.dtype)
        self._out = net.output
        self._macs = net.dense_macs()
        self._n_neurons = np.array([n.size for n in net.weight_layers], np.int64)
        self.last_stats = np.zeros((4, len(self._weight_ops)), np.int64)
        self.node_seconds = np.zeros(len(self._ops))
        self.layer_seconds = np.zeros(len(self._weight_ops))
        self.reset()

    def reset(self) -> None:
        """Forget the stream: zero every state; the next frame is sent in full."""
        for s in self._states:
            s.value[:] = 0
            s.count[0] = 0
            s.stamp[:] = -1
            if s.row_count is not None:
                s.row_count[0] = 0
        for op in self._weight_ops:
            op.reset()
        self.frame_no = 0

    def step(self, frame) -> np.ndarray:
        """Process one frame ``[*input_shape]``; return the output in PyTorch layout.

        The frame's counters are left in ``last_stats`` (rows: events, synops,
        additions, neuron updates; one column per weight layer).
        """
        frame = _as_array(frame)
        _check_one(frame, self.net.input_shape, self.frame_no)
        return self._step(frame)

    def _step(self, frame: np.ndarray) -> np.ndarray:
        prime = self.frame_no == 0
        self._ops[0].set_frame(frame)
        row = self.last_stats
        j = 0
        frame_no = self.frame_no
        if self.profile:
            return self._step_profiled(prime)
        for op in self._ops:
            r = op.step(frame_no, prime)
            if r is not None:
                row[:, j] = r
                j += 1
        self.frame_no += 1
        return to_torch_layout(self._states[self._out].value, self.net.output_shape).copy()

    def _step_profiled(self, prime: bool) -> np.ndarray:
        row, j, clock = self.last_stats, 0, time.perf_counter
        for k, op in enumerate(self._ops):
            t0 = clock()
            r = op.step(self.frame_no, prime)
            dt = clock() - t0
            self.node_seconds[k] += dt
            if r is not None:
                self.layer_seconds[j] += dt
                row[:, j] = r
                j += 1
        self.frame_no += 1
        return to_torch_layout(self._states[self._out].value, self.net.output_shape).copy()
        return to_torch_layout(self._states[self._out].value, self.net.output_shape).copy()

    def run(self, frames: Iterable, record: str | None = None, progress: bool | None = None,
            record_chunk: int = 64) -> Result:
        """Process a stream ``[T, *input_shape]`` (array or iterable of frames).

        Parameters
        ----------
        frames : array or iterable of arrays
            Floating point frames; validated (shape, dtype, NaN/Inf) before use.
        record : path, optional
            Write per-frame stats and outputs to this HDF5 file in chunks of
            ``record_chunk`` frames as the run goes (see :mod:`sigmadelta.io.record`).
        progress : bool, optional
            Show a progress bar (default: only on a terminal).
        """
        from .io.record import RunRecorder

        total = len(frames) if hasattr(frames, "__len__") else None
        outs, rows = [], []
        recorder, complete = None, False
        try:
            bar = tqdm(iter_checked(frames, self.net.input_shape), total=total, unit="frame",
                       desc="simulate", disable=None if progress is None else not progress)
            for frame in bar:
                out = self._step(frame)
                outs.append(out)
                rows.append(self.last_stats.copy())
                if record is not None:
                    if recorder is None:
                        recorder = RunRecorder(record, self.net, chunk=record_chunk)
                    recorder.append(self.last_stats, out)
            complete = True
        finally:
            if recorder is not None:
                recorder.close(complete=complete)
        stats = Stats.from_rows(self.net.layer_names, np.stack(rows), self._macs,
                                self._n_neurons, [n.quantizer for n in self.net.weight_layers])
        return Result(np.stack(outs), stats)


def _is_batch(net: Network, frames) -> bool:
    """``frames`` is an array / tensor ``[B, T, *input_shape]`` (several streams)."""
    ndim = getattr(frames, "ndim", None)
    return ndim is not None and ndim == len(net.input_shape) + 2


def simulate(net: Network, frames: Iterable, record: str | None = None,
             progress: bool | None = None, dtype=np.float64,
             workers: int = 2) -> Result | list[Result]:
    """Run a fresh :class:`Simulator` over a stream; see :meth:`Simulator.run`.

    ``frames`` of shape ``[B, T, *input_shape]`` (an array or tensor with one more
    dimension than a stream) are ``B`` independent streams: they run through
    :func:`simulate_batch` on ``workers`` threads and a list of ``B`` Results comes back.

    Examples
    --------
    >>> res = sd.simulate(net, frames)          # frames: [T, *input_shape]
    >>> res.outputs.shape, res.stats.synops.shape
    >>> results = sd.simulate(net, clips)       # clips: [B, T, *input_shape] -> list of B
    """
    if _is_batch(net, frames):
        if record is not None:
            raise ValueError("record= is for one stream; run the streams one by one to record them")
        return simulate_batch(net, list(frames), workers=workers, dtype=dtype)
    return Simulator(net, dtype=dtype).run(frames, record=record, progress=progress)


def simulate_batch(net: Network, sources: Iterable, workers: int = 2,
                   dtype=np.float64) -> list[Result]:
    """Simulate independent streams in parallel; one :class:`Result` per stream, in order.

    Every stream gets its own :class:`Simulator` (its own state), so each result is
    exactly what ``simulate(net, source)`` returns. The streams are spread over
    ``workers`` threads; the Numba kernels release the GIL (``nogil=True``), so the
    threads run on separate cores and only the thin Python frame loop is serialized.

    Parameters
    ----------
    sources : iterable of streams
        Each an array ``[T, *input_shape]`` or an iterable of frames.
    workers : int
        Threads to use (1: run the streams one after the other).
    """
    sources = list(sources)
    if not sources:
        raise ValueError("no streams to simulate")

    def one(src) -> Result:
        return Simulator(net, dtype=dtype).run(src, progress=False)

    if workers <= 1 or len(sources) == 1:
        return [one(src) for src in sources]
    with ThreadPoolExecutor(max_workers=min(int(workers), len(sources))) as pool:
        return list(pool.map(one, sources))
