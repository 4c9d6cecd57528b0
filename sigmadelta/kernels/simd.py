"""Short SIMD vectors as Numba values, for row updates LLVM would run at half width.

Numba's loops are vectorised by LLVM, which processes 32 floats per step and runs
the rest of a row 4 wide (or one by one). The rows of a conv scatter are often
short (8 to 60 floats), so most of their work falls in that tail. These
intrinsics let a kernel write the 8-wide (256-bit) loop itself::

    acc = vload(z, i)                  # z[i : i + L]          (L = lanes(z.itemsize))
    acc = vmul_add(acc, s, w, j)       # acc + s * w[j : j + L]  (vmul_add_vv: acc + a[i:] * b[j:])
    vstore(z, i, acc)                  # z[i : i + L] = acc

Indices are flat positions in 1-D contiguous arrays and are not checked (the
caller's loop bounds keep ``i + L <= size``). The multiply and the add are
rounded separately, as in the scalar ``acc + s * w[j]``, so a vector loop gives
bit for bit the scalar loop's result; integer lanes (fixed point) are exact.
"""

from llvmlite import ir
from numba import types
from numba.core import cgutils
from numba.extending import intrinsic, models, register_jitable, register_model

__all__ = ["Vec", "lanes", "vload", "vstore", "vmul_add", "vmul_add_vv", "vfma", "vadd", "vzero",
           "VECTOR_BYTES", "WIDE_BYTES", "wlanes", "wload", "wstore", "wfma", "wmul_add_vv", "wzero",
           "wzero_f32", "wfma_i8", "wstore_i32", "wfma_bcast"]

VECTOR_BYTES = 32  # AVX2; a narrower machine splits each vector, a wider one is not used fully
WIDE_BYTES = 64  # the w* intrinsics: AVX-512 (LLVM splits them in two on an AVX2 machine)


@register_jitable
def lanes(itemsize: int) -> int:
    """Elements of one vector of items of ``itemsize`` bytes (callable in kernels too)."""
    return VECTOR_BYTES // itemsize


class Vec(types.Type):
    """A vector of ``n`` elements of the scalar type ``dtype`` (an LLVM vector value)."""

    def __init__(self, dtype: types.Type, n: int):
        self.dtype, self.n = dtype, n
        super().__init__(name=f"Vec({dtype}x{n})")


@register_model(Vec)
class _VecModel(models.PrimitiveModel):
    def __init__(self, dmm, fe_type):
        be_type = ir.VectorType(dmm.lookup(fe_type.dtype).get_value_type(), fe_type.n)
        super().__init__(dmm, fe_type, be_type)


@register_jitable
def wlanes(itemsize: int) -> int:
    """Elements of one wide vector (:data:`WIDE_BYTES`) of items of ``itemsize`` bytes."""
    return WIDE_BYTES // itemsize


def _vec_of(arr: types.Array, nbytes: int = VECTOR_BYTES) -> Vec:
    return Vec(arr.dtype, nbytes // (arr.dtype.bitwidth // 8))


def _ok(arr, idx) -> bool:
    return (isinstance(arr, types.Array) and arr.ndim == 1 and arr.layout == "C"
            and isinstance(idx, types.Integer) and isinstance(arr.dtype, (types.Float, types.Integer)))


def _ptr(context, builder, arr_ty, arr, idx_ty, idx, vty):
    """``&arr[idx]`` as a pointer to a vector."""
    ary = context.make_array(arr_ty)(context, builder, arr)
    i = context.cast(builder, idx, idx_ty, types.intp)
    return builder.bitcast(builder.gep(ary.data, [i]), vty.as_pointer())


def _load_codegen(context, builder, sig, args):
    """``arr[idx : idx + n]`` as one unaligned vector load (``sig``: ``vec(arr, idx)``)."""
    vty = context.get_value_type(sig.return_type)
    ptr = _ptr(context, builder, sig.args[0], args[0], sig.args[1], args[1], vty)
    return builder.load(ptr, align=sig.args[0].dtype.bitwidth // 8)


def _store_codegen(context, builder, sig, args):
    """``arr[idx : idx + n] = vec`` as one unaligned vector store (``sig``: ``void(arr, idx, vec)``)."""
    vty = context.get_value_type(sig.args[2])
    ptr = _ptr(context, builder, sig.args[0], args[0], sig.args[1], args[1], vty)
    builder.store(args[2], ptr, align=sig.args[0].dtype.bitwidth // 8)
    return context.get_dummy_value()


def _zero_codegen(context, builder, sig, args):
    """The all-zero vector of the return type."""
    return cgutils.get_null_value(context.get_value_type(sig.return_type))


def _load_splat(context, builder, sig, args):
    """For ``(acc, s, arr, idx)``: the vector type, ``arr``'s dtype, ``arr[idx : idx + n]``
    loaded and ``s`` broadcast to every lane."""
    vty = context.get_value_type(sig.args[0])
    dt = sig.args[2].dtype
    w = builder.load(_ptr(context, builder, sig.args[2], args[2], sig.args[3], args[3], vty),
                     align=dt.bitwidth // 8)
    sc = context.cast(builder, args[1], sig.args[1], dt)
    sv = builder.insert_element(cgutils.get_null_value(vty), sc, ir.Constant(ir.IntType(32), 0))
    sv = builder.shuffle_vector(sv, ir.Constant(vty, ir.Undefined),
                                ir.Constant(ir.VectorType(ir.IntType(32), vty.count),
                                            [0] * vty.count))
    return vty, dt, w, sv


@intrinsic
def vload(typingctx, arr, idx):
    """``arr[idx : idx + L]`` as a vector (unaligned load)."""
    if not _ok(arr, idx):
        return None

    return _vec_of(arr)(arr, idx), _load_codegen


@intrinsic
def vstore(typingctx, arr, idx, vec):
    """``arr[idx : idx + L] = vec`` (unaligned store)."""
    if not _ok(arr, idx) or vec != _vec_of(arr):
        return None

    return types.void(arr, idx, vec), _store_codegen


@intrinsic
def vmul_add(typingctx, acc, s, arr, idx):
    """``acc + s * arr[idx : idx + L]`` with the scalar ``s`` broadcast, rounded as scalars."""
    if not _ok(arr, idx) or acc != _vec_of(arr) or not isinstance(s, (types.Float, types.Integer)):
        return None

    def codegen(context, builder, sig, args):
        vty, dt, w, sv = _load_splat(context, builder, sig, args)
        if isinstance(dt, types.Integer):
            return builder.add(args[0], builder.mul(sv, w))
        return builder.fadd(args[0], builder.fmul(sv, w))

    return acc(acc, s, arr, idx), codegen


def _fma(context, builder, sig, args):
    """The IR of ``acc + s * arr[idx:]`` by ``llvm.fma`` (signature ``(acc, s, arr, idx)``)."""
    vty, dt, w, sv = _load_splat(context, builder, sig, args)
    name = f"llvm.fma.v{vty.count}f{dt.bitwidth}"
    fma = cgutils.get_or_insert_function(builder.module, ir.FunctionType(vty, [vty] * 3), name)
    return builder.call(fma, [sv, w, args[0]])


@intrinsic
def vfma(typingctx, acc, s, arr, idx):
    """``acc + s * arr[idx : idx + L]`` as one fused multiply-add per lane (float vectors),
    rounded once: equal to :func:`vmul_add` wherever the product and the sum are exact (integers
    below ``2**24`` in float32, ``2**53`` in float64), at half its instructions."""
    if (not _ok(arr, idx) or acc != _vec_of(arr) or not isinstance(arr.dtype, types.Float)
            or not isinstance(s, (types.Float, types.Integer))):
        return None

    return acc(acc, s, arr, idx), _fma


def _mul_add_vv(context, builder, sig, args):
    """The IR of ``acc + a[i:] * b[j:]`` (signature ``(acc, a, i, b, j)``), rounded as scalars."""
    vty = context.get_value_type(sig.args[0])
    dt = sig.args[3].dtype
    va = builder.load(_ptr(context, builder, sig.args[1], args[1], sig.args[2], args[2], vty),
                      align=dt.bitwidth // 8)
    vb = builder.load(_ptr(context, builder, sig.args[3], args[3], sig.args[4], args[4], vty),
                      align=dt.bitwidth // 8)
    if isinstance(dt, types.Integer):
        return builder.add(args[0], builder.mul(va, vb))
    return builder.fadd(args[0], builder.fmul(va, vb))


@intrinsic
def vmul_add_vv(typingctx, acc, a, i, b, j):
    """``acc + a[i : i + L] * b[j : j + L]`` (element by element, rounded as scalars)."""
    if not (_ok(a, i) and _ok(b, j)) or a.dtype != b.dtype or acc != _vec_of(b):
        return None

    return acc(acc, a, i, b, j), _mul_add_vv


@intrinsic
def vadd(typingctx, a, b):
    """``a + b``, lane by lane (two vectors of one type)."""
    if not isinstance(a, Vec) or a != b:
        return None

    def codegen(context, builder, sig, args):
        if isinstance(sig.args[0].dtype, types.Integer):
            return builder.add(args[0], args[1])
        return builder.fadd(args[0], args[1])

    return a(a, b), codegen


@intrinsic
def vzero(typingctx, arr):
    """A vector of zeros of ``arr``'s element type."""
    if not (isinstance(arr, types.Array) and isinstance(arr.dtype, (types.Float, types.Integer))):
        return None

    return _vec_of(arr)(arr), _zero_codegen


# Wide vectors (WIDE_BYTES): the same loads, stores and fused multiply-adds, 16 float32 lanes.


@intrinsic
def wload(typingctx, arr, idx):
    """``arr[idx : idx + W]`` as a wide vector (``W = wlanes(itemsize)``; unaligned load)."""
    if not _ok(arr, idx):
        return None

    return _vec_of(arr, WIDE_BYTES)(arr, idx), _load_codegen


@intrinsic
def wstore(typingctx, arr, idx, vec):
    """``arr[idx : idx + W] = vec`` for a wide vector (unaligned store)."""
    if not _ok(arr, idx) or vec != _vec_of(arr, WIDE_BYTES):
        return None

    return types.void(arr, idx, vec), _store_codegen


@intrinsic
def wfma(typingctx, acc, s, arr, idx):
    """:func:`vfma` on wide vectors: ``acc + s * arr[idx : idx + W]``, one rounding per lane."""
    if (not _ok(arr, idx) or acc != _vec_of(arr, WIDE_BYTES) or not isinstance(arr.dtype, types.Float)
            or not isinstance(s, (types.Float, types.Integer))):
        return None

    return acc(acc, s, arr, idx), _fma


@intrinsic
def wfma_bcast(typingctx, acc, a, i, b, j):
    """``acc + a[i] * b[j : j + W]``: the element ``a[i]`` broadcast to every lane (loaded with
    no wraparound test, so that the address stays one register plus the index), one fused
    multiply-add per lane (float vectors of ``b``'s dtype, ``a`` of the same dtype)."""
    if (not (_ok(a, i) and _ok(b, j)) or a.dtype != b.dtype or acc != _vec_of(b, WIDE_BYTES)
            or not isinstance(b.dtype, types.Float)):
        return None

    def codegen(context, builder, sig, args):
        vty = context.get_value_type(sig.args[0])
        dt = sig.args[3].dtype
        ety = context.get_value_type(dt)
        sc = builder.load(_ptr(context, builder, sig.args[1], args[1], sig.args[2], args[2], ety),
                          align=dt.bitwidth // 8)
        w = builder.load(_ptr(context, builder, sig.args[3], args[3], sig.args[4], args[4], vty),
                         align=dt.bitwidth // 8)
        sv = builder.insert_element(cgutils.get_null_value(vty), sc, ir.Constant(ir.IntType(32), 0))
        sv = builder.shuffle_vector(sv, ir.Constant(vty, ir.Undefined),
                                    ir.Constant(ir.VectorType(ir.IntType(32), vty.count), [0] * vty.count))
        fma = cgutils.get_or_insert_function(builder.module, ir.FunctionType(vty, [vty] * 3),
                                             f"llvm.fma.v{vty.count}f{dt.bitwidth}")
        return builder.call(fma, [sv, w, args[0]])

    return acc(acc, a, i, b, j), codegen


@intrinsic
def wmul_add_vv(typingctx, acc, a, i, b, j):
    """:func:`vmul_add_vv` on wide vectors: ``acc + a[i : i + W] * b[j : j + W]``, the multiply
    and the add rounded separately (bit for bit the scalar loop's result)."""
    if not (_ok(a, i) and _ok(b, j)) or a.dtype != b.dtype or acc != _vec_of(b, WIDE_BYTES):
        return None

    return acc(acc, a, i, b, j), _mul_add_vv


@intrinsic
def wzero(typingctx, arr):
    """A wide vector of zeros of ``arr``'s element type."""
    if not (isinstance(arr, types.Array) and isinstance(arr.dtype, (types.Float, types.Integer))):
        return None

    return _vec_of(arr, WIDE_BYTES)(arr), _zero_codegen


# int8 weights into float32 wide vectors (exact: every int8 is a float32).


@intrinsic
def wzero_f32(typingctx, like):
    """A wide vector of float32 zeros (``like``: any integer, unread)."""
    if not isinstance(like, types.Integer):
        return None

    return Vec(types.float32, WIDE_BYTES // 4)(like), _zero_codegen


@intrinsic
def wfma_i8(typingctx, acc, s, arr, idx):
    """``acc + s * float32(arr[idx : idx + W])`` for int8 ``arr`` and a wide float32 vector
    ``acc`` (``W = wlanes(4)``): the int8 values widened and converted, one fused multiply-add
    per lane (exact wherever the product and the sum are integers below ``2**24``)."""
    f32 = Vec(types.float32, WIDE_BYTES // 4)
    if (not _ok(arr, idx) or arr.dtype != types.int8 or acc != f32
            or not isinstance(s, (types.Float, types.Integer))):
        return None

    def codegen(context, builder, sig, args):
        vty = context.get_value_type(sig.args[0])
        bty = ir.VectorType(ir.IntType(8), vty.count)
        w = builder.sitofp(builder.load(_ptr(context, builder, sig.args[2], args[2], sig.args[3], args[3],
                                             bty), align=1), vty)
        sc = context.cast(builder, args[1], sig.args[1], types.float32)
        sv = builder.insert_element(cgutils.get_null_value(vty), sc, ir.Constant(ir.IntType(32), 0))
        sv = builder.shuffle_vector(sv, ir.Constant(vty, ir.Undefined),
                                    ir.Constant(ir.VectorType(ir.IntType(32), vty.count), [0] * vty.count))
        fma = cgutils.get_or_insert_function(builder.module, ir.FunctionType(vty, [vty] * 3),
                                             f"llvm.fma.v{vty.count}f32")
        return builder.call(fma, [sv, w, args[0]])

    return acc(acc, s, arr, idx), codegen


@intrinsic
def wstore_i32(typingctx, arr, idx, vec):
    """``arr[idx : idx + W] = int32(vec)`` for int32 ``arr`` and a wide float32 vector of
    integers (truncated toward zero: exact for integers)."""
    if not _ok(arr, idx) or arr.dtype != types.int32 or vec != Vec(types.float32, WIDE_BYTES // 4):
        return None

    def codegen(context, builder, sig, args):
        ity = ir.VectorType(ir.IntType(32), sig.args[2].n)
        ptr = _ptr(context, builder, sig.args[0], args[0], sig.args[1], args[1], ity)
        builder.store(builder.fptosi(args[2], ity), ptr, align=4)
        return context.get_dummy_value()

    return types.void(arr, idx, vec), codegen
