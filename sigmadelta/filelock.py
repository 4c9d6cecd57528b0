"""One writer at a time: an exclusive, non-blocking ``flock`` on a lock file.

Used by a recording's writer (``<recording>.lock``, :mod:`sigmadelta.io.record`) and by a
many-stream run's output directory (``<out>/.lock``, :mod:`sigmadelta.runs`); with ``wait=True``
(block until the holder releases) by the test suite's parallel workers, so that one of them
compiles a shared frame loop into Numba's cache while the others wait to load it; and, waiting,
around every save to Numba's on-disk cache (:func:`lock_numba_cache_saves`).

The kernel drops an ``flock`` when its holder dies, however it dies, so a killed writer
never leaves a stale lock. The lock file is removed on release, while still locked. A
writer that opened the file just before the previous holder removed it would then hold a
lock on a removed file, so after locking we check that the path still names the file we
locked, and start over if not.

On a system without ``fcntl`` (Windows) nothing is locked.
"""

from __future__ import annotations

import os
from collections.abc import Callable

try:
    import fcntl
except ImportError:  # not a POSIX system: nothing is locked there
    fcntl = None

__all__ = ["FileLock", "lock_numba_cache_saves"]


class FileLock:
    """Hold an exclusive ``flock`` on ``lock_path`` until :meth:`release`.

    Parameters
    ----------
    lock_path
        The lock file; created if missing, removed on release.
    busy
        Called with the open descriptor of the contested lock file (to read what its holder
        wrote there) when another process holds the lock; returns the exception to raise.
    payload
        Written into the lock file once held (who holds it), for ``busy`` of later callers.
    purpose
        What the lock is for, in words ("write the recording run.h5"), for the error raised
        when the lock file cannot be created or locked at all.
    wait
        False (default): raise ``busy(fd)`` at once when the lock is held; True: block until
        its holder releases it (``busy`` is then never called).
    """

    def __init__(self, lock_path: str, busy: Callable[[int], BaseException], payload: bytes,
                 purpose: str, wait: bool = False):
        self.lock_path, self.fd = lock_path, None
        if fcntl is None:
            return
        while True:
            fd = self._open(purpose)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX if wait else fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                error = busy(fd)
                os.close(fd)
                raise error from None
            except OSError as e:  # a file system without locks
                os.close(fd)
                raise OSError(e.errno, f"cannot lock {lock_path} to {purpose}: {e.strerror}") from None
            if self._still_named(fd):
                break
            os.close(fd)
        os.ftruncate(fd, 0)
        os.pwrite(fd, payload, 0)
        self.fd = fd

    def _open(self, purpose: str) -> int:
        try:
            return os.open(self.lock_path, os.O_RDWR | os.O_CREAT, 0o644)
        except OSError as e:
            raise type(e)(e.errno, f"cannot {purpose}: {e.strerror} "
                                   f"(creating its lock file {self.lock_path})") from None

    def _still_named(self, fd: int) -> bool:
        try:
            a, b = os.fstat(fd), os.stat(self.lock_path)
        except FileNotFoundError:
            return False
        return (a.st_dev, a.st_ino) == (b.st_dev, b.st_ino)

    def release(self) -> None:
        """Remove the lock file and drop the lock (idempotent)."""
        if self.fd is None:
            return
        try:
            os.unlink(self.lock_path)  # while still locked: see the module docstring
        except FileNotFoundError:
            pass
        os.close(self.fd)
        self.fd = None


def lock_numba_cache_saves() -> None:
    """Make each save to Numba's on-disk cache hold a waiting lock beside the function's index.

    Numba saves a new specialisation by reading the function's index (``<fn>.nbi``), taking
    the first data file number (``<fn>.<n>.nbc``) the index does not name, then writing the
    index and the data file, without a lock. Two processes that save two specialisations of
    one function at once (the float32 and float64 frame loops compiled by two dask workers,
    or two test workers) take the same number: the data file then holds one's code while the
    index names it for both signatures, and a later run loads the wrong code. Holding
    ``<fn>.nbi.lock`` (waiting) across the read and both writes makes the second saver see
    the first's entry. Idempotent; where Numba's internals moved, nothing changes.
    """
    from numba.core import caching

    cls = getattr(caching, "IndexDataCacheFile", None)
    save = getattr(cls, "save", None)
    if save is None or getattr(save, "_sigmadelta_locked", False):
        return

    def locked_save(self, key, data):
        lock = FileLock(self._index_path + ".lock", RuntimeError, b"", "save to Numba's cache",
                        wait=True)
        try:
            save(self, key, data)
        finally:
            lock.release()

    locked_save._sigmadelta_locked, locked_save.__wrapped__ = True, save
    cls.save = locked_save
