"""Smoke test of scripts/compress.py: 2 epochs of BC-GNJ on LeNet-300-100, short stream."""

from __future__ import annotations

import csv
import importlib.util
import json
import sys
from pathlib import Path

import torch
from torch import nn

from sigmadelta.compress.report import paper_arch

SCRIPT = Path(__file__).resolve().parents[1] / "scripts" / "compress.py"


def _load_script():
    spec = importlib.util.spec_from_file_location("compress_script", SCRIPT)
    mod = importlib.util.module_from_spec(spec)
    sys.modules["compress_script"] = mod
    spec.loader.exec_module(mod)
    return mod


cs = _load_script()


def test_paper_arch_and_thresholds() -> None:
    model = nn.Sequential(nn.Conv2d(1, 3, 3), nn.Flatten(), nn.Linear(12, 4), nn.ReLU(),
                          nn.Linear(4, 2))
    with torch.no_grad():
        model[0].weight[1] = 0
        model[2].weight[:, :5] = 0
        model[4].weight[:, 0] = 0
    assert paper_arch(model) == "2-7-3"
    assert cs._thresholds(["gnj=-1", "GHS=-0.5"]) == {"gnj": -1.0, "ghs": -0.5}
    assert cs._thresholds(None) is None


def test_compress_script_smoke(tmp_path: Path) -> None:
    rows = cs.main(["--model", "lenet300", "--prior", "gnj", "--epochs", "2",
                    "--augment-copies", "1", "--scales", "8", "16", "--stream-limit", "30",
                    "--out", str(tmp_path)])
    base, gnj = rows
    assert base["prior"] == "none" and gnj["prior"] == "gnj"
    assert base["baseline"].startswith("shipped checkpoint")
    assert 0.9 < base["acc"] <= 1.0 and 0.0 <= gnj["acc"] <= 1.0
    assert gnj["sd_fixed_bit_exact"] is True
    assert gnj["sd_float_synops"] > 0 and gnj["comp_prec"] >= gnj["comp_arch"] >= 1.0
    assert len(gnj["bits"].split("-")) == 3
    meta = json.loads((tmp_path / "results.json").read_text())
    assert len(meta["rows"]) == 2 and "scripts/compress.py" in meta["meta"]["command"]
    with open(tmp_path / "results.csv") as f:
        assert len(list(csv.DictReader(f))) == 2
    md = (tmp_path / "tables.md").read_text()
    assert "BC-GNJ" in md and "synops/frame" in md and "(paper)" in md
    assert (tmp_path / "lenet300_gnj_small.pt").exists()
