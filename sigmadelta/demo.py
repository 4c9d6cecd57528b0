"""``sigmadelta demo``: a trained network simulated as sigma-delta spikes on real video.

This module belongs to the command-line layer: it is the one place where the
library reaches for the shipped models (``sigmadelta.models``) and streams
(``sigmadelta.datasets``), and it imports them only when the demo runs.

Tasks
-----
face (default)
    The shipped fully convolutional face detector on the carphone video (or any
    other embedded video / video file, as 144x176 grayscale). Per-frame decision:
    the cell of the maximum face logit and whether it is positive.
digits
    The SDQN MLP (64-200-200-10) on Temporal digits: accuracy of the ANN and of
    the sigma-delta net, synops per frame against one dense pass.
"""

from __future__ import annotations

import json
import os
import time

import numpy as np

__all__ = ["run_face_demo", "run_video_demo", "run_digits_demo", "DEFAULT_FACE_SCALES"]

# Herding scale of a video model without a recorded operating point.
DEFAULT_FACE_SCALES: dict[str, float] | float = 24.0


def _face_model():
    """The shipped face detector and the per-layer scales of its recorded operating point
    (chosen on the error-vs-synops frontier of scripts/pareto.py, see the README)."""
    from sigmadelta.models import list_pretrained, load_pretrained, pretrained_info

    names = [n for n in list_pretrained() if "face" in n]
    if not names:
        raise FileNotFoundError("no pretrained face detector is shipped in sigmadelta.models")
    op = pretrained_info(names[0]).get("operating_point", {})
    return load_pretrained(names[0]), names[0], op.get("scales", DEFAULT_FACE_SCALES)


def _relative_error(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.linalg.norm(a - b) / max(np.linalg.norm(b), 1e-12))


def _ann_outputs(model, frames: np.ndarray) -> np.ndarray:
    import torch

    with torch.no_grad():
        return np.concatenate([model(torch.from_numpy(frames[i:i + 32])).numpy()
                               for i in range(0, len(frames), 32)])


def _spike_maps(net, frames: np.ndarray, picks: list[int]) -> dict[int, np.ndarray]:
    """Herding spikes into the first weight layer at the picked frames (from the reference)."""
    import sigmadelta as sd

    ref = sd.Reference(net)
    layer = net.weight_layers[0]
    j = net.nodes.index(layer)
    src = net.nodes[j].inputs[0]
    prev = 0.0
    maps = {}
    for t, f in enumerate(frames[: max(picks) + 1]):
        ref.step(f)
        q = np.rint(layer.scale * ref.values[src][0].numpy())
        if t in picks:
            maps[t] = np.abs(q - prev).sum(0)
        prev = q
    return maps


def run_face_demo(video: str = "carphone", frames: int | None = None, out: str = "demo_out",
                  scale=None, progress: bool = True) -> dict:
    """The shipped face detector as sigma-delta spikes on a video (default: carphone)."""
    from sigmadelta.models import face_decision

    model, name, scales = _face_model()
    return run_video_demo(model, name, video, frames, out, scales if scale is None else scale,
                          face_decision, progress)


def _agreement(dec_ann: list, dec_sd: list) -> tuple[float, float]:
    """Strict (same decision) and within-one-cell agreement of per-frame decisions."""
    strict = float(np.mean([a == b for a, b in zip(dec_ann, dec_sd, strict=True)]))
    near = float(np.mean([abs(a[0] - b[0]) <= 1 and abs(a[1] - b[1]) <= 1 and a[2] == b[2]
                          for a, b in zip(dec_ann, dec_sd, strict=True)]))
    return strict, near


def run_video_demo(model, name: str, video: str = "carphone", frames: int | None = None,
                   out: str = "demo_out", scale=24.0, decision=None, progress: bool = True) -> dict:
    """Convert ``model``, stream ``video`` through it, compare with the dense ANN, report.

    Frames are read at the model's input size (grayscale for one channel). With a
    ``decision(output) -> hashable`` function, per-frame decisions are compared too.
    Prints the per-layer table, fidelity and energy; writes ``activity.png``,
    ``frames.png``, ``run.h5`` and ``report.json`` into ``out``.
    """
    import sigmadelta as sd
    from sigmadelta.datasets import open_source

    os.makedirs(out, exist_ok=True)
    shape = _input_shape(model)
    src = open_source(video, size=shape[1:], gray=shape[0] == 1, **({"limit": frames} if frames else {}))
    x = np.stack(list(src)).astype(np.float32)
    net = sd.convert(model, x.shape[1:], scale=scale)
    t0 = time.perf_counter()
    sd.simulate(net, x[:1], progress=False)  # load (or compile) the compiled loop once
    load_s = time.perf_counter() - t0
    t0 = time.perf_counter()
    res = sd.simulate(net, x, record=os.path.join(out, "run.h5"), progress=progress)
    sim_s = time.perf_counter() - t0
    ann = _ann_outputs(model, x)
    pf = res.stats.per_frame()
    report = {
        "model": name, "video": video, "frames": len(x), "frame_shape": list(x.shape[1:]),
        "scales": {n.name: n.scale for n in net.weight_layers},
        "synops_per_frame": pf["synops"], "dense_macs_per_frame": pf["dense_macs"],
        "reduction": res.stats.total_reduction(),
        "relative_error": _relative_error(res.outputs, ann),
        "psnr_db": float(10 * np.log10(np.ptp(ann) ** 2 / np.mean((res.outputs - ann) ** 2))),
        "simulate_seconds": sim_s, "numba_load_seconds": load_s,
    }
    print(f"\n{name} on {video}: {len(x)} frames of {x.shape[1:]}, herding scales {report['scales']}")
    print(res.stats.summary())
    line = (f"fidelity vs the dense ANN: relative error {report['relative_error']:.4f}, "
            f"PSNR {report['psnr_db']:.1f} dB")
    dec_ann = dec_sd = None
    if decision is not None:
        dec_ann, dec_sd = [decision(a) for a in ann], [decision(o) for o in res.outputs]
        strict, near = _agreement(dec_ann, dec_sd)
        report.update(decision_agreement=strict, decision_agreement_within_1_cell=near)
        line += (f"; per-frame decision agreement {100 * strict:.1f}% "
                 f"({100 * near:.1f}% within one cell)")
    print(line)
    print(f"simulated in {sim_s:.2f} s ({len(x) / sim_s:.0f} frames/s, recording included; "
          f"loading the compiled loop took {load_s:.1f} s before)")
    _write_figures(net, x, ann, res, dec_ann, dec_sd, out, f"{name} on {video}")
    with open(os.path.join(out, "report.json"), "w") as f:
        json.dump(report, f, indent=2)
    print(f"wrote {out}/activity.png, {out}/frames.png, {out}/run.h5, {out}/report.json")
    return report


def _input_shape(model) -> tuple[int, ...]:
    first = next((m for m in model.modules() if hasattr(m, "in_channels")), None)
    if first is None:
        raise ValueError("the video demo needs a convolutional model (Conv2d first)")
    return (int(first.in_channels), 144, 176)


def _write_figures(net, x, ann, res, dec_ann, dec_sd, out, title):
    from sigmadelta.plots import plot_activity

    plot_activity(res.stats, os.path.join(out, "activity.png"), title=title)
    picks = [int(i) for i in np.linspace(1, len(x) - 1, 3)]
    _face_figure(x, ann, res.outputs, _spike_maps(net, x, picks), dec_ann, dec_sd, picks,
                 os.path.join(out, "frames.png"))


def _face_figure(x, ann, sdo, spikes, dec_ann, dec_sd, picks, path):
    from sigmadelta.plots import _plt

    plt = _plt()
    fig, ax = plt.subplots(len(picks), 4, figsize=(13, 2.9 * len(picks)), squeeze=False)
    lo, hi = float(ann.min()), float(ann.max())
    for r, t in enumerate(picks):
        ax[r, 0].imshow(x[t].transpose(1, 2, 0).squeeze(), cmap="gray", vmin=0, vmax=1)
        for k, out in enumerate((ann, sdo)):
            ax[r, 1 + k].imshow(out[t].mean(0), cmap="magma", vmin=lo, vmax=hi)
            dec = None if dec_ann is None else (dec_ann, dec_sd)[k][t]
            if dec is not None:
                ax[r, 1 + k].plot(dec[1], dec[0], "c+" if dec[2] else "wx", ms=12, mew=2)
        ax[r, 3].imshow(spikes[t], cmap="viridis")
        for c, title in enumerate((f"input, frame {t}", "ANN output", "sigma-delta output",
                                   f"spikes into layer 1 ({int(spikes[t].sum())})")):
            ax[r, c].set_title(title, fontsize=9)
            ax[r, c].axis("off")
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)


def run_digits_demo(scale=None, progress: bool = True, out: str = "demo_out") -> dict:
    """SDQN MLP on Temporal digits: ANN vs sigma-delta accuracy and synops per frame."""
    import sigmadelta as sd
    from sigmadelta.datasets import open_source
    from sigmadelta.models import list_pretrained, load_pretrained

    name = next(n for n in list_pretrained() if "sdqn" in n)
    model = load_pretrained(name)
    src = open_source("temporal-digits")
    x = np.stack(list(src)).astype(np.float32)
    labels = np.asarray(src.labels)
    net = sd.convert(model, x.shape[1:], scale=16.0 if scale is None else scale)
    res = sd.simulate(net, x, progress=progress)
    ann = _ann_outputs(model, x)
    acc_ann = float(np.mean(ann.argmax(1) == labels))
    acc_sd = float(np.mean(res.outputs.argmax(1) == labels))
    pf = res.stats.per_frame()
    print(res.stats.summary())
    print(f"{name} on temporal-digits ({len(x)} frames): accuracy ANN {100 * acc_ann:.2f}%, "
          f"sigma-delta {100 * acc_sd:.2f}%; synops per frame {pf['synops']:.0f} vs one dense "
          f"pass {pf['dense_macs']:.0f} MACs ({pf['synops'] / pf['dense_macs']:.2f} of a pass)")
    os.makedirs(out, exist_ok=True)
    from sigmadelta.plots import plot_activity

    plot_activity(res.stats, os.path.join(out, "digits_activity.png"), title=f"{name} on temporal digits")
    return {"accuracy_ann": acc_ann, "accuracy_sd": acc_sd, **pf}
