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
