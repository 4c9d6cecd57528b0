"""scripts/face_boxes.py without OpenCV: --help works, a run names the package to install."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import numpy as np
import pytest

SCRIPT = Path(__file__).resolve().parents[1] / "scripts" / "face_boxes.py"


@pytest.fixture
def no_cv2(monkeypatch):
    """The script, loaded with ``import cv2`` failing as it does where OpenCV is not installed."""
    monkeypatch.setitem(sys.modules, "cv2", None)  # None in sys.modules: import raises ImportError
    spec = importlib.util.spec_from_file_location("face_boxes_script", SCRIPT)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def test_help_without_opencv(no_cv2, capsys):
    with pytest.raises(SystemExit) as e:
        no_cv2.main(["--help"])
    assert e.value.code == 0
    out = capsys.readouterr().out
    assert "usage:" in out and "--video" in out and "--out" in out


def test_run_without_opencv_names_the_package(no_cv2, tmp_path):
    out = tmp_path / "boxes.json"
    with pytest.raises(SystemExit) as e:
        no_cv2.main(["--frames", "1", "--out", str(out)])
    assert "opencv-python-headless" in str(e.value.code)
    assert not out.exists()
    with pytest.raises(ImportError, match="opencv-python-headless"):
        no_cv2.detect(np.zeros((1, 1, 8, 8), np.float32))
