"""The energy model on a two-layer example computed by hand (Horowitz ISSCC 2014, 45 nm)."""

import numpy as np
import pytest
import torch
from torch import nn

import sigmadelta as sd
from sigmadelta.energy import EnergyModel, layer_energy


def test_two_layers_by_hand():
    # layer A: 1000 synops, 100 weights of 8 bits, herding -> int8 add 0.03 pJ
    # layer B: 500 synops, 50 float weights, threshold -> fp32 MAC 3.7 + 0.9 = 4.6 pJ
    # weights: 100*8 + 50*32 = 2400 bits = 300 bytes -> the 8 KB SRAM, 10 pJ per 64 bits
    e = layer_energy([1000, 500], [100, 50], [8, 0], ["herding", "threshold"])
    assert e.where == "SRAM 8 KB" and e.model_bytes == 300
    assert e.op == ["int8 add", "fp32 MAC"]
    np.testing.assert_allclose(e.arithmetic, [1000 * 0.03e-12, 500 * 4.6e-12])
    np.testing.assert_allclose(e.memory, [1000 * 8 / 64 * 10e-12, 500 * 32 / 64 * 10e-12])
    assert e.total == pytest.approx((30 + 2300 + 1250 + 2500) * 1e-12)
    # the dense fp32 ANN of the same layers: 4000 and 2000 MACs, 150 fp32 weights = 600 bytes
    d = layer_energy([4000, 2000], [100, 50], [8, 0], ["herding", "threshold"], dense=True)
    assert d.op == ["fp32 MAC", "fp32 MAC"]
    assert d.arithmetic_total == pytest.approx(6000 * 4.6e-12)
    assert d.total == pytest.approx(6000 * 4.6e-12 + 6000 * 0.5 * 10e-12)


def test_bit_widths_memories_and_dram():
    m = EnergyModel()
    assert m.int_add_pj(8) == pytest.approx(0.03) and m.int_add_pj(32) == pytest.approx(0.1)
    assert m.int_add_pj(20) == pytest.approx(0.065)  # half way in bits
    # float herding synop: fp32 add; 40 KB of weights: past 32 KB -> the 1 MB SRAM (100 pJ)
    e = layer_energy([10], [10 * 1024], [0], ["herding"])
    assert e.op == ["fp32 add"] and e.where == "SRAM 1 MB"
    assert e.total == pytest.approx(10 * (0.9 + 0.5 * 100) * 1e-12)
    # 16 KB of 4-bit weights -> 32 KB SRAM; a 1 KB on-chip budget sends them to DRAM (1.3 nJ)
    e = layer_energy([10], [32 * 1024], [4], ["herding"])
    assert e.where == "SRAM 32 KB" and e.read_pj[0] == pytest.approx(4 / 64 * 20)
    e = layer_energy([10], [32 * 1024], [4], ["herding"], model=EnergyModel(on_chip_bytes=1024))
    assert e.where == "DRAM" and e.read_pj[0] == pytest.approx(4 / 64 * 1300)


def test_stats_energy_of_a_simulated_two_layer_net():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(6, 5), nn.ReLU(), nn.Linear(5, 3))
    frames = np.random.default_rng(0).random((4, 6), dtype=np.float32)
    res = sd.simulate(sd.convert(model, (6,), scale=8.0, weight_bits=[8, 4]), frames, progress=False)
    s = res.stats
    syn, macs = s.synops.sum(0), s.dense_macs.sum(0)
    # 30 weights of 8 bits + 15 of 4 bits = 300 bits: 8 KB SRAM at 10 pJ per 64-bit read
    by_hand = (syn[0] * (0.03 + 8 / 64 * 10) + syn[1] * (0.03 - 4 * 0.07 / 24 + 4 / 64 * 10)) * 1e-12
    e = s.energy()
    assert e["sigma_delta_with_memory"] == pytest.approx(by_hand)
    assert e["dense_with_memory"] == pytest.approx(macs.sum() * (4.6 + 0.5 * 10) * 1e-12)
    assert e["dense_fp32_mac"] == pytest.approx(macs.sum() * 4.6e-12)
    assert "with weight reads (SRAM 8 KB" in s.summary()
    assert s.labels() == ["fc1 6->5", "fc2 5->3"] and "fc2 5->3" in s.summary()
