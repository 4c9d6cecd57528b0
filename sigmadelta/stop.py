"""A stop request (SIGTERM, Ctrl-C) that lands between frames, never inside a recording's write.

A Python signal handler runs between any two bytecodes of the main thread. Raising
``KeyboardInterrupt`` straight from it can land inside h5py while a chunk of a recording is
written (the recorder's close then fails on the half-done write: an error exit instead of a
clean stop), or inside a weakref callback or ``__del__``, where Python prints the exception
and drops it (the run then goes on to the end, as if never stopped). So the command line's
handlers call :func:`request` instead:

- outside a write, it raises ``KeyboardInterrupt(reason)`` at once, as before;
- inside :func:`uninterrupted` (a recording's chunk write and close) it only notes the
  request, which is raised when the outermost such block of the main thread ends, or, for
  the recorder's blocks, by the simulator's frame loop once the chunk's frames are recorded;
- inside Numba's dispatch of the compiled frame loop (where a ``KeyboardInterrupt`` came out
  as "can't unbox a typed List": a TypeError, exit status 2), also only noted: the simulator
  runs each chunk uninterrupted and raises the request once the chunk is recorded;
- a request that was raised where Python drops exceptions stays noted, and the simulator's
  frame loop raises it after the chunk it is on (:func:`check`).

Nothing here acts unless :func:`request` was called: a library user who never installs a
handler sees no change. :func:`clear` forgets a request (the command line, once it has
reported the stop).
"""

from __future__ import annotations

import threading
from contextlib import contextmanager

__all__ = ["request", "check", "clear", "uninterrupted", "requested"]

_REASON: list = [None]  # the pending request's message; None: no request
_DEPTH = threading.local()  # per thread: how many uninterrupted() blocks are open


def _depth() -> int:
    return getattr(_DEPTH, "n", 0)


def request(reason: str) -> None:
    """Ask the run to stop: raise ``KeyboardInterrupt(reason)`` now, or, inside an
    :func:`uninterrupted` block of this thread, when that block ends."""
    _REASON[0] = reason
    if _depth() == 0:
        raise KeyboardInterrupt(reason)


def requested() -> str | None:
    """The pending request's message, or None."""
    return _REASON[0]


def check() -> None:
    """Raise ``KeyboardInterrupt`` if a stop was requested (and not cleared); the request is
    then delivered, and forgotten."""
    reason = _REASON[0]
    if reason is not None:
        _REASON[0] = None
        raise KeyboardInterrupt(reason)


def clear() -> None:
    """Forget a pending request."""
    _REASON[0] = None


@contextmanager
def uninterrupted(raise_after: bool = True):
    """A block a stop request never interrupts: a request made inside is raised when the
    outermost block of this thread ends normally (an exception leaving the block wins), or,
    with ``raise_after=False``, left noted for the caller's :func:`check` (the simulator's
    frame loop, after a chunk's compiled run and its recording) or for no one (a recording's
    close: the run has ended)."""
    _DEPTH.n = _depth() + 1
    try:
        yield
    finally:
        _DEPTH.n -= 1
    if raise_after and _depth() == 0:
        check()
