"""The integer-exact ``"lava"`` paths (kernels/lavaint.py): the float32 spike map, the int32
scatter and the float64 fallback against the float64 pixel scatter and the NumPy twins,
each path forced (the weights the other paths read are zeroed, so only the forced path can
give the right sums); and a whole network against the dense reference."""

import numpy as np
import pytest
import torch.nn as nn
from _twins import both_named, listed, params

import sigmadelta as sd
from sigmadelta import kernels as K
from sigmadelta.weightops import int8_weights

LAVA_K, LAVA_THR = 64.0, 640.0


def _case(h, w, c_in, c_out, k, stride, padding, seed, frac=0.8, map_ok=True):
    """Arguments of lava_conv_step (by name): integer weights, Lava-like integer inputs."""
    rng = np.random.default_rng(seed)
    h_out = (h + 2 * padding[0] - k[0]) // stride[0] + 1
    w_out = (w + 2 * padding[1] - k[1]) // stride[1] + 1
    n_in, n_pix = h * w * c_in, h_out * w_out
    w_cl = rng.integers(-20, 21, size=(*k, c_in, c_out)).astype(np.float64)
    geom = K.make_geom((h, w), (h_out, w_out), stride, padding, k, c_out)
    rows = np.flatnonzero(rng.random(h * w) < frac).astype(np.int64)
    idx = (rows[:, None] * c_in + np.arange(c_in)).ravel()  # the same neurons by pixel or neuron
    touched = np.zeros(n_in, np.int64)
    touched[: len(idx)] = idx
    x = np.rint(20 * rng.normal(size=n_in))
    memory = LAVA_K * (x + np.rint(15 * rng.normal(size=n_in))) + rng.integers(-63, 64, n_in)
    quiet = np.setdiff1d(np.arange(n_in), idx)
    memory[quiet] = LAVA_K * x[quiet]  # as in the engine: an untouched input has nothing to send
    w_run = K.run_layout(w_cl, stride)
    mgeom, smap, wtap = (K.lava_map_make(geom, w_cl) if map_ok and K.lava_map_ok(c_in, c_out) else
                         K.lava_scatter_make(w_run, n_pix * c_out))
    return dict(
        x=x, touched=touched, count=np.array([len(idx)], np.int64), rows=rows,
        row_count=np.array([len(rows)], np.int64), in_rows=False, memory=memory.astype(np.float64),
        param=LAVA_THR, lava_k=LAVA_K, lava_shift=6, w_run=w_run,
        w8=int8_weights(w_run).view(np.int8), l1=K.lava_l1(w_cl),  # padded to whole words, as the program
        dz=np.zeros(n_pix * c_out, np.int32), z=np.rint(1000 * rng.normal(size=n_pix * c_out)),
        geom=geom, ev_ch=np.zeros(n_in, np.int64), ev_val=np.zeros(n_in), px_list=np.zeros(n_in, np.int64),
        px_start=np.zeros(n_in + 1, np.int64), vbuf=np.zeros(c_in), pg_list=np.zeros(n_pix + 1, np.int64),
        pg_count=np.zeros(1, np.int64), pg_stamp=np.full(n_pix, -1, np.int64), frame=5, prime=False,
        expand=True, out_touched=np.zeros(n_pix * c_out, np.int64), out_count=np.zeros(1, np.int64),
        mgeom=mgeom, smap=smap.view(np.float32), wtap=wtap.view(np.float32), herding=K.Q_LAVA, gain=1.0)


def _reference_step(case, **override):
    """The float64 pixel scatter (``conv_layer_step``, no map) on a copy of ``case``."""
    c = {k: (v.copy() if isinstance(v, np.ndarray) else v) for k, v in {**case, **override}.items()}
    empty = dict(mgeom=np.zeros(0, np.int64), smap=np.zeros(0), wtap=np.zeros(0))
    c.update(empty)
    r = K.conv_layer_step(*(c[n] for n in params("conv_layer_step")))
    return r, c


GEOMS = [  # (h, w, c_in, c_out, kernel, stride, padding)
    (9, 20, 3, 24, (3, 3), (2, 2), (0, 0)),  # lava-dl PilotNet's first conv, smaller
    (8, 9, 3, 8, (3, 3), (1, 1), (1, 1)),
    (7, 8, 2, 16, (3, 2), (2, 1), (1, 0)),
    (6, 7, 8, 12, (3, 3), (2, 1), (1, 0)),  # no map (8 channels): int32 scatter
    (5, 6, 16, 16, (3, 3), (1, 1), (0, 0)),
    # kh * C_in <= 7: the int8 weights' padding to whole int64 words exceeds a tap row's count
    (5, 6, 2, 5, (1, 1), (1, 1), (0, 0)),  # 10 weights in 16 bytes
    (6, 7, 2, 5, (3, 3), (1, 1), (1, 1)),  # 90 in 96
    (6, 5, 3, 6, (1, 1), (1, 1), (0, 0)),  # 18 in 24
]


@pytest.mark.parametrize("geom", GEOMS)
@pytest.mark.parametrize("in_rows", [False, True])
@pytest.mark.parametrize("path", ["map", "map_events", "float32", "int32", "float64"])
def test_lava_conv_step_paths_equal_the_scatter(geom, in_rows, path):
    """``map``: every input encoded into the spike map (no last step); ``map_events``: the
    touched inputs encoded, then the map (the last step had no events); ``float32``: the
    scatter by fused multiply-adds (a layer without a map); ``int32``: bound past ``2**24``;
    ``float64``: past ``2**31`` (with a map: the map's encoding, then the events it listed)."""
    case = _case(*geom, seed=7)
    if path == "float32":
        n_out = len(case["z"])
        case.update(zip(("mgeom", "smap", "wtap"), K.lava_scatter_make(case["w_run"], n_out), strict=True))
        case.update(smap=case["smap"].view(np.float32), wtap=case["wtap"].view(np.float32))
    if path.startswith("map") and not len(case["mgeom"]):
        pytest.skip("no spike map for this layer")
    if path == "map_events":
        case["mgeom"][1] = 0
    zero = dict(w8=np.zeros_like(case["w8"]), wtap=np.zeros_like(case["wtap"]),
                w_run=np.zeros_like(case["w_run"]))
    only_wtap = dict(w8=zero["w8"], w_run=zero["w_run"])
    force = {"map": only_wtap, "map_events": only_wtap, "float32": only_wtap,
             "int32": dict(mgeom=np.zeros(0, np.int64), wtap=zero["wtap"], w_run=zero["w_run"],
                           l1=2.0 ** 24),
             "float64": dict(l1=2.0 ** 40, w8=zero["w8"], wtap=zero["wtap"])}[path]
    ref, c = _reference_step(case, in_rows=in_rows)
    ra, a, rb, b = both_named("lava_conv_step", case, in_rows=in_rows, **force)
    if path.startswith("map"):
        assert 8 * ra[0] >= len(case["x"])  # dense enough to take the map
    assert ra[:2] == ref[:2] and ra[3:] == ref[3:] and ra[2] == pytest.approx(ref[2])
    np.testing.assert_array_equal(a["z"], c["z"])  # exact: integer sums
    np.testing.assert_array_equal(a["memory"], c["memory"])
    assert listed(a["out_touched"], a["out_count"]) == listed(c["out_touched"], c["out_count"])
    n_map = a["mgeom"][-1] * (geom[2] + 1) if len(a["mgeom"]) else len(a["smap"])  # map, flags
    assert not a["dz"].any() and not a["smap"][:n_map].any()  # left zero for the next step
    # and the twin (which takes the float64 weights: force nothing there)
    tb = both_named("lava_conv_step", case, in_rows=in_rows)
    assert tb[0][:2] == tb[2][:2] and tb[0][3:] == tb[2][3:]
    np.testing.assert_array_equal(tb[1]["z"], tb[3]["z"])


def test_lava_map_sparse_events_take_the_int32_scatter():
    case = _case(9, 20, 3, 24, (3, 3), (2, 2), (0, 0), seed=3, frac=0.05)
    case["mgeom"][1] = 0  # a last step without events: encode the touched inputs only
    ra, a, _, _ = both_named("lava_conv_step", case, wtap=np.zeros_like(case["wtap"]))
    ref, c = _reference_step(case)
    assert 8 * ra[0] < len(case["x"]) and ra[:2] == ref[:2]
    np.testing.assert_array_equal(a["z"], c["z"])


def test_scatter_i32_and_lava_map_against_twins():
    case = _case(9, 20, 3, 24, (3, 3), (2, 2), (0, 0), seed=5)
    n_px, n_ev = K.encode_pixels(case["x"], case["touched"], case["count"], case["memory"], K.Q_LAVA,
                                 LAVA_THR, 3, case["ev_ch"], case["ev_val"], case["px_list"],
                                 case["px_start"], LAVA_K, 6)
    assert n_ev > 0
    case.update(n_px=n_px, c_in=3, buf=case["smap"], cg=24)
    for name in ("scatter_i32", "lava_map"):
        ra, a, rb, b = both_named(name, case)
        assert ra[0] == rb[0] and ra[1] == pytest.approx(rb[1])
        assert listed(a["pg_list"], a["pg_count"]) == listed(b["pg_list"], b["pg_count"])
        out = "dz" if name == "scatter_i32" else "z"
        np.testing.assert_array_equal(a[out], b[out])
    ra, a, rb, b = both_named("fold_i32", {**case, "dz": np.arange(len(case["z"]), dtype=np.int32),
                                           "pg_count": np.array([5]), "pg_list": np.arange(2, 40)})
    np.testing.assert_array_equal(a["z"], b["z"])
    np.testing.assert_array_equal(a["dz"], b["dz"])
    w32 = K.lava_scatter_make(case["w_run"], len(case["z"]))[2].view(np.float32)
    f32 = {**case, "w32": w32, "dz": np.zeros(len(case["z"]), np.float32)}
    ra, a, rb, b = both_named("scatter_f32", f32)
    assert ra[0] == rb[0] and ra[1] == pytest.approx(rb[1]) and a["dz"].any()
    assert listed(a["pg_list"], a["pg_count"]) == listed(b["pg_list"], b["pg_count"])
    np.testing.assert_array_equal(a["dz"], b["dz"])
    ra, a, rb, b = both_named("fold_f32", {**f32, "dz": a["dz"], "pg_list": a["pg_list"],
                                           "pg_count": a["pg_count"]})
    np.testing.assert_array_equal(a["z"], b["z"])
    assert not a["dz"].any() and not b["dz"].any()


@pytest.mark.parametrize("geom", [g for g in GEOMS if K.lava_map_ok(g[2], g[3])])
def test_lava_encode_map_against_twin_and_encoder(geom):
    """Every input into the map: the same messages and memory as Lava's encoder on every
    neuron, the map and its pixel flags, the counts; the untouched inputs send nothing."""
    case = _case(*geom, seed=11, frac=0.5)
    c_in = geom[2]
    case.update(buf=case["smap"], c_in=c_in)
    ra, a, rb, b = both_named("lava_encode_map", case)
    assert ra == rb
    for k in ("memory", "ev_val", "buf"):
        np.testing.assert_array_equal(a[k], b[k])
    n_in = len(case["x"])
    mem, ev_idx, ev_val = case["memory"].copy(), np.zeros(n_in, np.int64), np.zeros(n_in)
    n_ev = K.lava_encode(case["x"], np.arange(n_in), np.array([n_in]), mem, LAVA_K, LAVA_THR, 6,
                         ev_idx, ev_val)
    assert ra[1] == n_ev > 0
    np.testing.assert_array_equal(a["memory"], mem)
    np.testing.assert_array_equal(np.flatnonzero(a["ev_val"][:n_in]), ev_idx[:n_ev])
    np.testing.assert_array_equal(a["ev_val"][ev_idx[:n_ev]], ev_val[:n_ev])
    assert set(ev_idx[:n_ev]) <= set(case["touched"][: case["count"][0]])


@pytest.mark.parametrize("n_out", [10, 37, 100])
@pytest.mark.parametrize("scale", [20.0, 3e4, 1e9])
def test_lava_dense_step(n_out, scale):
    """``scale`` 20: float32 registers (16 outputs or more; bound below ``2**24``), else int32;
    3e4: int32; 1e9: past ``2**31``, float64."""
    rng = np.random.default_rng(2)
    n_in, n_ev = 300, 121
    w = rng.integers(-100, 101, size=(n_in, n_out)).astype(np.int8)
    ev_idx = rng.choice(n_in, n_ev, replace=False).astype(np.int64)
    ev_val = np.rint(rng.normal(size=n_ev) * scale)
    bound = np.abs(ev_val).max() * K.lava_l1(w)
    assert (bound < 2**24) == (scale == 20.0) and (bound < 2**31) == (scale < 1e9)
    case = dict(ev_idx=ev_idx, ev_val=ev_val, n_events=n_ev, w8=w, l1=K.lava_l1(w),
                dz=np.zeros(n_out, np.int32), z=np.rint(rng.normal(size=n_out) * 1e5))
    ra, a, rb, b = both_named("lava_dense_step", case)
    assert ra[0] == rb[0] and ra[1] == rb[1]
    np.testing.assert_array_equal(a["z"], b["z"])
    assert not a["dz"].any()
    z = case["z"].copy()
    assert K.dense_scatter(ev_idx, ev_val, n_ev, 1.0, w.astype(np.float64), z)[0] == ra[0]
    if scale < 1e9:
        np.testing.assert_array_equal(a["z"], z)


@pytest.mark.parametrize("n_out", [16, 37, 100, 128, 300])
@pytest.mark.parametrize("n_ev", [0, 1, 57])
def test_dense_f32_against_twin(n_out, n_ev):
    """The float32 register sums (blocks of 128 outputs, vectors overlapping at the end)."""
    rng = np.random.default_rng(n_out + n_ev)
    w = rng.integers(-127, 128, size=(90, n_out)).astype(np.int8)
    ev_idx = rng.choice(90, n_ev, replace=False).astype(np.int64)
    ev_val = np.rint(rng.normal(size=n_ev) * 300)
    assert np.abs(ev_val).max(initial=0) * K.lava_l1(w) < 2**24
    case = dict(ev_idx=ev_idx, ev_val=ev_val, n_events=n_ev, w8=w, dz=np.zeros(n_out, np.int32))
    _, a, _, b = both_named("dense_f32", case)
    np.testing.assert_array_equal(a["dz"], b["dz"])
    assert a["dz"].any() == (n_ev > 0)


def test_lava_network_with_a_three_channel_conv_equals_the_reference(tmp_path):
    """A netx network (3 input channels, 8 and 16 outputs) on a changing input: the event engine
    (spike map, int32 scatter and dense sums) equals the dense reference on every step."""
    import torch

    torch.manual_seed(1)
    model = nn.Sequential(nn.Conv2d(3, 8, 3, stride=2), nn.ReLU(), nn.Conv2d(8, 16, 3), nn.ReLU(),
                          nn.Flatten(), nn.Linear(16 * 3 * 6, 12), nn.ReLU(),
                          nn.Linear(12, 2, bias=False)).eval()
    net = sd.convert(model, input_shape=(3, 11, 17), quantizer="threshold", threshold=0.02)
    sd.save_netx(net, tmp_path / "n.net")
    lava = sd.load_netx(tmp_path / "n.net")
    rng = np.random.default_rng(0)
    base = rng.random((3, 11, 17))
    frames = np.rint(64 * np.stack([np.clip(base + 0.3 * np.sin(0.4 * t + 9 * base), 0, 1)
                                    for t in range(32)]))
    sim = sd.Simulator(lava, timing="pipelined")
    ops = sim._weight_ops
    assert len(ops[0].smap[0]) and ops[0].w8 is not None and ops[1].w8 is not None  # map, int32
    assert ops[2].dz is not None  # int32 dense sums
    res = sim.run(frames, progress=False)
    ref = sd.reference(lava, frames, timing="pipelined", progress=False)
    np.testing.assert_array_equal(res.outputs, ref)
    plain = sd.Simulator(lava, dtype=np.float32, timing="pipelined")  # float32: no integer paths
    assert plain._weight_ops[0].w8 is None and plain._weight_ops[2].dz is None
