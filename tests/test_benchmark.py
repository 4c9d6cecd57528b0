"""Smoke run of scripts/benchmark.py: tiny synthetic inputs, JSON parses (no timing asserts).

The micro run and the flag check run the script's ``main`` in this process; the runs as a
command (network with two streams, sweep plot, many streams) are marked slow:
``pytest -m slow``."""

import importlib.util
import json
import subprocess
import sys
import time
from pathlib import Path

import pytest

import sigmadelta.profiling as sd_profiling

SCRIPT = Path(__file__).resolve().parents[1] / "scripts" / "benchmark.py"


@pytest.fixture()
def benchmark(monkeypatch):
    """The script loaded in this process; the process-wide settings its ``main`` makes
    (torch, Numba and BLAS thread counts, denormal flushing) do not leak into the other tests."""
    import numba
    import torch

    monkeypatch.setattr(sys, "path", list(sys.path))  # the script puts scripts/ on it
    spec = importlib.util.spec_from_file_location("benchmark_script", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    monkeypatch.setattr(torch, "set_num_threads", lambda n: None)
    monkeypatch.setattr(torch, "set_flush_denormal", lambda on: True)
    monkeypatch.setattr(numba, "set_num_threads", lambda n: None)
    monkeypatch.setattr(module, "threadpool_limits", lambda n: None)
    return module


def _run(*args: str) -> dict:
    out = subprocess.run([sys.executable, str(SCRIPT), "--json", "--repeats", "1", *args],
                         capture_output=True, text=True, timeout=600, check=True)
    return json.loads(out.stdout)


@pytest.mark.slow
def test_benchmark_network_smoke():
    r = _run("--frames", "4", "--input-shape", "1", "24", "32", "--streams", "1,2")
    net = r["network"]
    assert net["frames"] == 4 and len(net["layers"]) == 4
    assert net["op_reduction"] > 0 and net["speedup"] > 0
    assert [s["streams"] for s in r["streams"]] == [1, 2]


def test_benchmark_micro_smoke(benchmark, capsys):
    benchmark.main(["--json", "--repeats", "1", "--micro", "--frames", "3", "--micro-hw", "8", "8",
                    "--micro-channels", "4", "--dtype", "float32"])
    (m,) = json.loads(capsys.readouterr().out)["micro"]
    assert m["channels"] == 4 and m["kernel_efficiency"] > 0
    # the thread-CPU-time speedup is torch's CPU time over the layer's, and the profiler's
    # clock is the wall clock again afterwards
    assert m["speedup_cpu"] == pytest.approx(m["dense_cpu_ms"] / m["event_cpu_ms"])
    assert m["event_cpu_ms"] > 0 and len(m["speedup_cpu_spread"]) == 2
    assert sd_profiling.time is time


@pytest.mark.slow
def test_benchmark_micro_sweep_writes_plot(tmp_path):
    png = tmp_path / "sweep.png"
    r = _run("--micro", "--frames", "3", "--micro-hw", "8", "8", "--micro-channels", "4",
             "--dtype", "float32", "--activity", "0.05,0.3", "--plot", str(png))
    assert [m["activity"] for m in r["micro"]] == [0.05, 0.3]
    for m in r["micro"]:  # the speedup and the op reduction agree with the reported times and rates
        assert abs(m["speedup"] - m["dense_ms"] / m["event_ms_per_frame"]) < 1e-9 * m["speedup"]
        assert m["op_reduction"] > 1
    assert r["micro"][0]["event_rate"] < r["micro"][1]["event_rate"]
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_benchmark_micro_fits_path_costs(benchmark, capsys):
    """Forced paths in two dtypes: every path gives the same counters (event rate, op reduction),
    and the fit has one positive cost per path, channel count and item size."""
    benchmark.main(["--json", "--repeats", "1", "--micro", "--frames", "3", "--micro-hw", "8", "8",
                    "--micro-channels", "4", "--dtype", "float32,float64", "--micro-pattern", "pixel",
                    "--activity", "0.3", "--conv-path", "scatter,dense,gemm", "--fit-costs"])
    r = json.loads(capsys.readouterr().out)
    assert [(m["dtype"], m["path"]) for m in r["micro"]] == [
        (d, p) for d in ("float32", "float64") for p in ("scatter", "dense", "gemm")]
    assert len({(m["event_rate"], m["op_reduction"]) for m in r["micro"]}) == 1  # same events
    assert all(m["conv_paths"][m["path"]] == 3 for m in r["micro"])  # every frame by that path
    costs = r["path_costs"]
    assert sorted(costs) == ["4", "8"] and all(list(v) == ["4"] for v in costs.values())
    assert all(len(c) == 3 and min(c) > 0 for v in costs.values() for c in v.values())


def test_benchmark_micro_kernel_1_fits_the_1x1_table(benchmark, capsys):
    """``--micro-kernel 1``: a 1x1 layer on every forced path, the same counters, each event
    reaching its own pixel's ``C_out`` outputs (op reduction = 1 / event rate), and a fit."""
    benchmark.main(["--json", "--repeats", "1", "--micro", "--frames", "3", "--micro-hw", "8", "8",
                    "--micro-channels", "4", "--dtype", "float32", "--micro-pattern", "pixel",
                    "--activity", "0.3", "--conv-path", "scatter,dense,gemm", "--fit-costs",
                    "--micro-kernel", "1"])
    r = json.loads(capsys.readouterr().out)
    assert [(m["kernel"], m["path"]) for m in r["micro"]] == [(1, p) for p in ("scatter", "dense", "gemm")]
    assert len({(m["event_rate"], m["op_reduction"]) for m in r["micro"]}) == 1  # same events
    assert all(m["op_reduction"] == pytest.approx(1 / m["event_rate"]) for m in r["micro"])
    assert list(r["path_costs"]) == ["4"] and min(r["path_costs"]["4"]["4"]) > 0


def test_benchmark_rejects_bad_activity(benchmark):
    with pytest.raises(SystemExit, match=r"--activity: every value must lie in \(0, 1\], got '0.05,2'"):
        benchmark.main(["--micro", "--activity", "0.05,2"])


@pytest.mark.slow
def test_benchmark_many_smoke():
    r = _run("--many", "2", "--workers", "1", "--frames", "4")["many"]
    assert r["streams"] == 2 and r["frames_per_stream"] == 4
    (w,) = r["workers"]
    assert w["workers"] == 1 and w["fps"] > 0 and w["cpu_fps"] >= w["fps"] * 0.5
    assert r["network_bytes"] > 1000 and 0 < r["summary_bytes"] < 4096


def test_micro_frames_change_by_pattern():
    """Each pattern changes the asked share of neurons, by whole pixels or a quarter of a pixel's
    channels where it says so."""
    import importlib.util  # by path: scripts/ on sys.path would shadow the tests' helpers

    spec = importlib.util.spec_from_file_location("bench_micro_module", SCRIPT.parent / "_micro.py")
    micro = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(micro)
    _micro_frames = micro._micro_frames

    c, h, w, a = 16, 12, 10, 0.1
    for pattern in ("neuron", "pixel", "channels"):
        x = _micro_frames((c, h, w), 4, a, 0, pattern)
        changed = x[1:] != x[:-1]  # (t, C, H, W)
        assert abs(changed.mean() - a) < 0.02, pattern
        per_px = changed.sum(1)[per := changed.any(1)]
        if pattern == "pixel":
            assert (per_px == c).all() and abs(per.mean() - a) < 0.02
        elif pattern == "channels":
            assert 0.15 < per_px.mean() / c < 0.35 and per.mean() <= 4 * a + 0.02
        else:  # random neurons touch most pixels
            assert per.mean() > 0.5


@pytest.mark.slow
def test_benchmark_zoo_smoke():
    r = _run("--zoo", "resnet_block,depthwise_separable", "--frames", "3", "--dtype",
             "float32,float64")
    assert [(z["network"], z["dtype"]) for z in r["zoo"]] == [
        ("resnet_block", "float32"), ("resnet_block", "float64"),
        ("depthwise_separable", "float32"), ("depthwise_separable", "float64")]
    for z in r["zoo"]:
        assert z["speedup"] > 0 and z["op_reduction"] > 0
        assert z["speedup_spread"][0] <= z["speedup_spread"][1]
        assert z["dense_dtype"] == "float32"  # torch's side: the user's float32 model by default


def test_dense_runner_in_float64_computes_what_float32_does(benchmark):
    """``--dense-dtype same``: the dense side in float64 gives torch's outputs up to float32's
    rounding, as the float32 side does."""
    import numpy as np
    import torch

    import sigmadelta as sd

    bench = benchmark
    model = torch.nn.Sequential(torch.nn.Conv2d(3, 4, 3, padding=1), torch.nn.ReLU(),
                                torch.nn.Conv2d(4, 2, 3, stride=2))
    net = sd.convert(model.eval(), (3, 10, 12))
    x = torch.rand(3, 10, 12)
    with torch.no_grad():
        y32 = bench.DenseRunner(net).run(x)
        y64 = bench.DenseRunner(net, np.float64).run(x.double())
        ref = model(x[None])
    assert y32.dtype == torch.float32 and y64.dtype == torch.float64
    np.testing.assert_allclose(y64.numpy(), ref.numpy(), rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(y32.numpy(), ref.numpy(), rtol=1e-5, atol=1e-6)


def test_benchmark_rejects_bad_zoo_and_dtype(benchmark):
    for args, flag in [(["--zoo", "alexnet"], "--zoo: unknown network in 'alexnet'"),
                       (["--dtype", "float32,float64"], "--dtype: float32 or float64"),
                       (["--micro", "--conv-path", "im2col"], "--conv-path: auto, scatter, dense or gemm")]:
        with pytest.raises(SystemExit, match=flag):
            benchmark.main(args)
