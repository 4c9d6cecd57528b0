"""Which cost table the conv path chooser uses (:mod:`sigmadelta.kernels.costtable`): the
built-in one of this CPU, the user's fitted file, the environment's override, the fallback;
bad files fail with the file and the problem named; a saved fit reads back as the same costs."""

import json
import sys
from pathlib import Path

import numpy as np
import pytest
from test_benchmark import benchmark  # noqa: F401  (the script, loaded in this process)

import sigmadelta.kernels as K
from sigmadelta.kernels import costtable as CT

REAL_HOST_CPU = CT.host_cpu
ROW = (0.5, 0.25, 0.125)  # (scatter, dense, gemm) ns per unit of work


@pytest.fixture(autouse=True)
def _host(monkeypatch, tmp_path):
    """A made-up host CPU, an empty per-user cache directory, no override; fresh tables."""
    monkeypatch.setattr(CT, "host_cpu", lambda: "testcpu")
    monkeypatch.setenv("SIGMADELTA_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.delenv(CT.COSTS_ENV, raising=False)
    CT.path_cost_table.cache_clear()
    yield
    CT.path_cost_table.cache_clear()


def _write(path, cpu="testcpu", kernels=None, **extra):
    doc = {"format": CT.COSTS_FORMAT, "version": 1, "cpu": cpu,
           "kernels": kernels if kernels is not None else {"3x3": {"4": {"16": list(ROW)}}}, **extra}
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(doc))
    return path


def test_unknown_cpu_takes_the_fallback():
    t = K.path_cost_table()
    assert t.cpu == "testcpu" and t.sources == {"3x3": {4: "fallback", 8: "fallback"},
                                                "1x1": {4: "fallback", 8: "fallback"}}
    s, d, g = K.PATH_COSTS[4][16]
    assert K.path_costs(16, 4, 10, 100, 1000) == pytest.approx((10 * s, 1000 * g, 100 * d))


def test_builtin_entry_of_the_host_cpu(monkeypatch):
    monkeypatch.setitem(CT.BUILTIN_COSTS, "testcpu", {"1x1": {8: {16: ROW, 64: (4.0, 2.0, 1.0)}}})
    t = K.path_cost_table()
    assert t.sources["1x1"] == {4: "fallback", 8: "built-in testcpu"}
    assert K.path_costs(16, 8, 10, 100, 1000, kernel_1x1=True) == pytest.approx((5.0, 125.0, 25.0))
    # halfway in log C between the rows (32 = sqrt(16 * 64)): the mean of each cost
    assert K.path_costs(32, 8, 1, 1, 1, kernel_1x1=True) == pytest.approx((2.25, 0.5625, 1.125))
    assert K.path_costs(16, 8, 1, 1, 1) == pytest.approx(
        (K.PATH_COSTS[8][16][0], K.PATH_COSTS[8][16][2], K.PATH_COSTS[8][16][1]))


def test_user_file_of_this_cpu_is_used_over_the_builtin(monkeypatch):
    monkeypatch.setitem(CT.BUILTIN_COSTS, "testcpu", {"3x3": {4: {16: (9.0, 9.0, 9.0)}}})
    path = _write(CT.user_costs_path())
    assert path.name == "path_costs.testcpu.json"
    t = K.path_cost_table()
    assert t.sources["3x3"][4] == f"{path} (fitted on testcpu)" and t.sources["3x3"][8] == "fallback"
    assert K.path_costs(16, 4, 2, 4, 8) == pytest.approx((1.0, 1.0, 1.0))
    monkeypatch.setenv(CT.COSTS_ENV, "builtin")  # the override skips the user's file
    assert K.path_costs(16, 4, 2, 4, 8) == pytest.approx((18.0, 72.0, 36.0))


def test_another_cpus_file_is_not_used():
    _write(CT.user_costs_path("othercpu"), cpu="othercpu")
    assert K.path_cost_table().sources["3x3"][4] == "fallback"


def test_file_named_for_this_cpu_but_fitted_on_another_fails():
    path = _write(CT.user_costs_path(), cpu="othercpu")
    with pytest.raises(CT.CostTableError, match=f"{path}: named for CPU 'testcpu' but fitted on 'othercpu'"):
        K.path_cost_table()


def test_env_override_is_used_whatever_its_cpu(monkeypatch, tmp_path):
    _write(CT.user_costs_path(), kernels={"3x3": {"4": {"16": [7, 7, 7]}}})
    path = _write(tmp_path / "mine.json", cpu="othercpu")
    monkeypatch.setenv(CT.COSTS_ENV, str(path))
    assert K.path_cost_table().sources["3x3"][4] == f"{path} (fitted on othercpu)"
    assert K.path_costs(16, 4, 2, 4, 8) == pytest.approx((1.0, 1.0, 1.0))


@pytest.mark.parametrize(("text", "problem"), [
    ("{not json", "not JSON"),
    (json.dumps({"format": "other", "version": 1}), "not a cost table"),
    (json.dumps({"format": CT.COSTS_FORMAT, "version": 2, "cpu": "c", "kernels": {}}), "unknown version 2"),
    (json.dumps({"format": CT.COSTS_FORMAT, "version": 1, "kernels": {"3x3": {}}}), '"cpu" must name'),
    (json.dumps({"format": CT.COSTS_FORMAT, "version": 1, "cpu": "c", "kernels": {"5x5": {}}}),
     '"kernels" must hold'),
    (json.dumps({"format": CT.COSTS_FORMAT, "version": 1, "cpu": "c", "kernels": {"3x3": {"2": {}}}}),
     r"kernels\[3x3\]: item size must be"),
    (json.dumps({"format": CT.COSTS_FORMAT, "version": 1, "cpu": "c",
                 "kernels": {"3x3": {"4": {"x": [1, 1, 1]}}}}), "C_in must be a positive integer"),
    (json.dumps({"format": CT.COSTS_FORMAT, "version": 1, "cpu": "c",
                 "kernels": {"1x1": {"8": {"16": [1, -1, 1]}}}}), r"\[1x1\]\[8\]\[16\]: expected three"),
    (json.dumps({"format": CT.COSTS_FORMAT, "version": 1, "cpu": "c",
                 "kernels": {"3x3": {"4": {"16": [1, 1]}}}}), "expected three positive numbers"),
    (json.dumps({"format": CT.COSTS_FORMAT, "version": 1, "cpu": "c",
                 "kernels": {"3x3": {"4": {"16": [1, "1", 1]}}}}), "expected three positive numbers"),
])
def test_bad_files_fail_naming_the_problem(monkeypatch, tmp_path, text, problem):
    path = tmp_path / "bad.json"
    path.write_text(text)
    monkeypatch.setenv(CT.COSTS_ENV, str(path))
    with pytest.raises(CT.CostTableError, match=f"cost table {path}: .*{problem}"):
        K.path_costs(16, 4, 1, 1, 1)


def test_missing_override_file_fails(monkeypatch, tmp_path):
    monkeypatch.setenv(CT.COSTS_ENV, str(tmp_path / "none.json"))
    with pytest.raises(CT.CostTableError, match="none.json: cannot read it"):
        K.path_cost_table()


def test_saved_fit_reads_back_as_the_same_costs():
    fit3 = {4: {16: (0.2, 0.05, 0.08), 64: (0.06, 0.02, 0.03)}, 8: {16: (0.3, 0.08, 0.12)}}
    path = CT.save_costs({"3x3": fit3}, notes={"load_average": [1.0]})
    assert path == CT.user_costs_path("testcpu")
    assert CT.load_costs(path) == ("testcpu", {"3x3": fit3})
    # the chooser uses it at once: per event fan * scatter, per pixel gemm MACs * gemm, per frame
    assert K.path_costs(64, 4, 288, 1e6, 2304) == pytest.approx((0.06 * 288, 0.03 * 2304, 0.02 * 1e6))
    CT.save_costs({"1x1": {4: {16: ROW}}})  # a later fit of the other kind keeps the first
    cpu, tables = CT.load_costs(path)
    assert tables == {"3x3": fit3, "1x1": {4: {16: ROW}}}
    assert K.path_costs(16, 4, 2, 4, 8, kernel_1x1=True) == pytest.approx((1.0, 1.0, 1.0))
    assert K.path_cost_table().sources["1x1"] == {4: f"{path} (fitted on testcpu)", 8: "fallback"}


def test_save_refuses_another_cpus_file(tmp_path):
    path = _write(tmp_path / "x.json", cpu="othercpu")
    with pytest.raises(CT.CostTableError, match="fitted on 'othercpu', not 'testcpu'"):
        CT.save_costs({"3x3": {4: {16: ROW}}}, path=path)
    assert CT.load_costs(path)[0] == "othercpu"  # untouched


def test_host_cpu_is_llvms_name():
    import llvmlite.binding as llvm

    assert REAL_HOST_CPU() == llvm.get_host_cpu_name() != ""


def test_paths_module_keeps_the_fallback_tables():
    assert K.PATH_COSTS is CT.PATH_COSTS and K.PATH_COSTS_1X1 is CT.PATH_COSTS_1X1
    assert all(min(r) > 0 and np.isfinite(r).all() for t in CT.BUILTIN_COSTS.values()
               for by_size in t.values() for rows in by_size.values() for r in rows.values())


MICRO = ["--json", "--repeats", "1", "--frames", "3", "--micro-hw", "8", "8", "--micro-pattern", "pixel",
         "--activity", "0.3", "--conv-path", "scatter,dense,gemm"]


def test_benchmark_saves_its_fit_as_this_cpus_table(benchmark, capsys):  # noqa: F811
    """``--micro --fit-costs --save-costs``: the fit printed is the one saved and then used."""
    benchmark.main([*MICRO, "--micro", "--micro-channels", "4,16", "--dtype", "float32", "--fit-costs",
                    "--save-costs"])
    r = json.loads(capsys.readouterr().out)
    path = CT.user_costs_path("testcpu")
    assert r["saved_costs"] == str(path)
    fit = {int(s): {int(c): tuple(v) for c, v in rows.items()} for s, rows in r["path_costs"].items()}
    assert CT.load_costs(path) == ("testcpu", {"3x3": fit})
    assert K.path_cost_table().sources["3x3"][4] == f"{path} (fitted on testcpu)"
    s, d, g = fit[4][16]
    assert K.path_costs(16, 4, 3, 5, 7) == pytest.approx((3 * s, 7 * g, 5 * d))


def test_calibrate_fits_every_table(benchmark, capsys, monkeypatch):  # noqa: F811
    """``--calibrate``: 3x3 and 1x1, float32 and float64, in one command (tiny points here)."""
    monkeypatch.setattr(sys.modules["_costs"], "CALIBRATION", {
        "activity": "0.3", "micro_pattern": "pixel", "conv_path": "scatter,dense,gemm", "frames": 3,
        "repeats": 1, "micro_channels": "4", "micro_hw": (8, 8)})
    monkeypatch.setattr(sys.modules["_costs"], "CALIBRATION_1X1", "4,8:4:6")
    benchmark.main(["--json", "--calibrate", "--save-costs"])
    r = json.loads(capsys.readouterr().out)
    assert r["cpu"] == "testcpu" and sorted(r["path_costs"]) == ["1x1", "3x3"]
    _, tables = CT.load_costs(r["saved_costs"])
    assert {k: sorted(v) for k, v in tables.items()} == {"3x3": [4, 8], "1x1": [4, 8]}
    assert sorted(tables["3x3"][4]) == [4] and sorted(tables["1x1"][4]) == [4, 8]  # the projection's row


def test_fit_prices_the_scatter_per_synop_and_per_pixel(monkeypatch):
    """``fit_costs``: the scatter's time as ``a * synops + b * pixels with events`` (exact here:
    a = 0.1 ns, b = 100 ns), priced at half of ``C_in`` events per pixel; dense and GEMM: the
    median time per unit of work."""
    monkeypatch.syspath_prepend(str(Path(__file__).resolve().parents[1] / "scripts"))
    from _micro import PIXEL_SHARE, fit_costs

    macs = 1e8  # the layer's dense multiply-adds per frame: dense_gmacs_per_s * dense_ms * 1e6

    def row(path, ns, synops=1.0, pixels=0.0):
        return {"channels": 16, "kernel": 3, "dtype": "float32", "path": path, "event_cpu_ms": ns / 1e6,
                "dense_gmacs_per_s": 50.0, "dense_ms": macs / 50e6, "op_reduction": macs / synops,
                "changed_pixels": pixels}

    scatter = [row("scatter", 0.1 * s + 100 * p, s, p) for s, p in ((1e6, 2000), (2e6, 2500), (3e6, 4000))]
    rows = [*scatter, row("dense", 2e6), row("dense", 3e6), row("dense", 2.5e6),
            row("gemm", 1e5, pixels=1000)]
    (s, d, g), = fit_costs(rows)[4].values()
    assert s == pytest.approx(0.1 + 100 / (9 * 16 * PIXEL_SHARE * 16), abs=1e-4)  # 0.1868
    assert d == pytest.approx(0.025) and g == pytest.approx(1e5 / (1000 * 16 * 9 * 16), abs=1e-4)
    # fewer than three scatter rows: the median of time per synop
    assert fit_costs([*scatter[:2], *rows[3:]])[4][16][0] == pytest.approx(
        np.median([(0.1 * 1e6 + 2e5) / 1e6, (0.2e6 + 2.5e5) / 2e6]), abs=1e-4)


def test_fit_prices_the_gemm_on_whole_pixel_rows(monkeypatch):
    """``fit_costs``: gather-GEMM-scatter's price is the median over the whole-pixel rows
    (``pattern`` ``"pixel"``) where there are any, else over every row."""
    monkeypatch.syspath_prepend(str(Path(__file__).resolve().parents[1] / "scripts"))
    from _micro import fit_costs

    macs = 1e8

    def row(path, ns, pattern, pixels=1000.0, synops=1e6):
        return {"channels": 16, "kernel": 3, "dtype": "float32", "path": path, "event_cpu_ms": ns / 1e6,
                "dense_gmacs_per_s": 50.0, "dense_ms": macs / 50e6, "op_reduction": macs / synops,
                "changed_pixels": pixels, "pattern": pattern}

    unit = 1000 * 16 * 9 * 16  # the GEMM's multiply-adds at 1000 pixels
    rows = [row("scatter", 2e5, "neuron"), row("dense", 2e6, "neuron"), row("gemm", 0.1 * unit, "neuron"),
            row("gemm", 0.1 * unit, "channels"), row("gemm", 0.3 * unit, "pixel"),
            row("gemm", 0.2 * unit, "pixel")]
    assert fit_costs(rows)[4][16][2] == pytest.approx(0.25)
    assert fit_costs(rows[:4])[4][16][2] == pytest.approx(0.1)


def test_fit_of_a_projection_counts_its_output_channels(monkeypatch):
    """``fit_costs`` on rows of a ``C_in -> C_out`` layer (``c_out``): the GEMM's work per pixel
    with events is ``C_in * k*k * C_out`` and the scatter's fan ``k*k * C_out``; keyed by ``C_in``."""
    monkeypatch.syspath_prepend(str(Path(__file__).resolve().parents[1] / "scripts"))
    from _micro import PIXEL_SHARE, fit_costs

    macs = 96 * 24 * 256.0

    def row(path, ns, synops=1.0, pixels=0.0):
        return {"channels": 96, "c_out": 24, "kernel": 1, "dtype": "float32", "path": path,
                "event_cpu_ms": ns / 1e6, "dense_gmacs_per_s": 50.0, "dense_ms": macs / 50e6,
                "op_reduction": macs / synops, "changed_pixels": pixels}

    scatter = [row("scatter", 0.5 * s + 200 * p, s, p) for s, p in ((1e4, 50), (2e4, 60), (3e4, 100))]
    (c, (s, d, g)), = fit_costs([*scatter, row("dense", 1e5), row("gemm", 3e4, pixels=100)])[4].items()
    assert c == 96
    assert s == pytest.approx(0.5 + 200 / (24 * PIXEL_SHARE * 96), abs=1e-4)
    assert d == pytest.approx(1e5 / macs, abs=1e-4) and g == pytest.approx(3e4 / (100 * 96 * 24), abs=1e-4)


def test_micro_runs_a_projection_at_its_own_map_size(benchmark, capsys):  # noqa: F811
    """``--micro-channels C_in:C_out:HxW``: a 1x1 ``C_in -> C_out`` layer on its own map beside
    a ``C``-channel one at ``--micro-hw``; each event reaches its pixel's ``C_out`` outputs."""
    benchmark.main([*MICRO, "--micro", "--micro-channels", "4,8:4:6x5", "--dtype", "float32",
                    "--micro-kernel", "1", "--fit-costs"])
    r = json.loads(capsys.readouterr().out)
    shapes = [(m["channels"], m["c_out"], m["hw"]) for m in r["micro"]]
    assert shapes == [(4, 4, [8, 8])] * 3 + [(8, 4, [6, 5])] * 3
    assert all(m["op_reduction"] == pytest.approx(1 / m["event_rate"]) for m in r["micro"])
    assert sorted(r["path_costs"]["4"]) == ["4", "8"]


@pytest.mark.parametrize("bad", ["8:", "8:4:6x", "8:4:0", "a", "8:4:6:2"])
def test_micro_rejects_a_bad_channel_spec(benchmark, bad):  # noqa: F811
    with pytest.raises(SystemExit, match="--micro-channels: C, C_in:C_out or C_in:C_out:H"):
        benchmark.main(["--micro", "--micro-channels", f"4,{bad}"])


@pytest.mark.parametrize("c", [16, 32])
def test_dense_price_of_fixed_shape_float32(c):
    """A layer whose direct conv runs with the shape fixed (``fixed_channels``: float32 3x3,
    ``C -> C`` of 16 or 32, stride 1 along x) prices its dense frame at
    ``FIXED_DENSE_SHARE[C]`` of the table's ``C_in = C`` row; float64, other ``C_out``,
    stride 2 along x, too narrow rows and 1x1s at the row itself."""
    from sigmadelta.kernels import fixed_channels, make_geom, paths

    macs = 1e6

    def price(itemsize, c_out=c, stride=(1, 1), hw=(64, 64), k=3):
        geom = make_geom(hw, tuple((n + 2 * (k // 2) - k) // s + 1 for n, s in zip(hw, stride, strict=True)),
                         stride, (k // 2, k // 2), (k, k), c_out)
        return paths.path_costs(c, itemsize, 9.0, macs, 100.0, k == 1, c_out,
                                fixed_channels(geom, c, itemsize))[2]

    def row(itemsize, kind="3x3"):
        return paths.by_channels(paths.path_cost_table().tables[kind][itemsize], c)[1] * macs

    assert price(4) == pytest.approx(paths.FIXED_DENSE_SHARE[c] * row(4))
    assert price(4, stride=(2, 1)) == pytest.approx(paths.FIXED_DENSE_SHARE[c] * row(4))
    assert price(8) == pytest.approx(row(8))
    assert price(4, c_out=2 * c) == pytest.approx(row(4))
    assert price(4, stride=(1, 2)) == pytest.approx(row(4))
    assert price(4, hw=(8, 4)) == pytest.approx(row(4))
    assert price(4, k=1) == pytest.approx(row(4, "1x1"))
    assert 0 < paths.FIXED_DENSE_SHARE[c] < 1
