"""The one frame loop, compiled: a network as a table of ops run by one Numba function.

:func:`sigmadelta.assemble.build_program` turns the runtime operators of :mod:`sigmadelta.ops`
into a :class:`~sigmadelta.assemble.Program`: a table ``code[n_ops, NC]`` (op kind, weight-layer
column, then the slots of the op's arrays), scalars ``par[n_ops, NP]`` and three typed lists of
1-D arrays that share memory with the operators' state:

* ``F`` (state dtype): node values, encoder memories, float weights, accumulators;
* ``I`` (int64): neuron and pixel lists, counts, stamps, geometry, fixed-point
  weights and accumulators;
* ``D`` (float64): per-unit herding scales and fan-outs.

:func:`run_frames` then runs a chunk of frames without coming back to Python::

    for t in frames:
        for op in ops[lo:hi]:                  # topological order (pipelined: stages reversed)
            dispatch on the op kind -> kernels (sigmadelta.kernels), counters into stats[t]
        out[t] = value of the output node      # channels-last

so a chunk costs one Python call, and the whole loop runs without the GIL (threads over streams
scale). Every operator class declares its row's columns once, by name (``SLOTS``,
:mod:`sigmadelta.slots`) and fills them in its ``emit``; the functions below (``_run_other``, the
weight layers' float and fixed-point bodies) read them by the same names (``c[PIX.memory]``), as
compile-time constants. A frame's counters go to the rows :data:`sigmadelta.slots.COUNTER_ROWS`.
"""

from __future__ import annotations

import numpy as np
from numba import njit

from . import graph as g
from . import kernels as K
from .cachetie import source_digest, tie_cache
from .filelock import lock_numba_cache_saves
from .ops import (
    ActivationOp,
    AddOp,
    ConcatOp,
    FlattenOp,
    GatherOp,
    InputOp,
    MulOp,
    PoolOp,
    ResampleOp,
    UpsampleOp,
)
from .slots import (
    ACTIVATION,
    ADD,
    CONCAT,
    CONV,
    CONVT,
    COUNTER_ROWS,
    DENSE,
    FLATTEN,
    GATHER,
    INPUT,
    KIND,
    MUL,
    NC,
    NP,
    PIXCONV,
    POOL,
    RESAMPLE,
    UPSAMPLE,
)
from .weightops import ENCODER, HERDING, LAVA, UNITS, WEIGHT, ConvOp, DenseOp, PixelConvOp

__all__ = ["run_frames", "KIND_GROUPS", "PATH_FLAGS", "FLAG_NAMES", "NC", "NP"]

# the columns of every op kind (compile-time constants in the functions below)
INP, PIX, DNS, CNV = InputOp.SLOTS[0], PixelConvOp.SLOTS[0], DenseOp.SLOTS[0], ConvOp.SLOTS[0]
PIX_P, CNV_P = PixelConvOp.SLOTS[1], ConvOp.SLOTS[1]
ACT, ACT_P, POO, FLT, ADD_C, CAT = (ActivationOp.SLOTS[0], ActivationOp.SLOTS[1], PoolOp.SLOTS[0],
                                    FlattenOp.SLOTS[0], AddOp.SLOTS[0], ConcatOp.SLOTS[0])
MUL_C, UPS, RSM, GTH = MulOp.SLOTS[0], UpsampleOp.SLOTS[0], ResampleOp.SLOTS[0], GatherOp.SLOTS[0]
ENC, WGT, WP = ENCODER[0], WEIGHT[0], WEIGHT[1]  # shared by every weight op
EVENTS, SYNOPS, ADDITIONS, UPDATES = COUNTER_ROWS
LAVA_SHIFT = g.LAVA_SHIFT  # the lava encoder's spike shift (a compile-time constant)


#: Op kinds compiled into the loop only when a network has a row of the group (the last
#: arguments of run_frames, None or 1); input, activations and flatten are always in.
KIND_GROUPS = {"pix": (PIXCONV,), "conv": (CONV, CONVT), "dense": (DENSE,), "pool": (POOL,),
               "merge": (ADD, MUL, CONCAT), "resize": (UPSAMPLE, RESAMPLE, GATHER)}

#: Code paths compiled into the loop only when a layer of the network may run them (the last
#: arguments of run_frames, None or 1; :func:`sigmadelta.assemble.path_flags`): ``lava``, the
#: ``"lava"`` quantizer's per-event encoder, int8 dense weights and range check (float layers);
#: ``gemm``, a pixel conv's gather-GEMM-scatter; ``recompute``, its dense recompute; ``smooth``,
#: the activations other than relu, leaky relu, clip and identity (:data:`sigmadelta.kernels.CHEAP_MAX`);
#: ``direct`` and ``narrow``, the dense recompute's register-blocked conv and its narrow and
#: small convs of float layers (:func:`sigmadelta.kernels.direct_vectors`,
#: :func:`sigmadelta.kernels.narrow_channels`, :func:`sigmadelta.kernels.small_channels`; left
#: out, the GEMM convolves instead: the same sums up to rounding).
PATH_FLAGS = ("lava", "gemm", "recompute", "smooth", "direct", "narrow")

#: The names of run_frames' last arguments, in order (:attr:`sigmadelta.assemble.Program.flags`).
FLAG_NAMES = ("floats", "fixed", *KIND_GROUPS, *PATH_FLAGS)


@njit(cache=True, nogil=True, inline="always")
def _fixed_update(c, p, F, I):  # noqa: E741
    """Fixed point: ``z = acc * acc_gain + bias`` on the touched outputs; an overflowing neuron or -1."""
    return K.fixed_point_update(I[c[WGT.acc]], I[c[WGT.out_touched]], I[c[WGT.out_count]],
                                p[WP.acc_gain], F[c[WGT.bias]], F[c[WGT.value]], c[WGT.acc_limit])


@njit(cache=True, nogil=True, inline="always")
def _fixed_guard(c, p, F, I, rows, row_count, row_len):  # noqa: E741
    """Fixed point, before integrating: ``-2 - i`` if touched input ``i``'s spike total could
    wrap the int64 accumulator (:func:`sigmadelta.fixedpoint.max_spike_total`), else -1."""
    bad = K.fixed_point_guard(F[c[ENC.x]], rows, row_count, row_len, p[WP.param], c[WGT.spike_max])
    return -1 if bad < 0 else -2 - bad


@njit(cache=True, nogil=True)
def _lava_range(c, p, F):
    """A float ``"lava"`` layer after its step: ``-1``, or where Lava's integers would have wrapped
    (an output neuron, or ``-2 - input``: :func:`sigmadelta.kernels.lava_range_check`)."""
    if c[WGT.enc] != LAVA or c[WGT.fixed] != 0:
        return -1
    return K.lava_range_check(F[c[WGT.value]], F[c[WGT.lava_prev]], F[c[WGT.bias]], p[WP.lava_inc],
                              F[c[ENC.x]], p[WP.lava_k])



@njit(cache=True, nogil=True, inline="always")
def _pix_core(c, p, F, I, w, z, ev_val, vbuf, smap, wtap, w_cl, mem_w, rowbuf, w_g, gbuf, bias, gain,  # noqa: E741
              frame, prime, st, gemm, recompute, direct, narrow):
    """One pixel-conv frame on one set of weight-layer arrays (float or int64), by the path
    ``choose_path`` picks: the dense recompute (``conv_layer_dense``), gather-GEMM-scatter
    (``conv_layer_gemm``) or the event scatter (``conv_layer_step``); the first two are
    compiled only where their flag (:data:`PATH_FLAGS`) is 1, and the dense recompute's direct
    and narrow convs only where ``direct`` / ``narrow`` are."""
    herding = c[PIX.enc] == HERDING
    mode = K.Q_HERDING if herding else (K.Q_LAVA if c[PIX.enc] == LAVA else K.Q_THRESHOLD)
    x, pstate, fixed = F[c[PIX.x]], I[c[PIX.pstate]], c[PIX.fixed] != 0
    n_touched = I[c[PIX.row_count]][0] * (c[PIX.c_in] if c[PIX.in_rows] != 0 else 1)
    path = K.choose_path(pstate, n_touched, p[PIX_P.cost_event], p[PIX_P.cost_pixel],
                         p[PIX_P.cost_frame], prime, p[PIX_P.cost_px_scatter], p[PIX_P.px_per_event])
    if (path == K.PATH_DENSE and recompute is None) or (path == K.PATH_GEMM and gemm is None):
        raise RuntimeError("sigmadelta: a conv path this frame loop was compiled without")
    if path == K.PATH_DENSE and recompute is not None:  # pruned at compile time where None
        r = K.conv_layer_dense(
            x, F[c[PIX.memory]], mode, p[WP.param], gain, c[PIX.c_in], w_cl, bias, not fixed, z,
            I[c[PIX.geom]], mem_w, rowbuf, I[c[PIX.pg_list]], I[c[PIX.pg_count]], I[c[PIX.pg_stamp]],
            frame, prime, c[PIX.expand] != 0, I[c[PIX.out_touched]], I[c[PIX.out_count]],
            I[c[PIX.mgeom]], p[WP.lava_k], LAVA_SHIFT, direct, narrow)
    elif path == K.PATH_GEMM and gemm is not None:
        r = K.conv_layer_gemm(
            x, I[c[PIX.touched]], I[c[PIX.count]], I[c[PIX.rows]], I[c[PIX.row_count]],
            c[PIX.in_rows] != 0, F[c[PIX.memory]], mode, p[WP.param], gain,
            w_g.reshape((c[PIX.c_in], w_g.shape[0] // c[PIX.c_in])), z, I[c[PIX.geom]],
            I[c[PIX.ev_idx]], ev_val, I[c[PIX.px_list]], I[c[PIX.px_start]], gbuf, I[c[PIX.pg_list]],
            I[c[PIX.pg_count]], I[c[PIX.pg_stamp]], frame, prime, c[PIX.expand] != 0,
            I[c[PIX.out_touched]], I[c[PIX.out_count]], I[c[PIX.mgeom]], p[WP.lava_k], LAVA_SHIFT)
    else:
        r = K.conv_layer_step(
            x, I[c[PIX.touched]], I[c[PIX.count]], I[c[PIX.rows]], I[c[PIX.row_count]],
            c[PIX.in_rows] != 0, F[c[PIX.memory]], mode, p[WP.param], gain,
            w.reshape((c[PIX.kh], c[PIX.c_in], c[PIX.lw])), z, I[c[PIX.geom]], I[c[PIX.ev_idx]],
            ev_val, I[c[PIX.px_list]], I[c[PIX.px_start]], vbuf, I[c[PIX.pg_list]],
            I[c[PIX.pg_count]], I[c[PIX.pg_stamp]], frame, prime, c[PIX.expand] != 0,
            I[c[PIX.out_touched]], I[c[PIX.out_count]], I[c[PIX.mgeom]], smap, wtap, p[WP.lava_k],
            LAVA_SHIFT)
    _pix_count(c, st, r, herding, pstate)


@njit(cache=True, nogil=True, inline="always")
def _pix_count(c, st, r, herding, pstate):
    """A pixel conv's counters of the frame from ``r = (events, synops, additions, updates,
    pixels with events)``; the events and pixels go to the path state for the next choice."""
    j = c[PIX.layer]
    st[EVENTS, j], st[SYNOPS, j], st[UPDATES, j] = r[0], r[1], r[3]
    st[ADDITIONS, j] = r[2] if herding else r[1]
    pstate[K.PATH_STATE.last_events] = r[0]
    pstate[K.PATH_STATE.last_pixels] = r[4]


@njit(cache=True, nogil=True, inline="always")
def _pix_fixed(c, p, F, I, frame, prime, st, gemm, recompute, direct, narrow):  # noqa: E741
    """A fixed-point pixel conv's frame: guard, integrate, ``z`` from the accumulator (-1 or a status)."""
    guard = _fixed_guard(c, p, F, I, I[c[PIX.rows]], I[c[PIX.row_count]],
                         c[PIX.c_in] if c[PIX.in_rows] != 0 else 1)  # by pixel rows or neurons
    if guard != -1:  # the int64 accumulator could wrap: stop before integrating
        return guard
    _pix_core(c, p, F, I, I[c[PIX.w]], I[c[PIX.acc]], I[c[PIX.ev_val]], I[c[PIX.vbuf]],
              I[c[PIX.smap]], I[c[PIX.wtap]], I[c[PIX.w_cl]], I[c[PIX.mem_w]], I[c[PIX.rowbuf]],
              I[c[PIX.w_g]], I[c[PIX.gbuf]], I[c[PIX.acc]],  # acc as the (unread) bias: added after
              1, frame, prime, st, gemm, recompute, direct, narrow)
    return _fixed_update(c, p, F, I)


@njit(cache=True, nogil=True, inline="always")
def _pix_float(c, p, F, I, frame, prime, st, lava, gemm, recompute, direct, narrow):  # noqa: E741
    """A float pixel conv's frame (-1, or where a ``"lava"`` layer's integers would have wrapped).
    A float64 ``"lava"`` layer on its scatter path takes :func:`sigmadelta.kernels.lava_conv_step`."""
    pstate = I[c[PIX.pstate]]
    if lava is not None and c[PIX.w8] >= 0 and pstate[K.PATH_STATE.mode] == K.PATH_SCATTER:
        n_touched = I[c[PIX.row_count]][0] * (c[PIX.c_in] if c[PIX.in_rows] != 0 else 1)
        K.choose_path(pstate, n_touched, 0.0, 0.0, 0.0, prime, 0.0, 0.0)  # counts the frame
        z = F[c[PIX.acc]]
        r = K.lava_conv_step(
            F[c[PIX.x]], I[c[PIX.touched]], I[c[PIX.count]], I[c[PIX.rows]], I[c[PIX.row_count]],
            c[PIX.in_rows] != 0, F[c[PIX.memory]], p[WP.param], p[WP.lava_k], LAVA_SHIFT,
            F[c[PIX.w]].reshape((c[PIX.kh], c[PIX.c_in], c[PIX.lw])), I[c[PIX.w8]].view(np.int8),
            float(c[PIX.l1]), I[c[PIX.dz]].view(np.int32), z, I[c[PIX.geom]], I[c[PIX.ev_idx]],
            F[c[PIX.ev_val]], I[c[PIX.px_list]], I[c[PIX.px_start]], F[c[PIX.vbuf]], I[c[PIX.pg_list]],
            I[c[PIX.pg_count]], I[c[PIX.pg_stamp]], frame, prime, c[PIX.expand] != 0,
            I[c[PIX.out_touched]], I[c[PIX.out_count]], I[c[PIX.mgeom]],
            F[c[PIX.smap]].view(np.float32), F[c[PIX.wtap]].view(np.float32))
        _pix_count(c, st, r, False, pstate)
    else:
        _pix_core(c, p, F, I, F[c[PIX.w]], F[c[PIX.acc]], F[c[PIX.ev_val]], F[c[PIX.vbuf]],
                  F[c[PIX.smap]], F[c[PIX.wtap]], F[c[PIX.w_cl]], F[c[PIX.mem_w]], F[c[PIX.rowbuf]],
                  F[c[PIX.w_g]], F[c[PIX.gbuf]], F[c[PIX.bias]], p[WP.gain], frame, prime, st, gemm,
                  recompute, direct, narrow)
    return _lava_range(c, p, F) if lava is not None else -1


@njit(cache=True, nogil=True, inline="always")
def _encode(c, p, F, I, D, ev_val, lava):  # noqa: E741
    """Run a weight layer's quantizer; ``(events, additions of per-unit herding)`` (the ``"lava"``
    one compiled only where flag ``lava`` is 1)."""
    x, t, n, memory, ev_idx = (F[c[ENC.x]], I[c[ENC.touched]], I[c[ENC.count]], F[c[ENC.memory]],
                               I[c[ENC.ev_idx]])
    if c[ENC.enc] == UNITS:
        return K.herding_encode_units(x, t, n, memory, D[c[ENC.k_units]], D[c[ENC.fanout]], ev_idx,
                                      ev_val)
    if c[ENC.enc] == HERDING:
        return K.herding_encode(x, t, n, memory, p[WP.param], ev_idx, ev_val), 0.0
    if lava is not None and c[ENC.enc] == LAVA:
        return K.lava_encode(x, t, n, memory, p[WP.lava_k], p[WP.param], LAVA_SHIFT, ev_idx,
                             ev_val), 0.0
    return K.threshold_encode(x, t, n, memory, p[WP.param], ev_idx, ev_val), 0.0


@njit(cache=True, nogil=True, inline="always")
def _count(c, st, n_ev, syn, adds, unit_adds, n_out):
    """A per-event weight layer's counters of the frame."""
    j, enc = c[WGT.layer], c[WGT.enc]
    st[EVENTS, j], st[SYNOPS, j], st[UPDATES, j] = n_ev, syn, n_out
    st[ADDITIONS, j] = unit_adds if enc == UNITS else (adds if enc == HERDING else syn)


@njit(cache=True, nogil=True, inline="always")
def _dense_core(c, p, F, I, D, ev_val, w, z, gain, prime, st, lava):  # noqa: E741
    """Encode, scatter ``z += W.T[i] * s`` and list the outputs (all, if any event) of a dense layer."""
    n_ev, unit_adds = _encode(c, p, F, I, D, ev_val, lava)
    syn, adds = K.dense_scatter(I[c[DNS.ev_idx]], ev_val, n_ev, gain,
                                w.reshape((c[DNS.n_in], c[DNS.n_out])), z)
    o_t, o_n = I[c[DNS.out_touched]], I[c[DNS.out_count]]
    if prime or n_ev:
        K.touch_all(o_t, o_n)
    else:
        o_n[0] = 0
    _count(c, st, n_ev, syn, adds, unit_adds, o_n[0])


@njit(cache=True, nogil=True, inline="always")
def _dense_fixed(c, p, F, I, D, prime, st, lava):  # noqa: E741
    guard = _fixed_guard(c, p, F, I, I[c[ENC.touched]], I[c[ENC.count]], 1)
    if guard != -1:
        return guard
    _dense_core(c, p, F, I, D, I[c[DNS.ev_val]], I[c[DNS.w]], I[c[DNS.acc]], 1, prime, st, lava)
    return _fixed_update(c, p, F, I)


@njit(cache=True, nogil=True, inline="always")
def _dense_float(c, p, F, I, D, prime, st, lava):  # noqa: E741
    if lava is not None and c[DNS.dz] >= 0:  # float64 "lava": the step's sum in int32 where exact
        n_ev, _ = _encode(c, p, F, I, D, F[c[DNS.ev_val]], lava)  # (weightops.DenseOp)
        w8 = I[c[DNS.w8]].view(np.int8)[: c[DNS.n_in] * c[DNS.n_out]]
        syn, adds = K.lava_dense_step(I[c[DNS.ev_idx]], F[c[DNS.ev_val]], n_ev,
                                      w8.reshape((c[DNS.n_in], c[DNS.n_out])), float(c[DNS.l1]),
                                      I[c[DNS.dz]].view(np.int32), F[c[DNS.acc]])
        o_t, o_n = I[c[DNS.out_touched]], I[c[DNS.out_count]]
        if prime or n_ev:
            K.touch_all(o_t, o_n)
        else:
            o_n[0] = 0
        _count(c, st, n_ev, syn, adds, 0.0, o_n[0])
    elif lava is not None and c[DNS.w8] >= 0:  # a "lava" layer's integer weights as int8 (DenseOp)
        w8 = I[c[DNS.w8]].view(np.int8)[: c[DNS.n_in] * c[DNS.n_out]]
        _dense_core(c, p, F, I, D, F[c[DNS.ev_val]], w8, F[c[DNS.acc]], p[WP.gain], prime, st, lava)
    else:
        _dense_core(c, p, F, I, D, F[c[DNS.ev_val]], F[c[DNS.w]], F[c[DNS.acc]], p[WP.gain], prime, st,
                    lava)
    return _lava_range(c, p, F) if lava is not None else -1


@njit(cache=True, nogil=True, inline="always")
def _conv_list(c, I, prime):  # noqa: E741
    """List a conv layer's output neurons from its reached (pixel, group) pairs (all on frame 0)."""
    o_t, o_n = I[c[CNV.out_touched]], I[c[CNV.out_count]]
    if prime:
        K.touch_all(o_t, o_n)
    else:
        K.expand_pixel_groups(I[c[CNV.pg_list]], I[c[CNV.pg_count]], c[CNV.groups], c[CNV.cg], o_t, o_n)
    return o_n[0]


@njit(cache=True, nogil=True, inline="always")
def _conv_core(c, p, F, I, D, ev_val, w, z, gain, mem_w, bias, frame, prime, st, lava):  # noqa: E741
    """Encode, scatter per event (:func:`conv_scatter`, or :func:`convt_scatter` for a
    transposed conv) and list the outputs of a conv layer; a depthwise layer recomputes the
    whole map instead (:func:`depthwise_dense`) when :func:`choose_dense` says so."""
    w4 = w.reshape((c[CNV.kh], c[CNV.kw], c[CNV.c_in], c[CNV.cg]))
    pg_list, pg_count = I[c[CNV.pg_list]], I[c[CNV.pg_count]]
    pg_count[0] = 0
    pstate, x, lazy = I[c[CNV.pstate]], F[c[ENC.x]], c[CNV.lazy] != 0
    n_touched = I[c[CNV.in_row_count]][0] * c[CNV.in_row_len] if lazy else I[c[ENC.count]][0]
    if c[CNV.dw] != 0 and K.choose_dense(pstate, n_touched, x.shape[0], p[CNV_P.dense_above], prime):
        one = c[CNV.cg] == 1 and not prime  # one output per pair: its list is the neuron list
        if one:
            pg_list, pg_count = I[c[CNV.out_touched]], I[c[CNV.out_count]]
            pg_count[0] = 0
        n_ev, syn, adds = K.depthwise_dense(
            x, F[c[ENC.memory]], c[ENC.enc] == HERDING, p[WP.param], gain, w4, bias, c[CNV.fixed] == 0, z,
            I[c[CNV.in_hw]], I[c[CNV.out_hw]], I[c[CNV.stride]], I[c[CNV.padding]], I[c[CNV.dilation]],
            mem_w, I[c[CNV.flag_w]].view(np.uint8), I[c[CNV.fan_y]], I[c[CNV.fan_x]],
            I[c[CNV.hit]].view(np.uint8), ev_val, pg_list, pg_count)
        _count(c, st, n_ev, syn, adds, 0.0, pg_count[0] if one else _conv_list(c, I, prime))
        pstate[K.PATH_STATE.last_events] = n_ev
        return
    if lazy:  # the input is listed by pixel rows only (ConvOp.lazy): list its neurons
        K.expand_pixel_groups(I[c[CNV.in_rows]], I[c[CNV.in_row_count]], 1, c[CNV.in_row_len],
                              I[c[ENC.touched]], I[c[ENC.count]])
    n_ev, unit_adds = _encode(c, p, F, I, D, ev_val, lava)
    args = (I[c[CNV.ev_idx]], ev_val, n_ev, gain, w4, z, I[c[CNV.in_hw]], I[c[CNV.out_hw]],
            I[c[CNV.stride]], I[c[CNV.padding]], I[c[CNV.dilation]], c[CNV.groups], pg_list, pg_count,
            I[c[CNV.pg_stamp]], frame)
    if c[KIND] == CONVT:
        syn, adds = K.convt_scatter(*args)
    else:
        syn, adds = K.conv_scatter(*args)
    _count(c, st, n_ev, syn, adds, unit_adds, _conv_list(c, I, prime))
    if c[CNV.dw] != 0:
        pstate[K.PATH_STATE.last_events] = n_ev


@njit(cache=True, nogil=True, inline="always")
def _conv_fixed(c, p, F, I, D, frame, prime, st, lava):  # noqa: E741
    guard = _fixed_guard(c, p, F, I, I[c[ENC.touched]], I[c[ENC.count]], 1)
    if guard != -1:
        return guard
    _conv_core(c, p, F, I, D, I[c[CNV.ev_val]], I[c[CNV.w]], I[c[CNV.acc]], 1, I[c[CNV.mem_w]],
               I[c[CNV.acc]], frame, prime, st, lava)  # acc as the (unread) bias: added after
    return _fixed_update(c, p, F, I)


@njit(cache=True, nogil=True, inline="always")
def _conv_float(c, p, F, I, D, frame, prime, st, lava):  # noqa: E741
    _conv_core(c, p, F, I, D, F[c[CNV.ev_val]], F[c[CNV.w]], F[c[CNV.acc]], p[WP.gain],
               F[c[CNV.mem_w]], F[c[CNV.bias]], frame, prime, st, lava)
    return _lava_range(c, p, F) if lava is not None else -1


@njit(cache=True, nogil=True)
def _run_other(c, p, F, I, D, frame, pool, merge, resize, smooth):  # noqa: E741
    """Every op kind without counters; a group whose flag is None is left out at compile time,
    and so are the smooth activations where ``smooth`` is None (one of them then raises)."""
    k = c[KIND]
    if k == ACTIVATION:
        if c[ACT.row_len] > 0:
            K.activation_rows(F[c[ACT.x]], F[c[ACT.y]], I[c[ACT.rows]], I[c[ACT.row_count]],
                              c[ACT.row_len], c[ACT.fn], p[ACT_P.alpha], p[ACT_P.lo], p[ACT_P.hi], smooth)
        else:
            K.activation_update(F[c[ACT.x]], F[c[ACT.y]], I[c[ACT.touched]], I[c[ACT.count]], c[ACT.fn],
                                p[ACT_P.alpha], p[ACT_P.lo], p[ACT_P.hi], smooth)
    elif k == POOL and c[POO.fused] != 0:
        pass  # run by its input's row (run_frames)
    elif k == POOL and pool is not None and c[POO.by_rows] != 0:
        K.global_pool_rows(F[c[POO.x]], I[c[POO.row_count]], c[POO.c], c[POO.is_max] != 0, F[c[POO.y]],
                           I[c[POO.out_touched]], I[c[POO.out_count]], I[c[POO.out_stamp]], frame,
                           D[c[POO.acc]])
    elif k == POOL and pool is not None:
        K.pool_update(F[c[POO.x]], I[c[POO.touched]], I[c[POO.count]], I[c[POO.in_hw]], c[POO.c],
                      I[c[POO.out_hw]], I[c[POO.kernel]], I[c[POO.stride]], I[c[POO.padding]],
                      c[POO.is_max] != 0, F[c[POO.y]], I[c[POO.out_touched]], I[c[POO.out_count]],
                      I[c[POO.out_stamp]], frame, I[c[POO.hit]].view(np.uint8))
    elif k == FLATTEN:
        K.flatten_update(F[c[FLT.x]], I[c[FLT.touched]], I[c[FLT.count]], c[FLT.hw], c[FLT.c],
                         F[c[FLT.y]], I[c[FLT.out_touched]], I[c[FLT.out_count]])
    elif k == ADD and merge is not None and c[ADD_C.c] > 0:
        K.add_rows(F[c[ADD_C.a]], F[c[ADD_C.b]], F[c[ADD_C.y]], I[c[ADD_C.a_rows]],
                   I[c[ADD_C.a_row_count]], I[c[ADD_C.b_rows]], I[c[ADD_C.b_row_count]], c[ADD_C.c],
                   I[c[ADD_C.out_rows]], I[c[ADD_C.out_row_count]], c[ADD_C.expand] != 0,
                   I[c[ADD_C.out_touched]], I[c[ADD_C.out_count]], I[c[ADD_C.out_stamp]], frame)
    elif k == ADD and merge is not None:
        K.add_update(F[c[ADD_C.a]], F[c[ADD_C.b]], F[c[ADD_C.y]], I[c[ADD_C.a_touched]],
                     I[c[ADD_C.a_count]], I[c[ADD_C.b_touched]], I[c[ADD_C.b_count]],
                     I[c[ADD_C.out_touched]], I[c[ADD_C.out_count]], I[c[ADD_C.out_stamp]], frame)
    elif k == UPSAMPLE and resize is not None:
        K.upsample_update(F[c[UPS.x]], I[c[UPS.touched]], I[c[UPS.count]], c[UPS.w_in], c[UPS.c],
                          c[UPS.sh], c[UPS.sw], F[c[UPS.y]], I[c[UPS.out_touched]],
                          I[c[UPS.out_count]])
    elif k == MUL and merge is not None:
        K.mul_update(F[c[MUL_C.a]], F[c[MUL_C.b]], F[c[MUL_C.y]], I[c[MUL_C.a_touched]],
                     I[c[MUL_C.a_count]], I[c[MUL_C.b_touched]], I[c[MUL_C.b_count]], c[MUL_C.c],
                     c[MUL_C.per_channel] != 0, I[c[MUL_C.out_touched]], I[c[MUL_C.out_count]],
                     I[c[MUL_C.out_stamp]], frame)
    elif k == RESAMPLE and resize is not None:
        K.pixel_map_update(F[c[RSM.x]], I[c[RSM.touched]], I[c[RSM.count]], c[RSM.c],
                           I[c[RSM.out_start]], I[c[RSM.out_pix]], I[c[RSM.in_start]],
                           I[c[RSM.in_pix]], D[c[RSM.in_w]], F[c[RSM.y]], I[c[RSM.out_touched]],
                           I[c[RSM.out_count]], I[c[RSM.out_stamp]], frame)
    elif k == GATHER and resize is not None:
        K.gather_update(F[c[GTH.x]], I[c[GTH.touched]], I[c[GTH.count]], c[GTH.c_in], I[c[GTH.dst]],
                        c[GTH.c_out], F[c[GTH.y]], I[c[GTH.out_touched]], I[c[GTH.out_count]])
    elif k == CONCAT and merge is not None:
        if c[CAT.first] != 0:
            I[c[CAT.out_count]][0] = 0
        K.concat_update(F[c[CAT.x]], I[c[CAT.touched]], I[c[CAT.count]], c[CAT.c], c[CAT.offset],
                        c[CAT.c_out], F[c[CAT.y]], I[c[CAT.out_touched]], I[c[CAT.out_count]])


@njit(cache=True, nogil=True)
def run_frames(code, par, F, I, D, frames, frame0, lo, hi, stats, out, out_slot, status,  # noqa: E741
               floats, fixed, pix, conv, dense, pool, merge, resize, lava, gemm, recompute, smooth,
               direct, narrow):
    """Run ops ``lo:hi`` of the program over ``frames[T, N_in]`` (PyTorch layout, flat).

    ``floats`` / ``fixed`` are None when no weight layer has float / fixed-point weights
    (:attr:`Program.floats`, :attr:`Program.fixed`), else 1: Numba decides ``x is not None``
    at compile time and leaves the unused paths out, so a float network compiles only
    the float kernels (about 0.6 of the time of both). Likewise ``pix, conv, dense, pool,
    merge, resize`` (:data:`KIND_GROUPS`, :attr:`Program.kinds`): the loop of a network is
    compiled with the op kinds it has (one specialisation per set, each cached on disk); a
    row of a group left out would do nothing, so :attr:`Program.flags` passes them all.
    ``lava, gemm, recompute, smooth, direct, narrow`` (:data:`PATH_FLAGS`,
    :attr:`Program.paths`) likewise leave out what only ``"lava"`` layers run, the pixel
    convs' gather-GEMM-scatter and dense recompute where no layer's path mode can run them (a
    pixel conv whose chooser picks a path left out raises instead of running another), the
    smooth activation functions where every activation is relu, leaky relu, clip or identity
    (a smooth one raises), and the dense recompute's direct and narrow convs where no float
    layer's shape takes them (the GEMM convolves instead).

    Frame ``t`` is frame number ``frame0 + t`` of the stream (number 0 primes: every
    neuron is sent). Per frame and weight layer ``j``, ``stats[t, :, j]`` gets the
    counters (rows ``COUNTER_ROWS``: events, synops, additions, neuron updates);
    ``out[t]`` the output node's value if ``out_slot >= 0``. Returns the number of frames
    completed; on a fixed-point accumulator overflow it stops early and leaves ``status = (row, neuron)``,
    or ``(row, -2 - input neuron)`` when an input's spike total failed the int64 guard
    (:func:`sigmadelta.fixedpoint.max_spike_total`) before the layer integrated; a float
    ``"lava"`` layer stops the same way, after its step, where Lava's fixed-point integers would
    have wrapped (:func:`sigmadelta.kernels.lava_range_check`).
    """
    for t in range(frames.shape[0]):
        frame_no = frame0 + t
        prime = frame_no == 0
        st = stats[t]
        for o in range(lo, hi):
            c, p = code[o], par[o]
            k, bad = c[KIND], -1
            if k == INPUT and pool is not None and c[INP.fused] != 0:  # and the pooling after it
                q = code[o + 1]
                K.input_pool(frames[t], F[c[INP.value]], I[c[INP.touched]], I[c[INP.count]],
                             I[q[POO.in_hw]], q[POO.c], I[q[POO.out_hw]], I[q[POO.kernel]],
                             I[q[POO.stride]], I[q[POO.padding]], q[POO.is_max] != 0, F[q[POO.y]],
                             I[q[POO.out_touched]], I[q[POO.out_count]], I[q[POO.out_stamp]],
                             frame_no, I[q[POO.hit]].view(np.uint8), prime)
            elif k == INPUT:
                K.load_frame(frames[t], c[INP.channels], F[c[INP.value]], F[c[INP.prev]],
                             I[c[INP.mask]], I[c[INP.touched]], I[c[INP.count]], prime)
            elif k == PIXCONV and pix is not None:  # a weight layer: its fixed-point or float path
                if fixed is not None and c[PIX.fixed] != 0:
                    bad = _pix_fixed(c, p, F, I, frame_no, prime, st, gemm, recompute, direct, narrow)
                elif floats is not None:
                    bad = _pix_float(c, p, F, I, frame_no, prime, st, lava, gemm, recompute, direct,
                                     narrow)
            elif k == DENSE and dense is not None:
                if fixed is not None and c[DNS.fixed] != 0:
                    bad = _dense_fixed(c, p, F, I, D, prime, st, lava)
                elif floats is not None:
                    bad = _dense_float(c, p, F, I, D, prime, st, lava)
            elif (k == CONV or k == CONVT) and conv is not None:
                if fixed is not None and c[CNV.fixed] != 0:
                    bad = _conv_fixed(c, p, F, I, D, frame_no, prime, st, lava)
                elif floats is not None:
                    bad = _conv_float(c, p, F, I, D, frame_no, prime, st, lava)
            else:
                _run_other(c, p, F, I, D, frame_no, pool, merge, resize, smooth)
            if bad != -1:
                status[0], status[1] = o, bad
                return t
        if out_slot >= 0:  # a loop: a slice copy would compile Numba's shape-error formatting
            src, row = F[out_slot], out[t]
            for i in range(src.shape[0]):
                row[i] = src[i]
    return frames.shape[0]


_TIED = (_fixed_update, _fixed_guard, _lava_range, _pix_core, _pix_count, _pix_fixed, _pix_float, _encode,
         _count, _dense_core, _dense_fixed, _dense_float, _conv_list, _conv_core, _conv_fixed, _conv_float,
         _run_other, run_frames)
tie_cache(_TIED, source_digest())
lock_numba_cache_saves()  # processes compiling at once (dask workers) never mix up entries
