"""PNG reports of a run's activity (matplotlib, no display needed)."""

from __future__ import annotations

import os

import numpy as np

from .stats import Stats

__all__ = ["plot_activity", "plot_runs"]


def _plt():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def plot_activity(stats: Stats, path: str | os.PathLike, title: str = "") -> str:
    """Write a PNG: synops per layer over time (vs dense MACs), reduction bars, update share.

    Returns the path written.
    """
    plt = _plt()
    fig, ax = plt.subplots(1, 3, figsize=(16, 4.5))
    t = np.arange(stats.n_frames)
    colors = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    for j, name in enumerate(stats.labels()):
        c = colors[j % len(colors)]
        ax[0].semilogy(t, np.maximum(stats.synops[:, j], 0.5), color=c, label=name)
        ax[0].axhline(stats.dense_macs[0, j], color=c, ls=":", lw=0.8)
        share = stats.neuron_updates[:, j] / max(stats.n_neurons[j], 1)
        ax[2].plot(t, 100 * share, color=c, label=name)
    ax[0].set(xlabel="frame", ylabel="synops (dotted: dense MACs)", title="activity per layer")
    ax[0].legend(fontsize=7)
    red = stats.reduction()
    names = stats.labels() + ["total"]
    vals = np.append(red, stats.total_reduction())
    bars = ax[1].bar(range(len(names)), np.where(np.isfinite(vals), vals, 0), color="tab:green")
    for b, v in zip(bars, vals, strict=True):
        ax[1].annotate(f"{v:.1f}x", (b.get_x() + b.get_width() / 2, b.get_height()), ha="center",
                       va="bottom", fontsize=8)
    ax[1].set_xticks(range(len(names)), names, rotation=45, ha="right", fontsize=8)
    ax[1].set(ylabel="dense MACs / synops", title="op reduction per layer")
    ax[2].set(xlabel="frame", ylabel="% of neurons recomputed", title="neurons updated")
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    path = os.fspath(path)
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path


def plot_runs(runs, path: str | os.PathLike, title: str = "") -> str:
    """Write a PNG of many streams (a :class:`sigmadelta.runs.Runs`): op reduction per
    stream (failed streams marked), and per layer over all complete streams the synops
    and dense MACs per frame and the share of neurons recomputed.

    Returns the path written.
    """
    plt = _plt()
    rows = runs.rows()[:-1]
    fig, ax = plt.subplots(1, 3, figsize=(17, 4.8))
    names = [r["stream"] for r in rows]
    red = [r.get("reduction") or 0.0 for r in rows]
    bars = ax[0].bar(range(len(rows)), red, color=["tab:green" if r["status"] == "complete" else "tab:red"
                                                    for r in rows])
    for b, r in zip(bars, rows, strict=True):
        label = f"{r['reduction']:.1f}x" if r.get("reduction") else r["status"]
        ax[0].annotate(label, (b.get_x() + b.get_width() / 2, b.get_height()), ha="center",
                       va="bottom", fontsize=7)
    ax[0].set_xticks(range(len(rows)), [n[-24:] for n in names], rotation=45, ha="right", fontsize=7)
    ax[0].set(xlabel="stream", ylabel="dense MACs / synops", title="op reduction per stream (red: failed)")
    if runs.complete:
        total = runs.total_stats()
        t = max(total.n_frames, 1)
        x = np.arange(len(total.layer_names))
        ax[1].bar(x - 0.2, total.synops.sum(0) / t, 0.4, label="synops / frame")
        ax[1].bar(x + 0.2, total.dense_macs.sum(0) / t, 0.4, label="dense MACs / frame")
        ax[1].set_yscale("log")
        ax[1].set_xticks(x, total.layer_names, rotation=45, ha="right", fontsize=8)
        ax[1].legend(fontsize=8)
        ax[2].bar(x, 100 * total.update_share(), color="tab:purple")
        ax[2].set_xticks(x, total.layer_names, rotation=45, ha="right", fontsize=8)
        ax[1].set(xlabel="weight layer", ylabel="per frame",
                  title=f"per layer, all {len(runs.complete)} complete streams ({total.n_frames} frames)")
        ax[2].set(xlabel="weight layer")
    ax[2].set(ylabel="% of neuron-frames recomputed", title="neurons updated per layer")
    fig.suptitle(title or f"{len(runs)} streams")
    fig.tight_layout()
    path = os.fspath(path)
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path
