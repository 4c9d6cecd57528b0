"""The chooser's cost tables, by machine: which table of ns per unit of work
(:func:`sigmadelta.kernels.path_costs`) this process uses, and the per-user fitted tables.

A table fitted on one CPU sends layers to slower paths on another (the Zen 4 float32 fit
against the Intel Xeon one moved the zoo nets by 0.94-1.13x), so the tables are keyed by
the CPU family LLVM names for the host (``llvmlite.binding.get_host_cpu_name()``, what
Numba compiles for: ``"znver4"``, ``"icelake-server"``, ``"rocketlake"``, ...).
:func:`path_cost_table` picks, first match wins:

1. ``SIGMADELTA_PATH_COSTS=FILE.json``: that file, whatever CPU it was fitted on
   (``SIGMADELTA_PATH_COSTS=builtin``: skip the user's file, take 3.);
2. the user's fitted table for this CPU, ``path_costs.<cpu>.json`` in the per-user cache
   directory (:func:`user_costs_path`: ``$SIGMADELTA_CACHE_DIR``, else
   ``$XDG_CACHE_HOME/sigmadelta``, else ``~/.cache/sigmadelta``), written by
   ``python scripts/benchmark.py --calibrate --save-costs``;
3. the built-in table of this CPU (:data:`BUILTIN_COSTS`);
4. the fallback :data:`PATH_COSTS` / :data:`PATH_COSTS_1X1`.

A file may hold part of a table (one kernel kind, one dtype): the rest comes from 3., then 4.
A bad file (not JSON, a wrong format, a row that is not three positive numbers, a file named
for one CPU that says another) raises :class:`CostTableError` naming the file and the
problem; it is never skipped in silence. :func:`path_cost_table` returns the table in use
with where each part came from.
"""

from __future__ import annotations

import json
import math
import os
import re
from collections import namedtuple
from functools import lru_cache
from pathlib import Path

__all__ = ["PATH_COSTS", "PATH_COSTS_1X1", "BUILTIN_COSTS", "COSTS_ENV", "COSTS_FORMAT", "KERNELS",
           "CostTable", "CostTableError", "host_cpu", "user_costs_path", "path_cost_table",
           "load_costs", "save_costs", "costs_json"]

#: The chooser's cost model: nanoseconds per unit of work of each path, by state dtype
#: (item size in bytes) and input channels ``C_in`` (between the listed ones: log-linear,
#: outside them: the nearest). Per entry ``(scatter, dense, gemm)``: scatter per synop,
#: dense recompute per dense multiply-add of the layer (encoding every input included),
#: gather-GEMM-scatter per multiply-add of its GEMM (``C_in * kh*kw * C_out`` per pixel with
#: events; its gather and scatter of the rows included). Only the ratios within a row matter.
#: Float32 (item size 4): fitted on a 2-vCPU AMD EPYC VM (Zen 4, AVX-512) on the busy points,
#: where the paths compete, by ``scripts/benchmark.py --micro --dtype float32 --activity
#: 0.2,0.35,0.5 --micro-pattern neuron,pixel,channels --conv-path scatter,dense,gemm --frames 8
#: --repeats 2 --fit-costs`` (forced paths, 3x3 convs C_in = C_out at 64x64; per path the
#: median over activities and patterns of the layer's thread CPU time / its units of work;
#: load average 2-2.4). The row before (a 2-vCPU Intel Xeon VM, activities 0.01-0.5: ``{16:
#: (0.2045, 0.0583, 0.0822), 32: (0.1056, 0.0271, 0.0394), 64: (0.0808, 0.0189, 0.0242)}``)
#: took the scatter at 0.106 ns per synop at C=32, a median raised by the fixed costs per frame
#: of the points at 1-5%; busy, on a quiet machine, it runs at 0.065-0.085 (0.072-0.077 in the
#: ResNet block), so that row sent the block's 32-channel convs to the GEMM paths at 1.3-1.4x
#: the scatter's time. On the zoo nets (30 frames of bikes, thread CPU time, alternating with
#: the row before in one process, 4 passes, load 2.8-3.5) this row ran the ResNet block 1.13x
#: (passes 0.99-1.20x) and VGG 1.08x (1.05-1.10x) as fast, MobileNetV2 and depthwise-separable
#: within 1%, ResNet-18 0.94-0.96x (its 2x2-8x8 maps, which the 64x64 fit does not see, move to
#: the scatter; it stays near 3x dense torch).
#: Float64 (item size 8) keeps the earlier fit (a 2-vCPU AMD EPYC, AVX2, load 9-10): the Intel
#: Xeon VM's float64 fit ``{16: (0.2994, 0.0803, 0.1219), 32: (0.191, 0.0516, 0.0625), 64:
#: (0.1489, 0.0416, 0.0401)}`` picked the same paths on the micro sweep but slower ones on the
#: zoo (gather-GEMM-scatter for 1x1 convs, whose dense path needs no im2col and costs less per
#: multiply-add than the 3x3 convs fitted): MobileNetV2 0.91-0.94x, the ResNet block and
#: depthwise-separable 0.93-1.00x. With :data:`PATH_COSTS_1X1` for the 1x1s it is still mixed
#: (thread CPU time against this row, one process, load 4-5: VGG 0.89x the time, the ResNet
#: block 1.10x, the other nets within 4%), so float64 keeps this row.
PATH_COSTS = {
    4: {16: (0.1602, 0.0517, 0.0735), 32: (0.0828, 0.0313, 0.042), 64: (0.0642, 0.0256, 0.0296)},
    8: {16: (2.163, 0.717, 0.8859), 32: (1.4354, 0.5674, 0.5712), 64: (1.2606, 0.4653, 0.5201)},
}

#: :data:`PATH_COSTS` of float 1x1, stride-1, unpadded convs (same units of work; strided 1x1s,
#: whose dense path is im2col's, keep :data:`PATH_COSTS`): the scatter's work per event is
#: ``C_out`` synops only, the dense path's a plain GEMM (:mod:`.conv1x1`), so the 3x3 fit
#: misjudged both (on MobileNetV2 and the depthwise-separable net 16-32-channel 1x1s scattered
#: on up to half the frames at 3-4x the dense path's time). Fitted as ``PATH_COSTS`` but on a
#: 1x1 layer (``--micro-kernel 1``, paths ``scatter,dense,gemm``, same command otherwise;
#: 2-vCPU Intel Xeon VM with AVX-512, load average 2-4).
PATH_COSTS_1X1 = {
    4: {16: (1.0427, 0.1457, 0.4126), 32: (0.4282, 0.0767, 0.1586), 64: (0.2294, 0.0459, 0.0712)},
    8: {16: (1.3184, 0.2258, 0.4972), 32: (0.6352, 0.1254, 0.2319), 64: (0.3828, 0.0801, 0.1058)},
}

#: Built-in tables by CPU id (:func:`host_cpu`): per kernel kind (``"3x3"``: :data:`PATH_COSTS`'s
#: convs, ``"1x1"``: :data:`PATH_COSTS_1X1`'s) the rows by item size and ``C_in``; a CPU or part
#: not listed takes the fallback tables. ``"znver4"``: the Zen 4 float32 fit of :data:`PATH_COSTS`.
#: ``"rocketlake"``: a 2-vCPU Intel Xeon VM (AVX-512, family 6 model 167), every part fitted at
#: the busy points as :data:`PATH_COSTS` (``python scripts/benchmark.py --calibrate``: the
#: ``--micro`` sweep of :data:`PATH_COSTS`' command for 3x3 and, ``--micro-kernel 1``, 1x1 convs
#: in float32 and float64), its scatter priced per synop and per pixel with events (the fit of
#: ``scripts/_micro.py``, unlike the fallback's one median), with the dense path's direct conv
#: (:mod:`.directconv`); the mean of two fits, load average 1.0 (entries within 10% of each
#: other). Against the fit before the direct conv, alternating in one process
#: (``scripts/cost_ab.py --old``/``--new``, 4 passes, thread CPU time, load 1.0): the zoo nets
#: 0.94-1.20x as fast (ResNet block float32 1.17x, ResNet-18 1.15x / 1.20x, VGG float64 0.94x),
#: the demo net 1.17x in float32 (its layer ``3`` recomputes densely on 51 of 60 frames).
#: Its ``"1x1"`` part was refitted with rows at ``C_in`` 96 and 192, fitted on the 1x1
#: projections of a MobileNetV2-style net at their own shapes (96 -> 24 at 16x16, 192 -> 32 at
#: 8x8: ``CALIBRATION_1X1`` of ``scripts/_costs.py``; the rows to 64 at ``C_in = C_out``, 64x64),
#: the mean of two fits at load 2-3. The rows to 64 alone sent that net's 96 -> 24 projection
#: (64 row: 0.18 ns a synop, 0.067 a multiply-add) to the scatter on 16 of 30 frames, where its
#: dense path is 1.5x faster; with the 96 row it recomputes on every frame. Against the table
#: before (``scripts/cost_ab.py``, 6 alternating passes, thread CPU time, best pass / pass by
#: pass, load 4): MobileNetV2 float32 1.02x / 1.05x as fast, float64 1.08x / 1.12x (its 1x1s
#: move to the dense path), depthwise-separable float32 1.00x / 1.05x, float64 1.10x / 1.09x.
#: Both parts refitted after the direct conv's per-channel bias and the scatter's per-pixel price
#: (:func:`.paths.scatter_pixel_cost`): the mean of two ``--calibrate`` fits at load 1.0 (the dense
#: path now 1.2-2x cheaper than the scatter and gather-GEMM-scatter against the fit before).
#: Against the table before (``scripts/cost_ab.py --old``, 4 alternating passes, thread CPU time,
#: load 1.0): ResNet block float32 1.05x as fast, VGG 1.08x, MobileNetV2 0.99x, the demo net on
#: carphone 0.98x best pass / 1.02x pass by pass (its layer ``3`` dense on all 60 frames).
#: Its ``"3x3"`` float32 gather-GEMM-scatter column was then refitted on the whole-pixel rows
#: alone (``scripts/_micro.py`` ``fit_costs``: gather-GEMM-scatter competes only where events
#: come by whole pixels, and there it costs more per multiply-add than where every pixel has
#: events), as the ratio to the dense path of two fits at load 2-3, g / d 3.48, 3.01, 2.23 at
#: C=16/32/64 (the column before: 2.77, 2.53, 1.74), times the dense column kept: the column
#: before took gather-GEMM-scatter at 47.5% whole pixels (C=32-64) where the dense path ran
#: 1.1-1.5x as fast. Float64's fit moved the same way (3.04, 2.49, 1.47 against 2.04, 1.59,
#: 1.16) but is not taken: VGG's ``features.1.0`` then left gather-GEMM-scatter on 9 of 30
#: frames for the scatter and the dense path, 0.94x as fast (``scripts/cost_ab.py --old``, 4
#: alternating passes, thread CPU time, passes 0.91-0.98x, load 3.2).
BUILTIN_COSTS = {
    "znver4": {"3x3": {4: PATH_COSTS[4]}},
    "rocketlake": {
        "3x3": {
            4: {16: (0.3192, 0.0628, 0.2187), 32: (0.1338, 0.0316, 0.0951), 64: (0.1132, 0.029, 0.0647)},
            8: {16: (0.3559, 0.107, 0.2188), 32: (0.2664, 0.0708, 0.1126), 64: (0.2316, 0.0634, 0.0736)},
        },
        "1x1": {
            4: {16: (1.3483, 0.25, 0.645), 32: (0.5903, 0.1203, 0.2742), 64: (0.2671, 0.0704, 0.1281),
                96: (0.6001, 0.0829, 0.2459), 192: (0.4136, 0.0696, 0.1676)},
            8: {16: (1.6931, 0.5257, 0.8285), 32: (0.7662, 0.2835, 0.3654), 64: (0.4385, 0.1862, 0.1924),
                96: (0.6557, 0.1775, 0.2502), 192: (0.499, 0.1343, 0.1946)},
        },
    },
}

#: the environment variable naming a cost table file (or ``builtin``: no user file)
COSTS_ENV = "SIGMADELTA_PATH_COSTS"
#: the ``format`` field of a cost table file
COSTS_FORMAT = "sigmadelta path costs"
#: the kernel kinds of a table and their fallback tables
KERNELS = {"3x3": PATH_COSTS, "1x1": PATH_COSTS_1X1}

#: The table in use: ``tables[kind][itemsize][C_in] = (scatter, dense, gemm)`` ns per unit of
#: work (``kind``: ``"3x3"`` or ``"1x1"``), the host's CPU id, and ``sources[kind][itemsize]``,
#: where that part came from (a file path, ``"built-in <cpu>"`` or ``"fallback"``).
CostTable = namedtuple("CostTable", ["tables", "cpu", "sources"])


class CostTableError(ValueError):
    """A cost table file that cannot be used (the message names the file and the problem)."""


@lru_cache(maxsize=1)
def host_cpu() -> str:
    """The host's CPU id as LLVM (and so Numba) names it, e.g. ``"znver4"``, ``"rocketlake"``."""
    import llvmlite.binding as llvm

    return str(llvm.get_host_cpu_name())


def user_costs_path(cpu: str | None = None) -> Path:
    """Where the user's fitted table for ``cpu`` (default: this host's) lives:
    ``path_costs.<cpu>.json`` in ``$SIGMADELTA_CACHE_DIR``, else ``$XDG_CACHE_HOME/sigmadelta``,
    else ``~/.cache/sigmadelta``."""
    root = os.environ.get("SIGMADELTA_CACHE_DIR")
    if not root:
        root = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "sigmadelta"
    return Path(root) / f"path_costs.{cpu or host_cpu()}.json"


def _rows(obj, where: str) -> dict:
    """``{itemsize: {C_in: (s, d, g)}}`` from a file's ``{"4": {"16": [s, d, g]}}``, checked."""
    if not isinstance(obj, dict) or not obj:
        raise CostTableError(f"{where}: expected an object of item sizes (\"4\", \"8\"), got {obj!r}")
    out: dict = {}
    for size, by_c in obj.items():
        if size not in ("4", "8"):
            raise CostTableError(f"{where}: item size must be \"4\" or \"8\", got {size!r}")
        if not isinstance(by_c, dict) or not by_c:
            raise CostTableError(f"{where}[{size}]: expected an object of rows by C_in, got {by_c!r}")
        for c, row in by_c.items():
            if not (c.isdigit() and int(c) > 0):
                raise CostTableError(f"{where}[{size}]: C_in must be a positive integer, got {c!r}")
            ok = isinstance(row, list) and len(row) == 3 and all(
                isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v) and v > 0
                for v in row)
            if not ok:
                raise CostTableError(f"{where}[{size}][{c}]: expected three positive numbers "
                                     f"(ns per unit of work: scatter, dense, gemm), got {row!r}")
            out.setdefault(int(size), {})[int(c)] = tuple(float(v) for v in row)
    return {s: dict(sorted(r.items())) for s, r in out.items()}


def load_costs(path) -> tuple[str, dict]:
    """The CPU id and ``{kind: {itemsize: {C_in: (s, d, g)}}}`` of a cost table file,
    checked (:class:`CostTableError` names the file and what is wrong)."""
    path = Path(path)
    try:
        doc = json.loads(path.read_text())
    except OSError as e:
        raise CostTableError(f"cost table {path}: cannot read it ({e.strerror or e})") from None
    except ValueError as e:
        raise CostTableError(f"cost table {path}: not JSON ({e})") from None
    if not isinstance(doc, dict) or doc.get("format") != COSTS_FORMAT:
        raise CostTableError(f"cost table {path}: not a cost table (\"format\" must be {COSTS_FORMAT!r})")
    if doc.get("version") != 1:
        raise CostTableError(f"cost table {path}: unknown version {doc.get('version')!r} (expected 1)")
    cpu, kernels = doc.get("cpu"), doc.get("kernels")
    if not isinstance(cpu, str) or not cpu:
        raise CostTableError(f"cost table {path}: \"cpu\" must name the CPU it was fitted on")
    if not isinstance(kernels, dict) or not kernels or set(kernels) - set(KERNELS):
        raise CostTableError(f"cost table {path}: \"kernels\" must hold \"3x3\" and/or \"1x1\", "
                             f"got {sorted(kernels) if isinstance(kernels, dict) else kernels!r}")
    return cpu, {k: _rows(v, f"cost table {path}: kernels[{k}]") for k, v in kernels.items()}


def costs_json(cpu: str, tables: dict, notes: dict | None = None) -> str:
    """The JSON text of a cost table file (``tables``: ``{kind: {itemsize: {C_in: (s, d, g)}}}``;
    ``notes``: free-form provenance, e.g. the command and load average)."""
    kernels = {k: {str(s): {str(c): list(v) for c, v in sorted(r.items())} for s, r in sorted(t.items())}
               for k, t in tables.items()}
    text = json.dumps({"format": COSTS_FORMAT, "version": 1, "cpu": cpu, "kernels": kernels,
                       "notes": notes or {}}, indent=1)
    return re.sub(r"\[\s+([^\[\]{}]*?)\s+\]", lambda m: "[" + " ".join(m[1].split()) + "]", text) + "\n"


def save_costs(tables: dict, cpu: str | None = None, path=None, notes: dict | None = None) -> Path:
    """Write fitted ``tables`` (``{kind: {itemsize: {C_in: (s, d, g)}}}``) as the user's table
    for ``cpu`` (default: this host; ``path`` default: :func:`user_costs_path`), over the parts
    of an existing file there (its other kinds and item sizes stay). Returns the path."""
    cpu = cpu or host_cpu()
    path = Path(path) if path is not None else user_costs_path(cpu)
    merged: dict = {}
    if path.exists():
        old_cpu, merged = load_costs(path)
        if old_cpu != cpu:
            raise CostTableError(f"cost table {path}: fitted on {old_cpu!r}, not {cpu!r}; not merged")
    for kind, by_size in tables.items():
        if kind not in KERNELS:
            raise CostTableError(f"save_costs: kernel kind must be one of {sorted(KERNELS)}, got {kind!r}")
        merged.setdefault(kind, {}).update(by_size)
    text = costs_json(cpu, merged, notes)
    for kind, rows in json.loads(text)["kernels"].items():  # what is written reads back
        _rows(rows, f"save_costs: kernels[{kind}]")
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    tmp.write_text(text)
    tmp.replace(path)
    path_cost_table.cache_clear()
    return path


@lru_cache(maxsize=8)
def _cached(override: str, cpu: str, user: str, stamp: int) -> CostTable:
    """The table of :func:`path_cost_table` for one environment (``stamp``: the user file's
    modification time, so that a new fit is read again)."""
    builtin = BUILTIN_COSTS.get(cpu, {})
    tables = {k: {s: rows for s, rows in v.items()} for k, v in KERNELS.items()}
    sources = {k: dict.fromkeys(v, "fallback") for k, v in KERNELS.items()}
    for kind, by_size in builtin.items():
        tables[kind].update(by_size)
        sources[kind].update(dict.fromkeys(by_size, f"built-in {cpu}"))
    file = override if override not in ("", "builtin") else user if stamp >= 0 else ""
    if file:
        file_cpu, own = load_costs(file)
        if not override and file_cpu != cpu:
            raise CostTableError(f"cost table {file}: named for CPU {cpu!r} but fitted on {file_cpu!r}")
        for kind, by_size in own.items():
            tables[kind].update(by_size)
            sources[kind].update(dict.fromkeys(by_size, f"{file} (fitted on {file_cpu})"))
    return CostTable(tables, cpu, sources)


def path_cost_table() -> CostTable:
    """The chooser's cost table in use (:class:`CostTable`: tables, CPU id, the source of each
    part), picked as the module docstring says; read once per environment and user file."""
    override, cpu = os.environ.get(COSTS_ENV, ""), host_cpu()
    user = user_costs_path(cpu)
    try:
        stamp = user.stat().st_mtime_ns if not override else -1
    except OSError:
        stamp = -1
    return _cached(override, cpu, str(user), stamp)


path_cost_table.cache_clear = _cached.cache_clear
