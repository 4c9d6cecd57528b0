"""The paths of busy conv layers (dense recompute, gather-GEMM-scatter) and the denormal
flush of conversion.

Kernels against their NumPy twins and against the event scatter on the same frame; the
engine forced path by path (and switching mid-stream) against ``sd.reference``, with
counters identical to the scatter's.
"""

import numpy as np
import pytest
import torch
import torch.nn as nn
from _twins import both_named, listed, params
from test_kernels_pixel import LAVA_K, _pixel_case

import sigmadelta as sd
from sigmadelta import kernels as K
from sigmadelta.convert import FLUSH_BELOW, flush_denormals
from sigmadelta.kernels import numpy_twins as T


def _dense_case(geom, herding, seed, dtype):
    """conv_layer_dense's arguments (by name) for a random layer whose z is consistent with
    its memory (``z = bias + conv(gain * memory)``), so that scatter and recompute agree."""
    case, w_cl = _pixel_case(*geom, herding, seed, dtype=np.float64)
    rng = np.random.default_rng(seed + 1)
    fixed = dtype == np.int64
    n_in, n_z = len(case["x"]), len(case["z"])
    if fixed:
        w_cl = np.rint(4 * w_cl)
    w_cl = w_cl.astype(dtype)
    cg = int(case["geom"][10])  # a conv's bias: one per output channel, tiled over the pixels
    bias = (np.zeros(n_z) if fixed else np.tile(rng.normal(size=cg), n_z // cg)).astype(dtype)
    # (fixed point: unread)
    gain = 1 if fixed else case["gain"]
    mem = case["memory"].astype(np.float64 if fixed else dtype)
    # untouched inputs were encoded when they last changed: their memory matches their value
    calm = np.setdiff1d(np.arange(len(mem)), case["touched"][: case["count"][0]])
    mem[calm] = np.rint(case["param"] * case["x"][calm]) if herding else case["x"][calm]
    h, w = (int(v) for v in case["geom"][:2])
    h_out, w_out, sy, sx, py, px, kh, kw, cg = (int(v) for v in case["geom"][2:11])
    c_in = case["c_in"]
    acc = np.int64 if fixed else np.float64
    z = np.zeros(n_z, acc)
    spare = (np.zeros(h_out * w_out + 1, np.int64), np.zeros(1, np.int64),
             np.full(h_out * w_out, -1, np.int64))
    T.conv_scatter(np.arange(n_in), (mem * gain).astype(acc), n_in, 1, w_cl.astype(acc), z,
                   (h, w), (h_out, w_out), (sy, sx), (py, px), (1, 1), 1, *spare, 0)
    z = (z if fixed else bias + z).astype(dtype)
    x = case["x"].astype(np.float64 if fixed else dtype)
    case.update(x=x, memory=mem, gain=gain, z=z, bias=bias, use_bias=not fixed, w_cl=w_cl.ravel(),
                w_run=K.run_layout(w_cl, (sy, sx)), ev_val=np.zeros(n_in, dtype),
                vbuf=np.zeros(c_in, dtype), mem_w=np.zeros((h + 2 * py) * (w + 2 * px) * c_in, dtype),
                rowbuf=np.zeros(max(cg, 8), dtype), mgeom=np.zeros(0, np.int64),
                smap=np.zeros(0, dtype), wtap=np.zeros(0, dtype), direct=1, narrow=1)
    return case


GEOMS = [(7, 9, 3, 5, (3, 3), (1, 1), (1, 1)), (8, 7, 4, 6, (3, 3), (2, 2), (1, 1)),
         (6, 6, 2, 3, (1, 1), (1, 1), (0, 0)), (9, 8, 3, 4, (5, 3), (2, 1), (2, 0))]


@pytest.mark.parametrize("geom", GEOMS)
@pytest.mark.parametrize("herding,dtype", [(True, np.float64), (False, np.float64),
                                           (True, np.float32), (True, np.int64)])
def test_dense_recompute_matches_twin(geom, herding, dtype):
    case = _dense_case(geom, herding, 3, dtype)
    ra, a, rb, b = both_named("conv_layer_dense", case)
    assert ra[0] == rb[0] and ra[1] == rb[1] and ra[3] == rb[3]
    assert ra[2] == pytest.approx(rb[2])
    tol = 1e-4 if dtype == np.float32 else 1e-10
    np.testing.assert_allclose(a["z"], b["z"], rtol=tol, atol=tol)
    np.testing.assert_array_equal(a["memory"], b["memory"])
    assert listed(a["out_touched"], a["out_count"]) == listed(b["out_touched"], b["out_count"])
    assert listed(a["pg_list"], a["pg_count"]) == listed(b["pg_list"], b["pg_count"])


@pytest.mark.parametrize("geom", GEOMS[:2])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("param,gain", [(8.0, 1 / 8), (6.0, 1 / 6), (8.0, 0.1)])
def test_dense_herding_scales_in_double_precision(geom, dtype, param, gain):
    """The herding encoder's values (memory, ``gain * memory`` in the padded input) are those of
    double precision, whether the scale is a power of two with a float32 gain (scaled in
    float32: :func:`sigmadelta.kernels.quantize.single_exact`) or not; counters as the twin's."""
    case = _dense_case(geom, True, 5, dtype)
    x = (case["x"].astype(np.float64) * 5.7).astype(dtype)
    case.update(x=x, param=param, gain=gain)
    q = np.rint(param * x.astype(np.float64))
    ra, a, rb, b = both_named("conv_layer_dense", case)
    assert ra[0] == rb[0] == np.count_nonzero(q - case["memory"]) and ra[1] == rb[1] and ra[3] == rb[3]
    np.testing.assert_array_equal(a["memory"], q.astype(dtype))
    h, w, c_in = int(case["geom"][0]), int(case["geom"][1]), case["c_in"]
    py, px = int(case["geom"][6]), int(case["geom"][7])
    inner = a["mem_w"].reshape(h + 2 * py, w + 2 * px, c_in)[py:py + h, px:px + w].ravel()
    np.testing.assert_array_equal(inner, (q.astype(dtype).astype(np.float64) * gain).astype(dtype))


def _scratch(case, kind):
    """``rowbuf`` for the GEMM path (im2col rows: one, five or as the engine sizes them) or
    shorter than a row (one SIMD vector of zeros, as fixed point's register-blocked loop takes)."""
    g = case["geom"]
    k, n_out = int(g[8] * g[9]) * case["c_in"], int(g[2] * g[3])
    dtype = case["z"].dtype
    if kind == "loop":  # one vector (8 lanes at most), which must be shorter than a row
        return np.zeros(8, dtype) if k > 8 else None
    rows = {"gemm1": 1, "gemm5": 5, "gemm": K.gemm_rows(n_out, k, dtype.itemsize)}[kind]
    return np.zeros(rows * k, dtype)


@pytest.mark.parametrize("geom", GEOMS)
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("chunk", ["gemm1", "gemm5", "gemm"])
def test_conv_gemm_matches_twin(geom, dtype, chunk):
    """im2col + BLAS by chunks of output pixels against the tap-by-tap twin, bias or not."""
    case = _dense_case(geom, True, 7, dtype)
    rng = np.random.default_rng(8)
    P = rng.normal(size=case["mem_w"].shape).astype(dtype)  # padding too: the twin reads it all
    tol = 1e-4 if dtype == np.float32 else 1e-12
    for use_bias in (True, False):
        args = dict(P=P, w_cl=case["w_cl"], z=np.zeros_like(case["z"]), bias=case["bias"],
                    use_bias=use_bias, cols=_scratch(case, chunk), geom=case["geom"], c_in=case["c_in"])
        _, a, _, b = both_named("conv_gemm", args)
        np.testing.assert_allclose(a["z"], b["z"], rtol=tol, atol=tol)


@pytest.mark.parametrize("geom", GEOMS)
@pytest.mark.parametrize("herding,dtype", [(True, np.float64), (False, np.float64),
                                           (True, np.int64), (True, np.float32)])
@pytest.mark.parametrize("prime", [False, True])
@pytest.mark.parametrize("scratch", ["gemm", "gemm1", "loop"])
def test_dense_recompute_equals_scatter(geom, herding, dtype, prime, scratch):
    """Same frame, both paths: same counters, memory, listing; z equal (exactly in fixed point).
    Float layers run the conv as GEMM, on one allocated im2col row where the scratch holds none."""
    case = _dense_case(geom, herding, 5, dtype)
    if dtype == np.int64 and scratch != "gemm":
        pytest.skip("fixed point always runs the loop")
    if dtype != np.int64:
        case["rowbuf"] = _scratch(case, scratch)
        if case["rowbuf"] is None:
            pytest.skip("one im2col row fits in a vector")
    if prime:
        case["touched"][:] = np.arange(len(case["x"]))
        case["count"][0] = len(case["x"])
    scatter = {k: v.copy() if isinstance(v, np.ndarray) else v for k, v in case.items()}
    dense = {k: v.copy() if isinstance(v, np.ndarray) else v for k, v in case.items()}
    scatter["prime"] = dense["prime"] = prime
    rs = K.conv_layer_step(*(scatter[n] for n in params("conv_layer_step")))
    rd = K.conv_layer_dense(*(dense.get(n) for n in params("conv_layer_dense")))
    assert rs[0] == rd[0] and rs[1] == rd[1] and rs[3] == rd[3] and rs[2] == pytest.approx(rd[2])
    assert rs[4] == rd[4]  # pixels with events
    np.testing.assert_array_equal(scatter["memory"], dense["memory"])
    assert listed(scatter["out_touched"], scatter["out_count"]) == listed(dense["out_touched"],
                                                                         dense["out_count"])
    if dtype == np.int64:
        np.testing.assert_array_equal(scatter["z"], dense["z"])
    else:
        tol = 1e-4 if dtype == np.float32 else 1e-10
        np.testing.assert_allclose(scatter["z"], dense["z"], rtol=tol, atol=tol)


def _gemm_case(geom, herding, seed, dtype, rows):
    """conv_layer_gemm's arguments for a random layer and frame (``rows`` pixels per GEMM call)."""
    case, _ = _pixel_case(*geom, herding, seed, dtype=np.float64)
    fixed = dtype == np.int64
    acc = np.int64 if fixed else dtype
    w_run = case["w_run"]
    if fixed:
        w_run, case["gain"] = np.rint(4 * w_run), 1
        case["z"] = np.rint(8 * case["z"])
    w_g = K.gemm_layout(w_run.astype(acc))
    case.update(w_run=w_run.astype(acc), w_g=w_g, z=case["z"].astype(acc),
                x=case["x"].astype(np.float64 if fixed else dtype),
                memory=case["memory"].astype(np.float64 if fixed else dtype),
                ev_val=case["ev_val"].astype(acc), vbuf=case["vbuf"].astype(acc),
                smap=case["smap"].astype(acc), wtap=case["wtap"].astype(acc),
                gbuf=np.zeros(rows * (w_g.shape[0] + w_g.shape[1]), acc))
    return case


GEMM_KINDS = [(True, np.float64), (False, np.float64), (True, np.float32), (True, np.int64)]


@pytest.mark.parametrize("geom", GEOMS)
@pytest.mark.parametrize("herding,dtype", GEMM_KINDS)
@pytest.mark.parametrize("rows", [1, 3, 1000])
@pytest.mark.parametrize("in_rows", [False, True])
def test_gemm_layer_matches_twin_and_scatter(geom, herding, dtype, rows, in_rows):
    """Gather-GEMM-scatter against its twin and against the event scatter on the same frame:
    same counters, memory, listing, pixels with events; z equal (exactly in fixed point)."""
    case = _gemm_case(geom, herding, 13, dtype, rows)
    case["in_rows"] = in_rows
    ra, a, rb, b = both_named("conv_layer_gemm", case)
    rs = K.conv_layer_step(*(case[n] for n in params("conv_layer_step")))
    for r in (rb, rs):
        assert ra[0] == r[0] and ra[1] == r[1] and ra[3] == r[3] and ra[4] == r[4]
        assert ra[2] == pytest.approx(r[2])
    for other in (b, case):
        np.testing.assert_array_equal(a["memory"], other["memory"])
        assert listed(a["out_touched"], a["out_count"]) == listed(other["out_touched"],
                                                                 other["out_count"])
        if dtype == np.int64:
            np.testing.assert_array_equal(a["z"], other["z"])
        else:
            tol = 1e-4 if dtype == np.float32 else 1e-10
            np.testing.assert_allclose(a["z"], other["z"], rtol=tol, atol=tol)
    assert ra[1] > 0  # the frame had events


def test_choose_path_modes_and_costs():
    ps = np.zeros(len(K.PATH_STATE), np.int64)
    S = K.PATH_STATE  # noqa: N806
    assert K.choose_path(ps, 100, 1.0, 1.0, 1.0, True) == K.PATH_DENSE  # first frame: all sent
    assert ps[S.last_touched] == 0  # the next frame goes by FIRST_EVENT_SHARE of its touched inputs
    ps[S.last_events], ps[S.last_pixels], ps[S.last_touched] = 50, 10, 100
    # 200 touched now: expected 100 events (cost 100), 20 pixels (cost 20 * 4 = 80), dense 90
    assert K.choose_path(ps, 200, 1.0, 4.0, 90.0, False) == K.PATH_GEMM
    # last touched now 200: expected 50 events, 10 pixels
    assert K.choose_path(ps, 200, 1.0, 4.0, 30.0, False) == K.PATH_DENSE  # 30 < 40 < 50
    assert K.choose_path(ps, 200, 1.0, 6.0, 70.0, False) == K.PATH_SCATTER  # 50 < 60 < 70
    assert K.choose_path(ps, 100, 1.0, np.inf, np.inf, False) == K.PATH_SCATTER
    # nothing to go by from the last frame: FIRST_EVENT_SHARE of 100 touched inputs expected as
    # events, scatter or dense (never gather-GEMM-scatter, however cheap)
    expected = K.FIRST_EVENT_SHARE * 100 * 2.0
    for per_frame, path in ((0.99 * expected, K.PATH_DENSE), (1.01 * expected, K.PATH_SCATTER)):
        ps[S.last_touched] = 0
        assert K.choose_path(ps, 100, 2.0, 0.0, per_frame, False) == path
    ps[S.last_touched] = 0
    assert K.choose_path(ps, 0, 2.0, 0.0, 0.0, False) == K.PATH_SCATTER  # nothing touched: nothing to do
    for mode in (K.PATH_SCATTER, K.PATH_DENSE, K.PATH_GEMM):
        ps[S.mode] = mode
        assert K.choose_path(ps, 0, 0.0, 0.0, 0.0, True) == mode
    assert (ps[S.frames_scatter], ps[S.frames_dense], ps[S.frames_gemm]) == (5, 4, 2)


def test_path_costs_table():
    """The cost model scales by the work of each path and interpolates between table rows."""
    table, table_1x1 = (K.path_cost_table().tables[k] for k in ("3x3", "1x1"))  # this machine's
    s16, d16, g16 = table[4][16]  # the table: (scatter, dense, gemm)
    assert K.path_costs(16, 4, 9 * 16, 1000, 2304) == pytest.approx((s16 * 144, g16 * 2304, d16 * 1000))
    (s_lo, d_lo, g_lo), (s_hi, d_hi, g_hi) = table[4][16], table[4][32]
    mid, t = K.path_costs(23, 4, 1, 1, 1), np.log(23 / 16) / np.log(2)  # linear in log C
    lo, hi = np.array((s_lo, g_lo, d_lo)), np.array((s_hi, g_hi, d_hi))
    assert mid == pytest.approx(tuple((1 - t) * lo + t * hi))
    s8, d8, g8 = table[8][16]
    # below the table: its first row, without gather-GEMM-scatter (not fitted there)
    assert K.path_costs(3, 8, 1, 1, 1) == pytest.approx((s8, np.inf, d8))
    assert K.path_costs(16, 8, 1, 1, 1) == pytest.approx((s8, g8, d8))
    top = max(table_1x1[4])  # a 1x1 kernel: its own table (above it: the last row)
    s1, d1, g1 = table_1x1[4][top]
    c = 2 * top
    assert K.path_costs(c, 4, 24, 1000, c * 24, True) == pytest.approx((s1 * 24, g1 * c * 24, d1 * 1000))
    # fewer output channels than one SIMD vector: each row of a tap costs a whole vector
    assert K.path_costs(16, 4, 9, 1000, 144, c_out=1)[0] == pytest.approx(s16 * 9 * 16)
    assert K.path_costs(16, 8, 9 * 4, 1, 1, c_out=4)[0] == pytest.approx(s8 * 9 * 8)
    assert K.path_costs(16, 4, 9 * 16, 1000, 2304, c_out=16)[0] == pytest.approx(s16 * 144)


def test_chooser_costs_see_output_channels_per_group(monkeypatch):
    """The pixel convs give the cost model their output channels (1 -> 8: 8; 8 -> 1: 1), so
    a row shorter than a vector is costed as a whole vector."""
    seen = []
    real = K.path_costs

    def spy(*args, **kw):
        seen.append(args[6] if len(args) > 6 else kw.get("c_out"))
        return real(*args, **kw)

    monkeypatch.setattr(K, "path_costs", spy)
    model = nn.Sequential(nn.Conv2d(1, 8, 3, padding=1), nn.ReLU(), nn.Conv2d(8, 1, 3, padding=1))
    sd.Simulator(sd.convert(model, (1, 12, 12), scale=16.0), dtype=np.float32)
    assert 1 in seen and 8 in seen


class _Busy(nn.Module):
    """Conv layers of 3-8 channels, stride 1 and 2, pooling and a residual add."""

    def __init__(self):
        super().__init__()
        self.a = nn.Conv2d(3, 8, 3, padding=1)
        self.b = nn.Conv2d(8, 8, 3, padding=1)
        self.c = nn.Conv2d(8, 6, 3, stride=2, padding=1)
        self.d = nn.Conv2d(6, 4, 1)

    def forward(self, x):
        y = torch.relu(self.a(x))
        y = torch.relu(self.b(y)) + y
        return self.d(torch.relu(self.c(y)))


def _video(t=8):
    from sigmadelta.datasets import open_source

    return np.stack(list(open_source("bikes", size=(24, 32), gray=False, limit=t)))


def _run(net, frames, modes, dtype=np.float64):
    """Simulate with the path mode of each frame from ``modes`` (one mode per frame)."""
    sim = sd.Simulator(net, dtype=dtype)
    outs, stats = [], []
    for f, m in zip(frames, modes, strict=True):
        sim.set_conv_path(m)
        outs.append(sim.step(f))
        stats.append(sim.last_stats.copy())
    return np.stack(outs), np.stack(stats), sim.conv_paths


@pytest.mark.parametrize("weight_bits", [None, 8])
def test_paths_equal_reference_and_counters(weight_bits):
    torch.manual_seed(0)
    frames = _video()
    net = sd.convert(_Busy().eval(), frames.shape[1:], scale=32.0, weight_bits=weight_bits)
    ref = sd.reference(net, frames, progress=False)
    t = len(frames)
    runs = {name: _run(net, frames, modes) for name, modes in [
        ("scatter", ["scatter"] * t), ("dense", ["dense"] * t), ("gemm", ["gemm"] * t),
        ("auto", ["auto"] * t),
        ("switching", ["dense", "scatter", "gemm", "dense", "scatter", "auto", "gemm", "dense"])]}
    base_out, base_stats, _ = runs["scatter"]
    for name, (out, stats, _) in runs.items():
        err = np.abs(out - ref).max() / np.ptp(ref)
        assert err <= 1e-6, name
        np.testing.assert_array_equal(stats, base_stats, err_msg=name)
        if weight_bits:  # integer sums: every path gives the same outputs exactly
            np.testing.assert_array_equal(out, base_out, err_msg=name)
    for path in ("scatter", "dense", "gemm"):
        assert all(p == {q: t * (q == path) for q in p} for p in runs[path][2].values())
    assert all(p["dense"] >= 2 and p["gemm"] >= 2 and p["scatter"] >= 2  # one frame on "auto"
               and sum(p.values()) == t for p in runs["switching"][2].values())
    assert any(p["dense"] for p in runs["auto"][2].values())  # the first frame at least


def test_set_conv_path_errors():
    net = sd.convert(_Busy().eval(), (3, 8, 8))
    sim = sd.Simulator(net)
    with pytest.raises(ValueError, match="path must be one of"):
        sim.set_conv_path("im2col")
    with pytest.raises(ValueError, match="no weight layer 'zz'"):
        sim.set_conv_path("dense", layer="zz")


def test_convert_flushes_denormal_weights():
    conv = nn.Conv2d(2, 3, 3)
    w = np.random.default_rng(0).normal(size=(3, 2, 3, 3)).astype(np.float32)
    w.flat[[0, 5, 9]] = [1e-41, -3e-39, FLUSH_BELOW]  # two denormals, the smallest normal
    w.flat[11] = -FLUSH_BELOW
    with torch.no_grad():
        conv.weight.copy_(torch.from_numpy(w))
    net = sd.convert(nn.Sequential(conv), (2, 5, 5))
    got = net.weight_layers[0].weight
    expected = w.copy()
    expected.flat[[0, 5]] = 0
    np.testing.assert_array_equal(got, expected)
    assert got.flat[9] == FLUSH_BELOW and got.flat[11] == -FLUSH_BELOW
    assert not ((got != 0) & (np.abs(got) < np.finfo(np.float32).tiny)).any()
    assert w.flat[0] == np.float32(1e-41)  # the model's own weights are left alone
    np.testing.assert_array_equal(flush_denormals(np.array([1e-300, 1.0, -2e-40])), [0, 1.0, 0])


def _lava_case(geom, seed, rows):
    """conv_layer_dense's arguments for a ``"lava"`` layer: integer inputs, memories, weights
    and ``z``; ``mem_w`` with room for the conv of the messages after the padded input;
    ``rows`` im2col rows of scratch (0: the register-blocked loop)."""
    case = _dense_case(geom, K.Q_LAVA, seed, np.float64)
    calm = np.setdiff1d(np.arange(len(case["x"])), case["touched"][: case["count"][0]])
    case["memory"][calm] = LAVA_K * case["x"][calm]  # untouched inputs sent their value already
    g = case["geom"]
    kh, kw, cg, c_in = int(g[8]), int(g[9]), int(g[10]), case["c_in"]
    w_cl = np.rint(4 * case["w_cl"].reshape(kh, kw, c_in, cg))
    case.update(w_cl=w_cl.ravel(), w_run=K.run_layout(w_cl, (int(g[4]), int(g[5]))),
                z=np.rint(1000 * case["z"]),
                mem_w=np.zeros(K.padded_size(g, c_in) + len(case["z"])),
                rowbuf=np.zeros(rows * kh * kw * c_in) if rows else np.zeros(8))
    return case


@pytest.mark.parametrize("geom", GEOMS)
@pytest.mark.parametrize("prime", [False, True])
@pytest.mark.parametrize("rows", [0, 1, 5, 64])
def test_lava_dense_path_equals_twin_and_scatter(geom, prime, rows):
    """The lava dense path adds the conv of this step's messages (the low bits of each ``d``
    dropped): ``z`` bit for bit the scatter's and the twin's, same memory, counters, listing."""
    case = _lava_case(geom, 11, rows)
    if prime:
        case["touched"][:] = np.arange(len(case["x"]))
        case["count"][0] = len(case["x"])
    case["prime"] = prime
    ra, a, rb, b = both_named("conv_layer_dense", case)
    scatter = {k: v.copy() if isinstance(v, np.ndarray) else v for k, v in case.items()}
    rs = K.conv_layer_step(*(scatter[n] for n in params("conv_layer_step")))
    assert ra[0] > 0 and np.any(a["memory"] != case["memory"])  # events, some memories unchanged
    assert np.any(a["memory"] == case["memory"])
    for other, r in ((b, rb), (scatter, rs)):
        assert (ra[0], ra[1], ra[3]) == (r[0], r[1], r[3])
        np.testing.assert_array_equal(a["z"], other["z"])
        np.testing.assert_array_equal(a["memory"], other["memory"])
        assert listed(a["out_touched"], a["out_count"]) == listed(other["out_touched"], other["out_count"])
        assert listed(a["pg_list"], a["pg_count"]) == listed(other["pg_list"], other["pg_count"])


def test_lava_dense_exact_bound():
    """float64 holds every partial sum of a lava layer's GEMM below 2**53: checked from the
    largest message (2**26) and each output channel's sum of |weights|."""
    w = np.ones((3, 3, 4, 2))
    assert K.lava_dense_exact(w)
    assert K.lava_dense_exact(w * 2.0 ** 21)  # 2**26 * 36 * 2**21 < 2**53
    assert not K.lava_dense_exact(w * 2.0 ** 22)  # 2**26 * 36 * 2**22 > 2**53
    assert not K.lava_dense_exact(w + 0.5)  # not integers


@pytest.mark.parametrize("hw,k,stride,pad", [((2, 2), 3, 1, 1), ((4, 5), 3, 2, 1), ((7, 6), 1, 2, 0),
                                             ((9, 9), 5, 1, 2)])
def test_chooser_fan_is_the_scatters(hw, k, stride, pad):
    """The chooser's synops per event (``PixelConvOp._mean_fan``) are those the scatter counts
    when every input spikes (padding taps reach no output), not ``dense_macs / n_in``."""
    torch.manual_seed(1)
    conv = nn.Conv2d(5, 7, k, stride, pad).eval()
    net = sd.convert(conv, (5, *hw), scale=8.0)
    sim = sd.Simulator(net)
    x = np.random.default_rng(2).uniform(1.0, 2.0, (5, *hw))  # every input spikes at scale 8
    sim.step(x)
    stats = dict(zip(sd.stats.MEASURED, sim.last_stats[:, 0], strict=True))
    assert stats["events"] == x.size
    assert sim._weight_ops[0]._mean_fan() == pytest.approx(stats["synops"] / stats["events"])
    if pad:
        assert sim._weight_ops[0]._mean_fan() < net.dense_macs()[0] / x.size


@pytest.mark.parametrize("geom", GEOMS)
@pytest.mark.parametrize("quiet", [None, 0, "middle", "last"])
def test_herding_encode_all_pixels_or_some(geom, quiet):
    """The herding encoder of the dense path stamps every reachable output at once where every
    pixel has events, else by windows around the pixels with events: counters, memory, listing
    and ``z`` as the twin's, whichever pixel is the quiet one."""
    case = _dense_case(geom, True, 5, np.float64)
    c_in = case["c_in"]
    n_px = len(case["x"]) // c_in
    q = np.rint(case["param"] * case["x"])
    case["memory"] = q + np.where(np.arange(len(q)) % 2 == 0, 1.0, -2.0)  # every input spikes
    if quiet is not None:
        p = {0: 0, "middle": n_px // 2, "last": n_px - 1}[quiet]
        case["memory"][p * c_in:(p + 1) * c_in] = q[p * c_in:(p + 1) * c_in]  # no event there
    case["touched"][:len(q)], case["count"][0] = np.arange(len(q)), len(q)
    ra, a, rb, b = both_named("conv_layer_dense", case)
    assert ra[0] == rb[0] == len(q) - (c_in if quiet is not None else 0)
    assert ra[1] == rb[1] and ra[3] == rb[3] and ra[4] == rb[4]
    assert ra[2] == pytest.approx(rb[2])
    np.testing.assert_allclose(a["z"], b["z"], rtol=1e-10, atol=1e-10)
    np.testing.assert_array_equal(a["memory"], b["memory"])
    assert listed(a["pg_list"], a["pg_count"]) == listed(b["pg_list"], b["pg_count"])


#: layers whose input channels are whole chunks of the herding encoder (16, 32) or not (20)
WIDE_GEOMS = [(6, 7, 16, 5, (3, 3), (1, 1), (1, 1)), (7, 6, 32, 4, (3, 3), (2, 2), (1, 1)),
              (5, 9, 32, 3, (1, 3), (1, 2), (0, 1)), (5, 4, 20, 3, (3, 3), (1, 1), (1, 1))]


@pytest.mark.parametrize("geom", WIDE_GEOMS)
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("param,gain", [(8.0, 1 / 8), (6.0, 1 / 6)])
@pytest.mark.parametrize("quiet", [0.0, 0.3])
def test_herding_encoder_chunks_and_runs(geom, dtype, param, gain, quiet):
    """The herding encoder over whole chunks of channels (float32 scale) or not, with pixels
    without events scattered over the map (the outputs stamped by windows):
    counters, memory, listing and ``z`` as the twin's; the padded input ``gain * memory`` in
    double precision, rounded once."""
    case = _dense_case(geom, True, 7, dtype)
    c_in = case["c_in"]
    rng = np.random.default_rng(11)
    x = (case["x"].astype(np.float64) * 5.7).astype(dtype)
    q = np.rint(param * x.astype(np.float64))
    mem = q + rng.integers(-2, 3, size=len(q))
    calm = np.flatnonzero(rng.random(len(q) // c_in) < quiet)
    for p in calm:
        mem[p * c_in:(p + 1) * c_in] = q[p * c_in:(p + 1) * c_in]
    case.update(x=x, param=param, gain=gain, memory=mem.astype(dtype))
    case["touched"][:len(q)], case["count"][0] = np.arange(len(q)), len(q)
    ra, a, rb, b = both_named("conv_layer_dense", case)
    assert ra[0] == rb[0] == np.count_nonzero(q - mem)
    assert ra[1] == rb[1] and ra[3] == rb[3] and ra[4] == rb[4]
    assert ra[2] == pytest.approx(rb[2])
    np.testing.assert_array_equal(a["memory"], q.astype(dtype))
    h, w = int(case["geom"][0]), int(case["geom"][1])
    py, px = int(case["geom"][6]), int(case["geom"][7])
    padded = a["mem_w"].reshape(h + 2 * py, w + 2 * px, c_in)
    want = np.zeros_like(padded)
    want[py:py + h, px:px + w] = (q.astype(dtype).astype(np.float64) * gain).astype(dtype).reshape(h, w, c_in)
    np.testing.assert_array_equal(padded, want)  # double precision's values, padding 0
    tol = 1e-5 if dtype == np.float32 else 1e-10  # of the largest |z|: sums of terms that large
    np.testing.assert_allclose(a["z"], b["z"], rtol=tol, atol=tol * max(1.0, np.abs(b["z"]).max()))
    assert listed(a["pg_list"], a["pg_count"]) == listed(b["pg_list"], b["pg_count"])


#: (input h, w), kernel, stride, padding: strides larger than the kernel, padding wider than its half
STAMP_GEOMS = [((7, 9), (3, 3), (1, 1), (1, 1)), ((8, 7), (3, 3), (2, 2), (1, 1)),
               ((6, 11), (1, 3), (1, 2), (0, 1)), ((9, 8), (1, 1), (2, 3), (0, 0)),
               ((5, 6), (5, 3), (2, 1), (3, 2))]


@pytest.mark.parametrize("hw,k,stride,pad", STAMP_GEOMS)
@pytest.mark.parametrize("share", [0.1, 0.5, 0.9])
def test_stamp_windows_is_reach_per_input(hw, k, stride, pad, share):
    """The dense encoder's stamping by windows (the map of pixels with events dilated by the
    window) stamps the same output pixels as :func:`_reach` input by input, strides larger than
    the kernel (inputs that reach nothing) and padding wider than the kernel's half included."""
    from sigmadelta.kernels.recompute import _reach, _stamp_windows

    h_out = (hw[0] + 2 * pad[0] - k[0]) // stride[0] + 1
    w_out = (hw[1] + 2 * pad[1] - k[1]) // stride[1] + 1
    geom = K.make_geom(hw, (h_out, w_out), stride, pad, k, 4)
    has = (np.random.default_rng(int(10 * share)).random(hw[0] * hw[1]) < share).astype(np.uint8)
    a, b = np.full(h_out * w_out, 3), np.full(h_out * w_out, 3)
    _stamp_windows(has, geom, a, 7)
    for p in np.flatnonzero(has):
        _reach(p, geom, b, 7)
    np.testing.assert_array_equal(a, b)
