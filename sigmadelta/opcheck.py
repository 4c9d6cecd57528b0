"""Build-time bounds check of the runtime operators: no kernel may index outside its arrays.

The kernels of the frame loop do no bounds checking (Numba, ``boundscheck`` off), so a
node whose arrays disagree with its shapes would read or write memory past them. Before
:func:`sigmadelta.assemble.build_program` compiles the operators of
:func:`sigmadelta.ops.build_ops` into the op table, :func:`check_ops` verifies, per
operator, the size relations its kernels' index arithmetic relies on::

    input      value[N], N = C*H*W;  change mask as long as mask_words(C, H*W)
    dense      W^T [N_in, N_out]: row i for every input neuron i < N_in, N_out outputs
    conv       N_in = H_in*W_in*C_in, N_out = H_out*W_out*C_out, C_in = groups*(C_in/groups)
               and the weight layout's C_in, kernel and channel counts agree with the geometry
    pool       N_in = H_in*W_in*C, N_out = H_out*W_out*C, stride and kernel >= 1
    flatten    N_in = N_out = H*W*C
    add        both inputs and the output of one size
    concat     inputs on the output's pixels, channel ranges that fill C_out exactly
    resample   fan-in / fan-out lists within the input's and output's pixels, CSR starts in order
    gather     every routed channel within C_out, on the input's pixels
    every node touched[N], stamp[N] (and a pixel list of H*W + 1) for value[N]

Any mismatch raises :class:`ProgramError` naming the node, before anything runs.
"""

from __future__ import annotations

import numpy as np

from .kernels import mask_words
from .ops import ActivationOp, AddOp, ConcatOp, FlattenOp, GatherOp, InputOp, PoolOp, ResampleOp
from .weightops import ConvOp, ConvTOp, DenseOp, PixelConvOp, WeightOp

__all__ = ["ProgramError", "check_ops"]


class ProgramError(ValueError):
    """Operators whose arrays do not fit their shapes (the kernels would index out of bounds)."""


def _need(ok: bool, where: str, msg: str) -> None:
    if not ok:
        raise ProgramError(f"{where}: {msg}; refusing to build a program that would index "
                           f"outside its arrays")


def _n(a) -> int:
    return int(np.asarray(a).size)


def check_ops(ops: list, states: list, output: int) -> None:
    """Check every operator's arrays against its shapes (see the module docstring)."""
    _need(0 <= output < len(states), "output", f"index {output} outside the {len(states)} nodes")
    for k, (op, st) in enumerate(zip(ops, states, strict=True)):
        where = f"node {k} ({type(op).__name__})"
        n = _n(st.value)
        _need(_n(st.touched) >= n and _n(st.stamp) >= n, where, "touched/stamp shorter than value")
        if st.row_len > 0:
            _need(n % st.row_len == 0 and _n(st.rows) >= n // st.row_len + 1, where,
                  f"pixel list for rows of {st.row_len} does not fit {n} values")
        check = _CHECKS.get(type(op))
        if check is not None:
            check(op, n, where)


def _input(op: InputOp, n: int, where: str) -> None:
    c = op.shape[0] if len(op.shape) == 3 else 1
    _need(n == int(np.prod(op.shape)) and n % c == 0, where, f"value[{n}] for input {op.shape}")
    _need(_n(op.mask) == mask_words(c, n // c) and _n(op.prev) in (0, n), where,
          "change mask or last frame of the wrong size")


def _activation(op: ActivationOp, n: int, where: str) -> None:
    _need(_n(op.inp.value) == n, where, f"input of {_n(op.inp.value)} values, output of {n}")


def _weight(op: WeightOp, n_in: int, n_out: int, where: str) -> None:
    """What every weight op shares: encoder arrays, bias and accumulator sizes."""
    _need(all(_n(a) == n_in for a in op.q), where, f"encoder arrays not of the input size {n_in}")
    _need(_n(op.bias_cl) == n_out and _n(op.acc) == n_out, where,
          f"bias or accumulator not of the output size {n_out}")
    if op.units:
        _need(_n(op.enc.k_units) == n_in and _n(op.enc.fanout) == n_in, where, "per-unit scales' size")


def _dense(op: DenseOp, n_out: int, where: str) -> None:
    n_in = _n(op.inp.value)
    _weight(op, n_in, n_out, where)
    _need(op.w.shape == (n_in, n_out), where,  # W^T [in, out]
          f"weights {op.w.shape} for {n_in} inputs and {n_out} outputs")
    if op.w8 is not None:  # the same weights as int8, packed in int64 words
        _need(8 * _n(op.w8) >= n_in * n_out and np.array_equal(
            op.w8.view(np.int8)[:n_in * n_out], op.w.ravel()), where, "int8 weights equal to the weights")


def _pixel_conv(op: PixelConvOp, n_out: int, where: str) -> None:
    """Run layout [kh, C_in, kw*Cg] and the packed geometry of kernels.make_geom."""
    n_in = _n(op.inp.value)
    _weight(op, n_in, n_out, where)
    in_px, out_px = int(np.prod(op.in_hw)), int(np.prod(op.out_hw))
    kh, c_in, lw = op.w.shape
    gm = op.pgeom
    cg = int(gm[10])
    _need(tuple(int(v) for v in gm[:4]) == (*map(int, op.in_hw), *map(int, op.out_hw))
          and int(gm[8]) == kh and lw == int(gm[9]) * cg and min(gm[4], gm[5]) >= 1, where,
          "geometry and weights disagree")
    _need(in_px * c_in == n_in and out_px * cg == n_out, where,
          f"{in_px} input pixels x {c_in} channels != {n_in} or {out_px} output pixels x {cg} "
          f"channels != {n_out}")
    _need(_n(op.pg[2]) == out_px and _n(op.pg[0]) >= out_px + 1, where, "pixel lists' size")
    _need(_n(op.px[0]) >= n_in and _n(op.px[1]) >= n_in + 1 and _n(op.px[2]) >= c_in, where,
          "event grouping buffers too short")
    if op.inp.row_len > 0:
        _need(op.inp.row_len == c_in, where, f"input rows of {op.inp.row_len}, {c_in} channels")


def _conv(op: ConvOp, n_out: int, where: str) -> None:
    n_in = _n(op.inp.value)
    _weight(op, n_in, n_out, where)
    in_px, out_px = int(np.prod(op.in_hw)), int(np.prod(op.out_hw))
    stride, padding, dilation = op.geom
    _need(min(*stride, *dilation) >= 1 and min(padding) >= 0, where, "stride/dilation < 1")
    kh, kw, c_in, cg = op.w.shape
    _need(c_in % op.groups == 0 and cg == op.cg, where, f"{c_in} channels, groups={op.groups}")
    _need(in_px * c_in == n_in and out_px * cg * op.groups == n_out, where,
          f"{in_px} input pixels x {c_in} channels != {n_in} or {out_px} output pixels x "
          f"{cg * op.groups} channels != {n_out}")
    _need(_n(op.pg[2]) == out_px * op.groups and _n(op.pg[0]) >= out_px * op.groups, where,
          "pixel-group lists' size")
    if op.dw:  # the depthwise dense path (kernels.depthwise_dense)
        (py, px), (h, w) = op.geom[1], op.in_hw
        n_pad = (h + 2 * py) * (w + 2 * px) * c_in
        _need(op.groups == c_in and _n(op.mem_w) == n_pad and 8 * _n(op.flag_w) >= n_pad
              and 8 * _n(op.hit) >= c_in and _n(op.fan[0]) == h and _n(op.fan[1]) == w, where,
              "depthwise dense-path buffers' size")


def _pool(op: PoolOp, n_out: int, where: str) -> None:
    kernel, stride, padding, _ = op.geom
    n_in = _n(op.inp.value)
    _need(int(np.prod(op.in_hw)) * op.c == n_in and int(np.prod(op.out_hw)) * op.c == n_out,
          where, f"{op.in_hw} x {op.c} -> {op.out_hw} does not fit {n_in} -> {n_out} values")
    _need(min(*kernel, *stride) >= 1 and min(padding) >= 0 and 8 * _n(op.hit) >= n_in, where,
          "kernel/stride < 1 or hit mask too short")


def _flatten(op: FlattenOp, n_out: int, where: str) -> None:
    _need(op.hw * op.c == _n(op.inp.value) == n_out, where, f"{op.hw} pixels x {op.c} channels")


def _add(op: AddOp, n_out: int, where: str) -> None:
    _need(_n(op.a.value) == _n(op.b.value) == n_out, where, "inputs and output of different sizes")
    if op.c:  # by pixel rows: each input's rows hold every pixel; the stamps one per pixel
        px = n_out // op.c
        _need(px * op.c == n_out and min(_n(op.a.rows), _n(op.b.rows)) >= px, where,
              f"{n_out} values are not pixels of {op.c} channels with a row list each")


def _concat(op: ConcatOp, n_out: int, where: str) -> None:
    _need(sum(op.c_in) == op.c_out and n_out % op.c_out == 0, where,
          f"channels {op.c_in} do not make {op.c_out}")
    px = n_out // op.c_out
    _need(all(_n(i.value) == px * c for i, c in zip(op.ins, op.c_in, strict=True)), where,
          "inputs not on the output's pixels")


def _resample(op: ResampleOp, n_out: int, where: str) -> None:
    n_in = _n(op.inp.value)
    px_in, px_out = len(op.out_start) - 1, len(op.in_start) - 1
    _need(px_in * op.c == n_in and px_out * op.c == n_out, where,
          f"{px_in} -> {px_out} pixels x {op.c} channels does not fit {n_in} -> {n_out} values")
    for start, idx, n_px in ((op.out_start, op.out_pix, px_out), (op.in_start, op.in_pix, px_in)):
        _need(start[0] == 0 and (np.diff(start) >= 0).all() and start[-1] == len(idx)
              and (len(idx) == 0 or (idx.min() >= 0 and idx.max() < n_px)), where,
              "fan lists out of order or outside the pixels")
    _need(_n(op.in_w) == len(op.in_pix), where, "one weight per fan-in entry")


def _gather(op: GatherOp, n_out: int, where: str) -> None:
    n_in = _n(op.inp.value)
    _need(_n(op.dst) == op.c_in and n_in % op.c_in == 0 and n_out == n_in // op.c_in * op.c_out
          and op.dst.max(initial=-1) < op.c_out, where, f"routing {op.c_in} -> {op.c_out} channels")


_CHECKS = {InputOp: _input, ActivationOp: _activation, DenseOp: _dense, ConvOp: _conv,
           ConvTOp: _conv, ResampleOp: _resample, GatherOp: _gather, PixelConvOp: _pixel_conv,
           PoolOp: _pool, FlattenOp: _flatten, AddOp: _add, ConcatOp: _concat}
