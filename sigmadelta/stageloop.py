"""The compiled loops of a two-stage run (:mod:`sigmadelta.stages`), and their handoff.

Stage A and stage B each run their own program (:func:`sigmadelta.program.run_frames`, one
frame per call, compiled into these loops) over the same chunk of frames, at the same time,
in two threads. Per frame ``t`` A saves the cut node's listed state into slot ``t % R`` of a
ring of ``R`` snapshots and publishes ``a_done = t + 1``; B waits for it, writes the snapshot
into its own arrays (before its rows for ``lag`` 0, after them for ``lag`` 1) and publishes
``b_done = t + 1``, which frees the slot for A's frame ``t + R``::

    A: wait b_done > t - R;  run A's rows of frame t;  save(t % R);  a_done = t + 1
    B: [lag 0: wait a_done > t; apply(t % R)];  run B's rows of frame t;
       [lag 1: wait a_done > t; apply(t % R)];  b_done = t + 1

The counters ``sync[SYNC.a_done]``, ``sync[SYNC.b_done]`` are published with release stores
and read with acquire loads (:func:`_load_acquire`, :func:`_store_release`), so that a
snapshot is whole before the other thread reads it. A side that stops (an overflow) raises
its flag ``sync[SYNC.a_stop]`` / ``sync[SYNC.b_stop]``; a waiting side then stops too. A
wait spins with the ``pause`` instruction, then gives the core away (``sched_yield``), then
sleeps (``usleep``): on a busy machine the other side may be off its core for milliseconds.
"""

from __future__ import annotations

import hashlib
import platform
from collections import namedtuple
from pathlib import Path

from llvmlite import ir
from numba import njit, types
from numba.core import cgutils
from numba.extending import intrinsic

from .cachetie import source_digest, tie_cache
from .program import run_frames

__all__ = ["SYNC", "run_stage", "save_cut", "apply_cut", "SPINS", "YIELDS", "NAP_US"]

#: the slots of the shared ``sync`` array (int64)
SYNC = namedtuple("Sync", ["a_done", "b_done", "a_stop", "b_stop"])(0, 1, 2, 3)
SPINS = 500  # pause instructions before a waiting side yields its core (about 10 us on Zen 4)
YIELDS = 200  # sched_yield calls before it sleeps (a wait this long: the other side lost its core)
NAP_US = 20  # microseconds of one such sleep


@intrinsic
def _load_acquire(typingctx, arr, i):
    """``arr[i]`` (int64) as an atomic load with acquire ordering."""
    def codegen(context, builder, sig, args):
        ary = context.make_array(sig.args[0])(context, builder, args[0])
        ptr = cgutils.get_item_pointer(context, builder, sig.args[0], ary, [args[1]])
        return builder.load_atomic(ptr, "acquire", 8)
    return types.int64(arr, i), codegen


@intrinsic
def _store_release(typingctx, arr, i, v):
    """``arr[i] = v`` (int64) as an atomic store with release ordering."""
    def codegen(context, builder, sig, args):
        ary = context.make_array(sig.args[0])(context, builder, args[0])
        ptr = cgutils.get_item_pointer(context, builder, sig.args[0], ary, [args[1]])
        builder.store_atomic(args[2], ptr, "release", 8)
        return context.get_dummy_value()
    return types.none(arr, i, v), codegen


_X86 = platform.machine().lower() in ("x86_64", "amd64", "i386", "i686")


@intrinsic
def _pause(typingctx):
    """The x86 ``pause`` instruction (a spin-wait hint; nothing on other machines)."""
    def codegen(context, builder, sig, args):
        if _X86:
            fn = cgutils.get_or_insert_function(builder.module, ir.FunctionType(ir.VoidType(), []),
                                                "llvm.x86.sse2.pause")
            builder.call(fn, [])
        return context.get_dummy_value()
    return types.none(), codegen


@intrinsic
def _sched_yield(typingctx):
    """libc's ``sched_yield()``: give the core to another thread."""
    def codegen(context, builder, sig, args):
        fn = cgutils.get_or_insert_function(builder.module, ir.FunctionType(ir.IntType(32), []),
                                            "sched_yield")
        builder.call(fn, [])
        return context.get_dummy_value()
    return types.none(), codegen


@intrinsic
def _usleep(typingctx, us):
    """libc's ``usleep(us)``: sleep (a wait that has lasted: the other side is off its core)."""
    def codegen(context, builder, sig, args):
        fn = cgutils.get_or_insert_function(builder.module, ir.FunctionType(ir.IntType(32), [ir.IntType(32)]),
                                            "usleep")
        builder.call(fn, [builder.trunc(args[0], ir.IntType(32))])
        return context.get_dummy_value()
    return types.none(us), codegen


@njit(cache=True, nogil=True)
def _wait(sync, slot, target, stop):
    """Wait until ``sync[slot] >= target`` (True) or the other side's flag ``sync[stop]`` (False):
    :data:`SPINS` pauses, then :data:`YIELDS` yields of the core, then sleeps of :data:`NAP_US`."""
    spins = 0
    while _load_acquire(sync, slot) < target:
        if _load_acquire(sync, stop) != 0:
            return _load_acquire(sync, slot) >= target
        spins += 1
        if spins < SPINS:
            _pause()
        elif spins < SPINS + YIELDS:
            _sched_yield()
        else:
            _usleep(NAP_US)
    return True


@njit(cache=True, nogil=True)
def save_cut(t, value, touched, count, rows, row_count, row_len, sv, st, sc, sr, src):
    """Save the cut node's listed state into snapshot slot ``t``: the neuron list
    ``touched[:count]``, the pixel list ``rows[:row_count]`` (empty arrays where not handed
    over) and the values: of the listed pixels' ``row_len`` channels (``row_len > 0``), of the
    listed neurons (0), or all of them (-1)."""
    n = count[0]
    sc[t] = n
    if st.shape[1] > 0:  # a count may be handed over without its list (a reader of the count only)
        st[t, :n] = touched[:n]
    m = row_count[0]
    src[t] = m
    if sr.shape[1] > 0:
        sr[t, :m] = rows[:m]
    if row_len > 0:
        for i in range(m):
            p = rows[i] * row_len
            sv[t, i * row_len:(i + 1) * row_len] = value[p:p + row_len]
    elif row_len == 0:
        for i in range(n):
            sv[t, i] = value[touched[i]]
    else:
        sv[t, :] = value


@njit(cache=True, nogil=True)
def apply_cut(t, value, touched, count, rows, row_count, row_len, sv, st, sc, sr, src):
    """Write snapshot slot ``t`` into the cut node's arrays (the inverse of :func:`save_cut`)."""
    n = sc[t]
    count[0] = n
    if st.shape[1] > 0:
        touched[:n] = st[t, :n]
    m = src[t]
    row_count[0] = m
    if sr.shape[1] > 0:
        rows[:m] = sr[t, :m]
    if row_len > 0:
        for i in range(m):
            p = rows[i] * row_len
            value[p:p + row_len] = sv[t, i * row_len:(i + 1) * row_len]
    elif row_len == 0:
        for i in range(n):
            value[touched[i]] = sv[t, i]
    else:
        value[:] = sv[t]


@njit(cache=True, nogil=True)
def _give(t, cut, row_len, snap, sync):
    """A's side of the handoff of frame ``t``: wait for its ring slot, save, publish (False:
    B stopped first)."""
    ring = snap[0].shape[0]
    if t >= ring and not _wait(sync, SYNC.b_done, t - ring + 1, SYNC.b_stop):
        return False
    save_cut(t % ring, cut[0], cut[1], cut[2], cut[3], cut[4], row_len, snap[0], snap[1], snap[2],
             snap[3], snap[4])
    _store_release(sync, SYNC.a_done, t + 1)
    return True


@njit(cache=True, nogil=True)
def _take(t, cut, row_len, snap, sync):
    """B's side of the handoff of frame ``t`` (False: A stopped before it)."""
    if not _wait(sync, SYNC.a_done, t + 1, SYNC.a_stop):
        return False
    apply_cut(t % snap[0].shape[0], cut[0], cut[1], cut[2], cut[3], cut[4], row_len, snap[0], snap[1],
              snap[2], snap[3], snap[4])
    return True


@njit(cache=True, nogil=True)
def run_stage(code, par, F, I, D, frames, frame0, lo, stats, out, out_slot, status, cut, row_len,  # noqa: E741
              snap, sync, lag, floats, fixed, pix, conv, dense, pool, merge, resize, lava, gemm, recompute,
              smooth, direct, narrow):
    """One stage over ``frames``, frame by frame through :func:`run_frames` (one function for
    both, so that the frame loop is compiled into one more function, not two).

    ``lag = -1``: stage A, which saves the cut node's state (``cut = (value, touched, count,
    rows, row_count)``) into the ring ``snap`` after each frame; ``lag`` 0 / 1: stage B, which
    applies frame ``t``'s snapshot before / after its rows. Returns the frames whose rows
    completed; on an overflow ``status`` is set as run_frames sets it and the stage's flag
    ``sync[SYNC.a_stop]`` / ``sync[SYNC.b_stop]`` is 2 (1: stopped because the other did,
    or B finished).
    """
    n_rows, stop = code.shape[0], SYNC.a_stop if lag < 0 else SYNC.b_stop
    for t in range(frames.shape[0]):
        if lag == 0 and not _take(t, cut, row_len, snap, sync):
            _store_release(sync, stop, 1)
            return t
        if run_frames(code, par, F, I, D, frames[t:t + 1], frame0 + t, lo, n_rows, stats[t:t + 1],
                      out[t:t + 1], out_slot, status, floats, fixed, pix, conv, dense, pool, merge,
                      resize, lava, gemm, recompute, smooth, direct, narrow) == 0:
            _store_release(sync, stop, 2)
            return t
        if (lag < 0 and not _give(t, cut, row_len, snap, sync)) or (lag == 1 and not _take(t, cut, row_len,
                                                                                             snap, sync)):
            _store_release(sync, stop, 1)
            return t + 1
        if lag >= 0:
            _store_release(sync, SYNC.b_done, t + 1)
    _store_release(sync, stop, 1)
    return frames.shape[0]


def _digest() -> str:
    """:func:`source_digest` and program.py: these loops hold run_frames' compiled code."""
    return source_digest() + hashlib.sha256((Path(__file__).parent / "program.py").read_bytes()).hexdigest()


tie_cache((_wait, save_cut, apply_cut, _give, _take, run_stage), _digest())
