"""Two-stage parallel simulation of one stream: ``Simulator(net, stages=2)``.

A feed-forward network is cut at a *cut node*: a node ``c`` (topological index) such
that no node after ``c`` reads a node before it. Stage A runs the nodes ``0..c``, stage B
the rest. B's frame ``t`` needs only what A left in the cut node at frame ``t``
(``lag = 0``; always for ``timing="frame"``) or ``t - 1`` (``lag = 1``: for
``timing="pipelined"`` where B's readers of the cut node run before its writers in the
single-stage order), and A never needs B. So A runs one chunk of frames ahead, in a
thread of its own, while B runs the chunk before (both compiled loops release the
GIL)::

    thread A:  A(chunk k+1): per frame t, run A's rows, save the cut node's listed state
    thread B:  B(chunk k):   per frame t, [lag 0: apply saved t] run B's rows [lag 1: apply t]

The handoff is what B's first layers read of the cut node: its touched neurons
``touched[:count]``, its touched pixels ``rows[:row_count]`` (where it keeps them) and its
values at the listed neurons (a node's value changes only where it lists a neuron, the
invariant the event loop itself relies on). A keeps private copies of every array its rows
share with B's (the cut node's state and any shared scratch); B works on the operators' own
arrays, so the Simulator's state reads (encoder memories, outputs, finiteness) see B's side.
Outputs, counters, recordings and overflow errors are those of the single-stage run.

The cut (default :func:`choose_cut`) balances an estimate of the work per frame:
``cost(node) = dense MACs (weight layers) + 8 * node size`` (the per-neuron work of
encoding, listing and activations), which for PilotNet picks the cut that measured per-op
times also pick (after the second conv's relu).
"""

from __future__ import annotations

import hashlib
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
from numba import njit

from . import graph as g
from .assemble import build_program
from .cachetie import source_digest, tie_cache
from .ops import pipeline_order
from .program import run_frames

__all__ = ["cut_nodes", "choose_cut", "Stages", "NEURON_COST", "check_stages"]

NEURON_COST = 8  # the cost model's work per neuron of a node, in MAC units


def check_stages(stages) -> int:
    """``stages`` as 1 or 2; anything else is a ValueError."""
    if isinstance(stages, bool) or not isinstance(stages, (int, np.integer)) or int(stages) not in (1, 2):
        raise ValueError(f"stages must be 1 (one thread) or 2 (two threads, split at a cut node), "
                         f"got {stages!r}")
    return int(stages)


def _writers(net: g.Network, c: int) -> set[int]:
    """The nodes that write the cut node's arrays: it and the sources whose lists it shares."""
    out = {c}
    while isinstance(net.nodes[c], g.Activation):
        c = net.nodes[c].inputs[0]
        out.add(c)
    return out


def cut_nodes(net: g.Network, timing: str = "frame") -> dict[int, int]:
    """Every cut node of ``net`` as ``{node index: lag}`` (see the module docstring)."""
    n = len(net.nodes)
    order = pipeline_order(net) if timing == "pipelined" else list(range(n))
    pos = {k: i for i, k in enumerate(order)}
    cuts = {}
    for c in range(n - 1):
        if net.output <= c or any(u < c for j in range(c + 1, n) for u in net.nodes[j].inputs):
            continue
        readers = [j for j in range(c + 1, n) if c in net.nodes[j].inputs]
        writers = [pos[w] for w in _writers(net, c)]
        if not readers:
            continue
        if all(pos[r] > max(writers) for r in readers):
            cuts[c] = 0
        elif all(pos[r] < min(writers) for r in readers):
            cuts[c] = 1
    return cuts


def choose_cut(net: g.Network, timing: str = "frame", cut: str | None = None) -> tuple[int, int]:
    """``(node index, lag)`` of the cut: the named node ``cut``, or the one that balances
    ``cost`` (module docstring) between the stages. A ValueError says why there is none."""
    cuts = cut_nodes(net, timing)
    names = [net.nodes[c].name for c in cuts]
    if cut is not None:
        idx = [i for i, node in enumerate(net.nodes) if node.name == cut]
        if not idx or idx[0] not in cuts:
            raise ValueError(f"stages=2: {cut!r} is not a cut node of this network (a node through "
                             f"which every path passes, before the output); the cut nodes are {names}")
        return idx[0], cuts[idx[0]]
    if not cuts:
        raise ValueError("stages=2 needs a cut node (a node before the output through which every "
                         "path from the input passes, e.g. between two layers of a chain); this "
                         "network has none: use stages=1")
    macs = iter(net.dense_macs())
    cost = np.array([(next(macs) if isinstance(node, g.WEIGHT_KINDS) else 0) + NEURON_COST * node.size
                     for node in net.nodes], float)
    total = np.cumsum(cost)
    best = min(cuts, key=lambda c: (max(total[c], total[-1] - total[c]), c))
    return best, cuts[best]


@njit(cache=True)
def _addresses(lst):
    """``[slot, (data address, bytes)]`` of a typed list of arrays."""
    out = np.zeros((len(lst), 2), np.int64)
    for i in range(len(lst)):
        out[i, 0] = lst[i].ctypes.data
        out[i, 1] = lst[i].size * lst[i].itemsize
    return out


@njit(cache=True)
def _get(lst, i):
    return lst[i]


@njit(cache=True)
def _set(lst, i, a):
    lst[i] = a


@njit(cache=True, nogil=True)
def _save(t, value, touched, count, rows, row_count, row_len, sv, st, sc, sr, src):
    """Save the cut node's listed state of frame ``t``: counts, lists, listed values."""
    n = count[0]
    sc[t] = n
    st[t, :n] = touched[:n]
    if row_len > 0:
        m = row_count[0]
        src[t] = m
        sr[t, :m] = rows[:m]
        for i in range(m):
            p = rows[i] * row_len
            sv[t, i * row_len:(i + 1) * row_len] = value[p:p + row_len]
    else:
        for i in range(n):
            sv[t, i] = value[touched[i]]


@njit(cache=True, nogil=True)
def _apply(t, value, touched, count, rows, row_count, row_len, sv, st, sc, sr, src):
    """Write frame ``t``'s saved cut-node state into B's arrays (the inverse of :func:`_save`)."""
    n = sc[t]
    count[0] = n
    touched[:n] = st[t, :n]
    if row_len > 0:
        m = src[t]
        row_count[0] = m
        rows[:m] = sr[t, :m]
        for i in range(m):
            p = rows[i] * row_len
            value[p:p + row_len] = sv[t, i * row_len:(i + 1) * row_len]
    else:
        for i in range(n):
            value[touched[i]] = sv[t, i]


@njit(cache=True, nogil=True)
def run_stage_a(code, par, F, I, D, frames, frame0, lo, stats, out, out_slot, status, cut, row_len, snap,  # noqa: E741
                floats, fixed, pix, conv, dense, pool, merge, resize, lava, gemm, recompute, smooth):
    """Stage A over ``frames``: each frame through :func:`run_frames`, then the cut node's state
    (``cut = (value, touched, count, rows, row_count)``) saved into ``snap`` at row ``t``.
    Returns the frames completed (fewer on an overflow, ``status`` set as run_frames does)."""
    n_rows = code.shape[0]
    for t in range(frames.shape[0]):
        if run_frames(code, par, F, I, D, frames[t:t + 1], frame0 + t, lo, n_rows, stats[t:t + 1],
                      out[t:t + 1], out_slot, status, floats, fixed, pix, conv, dense, pool, merge, resize,
                      lava, gemm, recompute, smooth) == 0:
            return t
        _save(t, cut[0], cut[1], cut[2], cut[3], cut[4], row_len, snap[0], snap[1], snap[2], snap[3],
              snap[4])
    return frames.shape[0]


@njit(cache=True, nogil=True)
def run_stage_b(code, par, F, I, D, frames, frame0, lo, stats, out, out_slot, status, cut, row_len,  # noqa: E741
                snap, lag, floats, fixed, pix, conv, dense, pool, merge, resize, lava, gemm, recompute,
                smooth):
    """Stage B over ``frames``: frame ``t``'s saved cut state applied before (``lag`` 0) or after
    (``lag`` 1) its rows; ``out[t]`` the output. Returns the frames completed."""
    n_rows = code.shape[0]
    for t in range(frames.shape[0]):
        if lag == 0:
            _apply(t, cut[0], cut[1], cut[2], cut[3], cut[4], row_len, snap[0], snap[1], snap[2],
                   snap[3], snap[4])
        if run_frames(code, par, F, I, D, frames[t:t + 1], frame0 + t, lo, n_rows, stats[t:t + 1],
                      out[t:t + 1], out_slot, status, floats, fixed, pix, conv, dense, pool, merge,
                      resize, lava, gemm, recompute, smooth) == 0:
            return t
        if lag == 1:
            _apply(t, cut[0], cut[1], cut[2], cut[3], cut[4], row_len, snap[0], snap[1], snap[2],
                   snap[3], snap[4])
    return frames.shape[0]


def _key(addr: np.ndarray) -> tuple[int, int]:
    return int(addr[0]), int(addr[1])


def _where(a: np.ndarray) -> tuple[int, int]:
    """An array's memory as ``(address, bytes)`` (the lists hold views of the operators' arrays)."""
    return a.__array_interface__["data"][0], a.nbytes


class Stages:
    """The two stage programs of a :class:`~sigmadelta.engine.Simulator` and their handoff.

    ``ops, states``: the Simulator's operators (:func:`sigmadelta.ops.build_ops`); ``cut``: a
    node name or None (:func:`choose_cut`). :meth:`results` runs chunks of frames.
    """

    def __init__(self, net: g.Network, ops: list, states: list, dtype, timing: str, cut: str | None,
                 profile: bool = False):
        if profile:
            raise ValueError("profile=True runs the network op by op in one thread: use stages=1")
        self.node, self.lag = choose_cut(net, timing, cut)
        order = pipeline_order(net) if timing == "pipelined" else list(range(len(net.nodes)))
        self.a = build_program(ops, states, net.output, dtype, [k for k in order if k <= self.node])
        self.b = build_program(ops, states, net.output, dtype, [k for k in order if k > self.node])
        self._private = self._privatise()  # (A's list, slot, original, copy)
        s = states[self.node]
        self.row_len = int(s.row_len)
        empty = np.zeros(0, np.int64)
        self._b_cut = (s.value, s.touched, s.count, s.rows if self.row_len else empty,
                       s.row_count if self.row_len else np.zeros(1, np.int64))
        own = {_where(orig): copy for _, _, orig, copy in self._private}
        self._a_cut = tuple(own.get(_where(a), a) for a in self._b_cut)
        self._a_finite = [own.get(_where(a), a) for op in ops[:self.node + 1] if hasattr(op, "q")
                          for a in (op.out.value, op.q.memory)]
        self._b_finite = [a for op in ops[self.node + 1:] if hasattr(op, "q")
                          for a in (op.out.value, op.q.memory)]
        self._snaps: list = []

    def _privatise(self) -> list:
        """Give A a copy of every array its lists share with B's (same address and size)."""
        shared = {_key(r) for lst in (self.b.F, self.b.I, self.b.D) for r in _addresses(lst) if r[1] > 0}
        copies, out = {}, []
        for lst in (self.a.F, self.a.I, self.a.D):
            for slot, r in enumerate(_addresses(lst)):
                if r[1] > 0 and _key(r) in shared:
                    orig = _get(lst, slot)
                    if _key(r) not in copies:
                        copies[_key(r)] = (orig, orig.copy())
                    orig0, copy = copies[_key(r)]
                    _set(lst, slot, copy)
                    out.append((lst, slot, orig0, copy))
        return out

    def reset(self) -> None:
        """After the Simulator's reset: A's copies take the reset state."""
        for _, _, orig, copy in self._private:
            copy[:] = orig

    def _snap(self, k: int, t: int, dtype) -> tuple:
        """Snapshot buffer ``k % 2`` for chunks of ``t`` frames (kept across chunks)."""
        while len(self._snaps) < 2:
            self._snaps.append(None)
        s = self._snaps[k % 2]
        if s is None or len(s[0]) < t:
            v, rows = self._b_cut[0], self._b_cut[3]
            s = (np.zeros((t, len(v)), dtype), np.zeros((t, len(v)), np.int64), np.zeros(t, np.int64),
                 np.zeros((t, max(len(rows), 1)), np.int64), np.zeros(t, np.int64))
            self._snaps[k % 2] = s
        return s

    def run_a(self, x, frame0, stats, out, status, snap, flags) -> tuple[int, bool]:
        """Stage A over a chunk: frames completed, and whether A's state is finite after it."""
        p = self.a
        done = run_stage_a(p.code, p.par, p.F, p.I, p.D, x, frame0, 0, stats, out, -1, status, self._a_cut,
                           self.row_len, snap, *flags)
        return done, all(np.isfinite(a).all() for a in self._a_finite)

    def run_b(self, x, frame0, stats, out, status, snap, flags, limit) -> int:
        """Stage B over the first ``limit`` frames of a chunk; frames completed."""
        p = self.b
        return run_stage_b(p.code, p.par, p.F, p.I, p.D, x[:limit], frame0, 0, stats, out, p.out_slot,
                           status, self._b_cut, self.row_len, snap, self.lag, *flags)

    def a_failed(self) -> None:
        """After A stopped inside a frame: B's view of the cut node is A's (as one program has it)."""
        for b, a in zip(self._b_cut, self._a_cut, strict=True):
            if a is not b:
                b[:] = a

    def run_now(self, sim, frames):
        """One chunk, A then B in this thread (``Simulator.step``)."""
        job = self._job(sim, frames, 0, sim.frame_no)
        self._a_job(sim, job)
        return self._finish(sim, job)

    def _job(self, sim, frames, k: int, frame0: int) -> dict:
        """A chunk's arrays (``Simulator._prepare``) and its snapshot buffer and statuses."""
        x, stats, out, _ = sim._prepare(frames)
        return {"x": x, "stats": stats, "out": out, "frame0": frame0, "snap": self._snap(k, len(x), x.dtype),
                "status_a": np.zeros(2, np.int64), "status_b": np.zeros(2, np.int64)}

    def _finish(self, sim, job) -> tuple:
        """Stage B over the chunk (up to where A stopped), then ``Simulator._finish``."""
        t, a_done = len(job["x"]), job["a_done"]
        limit = min(t, a_done + self.lag)  # lag 1: B's frame a reads A's frame a-1, as one program does
        b_done = self.run_b(job["x"], job["frame0"], job["stats"], job["out"], job["status_b"], job["snap"],
                            sim._flags, limit)
        done = t
        if b_done < limit:  # B stopped first; A ran ahead, so the state is not one program's
            done, prog, status = b_done, self.b, job["status_b"]
            sim._broken = "an overflow in stage B while stage A ran ahead"
        elif a_done < t:
            done, prog, status = a_done, self.a, job["status_a"]
            self.a_failed()
        if done < t:
            op = prog.row_op[status[0]]
            sim._status[:] = (int(np.flatnonzero(sim._prog.row_op == op)[0]), status[1])
        finite = self._b_finite + ([] if job["a_finite"] else [np.array([np.nan])])
        return sim._finish(job["stats"], job["out"], done, t, finite)

    def results(self, sim, chunks, before):
        """``(outputs, counters, error)`` per chunk of ``chunks`` (as ``Simulator._run_chunk``),
        A one chunk ahead in a thread of its own; ``before()`` is called before the first runs."""
        it = iter(chunks)
        cur = next(it, None)
        if cur is None:
            return
        before()
        pool, k, fut = ThreadPoolExecutor(max_workers=1, thread_name_prefix="sigmadelta-stage-a"), 0, None
        try:
            job = self._job(sim, cur, k, sim.frame_no)
            fut = pool.submit(self._a_job, sim, job)
            while job is not None:
                nxt_frames = next(it, None)
                fut.result()
                nxt = None
                if nxt_frames is not None and job["a_done"] == len(job["x"]):
                    k += 1
                    nxt = self._job(sim, nxt_frames, k, job["frame0"] + len(job["x"]))
                    fut = pool.submit(self._a_job, sim, nxt)
                result = self._finish(sim, job)
                yield result
                if result[2] is not None:
                    return
                job = nxt
        finally:
            pool.shutdown(wait=True)  # A's chunk under way (if any) ends first

    def _a_job(self, sim, job) -> None:
        job["a_done"], job["a_finite"] = self.run_a(job["x"], job["frame0"], job["stats"], job["out"],
                                                    job["status_a"], job["snap"], sim._flags)


def _digest() -> str:
    """:func:`source_digest` and program.py: the stage loops hold run_frames' compiled code."""
    return source_digest() + hashlib.sha256((Path(__file__).parent / "program.py").read_bytes()).hexdigest()


tie_cache((_save, _apply, run_stage_a, run_stage_b), _digest())
