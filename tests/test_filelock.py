"""The shared writer lock (sigmadelta.filelock): one holder, a clear refusal, no stale file."""

import os

import pytest

from sigmadelta.filelock import FileLock, fcntl

pytestmark = pytest.mark.skipif(fcntl is None, reason="no flock on this system")


class Busy(Exception):
    pass


def _busy(fd):
    return Busy(os.pread(fd, 64, 0).decode())


def test_second_holder_is_refused_with_what_the_first_wrote(tmp_path):
    path = str(tmp_path / "x.lock")
    first = FileLock(path, _busy, b"holder 1", "test")
    with pytest.raises(Busy, match="holder 1"):
        FileLock(path, _busy, b"holder 2", "test")
    first.release()
    assert not os.path.exists(path)
    second = FileLock(path, _busy, b"holder 2", "test")  # free again after release
    with open(path, "rb") as f:
        assert f.read() == b"holder 2"
    second.release()
    second.release()  # idempotent


def test_unwritable_place_names_the_purpose_and_the_file(tmp_path):
    path = str(tmp_path / "missing" / "x.lock")
    with pytest.raises(FileNotFoundError, match=r"cannot write the thing: .*missing/x\.lock"):
        FileLock(path, _busy, b"", "write the thing")


def test_a_waiting_holder_gets_the_lock_when_the_first_releases_it(tmp_path):
    import threading

    path = str(tmp_path / "x.lock")
    first = FileLock(path, _busy, b"holder 1", "test")
    got = []
    waiter = threading.Thread(
        target=lambda: got.append(FileLock(path, _busy, b"holder 2", "test", wait=True)))
    waiter.start()
    waiter.join(0.3)
    assert waiter.is_alive() and not got  # blocked, not refused
    first.release()
    waiter.join(30)
    assert got and got[0].fd is not None
    with open(path, "rb") as f:
        assert f.read() == b"holder 2"
    got[0].release()
    assert not os.path.exists(path)


def _race_two_saves(tmp_path, monkeypatch):
    """Two threads save two keys of one function into an empty Numba cache at once (the
    index read held open 0.2 s, so that both read it before either writes); returns what
    each key then loads."""
    import threading
    import time

    from numba.core import caching

    load_index = caching.IndexDataCacheFile._load_index

    def slow_load_index(self):
        out = load_index(self)
        time.sleep(0.2)
        return out

    monkeypatch.setattr(caching.IndexDataCacheFile, "_load_index", slow_load_index)
    cache = caching.IndexDataCacheFile(str(tmp_path), "fn-1", "stamp")
    threads = [threading.Thread(target=cache.save, args=(key, f"code for {key}"))
               for key in ("float32", "float64")]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return {key: cache.load(key) for key in ("float32", "float64")}


def test_numba_cache_saves_at_once_keep_both_entries(tmp_path, monkeypatch):
    from numba.core import caching

    import sigmadelta.program  # noqa: F401  (installs the lock, as any simulation does)

    assert getattr(caching.IndexDataCacheFile.save, "_sigmadelta_locked", False)
    assert _race_two_saves(tmp_path, monkeypatch) == {"float32": "code for float32",
                                                      "float64": "code for float64"}


def test_numba_cache_saves_race_without_the_lock(tmp_path, monkeypatch):
    """The race the lock prevents is real in this Numba: unlocked, one key is lost or
    loads the other's code (so the test above can fail)."""
    from numba.core import caching

    import sigmadelta.program  # noqa: F401

    monkeypatch.setattr(caching.IndexDataCacheFile, "save", caching.IndexDataCacheFile.save.__wrapped__)
    assert _race_two_saves(tmp_path, monkeypatch) != {"float32": "code for float32",
                                                      "float64": "code for float64"}
