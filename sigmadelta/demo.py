"""``sigmadelta demo``: a trained network simulated as sigma-delta spikes on real video.

This module belongs to the command-line layer: it is the one place where the
library reaches for the shipped models (``sigmadelta.models``) and streams
(``sigmadelta.datasets``), and it imports them only when the demo runs.

Tasks
-----
face (default)
    The shipped fully convolutional face detector, uncompressed and Bayesian-compressed
    with fixed-point weights, on the carphone video (or any other embedded video /
    video file, as 144x176 grayscale), side by side with the dense float ANN
    (:mod:`sigmadelta.demo_face`). Per-frame decision: the cell of the maximum face
    logit and whether it is positive.
digits
    The SDQN MLP (64-200-200-10) on Temporal digits: accuracy of the ANN and of
    the sigma-delta net, synops per frame against one dense pass.
"""

from __future__ import annotations

import json
import os
import time

import numpy as np

from . import fidelity
from .torchlimit import DEFAULT_TORCH_THREADS, torch_limit

__all__ = ["run_face_demo", "run_video_demo", "run_digits_demo", "DEFAULT_FACE_SCALES"]

# Herding scale of a video model without a recorded operating point.
DEFAULT_FACE_SCALES: dict[str, float] | float = 24.0


def _ann_outputs(model, frames: np.ndarray) -> np.ndarray:
    import torch

    with torch.no_grad():
        return np.concatenate([model(torch.from_numpy(frames[i:i + 32])).numpy()
                               for i in range(0, len(frames), 32)])


def run_face_demo(video: str = "carphone", frames: int | None = None, out: str = "demo_out",
                  scale=None, progress: bool = True, frontier: bool = True,
                  torch_threads: int | None = DEFAULT_TORCH_THREADS) -> dict:
    """The face detectors (uncompressed and compressed) as sigma-delta spikes on a video,
    side by side with the dense float ANN (see :mod:`sigmadelta.demo_face`).

    Every demo runs torch (conversion, ANN passes, calibration, frontier) on
    ``torch_threads`` intra-op threads (:mod:`sigmadelta.torchlimit`; None: torch's own
    setting), restored afterwards."""
    from .demo_face import run_face_chain

    with torch_limit(torch_threads):
        return run_face_chain(video, frames, out, scale, progress, frontier)


def run_video_demo(model, name: str, video: str = "carphone", frames: int | None = None,
                   out: str = "demo_out", scale=24.0, progress: bool = True,
                   torch_threads: int | None = DEFAULT_TORCH_THREADS) -> dict:
    """Convert ``model``, stream ``video`` through it, compare with its dense float ANN, report.

    Frames are read at the model's input size (grayscale for one channel). Prints the
    per-layer table, energy and fidelity (:mod:`sigmadelta.fidelity`, no presence
    notion, delta from one gray level of input noise); writes ``activity.png``,
    ``run.h5`` (with the fidelity as attributes) and ``report.json`` into ``out``.
    torch runs on ``torch_threads`` threads (as in :func:`run_face_demo`).
    """
    with torch_limit(torch_threads):
        return _video_demo(model, name, video, frames, out, scale, progress)


def _video_demo(model, name: str, video: str, frames: int | None, out: str, scale,
                progress: bool) -> dict:
    import sigmadelta as sd
    from sigmadelta.datasets import open_source

    from .io import write_fidelity
    from .plots import plot_activity

    os.makedirs(out, exist_ok=True)
    shape = _input_shape(model)
    src = open_source(video, size=shape[1:], gray=shape[0] == 1, **({"limit": frames} if frames else {}))
    x = np.stack(list(src)).astype(np.float32)
    net = sd.convert(model, x.shape[1:], scale=scale)
    t0 = time.perf_counter()
    record = os.path.join(out, "run.h5")
    res = sd.simulate(net, x, record=record, progress=progress)
    sim_s = time.perf_counter() - t0
    ann = _ann_outputs(model, x)
    fid = fidelity.fidelity(res.outputs, ann, fidelity.calibrate_delta(model, x))
    res.stats.fidelity = fid
    write_fidelity(record, fid)
    pf = res.stats.per_frame()
    print(f"\n{name} on {video}: {len(x)} frames of {x.shape[1:]}")
    print(res.stats.summary())
    print(f"simulated in {sim_s:.2f} s ({len(x) / sim_s:.0f} frames/s, recording included)")
    plot_activity(res.stats, os.path.join(out, "activity.png"), title=f"{name} on {video}")
    report = {"model": name, "video": video, "frames": len(x), "frame_shape": list(x.shape[1:]),
              "synops_per_frame": pf["synops"], "dense_macs_per_frame": pf["dense_macs"],
              "reduction": res.stats.total_reduction(), "fidelity": fid.to_dict(),
              "energy_J": res.stats.energy(), "simulate_seconds": sim_s}
    with open(os.path.join(out, "report.json"), "w") as f:
        json.dump(report, f, indent=2)
    print(f"wrote {out}/activity.png, {out}/run.h5, {out}/report.json")
    return report


def _input_shape(model) -> tuple[int, ...]:
    first = next((m for m in model.modules() if hasattr(m, "in_channels")), None)
    if first is None:
        raise ValueError("the video demo needs a convolutional model (Conv2d first)")
    return (int(first.in_channels), 144, 176)


def run_digits_demo(scale=None, progress: bool = True, out: str = "demo_out",
                    torch_threads: int | None = DEFAULT_TORCH_THREADS) -> dict:
    """SDQN MLP on Temporal digits: ANN vs sigma-delta accuracy, synops per frame, fidelity
    (torch on ``torch_threads`` threads, as in :func:`run_face_demo`)."""
    with torch_limit(torch_threads):
        return _digits_demo(scale, progress, out)


def _digits_demo(scale, progress: bool, out: str) -> dict:
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
    res.stats.fidelity = fidelity.fidelity(res.outputs, ann, fidelity.calibrate_delta(model, x))
    print(res.stats.summary())
    print(f"{name} on temporal-digits ({len(x)} frames): accuracy ANN {100 * acc_ann:.2f}%, "
          f"sigma-delta {100 * acc_sd:.2f}%; synops per frame {pf['synops']:.0f} vs one dense "
          f"pass {pf['dense_macs']:.0f} MACs ({pf['synops'] / pf['dense_macs']:.2f} of a pass)")
    os.makedirs(out, exist_ok=True)
    from sigmadelta.plots import plot_activity

    plot_activity(res.stats, os.path.join(out, "digits_activity.png"), title=f"{name} on temporal digits")
    return {"accuracy_ann": acc_ann, "accuracy_sd": acc_sd, **pf,
            "fidelity": res.stats.fidelity.to_dict()}
