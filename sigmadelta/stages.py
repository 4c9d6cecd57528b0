"""Two-stage parallel simulation of one stream: ``Simulator(net, stages=2)``.

A feed-forward network is cut at a *cut node*: a node ``c`` (topological index) such
that no node after ``c`` reads a node before it. Stage A runs the nodes ``0..c``, stage B
the rest. B's frame ``t`` needs only what A left in the cut node at frame ``t``
(``lag = 0``; always for ``timing="frame"``) or ``t - 1`` (``lag = 1``: for
``timing="pipelined"`` where B's readers of the cut node run before its writers in the
single-stage order), and A never needs B. So each chunk of frames runs in two threads at
once (both compiled loops release the GIL): A in a worker thread, B in the calling one,
one frame behind A (:mod:`sigmadelta.stageloop`: a ring of snapshots, :data:`RING_BYTES`, handed
over frame by frame)::

    thread A:  per frame t: run A's rows, save the cut node's listed state, publish t
    thread B:  per frame t: [lag 0: wait for t, apply it] run B's rows [lag 1: wait, apply t]

Wall time per frame -> max(A, B) plus the handoff; the pipeline fills and drains once per
chunk (one frame). A single frame (``step``, or a stream given as an iterable, which runs
frame by frame as the frames arrive) runs A then B in the calling thread: no gain there.

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

import sys
from concurrent.futures import ThreadPoolExecutor

import numpy as np
from numba import njit
from tqdm.auto import tqdm

from . import graph as g
from .assemble import build_program
from .ops import pipeline_order
from .stageloop import SYNC, run_stage

__all__ = ["cut_nodes", "choose_cut", "Stages", "NEURON_COST", "check_stages"]

RING_BYTES = 8 << 20  # the snapshot ring's size: A runs up to 4-64 frames ahead of B (RING_FRAMES)
RING_FRAMES = (4, 64)
_ANNOUNCED: set = set()  # run_stage signatures whose compile was checked for in this process
NEURON_COST = 8  # the cost model's work per neuron of a node, in MAC units


def check_stages(stages, cut: str | None = None) -> int:
    """``stages`` as 1 or 2; anything else, or a ``cut`` with one stage, is a ValueError."""
    if isinstance(stages, bool) or not isinstance(stages, (int, np.integer)) or int(stages) not in (1, 2):
        raise ValueError(f"stages must be 1 (one thread) or 2 (two threads, split at a cut node), "
                         f"got {stages!r}")
    if cut is not None and int(stages) == 1:
        raise ValueError(f"cut={cut!r} names where stages=2 splits the network; with stages=1 leave it out")
    return int(stages)


def _list_roots(net: g.Network) -> list[int]:
    """Per node, the node whose touched lists it uses (an activation shares its input's)."""
    root: list[int] = []
    for j, node in enumerate(net.nodes):
        root.append(root[node.inputs[0]] if isinstance(node, g.Activation) else j)
    return root


def cut_nodes(net: g.Network, timing: str = "frame") -> dict[int, int]:
    """Every cut node of ``net`` as ``{node index: lag}`` (see the module docstring).

    The cut node's lists are shared by the activations on them: B's readers are the nodes after
    the cut that use those lists or read a node that does, A's writers the nodes up to the cut
    that use them. ``lag`` 0 where every reader runs after every writer in the single-stage
    order, 1 where before; a node where neither holds (pipelined only) is no cut.
    """
    n, root = len(net.nodes), _list_roots(net)
    order = pipeline_order(net) if timing == "pipelined" else list(range(n))
    pos = {k: i for i, k in enumerate(order)}
    cuts = {}
    for c in range(n - 1):
        if net.output <= c or any(u < c for j in range(c + 1, n) for u in net.nodes[j].inputs):
            continue
        group = {j for j in range(n) if root[j] == root[c]}
        writers = [pos[j] for j in group if j <= c]
        readers = [pos[j] for j in range(c + 1, n) if j in group or group & set(net.nodes[j].inputs)]
        if not readers:
            continue
        if min(readers) > max(writers):
            cuts[c] = 0
        elif max(readers) < min(writers):
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


def _key(addr: np.ndarray) -> tuple[int, int]:
    return int(addr[0]), int(addr[1])


def _where(a: np.ndarray) -> tuple[int, int]:
    """An array's memory as ``(address, bytes)`` (the lists hold views of the operators' arrays)."""
    return a.__array_interface__["data"][0], a.nbytes


def _handoff(s, own: dict) -> tuple[tuple, tuple, int]:
    """A's and B's arrays of the cut node state ``s`` (value, touched, count, rows, row_count)
    and the copy mode of :func:`sigmadelta.stageloop.save_cut`.

    Only what both programs use is handed over (``own``: A's copies by the original's
    address): an array only A uses is A's alone (B must not write it), one only B uses is
    B's. The values go by the pixel list where it is handed over, else by the neuron list,
    else whole (mode ``row_len``, 0, -1).
    """
    rows, row_count = (s.rows, s.row_count) if s.row_len else (None, None)
    a_cut, b_cut, shared = [], [], []
    for orig, blank in ((s.value, np.zeros(0, s.value.dtype)), (s.touched, np.zeros(0, np.int64)),
                        (s.count, np.zeros(1, np.int64)), (rows, np.zeros(0, np.int64)),
                        (row_count, np.zeros(1, np.int64))):
        shared.append(orig is not None and _where(orig) in own)
        a_cut.append(own[_where(orig)] if shared[-1] else blank)
        b_cut.append(orig if shared[-1] else blank.copy())
    mode = int(s.row_len) if shared[3] and shared[4] else (0 if shared[1] and shared[2] else -1)
    return tuple(a_cut), tuple(b_cut), mode


class Stages:
    """The two stage programs of a :class:`~sigmadelta.engine.Simulator` and their handoff.

    ``ops, states``: the Simulator's operators (:func:`sigmadelta.ops.build_ops`); ``cut``: a
    node name or None (:func:`choose_cut`). :meth:`run_chunk` runs a chunk of frames.
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
        own = {_where(orig): copy for _, _, orig, copy in self._private}
        self._a_cut, self._b_cut, self.mode = _handoff(s, own)
        self._a_finite = [own.get(_where(a), a) for op in ops[:self.node + 1] if hasattr(op, "q")
                          for a in (op.out.value, op.q.memory)]
        self._b_finite = [a for op in ops[self.node + 1:] if hasattr(op, "q")
                          for a in (op.out.value, op.q.memory)]
        self._snaps: tuple | None = None
        self._pool: ThreadPoolExecutor | None = None
        self._checked: set = set()  # loop flags whose compile was announced (_announce)

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

    def _ring(self, dtype) -> tuple:
        """The ring of snapshots of the cut node (made once): as many as fit :data:`RING_BYTES`,
        within :data:`RING_FRAMES` (a larger ring lets A run further ahead where B is held up,
        e.g. by another process on the core)."""
        if self._snaps is None:
            v, touched, rows = self._b_cut[0], self._b_cut[1], self._b_cut[3]
            ring = RING_BYTES // (v.nbytes + touched.nbytes + rows.nbytes + 16)
            ring = int(min(max(ring, RING_FRAMES[0]), RING_FRAMES[1]))
            self._snaps = (np.zeros((ring, len(v)), dtype), np.zeros((ring, len(touched)), np.int64),
                           np.zeros(ring, np.int64), np.zeros((ring, max(len(rows), 1)), np.int64),
                           np.zeros(ring, np.int64))
        return self._snaps

    def _announce(self, args: tuple) -> None:
        """Say so before the first call that compiles :func:`run_stage` (once per process and
        specialisation): it holds the frame loop's code, about half its compile time."""
        try:
            sig = tuple(run_stage.typeof_pyval(a) for a in args)
            if sig in _ANNOUNCED or sig in run_stage.overloads:
                return
            _ANNOUNCED.add(sig)
            key = run_stage._cache._index_key(sig, run_stage.targetctx.codegen())
            if key in run_stage._cache._cache_file._load_index():
                return
        except Exception:  # an internal attribute of Numba's moved: say nothing
            return
        tqdm.write("sigmadelta: compiling the two-stage loop (stages=2) once: 10-20 s on an idle "
                   "2-core machine, more on a busy one; cached for later runs", file=sys.stderr)

    def _run_a(self, x, frame0, stats, out, status, sync, flags) -> tuple[int, bool]:
        """Stage A over a chunk: frames completed, and whether A's state is finite after it."""
        p = self.a
        if flags not in self._checked:  # before the first call with these flags compiles
            self._checked.add(flags)
            self._announce((p.code, p.par, p.F, p.I, p.D, x, frame0, 0, stats, out, -1, status,
                            self._a_cut, self.mode, self._ring(x.dtype), sync, -1, *flags))
        try:
            done = run_stage(p.code, p.par, p.F, p.I, p.D, x, frame0, 0, stats, out, -1, status,
                             self._a_cut, self.mode, self._ring(x.dtype), sync, -1, *flags)
        finally:
            sync[SYNC.a_stop] = max(sync[SYNC.a_stop], 1)  # on an exception too: B stops waiting
        return done, all(np.isfinite(a).all() for a in self._a_finite)

    def _run_b(self, x, frame0, stats, out, status, sync, flags) -> int:
        """Stage B over a chunk, as A's frames arrive; frames whose rows completed."""
        p = self.b
        try:
            return run_stage(p.code, p.par, p.F, p.I, p.D, x, frame0, 0, stats, out, p.out_slot,
                             status, self._b_cut, self.mode, self._ring(x.dtype), sync, self.lag,
                             *flags)
        finally:
            sync[SYNC.b_stop] = max(sync[SYNC.b_stop], 1)  # on an exception too: A stops waiting

    def a_failed(self) -> None:
        """After A stopped inside a frame: B's view of the cut node is A's (as one program has it)."""
        for b, a in zip(self._b_cut, self._a_cut, strict=True):
            b[:] = a

    def run_chunk(self, sim, frames) -> tuple:
        """One chunk: A in a worker thread, B in this one, frame by frame (one frame: A then B
        here); the outputs, counters and error of ``Simulator._run_chunk``."""
        x, stats, out, _ = sim._prepare(frames)
        self._ring(x.dtype)  # here, before the threads share it
        t, flags, sync = len(x), sim._flags, np.zeros(len(SYNC), np.int64)
        status_a, status_b = np.zeros(2, np.int64), np.zeros(2, np.int64)
        if t == 1:
            a_done, a_finite = self._run_a(x, sim.frame_no, stats, out, status_a, sync, flags)
            b_done = self._run_b(x, sim.frame_no, stats, out, status_b, sync, flags)
        else:
            if self._pool is None:
                self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="sigmadelta-stage-a")
            fut = self._pool.submit(self._run_a, x, sim.frame_no, stats, out, status_a, sync, flags)
            try:
                b_done = self._run_b(x, sim.frame_no, stats, out, status_b, sync, flags)
            finally:
                a_done, a_finite = fut.result()
        done = t
        if sync[SYNC.b_stop] == 2:  # B's own overflow; A ran ahead, so the state is not one program's
            done, prog, status = b_done, self.b, status_b
            sim._broken = "an overflow in stage B while stage A ran ahead"
        elif a_done < t:
            done, prog, status = a_done, self.a, status_a
            self.a_failed()
        if done < t:
            op = prog.row_op[status[0]]
            sim._status[:] = (int(np.flatnonzero(sim._prog.row_op == op)[0]), status[1])
        finite = self._b_finite + ([] if a_finite else [np.array([np.nan])])
        return sim._finish(stats, out, done, t, finite)
