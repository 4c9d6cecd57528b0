"""The pixel-conv path (encode per pixel, scatter per kernel row, one-channel scatter, spike map)
against the NumPy twins and against each other. Arguments are passed and read back by name."""

import numpy as np
import pytest
from _twins import both_named, listed, params, touched_list

from sigmadelta import kernels as K
from sigmadelta.kernels import numpy_twins as T
from sigmadelta.kernels.pixel import BLOCK_EVENTS


def _pixel_case(h, w, c_in, c_out, k, stride, padding, herding, seed, dtype=np.float64):
    """Arguments of conv_layer_step (by name) for a random layer and a random, pixel-ordered
    touched list; also ``c_in``."""
    rng = np.random.default_rng(seed)
    h_out = (h + 2 * padding[0] - k[0]) // stride[0] + 1
    w_out = (w + 2 * padding[1] - k[1]) // stride[1] + 1
    n_in, n_pix = h * w * c_in, h_out * w_out
    w_cl = rng.normal(size=(*k, c_in, c_out)).astype(dtype)
    geom = K.make_geom((h, w), (h_out, w_out), stride, padding, k, c_out)
    touched, count = touched_list(rng, n_in, 0.3)
    x = rng.normal(size=n_in).astype(dtype)
    memory = (np.rint(4 * rng.normal(size=n_in)) if herding else rng.normal(size=n_in)).astype(dtype)
    lava = herding is K.Q_LAVA
    if lava:
        x, memory = _lava_values(rng, n_in, dtype)
    rows = np.flatnonzero(rng.random(h * w) < 0.3).astype(np.int64)
    mgeom, smap, wtap = K.make_map(geom, w_cl)
    return dict(
        x=x, touched=touched, count=count, rows=rows, row_count=np.array([len(rows)], np.int64),
        in_rows=False, memory=memory, herding=herding,
        param=LAVA_THR if lava else (4.0 if herding else 0.3), lava_k=LAVA_K, lava_shift=6,
        gain=0.25 if herding is True else 1.0, w_run=K.run_layout(w_cl, stride),
        z=rng.normal(size=n_pix * c_out).astype(dtype), geom=geom, ev_ch=np.zeros(n_in, np.int64),
        ev_val=np.zeros(n_in, dtype), px_list=np.zeros(n_in, np.int64),
        px_start=np.zeros(n_in + 1, np.int64), vbuf=np.zeros(c_in, dtype),
        pg_list=np.zeros(n_pix + 1, np.int64), pg_count=np.zeros(1, np.int64),
        pg_stamp=np.full(n_pix, -1, np.int64), frame=5, prime=False, expand=True,
        out_touched=np.zeros(n_pix * c_out, np.int64), out_count=np.zeros(1, np.int64),
        mgeom=mgeom, smap=smap, wtap=wtap, c_in=c_in), w_cl


LAVA_K, LAVA_THR = 64.0, 640.0  # the lava mode's a = k*x and threshold (in units of a)
MODES = [True, False, K.Q_LAVA]  # herding, threshold, lava


def _lava_values(rng, n, dtype):
    """Integer inputs and memories ``k * x_sent`` for the lava mode; some changes below the
    threshold, some sent with ``d`` not a multiple of ``2**6`` (low bits dropped)."""
    x = np.rint(20 * rng.normal(size=n))
    memory = LAVA_K * (x + np.rint(15 * rng.normal(size=n))) + rng.integers(-63, 64, n)
    return x.astype(dtype), memory.astype(dtype)


def _call(fn_name, case: dict):
    """The kernel on ``case``'s arguments (picked by name, not copied)."""
    return getattr(K, fn_name)(*(case[n] for n in params(fn_name)))


def test_run_layout_roundtrip():
    rng = np.random.default_rng(9)
    for stride, k in [((1, 1), (3, 3)), ((2, 2), (3, 3)), ((2, 3), (5, 4)), ((3, 3), (2, 2))]:
        w_cl = rng.normal(size=(*k, 3, 4))
        geom = K.make_geom((9, 9), (3, 3), stride, (1, 1), k, 4)
        np.testing.assert_array_equal(T._from_run(K.run_layout(w_cl, stride), geom), w_cl)


@pytest.mark.parametrize("herding", MODES)
def test_encode_pixels_and_rows(herding):
    case, _ = _pixel_case(6, 7, 5, 3, (3, 3), (1, 1), (1, 1), herding, 11)
    for name in ("encode_pixels", "encode_rows"):
        ra, a, rb, b = both_named(name, case)
        assert ra == rb
        n_px, n_ev = ra
        for arg in ("ev_ch", "ev_val", "memory"):
            np.testing.assert_array_equal(a[arg][:n_ev], b[arg][:n_ev])
        np.testing.assert_array_equal(a["px_list"][:n_px], b["px_list"][:n_px])
        np.testing.assert_array_equal(a["px_start"][:n_px + 1], b["px_start"][:n_px + 1])


@pytest.mark.parametrize("geom", [
    # (h, w, c_in, c_out, kernel, stride, padding)
    (7, 9, 4, 6, (3, 3), (1, 1), (1, 1)),
    (8, 8, 3, 4, (3, 3), (2, 2), (1, 0)),
    (9, 7, 2, 5, (5, 4), (2, 3), (2, 1)),
    (6, 6, 3, 5, (1, 1), (1, 1), (0, 0)),
    (10, 10, 2, 3, (2, 2), (3, 3), (0, 0)),
    (9, 11, 1, 8, (3, 3), (2, 2), (0, 0)),  # one input channel: encode_scatter_1ch
    (8, 7, 1, 3, (3, 2), (1, 2), (1, 1)),
])
@pytest.mark.parametrize("herding", MODES)
@pytest.mark.parametrize("in_rows", [False, True])
def test_conv_layer_step_and_scatter_pixels(geom, herding, in_rows):
    case, _ = _pixel_case(*geom, herding, 12)
    ra, a, rb, b = both_named("conv_layer_step", case, in_rows=in_rows)
    assert ra[0] == rb[0] and ra[1] == rb[1] and ra[3] == rb[3]
    assert ra[2] == pytest.approx(rb[2])
    np.testing.assert_allclose(a["z"], b["z"], rtol=1e-12, atol=1e-12)
    np.testing.assert_array_equal(a["memory"], b["memory"])
    assert listed(a["out_touched"], a["out_count"]) == listed(b["out_touched"], b["out_count"])
    assert ra[3] == a["out_count"][0]
    np.testing.assert_array_equal(a["mgeom"], b["mgeom"])  # one channel: the events remembered
    # the pixel scatter equals the flat per-event conv_scatter
    fresh, _ = _pixel_case(*geom, herding, 12)
    if not in_rows:
        n_px, _ = _call("encode_pixels", fresh)
        sa = _call("conv_scatter_pixels", {**fresh, "n_px": n_px})
        assert sa[0] == ra[1]
        np.testing.assert_allclose(fresh["z"], a["z"], rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("frac,scan", [(0.002, False), (0.9, True)])
def test_scatter_pixels_listing_by_scan_and_by_append(frac, scan):
    """Few events: listed as reached; many: stamped, then listed by one scan. Same set."""
    rng = np.random.default_rng(4)
    h, w, c_in, c_out = 40, 41, 3, 5
    n_in = h * w * c_in
    geom = K.make_geom((h, w), (h, w), (1, 1), (1, 1), (3, 3), c_out)
    touched, count = touched_list(rng, n_in, frac)
    case = dict(x=rng.normal(size=n_in) * 3, touched=touched, count=count, memory=np.zeros(n_in),
                herding=True, param=4.0, c_in=c_in, ev_ch=np.zeros(n_in, np.int64),
                ev_val=np.zeros(n_in), px_list=np.zeros(n_in, np.int64),
                px_start=np.zeros(n_in + 1, np.int64), lava_k=1.0, lava_shift=0)
    n_px, _ = _call("encode_pixels", case)
    case.update(n_px=n_px, gain=0.25, w_run=K.run_layout(rng.normal(size=(3, 3, c_in, c_out)), (1, 1)),
                z=np.zeros(h * w * c_out), geom=geom, vbuf=np.zeros(c_in),
                pg_list=np.zeros(h * w + 1, np.int64), pg_count=np.zeros(1, np.int64),
                pg_stamp=np.full(h * w, -1, np.int64), frame=3)
    assert (8 * n_px * 9 > h * w) == scan and count[0] > 0  # the kernel's rule for scanning
    ra, a, rb, b = both_named("conv_scatter_pixels", case)
    assert ra[0] == rb[0]
    np.testing.assert_allclose(a["z"], b["z"], rtol=1e-12, atol=1e-12)
    assert listed(a["pg_list"], a["pg_count"]) == listed(b["pg_list"], b["pg_count"])
    pixels = a["pg_list"][: a["pg_count"][0]]
    assert len(set(pixels.tolist())) == len(pixels)  # no pixel twice


def test_conv_layer_step_float32_prime_no_expand():
    case, _ = _pixel_case(7, 9, 4, 6, (3, 3), (1, 1), (1, 1), True, 13, np.float32)
    ra, a, rb, b = both_named("conv_layer_step", case, prime=True)
    assert ra[:2] == rb[:2]
    np.testing.assert_allclose(a["z"], b["z"], rtol=1e-5, atol=1e-5)
    assert listed(a["out_touched"], a["out_count"]) == list(range(len(a["z"])))
    ra, a, _, _ = both_named("conv_layer_step", case, prime=True, expand=False)  # only the pixel list
    assert a["out_count"][0] == 0 and ra[3] == len(a["z"])
    assert sorted(a["pg_list"][: a["pg_count"][0]].tolist()) == list(range(63))


@pytest.mark.parametrize("herding", MODES)
@pytest.mark.parametrize("frac", [0.01, 0.7])
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_encode_scatter_1ch_matches_twin(herding, frac, dtype):
    """One input channel in one pass == encode_pixels + conv_scatter_pixels (twins)."""
    rng = np.random.default_rng(8)
    h, w, c_out = 30, 31, 8
    geom = K.make_geom((h, w), (14, 15), (2, 2), (0, 0), (3, 3), c_out)
    w_run = K.run_layout(rng.normal(size=(3, 3, 1, c_out)).astype(dtype), (2, 2))
    pixels, count = touched_list(rng, h * w, frac)
    x = (rng.normal(size=h * w) * 2).astype(dtype)
    memory = (np.rint(4 * rng.normal(size=h * w)) if herding else rng.normal(size=h * w))
    lava = herding is K.Q_LAVA
    if lava:
        x, memory = _lava_values(rng, h * w, dtype)
    case = dict(x=x, pixels=pixels, count=count, memory=memory.astype(dtype), herding=herding,
                param=LAVA_THR if lava else (4.0 if herding else 0.3), lava_k=LAVA_K, lava_shift=6,
                gain=0.25 if herding is True else 1.0, w_run=w_run,
                z=rng.normal(size=14 * 15 * c_out).astype(dtype), geom=geom,
                pg_list=np.zeros(14 * 15 + 1, np.int64), pg_count=np.zeros(1, np.int64),
                pg_stamp=np.full(14 * 15, -1, np.int64), frame=2)
    ra, a, rb, b = both_named("encode_scatter_1ch", case)
    assert ra[0] == rb[0] and ra[1] == rb[1] and ra[2] == pytest.approx(rb[2])
    tol = 1e-12 if dtype == np.float64 else 1e-5
    np.testing.assert_allclose(a["z"], b["z"], rtol=tol, atol=tol)
    np.testing.assert_array_equal(a["memory"], b["memory"])
    assert listed(a["pg_list"], a["pg_count"]) == listed(b["pg_list"], b["pg_count"])


@pytest.mark.parametrize("geom", [
    # (h, w, c_out, kernel, stride, padding)
    (30, 31, 8, (3, 3), (2, 2), (0, 0)),
    (12, 13, 16, (3, 3), (1, 1), (1, 1)),
    (11, 9, 4, (5, 3), (2, 1), (2, 0)),
    (10, 12, 8, (2, 2), (3, 2), (1, 1)),
])
@pytest.mark.parametrize("herding", MODES)
@pytest.mark.parametrize("frac", [0.02, 0.8])
@pytest.mark.parametrize("dtype", [np.float64, np.float32, np.int64])
def test_encode_map_1ch_matches_twin_and_scatter(geom, herding, frac, dtype):
    """Spike map + gather == its twin (a loop over output pixels) == the one-channel scatter:
    same z (bit for bit: the taps are added in the scatter's order), memory, counters, list."""
    h, w, c_out, k, stride, pad = geom
    h_out, w_out = (h + 2 * pad[0] - k[0]) // stride[0] + 1, (w + 2 * pad[1] - k[1]) // stride[1] + 1
    if dtype == np.float32 and c_out % 8:
        c_out = 8  # the map needs whole SIMD vectors per output pixel
    rng = np.random.default_rng(c_out + k[0])
    g = K.make_geom((h, w), (h_out, w_out), stride, pad, k, c_out)
    w_cl = rng.normal(size=(*k, 1, c_out)) * (20 if dtype == np.int64 else 1)
    w_cl = w_cl.astype(dtype)
    mgeom, smap, wtap = K.make_map(g, w_cl)
    assert len(mgeom) and prefer_first_frame(mgeom, h_out * w_out)
    pixels, count = touched_list(rng, h * w, frac)
    fixed = dtype == np.int64
    x = (rng.normal(size=h * w) * 2)
    memory = np.rint(4 * rng.normal(size=h * w)) if herding else rng.normal(size=h * w)
    if fixed:  # integer weights take integer spikes (threshold: integer inputs)
        x, memory = np.rint(4 * x), np.rint(memory)
    lava = herding is K.Q_LAVA
    if lava:
        x, memory = _lava_values(rng, h * w, np.float64)
    sdt = np.float64 if fixed else dtype
    n_out = h_out * w_out
    case = dict(x=x.astype(sdt), pixels=pixels, count=count, memory=memory.astype(sdt),
                herding=herding, param=LAVA_THR if lava else (4.0 if herding else 0.3),
                lava_k=LAVA_K, lava_shift=6,
                gain=1 if fixed else (0.25 if herding is True else 1.0), wtap=wtap,
                z=(rng.normal(size=n_out * c_out) * (100 if fixed else 1)).astype(dtype), geom=g,
                mgeom=mgeom, smap=smap, pg_list=np.zeros(n_out + 1, np.int64),
                pg_count=np.zeros(1, np.int64), pg_stamp=np.full(n_out, -1, np.int64), frame=3)
    ra, a, rb, b = both_named("encode_map_1ch", case)
    sc = {n: v.copy() if isinstance(v, np.ndarray) else v for n, v in case.items()}
    sc["w_run"] = K.run_layout(w_cl, stride)
    rs = _call("encode_scatter_1ch", sc)
    assert ra[:2] == rb[:2] == rs[:2] and ra[2] == pytest.approx(rb[2]) == pytest.approx(rs[2])
    np.testing.assert_array_equal(a["z"], sc["z"])  # the scatter's z, bit for bit
    tol = 1e-5 if dtype == np.float32 else 1e-12
    np.testing.assert_allclose(a["z"], b["z"], rtol=tol, atol=tol)
    np.testing.assert_array_equal(a["memory"], b["memory"])
    assert (listed(a["pg_list"], a["pg_count"]) == listed(b["pg_list"], b["pg_count"])
            == listed(sc["pg_list"], sc["pg_count"]))
    assert not a["smap"].any()  # the map is left clear for the next frame


def prefer_first_frame(mgeom, n_out):
    """The map path is taken with no last frame, then only after dense frames."""
    first = K.prefer_map(mgeom, n_out)
    m = mgeom.copy()
    m[1] = n_out // 10
    sparse = K.prefer_map(m, n_out)
    m[1] = n_out
    return first and not sparse and K.prefer_map(m, n_out) and not K.prefer_map(m[:0], n_out)


@pytest.mark.parametrize("geom", [
    # (h, w, c_in, c_out, kernel, stride, padding): rows of whole blocks, single vectors and a tail
    (9, 10, 13, 19, (3, 3), (1, 1), (1, 1)),
    (8, 9, 12, 5, (3, 3), (2, 2), (1, 0)),
    (7, 8, 16, 40, (5, 3), (1, 2), (2, 1)),
])
@pytest.mark.parametrize("dtype", [np.float32, np.float64, np.int64])
def test_scatter_pixels_events_summed_in_registers(geom, dtype):
    """Pixels with many events (summed in registers from ``BLOCK_EVENTS`` on) give bit for bit
    the ``z`` of the same events scattered one group per event, and the twin's sums."""
    h, w, c_in, c_out, k, stride, padding = geom
    rng = np.random.default_rng(7)
    h_out = (h + 2 * padding[0] - k[0]) // stride[0] + 1
    w_out = (w + 2 * padding[1] - k[1]) // stride[1] + 1
    n_pix = h_out * w_out
    g = K.make_geom((h, w), (h_out, w_out), stride, padding, k, c_out)
    integer = np.dtype(dtype).kind == "i"
    w_cl = (rng.integers(-9, 10, (*k, c_in, c_out)) if integer else rng.normal(size=(*k, c_in, c_out)))
    pixels = np.flatnonzero(rng.random(h * w) < 0.8)
    counts = rng.integers(0, c_in + 1, len(pixels))  # 0 to all channels of a pixel spike
    counts[:3] = [c_in, BLOCK_EVENTS, 1]
    ev_ch = np.concatenate([np.sort(rng.choice(c_in, n, replace=False)) for n in counts]).astype(np.int64)
    ev_val = rng.integers(-3, 4, len(ev_ch)).astype(dtype)
    ev_val[ev_val == 0] = 1

    def run(px_list, px_start):
        case = dict(px_list=px_list, px_start=px_start, n_px=len(px_list), ev_ch=ev_ch, ev_val=ev_val,
                    gain=1 if integer else 0.25, w_run=K.run_layout(w_cl.astype(dtype), stride),
                    z=np.zeros(n_pix * c_out, dtype), geom=g, vbuf=np.zeros(c_in, dtype),
                    pg_list=np.zeros(n_pix + 1, np.int64), pg_count=np.zeros(1, np.int64),
                    pg_stamp=np.full(n_pix, -1, np.int64), frame=2)
        return case, _call("conv_scatter_pixels", case)

    keep = counts > 0
    grouped, rg = run(pixels[keep].astype(np.int64), np.r_[0, np.cumsum(counts[keep])].astype(np.int64))
    single, rs = run(np.repeat(pixels, counts).astype(np.int64), np.arange(len(ev_ch) + 1, dtype=np.int64))
    assert max(counts) >= BLOCK_EVENTS and rg[0] == rs[0] and rg[1] == pytest.approx(rs[1])
    np.testing.assert_array_equal(grouped["z"], single["z"])  # same sums in the same order
    assert listed(grouped["pg_list"], grouped["pg_count"]) == listed(single["pg_list"], single["pg_count"])
    twin = {**grouped, "z": np.zeros(n_pix * c_out, dtype), "pg_count": np.zeros(1, np.int64),
            "pg_stamp": np.full(n_pix, -1, np.int64)}
    rt = T.conv_scatter_pixels(*(twin[n] for n in params("conv_scatter_pixels")))
    assert rt[0] == rg[0]
    np.testing.assert_allclose(grouped["z"], twin["z"], rtol=1e-5 if dtype == np.float32 else 1e-12,
                               atol=1e-4 if dtype == np.float32 else 1e-12)
