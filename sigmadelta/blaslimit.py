"""Keep BLAS from oversubscribing the cores while the compiled frame loop runs.

The dense conv path's GEMM is Numba's ``np.dot``, which calls the OpenBLAS behind
``scipy.linalg.cython_blas``. Left alone, OpenBLAS starts a thread per core for every
product, and on a 2-core machine that also runs the frame loop (one thread per stream)
its threads spin against it: small products such as ``(1024x16) @ (16x96)`` then take
up to 100x longer. :func:`blas_limit` holds every loaded BLAS at ``threads`` threads for
the length of a run and sets the counts back afterwards.

The limit is process-wide (OpenBLAS has one thread count), so overlapping runs (the
threads of :func:`sigmadelta.simulate_batch`) share it: the count is set when the first
run enters, to the smallest limit any running run asked for, and restored when the last
leaves. One ``threadpoolctl`` controller is built on first use and kept (building one
scans the loaded libraries: about 0.25 ms; entering and leaving the kept one: about
0.01 ms), so a BLAS loaded after that first use is not limited. ``threadpoolctl`` and
SciPy are imported on first use, not with the package.
"""

from __future__ import annotations

import threading
from contextlib import contextmanager

__all__ = ["blas_limit", "check_blas_threads"]

_LOCK = threading.Lock()
_ACTIVE: dict[int, int] = {}  # limit -> runs holding it now
_STATE: dict = {"libs": None, "saved": [], "threads": None}  # threads: the count set now


def check_blas_threads(threads) -> int | None:
    """``threads`` as an int >= 1, or None (leave BLAS alone); anything else is a ValueError."""
    if threads is None:
        return None
    if isinstance(threads, bool) or not isinstance(threads, int) or threads < 1:
        raise ValueError(f"blas_threads must be a positive int or None (leave BLAS alone), "
                         f"got {threads!r}")
    return threads


def _blas_libs() -> list:
    """The BLAS controllers of the kept ``ThreadpoolController``, built after the BLAS of
    Numba's ``np.dot`` is loaded."""
    if _STATE["libs"] is None:
        import importlib

        from threadpoolctl import ThreadpoolController

        importlib.import_module("scipy.linalg.cython_blas")
        _STATE["libs"] = [c for c in ThreadpoolController().lib_controllers if c.user_api == "blas"]
    return _STATE["libs"]


def _set(lib, threads: int) -> None:
    """Set one BLAS's thread count from any thread. threadpoolctl lets only one Python thread
    change OpenBLAS's (process-wide) count and ignores the others; here the lock and the
    run count arbitrate, so its unchecked setter is used where it has one."""
    getattr(lib, "_real_set_num_threads", lib.set_num_threads)(threads)


def _apply() -> None:
    """Set BLAS to the smallest active limit, or restore the counts found when none is active."""
    target = min(_ACTIVE) if _ACTIVE else None
    if target == _STATE["threads"]:
        return
    libs = _blas_libs()
    if _STATE["threads"] is None:  # the first run enters: note the counts to restore
        _STATE["saved"] = [lib.get_num_threads() for lib in libs]
    for lib, saved in zip(libs, _STATE["saved"], strict=True):
        _set(lib, saved if target is None else target)
    _STATE["threads"] = target


@contextmanager
def blas_limit(threads: int | None):
    """Hold BLAS at ``threads`` threads inside the block (None: leave it alone).

    On leaving, the thread counts found on entry are restored once no other run
    holds a limit.
    """
    if threads is None:
        yield
        return
    with _LOCK:
        _ACTIVE[threads] = _ACTIVE.get(threads, 0) + 1
        try:
            _apply()
        except BaseException:
            _release(threads)
            raise
    try:
        yield
    finally:
        with _LOCK:
            _release(threads)
            _apply()


def _release(threads: int) -> None:
    _ACTIVE[threads] -= 1
    if not _ACTIVE[threads]:
        del _ACTIVE[threads]
