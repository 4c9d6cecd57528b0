"""Running a kernel and its NumPy twin side by side (shared by the kernel tests)."""

import inspect

import numpy as np

from sigmadelta import kernels as K
from sigmadelta.kernels import numpy_twins as T


def touched_list(rng, n, frac=0.4):
    """A random ascending list of touched neurons ``touched[:count[0]]`` of ``n``."""
    idx = np.flatnonzero(rng.random(n) < frac).astype(np.int64)
    touched = np.zeros(n, np.int64)
    touched[: len(idx)] = idx
    return touched, np.array([len(idx)], np.int64)


def both(fn_name, *args):
    """Run kernel and twin on deep copies of the arguments; return (results, arg copies)."""
    a = [x.copy() if isinstance(x, np.ndarray) else x for x in args]
    b = [x.copy() if isinstance(x, np.ndarray) else x for x in args]
    return getattr(K, fn_name)(*a), a, getattr(T, fn_name)(*b), b


def params(fn_name) -> list[str]:
    """The kernel's parameter names (its twin must take the same)."""
    names = list(inspect.signature(getattr(K, fn_name).py_func).parameters)
    assert names == list(inspect.signature(getattr(T, fn_name)).parameters), fn_name
    return names


def both_named(fn_name, case: dict, **override):
    """:func:`both` with the arguments picked by name from ``case`` (and ``override``);
    the argument copies come back as dicts by parameter name."""
    case = {**case, **override}
    names = params(fn_name)
    ra, a, rb, b = both(fn_name, *(case[n] for n in names))
    return ra, dict(zip(names, a, strict=True)), rb, dict(zip(names, b, strict=True))


def listed(touched, count):
    return sorted(touched[: count[0]].tolist())


def conv_geom(h, w, c_out, k, stride, padding):
    """``(geom, output pixels)`` of a conv of kernel ``k`` on an ``h`` x ``w`` input."""
    h_out = (h + 2 * padding[0] - k[0]) // stride[0] + 1
    w_out = (w + 2 * padding[1] - k[1]) // stride[1] + 1
    return K.make_geom((h, w), (h_out, w_out), stride, padding, k, c_out), h_out * w_out


def check_whole_conv_against_twin(fn_name: str, shape: tuple, dtype, seed: int, **extra) -> None:
    """A whole-map conv kernel ``fn_name(P, w_cl, z, bias, use_bias, geom, c_in, **extra)``
    (``z = [bias +] conv(P, W)``) on random data of ``shape`` (``h, w, c_in, c_out, k, stride,
    padding``) against its NumPy twin, bias or not: the twin's sums up to rounding (a tolerance
    growing with the taps summed), and the whole of ``z`` written (it starts as NaN)."""
    h, w, c_in, c_out, k, stride, padding = shape
    geom, n_out = conv_geom(h, w, c_out, k, stride, padding)
    rng = np.random.default_rng(seed)
    n_pad = (h + 2 * padding[0]) * (w + 2 * padding[1]) * c_in
    tol = 1e-5 if dtype == np.float32 else 1e-12
    for use_bias in (True, False):
        args = dict(P=rng.normal(size=n_pad).astype(dtype),
                    w_cl=rng.normal(size=(*k, c_in, c_out)).astype(dtype),
                    z=np.full(n_out * c_out, np.nan, dtype),
                    bias=np.tile(rng.normal(size=c_out), n_out).astype(dtype),  # per channel
                    use_bias=use_bias, geom=geom, c_in=c_in, **extra)
        _, a, _, b = both_named(fn_name, args)
        assert not np.isnan(a["z"]).any(), f"{fn_name} left part of z unwritten"
        scale = np.abs(b["z"]).max()
        np.testing.assert_allclose(a["z"], b["z"], rtol=0, atol=tol * scale * k[0] * k[1] * c_in)


def check_dense_against_twin_and_scatter(case: dict, dtype) -> None:
    """``conv_layer_dense`` on ``case`` against its NumPy twin and the event scatter
    (``conv_layer_step``) on copies of the same state: equal counters and listings, equal
    ``memory``, ``z`` up to rounding."""
    import pytest

    ra, a, rb, b = both_named("conv_layer_dense", case)
    scatter = {k: v.copy() if isinstance(v, np.ndarray) else v for k, v in case.items()}
    rs = K.conv_layer_step(*(scatter[n] for n in params("conv_layer_step")))
    tol = 1e-4 if dtype == np.float32 else 1e-10
    for other, r in ((b, rb), (scatter, rs)):
        assert (ra[0], ra[1], ra[3]) == (r[0], r[1], r[3])
        assert ra[2] == pytest.approx(r[2])
        np.testing.assert_allclose(a["z"], other["z"], rtol=tol, atol=tol)
        np.testing.assert_array_equal(a["memory"], other["memory"])
        assert listed(a["out_touched"], a["out_count"]) == listed(other["out_touched"], other["out_count"])
        assert listed(a["pg_list"], a["pg_count"]) == listed(other["pg_list"], other["pg_count"])
