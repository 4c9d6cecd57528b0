"""The one frame loop, compiled: a network as a table of ops run by one Numba function.

:func:`build_program` turns the runtime operators of :mod:`sigmadelta.ops` into a
:class:`Program`: a table ``code[n_ops, NC]`` (op kind, weight-layer column, then
the slots of the op's arrays), scalars ``par[n_ops, NP]`` and three typed lists of
1-D arrays that share memory with the operators' state:

* ``F`` (state dtype): node values, encoder memories, float weights, accumulators;
* ``I`` (int64): neuron and pixel lists, counts, stamps, geometry, fixed-point
  weights and accumulators;
* ``D`` (float64): per-unit herding scales and fan-outs.

:func:`run_frames` then runs a chunk of frames without coming back to Python::

    for t in frames:
        for op in ops[lo:hi]:                  # topological order
            dispatch on the op kind -> kernels (sigmadelta.kernels), counters into stats[t]
        out[t] = value of the output node      # channels-last

so a chunk costs one Python call, and the whole loop runs without the GIL (threads
over streams scale). The op table and the kernels' argument lists are written side
by side below: each ``_emit_*`` builds the row its ``_run_*`` reads.
"""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import NamedTuple

import numpy as np
from numba import njit, typed, types
from numba.np.numpy_support import from_dtype

from . import graph as g
from . import kernels as K
from .ops import ActivationOp, AddOp, ConcatOp, FlattenOp, InputOp, PoolOp, WeightOp

__all__ = ["Program", "build_program", "run_frames", "NC", "NP"]

NC, NP = 40, 8  # columns of the code and parameter tables
INPUT, PIXCONV, WEIGHT, ACTIVATION, POOL, FLATTEN, ADD, CONCAT = range(8)


class Program(NamedTuple):
    """A network compiled to an op table (see module docstring)."""

    code: np.ndarray  # int64 [n_ops, NC]
    par: np.ndarray  # float64 [n_ops, NP]
    F: typed.List
    I: typed.List  # noqa: E741 (the int64 list, next to F and D)
    D: typed.List
    out_slot: int  # F slot of the output node's value
    row_op: np.ndarray  # int64 [n_rows]: the operator (index in build_ops order) of each row


class _Builder:
    """Collects arrays into the typed lists and rows into the tables."""

    def __init__(self, dtype):
        self.F = typed.List.empty_list(types.Array(from_dtype(np.dtype(dtype)), 1, "C"))
        self.I = typed.List.empty_list(types.int64[::1])
        self.D = typed.List.empty_list(types.float64[::1])
        self.code: list[np.ndarray] = []
        self.par: list[np.ndarray] = []

    def _slot(self, lst, a: np.ndarray) -> int:
        lst.append(a)
        return len(lst) - 1

    def f(self, a: np.ndarray) -> int:
        return self._slot(self.F, a)

    def i(self, a) -> int:
        return self._slot(self.I, np.ascontiguousarray(np.asarray(a, np.int64).ravel()))

    def d(self, a: np.ndarray) -> int:
        return self._slot(self.D, np.ascontiguousarray(a, np.float64).ravel())

    def w(self, a: np.ndarray, fixed: bool) -> int:
        """A weight-layer array: int64 (list I) in fixed point, else the state dtype (F)."""
        return self.i(a) if fixed else self.f(np.ascontiguousarray(a).ravel())

    def row(self, kind: int, ints: list[int], floats: tuple[float, ...] = ()) -> None:
        c = np.full(NC, -1, np.int64)
        c[0] = kind
        c[1:1 + len(ints)] = ints
        p = np.zeros(NP)
        p[:len(floats)] = floats
        self.code.append(c)
        self.par.append(p)


def _emit_input(b: _Builder, op: InputOp) -> None:
    o = op.out
    b.row(INPUT, [-1, int(op.shape[0]) if len(op.shape) == 3 else 1, b.f(o.value), b.i(o.touched),
                  b.i(o.count), b.f(op.prev), b.i(op.mask)])


def _emit_pixconv(b: _Builder, op: WeightOp, j: int) -> None:
    i, o, q, node, fx = op.inp, op.out, op.q, op.node, op.fixed
    rows, row_count = (i.rows, i.row_count) if i.row_len > 0 else (i.touched, i.count)
    pg_list, pg_count, pg_stamp = op.pg
    px_list, px_start, vbuf = op.px
    kh, c_in, lw = op.w.shape
    ints = [j, b.f(i.value), b.i(i.touched), b.i(i.count), b.i(rows), b.i(row_count),
            int(i.row_len > 0), b.f(q.memory), int(op.herding), int(fx), b.w(op.w, fx),
            b.w(op.acc, fx), b.i(op.pgeom), b.i(q.ev_idx), b.w(q.ev_val, fx), b.i(px_list),
            b.i(px_start), b.w(vbuf, fx), b.i(pg_list), b.i(pg_count), b.i(pg_stamp),
            int(op.expand), b.i(o.touched), b.i(o.count), kh, c_in, lw, b.f(o.value), b.f(op.bias_cl),
            b.i(op.smap[0]), b.w(op.smap[1], fx), b.w(op.smap[2], fx)]
    param = float(node.scale if op.herding else node.threshold)
    fixed = (float(op.acc_gain), float(op.acc_limit)) if fx else (0.0, 0.0)
    b.row(PIXCONV, ints, (param, float(op.gain), *fixed))


@njit(cache=True, nogil=True)
def _pix_core(c, p, F, I, x, memory, w, z, ev_val, vbuf, smap, wtap, gain, frame, prime, st):  # noqa: E741
    """conv_layer_step on one set of weight-layer arrays (float or int64)."""
    r = K.conv_layer_step(
        x, I[c[3]], I[c[4]], I[c[5]], I[c[6]], c[7] != 0, memory, c[9] != 0, p[0], gain,
        w.reshape((c[25], c[26], c[27])), z, I[c[13]], I[c[14]], ev_val, I[c[16]], I[c[17]], vbuf,
        I[c[19]], I[c[20]], I[c[21]], frame, prime, c[22] != 0, I[c[23]], I[c[24]], I[c[30]],
        smap, wtap)
    j = c[1]
    st[0, j], st[1, j], st[3, j] = r[0], r[1], r[3]
    st[2, j] = r[2] if c[9] != 0 else r[1]


@njit(cache=True, nogil=True)
def _run_pixconv(c, p, F, I, frame, prime, st):  # noqa: E741
    if c[10] != 0:  # fixed point: integer spikes, weights and accumulators
        _pix_core(c, p, F, I, F[c[2]], F[c[8]], I[c[11]], I[c[12]], I[c[15]], I[c[18]], I[c[31]],
                  I[c[32]], 1, frame, prime, st)
        return K.fixed_point_update(I[c[12]], I[c[23]], I[c[24]], p[2], F[c[29]], F[c[28]],
                                    np.int64(p[3]))
    _pix_core(c, p, F, I, F[c[2]], F[c[8]], F[c[11]], F[c[12]], F[c[15]], F[c[18]], F[c[31]],
              F[c[32]], p[1], frame, prime, st)
    return -1


def _emit_weight(b: _Builder, op: WeightOp, j: int) -> None:
    """A dense layer, or a conv without the pixel path (groups > 1, dilation, per-unit scales)."""
    i, o, q, node, fx = op.inp, op.out, op.q, op.node, op.fixed
    dense = isinstance(node, g.Dense)
    shape = (*op.w.shape, 0, 0) if dense else op.w.shape  # [in, out] or [kh, kw, c_in, cg]
    units = (b.d(op.k_units), b.d(op.fanout)) if op.units else (-1, -1)
    if dense:
        conv = [-1] * 8
    else:
        (stride, padding, dilation), pg = op.geom, op.pg
        conv = [b.i(op.in_hw), b.i(op.out_hw), b.i(stride), b.i(padding), b.i(dilation),
                b.i(pg[0]), b.i(pg[1]), b.i(pg[2])]
    kind = 0 if op.units else (1 if op.herding else 2)
    ints = [j, b.f(i.value), b.i(i.touched), b.i(i.count), b.f(q.memory), kind, int(fx),
            b.i(q.ev_idx), b.w(q.ev_val, fx), b.w(op.w, fx), b.w(op.acc, fx), *units, int(dense),
            *shape, *conv, op.groups if not dense else 1, op.cg if not dense else 0, b.i(o.touched),
            b.i(o.count), b.f(o.value), b.f(op.bias_cl)]
    param = float(node.threshold if kind == 2 else (0.0 if op.units else node.scale))
    fixed = (float(op.acc_gain), float(op.acc_limit)) if fx else (0.0, 0.0)
    b.row(WEIGHT, ints, (param, float(op.gain), *fixed))


@njit(cache=True, nogil=True)
def _encode(c, p, I, D, x, memory, ev_idx, ev_val):  # noqa: E741
    """Run the layer's quantizer; ``(events, additions of per-unit herding)``."""
    if c[6] == 0:
        return K.herding_encode_units(x, I[c[3]], I[c[4]], memory, D[c[12]], D[c[13]], ev_idx, ev_val)
    if c[6] == 1:
        return K.herding_encode(x, I[c[3]], I[c[4]], memory, p[0], ev_idx, ev_val), 0.0
    return K.threshold_encode(x, I[c[3]], I[c[4]], memory, p[0], ev_idx, ev_val), 0.0


@njit(cache=True, nogil=True)
def _weight_core(c, p, I, D, x, memory, ev_val, w, z, gain, frame, prime, st):  # noqa: E741
    """Encode, scatter (dense or per-event conv) and list the outputs of one weight layer."""
    ev_idx = I[c[8]]
    n_ev, unit_adds = _encode(c, p, I, D, x, memory, ev_idx, ev_val)
    o_t, o_n = I[c[29]], I[c[30]]
    if c[14] != 0:  # dense
        syn, adds = K.dense_scatter(ev_idx, ev_val, n_ev, gain, w.reshape((c[15], c[16])), z)
        if prime or n_ev:
            K.touch_all(o_t, o_n)
        else:
            o_n[0] = 0
    else:
        pg_list, pg_count, pg_stamp = I[c[24]], I[c[25]], I[c[26]]
        pg_count[0] = 0
        syn, adds = K.conv_scatter(ev_idx, ev_val, n_ev, gain, w.reshape((c[15], c[16], c[17], c[18])),
                                   z, I[c[19]], I[c[20]], I[c[21]], I[c[22]], I[c[23]], c[27],
                                   pg_list, pg_count, pg_stamp, frame)
        if prime:
            K.touch_all(o_t, o_n)
        else:
            K.expand_pixel_groups(pg_list, pg_count, c[27], c[28], o_t, o_n)
    j = c[1]
    st[0, j], st[1, j], st[3, j] = n_ev, syn, o_n[0]
    st[2, j] = unit_adds if c[6] == 0 else (adds if c[6] == 1 else syn)


@njit(cache=True, nogil=True)
def _run_weight(c, p, F, I, D, frame, prime, st):  # noqa: E741
    if c[7] != 0:
        _weight_core(c, p, I, D, F[c[2]], F[c[5]], I[c[9]], I[c[10]], I[c[11]], 1, frame, prime, st)
        return K.fixed_point_update(I[c[11]], I[c[29]], I[c[30]], p[2], F[c[32]], F[c[31]],
                                    np.int64(p[3]))
    _weight_core(c, p, I, D, F[c[2]], F[c[5]], F[c[9]], F[c[10]], F[c[11]], p[1], frame, prime, st)
    return -1


def _emit_other(b: _Builder, op) -> None:
    """Rows of the non-weight nodes."""
    o = op.out
    if isinstance(op, ActivationOp):
        i = op.inp
        fn, alpha, lo, hi = op.args
        b.row(ACTIVATION, [-1, b.f(i.value), b.f(o.value), b.i(i.touched), b.i(i.count),
                           b.i(i.rows), b.i(i.row_count), i.row_len, fn], (alpha, lo, hi))
    elif isinstance(op, PoolOp):
        i = op.inp
        kernel, stride, padding, is_max = op.geom
        b.row(POOL, [-1, b.f(i.value), b.i(i.touched), b.i(i.count), b.i(op.in_hw), op.c,
                     b.i(op.out_hw), b.i(kernel), b.i(stride), b.i(padding), int(is_max),
                     b.f(o.value), b.i(o.touched), b.i(o.count), b.i(o.stamp), b.i(op.hit)])
    elif isinstance(op, FlattenOp):
        i = op.inp
        b.row(FLATTEN, [-1, b.f(i.value), b.i(i.touched), b.i(i.count), op.hw, op.c, b.f(o.value),
                        b.i(o.touched), b.i(o.count)])
    elif isinstance(op, AddOp):
        b.row(ADD, [-1, b.f(op.a.value), b.f(op.b.value), b.f(o.value), b.i(op.a.touched),
                    b.i(op.a.count), b.i(op.b.touched), b.i(op.b.count), b.i(o.touched),
                    b.i(o.count), b.i(o.stamp)])
    elif isinstance(op, ConcatOp):
        for k, (inp, c, off) in enumerate(zip(op.ins, op.c_in, op.offsets, strict=True)):
            b.row(CONCAT, [-1, b.f(inp.value), b.i(inp.touched), b.i(inp.count), c, off, op.c_out,
                           b.f(o.value), b.i(o.touched), b.i(o.count), int(k == 0)])
    else:
        raise TypeError(f"no program row for operator {type(op).__name__}")


@njit(cache=True, nogil=True)
def _run_other(c, p, F, I, frame):  # noqa: E741
    k = c[0]
    if k == ACTIVATION:
        if c[8] > 0:
            K.activation_rows(F[c[2]], F[c[3]], I[c[6]], I[c[7]], c[8], c[9], p[0], p[1], p[2])
        else:
            K.activation_update(F[c[2]], F[c[3]], I[c[4]], I[c[5]], c[9], p[0], p[1], p[2])
    elif k == POOL:
        K.pool_update(F[c[2]], I[c[3]], I[c[4]], I[c[5]], c[6], I[c[7]], I[c[8]], I[c[9]], I[c[10]],
                      c[11] != 0, F[c[12]], I[c[13]], I[c[14]], I[c[15]], frame,
                      I[c[16]].view(np.uint8))
    elif k == FLATTEN:
        K.flatten_update(F[c[2]], I[c[3]], I[c[4]], c[5], c[6], F[c[7]], I[c[8]], I[c[9]])
    elif k == ADD:
        K.add_update(F[c[2]], F[c[3]], F[c[4]], I[c[5]], I[c[6]], I[c[7]], I[c[8]], I[c[9]],
                     I[c[10]], I[c[11]], frame)
    elif k == CONCAT:
        if c[11] != 0:
            I[c[10]][0] = 0
        K.concat_update(F[c[2]], I[c[3]], I[c[4]], c[5], c[6], c[7], F[c[8]], I[c[9]], I[c[10]])


def build_program(ops: list, states: list, output: int, dtype) -> Program:
    """Compile the operators of :func:`sigmadelta.ops.build_ops` into a :class:`Program`."""
    b, j, row_op = _Builder(dtype), 0, []
    for k, op in enumerate(ops):
        n_rows = len(b.code)
        if isinstance(op, InputOp):
            _emit_input(b, op)
        elif isinstance(op, WeightOp):
            (_emit_pixconv if op.pixel else _emit_weight)(b, op, j)
            j += 1
        else:
            _emit_other(b, op)
        row_op += [k] * (len(b.code) - n_rows)
    out_slot = b.f(states[output].value)
    return Program(np.stack(b.code), np.stack(b.par), b.F, b.I, b.D, out_slot,
                   np.array(row_op, np.int64))


@njit(cache=True, nogil=True)
def run_frames(code, par, F, I, D, frames, frame0, lo, hi, stats, out, out_slot, status):  # noqa: E741
    """Run ops ``lo:hi`` of the program over ``frames[T, N_in]`` (PyTorch layout, flat).

    Frame ``t`` is frame number ``frame0 + t`` of the stream (number 0 primes: every
    neuron is sent). Per frame and weight layer ``j``, ``stats[t, :, j]`` gets (events,
    synops, additions, neuron updates); ``out[t]`` the output node's value if
    ``out_slot >= 0``. Returns the number of frames completed; on a fixed-point
    accumulator overflow it stops early and leaves ``status = (row, neuron)``.
    """
    for t in range(frames.shape[0]):
        frame_no = frame0 + t
        prime = frame_no == 0
        st = stats[t]
        for o in range(lo, hi):
            c, p = code[o], par[o]
            k, bad = c[0], -1
            if k == INPUT:
                K.load_frame(frames[t], c[2], F[c[3]], F[c[6]], I[c[7]], I[c[4]], I[c[5]], prime)
            elif k == PIXCONV:
                bad = _run_pixconv(c, p, F, I, frame_no, prime, st)
            elif k == WEIGHT:
                bad = _run_weight(c, p, F, I, D, frame_no, prime, st)
            else:
                _run_other(c, p, F, I, frame_no)
            if bad >= 0:
                status[0], status[1] = o, bad
                return t
        if out_slot >= 0:
            out[t, :] = F[out_slot]
    return frames.shape[0]


def _tie_cache_to_kernels(*fns) -> None:
    """Make the on-disk Numba cache of ``fns`` stale when any kernel source changes.

    Numba checks a cached function only against its own file, but these functions
    compile the kernels (other files) into themselves; without this, editing a kernel
    would leave a stale compiled loop behind. Uses Numba's cache index stamp (an
    internal attribute); if that ever moves, caching simply stays per file.
    """
    digest = hashlib.sha256()
    for f in sorted(Path(K.__file__).parent.glob("*.py")):
        digest.update(f.read_bytes())
    for fn in fns:
        cache_file = getattr(getattr(fn, "_cache", None), "_cache_file", None)
        if cache_file is not None and hasattr(cache_file, "_source_stamp"):
            cache_file._source_stamp = (cache_file._source_stamp, digest.hexdigest())


_tie_cache_to_kernels(_pix_core, _run_pixconv, _encode, _weight_core, _run_weight, _run_other,
                      run_frames)
