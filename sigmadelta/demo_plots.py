"""Figures of the face demo (:mod:`sigmadelta.demo_face`): frames and the error frontier.

The frontier is cheap and for display: on the demo's own frames, each detector is
converted with one uniform scale ``k`` for every layer (``UNIFORM_K``) and with its
operating point's optimised scales (chosen on other videos) multiplied by a factor
``c`` (``FACTORS``), and run with the event simulation; relative output error against
its own float ANN is plotted against synops per frame.
"""

from __future__ import annotations

import numpy as np

from . import fidelity as fd
from .fixedpoint import AccumulatorOverflowError
from .plots import _plt

__all__ = ["UNIFORM_K", "FACTORS", "frontier_points", "plot_frontier", "face_figure", "frames_figure"]

UNIFORM_K = (8.0, 16.0, 32.0, 64.0, 128.0, 256.0)
FACTORS = (0.25, 0.5, 1.0, 2.0, 4.0, 8.0)


def _point(run, x, scales) -> dict | None:
    import sigmadelta as sd

    try:
        net = sd.convert(run.det.model, x.shape[1:], scale=scales, weight_bits=run.det.weight_bits)
        res = sd.simulate(net, x, progress=False)
    except AccumulatorOverflowError:
        return None
    return {"synops_per_frame": res.stats.per_frame()["synops"],
            "relative_error": fd.relative_error(res.outputs, run.ann)}


def frontier_points(runs, x: np.ndarray, progress: bool = True) -> list[dict]:
    """Per detector: uniform scales and the operating point's scales times ``FACTORS``
    (``progress``: a bar over the points)."""
    from tqdm.auto import tqdm

    todo = []
    for run in runs:
        op = run.det.scales if isinstance(run.det.scales, dict) else \
            {n.name: float(run.det.scales) for n in run.net.weight_layers}
        todo += [(run, "uniform", k, k) for k in UNIFORM_K]
        todo += [(run, "optimised x c", c, {n: c * s for n, s in op.items()}) for c in FACTORS]
    points, bar = [], tqdm(todo, desc="frontier", unit="point", leave=False, disable=not progress)
    for run, method, param, scales in bar:
        p = _point(run, x, scales)
        if p is not None:
            points.append({"detector": run.det.name, "method": method, "param": param, **p})
    return points


def plot_frontier(points: list[dict], runs, path: str, title: str) -> str:
    """Relative error against synops per frame, both detectors, uniform vs optimised."""
    plt = _plt()
    fig, ax = plt.subplots(figsize=(8, 5.5))
    colors = {run.det.name: c for run, c in zip(runs, ("tab:blue", "tab:red"), strict=False)}
    for run in runs:
        for method, style in (("uniform", "s--"), ("optimised x c", "o-")):
            ps = sorted((p for p in points if p["detector"] == run.det.name and p["method"] == method),
                        key=lambda p: p["synops_per_frame"])
            if ps:
                ax.plot([p["synops_per_frame"] for p in ps], [p["relative_error"] for p in ps], style,
                        color=colors[run.det.name], label=f"{run.det.name}: {method}", ms=5)
        st = run.res.stats
        ax.plot(st.per_frame()["synops"], run.fid.relative_error, "*", ms=16, mec="k",
                color=colors[run.det.name], label=f"{run.det.name}: operating point (c = 1)")
    macs = runs[0].res.stats.per_frame()["dense_macs"]
    ax.axvline(macs, color="k", lw=1, label="uncompressed dense ANN MACs/frame")
    ax.axvline(macs / 20, color="k", lw=1, ls="--", label="1/20 of them (target)")
    ax.axhline(0.01, color="gray", lw=1, ls=":", label="1% error (target)")
    ax.set(xscale="log", yscale="log", xlabel="synops per frame (event simulation)",
           ylabel="relative output error vs its own float ANN",
           title=f"error-vs-synops frontier, {title}\n(optimised scales chosen on other videos, "
                 f"times c; uniform: one k for every layer)")
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path


def _decision_xy(out: np.ndarray, model):
    from sigmadelta.models import cell_centre, face_decision

    row, col, present = face_decision(out)
    y, x = cell_centre(row, col, model)
    return x, y, present


def _frame_title(t: int, has_box: bool, runs, marks) -> str:
    where = "face box (yellow)" if has_box else "no face box stored"
    return (f"frame {t}: {where}; sigma-delta decisions\n"
            + ", ".join(f"{m[1]} {r.det.name}" for r, m in zip(runs, marks, strict=False)))


def frames_figure(x, runs, spikes, boxes, picks):
    """The figure of :func:`face_figure`: one row per picked frame ``t``.

    Columns: the input frame (the stored face box, where there is one, and each detector's
    sigma-delta decision cell, the maximum logit); per detector its dense float ANN's face-logit
    map and its sigma-delta network's, both on the colour scale of that ANN's logits over all
    frames (one labelled colorbar per detector); the herding spikes into the first weight
    layer, ``sum_c |s_c|`` at each pixel (with its own colorbar).
    """
    plt = _plt()
    maps = []
    for r in runs:
        maps += [("ANN, " + r.det.name, r.ann, r), ("sigma-delta, " + r.det.name, r.res.outputs, r)]
    ncol = 2 + len(maps)
    fig, ax = plt.subplots(len(picks), ncol, figsize=(3.3 * ncol, 3.2 * len(picks) + 0.6),
                           squeeze=False, layout="compressed")
    marks, images = ("c+", "mx"), {}
    for row, t in enumerate(picks):
        a = ax[row, 0]
        a.imshow(x[t].squeeze(0), cmap="gray", vmin=0, vmax=1)
        box = None if boxes is None or t >= len(boxes) else boxes[t]
        if box is not None:
            a.add_patch(plt.Rectangle((box[0], box[1]), box[2] - box[0], box[3] - box[1],
                                      fill=False, color="y", lw=1.2))
        for r, m in zip(runs, marks, strict=False):
            px, py, _ = _decision_xy(r.res.outputs[t], r.det.model)
            a.plot(px, py, m, ms=11, mew=2)
        a.set_title(_frame_title(t, box is not None, runs, marks), fontsize=8)
        for c, (title, out, r) in enumerate(maps, start=1):
            images[r.det.name] = ax[row, c].imshow(out[t].squeeze(0), cmap="magma",
                                                   vmin=float(r.ann.min()), vmax=float(r.ann.max()))
            ax[row, c].set_title(title, fontsize=8)
        im = ax[row, -1].imshow(spikes[t], cmap="viridis")
        fig.colorbar(im, ax=ax[row, -1], shrink=0.8).set_label("sum of |s| over channels", fontsize=7)
        ax[row, -1].set_title(f"spikes into {runs[0].net.layer_labels[0]}\n"
                              f"(sum of |s| = {int(spikes[t].sum())})", fontsize=8)
        for a in ax[row]:
            a.axis("off")
    for i, r in enumerate(runs):
        cols = ax[:, 1 + 2 * i:3 + 2 * i]
        fig.colorbar(images[r.det.name], ax=cols, location="bottom", shrink=0.8, aspect=30).set_label(
            f"face logit, {r.det.name} (range of its ANN over all frames)", fontsize=8)
    return fig


def face_figure(x, runs, spikes, boxes, picks, path: str) -> str:
    """Write :func:`frames_figure` to ``path`` (PNG)."""
    plt = _plt()
    fig = frames_figure(x, runs, spikes, boxes, picks)
    fig.savefig(path, dpi=90)
    plt.close(fig)
    return path
