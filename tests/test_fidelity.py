"""Fidelity measures on hand-made logit maps, delta calibration against an analytic value,
and the measures' trip through Stats, the HDF5 recording and the report."""

import numpy as np
import pytest
import torch
from torch import nn

import sigmadelta as sd
from sigmadelta import fidelity as fd
from sigmadelta.cli import main
from sigmadelta.io import write_fidelity

# Three frames of a 2x3 face-logit map (reference "ANN" a, run y), answers worked out by hand.
A = np.array([
    [[0.0, 1.0, 2.0], [3.0, 5.0, 4.9]],    # best 5.0 at (1,1); 4.9 at (1,2); gap 0.1
    [[0.0, 1.0, 3.0], [2.0, 6.0, 1.0]],    # best 6.0 at (1,1); gap 3.0
    [[-3.0, -2.0, -0.5], [-4.0, -1.0, -2.0]],  # no face: best -0.5 at (0,2); gap 0.5
])[:, None]
Y = np.array([
    [[0.0, 1.0, 2.0], [3.0, 4.8, 5.0]],    # picks (1,2): regret 5.0 - 4.9 = 0.1
    [[0.0, 1.0, 3.0], [9.0, 6.0, 1.0]],    # picks (1,0): regret 6.0 - 2.0 = 4.0
    [[-3.0, -2.0, 0.3], [-4.0, -1.0, -2.0]],  # picks (0,2) like a (regret 0) but says "face"
])[:, None]


def test_regret_on_a_hand_made_map():
    np.testing.assert_allclose(fd.regret(Y, A), [0.1, 4.0, 0.0], atol=1e-12)
    # delta 0.2: frames 0 and 2 within; frame 2's presence differs (0.3 > 0 but -0.5 < 0)
    assert fd.regret_agreement(Y, A, 0.2) == pytest.approx(2 / 3)
    assert fd.regret_agreement(Y, A, 0.2, presence_threshold=0.0) == pytest.approx(1 / 3)
    assert fd.regret_agreement(Y, A, 0.05) == pytest.approx(1 / 3)
    assert fd.regret_agreement(Y, A, 4.0) == 1.0
    assert fd.strict_agreement(Y, A) == pytest.approx(1 / 3)
    assert fd.strict_agreement(Y, A, presence_threshold=0.0) == 0.0
    np.testing.assert_allclose(fd.top_two_gap(A), [0.1, 3.0, 0.5], atol=1e-12)
    assert fd.flip_rate(A) == pytest.approx(1 / 2)  # (1,1) -> (1,1) -> (0,2)


def test_fidelity_record_by_hand():
    f = fd.fidelity(Y, A, delta=0.2, presence_threshold=None)
    assert f.regret_agreement == pytest.approx(2 / 3)
    # confident frames: gap > 0.2 -> frames 1 and 2; strict there: frame 2 only
    assert f.confident_share == pytest.approx(2 / 3)
    assert f.confident_agreement == pytest.approx(1 / 2)
    assert f.median_gap == pytest.approx(0.5)
    diff = (Y - A).ravel()
    assert f.relative_error == pytest.approx(np.sqrt((diff ** 2).sum() / (A ** 2).sum()))
    assert f.psnr_db == pytest.approx(10 * np.log10(10.0 ** 2 / np.mean(diff ** 2)))
    assert f.to_dict()["frames"] == 3 and f.to_dict()["presence_threshold"] is None


def test_classifier_outputs_and_bad_input():
    a = np.array([[0.0, 2.0, 1.0], [3.0, 0.0, 2.5]])
    y = np.array([[0.0, 1.0, 1.5], [3.0, 0.0, 2.0]])
    # frame 0 picks class 2 (a: 1.0, regret 1.0); frame 1 picks class 0 like a (regret 0)
    assert fd.regret_agreement(y, a, 0.9) == 0.5 and fd.regret_agreement(y, a, 1.0) == 1.0
    with pytest.raises(ValueError, match="differ in shape"):
        fd.fidelity(y, a[:, :2], 0.1)
    with pytest.raises(ValueError, match="delta"):
        fd.fidelity(y, a, -1.0)


def test_delta_calibration_on_a_linear_model():
    """f(x) = w.x: the change under N(0, s^2) noise is N(0, s^2 |w|^2), so the median of its
    absolute value is s |w| Phi^-1(3/4) = 0.67449 s |w|."""
    torch.manual_seed(0)
    model = nn.Linear(16, 1, bias=False)
    frames = np.random.default_rng(1).random((1000, 16), dtype=np.float32)
    delta = fd.calibrate_delta(model, frames, draws=4, batch=250)
    expected = 0.67449 * fd.GRAY_LEVEL * float(model.weight.detach().norm())
    assert delta == pytest.approx(expected, rel=0.05)
    # a plain callable works too, and twice the noise gives twice the delta
    w = model.weight.detach().numpy().T.astype(np.float64)
    delta2 = fd.calibrate_delta(lambda x: x @ w, frames, sigma=2 * fd.GRAY_LEVEL, draws=4, batch=250)
    assert delta2 == pytest.approx(2 * expected, rel=0.05)


def test_fidelity_in_stats_recording_and_report(tmp_path, capsys):
    torch.manual_seed(0)
    model = nn.Sequential(nn.Conv2d(1, 3, 3, stride=2), nn.ReLU(), nn.Conv2d(3, 1, 3)).eval()
    frames = np.random.default_rng(0).random((5, 1, 11, 11), dtype=np.float32)
    net = sd.convert(model, (1, 11, 11), scale=16.0, weight_bits=6)
    run = tmp_path / "run.h5"
    res = sd.simulate(net, frames, record=str(run), progress=False)
    with torch.no_grad():
        ann = model(torch.from_numpy(frames)).numpy()
    f = fd.fidelity(res.outputs, ann, fd.calibrate_delta(model, frames), presence_threshold=0.0)
    res.stats.fidelity = f
    assert "regret agreement" in res.stats.summary()
    assert res.stats.labels() == ["conv1 3x3/2 1->3", "conv2 3x3 3->1"]
    write_fidelity(run, f)
    stats, _, complete = sd.read_run(run)
    assert complete and stats.fidelity == f
    assert stats.labels() == res.stats.labels()
    np.testing.assert_array_equal(stats.weight_bits, [6, 6])
    np.testing.assert_array_equal(stats.n_weights, [27, 27])
    assert stats.energy() == res.stats.energy()
    assert main(["report", str(run), "-o", str(tmp_path / "r.png")]) == 0
    assert "regret agreement" in capsys.readouterr().out
