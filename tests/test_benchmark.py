"""Smoke run of scripts/benchmark.py: tiny synthetic inputs, JSON parses (no timing asserts)."""

import json
import subprocess
import sys
from pathlib import Path

SCRIPT = Path(__file__).resolve().parents[1] / "scripts" / "benchmark.py"


def _run(*args: str) -> dict:
    out = subprocess.run([sys.executable, str(SCRIPT), "--json", "--repeats", "1", *args],
                         capture_output=True, text=True, timeout=600, check=True)
    return json.loads(out.stdout)


def test_benchmark_network_smoke():
    r = _run("--frames", "4", "--input-shape", "1", "24", "32", "--streams", "1,2")
    net = r["network"]
    assert net["frames"] == 4 and len(net["layers"]) == 4
    assert net["op_reduction"] > 0 and net["speedup"] > 0
    assert [s["streams"] for s in r["streams"]] == [1, 2]


def test_benchmark_micro_smoke():
    r = _run("--micro", "--frames", "3", "--micro-hw", "8", "8", "--micro-channels", "4",
             "--dtype", "float32")
    (m,) = r["micro"]
    assert m["channels"] == 4 and m["kernel_efficiency"] > 0
