"""The engine: runs streams through the event-driven sigma-delta simulation.

:class:`Simulator` builds the operators (:mod:`sigmadelta.ops`), compiles them into
an op table (:mod:`sigmadelta.program`) and feeds frames, chunk by chunk, to the one
frame loop, :func:`sigmadelta.program.run_frames`, which does per frame::

    input   : list the pixels whose value changed since the last frame
    for each node in topological order:
        weight layer : encode the change of its input as spikes (herding or threshold),
                       scatter the spikes into z (sigma), list the outputs that got events
        other nodes  : recompute only the listed (touched) neurons
    output  : the output node's value, back in PyTorch layout

A neuron whose inputs did not change is never visited. On the first frame after
:meth:`Simulator.reset` every neuron is visited once, so that biases and the
first frame's activations are sent (that frame costs about one dense pass).
Validation, chunking, recording and progress stay here, in Python.
"""

from __future__ import annotations

import sys
import threading
from collections.abc import Iterable
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass

import numpy as np
from tqdm.auto import tqdm

from .assemble import build_program, path_flags
from .blaslimit import blas_limit, check_blas_threads
from .fixedpoint import AccumulatorOverflowError, overflow_message, spike_total_message
from .frames import as_array as _as_array
from .frames import check_frames, chunks, is_batch, iter_checked
from .frames import check_one as _check_one
from .graph import Network, check_timing
from .kernels import PATH_NAMES
from .loopcache import cached_flags, compile_seconds, loop_compiled
from .numeric import NumericOverflowError, first_bad_frame, lava_range_message
from .numeric import overflow_message as numeric_message
from .ops import build_ops, pipeline_order, to_torch_layout
from .profiling import run_profiled
from .program import run_frames
from .stages import Stages, check_stages
from .stats import MEASURED, Stats
from .stop import check as check_stop
from .stop import uninterrupted

__all__ = ["Simulator", "simulate", "simulate_batch", "Result", "check_frames", "iter_checked",
           "state_dtype", "SimulatorBusyError"]


class SimulatorBusyError(RuntimeError):
    """A :class:`Simulator` was used from a second thread while it was running."""


_ANNOUNCED: set = set()  # (dtype, *Program.flags) whose compile was checked for in this process


@dataclass
class Result:
    """What a run produced: ``outputs[T, *output_shape]`` and its :class:`Stats`."""

    outputs: np.ndarray
    stats: Stats


STATE_DTYPES = (np.dtype(np.float32), np.dtype(np.float64))


def state_dtype(dtype) -> np.dtype:
    """``dtype`` as float32 or float64, the two state precisions; anything else is refused."""
    try:
        dt = np.dtype(dtype)
    except TypeError:
        dt = None
    if dt is None or dt not in STATE_DTYPES:
        raise TypeError(f"dtype={dtype!r} is not supported: the simulation state is float32 or "
                        f"float64 (float64 by default)")
    return dt


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
        faster but its rounding drift can flip a downstream herding spike). Any
        other dtype is a TypeError.
    profile : bool
        Run the compiled loop one op at a time and accumulate the wall-clock seconds
        spent in every node: ``node_seconds[i]`` (node ``i``) and ``layer_seconds[j]``
        (weight layer ``j``: encode + scatter + output listing), less the cost of a call;
        :attr:`conv_paths` says which path (scatter, dense recompute or gather-GEMM-scatter)
        each frame took.
    chunk : int
        Frames of an array run per call of the compiled loop (:func:`run_frames`).
    timing : {"frame", "pipelined"}
        ``"frame"``: every layer acts on values of the same frame. ``"pipelined"`` (Loihi's,
        what Lava computes for a :func:`sigmadelta.load_netx` network): every weight layer
        sees what its input node held one frame earlier (zeros before the first), so a change
        needs one frame per weight layer to reach the output, and biases act from the first
        frame. The dense reference follows the same timing (``sd.reference(..., timing=)``).
    blas_threads : int or None
        BLAS threads (the dense path's GEMM) during a ``run``/``step`` call, restored after
        (:mod:`sigmadelta.blaslimit`). 1: more would fight the frame loop's one thread per
        stream (small GEMMs up to 100x slower on a busy 2-core VM). None: leave BLAS alone.
    stages : {1, 2}
        2: split the network at a cut node (``cut``, a node name; default: the one that balances
        the estimated work, :func:`sigmadelta.stages.choose_cut`) and run the two parts in two
        threads, the second a frame behind the first (:mod:`sigmadelta.stages`): same outputs,
        counters and errors; after an overflow in the second part, call :meth:`reset`. A network
        without a cut node, or ``profile=True``, is a ValueError.

    A Simulator holds one stream's state and is used by one thread at a time: a call
    from another thread while it runs raises :class:`SimulatorBusyError` (give each
    thread its own Simulator, as :func:`simulate_batch` does). A numeric overflow
    (:class:`~sigmadelta.numeric.NumericOverflowError`) stops it until :meth:`reset`.
    """

    def __init__(self, net: Network, dtype=np.float64, profile: bool = False, chunk: int = 64,
                 timing: str = "frame", blas_threads: int | None = 1, stages: int = 1,
                 cut: str | None = None):
        self.net = net
        self.blas_threads = check_blas_threads(blas_threads)
        self.timing = check_timing(timing)
        self.dtype = state_dtype(dtype)
        self.profile = bool(profile)
        self.chunk = max(1, int(chunk))
        self._call: float | None = None
        self._ops, self._states, self._weight_ops = build_ops(net, self.dtype)
        order = pipeline_order(net) if self.timing == "pipelined" else None
        self._prog = build_program(self._ops, self._states, net.output, self.dtype, order)
        self._flags: tuple | None = None  # run_frames' flags: the program's, or a cached superset
        self._macs = net.dense_macs()
        self._n_neurons = np.array([n.size for n in net.weight_layers], np.int64)
        self._n_in = int(np.prod(net.input_shape))
        self._n_out = self._states[net.output].value.shape[0]
        self._out_buf = np.zeros((0, self._n_out), self.dtype)  # run_frames' output rows
        self._status = np.zeros(2, np.int64)
        self.last_stats = np.zeros((len(MEASURED), len(self._weight_ops)), np.int64)
        self.node_seconds = np.zeros(len(self._ops))
        self.layer_seconds = np.zeros(len(self._weight_ops))
        self._busy, self._broken = threading.Lock(), None
        self._finite = [a for op in self._weight_ops for a in (op.out.value, op.q.memory)]  # numeric
        self._stages = None if check_stages(stages, cut) == 1 else Stages(
            net, self._ops, self._states, self.dtype, self.timing, cut, self.profile)
        self.reset()

    @contextmanager
    def _use(self, resetting: bool = False):
        """Hold the in-use flag for one call (a second thread gets SimulatorBusyError)."""
        if not self._busy.acquire(blocking=False):
            raise SimulatorBusyError(
                "this Simulator is already running in another thread (or this call came from inside "
                "its own run); a Simulator holds the state of one stream: give each thread its own "
                "(sd.simulate_batch does)")
        try:
            if self._broken is not None and not resetting:
                raise RuntimeError(f"this Simulator stopped on an error ({self._broken}); "
                                   f"call reset() to start a new stream")
            yield
        finally:
            self._busy.release()

    def reset(self) -> None:
        """Forget the stream: zero every state; the next frame is sent in full."""
        with self._use(resetting=True):
            self._reset()

    def _reset(self) -> None:
        self._broken = None
        for s in self._states:
            s.value[:] = 0
            s.count[0] = 0
            s.stamp[:] = -1
            if s.row_count is not None:
                s.row_count[0] = 0
        for op in self._weight_ops:
            op.reset()
        self.frame_no = 0
        if self._stages is not None:
            self._stages.reset()

    def encoder_memory(self, layer: int | str) -> np.ndarray:
        """A weight layer's input encoder memory, in PyTorch layout (a copy).

        Herding: the running sum of the spikes sent into the layer, ``round(k * a)`` of
        the last frame (so the spikes of a frame are the change of this across it);
        threshold: the values already sent. ``layer``: index among the weight layers
        or name.
        """
        j = self.net.layer_names.index(layer) if isinstance(layer, str) else int(layer)
        op = self._weight_ops[j]
        shape = self.net.nodes[op.node.inputs[0]].shape
        return np.array(to_torch_layout(op.q.memory, shape))

    def set_conv_path(self, path: str, layer: str | None = None) -> None:
        """Choose how pixel-conv and depthwise conv layers run from the next frame on (all, or
        the one named ``layer``).

        ``"auto"`` (default): per frame, the path a cost model expects to be fastest
        (:func:`sigmadelta.kernels.choose_path`): the event scatter, the dense recompute of the
        whole map (:mod:`sigmadelta.kernels.recompute`) or gather-GEMM-scatter (the events of
        each pixel as one row of a matrix product, :mod:`sigmadelta.kernels.gathergemm`);
        depthwise layers: the scatter or, where many inputs are expected to spike, their dense
        path (:mod:`sigmadelta.kernels.depthwise`; ``"gemm"`` runs their scatter).
        ``"scatter"``, ``"dense"`` or ``"gemm"`` force one. Every path gives the same counters (they
        describe the events, not the path) and the same outputs up to float rounding
        (exactly the same in fixed point and for ``"lava"`` layers, whose dense path adds the
        exact integer conv of their messages). Other conv layers always scatter, and so do
        ``"lava"`` layers whose float64 sums could be inexact there
        (:func:`sigmadelta.kernels.lava_dense_exact`), and ``"lava"`` layers never run
        ``"gemm"`` (all layers: they are left out; such a ``layer`` named: an error).
        The frame loop holds the paths the layers' modes can take (``assemble.path_flags``):
        a mode that needs one it lacks runs a loop with it (compiled once, then cached).
        """
        modes = PATH_NAMES
        if path not in modes:
            raise ValueError(f"path must be one of {sorted(modes)}, got {path!r}")
        names = [op.node.name for op in self._weight_ops]
        if layer is not None and layer not in names:
            raise ValueError(f"no weight layer {layer!r}; the layers are {names}")
        for op in self._weight_ops:
            if op.has_paths and layer in (None, op.node.name):
                if layer is None and op.enc.lava and (path == "gemm" or not getattr(op, "lava_dense", False)):
                    continue
                op.set_path(modes[path])
        paths = path_flags(self._ops)  # the paths the modes now allow: the loop compiled with them
        if paths != self._prog.paths:
            self._prog, self._flags = self._prog._replace(paths=paths), None

    @property
    def conv_paths(self) -> dict[str, dict[str, int]]:
        """Per pixel-conv and depthwise conv layer, the frames it ran by each path since the last
        reset: ``{name: {"scatter": n, "dense": m, "gemm": k}}``."""
        return {op.node.name: dict(zip(("scatter", "dense", "gemm"), op.path_frames, strict=True))
                for op in self._weight_ops if op.has_paths}

    def step(self, frame) -> np.ndarray:
        """Process one frame ``[*input_shape]``; return the output in PyTorch layout.

        The frame's counters are left in ``last_stats`` (rows: events, synops,
        additions, neuron updates; one column per weight layer).
        """
        frame = _as_array(frame)
        _check_one(frame, self.net.input_shape, self.frame_no)
        with self._use(), blas_limit(self.blas_threads):
            outs, _, error = self._run_chunk(frame[None])
        if error is not None:
            raise error
        return outs[0]

    def _announce_compile(self, *args) -> None:
        """Say so before the first call that will compile the frame loop (once per process)."""
        key = (self.dtype, *self._flags)
        if key in _ANNOUNCED:
            return
        _ANNOUNCED.add(key)
        if loop_compiled(*args) is False:
            what = " and ".join(k for k, v in (("float", self._prog.floats),
                                               ("fixed-point", self._prog.fixed)) if v)
            sec = max(5, 5 * round(compile_seconds(self._flags) / 5))  # the loop's flags
            tqdm.write(f"sigmadelta: compiling the event kernels ({what}, {self.dtype}) once: about "
                       f"{sec} s on an idle 2-core machine, minutes on a busy one; cached for "
                       f"later runs", file=sys.stderr)

    def _run_chunk(self, frames: np.ndarray) -> tuple[np.ndarray, np.ndarray, Exception | None]:
        """Run validated frames ``[t, *input_shape]`` through the compiled loop.

        Returns the outputs of the completed frames (PyTorch layout), their counters
        ``[t_done, 4, L]`` and, if a fixed-point accumulator overflowed, the
        :class:`AccumulatorOverflowError` to raise (else None); a numeric overflow
        (:mod:`sigmadelta.numeric`) ends the completed frames before it and gives a
        :class:`NumericOverflowError`.
        """
        if self._stages is not None:
            return self._stages.run_chunk(self, frames)
        x, stats, out, args = self._prepare(frames)
        done = run_profiled(self, x, stats, out) if self.profile else run_frames(*args, *self._flags)
        return self._finish(stats, out, done, len(x), self._finite)

    def _prepare(self, frames: np.ndarray) -> tuple:
        """A chunk's flat frames, counters, output rows and run_frames' arguments (flags chosen)."""
        x = np.ascontiguousarray(frames.reshape(len(frames), self._n_in), dtype=self.dtype)
        t = len(x)
        stats = np.zeros((t, len(MEASURED), len(self._weight_ops)))
        if len(self._out_buf) < t:  # kept across calls, and written once here: the compiled
            self._out_buf = np.empty((t, self._n_out), self.dtype)  # loop never touches fresh pages
            self._out_buf.fill(0)
        out = self._out_buf[:t]
        p = self._prog
        args = (p.code, p.par, p.F, p.I, p.D, x, self.frame_no, 0, len(p.code), stats, out, p.out_slot,
                self._status)
        if self._flags is None:
            self._flags = cached_flags(args, p.flags)
        self._announce_compile(*args, *self._flags)
        return x, stats, out, args

    def _finish(self, stats, out, done: int, t: int, finite: list) -> tuple:
        """Outputs, counters and error of a chunk of ``t`` frames of which ``done`` completed."""
        fixed_stop, error = done < t, None
        bad = first_bad_frame(stats[:done], out[:done], finite, self.net.layer_names, self.dtype)
        if bad is not None:  # before a fixed-point stop, if both
            t_bad, reason, exact = bad
            error = NumericOverflowError(numeric_message(self.frame_no + t_bad, self.frame_no + done - 1,
                                                         reason, self.dtype, exact))
            self._broken, done, fixed_stop = "numeric overflow", t_bad, False
        self.frame_no += done
        if fixed_stop:
            error = self._overflow_error()
        if done:
            self.last_stats[:] = stats[done - 1]
        outs = np.array(to_torch_layout(out[:done], self.net.output_shape), order="C")  # a copy
        return outs, stats[:done], error

    def _overflow_error(self) -> AccumulatorOverflowError | NumericOverflowError:
        """The error of a fixed-point stop: ``status = (row, neuron)``, or ``(row, -2 - input)``
        when an input failed the int64 guard before the layer integrated (nothing wrapped);
        for a float ``"lava"`` layer, where Lava's integers would have wrapped."""
        row, code = (int(v) for v in self._status)
        op = self._ops[self._prog.row_op[row]]
        frame = self.frame_no  # the frame that failed (frame_no counts completed ones)
        if op.lava_prev is not None and not op.fixed:
            self._broken = "numeric overflow"
            if code <= -2:
                i = -2 - code
                v = (float(op.enc.lava_k * op.inp.value[i]), 0.0, 0.0)
            else:
                i = code
                v = tuple(float(a[i]) for a in (op.out.value, op.lava_prev, op.bias_cl))
            return NumericOverflowError(lava_range_message(op.node.name, frame, code <= -2, i, *v,
                                                           op.lava_inc))
        if code <= -2:
            i = -2 - code
            return AccumulatorOverflowError(spike_total_message(op.node, frame, i, float(op.inp.value[i])))
        return AccumulatorOverflowError(overflow_message(op.node, frame, code, int(op.acc[code])))

    def run(self, frames: Iterable, record: str | None = None, progress: bool | None = None,
            record_chunk: int = 64) -> Result:
        """Process a stream ``[T, *input_shape]`` (array or iterable of frames).

        An array goes through the compiled loop in chunks of ``chunk`` frames (one
        Python call per chunk); an iterable (a decoder, a camera) frame by frame, as
        the frames arrive.

        Parameters
        ----------
        frames : array or iterable of arrays
            Floating point frames; validated (shape, dtype, NaN/Inf) before use.
        record : path, optional
            Write per-frame stats and outputs to this HDF5 file in chunks of
            ``record_chunk`` frames as the run goes (see :mod:`sigmadelta.io.record`).
        progress : bool, optional
            Show a progress bar (default: only on a terminal).
        record_chunk : int
            Frames per write of the recording (>= 1; checked before any work).

        The recording is opened once the first frames passed validation and before they
        run; a path another run records to is refused then (``RecordingInUseError``).
        A stream that ends before the frames its ``len()`` announced (a truncated video)
        is recorded with ``source_complete`` 0 beside ``source_frames_expected``.
        """
        with self._use(), blas_limit(self.blas_threads):
            return self._run(frames, record, progress, record_chunk)

    def _run(self, frames: Iterable, record: str | None, progress: bool | None,
             record_chunk: int) -> Result:
        from .io.record import RunRecorder, check_record_chunk

        if record is not None:
            record_chunk = check_record_chunk(record_chunk)
        total = len(frames) if hasattr(frames, "__len__") else None
        outs, rows = [], []
        recorder, complete = None, False
        bar = tqdm(total=total, unit="frame", desc="simulate",
                   disable=None if progress is None else not progress)
        try:
            for chunk in chunks(frames, self.net.input_shape, self.chunk):
                if record is not None and recorder is None:  # the first frames are valid
                    recorder = RunRecorder(record, self.net, record_chunk, frames_expected=total)
                with uninterrupted(raise_after=False):  # a signal inside Numba's dispatch
                    out, st, error = self._run_chunk(chunk)  # on an overflow: the frames before it
                if recorder is not None:
                    for k in range(len(out)):
                        recorder.append(st[k].astype(np.int64), out[k])
                if error is not None:
                    raise error
                outs.append(out)
                rows.append(st)
                bar.update(len(out))
                check_stop()  # a stop request made in the chunk, or dropped by Python, ends it here
            complete = True
        finally:
            bar.close()
            if recorder is not None:
                done = sum(len(o) for o in outs)
                recorder.close(complete=complete, source_complete=None if not complete or total is None
                               else done >= total)
        layers = self.net.weight_layers
        stats = Stats.from_rows(self.net.layer_names, np.concatenate(rows), self._macs,
                                self._n_neurons, [n.quantizer for n in layers],
                                [n.weight.size for n in layers], [n.weight_bits for n in layers],
                                self.net.layer_labels)
        return Result(outs[0] if len(outs) == 1 else np.concatenate(outs), stats)


def simulate(net: Network, frames: Iterable, record: str | None = None,
             progress: bool | None = None, dtype=np.float64,
             workers: int = 2, timing: str = "frame", blas_threads: int | None = 1,
             stages: int = 1) -> Result | list[Result]:
    """Run a fresh :class:`Simulator` over a stream; see :meth:`Simulator.run`.

    ``timing`` (``"frame"``, ``"pipelined"``), ``blas_threads`` (1; None: leave BLAS alone) and
    ``stages`` (2: two threads on one stream; not for several streams): see :class:`Simulator`.

    ``frames`` of shape ``[B, T, *input_shape]`` (an array or tensor with one more
    dimension than a stream) are ``B`` independent streams: they run through
    :func:`simulate_batch` on ``workers`` threads and a list of ``B`` Results comes back.

    Examples
    --------
    >>> res = sd.simulate(net, frames)          # frames: [T, *input_shape]
    >>> res.outputs.shape, res.stats.synops.shape
    >>> results = sd.simulate(net, clips)       # clips: [B, T, *input_shape] -> list of B
    """
    check_timing(timing)
    if is_batch(net, frames):
        if record is not None:
            raise ValueError("record= is for one stream; run the streams one by one to record them")
        if check_stages(stages) != 1:
            raise ValueError("stages=2 is for one stream; several streams already run on `workers` threads")
        return simulate_batch(net, list(frames), workers, dtype, timing, blas_threads)
    sim = Simulator(net, dtype=dtype, timing=timing, blas_threads=blas_threads, stages=stages)
    return sim.run(frames, record=record, progress=progress)


def simulate_batch(net: Network, sources: Iterable, workers: int = 2,
                   dtype=np.float64, timing: str = "frame", blas_threads: int | None = 1) -> list[Result]:
    """Simulate independent streams in parallel; one :class:`Result` per stream, in order.

    Every stream gets its own :class:`Simulator` (its own state), so each result is
    exactly what ``simulate(net, source)`` returns. The streams are spread over
    ``workers`` threads; the compiled frame loop releases the GIL (``nogil=True``) for a
    whole chunk of frames, so the threads run on separate cores (1.7-2.0x with two).

    Parameters
    ----------
    sources : iterable of streams
        Each an array ``[T, *input_shape]`` or an iterable of frames.
    workers : int
        Threads to use (1: run the streams one after the other).
    blas_threads : int or None
        BLAS threads while the streams run (1: one per worker); see :class:`Simulator`.
    """
    sources = list(sources)
    if not sources:
        raise ValueError("no streams to simulate")

    def one(src) -> Result:
        return Simulator(net, dtype=dtype, timing=timing, blas_threads=blas_threads).run(src, progress=False)

    if workers <= 1 or len(sources) == 1:
        return [one(src) for src in sources]
    with ThreadPoolExecutor(max_workers=min(int(workers), len(sources))) as pool:
        return list(pool.map(one, sources))
