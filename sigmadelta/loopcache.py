"""Which compiled frame loops exist: :func:`sigmadelta.program.run_frames`' specialisations
in this process or in Numba's on-disk cache (the engine's first-run notice and its choice of
flags, so that a network whose paths an existing loop covers compiles nothing), and about how
long compiling one takes (:func:`compile_seconds`, the figure the notice states).
"""

from __future__ import annotations

from .program import FLAG_NAMES, run_frames

__all__ = ["loop_compiled", "cached_flags", "COMPILE_SECONDS", "compile_seconds"]

#: CPU seconds to compile the frame loop from an empty cache (float64), measured by
#: ``python scripts/compile_times.py --flags`` on a 2-vCPU Intel Xeon VM (AVX-512) under a
#: load of 5-7 from other jobs (so rather more than idle): ``"loop"`` with the flags
#: ``floats pix dense``; for ``pix`` and ``dense`` what leaving that group out saves; for
#: every other flag (:data:`sigmadelta.program.FLAG_NAMES`) what setting it adds (``fixed``:
#: the fixed-point bodies of ``pix`` and ``dense`` besides the float ones); ``"outside"``: the
#: rest of a first ``sd.simulate`` (typed lists, dispatch). ``"loop"`` and ``"smooth"`` again
#: since the smooth activations have their flag (load 5-6.6, two of each: 11.3-11.8 s, and
#: 1.1-2.2 s more with ``smooth``; the same loop with every activation before it: 12.3-12.7 s).
#: ``"recompute"`` 4.5 s before the dense path's direct conv (:mod:`.kernels.directconv`) and
#: its chunked herding encoder, 13.5 s with them; since ``"direct"`` and ``"narrow"`` have their
#: flags (:func:`sigmadelta.assemble.dense_convs`), ``"recompute"`` is the rest. Measured by
#: ``python scripts/compile_times.py --loop '["floats","pix","dense",...]'`` (empty cache each,
#: alternating, load 1.9-7.7, a 2-vCPU Intel Xeon VM (AVX-512); raw CPU seconds, 2.7x the
#: figures here then, scaled by ``"loop"``): ``floats pix dense`` 31.4, with ``recompute``
#: 44.5-53.4, ``narrow`` besides it -2.5..+0 (within the noise), ``direct`` +5.4..+12.7 (after
#: ``direct_conv`` made one call of its row loop: compiled alone 12.1 -> 1.7 s). ``scripts/first_run.py``
#: (no layer there takes the direct or narrow conv) from an empty cache: 69.9 and 77.9 s of CPU
#: on main against 49.7 and 56.4 s (alternating, load 2.5-4.7).
COMPILE_SECONDS = {"loop": 11.6, "pix": 6.5, "dense": 1.6, "fixed": 8.3, "conv": 5.0, "pool": 3.2,
                   "merge": 2.0, "resize": 1.2, "lava": 8.0, "gemm": 3.7, "recompute": 6.5,
                   "smooth": 1.7, "direct": 3.3, "narrow": 0.5, "outside": 1.0}


def compile_seconds(flags: tuple) -> float:
    """About how many CPU seconds compiling :func:`run_frames` with ``flags``
    (:attr:`sigmadelta.assemble.Program.flags`, None or 1 each) takes from an empty cache::

        loop + outside - (pix, dense: each left out) + (every other flag set but fixed)
             + fixed * (pix + dense + conv: those set) / (pix + dense)    (fixed beside floats)

    from :data:`COMPILE_SECONDS`: the fixed-point bodies cost about what the float ones of the
    same weight groups do (measured: ``fixed`` 8.3 s beside ``pix + dense`` 8.1 s), and a loop
    of fixed-point layers alone about what a float one does. A sum of separately measured
    parts: a guide for the first-run notice (the loop with every flag: 55.3 s estimated; 56.6 s
    measured, load 3.0, before the smooth activations had a flag).
    """
    s = COMPILE_SECONDS
    on = {name for name, v in zip(FLAG_NAMES, flags, strict=True) if v is not None}
    sec = s["loop"] + s["outside"] - sum(s[n] for n in ("pix", "dense") if n not in on)
    sec += sum(s[n] for n in on - {"floats", "pix", "dense", "fixed"})
    if {"fixed", "floats"} <= on:
        weights = sum(s[n] for n in ("pix", "dense", "conv") if n in on)
        sec += s["fixed"] * weights / (s["pix"] + s["dense"])
    return sec


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
    Numba's on-disk cache, and ``flags`` is not, that one, fewest extra first (ties: the
    smallest number whose bit ``b`` is the ``b``-th unset flag): a network whose paths an
    existing loop covers compiles nothing. ``args``: :func:`run_frames`' arguments before the flags.

    The compiled loops are read from what exists (the process's specialisations and the
    cache index's entries for this code and machine), not tried one set of flags at a time:
    a network with eight of its eleven flags unset would try up to 256 sets (0.1 ms each).
    """
    try:
        base = tuple(run_frames.typeof_pyval(a) for a in args)
        own = base + tuple(run_frames.typeof_pyval(v) for v in flags)
        if own in run_frames.overloads:
            return flags
        cache = run_frames._cache
        key = cache._index_key(own, run_frames.targetctx.codegen())
        index = cache._cache_file._load_index()
        if key in index:
            return flags
        sigs = [*run_frames.overloads, *(k[0] for k in index if k[1:] == key[1:])]
        one, none = run_frames.typeof_pyval(1), run_frames.typeof_pyval(None)
        absent = [i for i, f in enumerate(flags) if f is None]
        best, rank = flags, None
        for sig in sigs:
            tail = sig[len(base):]
            if sig[:len(base)] != base or len(tail) != len(flags) or not set(tail) <= {one, none}:
                continue
            have = [t == one for t in tail]
            if any(f is not None and not h for f, h in zip(flags, have, strict=True)):
                continue  # it leaves out a path this network takes
            extra = [b for b, i in enumerate(absent) if have[i]]
            r = (len(extra), sum(1 << b for b in extra))
            if rank is None or r < rank:
                best, rank = tuple(1 if h else None for h in have), r
        return best
    except Exception:  # Numba's cache internals moved: compile the network's own loop
        return flags
