"""Assemble a network's operators into the op table that :func:`sigmadelta.program.run_frames`
runs: :func:`build_program` collects every operator's rows (``emit``) into a :class:`Program`,
with the flags that say which op kinds (:data:`sigmadelta.program.KIND_GROUPS`) and which code
paths (:data:`sigmadelta.program.PATH_FLAGS`, :func:`path_flags`) its compiled loop must hold.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np
from numba import typed

from . import kernels as K
from .kernels.directconv import direct_enabled
from .opcheck import check_ops
from .ops import ActivationOp, InputOp, PoolOp
from .program import KIND_GROUPS, PATH_FLAGS
from .slots import ACTIVATION, FLATTEN, INPUT, KIND, Builder
from .weightops import PixelConvOp, WeightOp

__all__ = ["Program", "build_program", "path_flags", "dense_convs", "share_dense_scratch",
           "FUSE_INPUT_POOL", "SHARE_DENSE_SCRATCH"]

#: Pixel convs of one program whose zero-padded input has the same layout share one buffer
#: for it (:func:`share_dense_scratch`); False gives each its own (for comparison).
SHARE_DENSE_SCRATCH = True

#: Run an input and the pooling that is its only consumer as one op where they are adjacent in
#: the run order (:func:`sigmadelta.kernels.input_pool`); False runs them apart (for comparison).
FUSE_INPUT_POOL = True


class Program(NamedTuple):
    """A network compiled to an op table (see module docstring)."""

    code: np.ndarray  # int64 [n_ops, NC]
    par: np.ndarray  # float64 [n_ops, NP]
    F: typed.List
    I: typed.List  # noqa: E741 (the int64 list, next to F and D)
    D: typed.List
    out_slot: int  # F slot of the output node's value
    row_op: np.ndarray  # int64 [n_rows]: the operator (index in build_ops order) of each row
    floats: int | None = None  # 1 if any weight layer has float weights, else None
    fixed: int | None = None  # 1 if any weight layer is fixed point, else None
    kinds: tuple = (None,) * len(KIND_GROUPS)  # per KIND_GROUPS: 1 if a row is of that group
    paths: tuple = (None,) * len(PATH_FLAGS)  # per PATH_FLAGS: 1 if a layer may run that path

    @property
    def flags(self) -> tuple:
        """The last arguments of :func:`run_frames`: ``floats, fixed``, one per kind group,
        one per :data:`PATH_FLAGS`."""
        return (self.floats, self.fixed, *self.kinds, *self.paths)


def path_flags(ops: list) -> tuple:
    """:data:`PATH_FLAGS` of a program of the operators ``ops``, each None or 1: a ``"lava"``
    layer; a pixel conv whose path mode may run gather-GEMM-scatter or the dense
    recompute (:meth:`~sigmadelta.weightops.PixelConvOp.may_run`); a smooth activation
    (:attr:`~sigmadelta.ops.ActivationOp.smooth`); a float pixel conv that may recompute and
    whose shape the direct or the narrow conv takes (:func:`dense_convs`). They follow the
    layers' path modes: :meth:`sigmadelta.Simulator.set_conv_path` asks again."""
    weight = [op for op in ops if isinstance(op, WeightOp)]
    pix = [op for op in weight if isinstance(op, PixelConvOp)]
    dense = [op for op in pix if op.may_run(K.PATH_DENSE)]
    convs = [dense_convs(op) for op in dense]
    present = (any(op.enc.lava for op in weight), any(op.may_run(K.PATH_GEMM) for op in pix), dense,
               any(op.smooth for op in ops if isinstance(op, ActivationOp)),
               any(d for d, _ in convs), any(n for _, n in convs))
    return tuple(1 if v else None for v in present)


def share_dense_scratch(ops: list) -> None:
    """Give the pixel convs among ``ops`` whose dense path's padded input (``dense_bufs[0]``:
    :func:`sigmadelta.kernels.padded_size`, then a ``"lava"`` layer's ``dz``) has the same
    length, dtype, input channels, input size and padding one fresh buffer of zeros for it, shared.

    The buffer is scratch: each dense frame (:func:`sigmadelta.kernels.dense_recompute`,
    :func:`sigmadelta.kernels.conv1x1_dense`) writes every input position and every ``dz``
    entry before it reads them, and with the same layout no layer writes where another
    keeps its zero padding. Ops of one program run one after the other (the two stages of a
    two-thread run are two programs, each with buffers of its own). Fewer distinct buffers
    keep the working set in cache: the ResNet block (two 3x3 convs on 64x64x32, dense every
    frame) 3510 -> 3381 and 3567 -> 3474 us per frame, float32, thread CPU time, alternating
    pass for pass in one process (2-vCPU Intel Xeon VM, AVX-512, load average 4)."""
    pools: dict = {}
    for op in ops:
        if not isinstance(op, PixelConvOp):
            continue
        buf, g = op.dense_bufs[0], op.pgeom
        key = (buf.shape[0], buf.dtype.str, int(op.w_cl.shape[2]), int(g[0]), int(g[1]), int(g[6]),
               int(g[7]))
        if key not in pools:
            pools[key] = np.zeros_like(buf)
        op.dense_bufs = (pools[key], op.dense_bufs[1])


def dense_convs(op: PixelConvOp) -> tuple[bool, bool]:
    """``(direct, narrow)``: whether the dense recompute of pixel conv ``op`` convolves by the
    register-blocked direct conv (:func:`sigmadelta.kernels.direct_vectors` picks a block) or
    by the narrow or small conv (:func:`sigmadelta.kernels.narrow_channels` and
    :func:`sigmadelta.kernels.small_channels`, tried first, in that order) rather than
    by the GEMM, as the compiled dense path decides it (float layers; not where
    :data:`sigmadelta.kernels.directconv.DIRECT_CONV` is off; a fixed-point layer runs its
    integer loop)."""
    if op.fixed or not direct_enabled():
        return False, False
    c_in, itemsize = op.w_cl.shape[2], np.dtype(op.wdtype).itemsize
    if K.narrow_channels(op.pgeom, c_in, itemsize) or K.small_channels(op.pgeom, c_in, itemsize):
        return False, True
    return K.direct_vectors(op.pgeom, c_in, itemsize) > 0, False


def build_program(ops: list, states: list, output: int, dtype,
                  order: list[int] | None = None) -> Program:
    """Compile the operators of :func:`sigmadelta.ops.build_ops` into a :class:`Program`.

    ``order`` lists the operators in the order they run each frame (default: topological;
    :func:`sigmadelta.ops.pipeline_order` for ``timing="pipelined"``). Weight layer ``j``
    keeps its (topological) counter column whatever the order.
    """
    check_ops(ops, states, output)  # every kernel's indices within its arrays (sigmadelta.opcheck)
    b, row_op = Builder(dtype), []
    column = {id(op): j for j, op in enumerate(o for o in ops if isinstance(o, WeightOp))}
    seq = list(range(len(ops))) if order is None else list(order)
    for k in seq:  # fused: an input and its pooling, both in this program, the pooling right after
        if isinstance(ops[k], (InputOp, PoolOp)):
            ops[k].fused = False
    for k, nxt in zip(seq, seq[1:], strict=False):
        if FUSE_INPUT_POOL and isinstance(ops[k], InputOp) and ops[k].pool is ops[nxt]:
            ops[k].fused = ops[nxt].fused = True
    if SHARE_DENSE_SCRATCH:
        share_dense_scratch([ops[k] for k in seq])
    for k in seq:
        op = ops[k]
        n_rows = len(b.code)
        if isinstance(op, WeightOp):
            op.emit(b, column[id(op)])
        elif hasattr(op, "emit"):
            op.emit(b)
        else:
            raise TypeError(f"no program row for operator {type(op).__name__}")
        row_op += [k] * (len(b.code) - n_rows)
    out_slot = b.f(states[output].value)
    fixed = {bool(op.fixed) for op in ops if isinstance(op, WeightOp)}
    code = np.stack(b.code)
    covered = {INPUT, ACTIVATION, FLATTEN}.union(*KIND_GROUPS.values())
    if not set(code[:, KIND].tolist()) <= covered:  # a kind no branch of run_frames would run
        raise ValueError(f"op kinds {sorted(set(code[:, KIND].tolist()) - covered)} are in no group "
                         f"of program.KIND_GROUPS")
    kinds = tuple(1 if np.isin(code[:, KIND], group).any() else None for group in KIND_GROUPS.values())
    return Program(code, np.stack(b.par), b.F, b.I, b.D, out_slot, np.array(row_op, np.int64),
                   1 if False in fixed else None, 1 if True in fixed else None, kinds, path_flags(ops))
