"""Bit scans usable inside Numba kernels (LLVM's ``llvm.cttz``).

A kernel that keeps one bit per neuron (a pixel's changed channels in an int64
word) visits the set bits in increasing order with::

    while m != 0:
        b = cttz(m)      # index of the lowest set bit
        ...
        m &= m - 1       # clear it
"""

from llvmlite import ir
from numba import types
from numba.extending import intrinsic

__all__ = ["cttz"]


@intrinsic
def cttz(typingctx, x):
    """``cttz(x)``: the number of trailing zero bits of integer ``x`` (undefined for 0)."""
    if not isinstance(x, types.Integer):
        return None

    def codegen(context, builder, signature, args):
        ty = ir.IntType(x.bitwidth)
        fnty = ir.FunctionType(ty, [ty, ir.IntType(1)])
        fn = builder.module.declare_intrinsic("llvm.cttz", [ty], fnty)
        return builder.call(fn, [args[0], ir.IntType(1)(1)])

    return x(x), codegen
