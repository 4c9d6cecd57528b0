"""The expected regret agreement of the face detector's operating-point guard
(``scripts/_face_guard.py``, ``--guard-kind expected``): by hand, against a brute-force twin,
and through ``_face_bc_layers.measure`` against ``sd.reference``."""

import argparse
import importlib.util
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from test_face_bc import measure_clips

import sigmadelta as sd

SCRIPTS = Path(__file__).resolve().parents[1] / "scripts"


def _mod(name: str, monkeypatch):
    monkeypatch.syspath_prepend(str(SCRIPTS))
    spec = importlib.util.spec_from_file_location(f"_guard_test_{name}", SCRIPTS / f"{name}.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def _hand_streams():
    """Two streams (delta 0.5 and 1.0), four frames, every term worked out below."""
    a_a = np.array([[2.0, 1.0, 0.0], [0.0, 3.0, 2.9]])
    y_a = np.array([[1.8, 1.1, 0.0], [0.0, 2.9, 3.0]])
    a_b = np.array([[5.0, 1.0, 0.0], [-1.0, -2.0, -3.0]])
    y_b = np.array([[4.0, 3.5, 0.0], [0.5, -2.0, -3.0]])
    return (y_a, a_a, 0.5), (y_b, a_b, 1.0)


def test_tie_terms_and_expected_agreement_by_hand(monkeypatch):
    """Gaps 2, 0.2 | 4, 1 delta; perturbations -0.6, -0.4 | -3.5, 1.5; the last frame's
    presence mismatches. Pooled |e| = {0.6, 0.4, 3.5, 1.5}: S(2) = 1/4, S(4) = 0. With a
    tolerance of 1 delta: p = 1/4, 0 (gap 0.2 within it), 0, 1 -> R = 1 - 1.25 / 4; with 2.5
    delta the first frame is within the tolerance too -> R = 1 - 1 / 4."""
    guard = _mod("_face_guard", monkeypatch)
    sa, sb = _hand_streams()
    ta, tb = guard.tie_terms(*sa), guard.tie_terms(*sb)
    np.testing.assert_allclose(ta["gap"], [2.0, 0.2])
    np.testing.assert_allclose(ta["perturbation"], [-0.6, -0.4])
    np.testing.assert_allclose(tb["gap"], [4.0, 1.0])
    np.testing.assert_allclose(tb["perturbation"], [-3.5, 1.5])
    assert ta["presence_fail"].tolist() == [False, False]
    assert tb["presence_fail"].tolist() == [False, True]
    r = guard.expected_agreement({"a": ta, "b": tb}, 1.0)
    assert r["expected_regret_agreement"] == pytest.approx(1 - 1.25 / 4)
    assert r["expected_failures"] == {"a": pytest.approx(0.25), "b": pytest.approx(1.0)}
    r = guard.expected_agreement({"a": ta, "b": tb}, 2.5)
    assert r["expected_regret_agreement"] == pytest.approx(0.75)


def _twin(streams, delta_mult):
    """Slow obvious twin: every frame's failure probability as a double loop over frames."""
    rows = []
    for y, a, delta in streams:
        for yt, at in zip(y, a, strict=True):
            i1, i2 = np.argsort(at, kind="stable")[-1], np.argsort(at, kind="stable")[-2]
            g = (at[i1] - at[i2]) / delta
            e = ((yt[i1] - yt[i2]) - (at[i1] - at[i2])) / delta
            rows.append((g, abs(e), (yt.max() > 0) != (at.max() > 0)))
    total = 0.0
    for g, _, pres in rows:
        if pres:
            total += 1.0
        elif g > delta_mult:
            total += sum(1 for _, e, _ in rows if e > g) / len(rows)
    return 1.0 - total / len(rows)


def test_expected_agreement_equals_its_twin_on_random_maps(monkeypatch):
    """Random maps with near ties and perturbations of every size: the sorted-survival
    estimate equals the double loop; finer perturbations never lower it."""
    guard = _mod("_face_guard", monkeypatch)
    rng = np.random.default_rng(3)
    streams = []
    for t, delta in ((40, 0.05), (25, 0.08)):
        a = rng.normal(0, 1, (t, 12))
        a[: t // 2, 1] = a[: t // 2].max(1) - rng.uniform(0, 0.3, t // 2)  # near ties
        streams.append((a + rng.normal(0, 0.1, a.shape), a, delta))
    for m in (1.0, 2.0):
        got = guard.expected_agreement(
            {str(i): guard.tie_terms(*s) for i, s in enumerate(streams)}, m)
        assert got["expected_regret_agreement"] == pytest.approx(_twin(streams, m))
    fine = [(a + 0.3 * (y - a), a, d) for y, a, d in streams]
    coarse, finer = (guard.expected_agreement(
        {str(i): guard.tie_terms(*s) for i, s in enumerate(ss)}, 1.0)["expected_regret_agreement"]
        for ss in (streams, fine))
    assert coarse < 1.0 and finer > coarse


def test_measure_expected_agreement_against_the_reference_run(monkeypatch):
    """``_face_bc_layers.measure`` on short non-test clips: its expected agreement is the twin's
    on sd.reference outputs; ``feasible`` reads it only with ``--guard-kind expected``."""
    layers = _mod("_face_bc_layers", monkeypatch)
    model, info, streams, values, bits, _ = measure_clips(_mod("_face_bc_op", monkeypatch),
                                                          (("bikes", 5), ("face-pan:1", 4)))
    m = layers.measure(model, streams, values, bits, 1.0)
    net = sd.convert(model, info["input_shape"], scale=values, weight_bits=bits)
    ref = [(sd.reference(net, x, progress=False).reshape(a.shape), a, d)
           for x, a, d in streams.values()]
    assert m["expected_regret_agreement"] == pytest.approx(_twin(ref, 1.0))


def test_feasible_reads_the_expected_agreement_only_when_asked(monkeypatch):
    """``feasible`` with ``--guard-kind expected`` bounds the expected agreement, without it
    (or ``count``) the counted one, as the recorded commands did."""
    layers = _mod("_face_bc_layers", monkeypatch)
    m = {"streams": {"a": {"rel_err": 0.008}}, "rel_err": 0.008,
         "regret_agreement": 0.996, "expected_regret_agreement": 0.985}
    args = argparse.Namespace(max_rel_err=0.009, min_regret=0.99)
    assert layers.feasible(m, args)
    assert layers.feasible(m, argparse.Namespace(**vars(args), guard_kind="count"))
    assert not layers.feasible(m, argparse.Namespace(**vars(args), guard_kind="expected"))
    m2 = {**m, "regret_agreement": 0.985, "expected_regret_agreement": 0.992}
    assert layers.feasible(m2, argparse.Namespace(**vars(args), guard_kind="expected"))
    assert not layers.feasible(m2, args)


@pytest.mark.slow  # renders three 300-frame videos: 18-25 s of a 2-minute cached make test
def test_face_pan_seed_streams(monkeypatch):
    """``face-pan`` is seed 0, ``face-pan:S`` seed S, of the 6 x 50-frame guard video."""
    op_mod = _mod("_face_bc_op", monkeypatch)
    fp = _mod("_face_pan", monkeypatch)
    np.testing.assert_array_equal(op_mod.load_video("face-pan:2", limit=3),
                                  fp.face_pan_frames(2, segments=6, frames_per_segment=50)
                                  ["frames"][:3])
    assert not np.array_equal(op_mod.load_video("face-pan:2", limit=3),
                              op_mod.load_video("face-pan", limit=3))


def test_margin_streams_append_pooled_frames_and_teacher_maps(monkeypatch):
    """``finetune_face_bc --margin-streams``: each named stream's frames, 2x2-pooled, follow the
    non-test frames in the order given, with the teacher's maps on them; none: unchanged."""
    ft = _mod("finetune_face_bc", monkeypatch)
    op_mod = _mod("_face_bc_op", monkeypatch)
    clips = {"face-pan:5": np.full((2, 1, 4, 6), 0.25, np.float32),
             "face-pan:6": np.arange(72, dtype=np.float32).reshape(3, 1, 4, 6) / 72}
    monkeypatch.setattr(op_mod, "load_video", lambda name, limit=None: clips[name])
    monkeypatch.setitem(sys.modules, "_face_bc_op", op_mod)
    teacher = torch.nn.Conv2d(1, 1, 1)
    frames, targets = torch.zeros(1, 1, 2, 3), torch.zeros(1, 1, 2, 3)
    same = ft._with_extra(argparse.Namespace(margin_streams=""), teacher, frames, targets)
    assert same[0] is frames and same[1] is targets
    f, t = ft._with_extra(argparse.Namespace(margin_streams="face-pan:5,face-pan:6"), teacher,
                          frames, targets)
    assert f.shape == (6, 1, 2, 3) and t.shape == (6, 1, 2, 3)
    np.testing.assert_allclose(f[1:3].numpy(), 0.25)
    x6 = torch.from_numpy(clips["face-pan:6"])
    want = (x6[..., ::2, ::2] + x6[..., 1::2, ::2] + x6[..., ::2, 1::2] + x6[..., 1::2, 1::2]) / 4
    np.testing.assert_allclose(f[3:].numpy(), want.numpy(), rtol=1e-6)
    with torch.no_grad():
        np.testing.assert_allclose(t[1:].numpy(), teacher(f[1:]).numpy(), rtol=1e-6)
