"""Reports of a compression run: the paper's reference values, our tables and files.

Used by ``scripts/compress.py`` (Bayesian compression of the digit LeNets, then
sigma-delta simulation of the compressed networks): :func:`tables` formats its rows
as Markdown against Louizos, Ullrich & Welling (NIPS 2017), :func:`write_results`
writes ``results.json``, ``results.csv`` and ``tables.md``.
"""

from __future__ import annotations

import csv
import json
from pathlib import Path
from typing import Any

from torch import nn

__all__ = ["MODELS", "PAPER", "paper_arch", "weight_counts", "tables", "write_results"]

#: model key -> (pretrained digits checkpoint, display name)
MODELS = {"lenet300": ("digits_lenet_300_100", "LeNet-300-100"),
          "lenet5": ("digits_lenet5_caffe", "LeNet-5-Caffe")}

# Reference values on MNIST.  LeNet-5-Caffe compression rates are those of the public
# tutorial's README (KarenUllrich/Tutorial_BayesianCompressionForDL); all other values are
# Table 1 of Louizos, Ullrich & Welling (NIPS 2017) *as best we recall it* (not re-checked
# against the PDF).  Architectures follow the paper: for conv layers the kept channels,
# for fully connected layers the kept input units.  LeNet-300-100 compression rates are
# derived here from the paper's architecture and bits with our formula (|W|/|W!=0| and
# 32|W| / sum_l |W_l!=0| b_l), because the paper counts storage its own way.
PAPER: dict[tuple[str, str], dict[str, Any]] = {
    ("lenet300", "none"): {"error": 1.6, "arch": "784-300-100", "frac": 100.0, "bits": "32"},
    ("lenet300", "gnj"): {"error": 1.8, "arch": "278-98-13", "frac": 10.8, "bits": "8-9-14",
                          "comp_arch": 9.3, "comp_prec": 36.8},
    ("lenet300", "ghs"): {"error": 1.8, "arch": "311-86-14", "frac": 10.6, "bits": "13-11-10",
                          "comp_arch": 9.5, "comp_prec": 23.5},
    ("lenet5", "none"): {"error": 0.9, "arch": "20-50-800-500", "frac": 100.0, "bits": "32"},
    ("lenet5", "gnj"): {"error": 1.0, "arch": "8-13-88-13", "frac": 0.9, "bits": "18-10-7-9",
                        "comp_arch": 108.0, "comp_prec": 361.0},
    ("lenet5", "ghs"): {"error": 1.0, "arch": "5-10-76-16", "frac": 0.6, "bits": "10-10-14-13",
                        "comp_arch": 156.0, "comp_prec": 419.0},
}


def paper_arch(model: nn.Module) -> str:
    """Architecture in the paper's notation: conv -> kept channels, linear -> used inputs."""
    parts = []
    for mod in model.modules():
        if isinstance(mod, nn.Conv2d):
            parts.append(int(mod.weight.detach().flatten(1).ne(0).any(1).sum()))
        elif isinstance(mod, nn.Linear):
            parts.append(int(mod.weight.detach().ne(0).any(0).sum()))
    return "-".join(str(p) for p in parts)


def weight_counts(model: nn.Module) -> tuple[int, int]:
    """(total, nonzero) weights of the Linear/Conv2d layers (biases excluded)."""
    ws = [m.weight.detach() for m in model.modules() if isinstance(m, nn.Linear | nn.Conv2d)]
    return sum(w.numel() for w in ws), sum(int(w.ne(0).sum()) for w in ws)


def _fmt_paper(model_key: str, prior: str) -> list[str]:
    p = PAPER.get((model_key, prior), {})
    ca, cp = p.get("comp_arch"), p.get("comp_prec")
    return [f"{p['error']:.1f}" if p else "", p.get("arch", ""),
            f"{p['frac']:.1f}" if p else "", p.get("bits", ""),
            f"{ca:g}x / {cp:g}x" if ca else ""]


def tables(rows: list[dict[str, Any]]) -> tuple[str, str]:
    """Markdown tables: (paper vs ours compression, sigma-delta compounding)."""
    data = rows[0]["data"] if rows else "digits"
    dname = "digits" if data == "digits" else "MNIST"
    head = ["Model", "Method", "Error % MNIST (paper)", f"Error % {dname} (ours)",
            "Pruned arch (paper)", "Pruned arch (ours)", "\\|w≠0\\|/\\|w\\| % (paper)",
            "\\|w≠0\\|/\\|w\\| % (ours)", "Bits (paper)", "Bits (ours)",
            "Compression arch / with precision (paper)", "Compression arch / with precision (ours)"]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for r in rows:
        meth = "uncompressed" if r["prior"] == "none" else f"BC-{r['prior'].upper()}"
        pe, pa, pf, pb, pc = _fmt_paper(r["model"], r["prior"])
        ours_c = "1x / 1x" if r["prior"] == "none" else \
            f"{r['comp_arch']:.1f}x / {r['comp_prec']:.1f}x"
        cells = [MODELS[r["model"]][1], meth, pe, f"{r['error']:.2f}", pa, r["arch"], pf,
                 f"{r['frac_nonzero']:.2f}", pb, r["bits"], pc, ours_c]
        lines.append("| " + " | ".join(cells) + " |")
    head2 = ["Model", "Method", "ANN acc %", "k (float)", "SD acc % (float)",
             "synops/frame (float)", "k (fixed)", "SD acc % (fixed)", "synops/frame (fixed)",
             "bit-exact", "synops reduction"]
    lines2 = ["| " + " | ".join(head2) + " |", "|" + "---|" * len(head2)]
    for r in rows:
        fixed = r["prior"] != "none"
        cells = [MODELS[r["model"]][1], "uncompressed" if not fixed else f"BC-{r['prior'].upper()}",
                 f"{100 * r['sd_float_ann_acc']:.2f}", f"{r['sd_float_k']:g}",
                 f"{100 * r['sd_float_acc']:.2f}", f"{r['sd_float_synops']:.0f}",
                 f"{r['sd_fixed_k']:g}" if fixed else "-",
                 f"{100 * r['sd_fixed_acc']:.2f}" if fixed else "-",
                 f"{r['sd_fixed_synops']:.0f}" if fixed else "-",
                 str(r["sd_fixed_bit_exact"]) if fixed else "-",
                 f"{r['synops_reduction']:.1f}x" if fixed else "1x"]
        lines2.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines), "\n".join(lines2)


def write_results(rows: list[dict[str, Any]], out: Path, meta: dict[str, Any]) -> None:
    """``results.json`` (rows + run metadata), ``results.csv`` and ``tables.md`` in ``out``."""
    out.mkdir(parents=True, exist_ok=True)
    clean = [{k: (v if not isinstance(v, dict) else {str(a): b for a, b in v.items()})
              for k, v in r.items()} for r in rows]
    (out / "results.json").write_text(json.dumps({"meta": meta, "rows": clean}, indent=2,
                                                 default=float))
    keys = sorted({k for r in clean for k in r if not isinstance(r[k], dict)})
    with open(out / "results.csv", "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=keys, extrasaction="ignore")
        w.writeheader()
        w.writerows(clean)
    t1, t2 = tables(rows)
    (out / "tables.md").write_text(f"Command: `{meta['command']}`\n\n{t1}\n\n{t2}\n")
