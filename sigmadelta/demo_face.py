"""The face-detector demo: the whole chain on one video, side by side.

Rows of the printed table (each measured on the same frames):

* the dense float ANN of the shipped (uncompressed) face detector;
* the sigma-delta network of the uncompressed detector (float weights, the herding
  scales of its recorded operating point);
* the dense float ANN of the compressed detector (``face_detector_bc``: Bayesian
  compression, pruned channels, per-layer bits), when it is shipped;
* its sigma-delta network with fixed-point weights (``weight_bits`` of its operating
  point; bit-exact against :func:`sigmadelta.reference`).

Fidelity (:mod:`sigmadelta.fidelity`) is measured against each network's own float ANN,
and the regret agreement also against the uncompressed ANN; ``delta`` is each ANN's
own logit change under one gray level of input noise. Energy: :mod:`sigmadelta.energy`.
The face-hit rate is the share of frames with a stored face box (an independent
detector's, ``sigmadelta.datasets.face_boxes``) in which the centre of the decision
cell (the maximum logit) lies inside the box (``sigmadelta.models.face_hits``).

Like :mod:`sigmadelta.demo`, this module belongs to the command-line layer and reaches
for ``sigmadelta.models`` / ``sigmadelta.datasets`` only when it runs.
"""

from __future__ import annotations

import json
import os
import textwrap
import time
from dataclasses import dataclass, field

import numpy as np

from . import fidelity as fd
from .energy import EnergyModel
from .io import write_fidelity

__all__ = ["run_face_chain", "load_detector", "face_hit_rate", "spike_maps", "operating_point_line",
           "by_label", "layer_record", "TARGETS", "UNCOMPRESSED", "COMPRESSED"]

UNCOMPRESSED, COMPRESSED = "face_detector", "face_detector_bc"
DEFAULT_SCALE = 24.0
#: What the demo is held to (issue: the compressed fixed-point sigma-delta detector).
TARGETS = {"reduction": 20.0, "relative_error": 0.01, "regret_agreement": 0.99,
           "face_hit": 0.90, "energy_ratio": 100.0}
PRESENCE = 0.0  # a face is present where the maximum logit is positive


@dataclass
class Detector:
    """A shipped detector with its operating point (scales, weight bits)."""

    name: str
    model: object
    scales: dict | float
    weight_bits: dict | None
    info: dict = field(default_factory=dict)


def load_detector(name: str) -> Detector | None:
    """A shipped detector and its recorded operating point, or None if it is not shipped."""
    from sigmadelta.models import load_pretrained, pretrained_info

    try:
        info = pretrained_info(name)
    except KeyError:
        return None
    op = info.get("operating_point", {})
    return Detector(name, load_pretrained(name), op.get("scales", DEFAULT_SCALE),
                    op.get("weight_bits"), info)


def _ann(model, x: np.ndarray) -> np.ndarray:
    import torch

    with torch.no_grad():
        return np.concatenate([model(torch.from_numpy(x[i:i + 32])).double().numpy()
                               for i in range(0, len(x), 32)])


def face_hit_rate(outputs: np.ndarray, boxes, model) -> float | None:
    """Share of the frames with a box whose decision cell centre lies in it
    (:func:`sigmadelta.models.face_hits`); None without boxes or frames with a box."""
    from sigmadelta.models import face_hits

    if boxes is None:
        return None
    hits = face_hits(outputs, boxes, model)
    return float(np.nanmean(hits)) if np.isfinite(hits).any() else None


def _boxes(video: str, n: int):
    try:
        from sigmadelta.datasets import face_boxes

        boxes = face_boxes(video)
    except KeyError:  # no boxes stored for this video
        return None
    return list(boxes)[:n]


def spike_maps(net, x: np.ndarray, picks: list[int]) -> dict[int, np.ndarray]:
    """``sum_c |s|`` of the herding spikes into the first weight layer at the picked frames,
    read from the event simulation's encoder (stopped just before and after each pick)."""
    import sigmadelta as sd

    sim, maps, start = sd.Simulator(net), {}, 0
    for t in sorted(set(picks)):
        if t > start:
            sim.run(x[start:t], progress=False)
        before = sim.encoder_memory(0)
        sim.run(x[t:t + 1], progress=False)
        maps[t] = np.abs(sim.encoder_memory(0) - before).sum(0)
        start = t + 1
    return maps


@dataclass
class Run:
    """One detector on the video: its network, event run, own ANN and fidelity."""

    det: Detector
    net: object
    res: object
    ann: np.ndarray
    delta: float
    fid: fd.Fidelity
    seconds: float


def _run(det: Detector, x: np.ndarray, record: str, progress: bool) -> Run:
    import sigmadelta as sd

    net = sd.convert(det.model, x.shape[1:], scale=det.scales, weight_bits=det.weight_bits)
    sd.simulate(net, x[:1], progress=False)  # load (or compile) the compiled loop once
    t0 = time.perf_counter()
    res = sd.simulate(net, x, record=record, progress=progress)
    seconds = time.perf_counter() - t0
    ann = _ann(det.model, x)
    delta = fd.calibrate_delta(det.model, x)
    fid = fd.fidelity(res.outputs, ann, delta, presence_threshold=PRESENCE)
    res.stats.fidelity = fid
    write_fidelity(record, fid)
    return Run(det, net, res, ann, delta, fid, seconds)


def _bits(net) -> str:
    bits = [n.weight_bits for n in net.weight_layers]
    return "fp32" if not any(bits) else "-".join(str(b or 32) for b in bits)


def _rows(runs: list[Run], boxes, model: EnergyModel) -> list[dict]:
    """The table's rows: per detector its dense float ANN, then its sigma-delta network."""
    base = runs[0]
    total = int(sum(n.weight.size for n in base.net.weight_layers))
    base_macs = base.res.stats.per_frame()["dense_macs"]
    t = base.res.stats.n_frames
    rows = []
    for r in runs:
        kept = int(sum(np.count_nonzero(n.weight) for n in r.net.weight_layers))
        st = r.res.stats
        for dense in (True, False):
            out = r.ann if dense else r.res.outputs
            e = st.layer_energy(dense=dense, model=model)
            ops = st.per_frame()["dense_macs" if dense else "synops"]
            f = fd.fidelity(out, r.ann, r.delta, PRESENCE)
            kind = "dense float ANN" if dense else "sigma-delta"
            rows.append({
                "system": f"{kind}, {r.det.name}", "weights_kept": kept, "weights_total": total,
                "bits": "fp32" if dense else _bits(r.net), "ops_per_frame": ops,
                "op": "MACs" if dense else "synops", "reduction": base_macs / max(ops, 1e-12),
                "energy_uJ": 1e6 * e.arithmetic_total / t, "energy_memory_uJ": 1e6 * e.total / t,
                "weights_in": e.where, "relative_error": f.relative_error, "psnr_db": f.psnr_db,
                "regret_agreement": f.regret_agreement,
                "regret_agreement_vs_uncompressed_ann": fd.regret_agreement(
                    out, base.ann, base.delta, PRESENCE),
                "confident_agreement": f.confident_agreement,
                "face_hit": face_hit_rate(out, boxes, r.det.model),
            })
    return rows


def _pct(v) -> str:
    return "n/a" if v is None or not np.isfinite(v) else f"{100 * v:.1f}%"


def table(rows: list[dict]) -> str:
    """The side-by-side table (systems as rows)."""
    head = (f"{'system':<34}{'weights':>13}{'bits':>10}{'ops/frame':>15}{'reduct.':>8}"
            f"{'uJ/fr':>8}{'+mem':>8}{'rel.err':>8}{'PSNR':>6}{'regret':>8}{'vs unc.':>8}"
            f"{'conf.':>7}{'face':>7}")
    lines = [head, "-" * len(head)]
    for r in rows:
        psnr = "inf" if not np.isfinite(r["psnr_db"]) else f"{r['psnr_db']:.1f}"
        lines.append(
            f"{r['system'][:33]:<34}{r['weights_kept']:>6}/{r['weights_total']:<6}{r['bits']:>10}"
            f"{r['ops_per_frame']:>9.3g} {r['op']:<5}{r['reduction']:>7.1f}x"
            f"{r['energy_uJ']:>8.3g}{r['energy_memory_uJ']:>8.3g}{r['relative_error']:>8.4f}"
            f"{psnr:>6}{_pct(r['regret_agreement']):>8}"
            f"{_pct(r['regret_agreement_vs_uncompressed_ann']):>8}"
            f"{_pct(r['confident_agreement']):>7}{_pct(r['face_hit']):>7}")
    note = ("weights: kept (nonzero) / the uncompressed detector's; reduct.: the uncompressed "
            "detector's dense MACs / ops; uJ/fr: energy per frame, arithmetic; +mem: with weight "
            "reads; rel.err, PSNR, regret: against the row's own float ANN; vs unc.: regret "
            "agreement against the uncompressed ANN; conf.: strict agreement on confident frames; "
            "face: decision cell centre inside the stored face box")
    lines += ["-" * len(head), textwrap.fill(note, len(head))]
    return "\n".join(lines)


def targets(runs: list[Run], rows: list[dict]) -> list[str]:
    """The targets of the compressed fixed-point sigma-delta detector: met or missed by how much."""
    if len(runs) < 2:
        return ["targets: not measured (the compressed detector is not shipped)"]
    sd_row, dense_row = rows[3], rows[0]
    checks = [
        ("fewer synops than the uncompressed dense MACs", sd_row["reduction"], ">=",
         TARGETS["reduction"], "{:.1f}x"),
        ("relative error vs its own ANN", sd_row["relative_error"], "<=",
         TARGETS["relative_error"], "{:.4f}"),
        ("regret agreement vs its own ANN", sd_row["regret_agreement"], ">=",
         TARGETS["regret_agreement"], "{:.1%}"),
        ("face hit", sd_row["face_hit"], ">=", TARGETS["face_hit"], "{:.1%}"),
        ("energy below the dense fp32 ANN, with memory",
         dense_row["energy_memory_uJ"] / sd_row["energy_memory_uJ"], ">=",
         TARGETS["energy_ratio"], "{:.0f}x"),
    ]
    out = ["targets (compressed fixed-point sigma-delta detector):"]
    for name, value, op, bound, fmt in checks:
        if value is None:
            out.append(f"  {name}: not measured (no face boxes for this video)")
            continue
        ok = value >= bound if op == ">=" else value <= bound
        out.append(f"  {name}: {fmt.format(value)} (target {op} {fmt.format(bound)}) "
                   f"{'met' if ok else 'MISSED'}")
    return out


def run_face_chain(video: str = "carphone", frames: int | None = None, out: str = "demo_out",
                   scale=None, progress: bool = True, frontier: bool = True) -> dict:
    """The demo: both detectors on ``video``; prints the table, writes PNGs, run files, JSON."""
    from sigmadelta.datasets import open_source

    from .demo_plots import face_figure, frontier_points, plot_frontier
    from .plots import plot_activity

    os.makedirs(out, exist_ok=True)
    dets = [load_detector(UNCOMPRESSED), load_detector(COMPRESSED)]
    if dets[0] is None:
        raise FileNotFoundError(f"the face detector {UNCOMPRESSED!r} is not shipped in sigmadelta.models")
    if scale is not None:
        dets[0].scales = scale
    src = open_source(video, size=(144, 176), gray=True, **({"limit": frames} if frames else {}))
    x = np.stack(list(src)).astype(np.float32)
    print(f"\n{video}: {len(x)} frames of {x.shape[1:]}")
    if dets[1] is None:
        print(f"the compressed detector {COMPRESSED!r} is not shipped: its rows are left out")
    runs = []
    for det, file in zip(dets, ("run.h5", "run_bc.h5"), strict=True):
        if det is None:
            continue
        r = _run(det, x, os.path.join(out, file), progress)
        runs.append(r)
        print("\n" + operating_point_line(det.name, r.net))
        print(r.res.stats.summary(describe_energy=False))
        print(f"simulated in {r.seconds:.2f} s ({len(x) / r.seconds:.0f} frames/s, recording "
              f"included); wrote {os.path.join(out, file)}")
    boxes = _boxes(video, len(x))
    model = EnergyModel()
    rows = _rows(runs, boxes, model)
    _print_comparison(f"{video}, {len(x)} frames", runs, rows, boxes is None, model)
    written = []
    for r, name in zip(runs, ("activity.png", "activity_bc.png"), strict=False):
        plot_activity(r.res.stats, os.path.join(out, name), title=f"{r.det.name} on {video}")
        written.append(name)
    picks = [int(i) for i in np.linspace(1, len(x) - 1, 3)] if len(x) > 1 else [0]
    face_figure(x, runs, spike_maps(runs[0].net, x, picks), boxes, picks,
                os.path.join(out, "frames.png"))
    written.append("frames.png")
    points = []
    if frontier:
        points = frontier_points(runs, x, progress)
        plot_frontier(points, runs, os.path.join(out, "frontier.png"), f"{video}, {len(x)} frames")
        written.append("frontier.png")
    report = _report(video, x, runs, rows, points)
    with open(os.path.join(out, "report.json"), "w") as f:
        json.dump(report, f, indent=2)
    written += [os.path.basename(r) for r in ("run.h5", "run_bc.h5")[:len(runs)]] + ["report.json"]
    print(f"wrote {', '.join(os.path.join(out, w) for w in written)}")
    return report


def _print_comparison(what: str, runs: list[Run], rows: list[dict], no_boxes: bool,
                      model: EnergyModel) -> None:
    """The side-by-side table, delta and flip rate per detector, the energy model, the targets."""
    print(f"\n{what}: dense float ANN vs sigma-delta, each against its own ANN")
    print(table(rows))
    for r in runs:
        _wrap(f"{r.det.name}: delta = {r.delta:.4g} (median |max-logit change| of its ANN under "
              f"noise of one gray level); its ANN's argmax moves on {100 * r.fid.flip_rate:.1f}% "
              f"of frame pairs; confident frames (top-two gap > delta) {100 * r.fid.confident_share:.0f}%")
    _wrap(model.describe())
    if no_boxes:
        print("face hit: no stored face boxes for this video")
    print("\n".join(targets(runs, rows)))


def _wrap(text: str) -> None:
    print(textwrap.fill(text, 110, subsequent_indent="  "))


def by_label(net, values) -> dict:
    """``values`` (one per weight layer, in order) keyed by the layer labels the demo prints
    (``conv1 3x3/2 1->8``; a bare ``nn.Sequential`` name such as ``"1"`` reads like a position)."""
    return dict(zip(net.layer_labels, values, strict=True))


def operating_point_line(name: str, net) -> str:
    """The printed operating point of a converted detector: its herding scales ``k`` and, with
    fixed-point weights, its weight bits, both by layer label."""
    scales = by_label(net, [round(float(n.scale), 3) for n in net.weight_layers])
    bits = [n.weight_bits for n in net.weight_layers]
    what = f"weight bits {by_label(net, bits)}" if any(bits) else "float weights"
    return f"{name}: sigma-delta, herding scales {scales}, {what}"


def layer_record(net) -> dict:
    """A converted detector's operating point for ``report.json``, by layer name (the keys
    ``sd.convert`` takes back): ``weight_bits`` (None with float weights), herding ``scales``,
    and ``layer_labels`` (name -> the label the demo prints)."""
    def by_name(values) -> dict:
        return dict(zip(net.layer_names, values, strict=True))

    bits = [n.weight_bits for n in net.weight_layers]
    return {"weight_bits": by_name(bits) if any(bits) else None,
            "scales": by_name([float(n.scale) for n in net.weight_layers]),
            "layer_labels": by_name(net.layer_labels)}


def _report(video, x, runs, rows, points) -> dict:
    base = runs[0]
    st = base.res.stats
    report = {
        "model": base.det.name, "video": video, "frames": len(x), "frame_shape": list(x.shape[1:]),
        "scales": {n.name: float(n.scale) for n in base.net.weight_layers},
        "layer_labels": base.net.layer_labels,
        "synops_per_frame": st.per_frame()["synops"], "dense_macs_per_frame": st.per_frame()["dense_macs"],
        "reduction": st.total_reduction(), "relative_error": base.fid.relative_error,
        "psnr_db": base.fid.psnr_db, "simulate_seconds": base.seconds,
        "energy_model": EnergyModel().describe(), "rows": rows, "frontier": points,
    }
    for r in runs:
        report[r.det.name] = {"fidelity": r.fid.to_dict(), "energy_J": r.res.stats.energy(),
                              **layer_record(r.net)}
    return report
