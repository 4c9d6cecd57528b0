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


def test_validation_split_holds_out_last_per_class() -> None:
    y = torch.tensor([0, 0, 0, 1, 1, 1, 1, 2, 2, 2])
    x = torch.arange(10, dtype=torch.float32)[:, None]
    xtr, ytr, xva, yva = cs.split_validation(x, y, 2)
    assert xva.flatten().tolist() == [1, 2, 5, 6, 8, 9] and yva.tolist() == [0, 0, 1, 1, 2, 2]
    assert xtr.flatten().tolist() == [0, 3, 4, 7] and ytr.tolist() == [0, 1, 1, 2]
    try:
        cs.split_validation(x, y, 3)
    except ValueError as exc:
        assert "class 0 has only 3" in str(exc)
    else:
        raise AssertionError("holding out a whole class must fail")


def _two_feature_model(log_alpha_signal: float, log_alpha_noise: float) -> nn.Module:
    """Class = sign of input 0; input 1 is unused (zero weights)."""
    from sigmadelta import compress

    bm = compress.bayesianize(nn.Sequential(nn.Linear(2, 2)), prior="gnj")
    with torch.no_grad():
        bm[0].weight_mu.copy_(torch.tensor([[-1.0, 0.0], [1.0, 0.0]]))
        bm[0].bias.zero_()
        bm[0].scale.mu.fill_(1.0)  # log alpha = logvar - log mu^2 = logvar
        bm[0].scale.logvar.copy_(torch.tensor([log_alpha_signal, log_alpha_noise]))
    return bm.eval()


def test_threshold_chosen_on_validation_is_smallest_keeping_accuracy() -> None:
    gen = torch.Generator().manual_seed(0)
    x = torch.randn(200, 2, generator=gen)
    y = (x[:, 0] > 0).long()
    data = cs.Data(x, y, x, y, (2,), None, None, "mnist", x, y)
    # signal group at log alpha 1.5: thresholds <= 1.5 prune it (chance level), 2 keeps it
    t, rec = cs.choose_threshold(_two_feature_model(1.5, 0.5), data, [2, -1, 1], 0.005)
    assert t == 2.0 and rec["chosen"] == 2.0 and rec["val_acc_bayes_mean"] == 1.0
    assert rec["val_acc_by_threshold"]["2"] == 1.0 and rec["val_acc_by_threshold"]["1"] < 0.7
    # signal group at -2: the smallest threshold already keeps it and drops the unused input
    t, rec = cs.choose_threshold(_two_feature_model(-2.0, 0.5), data, [2, -1, 1], 0.005)
    assert t == -1.0 and rec["n_validation"] == 200
    data.x_val = None
    try:
        cs.choose_threshold(_two_feature_model(-2.0, 0.5), data, [0], 0.0)
    except ValueError as exc:
        assert "--val-per-class" in str(exc)
    else:
        raise AssertionError("no validation split must fail")


def test_finetune_keeps_pruned_zeros_and_stores_the_grid() -> None:
    spec = importlib.util.spec_from_file_location("_finetune", SCRIPT.parent / "_finetune.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    finetune_quantized = mod.finetune_quantized

    from sigmadelta import compress

    gen = torch.Generator().manual_seed(1)
    x = torch.randn(256, 6, generator=gen)
    y = (x[:, 0] + x[:, 1] > 0).long()
    torch.manual_seed(0)
    bm = compress.bayesianize(nn.Sequential(nn.Linear(6, 5), nn.ReLU(), nn.Linear(5, 2))).eval()
    with torch.no_grad():
        bm[0].scale.logvar[3:] = 4.0  # inputs 3..5 pruned (log alpha 4 > -1)
    small, rep = compress.prune_and_quantize(bm, quantize=False)
    assert small[0].weight[:, 3:].abs().sum() == 0 and small[0].weight[:, :3].ne(0).all()
    before = small[2].weight.detach().clone()
    tuned, rep2 = finetune_quantized(small, rep, x, y, epochs=3, lr=1e-2, batch_size=32, seed=0)
    assert not any("parametrizations" in k for k in tuned.state_dict())
    assert tuned[0].weight[:, 3:].abs().sum() == 0  # pruned inputs stay exactly zero
    for name, layer in (("0", tuned[0]), ("2", tuned[2])):
        k = layer.weight.detach().double() / rep2.steps[name]
        assert float((k - k.round()).abs().max()) < 1e-4
        assert float(k.round().abs().max()) == 2 ** (rep2.bits[name] - 1) - 1
    assert rep2.bits == rep.bits and rep2.architecture == rep.architecture
    assert rep2.n_nonzero == sum(int(m.weight.ne(0).sum()) for m in (tuned[0], tuned[2]))
    q_before, _ = compress.quantize_fixed(before, rep.bits["2"])
    assert not torch.equal(tuned[2].weight.detach(), q_before)  # it did train


def test_threshold_that_removes_a_whole_layer_scores_zero() -> None:
    from sigmadelta import compress

    gen = torch.Generator().manual_seed(0)
    x = torch.randn(100, 2, generator=gen)
    y = (x[:, 0] > 0).long()
    torch.manual_seed(0)
    bm = compress.bayesianize(nn.Sequential(nn.Linear(2, 3), nn.ReLU(), nn.Linear(3, 2))).eval()
    with torch.no_grad():
        bm[2].scale.logvar.fill_(1.5)  # every hidden unit's group at log alpha 1.5
    data = cs.Data(x, y, x, y, (2,), None, None, "mnist", x, y)
    t, rec = cs.choose_threshold(bm, data, [1, 2], 0.1)
    assert rec["val_acc_by_threshold"]["1"] == 0.0  # no hidden unit left: no network
    assert t == 2.0 and rec["val_acc_by_threshold"]["2"] > 0.5
