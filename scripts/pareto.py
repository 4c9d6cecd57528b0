"""Error-vs-ops frontier of scale choices, measured with the real event simulation.

For a model and a stream, sweep

* ``optimised``: :func:`sigmadelta.scales.optimize_scales` for every lambda of ``--lams``
  (optimised on the training stream, e.g. "temporal-digits-train" for "temporal-digits");
* ``uniform``: one scale ``k`` for every layer (``--uniform``);
* ``percentile``: :func:`sigmadelta.scales.calibrate_percentile` with ``--levels``;

then convert and :func:`sigmadelta.simulate` every point on the evaluation stream and
measure synops per frame, the relative output error ``||y - y_ann|| / ||y_ann||``, the
top-1 agreement with the ANN and, with labels, accuracy and its drop vs the ANN (points).
Writes ``points.csv``, ``frontier.png``, ``operating_point.json`` (the cheapest point within
``--max-acc-drop`` / ``--max-rel-err``, with its per-layer scales) into ``--out``.

Examples::

    python scripts/pareto.py --model digits_sdqn_mlp --stream temporal-digits --out out/pareto_digits
    python scripts/pareto.py --model face_detector --stream carphone --max-rel-err 0.05 \\
        --out out/pareto_face
"""

from __future__ import annotations

import argparse
import csv
import json
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

import sigmadelta as sd
from sigmadelta.loaders import load_torch_model
from sigmadelta.scales import calibrate_percentile, optimize_scales, uniform_scales

__all__ = ["load_model", "load_stream", "evaluate", "sweep", "pick", "plot", "main"]

DIGITS_MLP = "digits_sdqn_mlp"


def _train_digits_mlp(seed: int = 0, epochs: int = 60) -> nn.Module:
    """Fallback when the checkpoint is missing: SDQN MLP 64-200-200-10 on the first
    1400 scikit-learn digits (``X / 16``), Adam 1e-3, batch 32, seeded."""
    from sigmadelta.models import sdqn_mlp
    from sklearn.datasets import load_digits

    torch.manual_seed(seed)
    d = load_digits()
    x = torch.as_tensor(d.data[:1400] / 16.0, dtype=torch.float32)
    y = torch.as_tensor(d.target[:1400], dtype=torch.int64)
    model = sdqn_mlp(64)
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    gen = torch.Generator().manual_seed(seed)
    for _ in range(epochs):
        perm = torch.randperm(len(x), generator=gen)
        for i in range(0, len(x), 32):
            idx = perm[i:i + 32]
            loss = nn.functional.cross_entropy(model(x[idx]), y[idx])
            opt.zero_grad()
            loss.backward()
            opt.step()
    return model.eval()


def load_model(spec: str) -> tuple[nn.Module, tuple[int, ...] | None, str]:
    """A pretrained name (``sigmadelta.models.load_pretrained``) or ``module:factory``.

    Returns the model, its input shape when known, and where it came from.
    """
    if ":" in spec:
        return load_torch_model(spec), None, spec
    from sigmadelta.models import load_pretrained, pretrained_info

    try:
        info = pretrained_info(spec)
        return load_pretrained(spec), tuple(info["input_shape"]), f"pretrained {spec}"
    except KeyError:
        if spec != DIGITS_MLP:
            raise
    print(f"checkpoint {spec!r} not found: training the SDQN MLP on 1400 digits (seed 0)")
    return _train_digits_mlp(), (64,), "trained here (fallback, seed 0)"


def load_stream(name: str, input_shape: tuple[int, ...] | None,
                limit: int | None) -> tuple[np.ndarray, np.ndarray | None]:
    """Frames ``[T, *shape]`` (float32) and labels (or None) of an embedded source."""
    from sigmadelta.datasets import open_source

    kw: dict[str, Any] = {} if limit is None else {"limit": limit}
    src = open_source(name, **kw)
    frames = src.to_array()
    if input_shape is not None and frames.shape[1:] != tuple(input_shape) and len(input_shape) == 3:
        src = open_source(name, size=tuple(input_shape[1:]), **kw)
        frames = src.to_array()
    labels = getattr(src, "labels", None)
    return frames.astype(np.float32), None if labels is None else np.asarray(labels)


def _convert(model, shape, values, quantizer, weight_bits=None):
    if quantizer == "herding":
        return sd.convert(model, shape, scale=values, weight_bits=weight_bits)
    return sd.convert(model, shape, quantizer="threshold", threshold=values)


def evaluate(model: nn.Module, shape, values, quantizer: str, frames: np.ndarray,
             ann: np.ndarray, labels: np.ndarray | None, weight_bits=None) -> dict[str, float]:
    """Convert with ``values`` (and fixed-point ``weight_bits``, if given) and run the real
    event simulation; measure cost and error."""
    net = _convert(model, shape, values, quantizer, weight_bits)
    res = sd.simulate(net, frames, progress=False)
    y = res.outputs.reshape(len(frames), -1)
    a = ann.reshape(len(frames), -1)
    out = {
        "synops_per_frame": res.stats.per_frame()["synops"],
        "rel_err": float(np.linalg.norm(y - a) / np.linalg.norm(a)),
        "agree": float(np.mean(y.argmax(1) == a.argmax(1))),
    }
    if labels is not None:
        acc, acc_ann = np.mean(y.argmax(1) == labels), np.mean(a.argmax(1) == labels)
        out.update(acc=100 * float(acc), acc_drop=100 * float(acc_ann - acc))
    return out


def sweep(args, model, shape, train, test, labels) -> tuple[list[dict], dict]:
    """All points of the three methods, measured on ``test``."""
    with torch.no_grad():
        ann = model(torch.as_tensor(test)).double().numpy()
    net = sd.convert(model, shape)
    base = {"dense_macs_per_frame": float(net.dense_macs().sum())}
    if labels is not None:
        base["ann_acc"] = 100 * float(np.mean(ann.reshape(len(ann), -1).argmax(1) == labels))
    inv = (lambda v: v) if args.quantizer == "herding" else (lambda v: {n: 1 / k for n, k in v.items()})
    loss = args.loss or ("kl" if len(net.output_shape) == 1 else "l2")
    cands: list[tuple[str, float, Any]] = []
    for k in args.uniform:
        cands.append(("uniform", k, inv(uniform_scales(net, None, k))))
    for lv in args.levels:
        cands.append(("percentile", lv, inv(calibrate_percentile(model, train, shape, 99.9, lv))))
    for lam in args.lams:
        t0 = time.time()
        v = optimize_scales(model, train, shape, lam, loss=loss, per=args.per, epochs=args.epochs,
                            lr=args.lr, quantizer=args.quantizer, progress=args.progress,
                            window=args.window or min(64, max(8, len(train) // 8)))
        print(f"  lam={lam:g}: optimised in {time.time() - t0:.1f} s")
        cands.append(("optimised", lam, v))
    points = []
    for method, param, values in cands:
        m = evaluate(model, shape, values, args.quantizer, test, ann, labels,
                     getattr(args, "weight_bits", None))
        values = {n: (float(v) if np.ndim(v) == 0 else np.asarray(v).tolist()) for n, v in values.items()}
        points.append({"method": method, "param": param, **m, **base, "values": values})
    return points, {"loss": loss, **base}


def pick(points: list[dict], max_acc_drop: float | None, max_rel_err: float | None) -> dict | None:
    """The cheapest point (synops per frame) within the error bounds."""
    ok = [p for p in points
          if (max_acc_drop is None or p.get("acc_drop", np.inf) <= max_acc_drop)
          and (max_rel_err is None or p["rel_err"] <= max_rel_err)]
    return min(ok, key=lambda p: p["synops_per_frame"]) if ok else None


def dominance(points: list[dict]) -> list[str]:
    """Per uniform point: synops of the optimised frontier at the same relative error
    (log-log interpolation between optimised points), and the ops ratio."""
    opt = sorted((p for p in points if p["method"] == "optimised"), key=lambda p: p["rel_err"])
    if len(opt) < 2:
        return []
    e = np.log([p["rel_err"] for p in opt])
    c = np.log([p["synops_per_frame"] for p in opt])
    lines = []
    for u in (p for p in points if p["method"] == "uniform"):
        le = np.log(u["rel_err"])
        if not e[0] <= le <= e[-1]:
            lines.append(f"uniform k={u['param']:g}: rel err {u['rel_err']:.3g} outside the optimised range")
            continue
        s = float(np.exp(np.interp(le, e, c)))
        lines.append(f"uniform k={u['param']:g}: rel err {u['rel_err']:.3g} at {u['synops_per_frame']:.4g} "
                     f"synops/fr; optimised at equal error {s:.4g} ({u['synops_per_frame'] / s:.2f}x fewer)")
    return lines


def plot(points: list[dict], path: Path, title: str) -> None:
    """Error (and accuracy drop) against synops per frame, one series per method."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    keys = (["acc_drop"] if "acc_drop" in points[0] else []) + ["rel_err"]
    fig, axes = plt.subplots(1, len(keys), figsize=(6.5 * len(keys), 4.8), squeeze=False)
    for ax, key in zip(axes[0], keys, strict=True):
        for method, marker in (("optimised", "o-"), ("uniform", "s--"), ("percentile", "^:")):
            ps = sorted((p for p in points if p["method"] == method), key=lambda p: p["synops_per_frame"])
            if ps:
                ax.plot([p["synops_per_frame"] for p in ps], [p[key] for p in ps], marker, label=method)
        ax.axvline(points[0]["dense_macs_per_frame"], color="k", lw=1, label="dense ANN MACs/frame")
        ax.set_xscale("log")
        if key == "rel_err":
            ax.set_yscale("log")
        ax.set_xlabel("synops per frame (event simulation)")
        ax.set_ylabel({"acc_drop": "accuracy drop vs ANN (points)", "rel_err": "relative output error"}[key])
        ax.grid(True, which="both", alpha=0.3)
        ax.legend()
    fig.suptitle(title)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def _table(points: list[dict]) -> str:
    cols = ["method", "param", "synops_per_frame", "rel_err", "agree", "acc", "acc_drop"]
    cols = [c for c in cols if c in points[0]]
    lines = ["  ".join(f"{c:>16}" for c in cols)]
    for p in points:
        lines.append("  ".join(f"{p[c]:>16.4g}" if isinstance(p[c], float) else f"{p[c]:>16}" for c in cols))
    return "\n".join(lines)


def _floats(s: str) -> list[float]:
    return [float(v) for v in s.split(",") if v.strip()]


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--model", default=DIGITS_MLP, help="pretrained name or module:factory")
    p.add_argument("--stream", default="temporal-digits", help="embedded source to evaluate on")
    p.add_argument("--train-stream", default=None,
                   help="stream to optimise / calibrate on (default: <stream>-train if it exists, "
                        "else the stream itself)")
    p.add_argument("--frames", type=int, default=None, help="evaluate on the first N frames")
    p.add_argument("--train-frames", type=int, default=None)
    p.add_argument("--lams", type=_floats, default=_floats("0,0.003,0.01,0.03,0.1,0.3,1,3"))
    p.add_argument("--uniform", type=_floats, default=_floats("1,2,4,8,16,32,64,128"))
    p.add_argument("--levels", type=_floats, default=_floats("2,4,8,16,32,64,128"))
    p.add_argument("--loss", choices=("kl", "l2", "l1"), default=None,
                   help="default: kl for classifiers (output [C]), else l2")
    p.add_argument("--per", choices=("layer", "unit"), default="layer")
    p.add_argument("--quantizer", choices=("herding", "threshold"), default="herding")
    p.add_argument("--epochs", type=int, default=30)
    p.add_argument("--lr", type=float, default=0.05)
    p.add_argument("--window", type=int, default=None,
                   help="frames per optimiser step (default min(64, max(8, T_train // 8)))")
    p.add_argument("--max-acc-drop", type=float, default=None, help="operating point bound (points)")
    p.add_argument("--max-rel-err", type=float, default=None, help="operating point bound")
    p.add_argument("--out", default="out/pareto")
    p.add_argument("--weight-bits", default=None,
                   help="fixed-point weights: bits for every layer, or 'checkpoint' for the "
                        "pretrained model's operating_point.weight_bits (herding only)")
    p.add_argument("--json", action="store_true", help="print the result as JSON")
    p.add_argument("--progress", action="store_true", help="progress bars of the optimiser")
    return p.parse_args(argv)


def _train_name(args) -> str:
    if args.train_stream:
        return args.train_stream
    from sigmadelta.datasets import list_embedded

    return args.stream + "-train" if args.stream + "-train" in list_embedded() else args.stream


def main(argv: list[str] | None = None) -> dict:
    """Command-line entry point; returns the result dict."""
    args = parse_args(argv)
    torch.set_num_threads(1)
    model, shape, origin = load_model(args.model)
    test, labels = load_stream(args.stream, shape, args.frames)
    shape = shape or test.shape[1:]
    train, _ = load_stream(_train_name(args), shape, args.train_frames)
    if args.weight_bits == "checkpoint":
        from sigmadelta.models import pretrained_info

        args.weight_bits = pretrained_info(args.model)["operating_point"]["weight_bits"]
    elif args.weight_bits is not None:
        args.weight_bits = int(args.weight_bits)
    print(f"model {args.model} ({origin}), input {shape}; optimise on {_train_name(args)} "
          f"({len(train)} frames), evaluate on {args.stream} ({len(test)} frames)")
    if args.max_acc_drop is None and args.max_rel_err is None:
        args.max_acc_drop, args.max_rel_err = (0.5, None) if labels is not None else (None, 0.05)
    points, meta = sweep(args, model, shape, train, test, labels)
    op = pick(points, args.max_acc_drop, args.max_rel_err)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    fields = [k for k in points[0] if k != "values"]
    with open(out / "points.csv", "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=fields, extrasaction="ignore")
        w.writeheader()
        w.writerows(points)
    plot(points, out / "frontier.png", f"{args.model} on {args.stream} ({args.quantizer})")
    result = {"model": args.model, "model_origin": origin, "stream": args.stream,
              "train_stream": _train_name(args), "input_shape": list(shape),
              "quantizer": args.quantizer, "per": args.per, **meta,
              "bounds": {"max_acc_drop": args.max_acc_drop, "max_rel_err": args.max_rel_err},
              "operating_point": op, "points": points}
    (out / "operating_point.json").write_text(json.dumps({k: v for k, v in result.items() if k != "points"},
                                                         indent=2) + "\n")
    if args.json:
        print(json.dumps(result, indent=2))
        return result
    print(_table(points))
    print(f"dense ANN: {meta['dense_macs_per_frame']:.6g} MACs/frame"
          + (f", accuracy {meta['ann_acc']:.2f}%" if "ann_acc" in meta else ""))
    print("\n".join(dominance(points)))
    if op is None:
        print("operating point: no point within the bounds")
    else:
        kind = "scale" if args.quantizer == "herding" else "threshold"
        print(f"operating point: {op['method']} {op['param']:g}, {op['synops_per_frame']:.6g} synops/frame, "
              f"rel err {op['rel_err']:.4g}"
              + (f", acc drop {op['acc_drop']:.3g}" if "acc_drop" in op else ""))
        print(f"  {kind}s: {json.dumps(op['values'])}")
    print(f"wrote {out / 'points.csv'}, {out / 'frontier.png'}, {out / 'operating_point.json'}")
    return result


if __name__ == "__main__":
    sys.exit(0 if main() else 1)
