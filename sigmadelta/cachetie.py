"""Tying the on-disk Numba cache of the compiled loop to every file compiled into it.

Numba checks a cached function only against its own source file. The frame loop
(:mod:`sigmadelta.program`) compiles the kernels (other files) into itself and
freezes the column layouts of :mod:`sigmadelta.slots`, :mod:`sigmadelta.weightops`
and :mod:`sigmadelta.ops` in as constants; without this tie, editing one of them
would leave a stale compiled loop behind.

This module imports nothing from the package (a test loads it on its own).
"""

from __future__ import annotations

import hashlib
from pathlib import Path

__all__ = ["COMPILED_IN", "source_digest", "tie_cache"]

#: files (relative to the package) whose code or constants the compiled loop holds
COMPILED_IN = ("kernels/*.py", "slots.py", "weightops.py", "ops.py")


def source_digest(root: Path | None = None) -> str:
    """SHA-256 of the files of ``COMPILED_IN`` (without the tests' NumPy twins)."""
    root, digest = Path(__file__).parent if root is None else Path(root), hashlib.sha256()
    for pattern in COMPILED_IN:
        for f in sorted(root.glob(pattern)):
            if not f.name.startswith("numpy_twins"):  # never compiled in
                digest.update(f.name.encode() + f.read_bytes())
    return digest.hexdigest()


def tie_cache(fns, digest: str) -> None:
    """Make the on-disk Numba cache of ``fns`` stale when ``digest`` changes.

    The digest joins the source stamp that Numba's cache index stores and compares
    on load (``_cache._cache_file._source_stamp``, an internal attribute of the Numba
    versions setup.cfg allows; ``tests/test_program.py`` checks that it is there and
    that a changed digest recompiles). Where the attribute is missing, caching stays
    per file.
    """
    for fn in fns:
        cache_file = getattr(getattr(fn, "_cache", None), "_cache_file", None)
        if cache_file is not None and hasattr(cache_file, "_source_stamp"):
            cache_file._source_stamp = (cache_file._source_stamp, digest)
