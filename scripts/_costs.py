"""The micro benchmark's command line (scripts/benchmark.py ``--micro``), the fit of the conv
path chooser's cost tables (``--fit-costs``), saving it as this machine's table
(``--save-costs``: :func:`sigmadelta.kernels.costtable.save_costs`) and the one-command refit
of every table (``--calibrate``).

``python scripts/benchmark.py --calibrate --save-costs`` runs the busy points where the paths
compete (activities 0.2, 0.35, 0.5; patterns neuron, pixel, channels; forced paths scatter,
dense, gemm; 8 frames, 2 repeats; C = 16, 32, 64 at 64x64, and for 1x1 convs also the
projections of :data:`CALIBRATION_1X1`), for 3x3 and 1x1 convs in float32 and float64, prints
the tables in the form of ``BUILTIN_COSTS`` and writes them to the per-user file that
:func:`sigmadelta.kernels.path_cost_table` then uses on this CPU.
"""

from __future__ import annotations

import itertools
import os
import sys
import time

import numpy as np
from _micro import PATTERNS, bench_micro, fit_costs, fit_pixel_costs, plot_micro, print_costs, print_micro

from sigmadelta.kernels import costtable

__all__ = ["micro_from_args", "calibrate_args", "CALIBRATION", "CALIBRATION_1X1", "print_builtin"]

#: ``--calibrate``: the busy points of the cost tables' fit (each overrides its flag)
CALIBRATION = {"activity": "0.2,0.35,0.5", "micro_pattern": "neuron,pixel,channels",
               "conv_path": "scatter,dense,gemm", "frames": 8, "repeats": 2, "micro_channels": "16,32,64",
               "micro_hw": (64, 64)}

#: ``--calibrate``: the 1x1 table's extra rows, ``C_in:C_out:H`` (an H x H map), the 1x1
#: projections of a MobileNetV2-style net at their own map sizes (96 -> 24 at 16x16, 192 -> 32
#: at 8x8). Fitted at ``C_in = C_out`` only up to 64, the table took the 64 row for them, whose
#: scatter is cheaper per synop (whole SIMD rows of 64 outputs, not 24) and dense path cheaper
#: per multiply-add (the encoding of every input spread over 64 outputs, not 24): it scattered
#: MobileNetV2's 96 -> 24 projection on 16 of 30 frames at about 1.5x its dense path's time.
CALIBRATION_1X1 = "16,32,64,96:24:16,192:32:8"


def _channels(text: str) -> list:
    """``--micro-channels``: a comma list of ``C`` (``C_in = C_out = C`` at ``--micro-hw``),
    ``C_in:C_out`` or ``C_in:C_out:H`` (an H x H map) or ``C_in:C_out:HxW``."""
    out = []
    for tok in text.split(","):
        parts = tok.split(":")
        try:
            vals = [int(v) for v in parts[:2]]
            hw = [tuple(int(v) for v in parts[2].split("x"))] if len(parts) == 3 else []
        except ValueError:
            vals, hw = [], []
        hw = [h * 2 if len(h) == 1 else h for h in hw]
        if len(parts) > 3 or not vals or min(vals) < 1 or any(len(h) != 2 or min(h) < 1 for h in hw):
            sys.exit(f"--micro-channels: C, C_in:C_out or C_in:C_out:H[xW] separated by commas, got {tok!r}")
        out.append(vals[0] if len(parts) == 1 else (*vals, *hw))
    return out


def _floats(text: str, flag: str) -> list[float]:
    """Parse a comma list of numbers in (0, 1]; a clear error names the flag otherwise."""
    try:
        vals = [float(v) for v in text.split(",")]
    except ValueError:
        raise SystemExit(f"{flag}: expected numbers separated by commas, got {text!r}") from None
    if not vals or any(not 0 < v <= 1 for v in vals):
        raise SystemExit(f"{flag}: every value must lie in (0, 1], got {text!r}")
    return vals


def _sweep(args, dtypes, paths, kernel: int) -> list[dict]:
    """The micro rows of every dtype, pattern and activity of ``args`` for one kernel size."""
    patterns = args.micro_pattern.split(",")
    if any(pt not in PATTERNS for pt in patterns):
        sys.exit(f"--micro-pattern: one or more of {', '.join(PATTERNS)}, got {args.micro_pattern!r}")
    rows = []
    for dt, pt, a in itertools.product(dtypes, patterns, _floats(args.activity, "--activity")):
        rows += bench_micro(_channels(args.micro_channels), tuple(args.micro_hw), a,
                            max(args.frames, 3), dt, args.repeats, paths, pt, kernel,
                            args.dense_dtype)
    return rows


def _notes(kinds, dtypes) -> dict:
    """Provenance saved beside a fitted table: when, what, the load average."""
    return {"fitted": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
            "command": "python scripts/benchmark.py " + " ".join(sys.argv[1:]),
            "kernels": list(kinds), "dtypes": [np.dtype(d).name for d in dtypes],
            "load_average": [round(v, 2) for v in os.getloadavg()]}


def micro_from_args(args, dtypes, paths) -> dict:
    """``--micro`` (with ``--fit-costs``, ``--save-costs``): the rows, the fitted table of
    ``--micro-kernel``'s kind, where it was saved."""
    out: dict = {"micro": _sweep(args, dtypes, paths, args.micro_kernel)}
    if args.plot:
        out["plot"] = plot_micro(out["micro"], args.plot)
    kind = "1x1" if args.micro_kernel == 1 else "3x3"
    if args.fit_costs or args.save_costs:
        out["path_costs"] = fit_costs(out["micro"])
        out["scatter_pixel_ns"] = fit_pixel_costs(out["micro"])
    if args.save_costs:
        out["saved_costs"] = str(costtable.save_costs({kind: out["path_costs"]},
                                                      notes=_notes([kind], dtypes)))
    if not args.json:
        print_micro(out["micro"])
        if "path_costs" in out:
            print_costs(out["path_costs"], "PATH_COSTS_1X1" if kind == "1x1" else "PATH_COSTS")
            print(f"scatter ns per pixel with events (SCATTER_PIXEL_NS): {out['scatter_pixel_ns']}")
        if "saved_costs" in out:
            print(f"saved as this CPU's ({costtable.host_cpu()}) table: {out['saved_costs']}")
    return out


def calibrate_args(args) -> dict:
    """``--calibrate``: fit every table (3x3 and 1x1, float32 and float64) at the busy points
    (:data:`CALIBRATION`), print it as this CPU's ``BUILTIN_COSTS`` entry; ``--save-costs``:
    save it as the user's table of this CPU."""
    for k, v in CALIBRATION.items():
        setattr(args, k, v)
    dtypes, paths = (np.float32, np.float64), tuple(CALIBRATION["conv_path"].split(","))
    rows = {"3x3": _sweep(args, dtypes, paths, 3)}
    args.micro_channels = CALIBRATION_1X1
    rows["1x1"] = _sweep(args, dtypes, paths, 1)
    tables = {kind: fit_costs(r) for kind, r in rows.items()}
    out = {"cpu": costtable.host_cpu(), "path_costs": tables, "load_average": list(os.getloadavg()),
           "scatter_pixel_ns": fit_pixel_costs(rows["3x3"]), "micro": rows}
    if args.save_costs:
        out["saved_costs"] = str(costtable.save_costs(tables, notes=_notes(tables, dtypes)))
    if not args.json:
        print_builtin(out["cpu"], tables)
        print(f"scatter ns per pixel with events, 3x3 (SCATTER_PIXEL_NS): {out['scatter_pixel_ns']}")
        print("load average " + ", ".join(f"{v:.1f}" for v in out["load_average"]))
        if "saved_costs" in out:
            print(f"saved as this CPU's table: {out['saved_costs']}")
    return out


def print_builtin(cpu: str, tables: dict) -> None:
    """A fitted ``{kind: {itemsize: {C: (s, d, g)}}}`` as an entry of ``BUILTIN_COSTS``."""
    print(f'    "{cpu}": {{')
    for kind, by_size in tables.items():
        print(f'        "{kind}": {{')
        for size, by_c in by_size.items():
            print(f"            {size}: {{" + ", ".join(f"{c}: {v}" for c, v in by_c.items()) + "},")
        print("        },")
    print("    },")
