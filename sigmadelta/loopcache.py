"""Which compiled frame loops exist: :func:`sigmadelta.program.run_frames`' specialisations
in this process or in Numba's on-disk cache (the engine's first-run notice and its choice of
flags, so that a network whose paths an existing loop covers compiles nothing).
"""

from __future__ import annotations

from .program import run_frames

__all__ = ["loop_compiled", "cached_flags"]


def loop_compiled(*args) -> bool | None:
    """Whether :func:`run_frames` called with ``args`` runs without compiling first.

    True when that specialisation is already compiled in this process or stored in
    Numba's on-disk cache (and fresh: the cache index carries the kernels' digest, see
    ``tie_cache``); False when the call will compile; None if Numba's cache internals
    could not be read.
    """
    try:
        sig = tuple(run_frames.typeof_pyval(a) for a in args)
        if sig in run_frames.overloads:
            return True
        cache = run_frames._cache
        key = cache._index_key(sig, run_frames.targetctx.codegen())
        return key in cache._cache_file._load_index()
    except Exception:  # an internal attribute moved: say nothing rather than guess
        return None


def cached_flags(args: tuple, flags: tuple) -> tuple:
    """The flags to run a program with: ``flags`` (:attr:`Program.flags`), or, if a loop with
    more of them set (weight paths or kind groups) is already compiled, in this process or in
    Numba's on-disk cache, and ``flags`` is not, that one, fewest extra first: a network whose
    paths an existing loop covers compiles nothing. ``args``: :func:`run_frames`' arguments
    before the flags.
    """
    absent = [i for i in range(len(flags)) if flags[i] is None]
    cands = []
    for mask in sorted(range(1 << len(absent)), key=lambda m: bin(m).count("1")):
        f = list(flags)
        for b, i in enumerate(absent):
            if mask >> b & 1:
                f[i] = 1
        cands.append(tuple(f))
    try:
        base = tuple(run_frames.typeof_pyval(a) for a in args)
        cache, index = run_frames._cache, None
        for f in cands:
            sig = base + tuple(run_frames.typeof_pyval(v) for v in f)
            if sig in run_frames.overloads:
                return f
            if index is None:
                index = cache._cache_file._load_index()
            if cache._index_key(sig, run_frames.targetctx.codegen()) in index:
                return f
    except Exception:  # Numba's cache internals moved: compile the network's own loop
        pass
    return flags
