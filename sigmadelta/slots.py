"""Named rows of the op table: every op kind declares its columns once, by name.

A compiled network (:mod:`sigmadelta.program`) is a table ``code[n_ops, NC]`` of
int64 columns and ``par[n_ops, NP]`` of float64 parameters, plus three typed lists
of arrays. Column 0 of a row is the op kind; the other columns hold array slots
(an index into one of the lists) or small integers. Each op kind declares its
columns with :func:`layout`, a NamedTuple *instance* of column indices, e.g.::

    SLOTS = layout("Pool", ["x", "touched", ...])      # SLOTS.x == 1, SLOTS.touched == 2
    def emit(self, b):                                  # sigmadelta.ops
        r = b.row(POOL, SLOTS)
        r.x = b.f(self.inp.value) ...
        r.done()                                        # every named column filled?
    c[SLOTS.x]                                          # sigmadelta.program, in Numba

Numba treats a global NamedTuple of ints as a compile-time constant, so the
compiled loop reads ``c[SLOTS.x]`` as ``c[1]`` and its on-disk cache keeps working
(:mod:`sigmadelta.program` ties that cache to this file and :mod:`sigmadelta.ops`).

The per-frame counters of a weight layer are rows of ``stats[t, :, j]``, named by
:data:`COUNTER_ROWS` (in the order of :data:`sigmadelta.stats.MEASURED`).
"""

from __future__ import annotations

from collections import namedtuple

import numpy as np
from numba import njit, typed, types

from .stats import MEASURED

__all__ = ["NC", "NP", "KIND", "layout", "Builder", "COUNTER_ROWS", "Counters", "INPUT", "PIXCONV",
           "DENSE", "CONV", "ACTIVATION", "POOL", "FLATTEN", "ADD", "CONCAT", "MUL", "UPSAMPLE",
           "CONVT", "RESAMPLE", "GATHER"]

NC, NP = 48, 10  # columns of the code and parameter tables
KIND = 0  # column of the op kind in every row
# op kinds (column KIND): one per operator class of sigmadelta.ops
(INPUT, PIXCONV, DENSE, CONV, ACTIVATION, POOL, FLATTEN, ADD, CONCAT, MUL, UPSAMPLE, CONVT, RESAMPLE,
 GATHER) = range(14)

Counters = namedtuple("Counters", MEASURED)
#: rows of a frame's counters ``stats[t, row, layer]``, filled by the frame loop
COUNTER_ROWS = Counters(*range(len(MEASURED)))


def layout(name: str, ints: list[str], floats: list[str] = (), base: tuple | None = None) -> tuple:
    """Column indices of an op kind: ``(int columns, float columns)`` as NamedTuples.

    Int columns start at 1 (column 0 is the kind), float columns at 0. With ``base``
    (another layout) its columns come first, at the same indices: code written for
    the base layout reads every layout derived from it.
    """
    if base is not None:
        ints, floats = [*base[0]._fields, *ints], [*base[1]._fields, *floats]
    if len(ints) + 1 > NC or len(floats) > NP:
        raise ValueError(f"{name}: {len(ints)} int / {len(floats)} float columns, at most "
                         f"{NC - 1} / {NP}")
    i = namedtuple(name, ints)(*range(1, 1 + len(ints)))
    f = namedtuple(name + "Par", floats)(*range(len(floats)))
    return i, f


class _Row:
    """One row being filled by name; :meth:`done` checks that every column was set."""

    def __init__(self, builder: Builder, kind: int, ints, floats):
        object.__setattr__(self, "_b", builder)
        object.__setattr__(self, "_kind", kind)
        object.__setattr__(self, "_layout", (ints, floats))
        object.__setattr__(self, "_vals", {})

    def __setattr__(self, name: str, value) -> None:
        ints, floats = self._layout
        if name not in ints._fields and name not in floats._fields:
            raise AttributeError(f"{type(ints).__name__} rows have no column {name!r}")
        self._vals[name] = value

    def done(self) -> None:
        ints, floats = self._layout
        missing = [n for n in (*ints._fields, *floats._fields) if n not in self._vals]
        if missing:
            raise ValueError(f"{type(ints).__name__} row: columns {missing} not filled")
        c = np.full(NC, -1, np.int64)
        c[KIND] = self._kind
        for n, col in zip(ints._fields, ints, strict=True):
            c[col] = int(self._vals[n])
        p = np.zeros(NP)
        for n, col in zip(floats._fields, floats, strict=True):
            p[col] = float(self._vals[n])
        self._b.code.append(c)
        self._b.par.append(p)


# The typed lists are made and filled by these cached functions: typed.List's own methods,
# called from Python, compile in every new process (about 1.5 s for the three lists).
@njit(cache=True)
def _new_float32_list():
    return typed.List.empty_list(types.float32[::1])


@njit(cache=True)
def _new_float64_list():
    return typed.List.empty_list(types.float64[::1])


@njit(cache=True)
def _new_int64_list():
    return typed.List.empty_list(types.int64[::1])


_NEW_LIST = {np.dtype(np.float32): _new_float32_list, np.dtype(np.float64): _new_float64_list,
             np.dtype(np.int64): _new_int64_list}


@njit(cache=True)
def _append(lst, a):
    lst.append(a)


class Builder:
    """Collects arrays into the typed lists and rows into the tables.

    ``f``: the state dtype list ``F``; ``i``: int64 list ``I``; ``d``: float64 list ``D``;
    each returns the slot (index in its list) to store in a column.
    """

    def __init__(self, dtype):
        self.F = _NEW_LIST[np.dtype(dtype)]()
        self.I = _new_int64_list()  # noqa: E741 (the int64 list)
        self.D = _new_float64_list()
        self._sizes = {id(lst): 0 for lst in (self.F, self.I, self.D)}
        self.code: list[np.ndarray] = []
        self.par: list[np.ndarray] = []

    def _slot(self, lst, a: np.ndarray) -> int:
        _append(lst, a)
        self._sizes[id(lst)] += 1
        return self._sizes[id(lst)] - 1

    def f(self, a: np.ndarray) -> int:
        return self._slot(self.F, a)

    def i(self, a) -> int:
        return self._slot(self.I, np.ascontiguousarray(np.asarray(a, np.int64).ravel()))

    def d(self, a: np.ndarray) -> int:
        return self._slot(self.D, np.ascontiguousarray(a, np.float64).ravel())

    def w(self, a: np.ndarray, fixed: bool) -> int:
        """A weight-layer array: int64 (list I) in fixed point, else the state dtype (F)."""
        return self.i(a) if fixed else self.f(np.ascontiguousarray(a).ravel())

    def row(self, kind: int, slots: tuple) -> _Row:
        """Start a row of ``kind`` with the columns ``slots = layout(...)``; call ``done()``."""
        return _Row(self, kind, *slots)
